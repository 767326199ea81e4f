//! Sparse event files (in progress).
