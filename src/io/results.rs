//! Results files (in progress).
