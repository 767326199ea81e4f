//! # xpcs-io: file formats of xpcs-twin
//!
//! What beamlines write in, what the field's software reads out.
//!
//! | module | reads | writes |
//! |---|---|---|
//! | [`atomic`] | | every output: temp file + rename, never over an input, `force` to replace; JSON summaries |
//! | [`npy`] | NPY/NPZ stacks (frame, row, col), label maps, masks, f32/f64 arrays; streaming [`npy::NpyFrames`] | NPY (g2, two-time exports) |
//! | [`h5filters`] | LZ4 (HDF5 filter 32004), bitshuffle + LZ4 (32008) and LZF (32000) chunks, decoded in-process | the same (test fixtures, event files) |
//! | [`eiger`] | Eiger/NeXus HDF5 `/entry/data/data` (+ master files with external links), streamed frame by frame as a [`xpcs_core::data::FrameSource`] | master + data files as a DECTRIS Eiger writes them |
//! | [`events`] | the project's sparse event HDF5 ([`xpcs_core::data::EventList`]) by pixel block ([`events::EventSource`]) | event HDF5, streamed by pixel block |
//! | [`records`] | any sparse photon records in frame order → pixel blocks in bounded memory ([`records::PixelBlocks`]) | frame-major records of an event list ([`records::FrameMajor`]) |
//! | [`rigaku`] | Rigaku 64-bit sparse `.bin` (APS 8-ID-I; one module or the 3M's six files) | the same |
//! | [`imm`] | IMM (legacy APS cameras; sparse or full frames) | the same |
//! | [`esrf`] | ESRF ID10 sparse HDF5 (`frame_ptr`/`index`/`intensity`, numbered files) | |
//! | [`triplets`] | APS `(index, frame, count)` triplets, HDF5 or (3, N) NPY | |
//! | [`input`] | any frame or event input by extension and content; the detector's mask (pixel_mask, overflow, count cutoff) | |
//! | [`output`] | | photons in a detector's own format: Eiger master + data files, Rigaku, IMM, NPY, events |
//! | [`partial`] | a detector shard's exact correlator sums (partial files, merged into one results file) | the same |
//! | [`memory`] | | (process setting: freed buffers go back to the system) |
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
pub mod esrf;
pub mod events;
pub mod h5filters;
mod h5util;
pub mod imm;
pub mod input;
pub mod maps;
pub mod memory;
pub mod npy;
pub mod output;
pub mod partial;
pub mod records;
pub mod results;
pub mod rigaku;
pub mod triplets;
