//! Helpers shared by the integration tests (each test file that needs them declares
//! `mod common;`).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the project's venv (`scripts/pyenv` creates it on first use),
/// or why there is none.
pub fn venv_python() -> Result<PathBuf, String> {
    let o = Command::new(root().join("scripts/pyenv"))
        .output()
        .map_err(|e| format!("cannot run scripts/pyenv: {e}"))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(format!(
            "scripts/pyenv failed: {}",
            err.trim().lines().last().unwrap_or("")
        ));
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let p = PathBuf::from(out.trim().lines().last().unwrap_or("").trim());
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("scripts/pyenv printed no interpreter ({p:?})"))
    }
}
