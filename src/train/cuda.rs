//! Fast training on the GPU: the CPU training executor's algorithm
//! ([`super::cpu`]: plain forward that keeps every value, softmax
//! cross-entropy, backward in reverse node order with the same gradient
//! summation order, PyTorch SGD) queued as kernel launches on one lane's
//! stream, `K` steps with no host synchronisation.
//!
//! The labelled batches of all `K` steps and the learning-rate schedule
//! are uploaded once ([`TrainData`]) and shared by every lane, so several
//! cells train concurrently; each lane trains its cell in its own
//! parameter buffer, which the scoring pass then reads in place.
//!
//! Layouts (one lane's [`TrainBufs`], regions from [`TrainPlan`]):
//! * `vals`: f32, node `i`'s forward value `[B][h][w][c]` at `value[i]`
//!   (every computed node has its own region: nothing is overwritten
//!   before the backward pass reads it);
//! * `grads`: f32, ∂loss/∂(node `i`'s output) at `grad[i]`, same shapes;
//! * `pgrads`, `momentum`: f32 laid out like the parameter buffer
//!   (`device::plan::Plan::params`);
//! * `bn`: f32, per BatchNorm node `[mean: c][inv_std: c]` at `bn[i]`;
//! * `scratch64`: f64 partial sums of BatchNorm (forward and backward);
//! * `conv_part`: f32 split partials of the conv weight gradient;
//! * `losses`: f32 `[CHUNK][K]`, the mean loss of each step of each cell
//!   of the chunk; `correct`: i32 `[CHUNK][B]`, the last step's per-sample
//!   hits; `sample_loss`: f32 `[B]` scratch.

use super::SgdConfig;
use crate::device::cuda::executor::{cell_scores, plan_for, GpuCell, GpuScorer, CHUNK};
use crate::device::cuda::{kernels, CudaDevice};
use crate::device::cuda::{DView, DViewMut, DeviceBuffer};
use crate::device::plan::{ParamSlot, Region, ALIGN};
use crate::error::{Error, Result};
use crate::net::{Graph, NodeId, Op};
use crate::ops;
use crate::tensor::{Shape, Tensor};

/// The training batches of every step, their labels and the learning
/// rates, on the device (read-only once uploaded).
pub struct TrainData {
    /// f32 `[K][B][h][w][c]`.
    inputs: DeviceBuffer<f32>,
    /// i32 `[K][B]`.
    labels: DeviceBuffer<i32>,
    /// f32 `[K]`: the schedule's rate of each step.
    lr: DeviceBuffer<f32>,
    /// Shape of one batch.
    pub batch: Shape,
    pub steps: usize,
    pub config: SgdConfig,
}

impl TrainData {
    /// Draws batches `0..steps` of `batches` (the same ones the CPU
    /// trainer draws) and uploads them with their labels and the rates.
    pub fn upload(
        dev: &CudaDevice,
        batches: &mut super::batches::LabelledBatches,
        steps: usize,
        config: SgdConfig,
    ) -> Result<TrainData> {
        config.validate()?;
        if steps == 0 {
            return Err(Error::Arg("GPU training needs at least one step".into()));
        }
        let mut inputs = Vec::new();
        let mut labels = Vec::new();
        let mut shape = Shape::new(0, 0, 0, 0);
        for t in 0..steps {
            let (x, l) = batches.batch_at(t as u64)?;
            shape = x.shape;
            inputs.extend_from_slice(&x.data);
            for v in l {
                labels.push(i32::try_from(v).map_err(|_| {
                    Error::Data(format!("label {v} does not fit the GPU's 32-bit labels"))
                })?);
            }
        }
        let lr: Vec<f32> = (0..steps)
            .map(|t| config.schedule.lr_at(config.lr, t, steps) as f32)
            .collect();
        let data = TrainData {
            inputs: dev.upload(&inputs)?,
            labels: dev.upload(&labels)?,
            lr: dev.upload(&lr)?,
            batch: shape,
            steps,
            config,
        };
        dev.synchronize()?;
        Ok(data)
    }
}

/// Where one network's training buffers go, and the static order of its
/// gradient contributions.
pub struct TrainPlan {
    batch: usize,
    value: Vec<Option<Region>>,
    grad: Vec<Option<Region>>,
    bn: Vec<Option<Region>>,
    vals_len: usize,
    grads_len: usize,
    bn_len: usize,
    scratch64_len: usize,
    conv_part_len: usize,
    fused_relu_source: Vec<Option<NodeId>>,
    needs_grad: Vec<bool>,
}

fn bump(len: &mut usize, n: usize) -> Region {
    let start = *len;
    *len += n.div_ceil(ALIGN) * ALIGN;
    start..start + n
}

