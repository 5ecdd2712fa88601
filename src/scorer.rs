//! The scorer a user opens once and scores many cells with, on either
//! device, untrained or after fast training — what the command line, the
//! search and (later) the Python package all call.

use crate::data::cifar::CifarImages;
use crate::error::{Error, Result};
use crate::exec::cpu::PassOptions;
use crate::exec::cpu_lanes::{default_cells_in_flight, CpuLanes};
use crate::exec::cuda::executor::GpuScorer;
use crate::exec::CellTiming;
use crate::measures::pass::{passes, GradientDevice};
use crate::measures::MeasureSet;
use crate::net::Graph;
use crate::ops::conv2d::ConvAlgo;
use crate::runtime::DeviceKind;
use crate::score::Scores;
use crate::space::Arch;
use crate::tensor::Tensor;
use crate::train::batches::{Augment, LabelledBatches};
use crate::train::{SgdConfig, TrainStats};
use std::ops::Range;
use std::sync::Arc;

/// The scores of one cell, where its time went, and (after fast
/// training) the training summary.
#[derive(Clone, Debug, PartialEq)]
pub struct CellResult {
    /// The cell's scores.
    pub scores: Scores,
    /// Wall time of the scoring, by phase.
    pub timing: CellTiming,
    /// Set when the cell was fast-trained before scoring.
    pub train: Option<TrainStats>,
    /// The measures computed beyond the scoring pass, by name
    /// ([`Scorer::set_measures`]); `None` where a value is not a number.
    pub measures: Vec<(&'static str, Option<f64>)>,
}

impl CellResult {
    /// The JSON object `dasnas score` writes for this cell: `arch`, `wot`,
    /// `d`, `n_units`, `ln_n_units`, `das`, `singular`, `das@A` for each of
    /// `extra_alphas` (`batch` images), `swap`, `swap_reg`, `params` and
    /// `flops` where known, each measure of [`Self::measures`] by name,
    /// `ms`, and after training
    /// `train_steps`, `train_loss`, `train_acc`, `train_ms`. On the CPU `ms`
    /// is the scoring alone and `train_ms` the training; on a GPU both are
    /// the cell's share of its chunk's wall time, training included.
    pub fn to_json(&self, arch: &str, extra_alphas: &[f64], batch: usize) -> serde_json::Value {
        let s = &self.scores;
        let ms = |secs: f64| (secs * 1e4).round() / 10.0;
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
        let optional = [
            ("swap", s.swap.map(serde_json::Value::from)),
            ("swap_reg", s.swap_reg.map(serde_json::Value::from)),
            ("params", s.params.map(serde_json::Value::from)),
            ("flops", s.flops.map(serde_json::Value::from)),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                obj[k] = v;
            }
        }
        for &(k, v) in &self.measures {
            obj[k] = serde_json::json!(v);
        }
        if let Some(t) = &self.train {
            obj["train_steps"] = serde_json::json!(t.steps);
            obj["train_loss"] = serde_json::json!(t.final_loss);
            obj["train_acc"] = serde_json::json!(t.final_accuracy);
            obj["train_ms"] = serde_json::json!(ms(t.seconds));
        }
        obj["ms"] = serde_json::json!(ms(self.timing.total_s()));
        obj
    }
}

/// Scores a network on the CPU: weights from `seed`, BatchNorm in
/// training mode on `batch` (NHWC), DAS with `alpha`.
pub fn score_graph(graph: &Graph, batch: &Tensor, seed: u64, alpha: f64) -> Result<CellResult> {
    let t0 = std::time::Instant::now();
    let params = crate::net::init::init_params(graph, seed);
    let build_s = t0.elapsed().as_secs_f64();
    let mut r = score_graph_with_params(graph, &params, batch, alpha)?;
    r.timing.build_s = build_s;
    Ok(r)
}

