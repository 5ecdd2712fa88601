//! A scoring run, opened the same way by the command line, the Python
//! package and the C ABI: the options that decide a run's scores
//! ([`RunOptions`]: space and its options, the scoring images, seed, α,
//! device, fast training, SWAP, repeats), checked and opened into a
//! [`Run`] (a [`Scorer`] with its run stamp), whose [`Run::score_lines`]
//! gives each cell's result line, averaged over the weight seeds of the
//! repeats. Writing many cells to a result file, resumably and block by
//! block, is [`output`].

pub mod output;

use crate::data::cifar::Dataset;
use crate::data::BatchSource;
use crate::error::{Error, Result};
use crate::measures::MeasureSet;
use crate::ops::conv2d::ConvAlgo;
use crate::results::RunStamp;
use crate::runtime::DeviceKind;
use crate::scorer::{CellResult, Scorer, Swap, Training, TrainingFile};
use crate::space::{Arch, Space, SpaceOptions};
use crate::tensor::Tensor;
use crate::train::batches::Augment;
use crate::train::{LrSchedule, SgdConfig};
use std::ops::Range;
use std::path::PathBuf;

/// Images in the scoring batch when none is given.
pub const DEFAULT_BATCH: usize = 128;

/// Cells in flight on a GPU (one CUDA stream and host thread each) when
/// none is given.
pub const DEFAULT_LANES: usize = crate::exec::cuda::lane::DEFAULT_LANES;

/// How a caller spells each option in its messages: the command line's
/// flags ([`Names::FLAGS`]) or the Python package's keywords
/// ([`Names::KEYWORDS`]), so one check speaks each caller's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names {
    /// α of DAS.
    pub alpha: &'static str,
    /// Weight seeds averaged.
    pub repeats: &'static str,
    /// GPU lanes.
    pub lanes: &'static str,
    /// The scoring batch.
    pub batch: &'static str,
    /// The scoring images.
    pub data: &'static str,
    /// Worker threads.
    pub threads: &'static str,
    /// CPU cells in flight.
    pub cells_in_flight: &'static str,
    /// Training steps.
    pub train_steps: &'static str,
    /// The training file.
    pub train_data: &'static str,
    /// The training records.
    pub train_records: &'static str,
    /// Images per training step.
    pub train_batch: &'static str,
    /// Learning rate.
    pub lr: &'static str,
    /// Momentum.
    pub momentum: &'static str,
    /// Weight decay.
    pub wd: &'static str,
}

impl Names {
    /// The command line's flags.
    pub const FLAGS: Names = Names {
        alpha: "--alpha",
        repeats: "--repeats",
        lanes: "--lanes",
        batch: "--batch",
        data: "--data",
        threads: "--threads",
        cells_in_flight: "--cells-in-flight",
        train_steps: "--train-steps",
        train_data: "--train-data",
        train_records: "--train-records",
        train_batch: "--train-batch",
        lr: "--lr",
        momentum: "--momentum",
        wd: "--wd",
    };

    /// The Python package's keywords (and the C ABI's fields).
    pub const KEYWORDS: Names = Names {
        alpha: "alpha",
        repeats: "repeats",
        lanes: "lanes",
        batch: "batch",
        data: "data",
        threads: "threads",
        cells_in_flight: "cells_in_flight",
        train_steps: "train_steps",
        train_data: "train_data",
        train_records: "train_records",
        train_batch: "train_batch",
        lr: "lr",
        momentum: "momentum",
        wd: "wd",
    };
}

/// The most weight seeds a run averages over.
pub const MAX_REPEATS: usize = 1000;

/// The most GPU lanes a run may ask for.
pub const MAX_LANES: usize = 64;

/// Where the scoring images come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Images {
    /// Seeded N(0, 1) images (the run's seed).
    Gaussian,
    /// The first images of a CIFAR binary file.
    File(PathBuf),
    /// The caller's own images (NHWC, normalised), all of them or the
    /// first `batch`.
    Given(Tensor),
}

