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
    /// Train one cell with SGD and record its training state (JSON Lines).
    Train(TrainArgs),
    /// List the CUDA GPUs and say whether NVRTC (run-time kernel compiler) loads.
    Devices,
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
    /// Compute device (`cpu`; `auto` picks the best available).
    #[arg(long, default_value = "auto")]
    device: dasnas::device::DeviceKind,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(a) => cmd_score(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Train(a) => cmd_train(a),
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
    let size = match run.space {
        Space::Nb201 => dasnas::space::nb201::Nb201Net::default().image_size,
    };
    if run.data == "gaussian" {
        Ok(dasnas::data::gaussian_batch(run.batch, size, run.seed))
    } else {
        CifarImages::load(Path::new(&run.data), run.dataset)?
            .first(run.batch)
            .map_err(|e| match e {
                Error::Data(msg) => Error::Data(format!("--data {}: {msg}", run.data)),
                e => e,
            })
    }
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
    let batch = prepare(&a.run)?;
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
    for arch in todo {
        let name = arch.to_string();
        let (r, trained) = match &training {
            None => (
                dasnas::score_arch(arch, &batch, a.run.seed, a.alpha)
                    .map_err(|e| Error::Data(format!("scoring {name}: {e}")))?,
                None,
            ),
            Some(t) => {
                let (r, st) = t
                    .train_and_score(arch, a.train_steps, &batch, a.run.seed, a.alpha)
                    .map_err(|e| Error::Data(format!("training and scoring {name}: {e}")))?;
                (r, Some(st))
            }
        };
        let s = &r.scores;
        let mut obj = serde_json::json!({
            "arch": name,
            "wot": s.wot,
            "d": s.d,
            "n_units": s.n_units,
            "ln_n_units": s.ln_n_units,
            "das": s.das,
            "singular": s.singular,
        });
        for &al in &a.extra_alphas {
            obj[format!("das@{al}")] = serde_json::json!(s.das_with(al, a.run.batch));
        }
        if let Some(st) = trained {
            obj["train_steps"] = serde_json::json!(st.steps);
            obj["train_loss"] = serde_json::json!(st.final_loss);
            obj["train_acc"] = serde_json::json!(st.final_accuracy);
            obj["train_ms"] = serde_json::json!((st.seconds * 1e4).round() / 10.0);
        }
        obj["ms"] = serde_json::json!((r.timing.total_s() * 1e4).round() / 10.0);
        writeln!(out, "{obj}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::io(&out_name, e))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
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
    let arch = Arch::parse(a.run.space, &a.arch)?;
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

fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.cells == 0 {
        return Err(Error::Arg("--cells must be at least 1".into()));
    }
    let batch = prepare(&a.run)?;
    let archs = space::sample(a.run.space, a.cells + 1, a.run.seed)?;
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

fn cmd_devices() -> Result<()> {
    use dasnas::device::cuda;
    let nvrtc = if cuda::nvrtc_available() {
        match cuda::nvrtc::version() {
            Ok((major, minor)) => format!("NVRTC {major}.{minor}: loaded"),
            Err(e) => format!("NVRTC: {e}"),
        }
    } else {
        "NVRTC: not found (kernels cannot be compiled; add the NVRTC lib folder to LD_LIBRARY_PATH)"
            .to_string()
    };
    if !cuda::driver_available() {
        println!("no CUDA driver found");
        println!("{nvrtc}");
        return Ok(());
    }
    let gpus = cuda::list_devices()?;
    if gpus.is_empty() {
        println!("CUDA driver found, but it sees no GPU");
    }
    for g in &gpus {
        println!(
            "GPU {}: {}, compute capability {}.{} (sm_{}), {:.1} GiB, {} SMs",
            g.ordinal,
            g.name,
            g.compute_capability.0,
            g.compute_capability.1,
            g.arch(),
            g.total_memory as f64 / (1u64 << 30) as f64,
            g.multiprocessors
        );
    }
    println!("{nvrtc}");
    Ok(())
}
