//! `dasnas score`: score cells, one JSON object per cell (JSON Lines).

use super::flags::{print_notices, RunFlags, TrainFlags};
use clap::Args;
use dasnas::error::Result;
use dasnas::io::Resume;
use dasnas::run::output::{score_cells, LineSink, ResultFile, Resuming, Selection, WriterLines};
use dasnas::scorer::Swap;
use dasnas::space::{self, Arch, Archs};
use std::path::PathBuf;

/// The flags of `dasnas score`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("cells").required(true).args(["arch", "archs", "sample", "all", "index", "indices"])))]
pub struct ScoreArgs {
    #[command(flatten)]
    run: RunFlags,
    /// One architecture string.
    #[arg(long)]
    arch: Option<String>,
    /// A file of architecture strings, one per line (`-` reads stdin; blank and `#` lines skipped).
    #[arg(long)]
    archs: Option<PathBuf>,
    /// Score N distinct cells sampled with --seed.
    #[arg(long)]
    sample: Option<usize>,
    /// Score every cell of the space (NB201: 15,625 in official index
    /// order; NB101: the 423,624 unique specs, see `enumerate`), streamed.
    #[arg(long)]
    all: bool,
    /// The cell of this official index (NB201).
    #[arg(long)]
    index: Option<usize>,
    /// Cells by official index: comma-separated indices and ranges A-B
    /// (inclusive), e.g. `0,7,100-199`.
    #[arg(long)]
    indices: Option<String>,
    /// Score one cell per isomorphism class (the first in list order); its
    /// line carries the class `key`.
    #[arg(long)]
    unique: bool,
    /// Like --unique, but write a line for every cell of the list, each
    /// with its class's scores (`scored_as`: the cell that was scored, when
    /// another). Holds the list in memory to group it.
    #[arg(long)]
    expand: bool,
    /// Score only shard K of N of the cell list (after --unique/--expand
    /// grouping): positions K, K+N, …; 0 ≤ K < N, so a Slurm array id maps
    /// directly. Join the shards' files with `dasnas merge`.
    #[arg(long)]
    shard: Option<dasnas::select::Shard>,
    /// α of DAS_α = D + α·B·ln N_A.
    #[arg(long, default_value_t = dasnas::score::metrics::DEFAULT_ALPHA)]
    alpha: f64,
    /// Also write `das@A` for each of these α (comma-separated).
    #[arg(long, value_delimiter = ',')]
    extra_alphas: Vec<f64>,
    /// Append results to this file, flushed per block of cells (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the cells already in --out.
    #[arg(long, requires = "out")]
    resume: bool,
    /// Average every score over R weight seeds (S, S+1, …, S+R−1 for
    /// --seed S): each field is the mean, `<field>_std` its standard
    /// deviation, `singular_repeats` the repeats with a singular K_H.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Also count SWAP (Peng et al., ICLR 2024: distinct per-unit sign
    /// patterns over the batch) from the same pass, as `swap`. Costs a
    /// transposition and a sort of one pattern per unit (on a GPU, a copy
    /// of each cell's codes to the host).
    #[arg(long)]
    swap: bool,
    /// With --swap-sigma: also write SWAP regularised by the parameter
    /// count, `swap_reg = swap · exp(−(P − μ)²/σ)`, P in thousands of
    /// parameters (SWAP's code). No default: SWAP tunes μ and σ per space.
    #[arg(long, requires_all = ["swap", "swap_sigma"])]
    swap_mu: Option<f64>,
    /// σ of --swap-mu's regularisation (> 0).
    #[arg(long, requires = "swap_mu")]
    swap_sigma: Option<f64>,
    /// Also compute these training-free measures, comma-separated, or
    /// `all` (`dasnas measures` lists them; docs/measures.md defines them):
    /// each becomes a field of the line under its name. The scoring pass's
    /// own (wot, d, n_units, das, params, flops) are always written; `swap`
    /// turns SWAP on.
    #[arg(long, value_name = "LIST")]
    measures: Option<String>,
    /// Train each cell this many SGD steps before scoring it (0: score at
    /// initialisation, the plain training-free scores). The JSON then gains
    /// train_steps, train_loss and train_acc (loss and accuracy of the last
    /// training batch, before its update) and train_ms.
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    #[command(flatten)]
    train: TrainFlags,
}

