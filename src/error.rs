//! The crate's one error type. Every failure is an `Err` carrying a message
//! that names the bad input; nothing on a user path panics.
//!
//! An error keeps its cause: the I/O error ([`Error::Io`]), the CUDA
//! driver's error code ([`Error::Driver`]), the CSV reader's error
//! ([`Error::Csv`]) stay reachable through [`std::error::Error::source`].
//! What was being done when it happened (which cell, which file, which
//! line) is added with [`Error::context`] / [`Context::context`], which
//! wraps the error instead of flattening it into another variant's string:
//! the message reads `context: cause`, and [`Error::root`] still tells a
//! caller what kind of failure it was.

use std::path::PathBuf;

/// Every way a `dasnas` call can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or invalid architecture description.
    #[error("invalid architecture `{arch}`: {msg} (at byte {pos})")]
    Arch {
        /// The architecture string as given.
        arch: String,
        /// Byte offset in `arch` where the problem was found (0 for the whole string).
        pos: usize,
        /// What is wrong there.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
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
        /// What was being done (the call, the kernel, the allocation).
        what: String,
        /// The driver's error.
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// A CSV file (scores, truth tables) that could not be read or parsed.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV reader's error.
        #[source]
        source: csv::Error,
    },
    /// A bug, not a bad input: a broken internal invariant (a plan step
    /// without its buffer, a kernel launched on another device, …), or a
    /// panic caught where a library call returns to its caller (the Python
    /// package, the C ABI) by [`catch_panic`]. Python raises it as
    /// `dasnas.InternalError`; the C ABI's message starts with "dasnas
    /// internal error".
    #[error("dasnas internal error (a bug; please report it): {0}")]
    Internal(String),
    /// An error with what was being done when it happened (the cell, the
    /// file and line, the network node); the cause is its source.
    #[error("{context}: {source}")]
    Context {
        /// What was being done (`cell …`, `<file> line <n>`, ``node `…` ``).
        context: String,
        /// The error that happened while doing it.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error, with what was being done when it happened.
    pub fn context(self, what: impl Into<String>) -> Error {
        Error::Context {
            context: what.into(),
            source: Box::new(self),
        }
    }

    /// The error under every [`Error::Context`]: the kind of failure
    /// (`Shape`, `Arg`, `Io`, …), for callers that act on it.
    pub fn root(&self) -> &Error {
        let mut e = self;
        while let Error::Context { source, .. } = e {
            e = source;
        }
        e
    }
}

/// Runs `f`, turning a panic into [`Error::Internal`] with the panic's
/// message, so that nothing unwinds past a foreign-language boundary. A
/// payload whose message or drop panics again is contained too.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = catch_unwind(AssertUnwindSafe(|| {
                if let Some(s) = payload.downcast_ref::<&str>() {
                    (*s).to_string()
                } else if let Some(s) = payload.downcast_ref::<String>() {
                    s.clone()
                } else {
                    "a panic without a message".into()
                }
            }))
            .unwrap_or_else(|_| "a panic".into());
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Err(Error::Internal(msg))
        }
    }
}

/// Adds context to the error of a `Result` (see [`Error::context`]).
pub trait Context<T> {
    /// On `Err`, wraps the error with `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
    /// On `Err`, wraps the error with what `what()` says (built only then).
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(what()))
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let e = catch_panic::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert!(matches!(e, Error::Internal(ref m) if m == "boom 7"), "{e}");
        assert!(e.to_string().starts_with("dasnas internal error (a bug"));
        assert_eq!(catch_panic(|| Ok(3)).unwrap(), 3);
        assert!(matches!(
            catch_panic::<()>(|| Err(Error::Arg("x".into()))),
            Err(Error::Arg(_))
        ));
    }

    #[test]
    fn context_keeps_the_cause_and_its_kind() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Error::io("a.txt", io).context("line 3").context("cell |x|");
        assert_eq!(e.to_string(), "cell |x|: line 3: a.txt: gone");
        assert!(matches!(e.root(), Error::Io { .. }));
        // The chain: context → context → Io → the io::Error.
        let mut depth = 0;
        let mut cur: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cur {
            depth += 1;
            cur = c.source();
        }
        assert_eq!(depth, 4);
        let r: Result<()> = Err(Error::Shape("bad".into()));
        let r = r.with_context(|| "node `n3`");
        assert!(matches!(r.as_ref().unwrap_err().root(), Error::Shape(_)));
        assert_eq!(r.unwrap_err().to_string(), "node `n3`: shape: bad");
    }
}
