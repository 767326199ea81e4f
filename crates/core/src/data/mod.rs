//! The data types that the simulation and the analysis halves share.
//!
//! - [`FrameStack`]: dense photon counts, axis order (frame, row, col), in memory; any
//!   [`FrameSource`] streams frames one at a time so that a stack never has to fit in memory.
//! - [`EventList`]: sparse photons as per-pixel CSR (offsets, frame indices, counts).
//! - [`QPartition`]: label maps (0 = excluded, 1..=n = q-bin) and the mask.
//! - [`geometry`]: q and φ per pixel from the scattering geometry, bin centres.
//! - [`FrameSelection`]: begin/end/stride/avg of the APS pipeline, applied by [`SelectedFrames`].
//!
//! Pixels are indexed row-major: `pixel = row * cols + col`. Frames are numbered from 0; the
//! time of frame `t` is `t * frame_time_s`.

mod events;
mod frames;
pub mod geometry;
mod nonzero;
mod partition;
mod select;

pub use events::{check_csr, check_csr_layout, check_pixel_events, EventList};
pub use frames::{
    check_frame_buffer, max_into, pixel_maxima_by_frames, read_frames_singly, CountDtype, Counts,
    FrameSource, FrameStack, StackFrames, StackView,
};
pub use nonzero::{CountWord, NonzeroFrames, BLOCK as NONZERO_BLOCK};
pub use partition::{BinAxis, LabelMap, QPartition};
pub use select::{
    check_event_counts, CheckedCounts, FrameSelection, ResolvedSelection, SelectedFrames, MAX_COUNT,
};
