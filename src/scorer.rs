//! The scorer a user opens once and scores many cells with, on either
//! device, untrained or after fast training — what the command line, the
//! search and (later) the Python package all call.

use crate::data::cifar::CifarImages;
use crate::device::cuda::executor::GpuScorer;
use crate::device::DeviceKind;
use crate::error::{Error, Result};
use crate::net::Graph;
use crate::ops::conv2d::ConvAlgo;
use crate::space::Arch;
use crate::train::batches::{Augment, LabelledBatches};
use crate::train::{SgdConfig, TrainStats};
use crate::{device, CellResult, CellTiming, Tensor};
use std::ops::Range;
use std::sync::Arc;

/// Fast training of each cell before it is scored (DESIGN.md §1): `steps`
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
            crate::train::budget::TRAIN_BATCH,
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
        crate::train::budget::check_train_batch(
            crate::train::budget::TRAIN_BATCH,
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

enum Backend {
    Cpu { batch: Tensor },
    Cuda(Box<GpuScorer>),
}

/// The batches of a training run uploaded to the GPU, for one seed.
struct Uploaded {
    seed: u64,
    data: crate::train::cuda::TrainData,
}

/// A scoring backend chosen by a [`DeviceKind`]: the CPU executor, or the
/// GPU scorer (several cells in flight, only the scores copied back); with
/// [`Scorer::set_training`], every cell is fast-trained first, on the same
/// device.
pub struct Scorer {
    backend: Backend,
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
}

/// CPU cells in flight: `pools.len()` lanes, each scoring one cell at a
/// time on its own rayon pool (its ops parallel over images inside), like
/// the GPU's lanes. Built for one thread count, reused across blocks.
struct CpuLanes {
    threads: usize,
    pools: Vec<rayon::ThreadPool>,
}

/// The CPU cells in flight for `threads` threads when the user does not
/// say: one cell at a time, its ops parallel over all threads, up to 8
/// threads; beyond, one cell per 8 threads. Measured on 2 cores (README,
/// "Cells in flight"): two cells on one thread each and one cell on two
/// threads score at the same rate there, so the rule keeps the lower
/// memory of one cell where op parallelism still has 16 or more images
/// per thread at B = 128, and adds cells where it would not.
pub fn default_cells_in_flight(threads: usize) -> usize {
    (threads / 8).max(1)
}

impl CpuLanes {
    /// `lanes` lanes sharing `threads` threads (each at least one).
    fn new(lanes: usize, threads: usize) -> Result<CpuLanes> {
        let per = (threads / lanes).max(1);
        let pools = (0..lanes)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(per)
                    .thread_name(move |j| format!("dasnas-cpu-lane{i}-{j}"))
                    .build()
                    .map_err(|e| Error::Arg(format!("cells in flight: thread pool: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CpuLanes { threads, pools })
    }

    /// `f(0..n)`, each call on one lane, lanes taking the next index as
    /// they finish; results in index order (the first error by index).
    fn run<T: Send>(&self, n: usize, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<Result<T>>>> =
            (0..n).map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for pool in &self.pools {
                let (next, slots, f) = (&next, &slots, &f);
                s.spawn(move || {
                    pool.install(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let r = f(i);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(r);
                        }
                    })
                });
            }
        });
        slots
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                m.into_inner()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Err(Error::Arg(format!("cell {i}: a CPU lane stopped"))))
            })
            .collect()
    }
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
        let wrap = |backend| Scorer {
            backend,
            training: None,
            uploaded: None,
            pool: None,
            swap: None,
            conv: ConvAlgo::Exact,
            in_flight: None,
            lanes: None,
        };
        // A CPU batch whose B×B matrices cannot fit is refused here, before
        // the first cell (each cell is checked again with its plan).
        let cpu_fits =
            |b: &Tensor| device::budget::check_host_batch(b.shape.n, b.shape.per_sample(), true);
        match kind {
            DeviceKind::Cpu => {
                cpu_fits(&batch)?;
                Ok((wrap(Backend::Cpu { batch }), None))
            }
            DeviceKind::Cuda(n) => {
                let s = wrap(Self::open_cuda(n, &batch, lanes)?);
                let notes = s.device_notes();
                Ok((s, notes))
            }
            DeviceKind::Auto => match Self::open_cuda(0, &batch, lanes) {
                Ok(b) => {
                    let s = wrap(b);
                    let notes = s.device_notes();
                    Ok((s, notes))
                }
                Err(e) => {
                    cpu_fits(&batch)?;
                    Ok((
                        wrap(Backend::Cpu { batch }),
                        Some(format!("no usable GPU ({e}); running on the CPU")),
                    ))
                }
            },
        }
    }

    fn open_cuda(ordinal: usize, batch: &Tensor, lanes: usize) -> Result<Backend> {
        let dev = device::cuda::CudaDevice::open(ordinal)?;
        let scorer = GpuScorer::new(&dev, batch, lanes)?;
        Ok(Backend::Cuda(Box::new(scorer)))
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

    /// Computes the convs of every CPU pass from now on by `conv`
    /// ([`ConvAlgo::Fast`]: Winograd F(4×4, 3×3) where it is faster, equal
    /// up to rounding). Returns a notice for the user when it changes
    /// nothing: the CUDA backend has no fast algorithm yet and runs exact
    /// convs; fast training trains with exact convs and scores with `conv`.
    pub fn set_conv(&mut self, conv: ConvAlgo) -> Option<String> {
        self.conv = conv;
        match (&self.backend, conv) {
            (Backend::Cuda(_), ConvAlgo::Fast) => {
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
        match &self.backend {
            Backend::Cpu { .. } => {
                let t = self.threads();
                self.in_flight
                    .unwrap_or_else(|| default_cells_in_flight(t))
                    .min(t)
            }
            Backend::Cuda(_) => 1,
        }
    }

    /// The convs' algorithm of CPU passes ([`Self::set_conv`]).
    pub fn conv(&self) -> ConvAlgo {
        self.conv
    }

    /// Fast-trains every cell scored from now on (`None`: score untrained).
    pub fn set_training(&mut self, training: Option<Training>) {
        self.training = training;
        self.uploaded = None;
    }

    /// The training set with [`Self::set_training`], if any.
    pub fn training(&self) -> Option<&Training> {
        self.training.as_ref()
    }

    /// The GPU's notes on how its kernels were loaded, joined; `None` when
    /// there are none (or on the CPU).
    fn device_notes(&self) -> Option<String> {
        match &self.backend {
            Backend::Cpu { .. } => None,
            Backend::Cuda(g) => {
                let notes = g.device().notes();
                (!notes.is_empty()).then(|| notes.join("; "))
            }
        }
    }

    /// Images in the scoring batch (B).
    pub fn batch_size(&self) -> usize {
        match &self.backend {
            Backend::Cpu { batch } => batch.shape.n,
            Backend::Cuda(g) => g.batch_size(),
        }
    }

    /// `cpu` or `cuda:N (name)`, for messages and bench reports.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Cpu { .. } => "cpu".into(),
            Backend::Cuda(g) => {
                let i = g.device().info();
                format!("cuda:{} ({})", i.ordinal, i.name)
            }
        }
    }

    /// The GPU scorer, when this scorer runs on a GPU.
    pub fn gpu(&mut self) -> Option<&mut GpuScorer> {
        match &mut self.backend {
            Backend::Cpu { .. } => None,
            Backend::Cuda(g) => Some(g),
        }
    }

    /// How many cells to hand [`Self::score_archs`] at a time to keep the
    /// device busy: one on the CPU, enough for every lane of a GPU (fewer
    /// when training, whose chunks take longer). A caller that writes each
    /// block's results before the next loses at most one block when killed.
    pub fn block_size(&self) -> usize {
        match &self.backend {
            Backend::Cpu { .. } => match self.cells_in_flight() {
                1 => 1,
                k => 4 * k,
            },
            Backend::Cuda(g) if self.training.is_some() => 16 * g.lanes(),
            Backend::Cuda(g) => 64 * g.lanes(),
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
        let pass = crate::device::cpu::PassOptions {
            swap,
            conv: self.conv,
        };
        let named = |a: &Arch, e: Error| e.context(format!("cell {a}"));
        // A GPU cell's result: the device time of its pass (the GPU scorer
        // times a cell as a whole), and its training summary if trained.
        let from_gpu = |scores, seconds, train| CellResult {
            scores,
            timing: CellTiming {
                ops_s: seconds,
                ..Default::default()
            },
            train,
        };
        match (&mut self.backend, &self.training) {
            (Backend::Cpu { batch }, None) => {
                let one = |i: usize| -> Result<CellResult> {
                    let (a, graph) = (archs[i], &graphs[i]);
                    let t0 = std::time::Instant::now();
                    let params = crate::net::init::init_params(graph, seed);
                    let mut r = crate::score_graph_with(graph, &params, batch, alpha, pass)
                        .map_err(|e| named(a, e))?;
                    // Drawing the weights (building the network is added by
                    // the caller).
                    r.timing.build_s = t0.elapsed().as_secs_f64()
                        - r.timing.ops_s
                        - r.timing.codes_s
                        - r.timing.logdet_s;
                    Ok(r)
                };
                let k = in_flight.min(archs.len());
                if k <= 1 {
                    return (0..archs.len()).map(one).collect();
                }
                let lanes = match &self.lanes {
                    Some(l) if l.threads == threads && l.pools.len() == in_flight => l,
                    _ => self.lanes.insert(CpuLanes::new(in_flight, threads)?),
                };
                lanes.run(archs.len(), one)
            }
            (Backend::Cpu { batch }, Some(t)) => archs
                .iter()
                .zip(graphs)
                .map(|(a, graph)| {
                    let t0 = std::time::Instant::now();
                    let (params, st) = t.train_cpu(graph, seed).map_err(|e| named(a, e))?;
                    let mut r = crate::score_graph_with(graph, &params, batch, alpha, pass)
                        .map_err(|e| named(a, e))?;
                    r.timing.build_s = t0.elapsed().as_secs_f64()
                        - st.seconds
                        - r.timing.ops_s
                        - r.timing.codes_s
                        - r.timing.logdet_s;
                    r.train = Some(st);
                    Ok(r)
                })
                .collect(),
            (Backend::Cuda(g), None) => {
                let cells = g.score(
                    archs.len(),
                    |i| Ok(graphs[i].clone()),
                    seed,
                    alpha,
                    None,
                    swap,
                )?;
                Ok(cells
                    .into_iter()
                    .map(|c| from_gpu(c.scores, c.seconds, None))
                    .collect())
            }
            (Backend::Cuda(g), Some(t)) => {
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
