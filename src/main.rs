//! The `dasnas` command line: `score`, `eval`, `bench`.

use clap::{Args, Parser, Subcommand};
use dasnas::data::cifar::{CifarImages, Dataset};
use dasnas::error::{Error, Result};
use dasnas::space::{self, Arch, Space};
use dasnas::Tensor;
use std::io::{BufRead, IsTerminal, Write};
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
    /// Train one cell with SGD and record its training state (JSON Lines; runs on the CPU).
    Train(TrainArgs),
    /// Choose the DAS combination rule of D and N_A by cross-validated Kendall τ.
    Fit(FitArgs),
    /// NASWOT search: sample N cells, keep the best by a metric (or evolve them).
    Search(SearchArgs),
    /// List the CUDA GPUs and say whether NVRTC (run-time kernel compiler) loads.
    Devices,
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
    /// units:A, ranksum:B (see `dasnas fit`).
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
    device: dasnas::device::DeviceKind,
    /// Cells in flight on a GPU (one CUDA stream and host thread each).
    #[arg(long, default_value_t = dasnas::device::cuda::executor::DEFAULT_LANES)]
    lanes: usize,
    /// DARTS space: channels C of the first cells (DARTS's --init_channels).
    #[arg(long, default_value_t = 16)]
    init_channels: usize,
    /// DARTS space: number of cells (DARTS's --layers).
    #[arg(long, default_value_t = 8)]
    layers: usize,
    /// NB101 weight init: `default` (uniform ±1/√fan_in, as every space) or
    /// `naswot` (the NASWOT code's He-normal fan-out convs, N(0, 0.01) classifier).
    #[arg(long, default_value = "default")]
    init: dasnas::net::InitScheme,
}

impl RunArgs {
    /// The architecture built at this run's network size (DARTS C and layers).
    fn sized(&self, arch: Arch) -> Arch {
        arch.with_darts_size(self.init_channels, self.layers)
            .with_nb101_init(self.init)
    }
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("cells").required(true).args(["arch", "archs", "sample", "all"])))]
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
    /// Score every cell of the space.
    #[arg(long)]
    all: bool,
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
struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The architecture string.
    #[arg(long)]
    arch: String,
    /// SGD steps.
    #[arg(long)]
    steps: usize,
    /// JSON Lines file to write (overwritten): one record per step with
    /// step, loss, acc (of that step's batch, before its update), lr, ms;
    /// step 0 and every --every steps (and the last) also carry the scores
    /// wot, d, n_units, das, singular on the scoring batch.
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dasnas: error: {e}");
            ExitCode::FAILURE
        }
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
    if run.init_channels == 0 || run.layers == 0 {
        return Err(Error::Arg(
            "--init-channels and --layers must be at least 1".into(),
        ));
    }
    let size = match run.space {
        Space::Nb201 => dasnas::space::nb201::Nb201Net::default().image_size,
        Space::Nb101 => dasnas::space::nb101::Nb101Net::default().image_size,
        Space::Darts => dasnas::space::darts::DartsNet::default().image_size,
    };
    // Before the batch is made (seconds at a huge B): refuse one whose input
    // and B×B matrices cannot fit (on a GPU the host holds the input only).
    let on_gpu = matches!(run.device, dasnas::device::DeviceKind::Cuda(_));
    dasnas::device::budget::check_host_batch(run.batch, size * size * 3, !on_gpu)?;
    if run.data == "gaussian" {
        dasnas::data::try_gaussian_batch(run.batch, size, run.seed)
    } else {
        CifarImages::load(Path::new(&run.data), run.dataset)?
            .first(run.batch)
            .map_err(|e| match e {
                Error::Data(msg) => Error::Data(format!("--data {}: {msg}", run.data)),
                e => e,
            })
    }
}

/// Opens the device of `--device` for the scoring batch; prints the
/// fallback notice of `auto` on stderr.
fn open_scorer(run: &RunArgs, batch: Tensor) -> Result<dasnas::Scorer> {
    if run.lanes == 0 {
        return Err(Error::Arg("--lanes must be at least 1".into()));
    }
    let (scorer, notice) = dasnas::Scorer::open(run.device, batch, run.lanes)?;
    if let Some(n) = notice {
        eprintln!("dasnas: {n}");
    }
    Ok(scorer)
}

