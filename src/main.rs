//! The `dasnas` command line: parses the flags, calls the library, prints.
//! Every command's work is a library call (`dasnas::Scorer`,
//! `dasnas::bench`, `dasnas::train`, `dasnas::eval`); this file holds the
//! flags, their defaults and checks, and the output formats.

use clap::{Args, Parser, Subcommand};
use dasnas::data::cifar::Dataset;
use dasnas::error::{Error, Result};
use dasnas::space::{self, Arch, Space, SpaceOptions};
use dasnas::Tensor;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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
    Score(ScoreArgs),
    /// Rank-correlate a scores file with ground truth (Kendall τ-b, Spearman ρ).
    Eval(EvalArgs),
    /// Time the scoring of sampled cells and print where the time goes.
    Bench(BenchArgs),
    /// Train one cell, or many under one recipe (a training bench), with SGD
    /// and record their training states (JSON Lines; runs on the CPU).
    Train(TrainArgs),
    /// Choose the DAS combination rule of D and N_A by cross-validated Kendall τ.
    Fit(FitArgs),
    /// NASWOT search: sample N cells, keep the best by a metric (or evolve them).
    Search(SearchArgs),
    /// List the CUDA GPUs and say whether NVRTC (run-time kernel compiler) loads.
    Devices,
    /// Stream every cell of a space (NB201: official index order; NB101: one
    /// spec per module hash, 423,624, cached on disk after the first run).
    Enumerate(EnumerateArgs),
    /// Join the result files of shards: every cell once, run stamps and
    /// duplicate scores checked, missing cells reported.
    Merge(MergeArgs),
}

/// What `enumerate` prints per cell.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ListFormat {
    /// The arch string, one per line (what `score --archs` reads).
    Text,
    /// A JSON object per line: `arch`, `key`, and `index` (NB201) or `hash`
    /// (NB101).
    Json,
}

