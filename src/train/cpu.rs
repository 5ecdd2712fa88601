//! The CPU trainer: one training pass ([`super::walk::train_pass`]) over
//! a [`TrainPlan`] with the CPU ops — the forward pass keeping what the
//! backward pass reads, the softmax cross-entropy on the output node's
//! logits, and the backward pass in reverse node order writing every
//! parameter's gradient. Which values are kept, and the order in which
//! gradient contributions are summed, are the plan's (see
//! [`super::plan`]); every op backward is deterministic on its own, so the
//! result does not depend on the thread count.
//!
//! Buffers: a host tensor per live value and gradient, by node.

use super::plan::{GradTarget, PlanOptions, TrainPlan};
use super::walk::{train_pass, TrainRunner};
use crate::error::{Error, Result};
use crate::net::{Graph, NodeId};
use crate::ops::softmax_ce::CeStats;
use crate::ops::{Backward, Cpu, CpuBwd, CpuFwd, CpuGrad, Forward, Role};
use crate::runtime::budget::host_available;
use crate::tensor::Tensor;
use crate::train::budget::TrainMemory;
use std::collections::HashMap;
use std::time::Instant;

/// Wall time of one training pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassTiming {
    /// Seconds in the forward pass, the loss included.
    pub forward_s: f64,
    /// Seconds in the backward pass.
    pub backward_s: f64,
}

/// Forward, loss and backward on one labelled batch. `params` are indexed
/// like `graph.params`; `grads` must be shaped like `params` and is
/// overwritten with `∂loss/∂param` (a parameter no path to the loss
/// reaches gets zeros). The logits are the output node's values
/// `[n, 1, 1, classes]`. A batch whose step cannot fit in the host's
/// available memory ([`TrainMemory::cpu`]) is refused before anything is
/// allocated.
pub fn forward_backward(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    grads: &mut [Vec<f32>],
) -> Result<(CeStats, PassTiming)> {
    pass(graph, params, input, labels, grads, true)
}

/// [`forward_backward`] without the memory check: for a training loop that
/// checked its batch once before the first step
/// ([`super::GradientStep::check_batch`]).
pub fn forward_backward_unchecked(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    grads: &mut [Vec<f32>],
) -> Result<(CeStats, PassTiming)> {
    pass(graph, params, input, labels, grads, false)
}

/// The loss a gradient pass differentiates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Loss {
    /// Softmax cross-entropy of the logits against the labels, mean over
    /// the batch (PyTorch's `F.cross_entropy`): a training step's loss.
    #[default]
    CrossEntropy,
    /// The sum of every output value (`y.backward(torch.ones_like(y))`):
    /// the Jacobian of the logits' sum, as `jacov` takes it.
    SumOfOutputs,
    /// `scale` times the sum of every output value: `synflow`'s pass seeds
    /// its backward with a power of 2 below 1 to keep f32 in range.
    ScaledSum(f32),
    /// Σ seed · output for a given seed tensor shaped like the output (a
    /// vector-Jacobian product: [`vector_jacobian_product`]).
    Seeded,
}

/// What a gradient pass computes besides every parameter's gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradientRequest {
    /// The loss differentiated.
    pub loss: Loss,
    /// ∂loss/∂input of every sample ([`GradientPass::input_grad`]).
    pub input_grad: bool,
    /// Per weight layer, per sample and output channel, Σ over positions of
    /// output · ∂loss/∂output ([`GradientPass::layer_taps`]).
    pub layer_taps: bool,
}

/// Per weight layer in node order, its node and `[n][c]` sums over
/// positions of output · ∂loss/∂output.
pub type LayerTaps = Vec<(NodeId, Vec<f64>)>;

/// What a gradient pass produced besides the parameters' gradients.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradientPass {
    /// The cross-entropy statistics ([`Loss::CrossEntropy`] only).
    pub ce: Option<CeStats>,
    /// ∂loss/∂input, NHWC like the input (when asked for).
    pub input_grad: Option<Tensor>,
    /// Per weight layer in node order: its node and `[n][c]` sums over
    /// positions of output · ∂loss/∂output, in f64 (when asked for).
    pub layer_taps: LayerTaps,
}