/// The cells `score` is asked for, built with the run's space options (a
/// list, or the space's enumeration streamed), and how many there are.
fn cells(a: &ScoreArgs) -> Result<(Archs, Option<u64>)> {
    let space = a.run.space;
    let opts = a.run.space_options()?;
    let archs = if let Some(s) = &a.arch {
        vec![Arch::parse(space, s)?]
    } else if let Some(p) = &a.archs {
        dasnas::io::read_archs(space, p)?
    } else if let Some(n) = a.sample {
        space::sample(space, n, a.run.seed)?
    } else if let Some(i) = a.index {
        dasnas::select::by_index(space, &[i], &opts).map_err(|e| e.context("--index"))?
    } else if let Some(spec) = &a.indices {
        let ranges = dasnas::select::parse_indices(spec)?;
        let cells = dasnas::select::by_indices(space, &ranges, &opts)
            .map_err(|e| e.context("--indices"))?;
        let n = ranges.iter().map(|&(a, b)| (b - a) as u64 + 1).sum();
        // Streamed: built with the space options as they come.
        return Ok((cells, Some(n)));
    } else {
        let n = space.cell_counts().map(
            |(cells, classes)| {
                if a.unique || a.expand {
                    classes
                } else {
                    cells
                }
            },
        );
        return Ok((space.cells(&opts)?, n));
    };
    let n = archs.len() as u64;
    Ok((
        Box::new(a.run.sized_all(archs)?.into_iter().map(Ok)),
        Some(n),
    ))
}

/// Runs `dasnas score`.
pub fn run(a: ScoreArgs) -> Result<()> {
    dasnas::run::check_extra_alphas("--extra-alphas", &a.extra_alphas)?;
    let (cells, listed) = cells(&a)?;
    let mut opts = a.run.options()?;
    opts.alpha = a.alpha;
    opts.repeats = a.repeats;
    if a.train_steps > 0 {
        opts.training = Some(a.train.options(a.train_steps)?);
    }
    if a.swap {
        opts.swap = Some(Swap::new(a.swap_mu.zip(a.swap_sigma))?);
    }
    if let Some(list) = &a.measures {
        opts.measures =
            dasnas::measures::MeasureSet::parse(list).map_err(|e| e.context("--measures"))?;
    }
    let mut run = opts.open()?;
    print_notices(run.notices());
    let selection = Selection {
        unique: a.unique,
        expand: a.expand,
        shard: a.shard,
    };
    // The bar's total: the cells left to score when that is known up
    // front (a list is grouped into classes only as it streams, so
    // `--unique` on a list, and `--expand`, count without one).
    let units = match (a.unique, a.expand, a.all) {
        (false, false, _) | (true, false, true) => listed,
        _ => None,
    };
    let total = |done: usize| {
        units.map(|n| {
            a.shard
                .map_or(n, |s| s.share(n))
                .saturating_sub(done as u64)
        })
    };
    let (resumed, mut sink): (Resume, Box<dyn LineSink>) = match &a.out {
        Some(path) => {
            let resuming = match (a.resume, a.expand) {
                (false, _) => Resuming::No,
                (true, false) => Resuming::Yes,
                (true, true) => Resuming::KeepingLines,
            };
            let file = ResultFile::open(path, run.stamp(), resuming)?;
            let resumed = file.resumed().clone();
            if a.resume {
                if resumed.dropped_partial_line {
                    eprintln!(
                        "dasnas: {}: dropped an unfinished last line",
                        path.display()
                    );
                }
                eprintln!(
                    "dasnas: resuming: {} cells already in {}",
                    resumed.done.len(),
                    path.display()
                );
            }
            (resumed, Box::new(file))
        }
        None => (
            Resume::default(),
            Box::new(WriterLines::new(std::io::stdout().lock(), "stdout")),
        ),
    };
    let bar = super::progress::bar(total(resumed.done.len()), "cells");
    let tick = |n: usize| bar.inc(n as u64);
    let written = score_cells(
        &mut run,
        cells,
        selection,
        &a.extra_alphas,
        &resumed,
        sink.as_mut(),
        tick,
    );
    bar.finish_and_clear();
    written.map(|_| ())
}