impl Images {
    /// `gaussian` or the path of a CIFAR binary file, as the command line
    /// and the Python package spell them.
    pub fn parse(s: &str) -> Images {
        if s == "gaussian" {
            Images::Gaussian
        } else {
            Images::File(s.into())
        }
    }
}

/// Fast training of every cell before it is scored: `steps` SGD steps of
/// `batch` labelled images (the options of `score --train-steps` and of
/// the Python package's `train_steps`).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingOptions {
    /// SGD steps per cell (at least 1).
    pub steps: usize,
    /// The CIFAR binary file of labelled training images; `None`: the
    /// scoring file (an error when the scoring images are not a file).
    pub data: Option<PathBuf>,
    /// The records to draw batches from; `None`: every record, but the
    /// scoring batch's when training on the scoring file (cells are never
    /// trained on the images they are scored on).
    pub records: Option<Range<usize>>,
    /// Images per training step.
    pub batch: usize,
    /// Learning rate, its schedule, momentum, Nesterov, weight decay.
    pub sgd: SgdConfig,
    /// Random crop (of the image padded by 4) and horizontal flip.
    pub augment: bool,
}

impl TrainingOptions {
    /// `steps` steps with the defaults of the command line: batch 64, lr
    /// 0.1 on a cosine schedule, momentum 0.9, weight decay 5·10⁻⁴, no
    /// augmentation, on the scoring file's other records.
    pub fn new(steps: usize) -> TrainingOptions {
        TrainingOptions {
            steps,
            data: None,
            records: None,
            batch: 64,
            sgd: SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 5e-4,
                schedule: LrSchedule::Cosine,
            },
            augment: false,
        }
    }

    /// The training these options describe, its images read (after the
    /// checks that need no file), given the scoring images, their dataset
    /// and batch size; `names` say how the caller spells each option.
    pub fn training(
        &self,
        scoring: &Images,
        dataset: Dataset,
        scoring_batch: usize,
        names: &Names,
    ) -> Result<Training> {
        if self.steps == 0 {
            return Err(Error::Arg(format!(
                "{} 0: training needs at least 1 step (to score untrained, set no training)",
                names.train_steps
            )));
        }
        let scoring_file = match scoring {
            Images::File(p) => Some(p),
            _ => None,
        };
        let (path, same_as_scoring) = match (&self.data, scoring_file) {
            (Some(p), s) => (p.clone(), s == Some(p)),
            (None, Some(s)) => (s.clone(), true),
            (None, None) => {
                return Err(Error::Arg(format!(
                    "training needs labelled images: give {} FILE (a CIFAR binary file), or a \
                     CIFAR file as {} to train on its records after the scoring batch",
                    names.train_data, names.data
                )))
            }
        };
        for (name, v) in [
            (names.lr, self.sgd.lr),
            (names.momentum, self.sgd.momentum),
            (names.wd, self.sgd.weight_decay),
        ] {
            finite(name, v)?;
        }
        // The file checks the batch (empty, or too large for memory) before
        // it reads the images.
        let file = TrainingFile {
            path: &path,
            dataset,
            records: self.records.clone(),
            records_name: names.train_records,
            batch_name: names.train_batch,
            skip: if same_as_scoring { scoring_batch } else { 0 },
        };
        let augment = Augment {
            crop: self.augment,
            flip: self.augment,
        };
        file.training(self.steps, self.batch, self.sgd, augment)
    }
}