#[derive(Args)]
struct EnumerateArgs {
    /// Search space (nb201 or nb101; DARTS is too large to list).
    #[arg(long, default_value = "nb201")]
    space: Space,
    /// One cell per isomorphism class, the first in the space's order
    /// (NB201: 6,466 of 15,625). NB101's enumeration is one per class
    /// already.
    #[arg(long)]
    unique: bool,
    /// Only shard K of N (positions K, K+N, … of the list), 0 ≤ K < N.
    #[arg(long)]
    shard: Option<dasnas::select::Shard>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ListFormat,
    /// Write to this file (replaced) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct MergeArgs {
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

#[derive(Args)]
struct SearchArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Cells evaluated per run.
    #[arg(long)]
    n: usize,
    /// Independent runs (seeded from --seed).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Score that picks the cell: wot, d, n_units, das@A (= linear:A),
    /// units:A, ranksum:B (see `dasnas fit`), or auto: the rule measured
    /// best for the space and network size (README, "DAS on NB101 and
    /// DARTS"; WOT where no rule beats it beyond noise).
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
    /// Truth column holding the architecture string.
    #[arg(long, default_value = "arch_str")]
    key: String,
    /// Truth column to report.
    #[arg(long, default_value = "cifar10_test_acc")]
    target: String,
    /// Print the report (with every run) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FitArgs {
    /// JSON Lines scores (from `dasnas score`; needs `d` and `n_units`, and `wot` for B).
    #[arg(long)]
    scores: PathBuf,
    /// CSV ground truth.
    #[arg(long)]
    truth: PathBuf,
    /// Truth column holding the architecture string.
    #[arg(long, default_value = "arch_str")]
    key: String,
    /// Truth column to rank against.
    #[arg(long, default_value = "cifar10_test_acc")]
    target: String,
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

/// Options shared by the commands that run networks.
#[derive(Args, Clone)]
struct RunArgs {
    /// Search space.
    #[arg(long, default_value = "nb201")]
    space: Space,
    /// Scoring batch: `gaussian` (seeded N(0,1) images) or a CIFAR binary file.
    #[arg(long, default_value = "gaussian")]
    data: String,
    /// Dataset of a CIFAR file (normalisation constants, label bytes).
    #[arg(long, default_value = "cifar10")]
    dataset: Dataset,
    /// Images in the scoring batch (B); a CIFAR file gives its first B images.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed of the weights, the Gaussian inputs and the sampled cells.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores). Scores do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Compute device: `auto` (the first GPU when one works, else the CPU,
    /// with a notice on stderr), `cpu`, `cuda` (GPU 0) or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: dasnas::runtime::DeviceKind,
    /// Cells in flight on a GPU (one CUDA stream and host thread each).
    #[arg(long, default_value_t = dasnas::exec::cuda::executor::DEFAULT_LANES)]
    lanes: usize,
    /// DARTS space: channels C of the first cells (DARTS's --init_channels;
    /// default 16). Short for --space-option init_channels=C.
    #[arg(long)]
    init_channels: Option<usize>,
    /// DARTS space: number of cells (DARTS's --layers; default 8). Short
    /// for --space-option layers=L.
    #[arg(long)]
    layers: Option<usize>,
    /// NB101 weight init: `default` (uniform ±1/√fan_in, as every space) or
    /// `naswot` (the NASWOT code's He-normal fan-out convs, N(0, 0.01)
    /// classifier). Short for --space-option init=INIT.
    #[arg(long)]
    init: Option<String>,
    /// NB201 and DARTS: which ReLUs are units. `functional` (default): those
    /// whose value can reach the output (a `none` edge is no edge);
    /// `graph`: the NASWOT code's rule, `none` as x·0, so every ReLU with a
    /// graph path to the output. Short for --space-option count=RULE.
    #[arg(long)]
    count: Option<String>,
    /// NB101 space: channels of the stem and the first stack (NB101: 128;
    /// the NASWOT code's NB101 runs used 16). Short for --space-option
    /// stem_channels=C.
    #[arg(long)]
    stem_channels: Option<usize>,
    /// An option of the search space's network, KEY=VALUE (repeatable); a
    /// space rejects keys it does not take.
    #[arg(long = "space-option", value_name = "KEY=VALUE")]
    space_option: Vec<String>,
    /// CPU conv algorithm: `exact` (direct convolution, the reference) or
    /// `fast` (Winograd F(4x4,3x3) for 3x3 stride-1 convs of 32 to 256
    /// channels, equal up to rounding; README "Fast convolution" measures
    /// the agreement of the scores). The CUDA backend runs exact convs
    /// either way. Result lines record `fast` in their run stamp
    #[arg(long, default_value = "exact", value_parser = parse_conv_algo)]
    conv: dasnas::ops::conv2d::ConvAlgo,
    /// CPU cells scored at once, each on threads/N threads (default: one
    /// per 8 threads, at least 1: on few cores one cell's ops use them all;
    /// on many, several cells keep them busy). Scores do not depend on it;
    /// memory grows with it
    #[arg(long, value_name = "N")]
    cells_in_flight: Option<usize>,
}

impl RunArgs {
    /// The space options of --space-option and the flags that stand for them.
    fn space_options(&self) -> Result<SpaceOptions> {
        let mut opts = SpaceOptions::new();
        for pair in &self.space_option {
            opts.insert_pair(pair)?;
        }
        let flags = [
            ("init_channels", self.init_channels.map(|c| c.to_string())),
            ("layers", self.layers.map(|l| l.to_string())),
            ("init", self.init.clone()),
            ("stem_channels", self.stem_channels.map(|c| c.to_string())),
            ("count", self.count.clone()),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                opts.insert(key, v)?;
            }
        }
        Ok(opts)
    }

    /// The architecture built with this run's space options.
    fn sized(&self, arch: Arch) -> Result<Arch> {
        arch.with_options(&self.space_options()?)
    }

    /// The architectures built with this run's space options.
    fn sized_all(&self, archs: Vec<Arch>) -> Result<Vec<Arch>> {
        let opts = self.space_options()?;
        archs.into_iter().map(|a| a.with_options(&opts)).collect()
    }
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("cells").required(true).args(["arch", "archs", "sample", "all", "index", "indices"])))]
struct ScoreArgs {
    #[command(flatten)]
    run: RunArgs,
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
    /// Append results to this file, flushed per cell (default: stdout).
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
    train: TrainOpts,
}

/// Fast-training options (`score --train-steps K`, `train`).
#[derive(Args, Clone)]
struct TrainOpts {
    /// CIFAR binary file of labelled training images. Default: the --data
    /// file (an error if --data is `gaussian`).
    #[arg(long)]
    train_data: Option<PathBuf>,
    /// Records of the training file to draw batches from, `START:END`
    /// (END exclusive). Default: every record, except that when the training
    /// file is the --data file its first --batch records (the scoring batch)
    /// are left out, so that cells are never trained on the images they are
    /// scored on.
    #[arg(long)]
    train_records: Option<String>,
    /// Images per training batch (drawn with --seed, epoch by epoch).
    #[arg(long, default_value_t = 64)]
    train_batch: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Learning-rate schedule over the K steps: `cosine` (lr·(1+cos(πt/K))/2) or `constant`.
    #[arg(long, default_value = "cosine")]
    lr_schedule: dasnas::train::LrSchedule,
    /// SGD momentum (0 disables it).
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Weight decay, applied to every parameter (BatchNorm and biases
    /// included, as NAS-Bench-201's training does).
    #[arg(long, default_value_t = 5e-4)]
    wd: f64,
    /// Augment training images: random 32x32 crop of the image padded by 4,
    /// then a horizontal flip with probability 1/2.
    #[arg(long)]
    augment: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("cells").required(true).args(["arch", "archs"])))]
struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The architecture string (one cell; --record is overwritten).
    #[arg(long)]
    arch: Option<String>,
    /// Train every cell of this file with the same recipe: a DARTS training
    /// bench (DTB). Architecture strings, one per line (`-` reads stdin;
    /// blank and `#` lines skipped); all records go to --record, appended.
    #[arg(long)]
    archs: Option<PathBuf>,
    /// Train only shard K of N of the --archs list: positions K, K+N, …;
    /// 0 ≤ K < N. Give each shard its own --record file.
    #[arg(long, conflicts_with = "arch")]
    shard: Option<dasnas::select::Shard>,
    /// Complete the --record file of an --archs run that stopped: after
    /// checking its run stamps, skip the cells whose last-step record is in
    /// it and train the others from step 0 (a half-written last line, and
    /// the records of an unfinished cell at the file's end, are cut off).
    /// Without --resume an --archs run refuses a --record file that is not
    /// empty.
    #[arg(long, conflicts_with = "arch")]
    resume: bool,
    /// SGD steps.
    #[arg(long)]
    steps: usize,
    /// JSON Lines file of the training records, one JSON object per line:
    /// `step` (integer; 0 before training, then the step just taken),
    /// `loss` and `acc` (numbers: cross-entropy and accuracy of that step's
    /// batch, before its update; null at step 0), `lr` (number; null at
    /// step 0), `ms` (number: the step's wall time, scoring excluded;
    /// absent at step 0). Step 0, every --every steps and the last step
    /// also carry the scores on the scoring batch: `wot`, `d`, `das`
    /// (numbers, null when singular), `n_units` (integer), `singular`
    /// (boolean). With --arch the file is overwritten and its step-0 record
    /// names the cell (`arch`, `key`, NB201's `index` / NB101's `hash`) and
    /// carries `run`, the run stamp (as on `score` lines). With --archs
    /// every record carries those fields; cells follow one another, each
    /// in step order; a cell is complete when its record with `step` equal
    /// to --steps is in the file, and a reader takes each cell's records
    /// (grouped by `arch`) from its last `step` 0 record onward.
    #[arg(long)]
    record: PathBuf,
    /// Score every M steps (0: only at step 0 and after the last step).
    #[arg(long, default_value_t = 10)]
    every: usize,
    /// α of DAS_α = D + α·B·ln N_A.
    #[arg(long, default_value_t = dasnas::score::metrics::DEFAULT_ALPHA)]
    alpha: f64,
    #[command(flatten)]
    train: TrainOpts,
}

