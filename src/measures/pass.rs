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

/// Per weight layer, its node and `[n][c]` taps.
pub type LayerTaps = Vec<(NodeId, Vec<f64>)>;

/// What the passes of one cell produced.
#[derive(Debug)]
pub struct Passes<'a> {
    /// The network.
    pub graph: &'a Graph,
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
    /// The input's gradient.
    pub fn input_grad(&self) -> Result<&Tensor> {
        self.input_grad
            .as_ref()
            .ok_or_else(|| missing("the input's gradient"))
    }
}

/// The device a cell's gradient passes run on.
pub enum GradientDevice<'d> {
    /// The CPU ops.
    Cpu,
    /// A CUDA device (or its host emulation).
    Cuda(&'d crate::runtime::cuda::CudaDevice),
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
/// with `labels`, on `device`. On CUDA the cross-entropy passes run on the
/// GPU and their gradients are copied back; the taps of `fisher` and the
/// input Jacobian of `jacov` are CPU passes for now, and refused on CUDA
/// ([`check_device`]).
pub fn passes<'a>(
    set: &MeasureSet,
    graph: &'a Graph,
    params: &'a [Vec<f32>],
    batch: &Tensor,
    labels: &[u32],
    device: &GradientDevice<'_>,
) -> Result<Passes<'a>> {
    let mut out = Passes {
        graph,
        params,
        grads: None,
        layer_taps: None,
        halves: None,
        input_grad: None,
    };
    if labels.len() != batch.shape.n {
        return Err(Error::Internal(format!(
            "{} labels for a batch of {}",
            labels.len(),
            batch.shape.n
        )));
    }
    let zeros = || -> Vec<Vec<f32>> { params.iter().map(|p| vec![0.0; p.len()]).collect() };
    let ce = |input: &Tensor, labels: &[u32], taps: bool| -> Result<(Vec<Vec<f32>>, LayerTaps)> {
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
                if taps {
                    return Err(refused_on_cuda("fisher"));
                }
                let (_, g) = crate::train::cuda::gradients(dev, graph, params, input, labels)?;
                Ok((g, Vec::new()))
            }
        }
    };
    let taps = set.needs(Need::LayerTaps);
    if taps || set.needs(Need::CrossEntropy) {
        let (g, t) = ce(batch, labels, taps)?;
        out.grads = Some(g);
        out.layer_taps = taps.then_some(t);
    }
    if set.needs(Need::Halves) {
        let b = batch.shape.n;
        let half = b / 2;
        let (g1, _) = ce(&rows(batch, 0..half), &labels[..half], false)?;
        let (g2, _) = ce(&rows(batch, half..b), &labels[half..], false)?;
        out.halves = Some([g1, g2]);
    }
    if set.needs(Need::InputJacobian) {
        match device {
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
                out.input_grad = r.input_grad;
            }
            GradientDevice::Cuda(_) => return Err(refused_on_cuda("jacov")),
        }
    }
    Ok(out)
}

fn refused_on_cuda(name: &str) -> Error {
    Error::Arg(format!(
        "measure {name} runs on the CPU only for now (choose the CPU device, or leave {name} out)"
    ))
}

/// Refuses, before any cell, a set with a measure `device` cannot compute
/// yet (`fisher` and `jacov` on CUDA).
pub fn check_device(set: &MeasureSet, cuda: bool) -> Result<()> {
    if cuda {
        for m in set.iter() {
            if matches!(m.need, Need::LayerTaps | Need::InputJacobian) {
                return Err(refused_on_cuda(m.name));
            }
        }
    }
    Ok(())
}