/// Everything that decides a run's scores, and how it runs. Every line a
/// run writes carries the stamp of the options that change scores (space
/// and options, seed, images, α, training, SWAP's regularisation,
/// repeats, the conv algorithm), so files of different runs never mix.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The search space.
    pub space: Space,
    /// Its network options (`init_channels=36`, `count=graph`, …).
    pub space_options: SpaceOptions,
    /// The scoring images.
    pub images: Images,
    /// Dataset of a CIFAR file or of `uint8` images (normalisation, label
    /// bytes).
    pub dataset: Dataset,
    /// Images in the scoring batch (at least 2); `None`: every given image,
    /// else [`DEFAULT_BATCH`].
    pub batch: Option<usize>,
    /// Seed of the weights (repeat `r` uses `seed + r`) and of Gaussian
    /// images.
    pub seed: u64,
    /// α of DAS_α = D + α·B·ln N_A (finite).
    pub alpha: f64,
    /// The device.
    pub device: DeviceKind,
    /// Cells in flight on a GPU (at least 1).
    pub lanes: usize,
    /// The scorer's own worker threads; `None`: the process's pool.
    pub threads: Option<usize>,
    /// The CPU convs' algorithm.
    pub conv: ConvAlgo,
    /// CPU cells in flight; `None`: chosen from the thread count.
    pub cells_in_flight: Option<usize>,
    /// SWAP from the same pass, and its regularisation.
    pub swap: Option<Swap>,
    /// Weight seeds every score is averaged over (at least 1).
    pub repeats: usize,
    /// Fast training before scoring.
    pub training: Option<TrainingOptions>,
    /// The measures computed beside the scores (docs/measures.md).
    pub measures: MeasureSet,
    /// The labels of the caller's own images ([`Images::Given`]), one per
    /// image, which the measures' losses read; `None`: a CIFAR file's own
    /// labels, or labels drawn from the weight seed.
    pub labels: Option<Vec<u32>>,
    /// How the caller spells each option in messages.
    pub names: Names,
}

impl RunOptions {
    /// The defaults of `dasnas score` for `space`: Gaussian images, B =
    /// 128, seed 0, α = 1, device `auto`, exact convs, no training.
    pub fn new(space: Space) -> RunOptions {
        RunOptions {
            space,
            space_options: SpaceOptions::new(),
            images: Images::Gaussian,
            dataset: Dataset::Cifar10,
            batch: None,
            seed: 0,
            alpha: crate::score::metrics::DEFAULT_ALPHA,
            device: DeviceKind::Auto,
            lanes: DEFAULT_LANES,
            threads: None,
            conv: ConvAlgo::Exact,
            cells_in_flight: None,
            swap: None,
            repeats: 1,
            training: None,
            measures: MeasureSet::none(),
            labels: None,
            names: Names::KEYWORDS,
        }
    }

    /// Checks the options that need no file or device: an error naming
    /// the first bad one.
    pub fn check(&self) -> Result<()> {
        let n = &self.names;
        finite(n.alpha, self.alpha)?;
        if self.repeats == 0 {
            return Err(Error::Arg(format!(
                "{} 0: at least one weight seed is needed",
                n.repeats
            )));
        }
        if self.repeats > MAX_REPEATS {
            return Err(Error::Arg(format!(
                "{} {}: at most {MAX_REPEATS} weight seeds (the spread of a score is known \
                 well long before)",
                n.repeats, self.repeats
            )));
        }
        if self.lanes == 0 {
            return Err(Error::Arg(format!("{} must be at least 1", n.lanes)));
        }
        if self.lanes > MAX_LANES {
            return Err(Error::Arg(format!(
                "{} {} is more than a GPU can use: at most {MAX_LANES} (each lane is a CUDA \
                 stream, a host thread and its own buffers)",
                n.lanes, self.lanes
            )));
        }
        match (&self.labels, &self.images) {
            (Some(_), Images::Gaussian) | (Some(_), Images::File(_)) => {
                return Err(Error::Arg(
                    "labels are given without images of your own: a CIFAR file brings its \
                     own labels and Gaussian images have none (give data=IMAGES with them)"
                        .into(),
                ))
            }
            (Some(l), Images::Given(t)) if l.len() != t.shape.n => {
                return Err(Error::Arg(format!(
                    "{} labels for {} images: give one label per image",
                    l.len(),
                    t.shape.n
                )))
            }
            _ => {}
        }
        if let Some(b) = self.batch.filter(|&b| b < 2) {
            return Err(Error::Arg(format!(
                "{} {b} is too small: the kernel matrix needs at least 2 images",
                n.batch
            )));
        }
        if self.cells_in_flight == Some(0) {
            return Err(Error::Arg(format!(
                "{} must be at least 1",
                n.cells_in_flight
            )));
        }
        if let Some(t) = self.threads {
            check_threads(n.threads, t)?;
        }
        if let Some(k) = self.cells_in_flight {
            check_threads(n.cells_in_flight, k)?;
        }
        self.space.check_options(&self.space_options)?;
        Ok(())
    }

