//! CPU training executor: one forward pass that keeps what the backward pass
//! needs, the softmax cross-entropy on the output node's logits, and one
//! backward pass in reverse node order that writes every parameter's
//! gradient.
//!
//! What is kept: a node's output is kept until the backward pass iff some
//! reader's backward needs its values — a conv (its input, for the weight
//! gradient), a BatchNorm (its input, to rebuild x̂ with the saved mean and
//! 1/std), a materialised ReLU (its input, for the mask), a max pool (its
//! input, to find the arg-max), a linear layer (its input). Adds, average
//! pools, global average pools and `Zeros` need no values, so e.g. a cell's
//! BN outputs, read only by the cell's add, are freed during the forward
//! pass. A ReLU whose readers are all convs is not materialised (like the
//! scoring executor): the conv applies it while reading its source
//! ([`conv2d_forward_relu_input`](crate::ops::conv2d::cpu::conv2d_forward_relu_input)),
//! its weight gradient uses the `relu_input` variant, and its input
//! gradient goes through the ReLU mask of the source on the way back.
//!
//! The forward pass uses the plain (unfused) CPU ops, so a training
//! forward is bitwise the plain-op forward. Gradients arriving at one node
//! from several readers are summed in reverse node order (readers with
//! higher ids first, then a reader's inputs in order), so the result does
//! not depend on the thread count; every op backward is deterministic on
//! its own.

use crate::error::{Error, Result};
use crate::net::{Graph, NodeId, Op};
use crate::ops;
use crate::ops::batchnorm::BnStats;
use crate::ops::pool::PoolKind;
use crate::ops::softmax_ce::CeStats;
use crate::tensor::Tensor;
use std::time::Instant;

/// Wall time of one training pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassTiming {
    pub forward_s: f64,
    pub backward_s: f64,
}

/// Forward, loss and backward on one labelled batch. `params` are indexed
/// like `graph.params`; `grads` must be shaped like `params` and is
/// overwritten with `∂loss/∂param` (a parameter no path to the loss
/// reaches gets zeros). The logits are the output node's values
/// `[n, 1, 1, classes]`.
pub fn forward_backward(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    grads: &mut [Vec<f32>],
) -> Result<(CeStats, PassTiming)> {
    check_params(graph, params, "parameter")?;
    check_params(graph, grads, "gradient")?;
    let plan = Plan::new(graph);
    let t0 = Instant::now();
    let mut fwd = forward(graph, &plan, params, input, true)?;
    let logits = fwd.values[graph.output]
        .take()
        .ok_or_else(|| Error::Shape("internal: output not computed".into()))?;
    let mut dlogits = Tensor::zeros(logits.shape);
    let ce = ops::softmax_ce::cpu::softmax_ce_forward_backward(&logits, labels, &mut dlogits)?;
    let forward_s = t0.elapsed().as_secs_f64();
    fwd.values[graph.output] = Some(logits);
    let t1 = Instant::now();
    backward(graph, &plan, params, &mut fwd, dlogits, grads)?;
    Ok((
        ce,
        PassTiming {
            forward_s,
            backward_s: t1.elapsed().as_secs_f64(),
        },
    ))
}

/// Loss and batch accuracy of one labelled batch (forward only, nothing kept).
pub fn loss(graph: &Graph, params: &[Vec<f32>], input: &Tensor, labels: &[u32]) -> Result<CeStats> {
    check_params(graph, params, "parameter")?;
    let plan = Plan::new(graph);
    let mut fwd = forward(graph, &plan, params, input, false)?;
    let logits = fwd.values[graph.output]
        .take()
        .ok_or_else(|| Error::Shape("internal: output not computed".into()))?;
    ops::softmax_ce::cpu::softmax_ce_loss(&logits, labels)
}

