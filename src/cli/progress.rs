//! Progress on a terminal: a bar with its total, rate and ETA when the
//! total is known, a spinner with the count and rate when not; nothing
//! when stderr is not a terminal (a pipe, a log file, a batch job).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar counting `unit`s (`cells`, `evaluations`) towards
/// `total` when known; hidden when stderr is not a terminal.
pub fn bar(total: Option<u64>, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            format!("{{bar:30}} {{pos}}/{{len}} {unit}, {{per_sec}}, ETA {{eta}}"),
        ),
        None => (
            ProgressBar::no_length(),
            format!("{{spinner}} {{pos}} {unit}, {{per_sec}}, {{elapsed}}"),
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