    /// The scoring batch these options describe (a file is read, a
    /// Gaussian batch drawn, given images checked against the network's
    /// input size), refused before it is made when it cannot fit.
    pub fn scoring_batch(&self) -> Result<Tensor> {
        let size = self.space.image_size(&self.space_options)?;
        match &self.images {
            Images::Given(t) => {
                let n = match self.batch {
                    None => t.shape.n,
                    Some(b) if b <= t.shape.n => b,
                    Some(b) => {
                        return Err(Error::Arg(format!(
                            "{} {b} is larger than the {} images of {}",
                            self.names.batch, t.shape.n, self.names.data
                        )))
                    }
                };
                if (t.shape.h, t.shape.w, t.shape.c) != (size, size, 3) {
                    return Err(Error::Arg(format!(
                        "images of {}×{}×{}: the {} network takes {size}×{size}×3",
                        t.shape.h, t.shape.w, t.shape.c, self.space
                    )));
                }
                let len = n * t.shape.per_sample();
                Ok(Tensor {
                    shape: crate::tensor::Shape::new(n, size, size, 3),
                    data: t.data[..len].to_vec(),
                })
            }
            other => {
                let b = self.batch.unwrap_or(DEFAULT_BATCH);
                let source = match other {
                    Images::File(p) => BatchSource::Cifar(p.clone(), self.dataset),
                    _ => BatchSource::Gaussian,
                };
                let made =
                    crate::data::checked_scoring_batch(&source, b, size, self.seed, self.device);
                match other {
                    Images::File(_) => made.map_err(|e| e.context(self.names.data)),
                    _ => made,
                }
            }
        }
    }

    /// The labels of the first `batch` images when they come from a CIFAR
    /// file; `None` for images without labels (the measures then draw
    /// them from the weight seed).
    pub fn batch_labels(&self, batch: usize) -> Result<Option<Vec<u32>>> {
        match &self.images {
            Images::File(p) => {
                let images = crate::data::cifar::CifarImages::load(p, self.dataset)
                    .map_err(|e| e.context(self.names.data))?;
                Ok(Some(
                    images
                        .labels
                        .iter()
                        .take(batch)
                        .map(|&l| u32::from(l))
                        .collect(),
                ))
            }
            Images::Given(_) => Ok(self
                .labels
                .as_ref()
                .map(|l| l.iter().take(batch).copied().collect())),
            Images::Gaussian => Ok(None),
        }
    }

    /// The fast training of these options, its images read; `None` without
    /// training. `scoring_batch`: images in the scoring batch (records of
    /// the scoring file that training leaves out by default).
    pub fn fast_training(&self, scoring_batch: usize) -> Result<Option<Training>> {
        match &self.training {
            Some(t) => t
                .training(&self.images, self.dataset, scoring_batch, &self.names)
                .map(Some),
            None => Ok(None),
        }
    }

