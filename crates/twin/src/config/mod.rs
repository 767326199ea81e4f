//! Campaign files ([`campaign`]), beside the sample and instrument files of `xpcs_sim::config`
//! (re-exported here, so that one `config` path names every file the twin reads).

pub mod campaign;

pub use xpcs_sim::config::{instrument, load_toml, parse_toml, sample};