/// Forward and backward of `graph` on `input` for `request`: the loss's
/// gradient with respect to every parameter written into `grads` (shaped
/// like `params`), and what `request` asks for beyond it. `labels` are
/// read by the cross-entropy loss only. Refused like [`forward_backward`]
/// when the pass cannot fit in the host's available memory.
pub fn gradient_pass(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    grads: &mut [Vec<f32>],
    request: GradientRequest,
) -> Result<GradientPass> {
    graph.check_params(params, "parameter")?;
    graph.check_params(grads, "gradient")?;
    check_input(graph, input)?;
    let plan = TrainPlan::with_options(
        graph,
        input.shape.n,
        PlanOptions {
            input_grad: request.input_grad,
            keep_layer_outputs: request.layer_taps,
        },
    )?;
    TrainMemory::cpu(&plan).check(host_available())?;
    let mut t = Trainer::new(graph, &plan, params, input, labels, grads);
    t.request = request;
    train_pass(&mut t, graph, &plan)?;
    if request.input_grad && t.input_grad.is_none() {
        // No path from the input reaches the output: a zero gradient.
        t.input_grad = Some(Tensor::zeros(input.shape));
    }
    t.layer_taps.sort_by_key(|(i, _)| *i);
    Ok(GradientPass {
        ce: t.ce,
        input_grad: t.input_grad,
        layer_taps: t.layer_taps,
    })
}

fn pass(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    grads: &mut [Vec<f32>],
    check_memory: bool,
) -> Result<(CeStats, PassTiming)> {
    graph.check_params(params, "parameter")?;
    graph.check_params(grads, "gradient")?;
    check_input(graph, input)?;
    let plan = TrainPlan::new(graph, input.shape.n)?;
    if check_memory {
        TrainMemory::cpu(&plan).check(host_available())?;
    }
    let mut t = Trainer::new(graph, &plan, params, input, labels, grads);
    train_pass(&mut t, graph, &plan)?;
    let ce =
        t.ce.ok_or_else(|| Error::Internal("no loss computed".into()))?;
    Ok((ce, t.timing))
}

/// Loss and batch accuracy of one labelled batch (forward only, nothing
/// kept beyond its last reader). Refused like [`forward_backward`] when a
/// training step at this batch would not fit (an over-estimate of the
/// forward pass alone).
pub fn loss(graph: &Graph, params: &[Vec<f32>], input: &Tensor, labels: &[u32]) -> Result<CeStats> {
    graph.check_params(params, "parameter")?;
    check_input(graph, input)?;
    let plan = TrainPlan::new(graph, input.shape.n)?;
    TrainMemory::cpu(&plan).check(host_available())?;
    let mut unused: Vec<Vec<f32>> = Vec::new();
    let mut t = Trainer::new(graph, &plan, params, input, labels, &mut unused);
    for (i, node) in plan.nodes.iter().enumerate() {
        if node.computes {
            t.forward(graph, &plan, i)?;
        }
        for &j in &node.free_after_forward {
            t.free_value(&plan, j);
        }
    }
    let logits = t.value(graph, graph.output)?;
    crate::ops::softmax_ce::cpu::softmax_ce_loss(logits, labels)
}

/// Runs `graph`'s forward pass on `input` and hands `visit` every node's
/// value as it is computed, in node order, before it is freed: also the
/// value of each ReLU the plan fuses into its readers (computed for the
/// visit only). Nothing is kept beyond its last reader, so the pass takes
/// the memory of an inference. The input node itself is not visited.
pub fn forward_visit(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    visit: &mut dyn FnMut(NodeId, &Tensor) -> Result<()>,
) -> Result<()> {
    forward_visit_with(graph, params, input, &[], visit)
}

/// [`forward_visit`] with every other input node held at its value in
/// `constants` (node id, batch), as [`vector_jacobian_product`] holds them.
pub fn forward_visit_with(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    constants: &[(NodeId, &Tensor)],
    visit: &mut dyn FnMut(NodeId, &Tensor) -> Result<()>,
) -> Result<()> {
    graph.check_params(params, "parameter")?;
    check_input(graph, input)?;
    let plan = TrainPlan::new(graph, input.shape.n)?;
    TrainMemory::cpu(&plan).check(host_available())?;
    let mut unused: Vec<Vec<f32>> = Vec::new();
    let mut t = Trainer::new(graph, &plan, params, input, &[], &mut unused);
    t.hold(graph, constants)?;
    let fused = plan.fused_relus(graph);
    if let Some(inp) = t.input_node {
        for &r in fused.get(&inp).map(Vec::as_slice).unwrap_or(&[]) {
            visit(r, &relu_copy(input)?)?;
        }
    }
    for (i, node) in plan.nodes.iter().enumerate() {
        if node.computes {
            t.forward(graph, &plan, i)?;
            let v = t.value(graph, i)?;
            visit(i, v)?;
            for &r in fused.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                visit(r, &relu_copy(v)?)?;
            }
        }
        for &j in &node.free_after_forward {
            t.free_value(&plan, j);
        }
    }
    Ok(())
}

