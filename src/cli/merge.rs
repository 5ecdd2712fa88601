//! `dasnas merge`: join the result files of a run's shards.

use super::flags::print_report;
use clap::Args;
use dasnas::error::{Error, Result};
use std::path::PathBuf;

/// The flags of `dasnas merge`.
#[derive(Args)]
pub struct MergeArgs {
    /// Result files (JSON Lines from `score`) of one run's shards.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The merged file (replaced only when the merge succeeds).
    #[arg(long)]
    out: PathBuf,
    /// The cells the run was to score (arch strings, one per line, e.g. from
    /// `dasnas enumerate`): report those no input has.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Write the expected cells that no input has to this file, one per
    /// line, ready for `score --archs` (or the shard's `--resume`).
    #[arg(long, requires = "expect")]
    missing: Option<PathBuf>,
    /// Fail when an expected cell is missing (the merged file is still
    /// written).
    #[arg(long, requires = "expect")]
    complete: bool,
    /// Relative difference up to which two lines of one cell agree (lines
    /// of a GPU and of the CPU differ by rounding).
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    /// Print the report as JSON (with the missing cells).
    #[arg(long)]
    json: bool,
}

/// Runs `dasnas merge`.
pub fn run(a: MergeArgs) -> Result<()> {
    let report = dasnas::results::merge(&a.inputs, a.expect.as_deref(), &a.out, a.tolerance)?;
    if let Some(p) = &a.missing {
        let text: String = report.missing.iter().map(|m| format!("{m}\n")).collect();
        std::fs::write(p, text).map_err(|e| Error::io(p, e))?;
    }
    if a.json {
        print_report(&report, true)?;
    } else {
        eprintln!("dasnas: {report}");
        for m in report.missing.iter().take(5) {
            eprintln!("dasnas: missing {m}");
        }
        if report.missing.len() > 5 {
            eprintln!("dasnas: … and {} more", report.missing.len() - 5);
        }
    }
    if a.complete && !report.missing.is_empty() {
        return Err(Error::Data(format!(
            "{} of {} expected cells have no line (merged file written: {})",
            report.missing.len(),
            report.expected.unwrap_or(0),
            a.out.display()
        )));
    }
    Ok(())
}