impl TrainPlan {
    /// Plans `graph` for training batches of `batch` samples. Errors when a
    /// parameter is read by two nodes (the GPU writes each gradient once).
    pub fn new(graph: &Graph, batch: usize) -> Result<TrainPlan> {
        let n = graph.nodes.len();
        let mut uses = vec![0usize; graph.params.len()];
        for node in &graph.nodes {
            let ps: &[usize] = &node.params;
            for &p in ps {
                uses[p] += 1;
                if uses[p] > 1 {
                    return Err(Error::Arg(format!(
                        "GPU training: parameter {} is shared by two nodes",
                        graph.params[p].name
                    )));
                }
            }
        }
        let f = crate::device::plan::Fusions::of(graph);
        let mut needs_grad = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let has_params = matches!(node.op, Op::Conv2d(_) | Op::BatchNorm(_) | Op::Linear(_));
            needs_grad[i] = has_params
                || (!matches!(node.op, Op::Zeros(_)) && node.inputs.iter().any(|&j| needs_grad[j]));
        }
        let (mut vals_len, mut grads_len, mut bn_len) = (0, 0, 0);
        let (mut scratch64_len, mut conv_part_len) = (0usize, 0usize);
        let mut value = vec![None; n];
        let mut grad = vec![None; n];
        let mut bn = vec![None; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let len = node.shape.with_n(batch).len();
            let computed = match node.op {
                Op::Input(_) => false,
                Op::Relu(_) => f.relu_materialised[i],
                _ => true,
            };
            if computed {
                value[i] = Some(bump(&mut vals_len, len));
            }
            if !matches!(node.op, Op::Input(_)) {
                // Every node gets a gradient region: a backward that must
                // write an input gradient nobody needs writes it there.
                grad[i] = Some(bump(&mut grads_len, len));
            }
            match &node.op {
                Op::BatchNorm(spec) => {
                    bn[i] = Some(bump(&mut bn_len, 2 * spec.channels));
                    let parts = ops::batchnorm::cuda::batchnorm_parts(node.shape.with_n(batch));
                    scratch64_len = scratch64_len.max(2 * parts * spec.channels);
                }
                Op::Conv2d(spec) => {
                    let src = f.fused_relu_source[i].unwrap_or(node.inputs[0]);
                    let input = graph.nodes[src].shape.with_n(batch);
                    let splits = ops::conv2d::cuda::conv2d_backward_weight_splits(spec, input)?;
                    conv_part_len = conv_part_len.max(splits * spec.weight_len());
                }
                _ => {}
            }
        }
        Ok(TrainPlan {
            batch,
            value,
            grad,
            bn,
            vals_len,
            grads_len,
            bn_len,
            scratch64_len: scratch64_len.max(1),
            conv_part_len: conv_part_len.max(1),
            fused_relu_source: f.fused_relu_source,
            needs_grad,
        })
    }
}

/// A grow-only device buffer.
struct Grow<T> {
    slice: Option<DeviceBuffer<T>>,
}

impl<T: bytemuck::Pod> Grow<T> {
    fn get(&mut self, dev: &CudaDevice, len: usize) -> Result<&mut DeviceBuffer<T>> {
        let len = len.max(1);
        if self.slice.as_ref().is_none_or(|s| s.len() < len) {
            // Queued work may still use the old buffer.
            dev.synchronize()?;
            self.slice = None;
            self.slice = Some(dev.alloc_zeros::<T>(len + len / 4)?);
        }
        self.slice
            .as_mut()
            .ok_or_else(|| Error::Device("internal: buffer".into()))
    }
}

/// One lane's training buffers (see the module docs for their layouts).
pub(crate) struct TrainBufs {
    vals: Grow<f32>,
    grads: Grow<f32>,
    pgrads: Grow<f32>,
    momentum: Grow<f32>,
    bn: Grow<f32>,
    scratch64: Grow<f64>,
    conv_part: Grow<f32>,
    losses: Grow<f32>,
    correct: Grow<i32>,
    sample_loss: Grow<f32>,
}

impl TrainBufs {
    pub(crate) fn new() -> TrainBufs {
        TrainBufs {
            vals: Grow { slice: None },
            grads: Grow { slice: None },
            pgrads: Grow { slice: None },
            momentum: Grow { slice: None },
            bn: Grow { slice: None },
            scratch64: Grow { slice: None },
            conv_part: Grow { slice: None },
            losses: Grow { slice: None },
            correct: Grow { slice: None },
            sample_loss: Grow { slice: None },
        }
    }
}