/// Scores a network on the CPU with the given parameters (indexed like
/// `graph.params`, e.g. after [`crate::train::train_cpu`]): BatchNorm in
/// training mode on `batch` (NHWC), DAS with `alpha`. [`score_graph`] is
/// this with the seeded initial parameters. `timing.build_s` is 0.
pub fn score_graph_with_params(
    graph: &Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    alpha: f64,
) -> Result<CellResult> {
    score_graph_with(graph, params, batch, alpha, PassOptions::default())
}

/// [`score_graph_with_params`] with the pass options `opts` (SWAP from
/// the same pass, the conv algorithm).
pub fn score_graph_with(
    graph: &Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    alpha: f64,
    opts: PassOptions,
) -> Result<CellResult> {
    let (scores, timing) = crate::exec::cpu::score_pass(graph, params, batch, alpha, opts)?;
    Ok(CellResult {
        scores,
        timing,
        train: None,
        measures: Vec::new(),
    })
}

/// Builds the architecture's network and scores it on the CPU (see
/// [`score_graph`]).
pub fn score_arch(arch: &Arch, batch: &Tensor, seed: u64, alpha: f64) -> Result<CellResult> {
    let t0 = std::time::Instant::now();
    let graph = arch.network()?;
    let build = t0.elapsed().as_secs_f64();
    let mut r = score_graph(&graph, batch, seed, alpha)?;
    r.timing.build_s += build;
    Ok(r)
}

/// Fast training of each cell before it is scored (docs/training.md): `steps`
/// SGD steps of softmax cross-entropy on labelled batches of `batch`
/// images drawn (with the scoring seed) from records `pool` of `images`.
#[derive(Clone, Debug)]
pub struct Training {
    /// SGD steps per cell.
    pub steps: usize,
    /// Optimiser hyper-parameters and learning-rate schedule.
    pub config: SgdConfig,
    /// The labelled images the batches are drawn from.
    pub images: Arc<CifarImages>,
    /// Indices of the records of `images` the batches are drawn from.
    pub pool: Vec<usize>,
    /// Images per training step.
    pub batch: usize,
    /// Augmentation of the training images (random crop, flip).
    pub augment: Augment,
}

impl Training {
    /// Training on records `records` of `images` (all of them when
    /// `None`), checked: a non-empty pool inside the file, a batch of at
    /// least one image whose labelled images fit in the host's available
    /// memory (the check that needs no network, see
    /// [`crate::train::budget::check_train_batch`]; each cell's training step is
    /// checked with its plan before its first batch is drawn), valid SGD
    /// hyper-parameters.
    pub fn new(
        images: Arc<CifarImages>,
        records: Option<Range<usize>>,
        steps: usize,
        batch: usize,
        config: SgdConfig,
        augment: Augment,
    ) -> Result<Training> {
        if steps == 0 {
            return Err(Error::Arg(
                "training needs at least 1 step (to score untrained, set no training)".into(),
            ));
        }
        let records = records.unwrap_or(0..images.len());
        if records.is_empty() || records.end > images.len() {
            return Err(Error::Arg(format!(
                "training records {}..{} are not a non-empty range of the {} records",
                records.start,
                records.end,
                images.len()
            )));
        }
        if batch == 0 {
            return Err(Error::Arg(
                "the training batch must have at least 1 image".into(),
            ));
        }
        crate::train::budget::check_train_batch(
            crate::train::TRAIN_BATCH,
            batch,
            crate::train::batches::batch_shape(1).per_sample(),
        )?;
        config
            .validate()
            .map_err(|e| e.context("training options"))?;
        Ok(Training {
            steps,
            config,
            images,
            pool: records.collect(),
            batch,
            augment,
        })
    }

    /// The batches of every step, drawn with `seed`.
    pub fn batches(&self, seed: u64) -> Result<LabelledBatches<'_>> {
        LabelledBatches::new(
            &self.images,
            self.pool.clone(),
            self.batch,
            seed,
            self.augment,
        )
    }

    /// `seed`'s weights for `graph`, trained [`Self::steps`] steps on the
    /// CPU, and the training summary.
    pub fn train_cpu(
        &self,
        graph: &crate::net::Graph,
        seed: u64,
    ) -> Result<(Vec<Vec<f32>>, TrainStats)> {
        let mut params = crate::net::init::init_params(graph, seed);
        let mut batches = self.batches(seed)?;
        let st = crate::train::train_cpu(
            graph,
            &mut params,
            &mut batches,
            &self.config,
            self.steps,
            |_, _| Ok(()),
        )?;
        Ok((params, st))
    }
}

