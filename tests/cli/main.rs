//! The `dasnas` binary, run as a user runs it: every command, resume and
//! merge refusals, errors and exit codes, plots, training, the throughput
//! options, and the documentation's shell examples (one test binary; each
//! file a theme).
//!
//! The runners of the binary live here, not in `dasnas::testing`: only an
//! integration test knows where cargo built it (`CARGO_BIN_EXE_dasnas`).

mod commands;
mod cpu_speed;
mod devices;
mod docs_examples;
mod eval_plot;
mod examples;
mod fuzz;
mod measures;
mod misuse;
mod search;
mod spaces;
mod train;

/// Runs this package's `dasnas` binary with `args`.
pub fn dasnas(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .args(args)
        .output()
        .expect("run dasnas")
}

/// The stdout of a run that must have succeeded (else the test fails with
/// its exit status and stderr).
pub fn stdout_of(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Asserts that `dasnas args` exits non-zero, says `needle` on stderr and
/// does not panic.
pub fn fails_with(args: &[&str], needle: &str) {
    let o = dasnas(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: stderr was {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}
