//! Fast training (docs/training.md, "Fast training"): k steps of SGD
//! with softmax cross-entropy on labelled batches, after which a cell is
//! scored exactly as untrained (the scorer with the trained parameters,
//! BatchNorm still in training mode on the scoring batch).
//!
//! * [`Sgd`]: PyTorch's `torch.optim.SGD` update (momentum, dampening 0,
//!   optional Nesterov, weight decay), in f32. Weight decay applies to
//!   **every** parameter, BatchNorm γ/β and the classifier bias included,
//!   as NAS-Bench-201's training code does (it passes `model.parameters()`
//!   to one SGD with one `weight_decay`).
//! * [`LrSchedule`]: constant, or cosine `lr_t = lr·(1 + cos(π·t/K))/2`
//!   for steps `t = 0..K−1`.
//! * [`batches`]: labelled CIFAR batches drawn with a seed (optional crop
//!   and flip); [`cpu`]: the forward-with-saves and backward executor over a
//!   [`crate::net::Graph`]. A GPU backend supplies its own
//!   `forward_backward` with the same contract (parameters indexed like
//!   `graph.params`, gradients written into a same-shaped `Vec<Vec<f32>>`)
//!   and reuses [`Sgd`] and [`LrSchedule`] unchanged, or mirrors
//!   [`sgd_update`] on the device.
//! * BatchNorm keeps no running statistics: training and scoring both
//!   normalise with the statistics of the batch at hand.

pub mod batches;
pub mod budget;
pub mod cpu;
pub mod cuda;
pub mod plan;
pub mod walk;

/// How the library names the training batch in its messages (the command
/// line names its flag, `--train-batch`).
pub const TRAIN_BATCH: &str = "training batch";

use crate::error::{Error, Result};
use crate::ops::softmax_ce::CeStats;

/// Learning-rate schedule over a run of `K` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LrSchedule {
    /// `lr_t = lr`.
    Constant,
    /// `lr_t = lr·(1 + cos(π·t/K))/2` (NB201's schedule, without warm-up,
    /// stepped per batch rather than per epoch).
    #[default]
    Cosine,
}

impl std::str::FromStr for LrSchedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            other => Err(Error::Arg(format!(
                "unknown learning-rate schedule `{other}` (expected constant or cosine)"
            ))),
        }
    }
}

impl LrSchedule {
    /// The learning rate of step `t` (0-based) of `total` steps.
    pub fn lr_at(self, base: f64, t: usize, total: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let frac = t as f64 / total.max(1) as f64;
                base * (1.0 + (std::f64::consts::PI * frac).cos()) / 2.0
            }
        }
    }
}

/// SGD hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Momentum (0 disables the buffer).
    pub momentum: f64,
    /// Nesterov momentum (needs `momentum > 0`, as in PyTorch).
    pub nesterov: bool,
    /// L2 weight decay added to every parameter's gradient.
    pub weight_decay: f64,
    /// How the learning rate changes over the run's steps.
    pub schedule: LrSchedule,
}

impl Default for SgdConfig {
    /// NB201's optimiser: lr 0.1, momentum 0.9, Nesterov, weight decay
    /// 5e-4, cosine. (`dasnas` flags default to the same values except
    /// Nesterov, which is opt-in with `--nesterov`.)
    fn default() -> Self {
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: LrSchedule::Cosine,
        }
    }
}

impl SgdConfig {
    /// Rejects values PyTorch rejects (negative or non-finite lr, momentum,
    /// weight decay; Nesterov without momentum).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("learning rate", self.lr),
            ("momentum", self.momentum),
            ("weight decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Arg(format!(
                    "{name} {v} must be finite and non-negative"
                )));
            }
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err(Error::Arg("Nesterov momentum requires momentum > 0".into()));
        }
        Ok(())
    }
}

/// One step's hyper-parameters of [`sgd_update`], in the f32 it computes in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdUpdate {
    /// This step's learning rate.
    pub lr: f32,
    /// Momentum factor; 0 turns the buffer off.
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// The buffer's first step (`buf ← g`).
    pub first_step: bool,
}

