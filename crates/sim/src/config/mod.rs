//! File-shaped configuration of samples and instruments: serde structs that mirror the TOML
//! files in `models/` (campaign files are `xpcs_twin::config::campaign`), and
//! [`load_toml`], which turns a parse error into one line naming the file and the key.
//!
//! Two layers: the `*Config` structs here only describe the files
//! (`deny_unknown_fields`, documented defaults, units in field names); each stage validates its
//! config once into a runtime type that cannot be invalid (`X::new(&XConfig) -> Result<X>`).

pub mod instrument;
pub mod sample;

use serde::de::DeserializeOwned;
use std::path::Path;
use xpcs_core::error::{Error, Result};

/// Reads and parses a TOML file into `T`; errors name the file and the offending key.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_toml(&text, &path.display().to_string())
}

/// Parses TOML text; `origin` names the file in error messages.
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        // toml's message spans several lines with a source excerpt; keep one line.
        let msg = e.message().trim().replace('\n', " ");
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        Error::format(origin, format!("{msg}{at}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Demo {
        tau_s: f64,
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = parse_toml::<Demo>("tau_s = 1.0\nbeta = 2", "demo.toml").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("demo.toml") && s.contains("beta") && s.contains("line 2"),
            "{s}"
        );
    }
}
