//! The crate's one error type. Every failure is an `Err` carrying a message
//! that names the bad input; nothing on a user path panics.

use std::path::PathBuf;

/// Every way a `dasnas` call can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or invalid architecture description.
    #[error("invalid architecture `{arch}`: {msg} (at byte {pos})")]
    Arch {
        arch: String,
        pos: usize,
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Input data (images, scores, truth tables) that is malformed or too short.
    #[error("data: {0}")]
    Data(String),
    /// Tensor shapes that do not fit an op.
    #[error("shape: {0}")]
    Shape(String),
    /// A bad command-line or API argument.
    #[error("invalid argument: {0}")]
    Arg(String),
    /// A compute device that is missing or failed.
    #[error("device: {0}")]
    Device(String),
    /// A CUDA driver call that failed: what was being done, and the
    /// driver's error.
    #[error("device: CUDA {what}: {source}")]
    Driver {
        what: String,
        #[source]
        source: cudarc::driver::DriverError,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