    /// The run stamp of these options for `batch` and `training`.
    pub fn stamp(&self, batch: &Tensor, training: Option<&Training>) -> RunStamp {
        let stamp = RunStamp::new(
            self.space,
            &self.space_options,
            self.seed,
            batch,
            self.alpha,
            training,
        );
        let stamp = match &self.swap {
            Some(s) => stamp.with_swap(s),
            None => stamp,
        };
        let stamp = stamp
            .with_repeats(self.repeats)
            .with_conv(self.conv)
            .with_measures(&self.measures);
        match (&self.labels, self.measures.needs_passes()) {
            (Some(l), true) => stamp.with_labels(&l[..batch.shape.n.min(l.len())]),
            _ => stamp,
        }
    }

    /// Checks, makes the scoring batch and the training, opens the device
    /// and sets the scorer up: the run, with what the user should be told
    /// (the CPU fallback of `auto`, PTX instead of CUBIN, a conv algorithm
    /// the device does not have).
    pub fn open(&self) -> Result<Run> {
        self.check()?;
        let batch = self.scoring_batch()?;
        let training = self.fast_training(batch.shape.n)?;
        let stamp = self.stamp(&batch, training.as_ref());
        let b = batch.shape.n;
        let (mut scorer, notice) = Scorer::open(self.device, batch, self.lanes)?;
        let mut notices: Vec<String> = notice.into_iter().collect();
        scorer.set_threads(self.threads)?;
        scorer.set_training(training)?;
        scorer.set_swap(self.swap);
        let labels = if self.measures.needs_passes() {
            self.batch_labels(b)?
        } else {
            None
        };
        scorer.set_measures(self.measures.clone(), labels)?;
        scorer.set_cells_in_flight(self.cells_in_flight)?;
        notices.extend(scorer.set_conv(self.conv));
        Ok(Run {
            scorer,
            stamp,
            space: self.space,
            space_options: self.space_options.clone(),
            seed: self.seed,
            alpha: self.alpha,
            repeats: self.repeats,
            batch: b,
            notices,
        })
    }
}

/// A cell's network, initial parameters, scoring batch and labels: what a
/// reference formulation in another framework needs ([`Run::reference_inputs`]).
#[derive(Clone, Debug)]
pub struct ReferenceInputs {
    /// The network.
    pub graph: crate::net::Graph,
    /// Its initial parameters, indexed like `graph.params`.
    pub params: Vec<Vec<f32>>,
    /// The scoring batch (NHWC).
    pub batch: Tensor,
    /// The labels the measures' losses use.
    pub labels: Vec<u32>,
}

/// An open run: a scorer and the settings its lines are stamped with.
#[derive(Debug)]
pub struct Run {
    scorer: Scorer,
    stamp: RunStamp,
    space: Space,
    space_options: SpaceOptions,
    seed: u64,
    alpha: f64,
    repeats: usize,
    batch: usize,
    notices: Vec<String>,
}

impl Run {
    /// What a reference formulation in another framework needs to compute
    /// `arch`'s measures on the same network (docs/measures.md): the
    /// network ([`crate::net::Graph::to_json`]), its initial parameters
    /// with weight seed `seed + repeat` (indexed like the graph's), the
    /// scoring batch (NHWC) and the labels the losses use.
    pub fn reference_inputs(&self, arch: &Arch, repeat: usize) -> Result<ReferenceInputs> {
        let graph = arch.network()?;
        let seed = self.seed.wrapping_add(repeat as u64);
        let params = crate::net::init::init_params(&graph, seed);
        let batch = self.scorer.scoring_batch()?.clone();
        let labels = self.scorer.measure_labels(&graph, seed);
        Ok(ReferenceInputs {
            graph,
            params,
            batch,
            labels,
        })
    }

