//! The digital twin: a whole high-pressure XPCS campaign simulated and analysed, every
//! recovered number beside its ground truth.
//!
//! Input: a campaign file (`models/<campaign>.toml`, [`crate::config::campaign`]) and a scale.
//! Output: per scan a [`setup::ScanSetup`] (dynamics, scene, partition, exact truth).
//!
//! Reference: DESIGN.md §1 (pipeline).

pub mod setup;

pub use setup::{CampaignSetup, Roi, Scale, ScanSetup};