/// Where fast training's labelled images come from: records of a CIFAR
/// binary file.
#[derive(Clone, Debug)]
pub struct TrainingFile<'a> {
    /// The CIFAR binary file.
    pub path: &'a std::path::Path,
    /// Its dataset (label bytes, normalisation).
    pub dataset: crate::data::cifar::Dataset,
    /// The records to draw from; `None`: every record after the first `skip`.
    pub records: Option<Range<usize>>,
    /// What the caller calls `records` (`--train-records`,
    /// `train_records`), for the message when they are not in the file.
    pub records_name: &'a str,
    /// What the caller calls the training batch (`--train-batch`,
    /// `train_batch`), for the message when it is empty or cannot fit.
    pub batch_name: &'a str,
    /// Records left out by default: a caller training on the file its
    /// scoring batch came from skips that batch, so that cells are never
    /// trained on the images they are scored on.
    pub skip: usize,
}

impl TrainingFile<'_> {
    /// The training of `steps` steps of `batch` images from this file, with
    /// the checks of [`Training::new`]; the file is read only after a batch
    /// is known to fit in memory.
    pub fn training(
        &self,
        steps: usize,
        batch: usize,
        config: SgdConfig,
        augment: Augment,
    ) -> Result<Training> {
        if batch == 0 {
            return Err(Error::Arg(format!(
                "{} must be at least 1",
                self.batch_name
            )));
        }
        crate::train::budget::check_train_batch(
            self.batch_name,
            batch,
            crate::train::batches::batch_shape(1).per_sample(),
        )?;
        let images = CifarImages::load(self.path, self.dataset)?;
        let skip = self.skip;
        let records = match &self.records {
            Some(r) if r.is_empty() || r.end > images.len() => {
                return Err(Error::Arg(format!(
                    "{} {}:{}: out of range (expected START:END with START < END <= {}, the \
                     records of {})",
                    self.records_name,
                    r.start,
                    r.end,
                    images.len(),
                    self.path.display()
                )))
            }
            Some(r) => r.clone(),
            None => skip.min(images.len())..images.len(),
        };
        if records.is_empty() {
            return Err(Error::Arg(format!(
                "no training records: {} has {} records and the scoring batch takes the first \
                 {skip} (choose the training records or another training file)",
                self.path.display(),
                images.len(),
            )));
        }
        Training::new(
            Arc::new(images),
            Some(records),
            steps,
            batch,
            config,
            augment,
        )
    }
}

/// `given` labels, or labels drawn from `seed` over `graph`'s classes.
fn measure_labels(given: Option<&[u32]>, graph: &Graph, seed: u64, n: usize) -> Vec<u32> {
    match given {
        Some(l) => l.to_vec(),
        None => {
            let classes = graph.nodes[graph.output].shape.c;
            crate::measures::seeded_labels(seed, n, classes)
        }
    }
}

/// The device a [`Scorer`] scores on: the CPU with its batch, or the GPU
/// scorer (which holds its own copy of the batch).
enum ScoringDevice {
    Cpu { batch: Tensor },
    Cuda(Box<GpuScorer>),
}

/// The batches of a training run uploaded to the GPU, for one seed.
struct Uploaded {
    seed: u64,
    data: crate::train::cuda::TrainData,
}

