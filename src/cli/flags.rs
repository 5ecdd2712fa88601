//! Flag groups several subcommands share, flattened into their arguments:
//! the options of a scoring run ([`RunFlags`]), of fast training
//! ([`TrainFlags`]) and of a ground-truth table ([`TruthFlags`]). Each
//! turns into the library's options; the checks are the library's.

use clap::Args;
use dasnas::data::cifar::Dataset;
use dasnas::error::{Error, Result};
use dasnas::ops::conv2d::ConvAlgo;
use dasnas::run::{Images, Names, RunOptions, TrainingOptions};
use dasnas::runtime::DeviceKind;
use dasnas::space::{Arch, Space, SpaceOptions};
use dasnas::train::{LrSchedule, SgdConfig};
use std::path::PathBuf;

/// Options shared by the commands that run networks.
#[derive(Args, Clone)]
pub struct RunFlags {
    /// Search space.
    #[arg(long, default_value = "nb201")]
    pub space: Space,
    /// Scoring batch: `gaussian` (seeded N(0,1) images) or a CIFAR binary file.
    #[arg(long, default_value = "gaussian")]
    pub data: String,
    /// Dataset of a CIFAR file (normalisation constants, label bytes).
    #[arg(long, default_value = "cifar10")]
    pub dataset: Dataset,
    /// Images in the scoring batch (B); a CIFAR file gives its first B images.
    #[arg(long, default_value_t = dasnas::run::DEFAULT_BATCH)]
    pub batch: usize,
    /// Seed of the weights, the Gaussian inputs and the sampled cells.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores). Scores do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Compute device: `auto` (the first GPU when one works, else the CPU,
    /// with a notice on stderr), `cpu`, `cuda` (GPU 0) or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: DeviceKind,
    /// Cells in flight on a GPU (one CUDA stream and host thread each).
    #[arg(long, default_value_t = dasnas::run::DEFAULT_LANES)]
    pub lanes: usize,
    /// DARTS space: channels C of the first cells (DARTS's --init_channels;
    /// default 16). Short for --space-option init_channels=C.
    #[arg(long)]
    pub init_channels: Option<usize>,
    /// DARTS space: number of cells (DARTS's --layers; default 8). Short
    /// for --space-option layers=L.
    #[arg(long)]
    pub layers: Option<usize>,
    /// NB101 weight init: `default` (uniform ±1/√fan_in, as every space) or
    /// `naswot` (the NASWOT code's He-normal fan-out convs, N(0, 0.01)
    /// classifier). Short for --space-option init=INIT.
    #[arg(long)]
    pub init: Option<String>,
    /// NB201 and DARTS: which ReLUs are units. `functional` (default): those
    /// whose value can reach the output (a `none` edge is no edge);
    /// `graph`: the NASWOT code's rule, `none` as x·0, so every ReLU with a
    /// graph path to the output. Short for --space-option count=RULE.
    #[arg(long)]
    pub count: Option<String>,
    /// NB101 space: channels of the stem and the first stack (NB101: 128;
    /// the NASWOT code's NB101 runs used 16). Short for --space-option
    /// stem_channels=C.
    #[arg(long)]
    pub stem_channels: Option<usize>,
    /// An option of the search space's network, KEY=VALUE (repeatable); a
    /// space rejects keys it does not take.
    #[arg(long = "space-option", value_name = "KEY=VALUE")]
    pub space_option: Vec<String>,
    /// CPU conv algorithm: `exact` (direct convolution, the reference) or
    /// `fast` (Winograd F(4x4,3x3) for 3x3 stride-1 convs of 32 to 256
    /// channels, equal up to rounding; docs/results.md, "Fast convolution",
    /// measures the agreement of the scores). The CUDA backend runs exact convs either
    /// way. Result lines record `fast` in their run stamp
    #[arg(long, default_value = "exact", value_parser = parse_conv_algo)]
    pub conv: ConvAlgo,
    /// CPU cells scored at once, each on threads/N threads (default: one
    /// per 8 threads, at least 1: on few cores one cell's ops use them all;
    /// on many, several cells keep them busy). Scores do not depend on it;
    /// memory grows with it
    #[arg(long, value_name = "N")]
    pub cells_in_flight: Option<usize>,
}

