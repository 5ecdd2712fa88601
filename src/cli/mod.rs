//! The subcommands of the `dasnas` binary, one file each: its flags (a
//! clap `Args` struct) and its `run`, which calls the library and prints.
//! A new subcommand is a file here and one variant of `Command` in
//! `main.rs`. No scoring, training or file logic lives here: what a
//! command does that the Python package or the C ABI could also want is
//! in the library (`dasnas::run`, `dasnas::results`, `dasnas::eval`, …).

pub mod bench;
pub mod devices;
pub mod enumerate;
pub mod eval;
pub mod fit;
pub mod flags;
pub mod measures;
pub mod merge;
pub mod progress;
pub mod score;
pub mod search;
pub mod train;

/// Makes a write to a closed stdout (`dasnas score | head`) end the
/// process quietly, as the Unix convention has it, instead of an error or
/// a panic of `println!`: SIGPIPE gets its default action back (Rust
/// ignores it). Results written to files are flushed per block, so
/// nothing already written is lost.
pub fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL has no
    // preconditions; it runs first in `main`, before any other thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
