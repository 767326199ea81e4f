//! Speckle synthesis (seeded): complex fields per pixel and mode, static fields, incoherent
//! background, frame integration, and photons from an ideal detector.
//!
//! Input: a [`synth::Scene`] (per-pixel plain data from the instrument), the scan's
//! [`crate::model::Dynamics`] and an [`synth::Exposure`]. Output: photons as per-pixel CSR
//! ([`xpcs_core::data::EventList`], or [`synth::PixelBlock`]s handed to a sink for detectors that do
//! not fit in memory), or a dense [`xpcs_core::data::FrameStack`] (frame, row, col).
//!
//! Reference: docs/model.md §3.

pub mod generators;
pub mod stable;
pub mod synth;

pub use generators::{CirculantPlan, Generator};
pub use stable::symmetric_stable;
pub use synth::{
    available_memory_bytes, check_memory, check_size, Exposure, GeneratorKind, Method, PerPixel,
    PixelBlock, Scene, SimOptions, Simulator, MAX_FRAMES, MAX_MEAN_COUNTS, MAX_PIXELS,
    MEAN_COUNTS_RANGE,
};

#[cfg(test)]
mod tests;
