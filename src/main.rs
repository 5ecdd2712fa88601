//! The `dasnas` command line. Each subcommand is one file of `cli/`: its
//! flags and a `run` that calls the library and prints; flag groups that
//! several subcommands share are in `cli/flags.rs`. Every failure prints
//! `dasnas: error: …` and exits 1.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dasnas",
    version,
    about = "Training-free architecture scores (NASWOT, DAS) on hand-written kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score cells; one JSON object per cell (JSON Lines).
    Score(cli::score::ScoreArgs),
    /// Rank-correlate a scores file with ground truth (Kendall τ-b, Spearman ρ).
    Eval(cli::eval::EvalArgs),
    /// Time the scoring of sampled cells and print where the time goes.
    Bench(cli::bench::BenchArgs),
    /// Train one cell, or many under one recipe (a training bench), with SGD
    /// and record their training states (JSON Lines; runs on the CPU).
    Train(cli::train::TrainArgs),
    /// Choose the DAS combination rule of D and N_A by cross-validated Kendall τ.
    Fit(cli::fit::FitArgs),
    /// NASWOT search: sample N cells, keep the best by a metric (or evolve them).
    Search(cli::search::SearchArgs),
    /// List the training-free measures `score --measures` computes.
    Measures,
    /// List the CUDA GPUs and say whether NVRTC (run-time kernel compiler) loads.
    Devices,
    /// Stream every cell of a space (NB201: official index order; NB101: one
    /// spec per module hash, 423,624, cached on disk after the first run).
    Enumerate(cli::enumerate::EnumerateArgs),
    /// Join the result files of shards: every cell once, run stamps and
    /// duplicate scores checked, missing cells reported.
    Merge(cli::merge::MergeArgs),
}

fn main() -> ExitCode {
    cli::end_quietly_on_closed_stdout();
    let result = match Cli::parse().command {
        Command::Score(a) => cli::score::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Fit(a) => cli::fit::run(a),
        Command::Search(a) => cli::search::run(a),
        Command::Measures => cli::measures::run(),
        Command::Devices => cli::devices::run(),
        Command::Enumerate(a) => cli::enumerate::run(a),
        Command::Merge(a) => cli::merge::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dasnas: error: {e}");
            ExitCode::FAILURE
        }
    }
}