fn parse_conv_algo(s: &str) -> std::result::Result<ConvAlgo, String> {
    ConvAlgo::parse(s).map_err(|e| e.to_string())
}

impl RunFlags {
    /// The space options of --space-option and the flags that stand for them.
    pub fn space_options(&self) -> Result<SpaceOptions> {
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

    /// The architectures built with this run's space options.
    pub fn sized_all(&self, archs: Vec<Arch>) -> Result<Vec<Arch>> {
        let opts = self.space_options()?;
        archs.into_iter().map(|a| a.with_options(&opts)).collect()
    }

    /// Sizes the process's worker pool from --threads (a program sizes
    /// the pool once; scores do not depend on it).
    pub fn set_threads(&self) -> Result<()> {
        if let Some(t) = self.threads {
            dasnas::run::check_threads("--threads", t)?;
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build_global()
                .map_err(|e| Error::Arg(format!("--threads {t}: {e}")))?;
        }
        Ok(())
    }

    /// The library's run options of these flags (no training, one repeat,
    /// no SWAP: the subcommand adds those it has).
    pub fn options(&self) -> Result<RunOptions> {
        self.set_threads()?;
        let mut o = RunOptions::new(self.space);
        o.names = Names::FLAGS;
        o.space_options = self.space_options()?;
        o.images = Images::parse(&self.data);
        o.dataset = self.dataset;
        o.batch = Some(self.batch);
        o.seed = self.seed;
        o.device = self.device;
        o.lanes = self.lanes;
        o.conv = self.conv;
        o.cells_in_flight = self.cells_in_flight;
        Ok(o)
    }
}

/// Fast-training options (`score --train-steps K`, `train`).
#[derive(Args, Clone)]
pub struct TrainFlags {
    /// CIFAR binary file of labelled training images. Default: the --data
    /// file (an error if --data is `gaussian`).
    #[arg(long)]
    pub train_data: Option<PathBuf>,
    /// Records of the training file to draw batches from, `START:END`
    /// (END exclusive). Default: every record, except that when the training
    /// file is the --data file its first --batch records (the scoring batch)
    /// are left out, so that cells are never trained on the images they are
    /// scored on.
    #[arg(long)]
    pub train_records: Option<String>,
    /// Images per training batch (drawn with --seed, epoch by epoch).
    #[arg(long, default_value_t = 64)]
    pub train_batch: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Learning-rate schedule over the K steps: `cosine` (lr·(1+cos(πt/K))/2) or `constant`.
    #[arg(long, default_value = "cosine")]
    pub lr_schedule: LrSchedule,
    /// SGD momentum (0 disables it).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay, applied to every parameter (BatchNorm and biases
    /// included, as NAS-Bench-201's training does).
    #[arg(long, default_value_t = 5e-4)]
    pub wd: f64,
    /// Augment training images: random 32x32 crop of the image padded by 4,
    /// then a horizontal flip with probability 1/2.
    #[arg(long)]
    pub augment: bool,
}

impl TrainFlags {
    /// The library's training options of `steps` steps.
    pub fn options(&self, steps: usize) -> Result<TrainingOptions> {
        let records = self.train_records.as_deref().map(parse_range).transpose()?;
        Ok(TrainingOptions {
            steps,
            data: self.train_data.clone(),
            records,
            batch: self.train_batch,
            sgd: SgdConfig {
                lr: self.lr,
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.wd,
                schedule: self.lr_schedule,
            },
            augment: self.augment,
        })
    }
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

/// A ground-truth table: a CSV file, the column naming each cell, the
/// column of values.
#[derive(Args, Clone)]
pub struct TruthFlags {
    /// Truth column holding the architecture string.
    #[arg(long, default_value = "arch_str")]
    pub key: String,
    /// Truth column of values (accuracies).
    #[arg(long, default_value = "cifar10_test_acc")]
    pub target: String,
}

/// Prints a report as one JSON object or as text.
pub fn print_report<R: serde::Serialize + std::fmt::Display>(r: &R, json: bool) -> Result<()> {
    if json {
        let text = serde_json::to_string(r).map_err(|e| Error::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{r}");
    }
    Ok(())
}

/// Prints what opening a run had to say, one `dasnas: ` line each.
pub fn print_notices(notices: &[String]) {
    for n in notices {
        eprintln!("dasnas: {n}");
    }
}