    /// What measure `family` (`az_nas`, `zen`, `meco_opt`) draws for
    /// itself when it scores `arch` (weight seed + `repeat`): its weights
    /// and named tensors ([`crate::measures::forward::Drawn`]), beside the
    /// network.
    pub fn measure_inputs(
        &self,
        arch: &Arch,
        family: &str,
        repeat: usize,
    ) -> Result<(crate::net::Graph, crate::measures::forward::Drawn)> {
        let r = self.reference_inputs(arch, repeat)?;
        let seed = self.seed.wrapping_add(repeat as u64);
        let drawn =
            crate::measures::forward::draw(family, &r.graph, &r.params, r.batch.shape, seed)?;
        Ok((r.graph, drawn))
    }

    /// The run stamp every line carries.
    pub fn stamp(&self) -> &RunStamp {
        &self.stamp
    }

    /// The scorer (to score cells by other means, or to inspect its device).
    pub fn scorer(&mut self) -> &mut Scorer {
        &mut self.scorer
    }

    /// The scorer, read only.
    pub fn scorer_ref(&self) -> &Scorer {
        &self.scorer
    }

    /// What opening had to tell the user, one line each.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// The space.
    pub fn space(&self) -> Space {
        self.space
    }

    /// The space options cells are built with.
    pub fn space_options(&self) -> &SpaceOptions {
        &self.space_options
    }

    /// The seed of the weights (of the first repeat).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// DAS's α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Weight seeds averaged per cell.
    pub fn repeats(&self) -> usize {
        self.repeats
    }

    /// Images in the scoring batch (B).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The architecture `s` of this run's space, built with its options.
    pub fn arch(&self, s: &str) -> Result<Arch> {
        Arch::parse(self.space, s)?.with_options(&self.space_options)
    }

    /// Every string of `archs` parsed, the first bad one named by its
    /// position (`what[i]`).
    pub fn archs(&self, archs: &[String], what: &str) -> Result<Vec<Arch>> {
        archs
            .iter()
            .enumerate()
            .map(|(i, s)| self.arch(s).map_err(|e| e.context(format!("{what}[{i}]"))))
            .collect()
    }

    /// The results of `cells`, in order, each with one result per repeat
    /// (repeat `r` draws the weights of seed S + r).
    pub fn score_repeats(&mut self, cells: &[&Arch]) -> Result<Vec<Vec<CellResult>>> {
        let mut per_cell: Vec<Vec<CellResult>> = vec![Vec::new(); cells.len()];
        for r in 0..self.repeats {
            let seed = self.seed.wrapping_add(r as u64);
            let results = self.scorer.score_archs(cells, seed, self.alpha)?;
            for (cell, res) in per_cell.iter_mut().zip(results) {
                cell.push(res);
            }
        }
        Ok(per_cell)
    }

    /// The fields of this run's result lines, in their order (`das@A` for
    /// each of `extra_alphas`): the same for every cell, so a caller can
    /// shape its columns before any cell is scored (an empty list gives the
    /// same columns as a full one).
    pub fn line_fields(&self, extra_alphas: &[f64]) -> Result<Vec<String>> {
        let arch = crate::space::sample(self.space, 1, 0)?
            .pop()
            .ok_or_else(|| Error::Internal("a space sampled no cell".into()))?;
        let scorer = &self.scorer;
        let mut scores = crate::score::metrics::scores_from_wot(self.batch, 1, Some(1.0), 1.0);
        scores.params = Some(0);
        scores.flops = Some(0);
        if let Some(swap) = scorer.swap() {
            scores.swap = Some(0);
            scores.swap_reg = swap.regularise.map(|_| 0.0);
        }
        let result = CellResult {
            scores,
            timing: Default::default(),
            train: scorer.training().map(|_| crate::train::TrainStats {
                steps: 0,
                final_loss: Some(0.0),
                final_accuracy: Some(0.0),
                seconds: 0.0,
            }),
            measures: scorer
                .measures()
                .computed()
                .map(|m| (m.name, Some(0.0)))
                .collect(),
        };
        let results = vec![result; self.repeats];
        let line = crate::results::repeated_line(&arch, &results, extra_alphas, &self.stamp, None);
        Ok(line
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// The result lines of `cells`, in order (`das@A` for each of
    /// `extra_alphas`): what `dasnas score` writes for them.
    pub fn score_lines(
        &mut self,
        cells: &[&Arch],
        extra_alphas: &[f64],
    ) -> Result<Vec<serde_json::Value>> {
        let results = self.score_repeats(cells)?;
        Ok(cells
            .iter()
            .zip(results)
            .map(|(a, r)| crate::results::repeated_line(a, &r, extra_alphas, &self.stamp, None))
            .collect())
    }
}

/// The most worker threads (or cells in flight) a run may ask for: four
/// per core of this machine. More only adds contention (and thousands of
/// threads can stall a machine), so asking for more is an error.
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `Err` unless `n` (of the option `what`) is between 1 and
/// [`max_threads`].
pub fn check_threads(what: &str, n: usize) -> Result<()> {
    let max = max_threads();
    if n == 0 {
        return Err(Error::Arg(format!("{what} must be at least 1")));
    }
    if n > max {
        return Err(Error::Arg(format!(
            "{what} {n} is more than this machine can use: at most {max} (4 per core, {} \
             cores)",
            max / 4
        )));
    }
    Ok(())
}

/// `Err` unless `v` is a finite number (`what` names the option).
pub fn finite(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::Arg(format!("{what} {v} is not a finite number")))
    }
}