fn check_params(graph: &Graph, params: &[Vec<f32>], what: &str) -> Result<()> {
    if params.len() != graph.params.len() {
        return Err(Error::Arg(format!(
            "{} {what} tensors given, the network has {}",
            params.len(),
            graph.params.len()
        )));
    }
    for (p, v) in graph.params.iter().zip(params) {
        if p.len != v.len() {
            return Err(Error::Arg(format!(
                "{what} {} has {} values, needs {}",
                p.name,
                v.len(),
                p.len
            )));
        }
    }
    Ok(())
}

/// Per-node decisions, fixed by the graph.
struct Plan {
    /// For a conv reading a ReLU: that ReLU's input (the conv applies it).
    fused_relu_source: Vec<Option<NodeId>>,
    /// Whether a ReLU node is computed (some reader is not a conv, or it
    /// is the output).
    relu_materialised: Vec<bool>,
    /// Whether a node's values are needed by some reader's backward.
    keep: Vec<bool>,
    /// Last node (in forward order) that reads each node's values.
    last_read: Vec<usize>,
    /// Whether a gradient with respect to the node's output is needed
    /// (some parameter lies upstream of it).
    needs_grad: Vec<bool>,
}

impl Plan {
    fn new(graph: &Graph) -> Plan {
        let n = graph.nodes.len();
        let mut fused_relu_source = vec![None; n];
        let mut relu_materialised = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            for &j in &node.inputs {
                if matches!(graph.nodes[j].op, Op::Relu(_)) {
                    if matches!(node.op, Op::Conv2d(_)) {
                        fused_relu_source[i] = Some(graph.nodes[j].inputs[0]);
                    } else {
                        relu_materialised[j] = true;
                    }
                }
            }
        }
        relu_materialised[graph.output] = true;
        let mut keep = vec![false; n];
        let mut last_read = vec![0usize; n];
        let mut needs_grad = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let reads: Vec<NodeId> = match fused_relu_source[i] {
                Some(src) => vec![src],
                None if matches!(node.op, Op::Relu(_)) && !relu_materialised[i] => vec![],
                None => node.inputs.clone(),
            };
            let values_needed = match &node.op {
                Op::Conv2d(_) | Op::BatchNorm(_) | Op::Linear(_) => true,
                Op::Relu(_) => relu_materialised[i],
                Op::Pool(spec) => spec.kind == PoolKind::Max,
                Op::Input(_)
                | Op::Zeros(_)
                | Op::Add(_)
                | Op::GlobalAvgPool(_)
                | Op::Concat(_)
                | Op::Crop(_) => false,
            };
            for &j in &reads {
                last_read[j] = last_read[j].max(i);
                keep[j] |= values_needed;
            }
            let has_params = matches!(node.op, Op::Conv2d(_) | Op::BatchNorm(_) | Op::Linear(_));
            needs_grad[i] = has_params
                || (!matches!(node.op, Op::Zeros(_)) && node.inputs.iter().any(|&j| needs_grad[j]));
        }
        last_read[graph.output] = n;
        keep[graph.output] = true;
        Plan {
            fused_relu_source,
            relu_materialised,
            keep,
            last_read,
            needs_grad,
        }
    }
}

/// What the forward pass leaves for the backward pass.
struct Forward {
    values: Vec<Option<Tensor>>,
    bn_stats: Vec<Option<BnStats>>,
}

fn input_of(graph: &Graph, i: NodeId, k: usize) -> Result<NodeId> {
    graph.nodes[i]
        .inputs
        .get(k)
        .copied()
        .ok_or_else(|| Error::Shape(format!("node {} has no input {k}", graph.nodes[i].name)))
}

fn get<'t>(values: &'t [Option<Tensor>], graph: &Graph, j: NodeId) -> Result<&'t Tensor> {
    values[j].as_ref().ok_or_else(|| {
        Error::Shape(format!(
            "internal: node {} read after it was freed",
            graph.nodes[j].name
        ))
    })
}