fn region_err(r: &Region) -> Error {
    Error::Device(format!(
        "internal: training region {r:?} outside its buffer"
    ))
}

fn view<'a, T: bytemuck::Pod>(s: &'a DeviceBuffer<T>, r: &Region) -> Result<DView<'a, T>> {
    s.try_slice(r.clone()).ok_or_else(|| region_err(r))
}

fn view_mut<'a, T: bytemuck::Pod>(
    s: &'a mut DeviceBuffer<T>,
    r: &Region,
) -> Result<DViewMut<'a, T>> {
    s.try_slice_mut(r.clone()).ok_or_else(|| region_err(r))
}

/// Runs `f` with `dx` (mutable) and `dy` views of two disjoint regions of
/// one buffer.
fn dx_dy<R>(
    buf: &mut DeviceBuffer<f32>,
    dx: &Region,
    dy: &Region,
    f: impl FnOnce(&mut DViewMut<'_, f32>, &DView<'_, f32>) -> Result<R>,
) -> Result<R> {
    if dx.start < dy.end && dy.start < dx.end {
        return Err(Error::Device(format!(
            "internal: gradient regions {dx:?} and {dy:?} overlap"
        )));
    }
    if dx.start < dy.start {
        let (mut a, b) = buf.split_at_mut(dy.start);
        let mut x = a.slice_mut(dx.clone());
        let y = b.slice(0..dy.len());
        f(&mut x, &y)
    } else {
        let (a, mut b) = buf.split_at_mut(dx.start);
        let y = a.slice(dy.clone());
        let mut x = b.slice_mut(0..dx.len());
        f(&mut x, &y)
    }
}

/// Runs `f` with mutable views of two disjoint regions `a`, `b` of one
/// buffer (in that order, wherever they lie).
fn two<R>(
    buf: &mut DeviceBuffer<f32>,
    a: &Region,
    b: &Region,
    f: impl FnOnce(&mut DViewMut<'_, f32>, &mut DViewMut<'_, f32>) -> Result<R>,
) -> Result<R> {
    let swap = a.start > b.start;
    let (lo, hi) = if swap { (b, a) } else { (a, b) };
    if lo.end > hi.start || hi.end > buf.len() {
        return Err(Error::Device(format!(
            "internal: regions {a:?} and {b:?} overlap or exceed their buffer"
        )));
    }
    let (mut x, mut y) = buf.split_at_mut(hi.start);
    let mut lv = x.slice_mut(lo.clone());
    let mut hv = y.slice_mut(0..hi.len());
    if swap {
        f(&mut hv, &mut lv)
    } else {
        f(&mut lv, &mut hv)
    }
}

/// Queues `data.steps` SGD steps of `graph` on `dev`'s stream, training
/// the parameters in `params` (laid out by `slots`, already initialised).
/// Writes each step's mean loss to `losses[slot][t]` and the last step's
/// per-sample hits to `correct[slot]`; nothing waits for the GPU.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enqueue_training(
    dev: &CudaDevice,
    bufs: &mut TrainBufs,
    params: &mut DeviceBuffer<f32>,
    params_len: usize,
    slots: &[ParamSlot],
    graph: &Graph,
    plan: &TrainPlan,
    data: &TrainData,
    slot: usize,
) -> Result<()> {
    let b = plan.batch;
    if data.batch.n != b || data.batch.with_n(1) != graph.input_shape()? {
        return Err(Error::Shape(format!(
            "training batch {} does not fit the network's input {}",
            data.batch,
            graph.input_shape()?
        )));
    }
    let k = data.steps;
    bufs.size_for(dev, plan, params_len, CHUNK * k, CHUNK * b)?;
    let per_batch = data.batch.len();
    for t in 0..k {
        let input = view(&data.inputs, &(t * per_batch..(t + 1) * per_batch))?;
        forward(dev, bufs, params, slots, graph, plan, &input)?;
        let labels = view(&data.labels, &(t * b..(t + 1) * b))?;
        let correct = slot * b..(slot + 1) * b;
        loss_and_dlogits(dev, bufs, graph, plan, &labels, &correct, slot * k + t)?;
        backward(dev, bufs, params, params_len, slots, graph, plan, &input)?;
        let c = data.config;
        let step = kernels::SgdStep {
            momentum: c.momentum as f32,
            weight_decay: c.weight_decay as f32,
            nesterov: c.nesterov,
            step: t,
            first: t == 0,
        };
        let mut p = view_mut(params, &(0..params_len))?;
        let g = view(slice(&bufs.pgrads)?, &(0..params_len))?;
        let mut m = view_mut(slice_mut(&mut bufs.momentum)?, &(0..params_len))?;
        kernels::sgd_update(dev, &mut p, &g, &mut m, &data.lr.as_view(), step)?;
    }
    Ok(())
}