/// One SGD update of one parameter tensor, in f32, PyTorch's order:
/// `g ← g + wd·p`; with momentum, `buf ← g` on the first step, else
/// `buf ← momentum·buf + g`; `g ← g + momentum·buf` (Nesterov) or
/// `g ← buf`; `p ← p − lr·g`. `buf` is ignored when `momentum == 0`.
/// Multiplies and adds are separate f32 operations (no FMA).
pub fn sgd_update(p: &mut [f32], g: &[f32], buf: &mut [f32], h: SgdUpdate) {
    let SgdUpdate {
        lr,
        momentum,
        nesterov,
        weight_decay,
        first_step,
    } = h;
    let use_buf = momentum != 0.0;
    for i in 0..p.len() {
        let mut d = g[i];
        if weight_decay != 0.0 {
            d += weight_decay * p[i];
        }
        if use_buf {
            let b = if first_step { d } else { momentum * buf[i] + d };
            buf[i] = b;
            d = if nesterov { d + momentum * b } else { b };
        }
        p[i] -= lr * d;
    }
}

/// SGD state: the configuration and one momentum buffer per parameter.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// The hyper-parameters every step uses.
    pub config: SgdConfig,
    bufs: Vec<Vec<f32>>,
    steps: usize,
}

impl Sgd {
    /// A fresh optimiser for parameters shaped like `params`.
    pub fn new(config: SgdConfig, params: &[Vec<f32>]) -> Result<Self> {
        config.validate()?;
        let bufs = if config.momentum != 0.0 {
            params.iter().map(|p| vec![0.0; p.len()]).collect()
        } else {
            params.iter().map(|_| Vec::new()).collect()
        };
        Ok(Sgd {
            config,
            bufs,
            steps: 0,
        })
    }

    /// Updates done so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One update of every parameter with learning rate `lr`.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>], lr: f64) -> Result<()> {
        if params.len() != self.bufs.len() || grads.len() != params.len() {
            return Err(Error::Arg(format!(
                "sgd: {} parameters and {} gradients for an optimiser of {}",
                params.len(),
                grads.len(),
                self.bufs.len()
            )));
        }
        let c = &self.config;
        let first = self.steps == 0;
        for (k, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            if g.len() != p.len() || (c.momentum != 0.0 && self.bufs[k].len() != p.len()) {
                return Err(Error::Arg(format!(
                    "sgd: parameter {k} has {} values, its gradient {}",
                    p.len(),
                    g.len()
                )));
            }
            let h = SgdUpdate {
                lr: lr as f32,
                momentum: c.momentum as f32,
                nesterov: c.nesterov,
                weight_decay: c.weight_decay as f32,
                first_step: first,
            };
            sgd_update(p, g, &mut self.bufs[k], h);
        }
        self.steps += 1;
        Ok(())
    }
}

/// What one training step reports.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct StepStats {
    /// 1-based step number (after this step's update).
    pub step: usize,
    /// Loss of this step's batch, before the update.
    pub loss: f64,
    /// Batch accuracy, before the update.
    pub accuracy: f64,
    /// Learning rate used for the update.
    pub lr: f64,
    /// Wall time of the forward pass, the backward pass and the update.
    pub seconds: f64,
}

/// Summary of a training run.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct TrainStats {
    /// Steps taken.
    pub steps: usize,
    /// Loss of the last step's batch (before its update); `None` for 0 steps.
    pub final_loss: Option<f64>,
    /// Accuracy of the last step's batch (before its update).
    pub final_accuracy: Option<f64>,
    /// Wall time of all steps (batch drawing included).
    pub seconds: f64,
}

/// What computes a training step's gradients: the CPU executor
/// ([`CpuGradientStep`]) or another device. Parameters and gradients are host
/// vectors indexed like `graph.params`; `grads` is overwritten.
pub trait GradientStep {
    /// Forward, loss and backward of `graph` on one labelled batch: overwrites
    /// `grads` with ∂loss/∂param and returns the batch's cross-entropy statistics
    /// (taken before any update).
    fn forward_backward(
        &mut self,
        graph: &crate::net::Graph,
        params: &[Vec<f32>],
        input: &crate::tensor::Tensor,
        labels: &[u32],
        grads: &mut [Vec<f32>],
    ) -> Result<CeStats>;

    /// Called once by [`train`] before the first batch is drawn: refuses
    /// (an [`Error::Arg`] naming the training batch) a batch of `batch`
    /// samples that cannot fit in the backend's memory. Checking once,
    /// rather than at every step, keeps memory the allocator retains
    /// between steps from being counted against the next one.
    fn check_batch(&mut self, graph: &crate::net::Graph, batch: usize) -> Result<()> {
        let _ = (graph, batch);
        Ok(())
    }
}

