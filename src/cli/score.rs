//! `dasnas score`: score cells, one JSON object per cell (JSON Lines).

use super::flags::{print_notices, RunFlags, TrainFlags};
use clap::Args;
use dasnas::error::Result;
use dasnas::run::output::{score_cells, LineSink, ResultFile, Resuming, Selection, WriterLines};
use dasnas::scorer::Swap;
use dasnas::space::{self, Arch, Archs};
use std::io::IsTerminal;
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
    /// Train each cell this many SGD steps before scoring it (0: score at
    /// initialisation, the plain training-free scores). The JSON then gains
    /// train_steps, train_loss and train_acc (loss and accuracy of the last
    /// training batch, before its update) and train_ms.
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    #[command(flatten)]
    train: TrainFlags,
}

/// The cells `score` is asked for, built with the run's space options: a
/// list, or the space's enumeration streamed.
fn cells(a: &ScoreArgs) -> Result<Archs> {
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
        let indices = dasnas::select::parse_indices(spec)?;
        dasnas::select::by_index(space, &indices, &opts).map_err(|e| e.context("--indices"))?
    } else {
        return space.cells(&opts);
    };
    Ok(Box::new(a.run.sized_all(archs)?.into_iter().map(Ok)))
}

/// Runs `dasnas score`.
pub fn run(a: ScoreArgs) -> Result<()> {
    dasnas::run::check_extra_alphas("--extra-alphas", &a.extra_alphas)?;
    let cells = cells(&a)?;
    let mut opts = a.run.options()?;
    opts.alpha = a.alpha;
    opts.repeats = a.repeats;
    if a.train_steps > 0 {
        opts.training = Some(a.train.options(a.train_steps)?);
    }
    if a.swap {
        opts.swap = Some(Swap::new(a.swap_mu.zip(a.swap_sigma))?);
    }
    let mut run = opts.open()?;
    print_notices(run.notices());
    let selection = Selection {
        unique: a.unique,
        expand: a.expand,
        shard: a.shard,
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::no_length()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let tick = |n: usize| bar.inc(n as u64);
    match &a.out {
        Some(path) => {
            let resuming = match (a.resume, a.expand) {
                (false, _) => Resuming::No,
                (true, false) => Resuming::Yes,
                (true, true) => Resuming::KeepingLines,
            };
            let mut file = ResultFile::open(path, run.stamp(), resuming)?;
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
            let sink: &mut dyn LineSink = &mut file;
            score_cells(
                &mut run,
                cells,
                selection,
                &a.extra_alphas,
                &resumed,
                sink,
                tick,
            )?;
        }
        None => {
            let mut sink = WriterLines::new(std::io::stdout().lock(), "stdout");
            let none = Default::default();
            score_cells(
                &mut run,
                cells,
                selection,
                &a.extra_alphas,
                &none,
                &mut sink,
                tick,
            )?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}