/// A scorer on the device chosen by a [`DeviceKind`]: the CPU executor, or the
/// GPU scorer (several cells in flight, only the scores copied back); with
/// [`Scorer::set_training`], every cell is fast-trained first, on the same
/// device.
pub struct Scorer {
    device: ScoringDevice,
    training: Option<Training>,
    uploaded: Option<Uploaded>,
    /// This scorer's own worker threads ([`Scorer::set_threads`]); `None`:
    /// rayon's global pool.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// SWAP from each pass ([`Scorer::set_swap`]).
    swap: Option<Swap>,
    /// The convs' algorithm on the CPU ([`Scorer::set_conv`]).
    conv: ConvAlgo,
    /// CPU cells in flight ([`Scorer::set_cells_in_flight`]; `None`: chosen
    /// from the thread count).
    in_flight: Option<usize>,
    /// The CPU lanes' thread pools, built for `(lanes, threads)`.
    lanes: Option<CpuLanes>,
    /// The measures beyond the scoring pass ([`Scorer::set_measures`]).
    measures: MeasureSet,
    /// The scoring batch's labels, when its images have them.
    labels: Option<Vec<u32>>,
    /// A host copy of the scoring batch on a GPU, for the measures' passes.
    host_batch: Option<Tensor>,
}

/// SWAP's settings ([`Scorer::set_swap`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Swap {
    /// μ and σ of SWAP's regularisation `exp(−(P − μ)² / σ)`, P the
    /// parameter count in thousands (SWAP's code); `None`: no `swap_reg`.
    pub regularise: Option<(f64, f64)>,
}

impl Swap {
    /// Checked settings: μ and σ finite, σ > 0.
    pub fn new(regularise: Option<(f64, f64)>) -> Result<Swap> {
        if let Some((mu, sigma)) = regularise {
            if !mu.is_finite() {
                return Err(Error::Arg(format!("SWAP's μ {mu} is not a finite number")));
            }
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(Error::Arg(format!(
                    "SWAP's σ {sigma} must be a finite number above 0"
                )));
            }
        }
        Ok(Swap { regularise })
    }
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("device", &self.describe())
            .field("training", &self.training.as_ref().map(|t| t.steps))
            .finish()
    }
}

impl Scorer {
    /// Opens device `kind` to score `batch` (`lanes` concurrent cell
    /// pipelines on a GPU). With [`DeviceKind::Auto`] a GPU that cannot be
    /// used (no driver, no GPU, no NVRTC, a kernel that does not compile)
    /// makes it fall back to the CPU, and the second value is the one-line
    /// reason to tell the user; an explicit `cuda` fails instead. On a GPU
    /// the second value carries what the user should know about how the
    /// kernels were loaded (PTX instead of CUBIN for a GPU newer than
    /// NVRTC), if anything.
    pub fn open(kind: DeviceKind, batch: Tensor, lanes: usize) -> Result<(Scorer, Option<String>)> {
        if lanes == 0 {
            return Err(Error::Arg("lanes must be at least 1".into()));
        }
        if batch.shape.n < 2 {
            return Err(Error::Arg(format!(
                "a scoring batch of {} image(s) is too small: the kernel matrix needs at least 2",
                batch.shape.n
            )));
        }
        let wrap = |device| Scorer {
            device,
            training: None,
            uploaded: None,
            pool: None,
            swap: None,
            conv: ConvAlgo::Exact,
            in_flight: None,
            lanes: None,
            measures: MeasureSet::none(),
            labels: None,
            host_batch: None,
        };
        // A CPU batch whose B×B matrices cannot fit is refused here, before
        // the first cell (each cell is checked again with its plan).
        let cpu_fits = |b: &Tensor| {
            crate::runtime::budget::check_host_batch(b.shape.n, b.shape.per_sample(), true)
        };
        match kind {
            DeviceKind::Cpu => {
                cpu_fits(&batch)?;
                Ok((wrap(ScoringDevice::Cpu { batch }), None))
            }
            DeviceKind::Cuda(n) => {
                let mut s = wrap(Self::open_cuda(n, &batch, lanes)?);
                s.host_batch = Some(batch);
                let notes = s.device_notes();
                Ok((s, notes))
            }
            DeviceKind::Auto => match Self::open_cuda(0, &batch, lanes) {
                Ok(b) => {
                    let mut s = wrap(b);
                    s.host_batch = Some(batch);
                    let notes = s.device_notes();
                    Ok((s, notes))
                }
                Err(e) => {
                    cpu_fits(&batch)?;
                    Ok((
                        wrap(ScoringDevice::Cpu { batch }),
                        Some(format!("no usable GPU ({e}); running on the CPU")),
                    ))
                }
            },
        }
    }