/// The forward pass; with `for_backward`, keeps what [`Plan::keep`] says,
/// else frees every value after its last reader.
fn forward(
    graph: &Graph,
    plan: &Plan,
    params: &[Vec<f32>],
    input: &Tensor,
    for_backward: bool,
) -> Result<Forward> {
    let in_shape = graph.input_shape()?;
    let s = input.shape;
    if s.with_n(1) != in_shape || s.n == 0 {
        return Err(Error::Shape(format!(
            "input batch {s} does not fit the network's input [n, {}, {}, {}]",
            in_shape.h, in_shape.w, in_shape.c
        )));
    }
    let nb = s.n;
    let n = graph.nodes.len();
    let mut values: Vec<Option<Tensor>> = vec![None; n];
    let mut bn_stats: Vec<Option<BnStats>> = vec![None; n];
    for i in 0..n {
        let node = &graph.nodes[i];
        let shape = node.shape.with_n(nb);
        let out = match &node.op {
            Op::Input(_) => Some(input.clone()),
            Op::Zeros(_) => Some(Tensor::zeros(shape)),
            Op::Conv2d(spec) => {
                let weight = &node.params[0];
                let mut y = Tensor::zeros(shape);
                match plan.fused_relu_source[i] {
                    Some(src) => ops::conv2d::cpu::conv2d_forward_relu_input(
                        spec,
                        get(&values, graph, src)?,
                        &params[*weight],
                        &mut y,
                    )?,
                    None => ops::conv2d::cpu::conv2d_forward(
                        spec,
                        get(&values, graph, input_of(graph, i, 0)?)?,
                        &params[*weight],
                        &mut y,
                    )?,
                }
                Some(y)
            }
            Op::BatchNorm(spec) => {
                let (gamma, beta) = (&node.params[0], &node.params[1]);
                let mut y = Tensor::zeros(shape);
                let st = ops::batchnorm::cpu::batchnorm_forward(
                    spec,
                    get(&values, graph, input_of(graph, i, 0)?)?,
                    &params[*gamma],
                    &params[*beta],
                    &mut y,
                )?;
                bn_stats[i] = Some(st);
                Some(y)
            }
            Op::Relu(_) => {
                if plan.relu_materialised[i] {
                    let mut y = Tensor::zeros(shape);
                    ops::relu::cpu::relu_forward(
                        get(&values, graph, input_of(graph, i, 0)?)?,
                        &mut y,
                    )?;
                    Some(y)
                } else {
                    None
                }
            }
            Op::Pool(spec) => {
                let mut y = Tensor::zeros(shape);
                ops::pool::cpu::pool_forward(
                    spec,
                    get(&values, graph, input_of(graph, i, 0)?)?,
                    &mut y,
                )?;
                Some(y)
            }
            Op::Add(_) => {
                let xs = node
                    .inputs
                    .iter()
                    .map(|&j| get(&values, graph, j))
                    .collect::<Result<Vec<_>>>()?;
                let mut y = Tensor::zeros(shape);
                ops::add::cpu::add_forward(&xs, &mut y)?;
                Some(y)
            }
            Op::Concat(_) => {
                let xs = node
                    .inputs
                    .iter()
                    .map(|&j| get(&values, graph, j))
                    .collect::<Result<Vec<_>>>()?;
                let mut y = Tensor::zeros(shape);
                ops::concat::cpu::concat_forward(&xs, &mut y)?;
                Some(y)
            }
            Op::Crop(spec) => {
                let mut y = Tensor::zeros(shape);
                ops::crop::cpu::crop_forward(
                    spec,
                    get(&values, graph, input_of(graph, i, 0)?)?,
                    &mut y,
                )?;
                Some(y)
            }
            Op::GlobalAvgPool(_) => {
                let mut y = Tensor::zeros(shape);
                ops::global_avg_pool::cpu::global_avg_pool_forward(
                    get(&values, graph, input_of(graph, i, 0)?)?,
                    &mut y,
                )?;
                Some(y)
            }
            Op::Linear(spec) => {
                let (weight, bias) = (&node.params[0], &node.params[1]);
                let mut y = Tensor::zeros(shape);
                ops::linear::cpu::linear_forward(
                    spec,
                    get(&values, graph, input_of(graph, i, 0)?)?,
                    &params[*weight],
                    &params[*bias],
                    &mut y,
                )?;
                Some(y)
            }
        };
        values[i] = out;
        // Free what no later forward op and no backward op reads.
        let reads: Vec<NodeId> = match plan.fused_relu_source[i] {
            Some(src) => vec![src],
            None => node.inputs.clone(),
        };
        for j in reads {
            if plan.last_read[j] == i && !(for_backward && plan.keep[j]) {
                values[j] = None;
            }
        }
    }
    Ok(Forward { values, bn_stats })
}