fn read_arch_lines(space: Space, path: &Path) -> Result<Vec<Arch>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let s = line.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        out.push(
            Arch::parse(space, s)
                .map_err(|e| Error::Data(format!("{} line {}: {e}", path.display(), i + 1)))?,
        );
    }
    Ok(out)
}

/// Architecture strings already in a results file; a partial last line
/// (a run killed mid-write) is cut off so the file stays valid JSON Lines.
fn done_archs(path: &Path) -> Result<std::collections::HashSet<String>> {
    let mut done = std::collections::HashSet::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(Error::io(path, e)),
    };
    let complete = match text.rfind('\n') {
        Some(k) => k + 1,
        None => 0,
    };
    if complete < text.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(complete as u64).map_err(|e| Error::io(path, e))?;
        eprintln!(
            "dasnas: {}: dropped an unfinished last line",
            path.display()
        );
    }
    for (i, line) in text[..complete].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::Data(format!("{} line {}: {e}", path.display(), i + 1)))?;
        if let Some(a) = v.get("arch").and_then(|a| a.as_str()) {
            done.insert(a.to_string());
        }
    }
    Ok(done)
}

fn cmd_score(a: ScoreArgs) -> Result<()> {
    let space = a.run.space;
    let archs: Vec<Arch> = if let Some(s) = &a.arch {
        vec![Arch::parse(space, s)?]
    } else if let Some(p) = &a.archs {
        read_arch_lines(space, p)?
    } else if let Some(n) = a.sample {
        space::sample(space, n, a.run.seed)?
    } else {
        space::enumerate(space)?
    };
    let archs: Vec<Arch> = archs.into_iter().map(|x| a.run.sized(x)).collect();
    let batch = prepare(&a.run)?;
    let mut scorer = open_scorer(&a.run, batch.clone())?;
    let done = match (&a.out, a.resume) {
        (Some(p), true) => done_archs(p)?,
        _ => Default::default(),
    };
    let todo: Vec<&Arch> = archs
        .iter()
        .filter(|x| !done.contains(&x.to_string()))
        .collect();
    if a.resume {
        eprintln!(
            "dasnas: resuming: {} of {} cells already scored",
            archs.len() - todo.len(),
            archs.len()
        );
    }
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
        indicatif::ProgressBar::new(todo.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let training = if a.train_steps > 0 {
        Some(TrainSetup::load(&a.run, &a.train)?)
    } else {
        None
    };
    if let (Some(t), dasnas::Scorer::Cuda(g)) = (&training, &mut scorer) {
        // Train and score on the GPU: the batches of every step uploaded
        // once, the lanes training different cells at once.
        let mut batches = t.batches(a.run.seed)?;
        let data = dasnas::train::cuda::TrainData::upload(
            g.device(),
            &mut batches,
            a.train_steps,
            t.config,
        )?;
        for chunk in todo.chunks(16 * a.run.lanes) {
            let results = dasnas::train::cuda::score_trained(
                g,
                chunk.len(),
                |i| {
                    chunk[i]
                        .network()
                        .map_err(|e| Error::Data(format!("training and scoring {}: {e}", chunk[i])))
                },
                a.run.seed,
                a.alpha,
                &data,
            )?;
            for (arch, (cell, st)) in chunk.iter().zip(results) {
                let mut obj = score_json(
                    &arch.to_string(),
                    &cell.scores,
                    &a.extra_alphas,
                    a.run.batch,
                );
                obj["train_steps"] = serde_json::json!(st.steps);
                obj["train_loss"] = serde_json::json!(st.final_loss);
                obj["train_acc"] = serde_json::json!(st.final_accuracy);
                obj["ms"] = serde_json::json!((cell.seconds * 1e4).round() / 10.0);
                writeln!(out, "{obj}")
                    .and_then(|_| out.flush())
                    .map_err(|e| Error::io(&out_name, e))?;
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        return Ok(());
    }
    if let Some(t) = &training {
        for arch in todo {
            let name = arch.to_string();
            let (r, st) = t
                .train_and_score(arch, a.train_steps, &batch, a.run.seed, a.alpha)
                .map_err(|e| Error::Data(format!("training and scoring {name}: {e}")))?;
            let mut obj = score_json(&name, &r.scores, &a.extra_alphas, a.run.batch);
            obj["train_steps"] = serde_json::json!(st.steps);
            obj["train_loss"] = serde_json::json!(st.final_loss);
            obj["train_acc"] = serde_json::json!(st.final_accuracy);
            obj["train_ms"] = serde_json::json!((st.seconds * 1e4).round() / 10.0);
            obj["ms"] = serde_json::json!((r.timing.total_s() * 1e4).round() / 10.0);
            writeln!(out, "{obj}")
                .and_then(|_| out.flush())
                .map_err(|e| Error::io(&out_name, e))?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        return Ok(());
    }
    // A GPU scores a block of cells at once (its lanes in flight); the CPU
    // one at a time. Each block is written and flushed before the next
    // starts, so a killed run loses at most one block.
    let block = match scorer {
        dasnas::Scorer::Cpu { .. } => 1,
        dasnas::Scorer::Cuda(_) => 64 * a.run.lanes,
    };
    for chunk in todo.chunks(block) {
        let results = scorer.score_archs(chunk, a.run.seed, a.alpha)?;
        for (arch, r) in chunk.iter().zip(results) {
            let mut obj = score_json(&arch.to_string(), &r.scores, &a.extra_alphas, a.run.batch);
            obj["ms"] = serde_json::json!((r.timing.total_s() * 1e4).round() / 10.0);
            writeln!(out, "{obj}")
                .and_then(|_| out.flush())
                .map_err(|e| Error::io(&out_name, e))?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The JSON object of one scored cell (without timing fields).
fn score_json(
    arch: &str,
    s: &dasnas::Scores,
    extra_alphas: &[f64],
    batch: usize,
) -> serde_json::Value {
    let mut obj = serde_json::json!({
        "arch": arch,
        "wot": s.wot,
        "d": s.d,
        "n_units": s.n_units,
        "ln_n_units": s.ln_n_units,
        "das": s.das,
        "singular": s.singular,
    });
    for &al in extra_alphas {
        obj[format!("das@{al}")] = serde_json::json!(s.das_with(al, batch));
    }
    obj
}

/// The training images and the records batches are drawn from.
struct TrainSetup {
    images: CifarImages,
    pool: Vec<usize>,
    batch: usize,
    config: dasnas::train::SgdConfig,
    augment: dasnas::train::batches::Augment,
}

impl TrainSetup {
    fn load(run: &RunArgs, t: &TrainOpts) -> Result<Self> {
        let (path, same_as_data) = match &t.train_data {
            Some(p) => (p.clone(), Path::new(&run.data) == p.as_path()),
            None if run.data == "gaussian" => return Err(Error::Arg(
                "training needs labelled images: give --train-data FILE (a CIFAR binary file), \
                     or a CIFAR --data file to train on its records after the scoring batch"
                    .into(),
            )),
            None => (PathBuf::from(&run.data), true),
        };
        let images = CifarImages::load(&path, run.dataset)?;
        let range = match &t.train_records {
            Some(spec) => parse_range(spec, images.len())?,
            None if same_as_data => run.batch.min(images.len())..images.len(),
            None => 0..images.len(),
        };
        if range.is_empty() {
            return Err(Error::Arg(format!(
                "no training records: {} has {} records and the scoring batch takes the first {} \
                 (give --train-records START:END or another --train-data)",
                path.display(),
                images.len(),
                run.batch
            )));
        }
        if t.train_batch == 0 {
            return Err(Error::Arg("--train-batch must be at least 1".into()));
        }
        let config = dasnas::train::SgdConfig {
            lr: t.lr,
            momentum: t.momentum,
            nesterov: t.nesterov,
            weight_decay: t.wd,
            schedule: t.lr_schedule,
        };
        config
            .validate()
            .map_err(|e| Error::Arg(format!("training options: {e}")))?;
        Ok(TrainSetup {
            images,
            pool: range.collect(),
            batch: t.train_batch,
            config,
            augment: dasnas::train::batches::Augment {
                crop: t.augment,
                flip: t.augment,
            },
        })
    }

    fn batches(&self, seed: u64) -> Result<dasnas::train::batches::LabelledBatches<'_>> {
        dasnas::train::batches::LabelledBatches::new(
            &self.images,
            self.pool.clone(),
            self.batch,
            seed,
            self.augment,
        )
    }

    /// Weights from `seed`, `steps` SGD steps on batches drawn with `seed`,
    /// then the scores on `batch`.
    fn train_and_score(
        &self,
        arch: &Arch,
        steps: usize,
        batch: &Tensor,
        seed: u64,
        alpha: f64,
    ) -> Result<(dasnas::CellResult, dasnas::train::TrainStats)> {
        let graph = arch.network()?;
        let mut params = dasnas::net::init::init_params(&graph, seed);
        let mut batches = self.batches(seed)?;
        let st = dasnas::train::train_cpu(
            &graph,
            &mut params,
            &mut batches,
            &self.config,
            steps,
            |_, _| Ok(()),
        )?;
        let r = dasnas::score_graph_with_params(&graph, &params, batch, alpha)?;
        Ok((r, st))
    }
}

/// `START:END` (END exclusive) within `0..len`.
fn parse_range(spec: &str, len: usize) -> Result<std::ops::Range<usize>> {
    let bad = |why: &str| {
        Error::Arg(format!(
            "--train-records {spec}: {why} (expected START:END with START < END <= {len})"
        ))
    };
    let (a, b) = spec.split_once(':').ok_or_else(|| bad("no `:`"))?;
    let a: usize = a.trim().parse().map_err(|_| bad("START is not a number"))?;
    let b: usize = b.trim().parse().map_err(|_| bad("END is not a number"))?;
    if a >= b || b > len {
        return Err(bad("out of range"));
    }
    Ok(a..b)
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    if let dasnas::device::DeviceKind::Cuda(_) = a.run.device {
        return Err(Error::Arg(
            "`train` (per-step records) runs on the CPU; for GPU training use \
             `score --train-steps K --device cuda`"
                .into(),
        ));
    }
    let arch = a.run.sized(Arch::parse(a.run.space, &a.arch)?);
    let batch = prepare(&a.run)?;
    let setup = TrainSetup::load(&a.run, &a.train)?;
    let graph = arch.network()?;
    let mut params = dasnas::net::init::init_params(&graph, a.run.seed);
    let mut batches = setup.batches(a.run.seed)?;
    let f = std::fs::File::create(&a.record).map_err(|e| Error::io(&a.record, e))?;
    let mut out = std::io::BufWriter::new(f);
    let name = a.record.display().to_string();
    let scores = |params: &[Vec<f32>]| -> Result<serde_json::Value> {
        let s = dasnas::score_graph_with_params(&graph, params, &batch, a.alpha)?.scores;
        Ok(serde_json::json!({
            "wot": s.wot, "d": s.d, "n_units": s.n_units, "das": s.das, "singular": s.singular,
        }))
    };
    let mut write = |obj: serde_json::Value| -> Result<()> {
        writeln!(out, "{obj}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::io(&name, e))
    };
    let mut first = serde_json::json!({"step": 0, "arch": arch.to_string(), "loss": null, "acc": null, "lr": null});
    merge(&mut first, scores(&params)?);
    write(first)?;
    let steps = a.steps;
    let every = a.every;
    let mut step_s = Vec::with_capacity(steps);
    let st = dasnas::train::train_cpu(
        &graph,
        &mut params,
        &mut batches,
        &setup.config,
        steps,
        |s, p| {
            step_s.push(s.seconds);
            let mut obj = serde_json::json!({
                "step": s.step,
                "loss": s.loss,
                "acc": s.accuracy,
                "lr": s.lr,
                "ms": (s.seconds * 1e4).round() / 10.0,
            });
            if (every > 0 && s.step % every == 0) || s.step == steps {
                merge(&mut obj, scores(p)?);
            }
            write(obj)
        },
    )?;
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

/// Adds `extra`'s fields to the JSON object `obj`.
fn merge(obj: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(e)) = (obj.as_object_mut(), extra) {
        o.extend(e);
    }
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let report = dasnas::eval::evaluate(&dasnas::eval::EvalOptions {
        scores: a.scores,
        truth: a.truth,
        key: a.key,
        target: a.target,
        nulls: a.nulls,
    })?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}

fn cmd_fit(a: FitArgs) -> Result<()> {
    let r = dasnas::eval::fit::fit_files(&a.scores, &a.truth, &a.key, &a.target, a.folds, a.seed)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| Error::Data(e.to_string()))?
        );
    } else {
        print!("{r}");
    }
    Ok(())
}

fn cmd_search(a: SearchArgs) -> Result<()> {
    use dasnas::eval::search::{self, Evaluator, SearchOptions, Strategy};
    let rule = dasnas::eval::fit::Rule::parse(&a.metric)?;
    let strategy = match a.strategy.as_str() {
        "random" => Strategy::Random,
        "evolution" => Strategy::Evolution {
            population: a.population,
            tournament: a.tournament,
        },
        other => {
            return Err(Error::Arg(format!(
                "unknown --strategy `{other}` (expected random or evolution)"
            )))
        }
    };
    let truth = match &a.truth {
        Some(p) => Some(dasnas::eval::read_truth(p, &a.key, &a.target)?),
        None => None,
    };
    let (cache, pool) = match &a.scores {
        Some(p) => {
            let table = dasnas::eval::read_scores(p)?;
            let cache = Evaluator::cache_of(&table)?;
            let mut pool = Vec::new();
            for r in &table.rows {
                if truth.as_ref().is_some_and(|t| !t.contains_key(&r.arch)) {
                    continue;
                }
                let arch = Arch::parse(a.run.space, &r.arch)
                    .map_err(|e| Error::Data(format!("{}: {e}", p.display())))?;
                pool.push(a.run.sized(arch));
            }
            (cache, pool)
        }
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
        size: Some((a.run.init_channels, a.run.layers)),
        nb101_init: a.run.init,
    };
    let r = search::search(&opts, &mut eval, &pool, truth.as_ref())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| Error::Data(e.to_string()))?
        );
    } else {
        print!("{r}");
    }
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.cells == 0 {
        return Err(Error::Arg("--cells must be at least 1".into()));
    }
    let batch = prepare(&a.run)?;
    if a.train_steps > 0 {
        return bench_training(&a, batch);
    }
    if let dasnas::Scorer::Cuda(g) = open_scorer(&a.run, batch.clone())? {
        return bench_cuda(*g, &a);
    }
    let archs: Vec<Arch> = space::sample(a.run.space, a.cells + 1, a.run.seed)?
        .into_iter()
        .map(|x| a.run.sized(x))
        .collect();
    let threads = rayon::current_num_threads();
    eprintln!(
        "dasnas bench: {:?}, {} cells + 1 warm-up, batch {}, {} thread(s), device cpu",
        a.run.space, a.cells, a.run.batch, threads
    );
    // Warm-up: page in the buffers and the code paths.
    dasnas::score_arch(&archs[0], &batch, a.run.seed, 1.0)?;
    let mut sum = dasnas::CellTiming::default();
    let mut flops = 0u64;
    let start = std::time::Instant::now();
    for arch in &archs[1..] {
        let graph = arch.network()?;
        flops += graph.flops(a.run.batch);
        let r = dasnas::score_arch(arch, &batch, a.run.seed, 1.0)?;
        sum.build_s += r.timing.build_s;
        sum.ops_s += r.timing.ops_s;
        sum.codes_s += r.timing.codes_s;
        sum.logdet_s += r.timing.logdet_s;
        for (k, t) in r.timing.by_op {
            match sum.by_op.iter_mut().find(|(kk, _)| *kk == k) {
                Some((_, tt)) => *tt += t,
                None => sum.by_op.push((k, t)),
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let n = a.cells as f64;
    sum.by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = sum.total_s();
    let share = |t: f64| 100.0 * t / total;
    println!("phase            ms/cell   share");
    for (name, t) in [
        ("build+init", sum.build_s),
        ("forward ops", sum.ops_s),
        ("codes+hamming", sum.codes_s),
        ("logdet", sum.logdet_s),
    ] {
        println!("{name:<15} {:>8.2} {:>6.1}%", 1e3 * t / n, share(t));
        if name == "forward ops" {
            for (k, t) in &sum.by_op {
                println!("  {k:<13} {:>8.2} {:>6.1}%", 1e3 * t / n, share(*t));
            }
        }
    }
    println!(
        "cells/s {:.3}   ms/cell {:.1}   conv+linear GFLOP/s {:.1}",
        n / wall,
        1e3 * wall / n,
        flops as f64 / sum.ops_s / 1e9
    );
    let json = serde_json::json!({
        "space": format!("{:?}", a.run.space).to_lowercase(),
        "device": "cpu",
        "threads": threads,
        "batch": a.run.batch,
        "cells": a.cells,
        "cells_per_s": n / wall,
        "ms_per_cell": 1e3 * wall / n,
        "forward_ms": 1e3 * sum.ops_s / n,
        "codes_hamming_ms": 1e3 * sum.codes_s / n,
        "logdet_ms": 1e3 * sum.logdet_s / n,
        "build_ms": 1e3 * sum.build_s / n,
        "gflop_per_cell": flops as f64 / n / 1e9,
    });
    println!("{json}");
    Ok(())
}

/// `bench --train-steps K`: fast training throughput on the device of
/// `--device`, cells `sample(cells, seed)` (a first cell trained 2 steps
/// untimed), SGD with lr 0.1, momentum 0.9, weight decay 5e-4, cosine.
fn bench_training(a: &BenchArgs, batch: Tensor) -> Result<()> {
    use dasnas::train::batches::{Augment, LabelledBatches};
    if a.train_batch == 0 {
        return Err(Error::Arg("--train-batch must be at least 1".into()));
    }
    let archs: Vec<Arch> = space::sample(a.run.space, a.cells, a.run.seed)?
        .into_iter()
        .map(|x| a.run.sized(x))
        .collect();
    // Seeded synthetic CIFAR records: 10 classes, random pixels.
    let records = (4 * a.train_batch).max(256);
    let mut bytes = Vec::with_capacity(records * 3073);
    let key = dasnas::net::rng::stream_key(a.run.seed, 0x7261_696e);
    for r in 0..records {
        bytes.push((r % 10) as u8);
        bytes.extend(
            (0..3072u64).map(|i| (dasnas::net::rng::bits(key, (r as u64) * 3072 + i) >> 56) as u8),
        );
    }
    let images = CifarImages::from_bytes(&bytes, Dataset::Cifar10)?;
    let config = dasnas::train::SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        schedule: dasnas::train::LrSchedule::Cosine,
    };
    let pool: Vec<usize> = (0..records).collect();
    let mut batches =
        LabelledBatches::new(&images, pool, a.train_batch, a.run.seed, Augment::default())?;
    let k = a.train_steps;
    let scorer = open_scorer(&a.run, batch.clone())?;
    let device = scorer.describe();
    let wall = match scorer {
        dasnas::Scorer::Cuda(mut g) => {
            let warm = dasnas::train::cuda::TrainData::upload(g.device(), &mut batches, 2, config)?;
            dasnas::train::cuda::score_trained(
                &mut g,
                1,
                |_| archs[0].network(),
                a.run.seed,
                1.0,
                &warm,
            )?;
            let data = dasnas::train::cuda::TrainData::upload(g.device(), &mut batches, k, config)?;
            let t = std::time::Instant::now();
            dasnas::train::cuda::score_trained(
                &mut g,
                archs.len(),
                |i| archs[i].network(),
                a.run.seed,
                1.0,
                &data,
            )?;
            t.elapsed().as_secs_f64()
        }
        dasnas::Scorer::Cpu { .. } => {
            let t = std::time::Instant::now();
            for arch in &archs {
                let graph = arch.network()?;
                let mut params = dasnas::net::init::init_params(&graph, a.run.seed);
                dasnas::train::train_cpu(&graph, &mut params, &mut batches, &config, k, |_, _| {
                    Ok(())
                })?;
                dasnas::score_graph_with_params(&graph, &params, &batch, 1.0)?;
            }
            t.elapsed().as_secs_f64()
        }
    };
    let steps = (k * archs.len()) as f64;
    println!(
        "{device}: {} cells x {k} steps at batch {} (+ scoring each): {:.2} s, {:.1} training steps/s",
        archs.len(),
        a.train_batch,
        wall,
        steps / wall
    );
    println!(
        "{}",
        serde_json::json!({
            "device": device,
            "cells": archs.len(),
            "train_steps": k,
            "train_batch": a.train_batch,
            "seconds": wall,
            "steps_per_s": steps / wall,
        })
    );
    Ok(())
}

/// `bench` on a GPU: throughput with every lane in flight, then one lane
/// with CUDA events around each step for the split by kernel.
fn bench_cuda(mut g: dasnas::device::cuda::executor::GpuScorer, a: &BenchArgs) -> Result<()> {
    use dasnas::device::cuda::executor::{Profile, CHUNK};
    let info = g.device().info().clone();
    let warm = g.lanes() * CHUNK;
    let archs: Vec<Arch> = space::sample(a.run.space, a.cells + warm, a.run.seed)?
        .into_iter()
        .map(|x| a.run.sized(x))
        .collect();
    let (warm_archs, timed) = archs.split_at(warm);
    eprintln!(
        "dasnas bench: {:?}, {} cells + {warm} warm-up, batch {}, device cuda:{} ({}, sm_{}), {} lanes",
        a.run.space,
        a.cells,
        a.run.batch,
        info.ordinal,
        info.name,
        info.arch(),
        g.lanes()
    );
    let build = |list: &[Arch]| {
        let list = list.to_vec();
        move |i: usize| list[i].network()
    };
    g.score(warm, build(warm_archs), a.run.seed, 1.0, None)?;
    let start = std::time::Instant::now();
    g.score(a.cells, build(timed), a.run.seed, 1.0, None)?;
    let wall = start.elapsed().as_secs_f64();
    let mut flops = 0u64;
    for arch in timed {
        flops += arch.network()?.flops(a.run.batch);
    }
    let n = a.cells as f64;
    let profiled = a.cells.min(64);
    let mut prof = Profile::default();
    g.score(
        profiled,
        build(&timed[..profiled]),
        a.run.seed,
        1.0,
        Some(&mut prof),
    )?;
    let pn = profiled as f64;
    let peak = info.fp32_peak_flops();
    let total: f64 = prof.by_kind.iter().map(|(_, t)| t).sum();
    prof.by_kind.sort_by(|x, y| y.1.total_cmp(&x.1));
    println!(
        "cells/s {:.1}   ms/cell {:.3}   conv+linear TFLOP/s {:.2} (fp32 peak {:.1})",
        n / wall,
        1e3 * wall / n,
        flops as f64 / wall / 1e12,
        peak / 1e12
    );
    println!("GPU time by kernel, one lane, {profiled} cells (CUDA events):");
    println!("kernel            us/cell   share");
    for (k, t) in &prof.by_kind {
        println!(
            "{k:<16} {:>8.1} {:>6.1}%",
            1e6 * t / pn,
            100.0 * t / total.max(f64::MIN_POSITIVE)
        );
    }
    println!("ops with arithmetic, by shape (NHWC input):");
    println!("op                                          input            launches  us/launch  TFLOP/s  % of fp32 peak");
    prof.shapes.sort_by(|x, y| y.seconds.total_cmp(&x.seconds));
    let mut convs = Vec::new();
    for c in &prof.shapes {
        let tf = c.flops as f64 / c.seconds.max(f64::MIN_POSITIVE);
        let op: String = c.op.chars().take(43).collect();
        println!(
            "{op:<43} {:<16} {:>9} {:>10.1} {:>8.2} {:>8.1}%",
            c.input.to_string(),
            c.launches,
            1e6 * c.seconds / c.launches as f64,
            tf / 1e12,
            100.0 * tf / peak
        );
        convs.push(serde_json::json!({
            "kind": c.kind, "op": c.op, "input": c.input.to_string(), "launches": c.launches,
            "us_per_launch": 1e6 * c.seconds / c.launches as f64, "tflops": tf / 1e12,
        }));
    }
    let t_of = |k: &str| {
        prof.by_kind
            .iter()
            .find(|(kk, _)| *kk == k)
            .map_or(0.0, |(_, t)| *t)
    };
    let b = a.run.batch as f64;
    // Word pairs XOR-popcounted: B(B-1)/2 pairs per code word of a row.
    let pairs = prof.hamming_words as f64 * b * (b - 1.0) / 2.0;
    let hamming_rate = pairs / t_of("hamming").max(f64::MIN_POSITIVE);
    let logdet_us = 1e6 * t_of("logdet") / prof.logdets.max(1) as f64;
    println!(
        "hamming: {:.3e} word pairs/s   logdet (K_H + Cholesky): {logdet_us:.1} us per {}x{} matrix",
        hamming_rate, a.run.batch, a.run.batch
    );
    let json = serde_json::json!({
        "space": format!("{:?}", a.run.space).to_lowercase(),
        "device": format!("cuda:{}", info.ordinal),
        "gpu": info.name,
        "lanes": g.lanes(),
        "batch": a.run.batch,
        "cells": a.cells,
        "cells_per_s": n / wall,
        "ms_per_cell": 1e3 * wall / n,
        "fp32_peak_tflops": peak / 1e12,
        "gflop_per_cell": flops as f64 / n / 1e9,
        "profile_us_per_cell": prof.by_kind.iter().map(|(k, t)| (k.to_string(), serde_json::json!(1e6 * t / pn))).collect::<serde_json::Map<_, _>>(),
        "convs": convs,
        "hamming_word_pairs_per_s": hamming_rate,
        "logdet_us_per_matrix": logdet_us,
    });
    println!("{json}");
    Ok(())
}

fn cmd_devices() -> Result<()> {
    use dasnas::device::cuda;
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