    fn open_cuda(ordinal: usize, batch: &Tensor, lanes: usize) -> Result<ScoringDevice> {
        let dev = crate::runtime::cuda::CudaDevice::open(ordinal)?;
        let scorer = GpuScorer::new(&dev, batch, lanes)?;
        Ok(ScoringDevice::Cuda(Box::new(scorer)))
    }

    /// Runs this scorer's CPU work on a pool of its own `threads` worker
    /// threads (`None`: rayon's global pool, all cores unless the program
    /// set it otherwise). A library caller (the Python package, the C ABI)
    /// sets it per scorer, where a program would size the global pool once.
    /// Scores do not depend on it.
    pub fn set_threads(&mut self, threads: Option<usize>) -> Result<()> {
        self.pool = match threads {
            None => None,
            Some(0) => return Err(Error::Arg("threads must be at least 1".into())),
            Some(t) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| Error::Arg(format!("threads {t}: {e}")))?,
            )),
        };
        Ok(())
    }

    /// Counts SWAP (and with μ, σ its regularised form) for every cell
    /// scored from now on, from the same forward pass (`None`: not). On a
    /// GPU each cell's codes are copied back for it.
    pub fn set_swap(&mut self, swap: Option<Swap>) {
        self.swap = swap;
    }

    /// SWAP's settings, when SWAP is counted ([`Self::set_swap`]).
    pub fn swap(&self) -> Option<Swap> {
        self.swap
    }

    /// Computes the convs of every CPU pass from now on by `conv`
    /// ([`ConvAlgo::Fast`]: Winograd F(4×4, 3×3) where it is faster, equal
    /// up to rounding). Returns a notice for the user when it changes
    /// nothing: the CUDA backend has no fast algorithm yet and runs exact
    /// convs; fast training trains with exact convs and scores with `conv`.
    pub fn set_conv(&mut self, conv: ConvAlgo) -> Option<String> {
        self.conv = conv;
        match (&self.device, conv) {
            (ScoringDevice::Cuda(_), ConvAlgo::Fast) => {
                Some("the CUDA backend has no fast conv algorithm yet: convs run exact".to_string())
            }
            _ => None,
        }
    }

    /// Scores `n` CPU cells at once (`None`: [`default_cells_in_flight`]
    /// of the thread count), each on `threads / n` of the scorer's threads
    /// (at least one): cell-level parallelism, for many cores, where one
    /// cell's ops are too small to spread over all of them. Scores do not
    /// depend on it; memory grows with it (one set of activation buffers
    /// per cell in flight). With fast training set, cells are trained and
    /// scored one at a time whatever this says. An error for 0.
    pub fn set_cells_in_flight(&mut self, n: Option<usize>) -> Result<()> {
        if n == Some(0) {
            return Err(Error::Arg("cells in flight must be at least 1".into()));
        }
        self.in_flight = n;
        self.lanes = None;
        Ok(())
    }

    /// The threads this scorer's CPU work runs on.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(p) => p.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// The CPU cells in flight this scorer uses (1 on a GPU).
    pub fn cells_in_flight(&self) -> usize {
        match &self.device {
            ScoringDevice::Cpu { .. } => {
                let t = self.threads();
                self.in_flight
                    .unwrap_or_else(|| default_cells_in_flight(t))
                    .min(t)
            }
            ScoringDevice::Cuda(_) => 1,
        }
    }

    /// The convs' algorithm of CPU passes ([`Self::set_conv`]).
    pub fn conv(&self) -> ConvAlgo {
        self.conv
    }

    /// Fast-trains every cell scored from now on (`None`: score untrained).
    /// An error when the measures set ([`Self::set_measures`]) cannot be
    /// computed after training on this device.
    pub fn set_training(&mut self, training: Option<Training>) -> Result<()> {
        self.check_measures(&self.measures, training.is_some())?;
        self.training = training;
        self.uploaded = None;
        Ok(())
    }

    /// Computes `measures` for every cell scored from now on, beside the
    /// scores (docs/measures.md); SWAP's count is turned on when they ask
    /// for it. `labels` are the scoring batch's labels, one per image, for
    /// the measures that take a loss; `None`: labels drawn from each
    /// cell's weight seed, uniform over the network's classes
    /// ([`crate::measures::seeded_labels`]). An error for a measure the
    /// device cannot compute yet, or labels that do not fit the batch.
    pub fn set_measures(&mut self, measures: MeasureSet, labels: Option<Vec<u32>>) -> Result<()> {
        self.check_measures(&measures, self.training.is_some())?;
        if let Some(l) = &labels {
            if l.len() != self.batch_size() {
                return Err(Error::Arg(format!(
                    "{} labels for a scoring batch of {} images",
                    l.len(),
                    self.batch_size()
                )));
            }
        }
        if measures.wants_swap() && self.swap.is_none() {
            self.swap = Some(Swap::default());
        }
        self.measures = measures;
        self.labels = labels;
        Ok(())
    }

    /// The measures computed beyond the scoring pass.
    pub fn measures(&self) -> &MeasureSet {
        &self.measures
    }

    /// The scoring batch (NHWC), on the host.
    pub fn scoring_batch(&self) -> Result<&Tensor> {
        match (&self.device, &self.host_batch) {
            (ScoringDevice::Cpu { batch }, _) => Ok(batch),
            (_, Some(batch)) => Ok(batch),
            _ => Err(Error::Internal("no host copy of the scoring batch".into())),
        }
    }

    /// The labels the measures' losses use for `graph`'s cells with weight
    /// seed `seed`: the scoring batch's own ([`Self::set_measures`]), or
    /// drawn from the seed ([`crate::measures::seeded_labels`]).
    pub fn measure_labels(&self, graph: &Graph, seed: u64) -> Vec<u32> {
        measure_labels(self.labels.as_deref(), graph, seed, self.batch_size())
    }

    fn check_measures(&self, measures: &MeasureSet, training: bool) -> Result<()> {
        let cuda = matches!(self.device, ScoringDevice::Cuda(_));
        if cuda && training && measures.needs_passes() {
            return Err(Error::Arg(format!(
                "on a GPU, the measures {} are computed at initialisation only for now: \
                 score them without fast training, or on the CPU",
                measures.stamp().unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// The training set with [`Self::set_training`], if any.
    pub fn training(&self) -> Option<&Training> {
        self.training.as_ref()
    }

    /// The GPU's notes on how its kernels were loaded, joined; `None` when
    /// there are none (or on the CPU).
    fn device_notes(&self) -> Option<String> {
        match &self.device {
            ScoringDevice::Cpu { .. } => None,
            ScoringDevice::Cuda(g) => {
                let notes = g.device().notes();
                (!notes.is_empty()).then(|| notes.join("; "))
            }
        }
    }

    /// Images in the scoring batch (B).
    pub fn batch_size(&self) -> usize {
        match &self.device {
            ScoringDevice::Cpu { batch } => batch.shape.n,
            ScoringDevice::Cuda(g) => g.batch_size(),
        }
    }

    /// `cpu` or `cuda:N (name)`, for messages and bench reports.
    pub fn describe(&self) -> String {
        match &self.device {
            ScoringDevice::Cpu { .. } => "cpu".into(),
            ScoringDevice::Cuda(g) => {
                let i = g.device().info();
                format!("cuda:{} ({})", i.ordinal, i.name)
            }
        }
    }

    /// The GPU scorer, when this scorer runs on a GPU.
    pub fn gpu(&mut self) -> Option<&mut GpuScorer> {
        match &mut self.device {
            ScoringDevice::Cpu { .. } => None,
            ScoringDevice::Cuda(g) => Some(g),
        }
    }

    /// How many cells to hand [`Self::score_archs`] at a time to keep the
    /// device busy: one on the CPU, enough for every lane of a GPU (fewer
    /// when training, whose chunks take longer). A caller that writes each
    /// block's results before the next loses at most one block when killed.
    pub fn block_size(&self) -> usize {
        match &self.device {
            ScoringDevice::Cpu { .. } => match self.cells_in_flight() {
                1 => 1,
                k => 4 * k,
            },
            ScoringDevice::Cuda(g) if self.training.is_some() => 16 * g.lanes(),
            ScoringDevice::Cuda(g) => 64 * g.lanes(),
        }
    }

    /// Scores `archs` (weights from `seed`, DAS with `alpha`), in order,
    /// each fast-trained first when training is set. An error names the
    /// cell it happened in.
    pub fn score_archs(
        &mut self,
        archs: &[&Arch],
        seed: u64,
        alpha: f64,
    ) -> Result<Vec<CellResult>> {
        match self.pool.clone() {
            Some(pool) => pool.install(|| self.score_archs_here(archs, seed, alpha)),
            None => self.score_archs_here(archs, seed, alpha),
        }
    }

    /// [`Self::score_archs`] on the current thread pool: the scores of
    /// the device, then the measures of the network itself (parameters,
    /// multiply-adds) and SWAP's regularised form.
    fn score_archs_here(
        &mut self,
        archs: &[&Arch],
        seed: u64,
        alpha: f64,
    ) -> Result<Vec<CellResult>> {
        // Each network is built once: the device scores it and its own
        // measures come from the same graph.
        let mut built = Vec::with_capacity(archs.len());
        let mut graphs = Vec::with_capacity(archs.len());
        for a in archs {
            let t0 = std::time::Instant::now();
            graphs.push(a.network().map_err(|e| e.context(format!("cell {a}")))?);
            built.push(t0.elapsed().as_secs_f64());
        }
        let mut results = self.device_scores(archs, &graphs, seed, alpha)?;
        for ((graph, r), build_s) in graphs.iter().zip(&mut results).zip(built) {
            r.timing.build_s += build_s;
            let params = graph.param_count();
            r.scores.params = Some(params);
            r.scores.flops = Some(graph.macs());
            if let (
                Some(swap),
                Some(Swap {
                    regularise: Some((mu, sigma)),
                }),
            ) = (r.scores.swap, self.swap)
            {
                r.scores.swap_reg = Some(crate::score::swap::regularised(swap, params, mu, sigma));
            }
        }
        Ok(results)
    }

    /// The scores of `archs` (their networks: `graphs`) on this scorer's
    /// device.
    fn device_scores(
        &mut self,
        archs: &[&Arch],
        graphs: &[Graph],
        seed: u64,
        alpha: f64,
    ) -> Result<Vec<CellResult>> {
        let swap = self.swap.is_some();
        let (in_flight, threads) = (self.cells_in_flight(), self.threads());
        let pass = PassOptions {
            swap,
            conv: self.conv,
        };
        let named = |a: &Arch, e: Error| e.context(format!("cell {a}"));
        let (measures, labels, host_batch) = (&self.measures, &self.labels, &self.host_batch);
        // The measures beyond the scoring pass of one cell, into its result.
        let measure = |r: &mut CellResult,
                       graph: &Graph,
                       params: &[Vec<f32>],
                       batch: &Tensor,
                       device: &GradientDevice<'_>|
         -> Result<()> {
            if measures.is_empty() || !measures.needs_passes() {
                return Ok(());
            }
            let t0 = std::time::Instant::now();
            let labels = measure_labels(labels.as_deref(), graph, seed, batch.shape.n);
            let p = passes(measures, graph, params, batch, &labels, seed, device)?;
            r.measures = crate::measures::evaluate(measures, &p)?;
            r.timing.measures_s = t0.elapsed().as_secs_f64();
            r.timing.measures_by_pass = p.seconds.clone();
            Ok(())
        };
        // A GPU cell's result: the device time of its pass (the GPU scorer
        // times a cell as a whole), and its training summary if trained.
        let from_gpu = |scores, seconds, train| CellResult {
            scores,
            timing: CellTiming {
                ops_s: seconds,
                ..Default::default()
            },
            train,
            measures: Vec::new(),
        };
        match (&mut self.device, &self.training) {
            (ScoringDevice::Cpu { batch }, None) => {
                let one = |i: usize| -> Result<CellResult> {
                    let (a, graph) = (archs[i], &graphs[i]);
                    let t0 = std::time::Instant::now();
                    let params = crate::net::init::init_params(graph, seed);
                    let mut r = score_graph_with(graph, &params, batch, alpha, pass)
                        .map_err(|e| named(a, e))?;
                    // Drawing the weights (building the network is added by
                    // the caller).
                    r.timing.build_s = t0.elapsed().as_secs_f64()
                        - r.timing.ops_s
                        - r.timing.codes_s
                        - r.timing.logdet_s;
                    measure(&mut r, graph, &params, batch, &GradientDevice::Cpu)
                        .map_err(|e| named(a, e))?;
                    Ok(r)
                };
                let k = in_flight.min(archs.len());
                if k <= 1 {
                    return (0..archs.len()).map(one).collect();
                }
                let lanes = match &self.lanes {
                    Some(l) if l.built_for(in_flight, threads) => l,
                    _ => self.lanes.insert(CpuLanes::new(in_flight, threads)?),
                };
                lanes.run(archs.len(), one)
            }
            (ScoringDevice::Cpu { batch }, Some(t)) => archs
                .iter()
                .zip(graphs)
                .map(|(a, graph)| {
                    let t0 = std::time::Instant::now();
                    let (params, st) = t.train_cpu(graph, seed).map_err(|e| named(a, e))?;
                    let mut r = score_graph_with(graph, &params, batch, alpha, pass)
                        .map_err(|e| named(a, e))?;
                    r.timing.build_s = t0.elapsed().as_secs_f64()
                        - st.seconds
                        - r.timing.ops_s
                        - r.timing.codes_s
                        - r.timing.logdet_s;
                    r.train = Some(st);
                    measure(&mut r, graph, &params, batch, &GradientDevice::Cpu)
                        .map_err(|e| named(a, e))?;
                    Ok(r)
                })
                .collect(),
            (ScoringDevice::Cuda(g), None) => {
                let cells = g.score(
                    archs.len(),
                    |i| Ok(graphs[i].clone()),
                    seed,
                    alpha,
                    None,
                    swap,
                )?;
                let mut results: Vec<CellResult> = cells
                    .into_iter()
                    .map(|c| from_gpu(c.scores, c.seconds, None))
                    .collect();
                if measures.needs_passes() {
                    let batch = host_batch
                        .as_ref()
                        .ok_or_else(|| Error::Internal("no host copy of the batch".into()))?;
                    let dev = GradientDevice::Cuda(g.device());
                    for ((r, graph), a) in results.iter_mut().zip(graphs).zip(archs) {
                        let params = crate::net::init::init_params(graph, seed);
                        measure(r, graph, &params, batch, &dev).map_err(|e| named(a, e))?;
                    }
                }
                Ok(results)
            }
            (ScoringDevice::Cuda(g), Some(t)) => {
                // The batches of every step are uploaded once per seed and
                // shared by the lanes.
                let data = match &mut self.uploaded {
                    Some(u) if u.seed == seed => &u.data,
                    slot => {
                        let mut batches = t.batches(seed)?;
                        let data = crate::train::cuda::TrainData::upload(
                            g.device(),
                            &mut batches,
                            t.steps,
                            t.config,
                        )?;
                        &slot.insert(Uploaded { seed, data }).data
                    }
                };
                let cells = crate::train::cuda::score_trained(
                    g,
                    archs.len(),
                    |i| Ok(graphs[i].clone()),
                    seed,
                    alpha,
                    data,
                    swap,
                )?;
                Ok(cells
                    .into_iter()
                    .map(|(c, st)| from_gpu(c.scores, c.seconds, Some(st)))
                    .collect())
            }
        }
    }
}
