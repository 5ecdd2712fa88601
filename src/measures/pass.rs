//! The passes a set of measures needs, for one cell: each run once, on
//! the scorer's device, and kept for [`super::evaluate`].
//!
//! Layouts: gradients are indexed like `graph.params` (each in its op's
//! own layout); the input's gradient is NHWC like the batch; a layer's
//! taps are `[n][c]` in f64.

use super::{MeasureSet, Need};
use crate::error::{Error, Result};
use crate::net::{Graph, NodeId};
use crate::tensor::{Shape, Tensor};
use crate::train::cpu::{gradient_pass, GradientRequest, Loss};

/// SynFlow's pass: the absolute parameters and the gradients of the
/// scaled sum of outputs ([`super::synflow`]), indexed like `graph.params`.
#[derive(Debug)]
pub struct SynflowPass {
    /// |θ| of every parameter.
    pub abs: Vec<Vec<f32>>,
    /// ∂(t · Σ outputs)/∂|θ| at the input s · 1.
    pub grads: Vec<Vec<f32>>,
}

pub use crate::train::cpu::LayerTaps;

/// What the passes of one cell produced.
#[derive(Debug)]
pub struct Passes<'a> {
    /// The network.
    pub graph: &'a Graph,
    /// The labels of the batch's images, as the losses read them.
    pub labels: &'a [u32],
    /// Its parameters, indexed like `graph.params`.
    pub params: &'a [Vec<f32>],
    /// The cross-entropy's gradients of the whole batch.
    pub grads: Option<Vec<Vec<f32>>>,
    /// Per weight layer, its `[n][c]` taps (with `grads`).
    pub layer_taps: Option<Vec<(NodeId, Vec<f64>)>>,
    /// The cross-entropy's gradients of each half of the batch.
    pub halves: Option<[Vec<Vec<f32>>; 2]>,
    /// ∂(Σ logits)/∂input, NHWC.
    pub input_grad: Option<Tensor>,
    /// SynFlow's pass.
    pub synflow: Option<SynflowPass>,
    /// MeCo's feature maps.
    pub sample_features: Option<super::forward::SampleFeatures>,
    /// AZ-NAS's pass.
    pub blocks: Option<super::forward::BlockPass>,
    /// Zen-NAS's pass.
    pub zen: Option<super::forward::ZenPass>,
    /// The weight seed (the measures that draw their own weights, inputs
    /// or channels draw them from it).
    pub seed: u64,

    /// Seconds each pass took: `cross-entropy`, `halves`, `input jacobian`,
    /// `synflow`.
    pub seconds: Vec<(&'static str, f64)>,
}

fn missing(what: &str) -> Error {
    Error::Internal(format!("the measures' passes did not compute {what}"))
}

impl Passes<'_> {
    /// The cross-entropy's gradients of the whole batch.
    pub fn grads(&self) -> Result<&[Vec<f32>]> {
        self.grads
            .as_deref()
            .ok_or_else(|| missing("the gradients"))
    }
    /// The weight layers' taps.
    pub fn layer_taps(&self) -> Result<&[(NodeId, Vec<f64>)]> {
        self.layer_taps
            .as_deref()
            .ok_or_else(|| missing("the layer taps"))
    }
    /// The two halves' gradients.
    pub fn halves(&self) -> Result<[&[Vec<f32>]; 2]> {
        self.halves
            .as_ref()
            .map(|[a, b]| [a.as_slice(), b.as_slice()])
            .ok_or_else(|| missing("the halves' gradients"))
    }
    /// SynFlow's pass.
    pub fn synflow(&self) -> Result<&SynflowPass> {
        self.synflow
            .as_ref()
            .ok_or_else(|| missing("synflow's pass"))
    }

    /// MeCo's feature maps.
    pub fn sample_features(&self) -> Result<&super::forward::SampleFeatures> {
        self.sample_features
            .as_ref()
            .ok_or_else(|| missing("the feature maps"))
    }
    /// AZ-NAS's pass.
    pub fn blocks(&self) -> Result<&super::forward::BlockPass> {
        self.blocks
            .as_ref()
            .ok_or_else(|| missing("the blocks' pass"))
    }
    /// Zen-NAS's pass.
    pub fn zen(&self) -> Result<&super::forward::ZenPass> {
        self.zen.as_ref().ok_or_else(|| missing("Zen-NAS's pass"))
    }

    /// The input's gradient.
    pub fn input_grad(&self) -> Result<&Tensor> {
        self.input_grad
            .as_ref()
            .ok_or_else(|| missing("the input's gradient"))
    }
}

pub use super::GradientDevice;

/// SynFlow's pass: `graph` without BatchNorm, `|params|`, one image of
/// the scaled ones shaped like `batch`'s images, the scaled sum's
/// gradients.
fn synflow_pass(graph: &Graph, params: &[Vec<f32>], batch: &Tensor) -> Result<SynflowPass> {
    let plain = graph.without_batchnorm();
    let abs: Vec<Vec<f32>> = params
        .iter()
        .map(|p| p.iter().map(|v| v.abs()).collect())
        .collect();
    let s = batch.shape;
    let ones = Tensor {
        shape: Shape::new(1, s.h, s.w, s.c),
        data: vec![super::synflow::SCALE; s.per_sample()],
    };
    let mut g: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    gradient_pass(
        &plain,
        &abs,
        &ones,
        &[0],
        &mut g,
        GradientRequest {
            loss: Loss::ScaledSum(super::synflow::SCALE),
            input_grad: false,
            layer_taps: false,
        },
    )?;
    Ok(SynflowPass { abs, grads: g })
}

