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
    #[error("invalid architecture {}: {msg} (at byte {pos})", quote_at(.arch, *.pos))]
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

/// Characters of a user's input a message quotes at most.
const QUOTE_MAX: usize = 80;

/// `s` as a message quotes a user's input: in backticks, control
/// characters escaped (`\n`, `\u{1b}`), at most 80 characters, the middle
/// of a longer input elided with `…` (a 3 MB line is not repeated whole).
pub fn quote(s: &str) -> String {
    let n = s.chars().count();
    if n <= QUOTE_MAX {
        return format!("`{}`", escaped(s));
    }
    let head: String = s.chars().take(QUOTE_MAX / 2).collect();
    let tail: String = s.chars().skip(n - QUOTE_MAX / 2).collect();
    format!("`{}…{}` ({} characters)", escaped(&head), escaped(&tail), n)
}

/// [`quote`] of the part of `s` around byte `pos`: the whole input when it
/// is short, else up to 40 characters either side of `pos` (the place an
/// error points at stays in view).
pub fn quote_at(s: &str, pos: usize) -> String {
    let n = s.chars().count();
    if n <= QUOTE_MAX {
        return quote(s);
    }
    let pos = pos.min(s.len());
    let at = s.char_indices().take_while(|(b, _)| *b < pos).count();
    let from = at.saturating_sub(QUOTE_MAX / 2);
    let to = (at + QUOTE_MAX / 2).min(n);
    let part: String = s.chars().skip(from).take(to - from).collect();
    format!(
        "`{}{}{}` ({} characters)",
        if from > 0 { "…" } else { "" },
        escaped(&part),
        if to < n { "…" } else { "" },
        n
    )
}

/// `s` with control characters escaped as Rust writes them.
fn escaped(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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

    #[test]
    fn quotes_are_bounded_and_escaped() {
        assert_eq!(quote("a\nb\u{1b}"), "`a\\nb\\u{1b}`");
        let long = "x".repeat(3_000_000);
        let q = quote(&long);
        assert!(q.len() < 120 && q.contains("3000000 characters"), "{q}");
        let mut s = "a".repeat(1000);
        s.push_str("BAD");
        s.push_str(&"b".repeat(1000));
        let q = quote_at(&s, 1000);
        assert!(
            q.contains("BAD") && q.starts_with("`…") && q.len() < 120,
            "{q}"
        );
        let e = Error::Arch {
            arch: s.clone(),
            pos: 1000,
            msg: "unknown op".into(),
        };
        assert!(e.to_string().len() < 200, "{e}");
    }
}