impl TrainBufs {
    /// Grows every buffer to what `plan` needs, with room for `losses`
    /// step losses and `correct` per-sample hits.
    fn size_for(
        &mut self,
        dev: &CudaDevice,
        plan: &TrainPlan,
        params_len: usize,
        losses: usize,
        correct: usize,
    ) -> Result<()> {
        self.vals.get(dev, plan.vals_len)?;
        self.grads.get(dev, plan.grads_len)?;
        self.pgrads.get(dev, params_len)?;
        self.momentum.get(dev, params_len)?;
        self.bn.get(dev, plan.bn_len)?;
        self.scratch64.get(dev, plan.scratch64_len)?;
        self.conv_part.get(dev, plan.conv_part_len)?;
        self.losses.get(dev, losses)?;
        self.correct.get(dev, correct)?;
        self.sample_loss.get(dev, plan.batch)?;
        Ok(())
    }
}

/// Softmax cross-entropy of the output node's logits against `labels`:
/// dlogits into the output's gradient, the mean loss into `losses[mean_at]`,
/// per-sample hits into `correct[correct_at]`.
fn loss_and_dlogits(
    dev: &CudaDevice,
    bufs: &mut TrainBufs,
    graph: &Graph,
    plan: &TrainPlan,
    labels: &DView<'_, i32>,
    correct_at: &Region,
    mean_at: usize,
) -> Result<()> {
    let b = plan.batch;
    let out = graph.output;
    let classes = graph.nodes[out].shape.per_sample();
    let logits = view(
        slice(&bufs.vals)?,
        &need(&plan.value[out], "value", "output")?,
    )?;
    let mut dl = view_mut(
        slice_mut(&mut bufs.grads)?,
        &need(&plan.grad[out], "gradient", "output")?,
    )?;
    let mut loss = view_mut(slice_mut(&mut bufs.sample_loss)?, &(0..b))?;
    let mut correct = view_mut(slice_mut(&mut bufs.correct)?, correct_at)?;
    let mut mean = view_mut(slice_mut(&mut bufs.losses)?, &(mean_at..mean_at + 1))?;
    ops::softmax_ce::cuda::softmax_ce(
        dev,
        b,
        classes,
        &logits,
        labels,
        &mut loss,
        &mut correct,
        &mut dl,
        &mut mean,
    )
}

fn slice<T>(g: &Grow<T>) -> Result<&DeviceBuffer<T>> {
    g.slice
        .as_ref()
        .ok_or_else(|| Error::Device("internal: buffer not allocated".into()))
}

fn slice_mut<T>(g: &mut Grow<T>) -> Result<&mut DeviceBuffer<T>> {
    g.slice
        .as_mut()
        .ok_or_else(|| Error::Device("internal: buffer not allocated".into()))
}

fn param(slots: &[ParamSlot], p: usize) -> Result<Region> {
    slots
        .get(p)
        .map(|s| s.offset..s.offset + s.len)
        .ok_or_else(|| Error::Device(format!("internal: no parameter {p}")))
}

fn need(r: &Option<Region>, what: &str, node: &str) -> Result<Region> {
    r.clone()
        .ok_or_else(|| Error::Device(format!("internal: node {node} has no {what} region")))
}

/// Node `j`'s forward value: the step's input batch or its region.
fn value_of<'a>(
    vals: &'a DeviceBuffer<f32>,
    plan: &TrainPlan,
    graph: &Graph,
    input: &DView<'a, f32>,
    j: NodeId,
) -> Result<DView<'a, f32>> {
    if matches!(graph.nodes[j].op, Op::Input(_)) {
        return Ok(input.slice(..));
    }
    view(vals, &need(&plan.value[j], "value", &graph.nodes[j].name)?)
}