/// The CPU training executor of [`cpu`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuGradientStep;

impl GradientStep for CpuGradientStep {
    fn forward_backward(
        &mut self,
        graph: &crate::net::Graph,
        params: &[Vec<f32>],
        input: &crate::tensor::Tensor,
        labels: &[u32],
        grads: &mut [Vec<f32>],
    ) -> Result<CeStats> {
        cpu::forward_backward_unchecked(graph, params, input, labels, grads).map(|r| r.0)
    }

    /// [`crate::train::budget::TrainMemory::cpu`] against the host's
    /// available memory.
    fn check_batch(&mut self, graph: &crate::net::Graph, batch: usize) -> Result<()> {
        let plan = plan::TrainPlan::new(graph, batch)?;
        crate::train::budget::TrainMemory::cpu(&plan)
            .check(crate::runtime::budget::host_available())
    }
}

/// [`train`] on the CPU.
pub fn train_cpu(
    graph: &crate::net::Graph,
    params: &mut [Vec<f32>],
    batches: &mut batches::LabelledBatches,
    config: &SgdConfig,
    steps: usize,
    on_step: impl FnMut(&StepStats, &[Vec<f32>]) -> Result<()>,
) -> Result<TrainStats> {
    train(
        &mut CpuGradientStep,
        graph,
        params,
        batches,
        config,
        steps,
        on_step,
    )
}

