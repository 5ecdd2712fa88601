//! `dasnas search`: NASWOT search (sample N cells, keep the best by a
//! metric) or score-guided evolution.

use super::flags::{print_notices, print_report, RunFlags, TruthFlags};
use clap::Args;
use dasnas::error::Result;
use dasnas::eval::search::{self, Evaluator, SearchOptions, Strategy};
use std::path::PathBuf;

/// The flags of `dasnas search`.
#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    run: RunFlags,
    /// Cells evaluated per run.
    #[arg(long)]
    n: usize,
    /// Independent runs (seeded from --seed).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Score that picks the cell: wot, d, n_units, das@A (= linear:A),
    /// units:A, ranksum:B (see `dasnas fit`), or auto: the rule measured
    /// best for the space and network size (docs/results.md, "Does DAS
    /// beat WOT?"; WOT where no rule beats it beyond noise).
    #[arg(long, default_value = "wot")]
    metric: String,
    /// `random` (NASWOT) or `evolution` (score-guided regularised evolution).
    #[arg(long, default_value = "random")]
    strategy: String,
    /// Evolution: population size.
    #[arg(long, default_value_t = 20)]
    population: usize,
    /// Evolution: tournament (sample) size.
    #[arg(long, default_value_t = 5)]
    tournament: usize,
    /// Scores cache (JSON Lines from `dasnas score`, same batch and seed):
    /// random search draws its cells from it; evolution looks cells up in
    /// it and scores the others with --data/--batch/--seed.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// CSV ground truth: report the chosen cells' values.
    #[arg(long)]
    truth: Option<PathBuf>,
    #[command(flatten)]
    columns: TruthFlags,
    /// Print the report (with every run) as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `dasnas search`.
pub fn run(a: SearchArgs) -> Result<()> {
    let space = a.run.space;
    let space_options = a.run.space_options()?;
    let rule = dasnas::eval::fit::Rule::parse_for(space, &space_options, &a.metric)?;
    let strategy = Strategy::parse(&a.strategy, a.population, a.tournament)?;
    let truth = match &a.truth {
        Some(p) => Some(dasnas::eval::read_truth(
            p,
            &a.columns.key,
            &a.columns.target,
        )?),
        None => None,
    };
    let (cache, pool) = match &a.scores {
        Some(p) => search::cache_and_pool(p, space, &space_options, truth.as_ref())?,
        None => (Default::default(), Vec::new()),
    };
    let opts = a.run.options()?;
    let from_cache = a.scores.is_some() && strategy == Strategy::Random;
    // A scorer is opened only when cells may have to be scored; the
    // scoring batch is checked either way.
    let mut run = if from_cache {
        opts.check()?;
        opts.scoring_batch()?;
        None
    } else {
        let run = opts.open()?;
        print_notices(run.notices());
        if let Some(p) = &a.scores {
            search::check_cache_stamp(p, run.stamp())?;
        }
        Some(run)
    };
    let bar = super::progress::bar(
        Some((a.n as u64).saturating_mul(a.runs as u64)),
        "evaluations",
    );
    let mut eval = Evaluator::new(cache, run.as_mut().map(|r| r.scorer()), a.run.seed)
        .on_evaluation(|| bar.inc(1));
    let search_opts = SearchOptions {
        space,
        n: a.n,
        runs: a.runs,
        rule,
        seed: a.run.seed,
        strategy,
        from_cache,
        space_options,
    };
    let r = search::search(&search_opts, &mut eval, &pool, truth.as_ref());
    bar.finish_and_clear();
    print_report(&r?, a.json)
}