fn forward(
    dev: &CudaDevice,
    bufs: &mut TrainBufs,
    params: &DeviceBuffer<f32>,
    slots: &[ParamSlot],
    graph: &Graph,
    plan: &TrainPlan,
    input: &DView<'_, f32>,
) -> Result<()> {
    let b = plan.batch;
    let vals = slice_mut(&mut bufs.vals)?;
    for (i, node) in graph.nodes.iter().enumerate() {
        let Some(y_r) = plan.value[i].clone() else {
            continue;
        };
        let shape = node.shape.with_n(b);
        // The forward value regions are disjoint and in node order, so
        // node i's region lies after every region it reads.
        let (done, mut rest) = vals.split_at_mut(y_r.start);
        let mut y = rest
            .try_slice_mut(0..y_r.len())
            .ok_or_else(|| region_err(&y_r))?;
        let x_of = |j: NodeId| -> Result<DView<'_, f32>> {
            if matches!(graph.nodes[j].op, Op::Input(_)) {
                return Ok(input.slice(..));
            }
            let r = need(&plan.value[j], "value", &graph.nodes[j].name)?;
            done.try_slice(r.clone()).ok_or_else(|| region_err(&r))
        };
        let first = || {
            node.inputs
                .first()
                .copied()
                .ok_or_else(|| Error::Shape(format!("node {} has no input", node.name)))
        };
        match &node.op {
            Op::Input(_) => {}
            Op::Zeros(_) => dev.memset_zeros(&mut y)?,
            Op::Conv2d(spec) => {
                let weight = &node.params[0];
                let (src, relu) = match plan.fused_relu_source[i] {
                    Some(s) => (s, true),
                    None => (first()?, false),
                };
                let w = view(params, &param(slots, *weight)?)?;
                let xin = graph.nodes[src].shape.with_n(b);
                ops::conv2d::cuda::conv2d_forward(dev, spec, xin, &x_of(src)?, &w, &mut y, relu)?;
            }
            Op::BatchNorm(spec) => {
                let (gamma, beta) = (&node.params[0], &node.params[1]);
                let j = first()?;
                let g = view(params, &param(slots, *gamma)?)?;
                let be = view(params, &param(slots, *beta)?)?;
                let c = spec.channels;
                let st = need(&plan.bn[i], "statistics", &node.name)?;
                let bnb = slice_mut(&mut bufs.bn)?;
                let mut stats = bnb
                    .try_slice_mut(st.clone())
                    .ok_or_else(|| region_err(&st))?;
                let (mut mean, mut inv) = stats.split_at_mut(c);
                let parts = ops::batchnorm::cuda::batchnorm_parts(shape);
                let s64 = slice_mut(&mut bufs.scratch64)?;
                let (mut ps, mut pq) = s64.split_at_mut(parts * c);
                let mut pq = pq
                    .try_slice_mut(0..parts * c)
                    .ok_or_else(|| Error::Device("internal: BN scratch".into()))?;
                ops::batchnorm::cuda::batchnorm_forward(
                    dev,
                    spec,
                    shape,
                    &x_of(j)?,
                    &g,
                    &be,
                    &mut y,
                    &mut mean,
                    &mut inv,
                    &mut ps,
                    &mut pq,
                )?;
            }
            Op::Relu(_) => ops::relu::cuda::relu_forward(dev, &x_of(first()?)?, &mut y)?,
            Op::Pool(spec) => {
                let j = first()?;
                let xin = graph.nodes[j].shape.with_n(b);
                ops::pool::cuda::pool_forward(dev, spec, xin, &x_of(j)?, &mut y)?;
            }
            Op::Add(_) => {
                let xs = node
                    .inputs
                    .iter()
                    .map(|&j| x_of(j))
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&DView<'_, f32>> = xs.iter().collect();
                ops::add::cuda::add_forward(dev, &refs, &mut y)?;
            }
            Op::Concat(_) => {
                let xs = node
                    .inputs
                    .iter()
                    .map(|&j| x_of(j))
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&DView<'_, f32>> = xs.iter().collect();
                let channels: Vec<usize> = node
                    .inputs
                    .iter()
                    .map(|&j| graph.nodes[j].shape.c)
                    .collect();
                let pixels = b * node.shape.h * node.shape.w;
                ops::concat::cuda::concat_forward(dev, &refs, &channels, pixels, &mut y)?;
            }
            Op::Crop(spec) => {
                let j = first()?;
                let xin = graph.nodes[j].shape.with_n(b);
                ops::crop::cuda::crop_forward(dev, spec, xin, &x_of(j)?, &mut y)?;
            }
            Op::GlobalAvgPool(_) => {
                let j = first()?;
                let xin = graph.nodes[j].shape.with_n(b);
                ops::global_avg_pool::cuda::global_avg_pool_forward(dev, xin, &x_of(j)?, &mut y)?;
            }
            Op::Linear(spec) => {
                let (weight, bias) = (&node.params[0], &node.params[1]);
                let j = first()?;
                let xin = graph.nodes[j].shape.with_n(b);
                let w = view(params, &param(slots, *weight)?)?;
                let bi = view(params, &param(slots, *bias)?)?;
                ops::linear::cuda::linear_forward(dev, spec, xin, &x_of(j)?, &w, &bi, &mut y)?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn backward(
    dev: &CudaDevice,
    bufs: &mut TrainBufs,
    params: &DeviceBuffer<f32>,
    params_len: usize,
    slots: &[ParamSlot],
    graph: &Graph,
    plan: &TrainPlan,
    input: &DView<'_, f32>,
) -> Result<()> {
    let b = plan.batch;
    let n = graph.nodes.len();
    {
        let mut pg = view_mut(slice_mut(&mut bufs.pgrads)?, &(0..params_len))?;
        dev.memset_zeros(&mut pg)?;
    }
    // Which nodes hold a gradient so far: the first contribution writes,
    // later ones add (the CPU's order: readers from the highest id down,
    // a reader's inputs in order).
    let mut has = vec![false; n];
    has[graph.output] = true;
    let vals = slice(&bufs.vals)?;
    for i in (0..n).rev() {
        if !has[i] {
            continue;
        }
        let node = &graph.nodes[i];
        let dy_r = need(&plan.grad[i], "gradient", &node.name)?;
        let first = || {
            node.inputs
                .first()
                .copied()
                .ok_or_else(|| Error::Shape(format!("node {} has no input", node.name)))
        };
        let grad_of = |j: NodeId| need(&plan.grad[j], "gradient", &graph.nodes[j].name);
        match &node.op {
            Op::Input(_) | Op::Zeros(_) => {}
            Op::Conv2d(spec) => {
                let weight = &node.params[0];
                let (src, relu) = match plan.fused_relu_source[i] {
                    Some(s) => (s, true),
                    None => (first()?, false),
                };
                let x = value_of(vals, plan, graph, input, src)?;
                let xin = graph.nodes[src].shape.with_n(b);
                {
                    let dy = view(slice(&bufs.grads)?, &dy_r)?;
                    let mut dw = view_mut(slice_mut(&mut bufs.pgrads)?, &param(slots, *weight)?)?;
                    let part = slice_mut(&mut bufs.conv_part)?;
                    let splits = ops::conv2d::cuda::conv2d_backward_weight_splits(spec, xin)?;
                    let mut part = view_mut(part, &(0..splits * spec.weight_len()))?;
                    ops::conv2d::cuda::conv2d_backward_weight(
                        dev, spec, xin, &x, &dy, &mut dw, &mut part, relu,
                    )?;
                }
                if plan.needs_grad[src] {
                    let w = view(params, &param(slots, *weight)?)?;
                    let acc = has[src];
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(src)?,
                        &dy_r,
                        |dx, dy| {
                            ops::conv2d::cuda::conv2d_backward_input(
                                dev,
                                spec,
                                xin,
                                dy,
                                &w,
                                dx,
                                relu.then_some(&x),
                                acc,
                            )
                        },
                    )?;
                    has[src] = true;
                }
            }
            Op::BatchNorm(spec) => {
                let (gamma, beta) = (&node.params[0], &node.params[1]);
                let j = first()?;
                let x = value_of(vals, plan, graph, input, j)?;
                let shape = graph.nodes[j].shape.with_n(b);
                let c = spec.channels;
                let st = need(&plan.bn[i], "statistics", &node.name)?;
                let bnb = slice(&bufs.bn)?;
                let mean = view(bnb, &(st.start..st.start + c))?;
                let inv = view(bnb, &(st.start + c..st.start + 2 * c))?;
                let g = view(params, &param(slots, *gamma)?)?;
                let parts = ops::batchnorm::cuda::batchnorm_parts(shape);
                let (gr, br) = (param(slots, *gamma)?, param(slots, *beta)?);
                let acc = has[j] && plan.needs_grad[j];
                let s64 = slice_mut(&mut bufs.scratch64)?;
                let (mut pdy, mut rest) = s64.split_at_mut(parts * c);
                let mut pdyx = rest
                    .try_slice_mut(0..parts * c)
                    .ok_or_else(|| Error::Device("internal: BN scratch".into()))?;
                let pgrads = slice_mut(&mut bufs.pgrads)?;
                two(pgrads, &gr, &br, |dg, db| {
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| {
                            ops::batchnorm::cuda::batchnorm_backward(
                                dev, spec, shape, &x, dy, &mean, &inv, &g, dx, dg, db, &mut pdy,
                                &mut pdyx, acc,
                            )
                        },
                    )
                })?;
                if plan.needs_grad[j] {
                    has[j] = true;
                }
            }
            Op::Relu(_) => {
                let j = first()?;
                if plan.needs_grad[j] {
                    let x = value_of(vals, plan, graph, input, j)?;
                    let acc = has[j];
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| ops::relu::cuda::relu_backward(dev, &x, dy, dx, acc),
                    )?;
                    has[j] = true;
                }
            }
            Op::Pool(spec) => {
                let j = first()?;
                if plan.needs_grad[j] {
                    let x = value_of(vals, plan, graph, input, j)?;
                    let xs = graph.nodes[j].shape.with_n(b);
                    let acc = has[j];
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| ops::pool::cuda::pool_backward(dev, spec, xs, &x, dy, dx, acc),
                    )?;
                    has[j] = true;
                }
            }
            Op::Add(_) => {
                for &j in &node.inputs {
                    if !plan.needs_grad[j] {
                        continue;
                    }
                    let acc = has[j];
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| {
                            if acc {
                                ops::add::cuda::add_into(dev, dx, dy)
                            } else {
                                dev.copy_dtod(dy, dx)
                            }
                        },
                    )?;
                    has[j] = true;
                }
            }
            Op::Concat(_) => {
                // Input k's gradient is its channel window of dy.
                let ys = node.shape.with_n(b);
                let mut c0 = 0;
                for &j in &node.inputs {
                    let c = graph.nodes[j].shape.c;
                    if plan.needs_grad[j] {
                        let spec = ops::crop::CropSpec {
                            top: 0,
                            left: 0,
                            h: ys.h,
                            w: ys.w,
                            c0,
                            c,
                        };
                        let acc = has[j];
                        dx_dy(
                            slice_mut(&mut bufs.grads)?,
                            &grad_of(j)?,
                            &dy_r,
                            |dx, dy| ops::crop::cuda::crop_forward_acc(dev, &spec, ys, dy, dx, acc),
                        )?;
                        has[j] = true;
                    }
                    c0 += c;
                }
            }
            Op::Crop(spec) => {
                let j = first()?;
                if plan.needs_grad[j] {
                    let xs = graph.nodes[j].shape.with_n(b);
                    let acc = has[j];
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| ops::crop::cuda::crop_backward(dev, spec, xs, dy, dx, acc),
                    )?;
                    has[j] = true;
                }
            }
            Op::GlobalAvgPool(_) => {
                let j = first()?;
                if plan.needs_grad[j] {
                    let xs = graph.nodes[j].shape.with_n(b);
                    let acc = has[j];
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| {
                            ops::global_avg_pool::cuda::global_avg_pool_backward(
                                dev, xs, dy, dx, acc,
                            )
                        },
                    )?;
                    has[j] = true;
                }
            }
            Op::Linear(spec) => {
                let (weight, bias) = (&node.params[0], &node.params[1]);
                let j = first()?;
                let x = value_of(vals, plan, graph, input, j)?;
                let xs = graph.nodes[j].shape.with_n(b);
                let w = view(params, &param(slots, *weight)?)?;
                let (wr, br) = (param(slots, *weight)?, param(slots, *bias)?);
                let acc = has[j] && plan.needs_grad[j];
                let pgrads = slice_mut(&mut bufs.pgrads)?;
                two(pgrads, &wr, &br, |dw, db| {
                    dx_dy(
                        slice_mut(&mut bufs.grads)?,
                        &grad_of(j)?,
                        &dy_r,
                        |dx, dy| {
                            ops::linear::cuda::linear_backward(
                                dev, spec, xs, &x, &w, dy, dx, dw, db, acc,
                            )
                        },
                    )
                })?;
                if plan.needs_grad[j] {
                    has[j] = true;
                }
            }
        }
    }
    Ok(())
}