/// Adds `g` to the gradient of node `j` (takes it over if it is the first).
fn accumulate(grads: &mut [Option<Tensor>], j: NodeId, g: Tensor) -> Result<()> {
    match &mut grads[j] {
        Some(acc) => ops::add::cpu::add_backward_accumulate(&g, acc),
        slot => {
            *slot = Some(g);
            Ok(())
        }
    }
}

/// Adds `g` into a parameter gradient (a parameter read by several nodes
/// sums their contributions).
fn add_param(dst: &mut [f32], g: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(g) {
        *d += v;
    }
}

fn backward(
    graph: &Graph,
    plan: &Plan,
    params: &[Vec<f32>],
    fwd: &mut Forward,
    dlogits: Tensor,
    pgrads: &mut [Vec<f32>],
) -> Result<()> {
    for g in pgrads.iter_mut() {
        g.fill(0.0);
    }
    let n = graph.nodes.len();
    let mut grads: Vec<Option<Tensor>> = vec![None; n];
    grads[graph.output] = Some(dlogits);
    for i in (0..n).rev() {
        let node = &graph.nodes[i];
        let Some(dy) = grads[i].take() else {
            fwd.values[i] = None;
            continue;
        };
        let values = &fwd.values;
        match &node.op {
            Op::Input(_) | Op::Zeros(_) => {}
            Op::Conv2d(spec) => {
                let weight = &node.params[0];
                let (src, relu) = match plan.fused_relu_source[i] {
                    Some(src) => (src, true),
                    None => (input_of(graph, i, 0)?, false),
                };
                let x = get(values, graph, src)?;
                let mut dw = vec![0.0f32; params[*weight].len()];
                if relu {
                    ops::conv2d::cpu::conv2d_backward_weight_relu_input(spec, x, &dy, &mut dw)?;
                } else {
                    ops::conv2d::cpu::conv2d_backward_weight(spec, x, &dy, &mut dw)?;
                }
                add_param(&mut pgrads[*weight], &dw);
                if plan.needs_grad[src] {
                    let mut dx = Tensor::zeros(x.shape);
                    ops::conv2d::cpu::conv2d_backward_input(
                        spec,
                        x.shape,
                        &dy,
                        &params[*weight],
                        &mut dx,
                    )?;
                    if relu {
                        ops::relu::cpu::relu_backward_inplace(x, &mut dx)?;
                    }
                    accumulate(&mut grads, src, dx)?;
                }
            }
            Op::BatchNorm(spec) => {
                let (gamma, beta) = (&node.params[0], &node.params[1]);
                let j = input_of(graph, i, 0)?;
                let x = get(values, graph, j)?;
                let st = fwd.bn_stats[i]
                    .as_ref()
                    .ok_or_else(|| Error::Shape("internal: BatchNorm statistics missing".into()))?;
                let mut dx = Tensor::zeros(x.shape);
                let c = spec.channels;
                let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
                ops::batchnorm::cpu::batchnorm_backward(
                    spec,
                    x,
                    &params[*gamma],
                    st,
                    &dy,
                    &mut dx,
                    &mut dg,
                    &mut db,
                )?;
                add_param(&mut pgrads[*gamma], &dg);
                add_param(&mut pgrads[*beta], &db);
                if plan.needs_grad[j] {
                    accumulate(&mut grads, j, dx)?;
                }
            }
            Op::Relu(_) => {
                let j = input_of(graph, i, 0)?;
                if plan.needs_grad[j] {
                    let mut dx = dy;
                    ops::relu::cpu::relu_backward_inplace(get(values, graph, j)?, &mut dx)?;
                    accumulate(&mut grads, j, dx)?;
                }
            }
            Op::Pool(spec) => {
                let j = input_of(graph, i, 0)?;
                if plan.needs_grad[j] {
                    let xs = graph.nodes[j].shape.with_n(dy.shape.n);
                    let x = match spec.kind {
                        PoolKind::Max => Some(get(values, graph, j)?),
                        PoolKind::Avg => None,
                    };
                    let mut dx = Tensor::zeros(xs);
                    ops::pool::cpu::pool_backward(spec, x, &dy, &mut dx)?;
                    accumulate(&mut grads, j, dx)?;
                }
            }
            Op::Add(_) => {
                let live: Vec<NodeId> = node
                    .inputs
                    .iter()
                    .copied()
                    .filter(|&j| plan.needs_grad[j])
                    .collect();
                for (k, &j) in live.iter().enumerate() {
                    if k + 1 == live.len() {
                        accumulate(&mut grads, j, dy)?;
                        break;
                    }
                    accumulate(&mut grads, j, dy.clone())?;
                }
            }
            Op::Concat(_) => {
                // Input k's gradient is its channel window of dy.
                let mut c0 = 0;
                for &j in &node.inputs {
                    let c = graph.nodes[j].shape.c;
                    if plan.needs_grad[j] {
                        let spec = ops::crop::CropSpec {
                            top: 0,
                            left: 0,
                            h: dy.shape.h,
                            w: dy.shape.w,
                            c0,
                            c,
                        };
                        let mut dx = Tensor::zeros(spec.out_shape(dy.shape)?);
                        ops::crop::cpu::crop_forward(&spec, &dy, &mut dx)?;
                        accumulate(&mut grads, j, dx)?;
                    }
                    c0 += c;
                }
            }
            Op::Crop(spec) => {
                let j = input_of(graph, i, 0)?;
                if plan.needs_grad[j] {
                    let xs = graph.nodes[j].shape.with_n(dy.shape.n);
                    let mut dx = Tensor::zeros(xs);
                    ops::crop::cpu::crop_backward(spec, xs, &dy, &mut dx)?;
                    accumulate(&mut grads, j, dx)?;
                }
            }
            Op::GlobalAvgPool(_) => {
                let j = input_of(graph, i, 0)?;
                if plan.needs_grad[j] {
                    let mut dx = Tensor::zeros(graph.nodes[j].shape.with_n(dy.shape.n));
                    ops::global_avg_pool::cpu::global_avg_pool_backward(&dy, &mut dx)?;
                    accumulate(&mut grads, j, dx)?;
                }
            }
            Op::Linear(spec) => {
                let (weight, bias) = (&node.params[0], &node.params[1]);
                let j = input_of(graph, i, 0)?;
                let x = get(values, graph, j)?;
                let mut dw = vec![0.0f32; params[*weight].len()];
                let mut db = vec![0.0f32; params[*bias].len()];
                let mut dx = plan.needs_grad[j].then(|| Tensor::zeros(x.shape));
                ops::linear::cpu::linear_backward(
                    spec,
                    x,
                    &params[*weight],
                    &dy,
                    dx.as_mut(),
                    &mut dw,
                    &mut db,
                )?;
                add_param(&mut pgrads[*weight], &dw);
                add_param(&mut pgrads[*bias], &db);
                if let Some(dx) = dx {
                    accumulate(&mut grads, j, dx)?;
                }
            }
        }
        // Every reader of node i has a larger id: its value is done.
        fwd.values[i] = None;
    }
    Ok(())
}
