//! `dasnas fit`: choose the DAS combination rule of D and N_A by
//! cross-validated Kendall τ.

use super::flags::{print_report, TruthFlags};
use clap::Args;
use dasnas::error::Result;
use std::path::PathBuf;

/// The flags of `dasnas fit`.
#[derive(Args)]
pub struct FitArgs {
    /// JSON Lines scores (from `dasnas score`; needs `d` and `n_units`, and `wot` for B).
    #[arg(long)]
    scores: PathBuf,
    /// CSV ground truth.
    #[arg(long)]
    truth: PathBuf,
    #[command(flatten)]
    columns: TruthFlags,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `dasnas fit`.
pub fn run(a: FitArgs) -> Result<()> {
    let r = dasnas::eval::fit::fit_files(
        &a.scores,
        &a.truth,
        &a.columns.key,
        &a.columns.target,
        a.folds,
        a.seed,
    )?;
    print_report(&r, a.json)
}