/// The ReLU of `x`, as a new tensor (a fused ReLU's value for a visit).
pub(crate) fn relu_copy(x: &Tensor) -> Result<Tensor> {
    let mut y = x.clone();
    crate::ops::relu::cpu::relu_forward_inplace(&mut y)?;
    Ok(y)
}

/// `seedᵀ · ∂output/∂input`: the gradient with respect to `input` (the
/// graph's first input node) of Σ seed · output, with every other input
/// node held at its value in `constants` (node id, batch). BatchNorm
/// normalises by the batch's statistics as in training. No parameter
/// gradient is computed.
pub fn vector_jacobian_product(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    constants: &[(NodeId, &Tensor)],
    seed: &Tensor,
) -> Result<Tensor> {
    graph.check_params(params, "parameter")?;
    check_input(graph, input)?;
    let plan = TrainPlan::with_options(
        graph,
        input.shape.n,
        PlanOptions {
            input_grad: true,
            keep_layer_outputs: false,
        },
    )?;
    TrainMemory::cpu(&plan).check(host_available())?;
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut t = Trainer::new(graph, &plan, params, input, &[], &mut grads);
    t.hold(graph, constants)?;
    t.seed = Some(seed);
    t.param_grads = false;
    t.request = GradientRequest {
        loss: Loss::Seeded,
        input_grad: true,
        layer_taps: false,
    };
    train_pass(&mut t, graph, &plan)?;
    Ok(t.input_grad.unwrap_or_else(|| Tensor::zeros(input.shape)))
}

fn check_input(graph: &Graph, input: &Tensor) -> Result<()> {
    let in_shape = graph.input_shape()?;
    let s = input.shape;
    if s.with_n(1) != in_shape || s.n == 0 || input.data.len() != s.len() {
        return Err(Error::Shape(format!(
            "input batch {s} does not fit the network's input [n, {}, {}, {}]",
            in_shape.h, in_shape.w, in_shape.c
        )));
    }
    Ok(())
}

/// The training runner of the CPU backend.
struct Trainer<'a> {
    params: &'a [Vec<f32>],
    input: &'a Tensor,
    labels: &'a [u32],
    pgrads: &'a mut [Vec<f32>],
    values: Vec<Option<Tensor>>,
    saved: Vec<Option<Vec<f32>>>,
    grads: Vec<Option<Tensor>>,
    /// Scratch contributions waiting to be merged, by region start.
    scratch: HashMap<usize, Tensor>,
    ce: Option<CeStats>,
    timing: PassTiming,
    /// What a gradient pass asks for beyond a training step.
    request: GradientRequest,
    input_grad: Option<Tensor>,
    layer_taps: Vec<(NodeId, Vec<f64>)>,
    /// The input batch's node.
    input_node: Option<NodeId>,
    /// The values of the other input nodes (held constant).
    constants: HashMap<NodeId, &'a Tensor>,
    /// The output's gradient of [`Loss::Seeded`].
    seed: Option<&'a Tensor>,
    /// Whether the backward computes the parameters' gradients.
    param_grads: bool,
}

impl<'a> Trainer<'a> {
    fn new(
        graph: &Graph,
        plan: &TrainPlan,
        params: &'a [Vec<f32>],
        input: &'a Tensor,
        labels: &'a [u32],
        pgrads: &'a mut [Vec<f32>],
    ) -> Self {
        let n = plan.nodes.len();
        Trainer {
            params,
            input,
            labels,
            pgrads,
            values: vec![None; n],
            saved: vec![None; n],
            grads: vec![None; n],
            scratch: HashMap::new(),
            ce: None,
            timing: PassTiming::default(),
            request: GradientRequest::default(),
            input_grad: None,
            layer_taps: Vec::new(),
            input_node: graph
                .nodes
                .iter()
                .position(|n| n.op.spec().role() == Role::Input),
            constants: HashMap::new(),
            seed: None,
            param_grads: true,
        }
    }

