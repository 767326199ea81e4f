//! The data types that the simulation and the analysis halves share.
//!
//! - [`FrameStack`]: dense photon counts, axis order (frame, row, col), in memory; any
//!   [`FrameSource`] streams frames one at a time so that a stack never has to fit in memory.
//! - [`EventList`]: sparse photons as per-pixel CSR (offsets, frame indices, counts).
//! - [`QPartition`]: label maps (0 = excluded, 1..=n = q-bin) and the mask.
//!
//! Pixels are indexed row-major: `pixel = row * cols + col`. Frames are numbered from 0; the
//! time of frame `t` is `t * frame_time_s`.

mod events;
mod frames;
mod nonzero;
mod partition;

pub use events::{check_csr, EventList};
pub use frames::{CountDtype, FrameSource, FrameStack, StackFrames};
pub use nonzero::{CountWord, NonzeroFrames, BLOCK as NONZERO_BLOCK};
pub use partition::{BinAxis, LabelMap, QPartition};
