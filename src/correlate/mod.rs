//! Correlators: the analysis half that real and simulated data share.
//!
//! Input: photons ([`crate::data::FrameStack`], any [`crate::data::FrameSource`], or
//! [`crate::data::EventList`]) and a [`crate::data::QPartition`]. Output: per q-bin, g2 at a
//! list of lags, two-time maps, intensities. This module never imports `model`, `speckle` or
//! `instrument`: it sees photons, label maps and frame times only.
//!
//! [`naive`] holds the brute-force definitions that every fast path is tested against.

pub mod naive;