/// `Err` unless every α of `extra_alphas` is finite (`what` names the
/// option).
pub fn check_extra_alphas(what: &str, extra_alphas: &[f64]) -> Result<()> {
    for &a in extra_alphas {
        finite(what, a)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb201() -> RunOptions {
        let mut o = RunOptions::new(Space::NB201);
        o.device = DeviceKind::Cpu;
        o.batch = Some(8);
        o
    }

    #[test]
    fn bad_options_are_named() {
        let mut o = nb201();
        o.repeats = 0;
        assert!(o.open().unwrap_err().to_string().contains("repeats 0"));
        let mut o = nb201();
        o.alpha = f64::NAN;
        assert!(o.open().unwrap_err().to_string().contains("alpha NaN"));
        let mut o = nb201();
        o.batch = Some(1);
        assert!(o.open().unwrap_err().to_string().contains("batch 1"));
        let mut o = nb201();
        o.training = Some(TrainingOptions::new(3));
        let e = o.open().unwrap_err().to_string();
        assert!(e.contains("training needs labelled images"), "{e}");
    }

    #[test]
    fn repeats_average_and_lines_carry_the_stamp() {
        let mut o = nb201();
        o.repeats = 2;
        let mut run = o.open().unwrap();
        let arch = run
            .arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
            .unwrap();
        let lines = run.score_lines(&[&arch], &[0.5]).unwrap();
        assert_eq!(lines[0]["repeats"], 2);
        assert!(lines[0].get("wot_std").is_some());
        assert!(lines[0].get("das@0.5").is_some());
        assert_eq!(lines[0]["run"], run.stamp().to_json());
        // Repeat r is seed S + r.
        let once = run.score_repeats(&[&arch]).unwrap();
        let seed1 = crate::score_arch(&arch, &o.scoring_batch().unwrap(), 1, 1.0).unwrap();
        assert_eq!(once[0][1].scores.wot, seed1.scores.wot);
    }

    #[test]
    fn given_images_are_checked() {
        let mut o = nb201();
        o.images = Images::Given(crate::data::gaussian_batch(4, 16, 0));
        o.batch = None;
        let e = o.open().unwrap_err().to_string();
        assert!(e.contains("takes 32×32×3"), "{e}");
        o.images = Images::Given(crate::data::gaussian_batch(4, 32, 0));
        o.batch = Some(5);
        assert!(o
            .open()
            .unwrap_err()
            .to_string()
            .contains("larger than the 4"));
        o.batch = None;
        assert_eq!(o.open().unwrap().batch_size(), 4);
    }
}
