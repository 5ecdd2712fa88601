//! `dasnas eval`: rank-correlate a scores file with ground truth.

use super::flags::TruthFlags;
use clap::Args;
use dasnas::error::Result;
use std::path::PathBuf;

/// The flags of `dasnas eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// JSON Lines scores (from `dasnas score`).
    #[arg(long)]
    scores: PathBuf,
    /// CSV ground truth.
    #[arg(long)]
    truth: PathBuf,
    #[command(flatten)]
    columns: TruthFlags,
    /// A null score (singular cell, ln 0): `lowest` ranks it below every
    /// number (its meaning), `drop` leaves the row out of that field.
    #[arg(long, default_value = "lowest")]
    nulls: dasnas::eval::NullPolicy,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw score (x) against the --target column (y) to this file,
    /// SVG or PNG by its extension: one panel per score field, its title
    /// holding N, Kendall τ and Spearman ρ as in the table and how many
    /// joined rows it leaves out (null scores: singular cells). Beside
    /// `ln_n_units`, `n_units` is drawn only if --plot-fields names it (it
    /// ranks the same).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Score fields to draw with --plot, comma-separated, one panel each in
    /// this order (default: every score field, `n_units` only without
    /// `ln_n_units`).
    #[arg(long, value_delimiter = ',', requires = "plot", value_name = "FIELDS")]
    plot_fields: Option<Vec<String>>,
}

/// Runs `dasnas eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    use dasnas::eval::{evaluate_tables, plot, read_scores, read_truth};
    // A wrong extension fails before the files are read.
    if let Some(path) = &a.plot {
        plot::PlotFormat::from_path(path)?;
    }
    // Read once: the plot draws the same rows the report ranks.
    let scores = read_scores(&a.scores)?;
    let truth = read_truth(&a.truth, &a.columns.key, &a.columns.target)?;
    let report = evaluate_tables(&scores, &truth, &a.columns.target, a.nulls);
    if let Some(path) = &a.plot {
        plot::plot(&scores, &truth, &report, path, a.plot_fields.as_deref())?;
    }
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}