/// One training step's gradients on the GPU, copied back (for tests):
/// the loss and ∂loss/∂param per parameter, for `params` (indexed like
/// `graph.params`) on `input` with `labels`.
pub fn gradients(
    dev: &CudaDevice,
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
) -> Result<(f64, Vec<Vec<f32>>)> {
    let b = input.shape.n;
    let dplan = crate::device::plan::Plan::new(graph, b)?;
    let plan = TrainPlan::new(graph, b)?;
    let mut flat = vec![0f32; dplan.params_len.max(1)];
    for (s, p) in dplan.params.iter().zip(params) {
        if p.len() != s.len {
            return Err(Error::Arg(format!(
                "parameter of {} values where the network needs {}",
                p.len(),
                s.len
            )));
        }
        flat[s.offset..s.offset + s.len].copy_from_slice(p);
    }
    let mut pdev = dev.upload(&flat)?;
    let xin = dev.upload(&input.data)?;
    let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
    let lab = dev.upload(&lab)?;
    let mut bufs = TrainBufs::new();
    bufs.size_for(dev, &plan, dplan.params_len, 1, b)?;
    let xv = xin.as_view();
    forward(dev, &mut bufs, &pdev, &dplan.params, graph, &plan, &xv)?;
    loss_and_dlogits(dev, &mut bufs, graph, &plan, &lab.as_view(), &(0..b), 0)?;
    backward(
        dev,
        &mut bufs,
        &pdev,
        dplan.params_len,
        &dplan.params,
        graph,
        &plan,
        &xv,
    )?;
    let mut mean = [0f32];
    dev.copy_dtoh(&view(slice(&bufs.losses)?, &(0..1))?, &mut mean)?;
    let pg = dev.download(&view(slice(&bufs.pgrads)?, &(0..dplan.params_len))?)?;
    let _ = &mut pdev;
    let grads = dplan
        .params
        .iter()
        .map(|s| pg[s.offset..s.offset + s.len].to_vec())
        .collect();
    Ok((f64::from(mean[0]), grads))
}