    /// Holds the input nodes of `constants` at their values.
    fn hold(&mut self, graph: &Graph, constants: &[(NodeId, &'a Tensor)]) -> Result<()> {
        for &(j, v) in constants {
            let expected = graph
                .nodes
                .get(j)
                .map(|n| n.shape.with_n(self.input.shape.n));
            if expected != Some(v.shape) || graph.nodes[j].op.spec().role() != Role::Input {
                return Err(Error::Internal(format!(
                    "constant {} does not fit an input node of the graph",
                    v.shape
                )));
            }
            self.constants.insert(j, v);
        }
        Ok(())
    }

    /// Node `j`'s value: the input batch or its stored tensor.
    fn value(&self, graph: &Graph, j: NodeId) -> Result<&Tensor> {
        if graph.nodes[j].op.spec().role() == Role::Input {
            return Ok(self.constants.get(&j).copied().unwrap_or(self.input));
        }
        self.values[j].as_ref().ok_or_else(|| {
            Error::Internal(format!(
                "node {} read after it was freed",
                graph.nodes[j].name
            ))
        })
    }

    fn node_params(&self, graph: &Graph, i: NodeId) -> Result<Vec<&'a [f32]>> {
        let params = self.params;
        graph.nodes[i]
            .params
            .iter()
            .map(|&p| {
                params
                    .get(p)
                    .map(Vec::as_slice)
                    .ok_or_else(|| Error::Internal(format!("no parameter {p}")))
            })
            .collect()
    }
}

impl TrainRunner for Trainer<'_> {
    fn forward(&mut self, graph: &Graph, plan: &TrainPlan, i: NodeId) -> Result<()> {
        let t0 = Instant::now();
        let np = &plan.nodes[i];
        let mut out = Tensor::zeros(np.shape);
        let mut saved = np.saved.as_ref().map(|r| vec![0.0f32; r.len()]);
        {
            let inputs = np
                .reads
                .iter()
                .map(|&j| self.value(graph, j))
                .collect::<Result<Vec<_>>>()?;
            let mut a = CpuFwd {
                inputs,
                out: &mut out,
                params: self.node_params(graph, i)?,
                relu_input: np.relu_input,
                in_place: None,
                partials_out: None,
                partials_in: None,
                saved: saved.as_deref_mut(),
                conv: Default::default(),
            };
            Forward::<Cpu>::forward(&graph.nodes[i].op, &mut a)?;
        }
        self.values[i] = Some(out);
        self.saved[i] = saved;
        self.timing.forward_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    fn free_value(&mut self, _plan: &TrainPlan, j: NodeId) {
        self.values[j] = None;
    }

    fn loss(&mut self, graph: &Graph, _plan: &TrainPlan) -> Result<()> {
        let t0 = Instant::now();
        let out = graph.output;
        let logits = self.value(graph, out)?;
        let mut dlogits = Tensor::zeros(logits.shape);
        match self.request.loss {
            Loss::CrossEntropy => {
                let ce = crate::ops::softmax_ce::cpu::softmax_ce_forward_backward(
                    logits,
                    self.labels,
                    &mut dlogits,
                )?;
                self.ce = Some(ce);
            }
            Loss::SumOfOutputs => dlogits.data.fill(1.0),
            Loss::ScaledSum(scale) => dlogits.data.fill(scale),
            Loss::Seeded => {
                let seed = self
                    .seed
                    .ok_or_else(|| Error::Internal("a seeded pass without its seed".into()))?;
                if seed.shape != dlogits.shape {
                    return Err(Error::Shape(format!(
                        "seed {} does not fit the output {}",
                        seed.shape, dlogits.shape
                    )));
                }
                dlogits.data.copy_from_slice(&seed.data);
            }
        }
        self.grads[out] = Some(dlogits);
        self.timing.forward_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    fn zero_param_grads(&mut self, _plan: &TrainPlan) -> Result<()> {
        for g in self.pgrads.iter_mut() {
            g.fill(0.0);
        }
        Ok(())
    }

    fn backward(&mut self, graph: &Graph, plan: &TrainPlan, i: NodeId) -> Result<()> {
        let t0 = Instant::now();
        let node = &graph.nodes[i];
        let np = &plan.nodes[i];
        let dy = self.grads[i]
            .take()
            .ok_or_else(|| Error::Internal(format!("{} has no gradient", node.name)))?;
        if self.request.layer_taps && node.op.spec().is_weight_layer() {
            let y = self.value(graph, i)?;
            self.layer_taps.push((i, channel_taps(y, &dy)));
        }
        // The targets' tensors, taken out while the op writes them: a node's
        // gradient (created at its first contribution) or a scratch tensor.
        let mut outs: Vec<Option<Tensor>> = Vec::with_capacity(np.targets.len());
        for t in &np.targets {
            let o = match t {
                None => None,
                Some(t) if t.merge_into.is_some() => Some(Tensor::zeros(plan.nodes[t.node].shape)),
                Some(t) => match self.grads[t.node].take() {
                    Some(g) if t.accumulate => Some(g),
                    // Fresh zeroed pages, not a recycled buffer: they are
                    // zeroed as the (parallel) op first touches them.
                    _ => Some(Tensor::zeros(plan.nodes[t.node].shape)),
                },
            };
            outs.push(o);
        }
        let reads_values = node.op.spec().backward_reads_inputs();
        // The node's parameter gradients, taken out while the op adds to
        // them (a parameter belongs to one node).
        let mut taken: Vec<Vec<f32>> = if self.param_grads {
            node.params
                .iter()
                .map(|&p| {
                    self.pgrads
                        .get_mut(p)
                        .map(std::mem::take)
                        .unwrap_or_default()
                })
                .collect()
        } else {
            Vec::new()
        };
        let result = {
            let inputs = np
                .reads
                .iter()
                .map(|&j| {
                    if reads_values {
                        self.value(graph, j).map(Some)
                    } else {
                        Ok(None)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let in_shapes = np.reads.iter().map(|&j| plan.nodes[j].shape).collect();
            let params = self.node_params(graph, i)?;
            let pg: Vec<&mut [f32]> = taken.iter_mut().map(|v| v.as_mut_slice()).collect();
            let dx = np
                .targets
                .iter()
                .zip(outs.iter_mut())
                .map(|(t, o)| match (t, o) {
                    (Some(t), Some(o)) => Some(CpuGrad {
                        t: o,
                        accumulate: t.accumulate,
                    }),
                    _ => None,
                })
                .collect();
            let mut a = CpuBwd {
                inputs,
                in_shapes,
                params,
                saved: self.saved[i].as_deref(),
                dy: &dy,
                dx,
                dparams: pg,
                relu_input: np.relu_input,
            };
            Backward::<Cpu>::backward(&node.op, &mut a)
        };
        for (&p, g) in node.params.iter().zip(taken) {
            if let Some(slot) = self.pgrads.get_mut(p) {
                *slot = g;
            }
        }
        // Put the targets back (also on error, so nothing is lost).
        for (t, o) in np.targets.iter().zip(outs) {
            if let (Some(t), Some(o)) = (t, o) {
                if t.merge_into.is_some() {
                    self.scratch.insert(t.region.start, o);
                } else {
                    self.grads[t.node] = Some(o);
                }
            }
        }
        self.timing.backward_s += t0.elapsed().as_secs_f64();
        result
    }

    fn merge(&mut self, _plan: &TrainPlan, t: &GradTarget) -> Result<()> {
        let g = self
            .scratch
            .remove(&t.region.start)
            .ok_or_else(|| Error::Internal("scratch gradient missing".into()))?;
        let acc = self.grads[t.node]
            .as_mut()
            .ok_or_else(|| Error::Internal("gradient to merge into missing".into()))?;
        crate::ops::add::cpu::add_backward_accumulate(&g, acc)
    }

    fn free_grad(&mut self, _plan: &TrainPlan, i: NodeId) {
        let g = self.grads[i].take();
        // The input's gradient is the only one a pass hands back.
        if self.request.input_grad && self.input_node == Some(i) {
            self.input_grad = g;
        }
    }
}

/// Per sample and channel, Σ over positions of `y · dy` (NHWC, f64).
pub(crate) fn channel_taps(y: &Tensor, dy: &Tensor) -> Vec<f64> {
    let s = y.shape;
    let (n, hw, c) = (s.n, s.h * s.w, s.c);
    let mut out = vec![0f64; n * c];
    for b in 0..n {
        let acc = &mut out[b * c..(b + 1) * c];
        for p in 0..hw {
            let at = (b * hw + p) * c;
            for (k, a) in acc.iter_mut().enumerate() {
                *a += f64::from(y.data[at + k]) * f64::from(dy.data[at + k]);
            }
        }
    }
    out
}