#[derive(Args)]
struct EvalArgs {
    /// JSON Lines scores (from `dasnas score`).
    #[arg(long)]
    scores: PathBuf,
    /// CSV ground truth.
    #[arg(long)]
    truth: PathBuf,
    /// Truth column holding the architecture string.
    #[arg(long, default_value = "arch_str")]
    key: String,
    /// Truth column to correlate with.
    #[arg(long, default_value = "cifar10_test_acc")]
    target: String,
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

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Cells to time (after one warm-up cell).
    #[arg(long, default_value_t = 10)]
    cells: usize,
    /// Time fast training instead: each cell trains this many SGD steps
    /// (batch --train-batch, seeded synthetic labelled images: the data do
    /// not change the work) and is then scored; reports training steps/s.
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    /// Images per training step of `--train-steps`.
    #[arg(long, default_value_t = 64)]
    train_batch: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => cmd_score(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Train(a) => cmd_train(a),
        Command::Fit(a) => cmd_fit(a),
        Command::Search(a) => cmd_search(a),
        Command::Devices => cmd_devices(),
        Command::Enumerate(a) => cmd_enumerate(a),
        Command::Merge(a) => cmd_merge(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dasnas: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `Err` unless `v` is a finite number (`what` names the flag).
fn finite(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::Arg(format!("{what} {v} is not a finite number")))
    }
}

/// Sets the thread count and loads the scoring batch.
fn prepare(run: &RunArgs) -> Result<Tensor> {
    if let Some(t) = run.threads {
        if t == 0 {
            return Err(Error::Arg("--threads must be at least 1".into()));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| Error::Arg(format!("--threads {t}: {e}")))?;
    }
    if run.batch < 2 {
        return Err(Error::Arg(format!(
            "--batch {} is too small: the kernel matrix needs at least 2 images",
            run.batch
        )));
    }
    let size = run.space.image_size(&run.space_options()?)?;
    let source = dasnas::data::BatchSource::parse(&run.data, run.dataset);
    dasnas::data::checked_scoring_batch(&source, run.batch, size, run.seed, run.device).map_err(
        |e| {
            if source == dasnas::data::BatchSource::Gaussian {
                e
            } else {
                e.context("--data")
            }
        },
    )
}

/// The run stamp of this run's settings (see `dasnas::results::RunStamp`).
fn run_stamp(
    run: &RunArgs,
    batch: &Tensor,
    alpha: f64,
    training: Option<&dasnas::Training>,
) -> Result<dasnas::results::RunStamp> {
    Ok(dasnas::results::RunStamp::new(
        run.space,
        &run.space_options()?,
        run.seed,
        batch,
        alpha,
        training,
    )
    .with_conv(run.conv))
}

fn parse_conv_algo(s: &str) -> std::result::Result<dasnas::ops::conv2d::ConvAlgo, String> {
    dasnas::ops::conv2d::ConvAlgo::parse(s).map_err(|e| e.to_string())
}

/// Opens the device of `--device` for the scoring batch; prints the
/// fallback notice of `auto` on stderr.
fn open_scorer(run: &RunArgs, batch: Tensor) -> Result<dasnas::Scorer> {
    if run.lanes == 0 {
        return Err(Error::Arg("--lanes must be at least 1".into()));
    }
    let (mut scorer, notice) = dasnas::Scorer::open(run.device, batch, run.lanes)?;
    if let Some(n) = notice {
        eprintln!("dasnas: {n}");
    }
    if let Some(n) = scorer.set_conv(run.conv) {
        eprintln!("dasnas: {n}");
    }
    scorer
        .set_cells_in_flight(run.cells_in_flight)
        .map_err(|_| Error::Arg("--cells-in-flight must be at least 1".into()))?;
    Ok(scorer)
}

/// The cells `score` is asked for, built with the run's space options: a
/// list, or the space's enumeration streamed.
fn score_cells(a: &ScoreArgs) -> Result<space::Archs> {
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

/// A stream of the units a run scores.
type Classes = Box<dyn Iterator<Item = Result<dasnas::select::Class>> + Send>;

fn cmd_score(a: ScoreArgs) -> Result<()> {
    finite("--alpha", a.alpha)?;
    if a.repeats == 0 {
        return Err(Error::Arg(
            "--repeats 0: at least one weight seed is needed".into(),
        ));
    }
    for &al in &a.extra_alphas {
        finite("--extra-alphas", al)?;
    }
    let space = a.run.space;
    let cells = score_cells(&a)?;
    let batch = prepare(&a.run)?;
    let training = if a.train_steps > 0 {
        Some(training(&a.run, &a.train, a.train_steps)?)
    } else {
        None
    };
    let stamp = run_stamp(&a.run, &batch, a.alpha, training.as_ref())?;
    let mut scorer = open_scorer(&a.run, batch)?;
    scorer.set_training(training);
    let stamp = if a.swap {
        let swap = dasnas::scorer::Swap::new(a.swap_mu.zip(a.swap_sigma))?;
        scorer.set_swap(Some(swap));
        stamp.with_swap(&swap)
    } else {
        stamp
    };
    let stamp = stamp.with_repeats(a.repeats);
    let resumed = match (&a.out, a.resume) {
        (Some(p), true) => {
            dasnas::results::check_stamps(p, &stamp)?;
            let r = if a.expand {
                dasnas::io::resume_keeping_lines(p)?
            } else {
                dasnas::io::resume(p)?
            };
            if r.dropped_partial_line {
                eprintln!("dasnas: {}: dropped an unfinished last line", p.display());
            }
            eprintln!(
                "dasnas: resuming: {} cells already in {}",
                r.done.len(),
                p.display()
            );
            r
        }
        _ => Default::default(),
    };
    let done = &resumed.done;
    // Units of work: a class (scored once, a line per member) with
    // --expand, else single cells (one per class with --unique).
    let mut copies: Vec<serde_json::Value> = Vec::new();
    let units: Classes = if a.expand {
        let all = Box::new(dasnas::select::classes(cells)?.into_iter().map(Ok));
        let mut classes: Vec<dasnas::select::Class> =
            dasnas::select::shard(all, a.shard).collect::<Result<_>>()?;
        // A class with a member already scored (a --unique run being
        // expanded, or a killed --expand run) is not scored again: its
        // other members' lines are copied from that member's.
        classes.retain(|c| {
            let Some(source) = c
                .members
                .iter()
                .find_map(|m| resumed.lines.get(&m.to_string()))
            else {
                return true;
            };
            for m in c.members.iter().filter(|m| !done.contains(&m.to_string())) {
                copies.push(dasnas::results::copied_line(source, m));
            }
            false
        });
        Box::new(classes.into_iter().map(Ok))
    } else {
        let cells = if a.unique {
            dasnas::select::unique(cells, space.enumerates_classes())
        } else {
            cells
        };
        Box::new(dasnas::select::shard(cells, a.shard).map(|c| {
            c.map(|rep| dasnas::select::Class {
                rep,
                members: Vec::new(),
            })
        }))
    };
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io(p, e))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let out_name = a
        .out
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdout".into());
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::no_length()
    } else {
        indicatif::ProgressBar::hidden()
    };
    for line in &copies {
        writeln!(out, "{line}").map_err(|e| Error::io(&out_name, e))?;
    }
    out.flush().map_err(|e| Error::io(&out_name, e))?;
    let is_done = |c: &Arch| done.contains(&c.to_string());
    let mut units = units.filter(|u| match u {
        Ok(u) if u.members.is_empty() => !is_done(&u.rep),
        Ok(u) => !u.members.iter().all(is_done),
        Err(_) => true,
    });
    // Each block is written and flushed before the next starts, so a
    // killed run loses at most one block; an error in the stream (a cache
    // file that cannot be read) stops the run after the blocks before it.
    loop {
        let mut block = Vec::with_capacity(scorer.block_size());
        for u in units.by_ref().take(scorer.block_size()) {
            block.push(u?);
        }
        if block.is_empty() {
            break;
        }
        let reps: Vec<&Arch> = block.iter().map(|u| &u.rep).collect();
        // Repeat r draws the weights of seed S + r.
        let mut per_cell: Vec<Vec<dasnas::CellResult>> = vec![Vec::new(); block.len()];
        for r in 0..a.repeats {
            let seed = a.run.seed.wrapping_add(r as u64);
            for (cell, res) in per_cell
                .iter_mut()
                .zip(scorer.score_archs(&reps, seed, a.alpha)?)
            {
                cell.push(res);
            }
        }
        for (unit, r) in block.iter().zip(per_cell) {
            let lines: Vec<(&Arch, Option<&Arch>)> = if unit.members.is_empty() {
                vec![(&unit.rep, None)]
            } else {
                unit.members
                    .iter()
                    .filter(|m| !is_done(m))
                    .map(|m| (m, (*m != unit.rep).then_some(&unit.rep)))
                    .collect()
            };
            for (arch, scored_as) in lines {
                let obj =
                    dasnas::results::repeated_line(arch, &r, &a.extra_alphas, &stamp, scored_as);
                writeln!(out, "{obj}").map_err(|e| Error::io(&out_name, e))?;
            }
            out.flush().map_err(|e| Error::io(&out_name, e))?;
        }
        bar.inc(block.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn cmd_enumerate(a: EnumerateArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let cells = a.space.cells(&SpaceOptions::new())?;
    let cells = if a.unique {
        dasnas::select::unique(cells, a.space.enumerates_classes())
    } else {
        cells
    };
    let cells = dasnas::select::shard(cells, a.shard);
    let (mut out, out_name): (Box<dyn Write>, String) = match &a.out {
        Some(p) => (
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
            )),
            p.display().to_string(),
        ),
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            "stdout".into(),
        ),
    };
    let mut n = 0usize;
    for c in cells {
        let c = c?;
        let line = match a.format {
            ListFormat::Text => c.to_string(),
            ListFormat::Json => {
                let id = c.identity();
                let mut obj = serde_json::json!({"arch": c.to_string()});
                if let Some(i) = id.index {
                    obj["index"] = i.into();
                }
                if let Some(name) = a.space.key_name() {
                    obj[name] = id.key.clone().into();
                }
                obj["key"] = id.key.into();
                obj.to_string()
            }
        };
        writeln!(out, "{line}").map_err(|e| Error::io(&out_name, e))?;
        n += 1;
    }
    out.flush().map_err(|e| Error::io(&out_name, e))?;
    eprintln!(
        "dasnas: {n} {} cells in {:.1} s",
        a.space,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cmd_merge(a: MergeArgs) -> Result<()> {
    let report = dasnas::results::merge(&a.inputs, a.expect.as_deref(), &a.out, a.tolerance)?;
    if let Some(p) = &a.missing {
        let text: String = report.missing.iter().map(|m| format!("{m}\n")).collect();
        std::fs::write(p, text).map_err(|e| Error::io(p, e))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))?
        );
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

/// The fast training of `--train-steps` from the training flags: images of
/// `--train-data` (default: the `--data` file), records of
/// `--train-records` (default: all, but the scoring batch's when training
/// on the scoring file).
fn training(run: &RunArgs, t: &TrainOpts, steps: usize) -> Result<dasnas::Training> {
    let (path, same_as_data) =
        match &t.train_data {
            Some(p) => (p.clone(), Path::new(&run.data) == p.as_path()),
            None if run.data == "gaussian" => return Err(Error::Arg(
                "training needs labelled images: give --train-data FILE (a CIFAR binary file), \
                 or a CIFAR --data file to train on its records after the scoring batch"
                    .into(),
            )),
            None => (PathBuf::from(&run.data), true),
        };
    for (flag, v) in [("--lr", t.lr), ("--momentum", t.momentum), ("--wd", t.wd)] {
        finite(flag, v)?;
    }
    if t.train_batch == 0 {
        return Err(Error::Arg("--train-batch must be at least 1".into()));
    }
    // Before the file is read: labelled images that cannot fit are refused.
    dasnas::train::budget::check_train_batch("--train-batch", t.train_batch, 3 * 32 * 32)?;
    let records = t.train_records.as_deref().map(parse_range).transpose()?;
    let config = dasnas::train::SgdConfig {
        lr: t.lr,
        momentum: t.momentum,
        nesterov: t.nesterov,
        weight_decay: t.wd,
        schedule: t.lr_schedule,
    };
    let augment = dasnas::train::batches::Augment {
        crop: t.augment,
        flip: t.augment,
    };
    let file = dasnas::scorer::TrainingFile {
        path: &path,
        dataset: run.dataset,
        records,
        records_name: "--train-records",
        skip: if same_as_data { run.batch } else { 0 },
    };
    file.training(steps, t.train_batch, config, augment)
}

/// `START:END` (END exclusive, START < END); the file's length is checked
/// when it is read.
fn parse_range(spec: &str) -> Result<std::ops::Range<usize>> {
    let bad = |why: &str| {
        Error::Arg(format!(
            "--train-records {spec}: {why} (expected START:END with START < END)"
        ))
    };
    let (a, b) = spec.split_once(':').ok_or_else(|| bad("no `:`"))?;
    let a: usize = a.trim().parse().map_err(|_| bad("START is not a number"))?;
    let b: usize = b.trim().parse().map_err(|_| bad("END is not a number"))?;
    if a >= b {
        return Err(bad("empty range"));
    }
    Ok(a..b)
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    if let dasnas::runtime::DeviceKind::Cuda(_) = a.run.device {
        return Err(Error::Arg(
            "`train` (per-step records) runs on the CPU; for GPU training use \
             `score --train-steps K --device cuda`"
                .into(),
        ));
    }
    finite("--alpha", a.alpha)?;
    let space = a.run.space;
    // The cells first, so that a bad line is reported before any work.
    let cells = match (&a.arch, &a.archs) {
        (Some(s), _) => vec![a.run.sized(Arch::parse(space, s)?)?],
        (None, Some(p)) => {
            if a.steps == 0 {
                return Err(Error::Arg(
                    "--steps 0 with --archs: a bench needs training steps (for scores at \
                     initialisation use `score --archs`)"
                        .into(),
                ));
            }
            let all = a.run.sized_all(dasnas::io::read_archs(space, p)?)?;
            dasnas::select::shard(Box::new(all.into_iter().map(Ok)), a.shard)
                .collect::<Result<Vec<_>>>()?
        }
        (None, None) => return Err(Error::Arg("give --arch or --archs".into())),
    };
    let batch = prepare(&a.run)?;
    let setup = training(&a.run, &a.train, a.steps.max(1))?;
    let stamp = run_stamp(&a.run, &batch, a.alpha, Some(&setup))?;
    let recipe = dasnas::dtb::Recipe {
        training: &setup,
        steps: a.steps,
        seed: a.run.seed,
        score_every: dasnas::train::ScoreEvery {
            every: a.every,
            scoring: &batch,
            alpha: a.alpha,
        },
    };
    if a.archs.is_some() {
        let t0 = std::time::Instant::now();
        let bench = dasnas::dtb::Bench {
            path: a.record.clone(),
            recipe,
            stamp: &stamp,
            resume: a.resume,
        };
        let plan = dasnas::dtb::plan_bench(&bench, &cells)?;
        if plan.report.dropped_partial_line {
            eprintln!(
                "dasnas: {}: dropped an unfinished last line",
                a.record.display()
            );
        }
        if plan.report.cut_records > 0 {
            eprintln!(
                "dasnas: {}: cut {} record(s) of an unfinished cell off its end",
                a.record.display(),
                plan.report.cut_records
            );
        }
        let report = dasnas::dtb::run_bench(&bench, plan, |c| {
            eprintln!(
                "dasnas train: cell {}/{} {}: {} steps in {:.1} s, final loss {:?}",
                c.trained, c.to_train, c.arch, c.stats.steps, c.seconds, c.stats.final_loss
            );
        })?;
        eprintln!(
            "dasnas train: {} cells listed, {} already complete in {}, {} listed twice, {} \
             trained ({} of them again after a stopped run) in {:.1} s",
            report.cells,
            report.already_done,
            a.record.display(),
            report.duplicates,
            report.trained,
            report.restarted,
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let arch = &cells[0];
    let f = std::fs::File::create(&a.record).map_err(|e| Error::io(&a.record, e))?;
    let mut out = std::io::BufWriter::new(f);
    let name = a.record.display().to_string();
    let (st, step_s) = dasnas::dtb::train_cell(arch, &recipe, |r| {
        let mut obj = dasnas::dtb::record_json(&r);
        if r.step == 0 {
            dasnas::results::put_identity(&mut obj, arch);
            obj["run"] = stamp.to_json();
        }
        writeln!(out, "{obj}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::io(&name, e))
    })?;
    // Steps/s over the steps alone (scoring excluded), without the first
    // step (warm-up) when there are several.
    let timed = if step_s.len() > 1 {
        &step_s[1..]
    } else {
        &step_s[..]
    };
    let secs: f64 = timed.iter().sum();
    eprintln!(
        "dasnas train: {} steps, {:.3} steps/s (batch {}, {} thread(s), first step excluded), \
         final loss {:?}, batch accuracy {:?}",
        st.steps,
        timed.len() as f64 / secs.max(1e-9),
        setup.batch,
        rayon::current_num_threads(),
        st.final_loss,
        st.final_accuracy
    );
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    use dasnas::eval::{evaluate_tables, plot, read_scores, read_truth};
    // A wrong extension fails before the files are read.
    if let Some(path) = &a.plot {
        plot::PlotFormat::from_path(path)?;
    }
    // Read once: the plot draws the same rows the report ranks.
    let scores = read_scores(&a.scores)?;
    let truth = read_truth(&a.truth, &a.key, &a.target)?;
    let report = evaluate_tables(&scores, &truth, &a.target, a.nulls);
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

/// Prints a report as one JSON object or as text.
fn print_report<R: serde::Serialize + std::fmt::Display>(r: &R, json: bool) -> Result<()> {
    if json {
        let text = serde_json::to_string(r).map_err(|e| Error::Data(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{r}");
    }
    Ok(())
}

fn cmd_fit(a: FitArgs) -> Result<()> {
    let r = dasnas::eval::fit::fit_files(&a.scores, &a.truth, &a.key, &a.target, a.folds, a.seed)?;
    print_report(&r, a.json)
}

fn cmd_search(a: SearchArgs) -> Result<()> {
    use dasnas::eval::search::{self, Evaluator, SearchOptions, Strategy};
    let rule = dasnas::eval::fit::Rule::parse_for(a.run.space, &a.run.space_options()?, &a.metric)?;
    let strategy = Strategy::parse(&a.strategy, a.population, a.tournament)?;
    let truth = match &a.truth {
        Some(p) => Some(dasnas::eval::read_truth(p, &a.key, &a.target)?),
        None => None,
    };
    let (cache, pool) = match &a.scores {
        Some(p) => search::cache_and_pool(p, a.run.space, &a.run.space_options()?, truth.as_ref())?,
        None => (Default::default(), Vec::new()),
    };
    let batch = prepare(&a.run)?;
    let from_cache = a.scores.is_some() && strategy == Strategy::Random;
    // A scorer is opened only when cells may have to be scored.
    let mut scorer = if from_cache {
        None
    } else {
        Some(open_scorer(&a.run, batch.clone())?)
    };
    let mut eval = Evaluator::new(cache, scorer.as_mut(), a.run.seed);
    let opts = SearchOptions {
        space: a.run.space,
        n: a.n,
        runs: a.runs,
        rule,
        seed: a.run.seed,
        strategy,
        from_cache,
        space_options: a.run.space_options()?,
    };
    let r = search::search(&opts, &mut eval, &pool, truth.as_ref())?;
    print_report(&r, a.json)
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.cells == 0 {
        return Err(Error::Arg("--cells must be at least 1".into()));
    }
    if a.train_steps > 0 && a.train_batch == 0 {
        return Err(Error::Arg("--train-batch must be at least 1".into()));
    }
    if a.train_steps > 0 {
        dasnas::train::budget::check_train_batch("--train-batch", a.train_batch, 3 * 32 * 32)?;
    }
    let batch = prepare(&a.run)?;
    let space_name = format!("{:?}", a.run.space).to_lowercase();
    let mut scorer = open_scorer(&a.run, batch.clone())?;
    let sample = |n: usize| -> Result<Vec<Arch>> {
        a.run.sized_all(space::sample(a.run.space, n, a.run.seed)?)
    };
    if a.train_steps > 0 {
        let archs = sample(a.cells)?;
        let r = dasnas::bench::bench_training(
            &mut scorer,
            &archs,
            a.run.seed,
            a.train_steps,
            a.train_batch,
        )?;
        print!("{r}");
        println!("{}", r.to_json());
        return Ok(());
    }
    if let Some(g) = scorer.gpu() {
        let warm = g.lanes() * dasnas::exec::cuda::executor::CHUNK;
        let info = g.device().info().clone();
        eprintln!(
            "dasnas bench: {space_name}, {} cells + {warm} warm-up, batch {}, device cuda:{} ({}, sm_{}), {} lanes",
            a.cells,
            a.run.batch,
            info.ordinal,
            info.name,
            info.arch(),
            g.lanes()
        );
        let archs = sample(a.cells + warm)?;
        let r = dasnas::bench::bench_cuda(&space_name, g, &archs, a.run.seed)?;
        print!("{r}");
        println!("{}", r.to_json());
        return Ok(());
    }
    eprintln!(
        "dasnas bench: {space_name}, {} cells + warm-up, batch {}, {} thread(s), {} cell(s) in flight, {} convs, device cpu",
        a.cells,
        a.run.batch,
        scorer.threads(),
        scorer.cells_in_flight(),
        scorer.conv().name(),
    );
    let archs = sample(a.cells + 1)?;
    let r = dasnas::bench::bench_cpu(&space_name, &mut scorer, &archs, a.run.seed)?;
    print!("{r}");
    println!("{}", r.to_json());
    Ok(())
}

fn cmd_devices() -> Result<()> {
    use dasnas::runtime::cuda;
    // The driver: its CUDA version and the GPUs it sees.
    let driver = if cuda::driver_available() {
        match cuda::driver_version() {
            Ok(v) => {
                println!("driver: CUDA {}.{} (cuDriverGetVersion)", v.0, v.1);
                Some(v)
            }
            Err(e) => {
                println!("driver: {e}");
                None
            }
        }
    } else {
        println!("no CUDA driver found (libcuda.so cannot be loaded)");
        None
    };
    let mut gpus = Vec::new();
    if driver.is_some() {
        gpus = cuda::list_devices()?;
        if gpus.is_empty() {
            println!("CUDA driver found, but it sees no GPU");
        }
    }
    for g in &gpus {
        println!(
            "GPU {}: {}, compute capability {}.{} (sm_{}), {:.1} GiB, {} SMs, fp32 peak {:.1} TFLOP/s",
            g.ordinal,
            g.name,
            g.compute_capability.0,
            g.compute_capability.1,
            g.arch(),
            g.total_memory as f64 / (1u64 << 30) as f64,
            g.multiprocessors,
            g.fp32_peak_flops() / 1e12
        );
    }
    // NVRTC: which library, which version, and whether its kernels load.
    match cuda::nvrtc::library() {
        Ok(lib) => {
            let (major, minor) = lib.version();
            println!(
                "NVRTC {major}.{minor}: {} (chosen by {}; set {} to choose another)",
                lib.path().display(),
                lib.chosen_by(),
                cuda::nvrtc::NVRTC_ENV
            );
            match driver {
                Some(d) => match cuda::nvrtc_compatibility(d, (major, minor)) {
                    Ok(why) => println!("compatible: {why}"),
                    Err(why) => println!("compatible: no: {why}"),
                },
                None => println!("compatible: unknown (no driver)"),
            }
            // One real compile, so a broken NVRTC (missing builtins, say)
            // shows here rather than at the first score.
            let arch = gpus.first().map_or(90, |g| g.arch());
            let src = cuda::nvrtc::source("relu")?;
            match cuda::nvrtc::compile("relu", src, arch) {
                Ok(c) => println!("NVRTC compile check (relu.cu): ok, {}", c.image.describe()),
                Err(e) => println!("NVRTC compile check (relu.cu): FAILED: {}", plain(&e)),
            }
            for g in &gpus {
                if lib.supported_archs().contains(&g.arch()) {
                    println!(
                        "GPU {}: kernels load as CUBIN for sm_{}",
                        g.ordinal,
                        g.arch()
                    );
                } else {
                    println!(
                        "GPU {}: NVRTC {major}.{minor} cannot emit a CUBIN for sm_{}: kernels load \
                         as PTX, compiled by the driver",
                        g.ordinal,
                        g.arch()
                    );
                }
            }
        }
        Err(e) => println!(
            "NVRTC: not found (kernels cannot be compiled): {}",
            plain(&e)
        ),
    }
    Ok(())
}

/// An error's message without the `device: ` prefix of its kind.
fn plain(e: &dasnas::Error) -> String {
    match e {
        dasnas::Error::Device(m) => m.clone(),
        other => other.to_string(),
    }
}