/// Reads back the chunk's training results: per cell, the loss of every
/// step (to catch divergence) and the last step's accuracy.
pub(crate) fn read_results(
    dev: &CudaDevice,
    bufs: &TrainBufs,
    count: usize,
    steps: usize,
    batch: usize,
) -> Result<Vec<(Vec<f32>, f64)>> {
    let losses = dev.download(&view(slice(&bufs.losses)?, &(0..count * steps))?)?;
    let correct = dev.download(&view(slice(&bufs.correct)?, &(0..count * batch))?)?;
    Ok((0..count)
        .map(|c| {
            let hits = correct[c * batch..(c + 1) * batch]
                .iter()
                .filter(|&&v| v != 0)
                .count();
            (
                losses[c * steps..(c + 1) * steps].to_vec(),
                hits as f64 / batch as f64,
            )
        })
        .collect())
}

/// Trains each of `count` networks `data.steps` SGD steps from the weights
/// of `seed` on `scorer`'s lanes (the lanes train different cells at
/// once), then scores it with the trained weights on the scoring batch, as
/// [`GpuScorer::score`] does untrained. Per cell: the scores and the
/// training summary (last step's loss and batch accuracy). A non-finite
/// loss at any step is an error naming the step.
pub fn score_trained<F>(
    scorer: &mut GpuScorer,
    count: usize,
    build: F,
    seed: u64,
    alpha: f64,
    data: &TrainData,
) -> Result<Vec<(GpuCell, super::TrainStats)>>
where
    F: Fn(usize) -> Result<Graph> + Sync,
{
    let (_, shape) = scorer.input();
    // This job's own buffers per lane, beside the lane's scoring buffers.
    let bufs: Vec<std::sync::Mutex<TrainBufs>> = (0..scorer.lanes())
        .map(|_| std::sync::Mutex::new(TrainBufs::new()))
        .collect();
    scorer.run_job(count, None, |lane, cells, input, _| {
        let t0 = std::time::Instant::now();
        let mut tb = bufs[lane.index].lock().unwrap_or_else(|e| e.into_inner());
        let mut units = Vec::with_capacity(cells.len());
        for (slot, i) in cells.clone().enumerate() {
            let graph = build(i)?;
            let plan = plan_for(&graph, shape)?;
            let tplan = TrainPlan::new(&graph, data.batch.n)?;
            lane.state.init_params(&lane.dev, &plan, seed, false)?;
            enqueue_training(
                &lane.dev,
                &mut tb,
                lane.state.params_mut(),
                plan.params_len,
                &plan.params,
                &graph,
                &tplan,
                data,
                slot,
            )?;
            lane.state
                .enqueue_scoring(&lane.dev, &plan, &graph, input, slot, false)?;
            units.push(plan.n_units);
        }
        let n = cells.len();
        let out = lane.state.finish_chunk(&lane.dev, shape.n, n, None)?;
        let trained = read_results(&lane.dev, &tb, n, data.steps, data.batch.n)?;
        let share = t0.elapsed().as_secs_f64() / n as f64;
        let mut cells_out = Vec::with_capacity(n);
        for (k, ((ld, n_units), (losses, acc))) in
            out.into_iter().zip(units).zip(trained).enumerate()
        {
            if let Some(t) = losses.iter().position(|l| !l.is_finite()) {
                return Err(Error::Data(format!(
                    "training diverged: loss {} at step {} (cell {})",
                    losses[t],
                    t + 1,
                    cells.start + k
                )));
            }
            let stats = super::TrainStats {
                steps: data.steps,
                final_loss: losses.last().map(|&l| f64::from(l)),
                final_accuracy: Some(acc),
                seconds: share,
            };
            cells_out.push((
                GpuCell {
                    scores: cell_scores(ld, n_units, shape.n, alpha),
                    seconds: share,
                },
                stats,
            ));
        }
        Ok(cells_out)
    })
}
