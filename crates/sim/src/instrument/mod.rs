//! Everything between the sample's speckle and the numbers a detector writes.
//!
//! - [`xcom`]: attenuation tables (NIST XCOM, 10–100 keV).
//! - [`beam`], [`dac`], [`detector`]: validated runtime types built from the configs in
//!   [`crate::config::instrument`].
//! - [`coherence`]: contrast from the beam's coherence, speckle size.
//! - [`geometry`]: pixel → 2θ, φ, q; q-partitions ([`xpcs_core::data::QPartition`]).
//! - [`scene`]: the per-pixel scene the speckle simulator consumes (mean counts, q, contrast,
//!   background fractions).
//! - [`counting`]: the post-Poisson counting chain on [`xpcs_core::data::EventList`].
//! - [`kossel`]: Kossel lines and spots (injection and automatic masking).
//! - [`background`]: the incoherent background fraction computed from the cell geometry.
//! - [`dose`]: absorbed dose rate in the illuminated sample column.
//! - [`describe`]: a printable report of what the twin will do.

pub mod background;
pub mod beam;
pub mod coherence;
pub mod counting;
pub mod dac;
pub mod describe;
pub mod detector;
pub mod dose;
pub mod geometry;
pub mod kossel;
pub mod scene;
pub mod xcom;

pub use beam::Beam;
pub use dac::Dac;
pub use detector::Detector;
pub use geometry::{Geometry, QMaps};
