//! The command line's pipelines as library functions: `xpcs-twin correlate` is
//! [`correlate::run`], `xpcs-twin simulate` is [`simulate::run`], `xpcs-twin plan` is
//! [`plan::run`] (`xpcs-twin twin` is [`crate::twin::run_campaign`]). The binary only parses
//! arguments into these functions' option structs and prints; the Python package calls the
//! same functions, so both give the same numbers and the same error messages.

pub mod correlate;
pub mod plan;
pub mod simulate;

/// Progress of a long stage (frames read, pixel blocks correlated, blocks simulated) and the
/// notices a run gives on the way. The command line draws bars and prints the notices on
/// stderr; library callers may pass [`Quiet`].
pub trait Progress: Sync {
    /// A stage of `len` steps counted in `unit` starts (e.g. "correlate", 1000, "frames").
    fn start(&self, stage: &str, len: u64, unit: &str);
    /// `n` more steps are done.
    fn inc(&self, n: u64);
    /// The stage is over.
    fn finish(&self);
    /// A one-line notice for the user (e.g. what the detector mask removed).
    fn note(&self, _message: &str) {}
}

/// No progress output, no notices.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: u64, _: &str) {}
    fn inc(&self, _: u64) {}
    fn finish(&self) {}
}
