//! Structured library errors.
//!
//! Every error that user input can cause is a variant with fields, so that the message names
//! the file (or the object), the field and the allowed range. The binary maps any library error
//! to exit code 2 ("bad input"); the library never panics on user input.

use std::path::PathBuf;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error while reading or writing `path`.
    // The OS error is part of the message, not a `source`: a report that prints the chain
    // would otherwise say it twice.
    #[error("{}: {err}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A value outside its allowed range, in a file (or an in-memory object named by `origin`).
    #[error("{origin}: `{field}` = {value} is out of range (allowed: {allowed})")]
    OutOfRange {
        /// The file (or object) the value came from.
        origin: String,
        /// The field or key.
        field: String,
        /// The offending value, formatted.
        value: String,
        /// The allowed range, in words.
        allowed: String,
    },
    /// Two arrays that must agree in shape do not.
    #[error("{origin}: shape mismatch for {what}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// The file (or object) involved.
        origin: String,
        /// What was being compared.
        what: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A file whose content is not what the reader understands.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in one line.
        message: String,
    },
    /// An input that is well-formed but cannot be used (e.g. no pixel in any q-bin).
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or object) involved.
        origin: String,
        /// What is wrong, in one line.
        message: String,
    },
    /// An error reported by the HDF5 library.
    #[error("{}: HDF5: {message}", path.display())]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// The HDF5 library's message.
        message: String,
    },
    /// Refusing to overwrite a file.
    #[error("{}: {reason}", path.display())]
    Overwrite {
        /// The file that would have been overwritten.
        path: PathBuf,
        /// Why we refuse (input file, exists without --force).
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::OutOfRange`].
    pub fn out_of_range(
        origin: impl Into<String>,
        field: impl Into<String>,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        Error::OutOfRange {
            origin: origin.into(),
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            origin: origin.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    /// Shorthand for [`Error::Format`].
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