/// `f`'s result, its seconds recorded in `seconds` under `label`.
fn timed<T>(
    seconds: &mut Vec<(&'static str, f64)>,
    label: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let t0 = std::time::Instant::now();
    let v = f()?;
    seconds.push((label, t0.elapsed().as_secs_f64()));
    Ok(v)
}

/// Samples `range` of `t` (NHWC).
fn rows(t: &Tensor, range: std::ops::Range<usize>) -> Tensor {
    let per = t.shape.per_sample();
    Tensor {
        shape: Shape::new(range.len(), t.shape.h, t.shape.w, t.shape.c),
        data: t.data[range.start * per..range.end * per].to_vec(),
    }
}

/// The passes `set` needs for `graph` with `params` on `batch` (NHWC)
/// with `labels`, on `device`. On CUDA the cross-entropy passes and the
/// input Jacobian run on the GPU and are copied back; `synflow`'s
/// one-image pass runs on the host; `fisher`'s per-layer taps are summed
/// on the host from each layer's output and gradient, copied back.
pub fn passes<'a>(
    set: &MeasureSet,
    graph: &'a Graph,
    params: &'a [Vec<f32>],
    batch: &Tensor,
    labels: &'a [u32],
    seed: u64,
    device: &GradientDevice<'_>,
) -> Result<Passes<'a>> {
    let mut out = Passes {
        graph,
        labels,
        params,
        grads: None,
        layer_taps: None,
        halves: None,
        input_grad: None,
        synflow: None,
        sample_features: None,
        blocks: None,
        zen: None,
        seed,
        seconds: Vec::new(),
    };
    if labels.len() != batch.shape.n {
        return Err(Error::Internal(format!(
            "{} labels for a batch of {}",
            labels.len(),
            batch.shape.n
        )));
    }
    let zeros = || -> Vec<Vec<f32>> { params.iter().map(|p| vec![0.0; p.len()]).collect() };
    let ce = |params: &[Vec<f32>],
              input: &Tensor,
              labels: &[u32],
              taps: bool|
     -> Result<(Vec<Vec<f32>>, LayerTaps)> {
        match device {
            GradientDevice::Cpu => {
                let mut g = zeros();
                let r = gradient_pass(
                    graph,
                    params,
                    input,
                    labels,
                    &mut g,
                    GradientRequest {
                        loss: Loss::CrossEntropy,
                        input_grad: false,
                        layer_taps: taps,
                    },
                )?;
                Ok((g, r.layer_taps))
            }
            GradientDevice::Cuda(dev) => {
                let (_, g, t) = crate::train::cuda::gradients_with_taps(
                    dev, graph, params, input, labels, taps,
                )?;
                Ok((g, t))
            }
        }
    };
    let taps = set.needs(Need::LayerTaps);
    if taps || set.needs(Need::CrossEntropy) {
        let (g, t) = timed(&mut out.seconds, "cross-entropy", || {
            ce(params, batch, labels, taps)
        })?;
        out.grads = Some(g);
        out.layer_taps = taps.then_some(t);
    }
    if set.needs(Need::Halves) {
        out.halves = Some(timed(&mut out.seconds, "halves", || {
            let b = batch.shape.n;
            let half = b / 2;
            let (g1, _) = ce(params, &rows(batch, 0..half), &labels[..half], false)?;
            let (g2, _) = ce(params, &rows(batch, half..b), &labels[half..], false)?;
            Ok([g1, g2])
        })?);
    }
    if set.needs(Need::InputJacobian) {
        out.input_grad = Some(timed(
            &mut out.seconds,
            "input jacobian",
            || match device {
                GradientDevice::Cpu => {
                    let mut g = zeros();
                    let r = gradient_pass(
                        graph,
                        params,
                        batch,
                        labels,
                        &mut g,
                        GradientRequest {
                            loss: Loss::SumOfOutputs,
                            input_grad: true,
                            layer_taps: false,
                        },
                    )?;
                    r.input_grad.ok_or_else(|| missing("the input's gradient"))
                }
                GradientDevice::Cuda(dev) => {
                    crate::train::cuda::input_jacobian(dev, graph, params, batch, 1.0)
                }
            },
        )?);
    }
    if set.needs(Need::Synflow) {
        // One image: a host pass on either device.
        out.synflow = Some(timed(&mut out.seconds, "synflow", || {
            synflow_pass(graph, params, batch)
        })?);
    }
    if set.needs(Need::SampleFeatures) {
        out.sample_features = Some(timed(&mut out.seconds, "features", || {
            super::forward::sample_features(graph, params, batch, device)
        })?);
    }
    if set.needs(Need::Blocks) {
        out.blocks = Some(timed(&mut out.seconds, "blocks", || {
            super::forward::block_pass(graph, params, batch.shape, seed, device)
        })?);
    }
    if set.needs(Need::Zen) {
        out.zen = Some(timed(&mut out.seconds, "zen", || {
            let gamma = super::zen::GAMMA;
            super::forward::zen_pass(graph, params, batch.shape, seed, gamma, device)
        })?);
    }
    Ok(out)
}
