//! # xpcs-io: file formats of xpcs-twin
//!
//! What beamlines write in, what the field's software reads out.
//!
//! | module | reads | writes |
//! |---|---|---|
//! | [`atomic`] | | every output: temp file + rename, never over an input, `force` to replace; JSON summaries |
//! | [`npy`] | NPY/NPZ stacks (frame, row, col), label maps, masks, f32/f64 arrays; streaming [`npy::NpyFrames`] | NPY (g2, two-time exports) |
//! | [`h5filters`] | LZ4 (HDF5 filter 32004), bitshuffle + LZ4 (32008) and LZF (32000) chunks, decoded in-process | the same (test fixtures, event files) |
//! | [`eiger`] | Eiger/NeXus HDF5 `/entry/data/data` (+ master files with external links), streamed frame by frame as a [`xpcs_core::data::FrameSource`] | |
//! | [`input`] | any frame or event input of `correlate` by type; the detector's mask (pixel_mask, overflow, count cutoff) | |
//! | [`events`] | the project's sparse event HDF5 ([`xpcs_core::data::EventList`]), APS `(index, frame, count)` triplets | event HDF5, streamed by pixel block |
//! | [`maps`] | label maps and masks from NPY, NPZ or HDF5; APS / pySimpleMask q-maps with q; a checked [`xpcs_core::data::QPartition`] | |
//! | [`results`] | results HDF5 (APS 8-ID-I layout) | results HDF5 |
//!
//! Every reader checks declared sizes against the file before allocating and turns any defect
//! into one [`xpcs_core::Error`] naming the file, the object and the allowed range; every reader
//! records its path with [`atomic::note_input`] so that no writer of the same process can
//! replace it. The on-disk layouts are documented in `docs/formats.md`.

#![warn(missing_docs)]

pub mod assemble;
pub mod atomic;
pub mod eiger;
pub mod events;
pub mod h5filters;
mod h5util;
pub mod input;
pub mod maps;
pub mod npy;
pub mod results;