/// Trains `params` (indexed like `graph.params`) for `steps` SGD steps,
/// drawing batch `t` of `batches` for step `t` (0-based) with learning
/// rate `config.schedule.lr_at(config.lr, t, steps)`, and calls `on_step`
/// after every update with the step's statistics and the new parameters.
/// A non-finite loss stops the run with an error, and a batch that cannot
/// fit in memory ([`GradientStep::check_batch`]) stops it before the first step.
pub fn train<B: GradientStep>(
    device: &mut B,
    graph: &crate::net::Graph,
    params: &mut [Vec<f32>],
    batches: &mut batches::LabelledBatches,
    config: &SgdConfig,
    steps: usize,
    mut on_step: impl FnMut(&StepStats, &[Vec<f32>]) -> Result<()>,
) -> Result<TrainStats> {
    let start = std::time::Instant::now();
    let mut sgd = Sgd::new(*config, params)?;
    if steps > 0 {
        device.check_batch(graph, batches.batch_size())?;
    }
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut stats = TrainStats::default();
    for t in 0..steps {
        let t0 = std::time::Instant::now();
        // The batch is dropped before `on_step` (which may score the
        // network: its memory is not held twice).
        let ce = {
            let (x, labels) = batches.batch_at(t as u64)?;
            device.forward_backward(graph, params, &x, &labels, &mut grads)?
        };
        if !ce.loss.is_finite() {
            return Err(Error::Data(format!(
                "training diverged: loss {} at step {}",
                ce.loss,
                t + 1
            )));
        }
        let lr = config.schedule.lr_at(config.lr, t, steps);
        sgd.step(params, &grads, lr)?;
        let s = StepStats {
            step: t + 1,
            loss: ce.loss,
            accuracy: ce.accuracy(),
            lr,
            seconds: t0.elapsed().as_secs_f64(),
        };
        stats.steps = t + 1;
        stats.final_loss = Some(s.loss);
        stats.final_accuracy = Some(s.accuracy);
        on_step(&s, params)?;
    }
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-computed step of each variant, against the formulas written
    /// out in f64 (the values are exact enough that f32 agrees to 1 ulp).
    #[test]
    fn sgd_matches_hand_computed_steps() {
        let p0 = [1.0f32, -2.0, 0.5];
        let g1 = [0.1f32, 0.2, -0.3];
        let g2 = [-0.05f32, 0.4, 0.25];
        let (lr, m, wd) = (0.1f64, 0.9f64, 0.01f64);
        for nesterov in [false, true] {
            let cfg = SgdConfig {
                lr,
                momentum: m,
                nesterov,
                weight_decay: wd,
                schedule: LrSchedule::Constant,
            };
            let mut params = vec![p0.to_vec()];
            let mut sgd = Sgd::new(cfg, &params).unwrap();
            sgd.step(&mut params, &[g1.to_vec()], lr).unwrap();
            sgd.step(&mut params, &[g2.to_vec()], lr).unwrap();
            for i in 0..3 {
                // Step 1: d = g1 + wd p0; buf = d; upd = d (+ m buf).
                let p = p0[i] as f64;
                let d1 = g1[i] as f64 + wd * p;
                let b1 = d1;
                let u1 = if nesterov { d1 + m * b1 } else { b1 };
                let p1 = p - lr * u1;
                // Step 2: d = g2 + wd p1; buf = m b1 + d.
                let d2 = g2[i] as f64 + wd * p1;
                let b2 = m * b1 + d2;
                let u2 = if nesterov { d2 + m * b2 } else { b2 };
                let p2 = p1 - lr * u2;
                let got = params[0][i] as f64;
                assert!(
                    (got - p2).abs() < 1e-6,
                    "nesterov={nesterov} i={i}: {got} vs {p2}"
                );
            }
        }
        // Plain SGD without momentum or decay: p - lr g exactly.
        let cfg = SgdConfig {
            lr: 0.5,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            schedule: LrSchedule::Constant,
        };
        let mut params = vec![p0.to_vec()];
        let mut sgd = Sgd::new(cfg, &params).unwrap();
        sgd.step(&mut params, &[g1.to_vec()], 0.5).unwrap();
        let want: Vec<f32> = p0.iter().zip(&g1).map(|(p, g)| p - 0.5 * g).collect();
        assert_eq!(params[0], want);
        // Two concrete numbers worked by hand: p = 1, g = 0.1, wd = 0.01,
        // m = 0.9, lr = 0.1: d = 0.11, Nesterov update 0.11 + 0.099 = 0.209,
        // p = 1 − 0.0209 = 0.9791.
        let mut params = vec![vec![1.0f32]];
        let cfg = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
            schedule: LrSchedule::Constant,
        };
        let mut sgd = Sgd::new(cfg, &params).unwrap();
        sgd.step(&mut params, &[vec![0.1]], 0.1).unwrap();
        assert!((params[0][0] - 0.9791).abs() < 1e-6, "{}", params[0][0]);
    }

    #[test]
    fn cosine_schedule_values() {
        let s = LrSchedule::Cosine;
        assert_eq!(s.lr_at(0.1, 0, 10), 0.1);
        assert!((s.lr_at(0.1, 5, 10) - 0.05).abs() < 1e-15);
        let last = s.lr_at(0.1, 9, 10);
        assert!((last - 0.1 * (1.0 + (0.9 * std::f64::consts::PI).cos()) / 2.0).abs() < 1e-15);
        assert!(last > 0.0);
        assert_eq!(LrSchedule::Constant.lr_at(0.3, 7, 10), 0.3);
        assert_eq!("cosine".parse::<LrSchedule>().unwrap(), LrSchedule::Cosine);
        assert!("linear".parse::<LrSchedule>().is_err());
    }

    /// A CIFAR-10 file of `n` records, in memory.
    fn images(n: usize) -> crate::data::cifar::CifarImages {
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.push((i % 10) as u8);
            bytes.extend((0..3072).map(|k| ((k * 7 + i * 13) % 256) as u8));
        }
        crate::data::cifar::CifarImages::from_bytes(&bytes, crate::data::cifar::Dataset::Cifar10)
            .unwrap()
    }

    /// A batch whose training step cannot fit is refused before the first
    /// batch is drawn (drawing 10^7 images would take seconds and 123 GB;
    /// the step needs tens of TB), and nothing is trained.
    #[test]
    fn cpu_training_refuses_a_batch_that_cannot_fit_before_drawing_it() {
        let arch = crate::space::Arch::parse(
            "nb201".parse::<crate::space::Space>().unwrap(),
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|",
        )
        .unwrap();
        let graph = arch.network().unwrap();
        let b = 10_000_000;
        let need =
            crate::train::budget::TrainMemory::cpu(&plan::TrainPlan::new(&graph, b).unwrap());
        // Where the available memory is unknown, or that large, nothing is
        // refused.
        match crate::runtime::budget::host_available() {
            Some(avail) if avail < need.total => {}
            _ => return,
        }
        let mut params = crate::net::init::init_params(&graph, 0);
        let before = params.clone();
        let imgs = images(4);
        let mut batches =
            batches::LabelledBatches::new(&imgs, vec![0, 1, 2, 3], b, 0, Default::default())
                .unwrap();
        let t0 = std::time::Instant::now();
        let mut called = false;
        let e = train_cpu(
            &graph,
            &mut params,
            &mut batches,
            &SgdConfig::default(),
            3,
            |_, _| {
                called = true;
                Ok(())
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::Arg(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("training batch 10000000 needs about"), "{e}");
        assert!(e.contains("use a smaller --train-batch"), "{e}");
        assert!(!called);
        assert_eq!(params, before);
        assert!(t0.elapsed().as_secs_f64() < 5.0);
        // A batch that fits trains.
        let mut small =
            batches::LabelledBatches::new(&imgs, vec![0, 1, 2, 3], 2, 0, Default::default())
                .unwrap();
        let st = train_cpu(
            &graph,
            &mut params,
            &mut small,
            &SgdConfig::default(),
            1,
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(st.steps, 1);
        assert_ne!(params, before);
    }

    #[test]
    fn bad_configs_are_errors() {
        let ok = SgdConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            SgdConfig { lr: -1.0, ..ok },
            SgdConfig { lr: f64::NAN, ..ok },
            SgdConfig {
                weight_decay: -0.1,
                ..ok
            },
            SgdConfig {
                momentum: 0.0,
                nesterov: true,
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}

/// One record of a recorded training run ([`train_recorded`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepRecord {
    /// 0 before training, then the step just taken.
    pub step: usize,
    /// Loss and accuracy of the step's batch (before its update), its
    /// learning rate and wall time; `None` at step 0.
    pub loss: Option<f64>,
    /// Batch accuracy of the step (before its update); `None` at step 0.
    pub accuracy: Option<f64>,
    /// Learning rate of the step's update; `None` at step 0.
    pub lr: Option<f64>,
    /// Wall seconds of the step (scoring excluded); `None` at step 0.
    pub seconds: Option<f64>,
    /// The scores on the scoring batch, at step 0, every `every` steps and
    /// after the last step.
    pub scores: Option<crate::Scores>,
}

/// When [`train_recorded`] scores the network: on `scoring` (DAS with
/// `alpha`) at step 0, every `every` steps (0: none between) and after the
/// last step.
#[derive(Clone, Copy, Debug)]
pub struct ScoreEvery<'a> {
    /// Steps between scorings (0: only at step 0 and after the last step).
    pub every: usize,
    /// The scoring batch (NHWC).
    pub scoring: &'a crate::Tensor,
    /// α of the DAS score.
    pub alpha: f64,
}

/// Trains `params` like [`train_cpu`] and hands a [`StepRecord`] to
/// `on_record` before the first step and after every step, with the scores
/// as `score_every` asks. Returns the run's summary and the wall time of
/// every step (scoring excluded).
pub fn train_recorded(
    graph: &crate::net::Graph,
    params: &mut [Vec<f32>],
    batches: &mut batches::LabelledBatches,
    config: &SgdConfig,
    steps: usize,
    score_every: ScoreEvery<'_>,
    mut on_record: impl FnMut(StepRecord) -> Result<()>,
) -> Result<(TrainStats, Vec<f64>)> {
    let ScoreEvery {
        every,
        scoring,
        alpha,
    } = score_every;
    let scores = |p: &[Vec<f32>]| -> Result<crate::score::Scores> {
        let pass = crate::exec::cpu::PassOptions::default();
        Ok(crate::exec::cpu::score_pass(graph, p, scoring, alpha, pass)?.0)
    };
    on_record(StepRecord {
        step: 0,
        loss: None,
        accuracy: None,
        lr: None,
        seconds: None,
        scores: Some(scores(params)?),
    })?;
    // Grown as steps are taken (`steps` is the user's number).
    let mut step_s = Vec::new();
    let st = train_cpu(graph, params, batches, config, steps, |s, p| {
        step_s.push(s.seconds);
        let scored = (every > 0 && s.step % every == 0) || s.step == steps;
        on_record(StepRecord {
            step: s.step,
            loss: Some(s.loss),
            accuracy: Some(s.accuracy),
            lr: Some(s.lr),
            seconds: Some(s.seconds),
            scores: if scored { Some(scores(p)?) } else { None },
        })
    })?;
    Ok((st, step_s))
}
