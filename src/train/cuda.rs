//! Fast training on the GPU: the training pass of [`super::walk`] over a
//! [`TrainPlan`] (the same plan and gradient order as the CPU trainer),
//! queued as kernel launches on one lane's stream, `K` steps with no host
//! synchronisation, each followed by one fused SGD launch.
//!
//! The labelled batches of all `K` steps and the learning-rate schedule
//! are uploaded once ([`TrainData`]) and shared by every lane, so several
//! cells train concurrently; each lane trains its cell in its own
//! parameter buffer, which the scoring pass then reads in place
//! ([`score_trained`] is the training job run on the scorer's lanes).
//!
//! Layouts (one lane's [`TrainBufs`], regions from the [`TrainPlan`]):
//! `values`, `grads`, `saved`, `stats` as the plan describes them;
//! `pgrads`, `momentum`: f32 laid out like the parameter buffer;
//! `scratch32` / `scratch64`: the backward's scratch (split conv weight
//! gradients, BatchNorm partial sums); `losses`: f32 `[CHUNK][K]`, the
//! mean loss of each step of each cell of the chunk; `correct`: i32
//! `[CHUNK][B]`, the last step's per-sample hits; `sample_loss`: f32
//! `[B]` scratch.

use super::plan::{GradTarget, TrainPlan};
use super::walk::{train_pass, TrainRunner};
use super::SgdConfig;
use crate::error::{Error, Result};
use crate::exec::cuda::executor::{cell_scores, plan_for, GpuCell, GpuScorer, CHUNK};
use crate::exec::cuda::lane::{disjoint_mut, with_views, Grow};
use crate::exec::plan::Region;
use crate::net::{Graph, NodeId};
use crate::ops::{Backward, Cuda, CudaBwd, CudaFwd, CudaGrad, CudaPartials, Forward, Role};
use crate::runtime::budget;
use crate::runtime::cuda::{kernels, CudaDevice, DView, DeviceBuffer};
use crate::tensor::{Shape, Tensor};
use crate::train::budget::{self as train_budget, TrainMemory};

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
    /// K: training steps (batches uploaded).
    pub steps: usize,
    /// The SGD hyper-parameters of every step (the rates in `lr` follow its
    /// schedule).
    pub config: SgdConfig,
}

impl TrainData {
    /// Draws batches `0..steps` of `batches` (the same ones the CPU
    /// trainer draws) and uploads them with their labels and the rates,
    /// one batch at a time (the host holds one). The device buffers are
    /// allocated first; batches that cannot fit in the GPU's free memory
    /// ([`train_budget::train_data_bytes`]; unknown under the emulation, then not
    /// checked) are refused before any is drawn.
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
        // Compile the training-only kernels now (the scorer compiled the
        // forward ones when it opened), so a GPU that cannot run them fails
        // before the first cell, not in the middle of a batch of cells.
        for family in crate::exec::kernel_table::families(crate::runtime::cuda::Pass::Backward) {
            dev.module_loaded(family)?;
        }
        let b = batches.batch_size();
        let shape = super::batches::batch_shape(b);
        let per_sample = shape.per_sample();
        let too_big = || {
            Error::Arg(format!(
                "{} {b}: the batches of {steps} steps are more than this machine can \
                 address; use a smaller --train-batch or fewer --train-steps",
                crate::train::TRAIN_BATCH
            ))
        };
        let per_batch = b.checked_mul(per_sample).ok_or_else(too_big)?;
        let inputs_len = steps.checked_mul(per_batch).ok_or_else(too_big)?;
        let labels_len = steps.checked_mul(b).ok_or_else(too_big)?;
        let need = train_budget::train_data_bytes(b, per_sample, steps);
        // Unknown (the emulation, or a failed query): not refused, as on
        // the scoring lanes.
        if let Some(free) = dev.free_memory().ok().flatten() {
            if need > free {
                return Err(Error::Arg(format!(
                    "{} {b}: the batches of {steps} steps need {} on the GPU, {} are free \
                     there; use a smaller --train-batch or fewer --train-steps",
                    crate::train::TRAIN_BATCH,
                    budget::human(need),
                    budget::human(free)
                )));
            }
        }
        let mut inputs = dev.alloc_zeros::<f32>(inputs_len)?;
        let mut labels = dev.alloc_zeros::<i32>(labels_len)?;
        let mut lr: Vec<f32> = Vec::new();
        lr.try_reserve_exact(steps).map_err(|_| too_big())?;
        lr.extend((0..steps).map(|t| config.schedule.lr_at(config.lr, t, steps) as f32));
        let mut l32: Vec<i32> = Vec::new();
        l32.try_reserve_exact(b).map_err(|_| too_big())?;
        for t in 0..steps {
            let (x, l) = batches.batch_at(t as u64)?;
            if x.shape != shape || l.len() != b {
                return Err(Error::Internal(format!(
                    "training batch {} where {shape} was expected",
                    x.shape
                )));
            }
            l32.clear();
            for v in l {
                l32.push(i32::try_from(v).map_err(|_| {
                    Error::Data(format!("label {v} does not fit the GPU's 32-bit labels"))
                })?);
            }
            // The host copies are staged by the driver before each call
            // returns, so `x` and `l32` can be reused at once.
            let mut xs = inputs
                .try_slice_mut(t * per_batch..(t + 1) * per_batch)
                .ok_or_else(|| internal("training batch outside its buffer"))?;
            dev.copy_htod(&x.data, &mut xs)?;
            let mut ls = labels
                .try_slice_mut(t * b..(t + 1) * b)
                .ok_or_else(|| internal("labels outside their buffer"))?;
            dev.copy_htod(&l32, &mut ls)?;
        }
        let data = TrainData {
            inputs,
            labels,
            lr: dev.upload(&lr)?,
            batch: shape,
            steps,
            config,
        };
        dev.synchronize()?;
        Ok(data)
    }
}

/// One lane's training buffers (see the module docs for their layouts).
pub struct TrainBufs {
    values: Grow<f32>,
    grads: Grow<f32>,
    saved: Grow<f32>,
    stats: Grow<f64>,
    scratch32: Grow<f32>,
    scratch64: Grow<f64>,
    pgrads: Grow<f32>,
    momentum: Grow<f32>,
    losses: Grow<f32>,
    correct: Grow<i32>,
    sample_loss: Grow<f32>,
}

impl Default for TrainBufs {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainBufs {
    /// Empty buffers (grown by the first cell).
    pub fn new() -> TrainBufs {
        TrainBufs {
            values: Grow::new(),
            grads: Grow::new(),
            saved: Grow::new(),
            stats: Grow::new(),
            scratch32: Grow::new(),
            scratch64: Grow::new(),
            pgrads: Grow::new(),
            momentum: Grow::new(),
            losses: Grow::new(),
            correct: Grow::new(),
            sample_loss: Grow::new(),
        }
    }

    /// Grows every buffer to what `plan` needs to train `steps` steps of a
    /// chunk of [`CHUNK`] cells: room for `CHUNK × steps` step losses and
    /// `CHUNK × B` per-sample hits. Before growing, refuses (an
    /// [`Error::Arg`] naming the training batch) buffers that cannot fit
    /// in the GPU's free memory and what these buffers hold already
    /// ([`TrainMemory::gpu`]; not checked under the emulation, which does
    /// not know its free memory).
    fn size_for(&mut self, dev: &CudaDevice, plan: &TrainPlan, steps: usize) -> Result<()> {
        let overflow = || {
            Error::Arg(format!(
                "{} {}: the losses of {steps} steps are more than this machine can address",
                crate::train::TRAIN_BATCH,
                plan.batch
            ))
        };
        let losses = CHUNK.checked_mul(steps).ok_or_else(overflow)?;
        let correct = CHUNK.checked_mul(plan.batch).ok_or_else(overflow)?;
        self.check_room(dev, plan, steps, losses, correct)?;
        self.values.ensure(dev, plan.values_len)?;
        self.grads.ensure(dev, plan.grads_len)?;
        self.saved.ensure(dev, plan.saved_len)?;
        self.stats.ensure(dev, plan.stats_len)?;
        self.scratch32.ensure(dev, plan.scratch32_len)?;
        self.scratch64.ensure(dev, plan.scratch64_len)?;
        self.pgrads.ensure(dev, plan.params_len)?;
        self.momentum.ensure(dev, plan.params_len)?;
        self.losses.ensure(dev, losses)?;
        self.correct.ensure(dev, correct)?;
        self.sample_loss.ensure(dev, plan.batch)?;
        Ok(())
    }

    /// The check of [`Self::size_for`] (as the scorer's lanes check their
    /// scoring buffers).
    fn check_room(
        &self,
        dev: &CudaDevice,
        plan: &TrainPlan,
        steps: usize,
        losses: usize,
        correct: usize,
    ) -> Result<()> {
        let grows = self.values.must_grow(plan.values_len)
            || self.grads.must_grow(plan.grads_len)
            || self.saved.must_grow(plan.saved_len)
            || self.stats.must_grow(plan.stats_len)
            || self.scratch32.must_grow(plan.scratch32_len)
            || self.scratch64.must_grow(plan.scratch64_len)
            || self.pgrads.must_grow(plan.params_len)
            || self.momentum.must_grow(plan.params_len)
            || self.losses.must_grow(losses)
            || self.correct.must_grow(correct)
            || self.sample_loss.must_grow(plan.batch);
        if !grows {
            return Ok(());
        }
        // Unknown (the emulation, or a failed query): not refused, as on
        // the scoring lanes.
        let Some(free) = dev.free_memory().ok().flatten() else {
            return Ok(());
        };
        let held = [
            self.values.bytes(),
            self.grads.bytes(),
            self.saved.bytes(),
            self.stats.bytes(),
            self.scratch32.bytes(),
            self.scratch64.bytes(),
            self.pgrads.bytes(),
            self.momentum.bytes(),
            self.losses.bytes(),
            self.correct.bytes(),
            self.sample_loss.bytes(),
        ];
        let available = held.iter().fold(free, |a, &b| a.saturating_add(b));
        TrainMemory::gpu(plan, steps, CHUNK).check_as(Some(available), "are available on the GPU")
    }
}

/// Queues `data.steps` SGD steps of `graph` on `dev`'s stream, training
/// the parameters in `params` (laid out by `plan.params`, already
/// initialised). Writes each step's mean loss to `losses[slot][t]` and the
/// last step's per-sample hits to `correct[slot]`; nothing waits for the
/// GPU.
pub fn enqueue_training(
    dev: &CudaDevice,
    bufs: &mut TrainBufs,
    params: &mut DeviceBuffer<f32>,
    graph: &Graph,
    plan: &TrainPlan,
    data: &TrainData,
    slot: usize,
) -> Result<()> {
    let b = plan.batch;
    if data.batch.n != b || data.batch.with_n(1) != plan.input {
        return Err(Error::Shape(format!(
            "training batch {} does not fit the network's input {}",
            data.batch, plan.input
        )));
    }
    let k = data.steps;
    bufs.size_for(dev, plan, k)?;
    let per_batch = data.batch.len();
    for t in 0..k {
        let input = data
            .inputs
            .try_slice(t * per_batch..(t + 1) * per_batch)
            .ok_or_else(|| Error::Internal("training batch outside its buffer".into()))?;
        let labels = data
            .labels
            .try_slice(t * b..(t + 1) * b)
            .ok_or_else(|| Error::Internal("labels outside their buffer".into()))?;
        {
            let mut runner = Runner {
                dev,
                bufs: &mut *bufs,
                params: &*params,
                input,
                labels,
                correct_at: slot * b..(slot + 1) * b,
                mean_at: slot * k + t,
                seed: None,
                taps: None,
            };
            train_pass(&mut runner, graph, plan)?;
        }
        let c = data.config;
        let step = kernels::SgdStep {
            momentum: c.momentum as f32,
            weight_decay: c.weight_decay as f32,
            nesterov: c.nesterov,
            step: t,
            first: t == 0,
        };
        let len = plan.params_len;
        let mut p = params
            .try_slice_mut(0..len)
            .ok_or_else(|| Error::Internal("parameter buffer too small".into()))?;
        let g = bufs.pgrads.view(&(0..len))?;
        let mut m = bufs.momentum.view_mut(&(0..len))?;
        kernels::sgd_update(dev, &mut p, &g, &mut m, &data.lr.as_view(), step)?;
    }
    Ok(())
}

/// The training runner of the CUDA backend: views of a lane's training
/// buffers for each node, the op's CUDA forward / backward.
struct Runner<'a> {
    dev: &'a CudaDevice,
    bufs: &'a mut TrainBufs,
    params: &'a DeviceBuffer<f32>,
    /// This step's batch and labels.
    input: DView<'a, f32>,
    labels: DView<'a, i32>,
    /// Where this step's per-sample hits and mean loss go.
    correct_at: Region,
    mean_at: usize,
    /// `Some(v)`: the loss is `v` times the sum of the outputs (a measure's
    /// pass), not the cross-entropy.
    seed: Option<f32>,
    /// `Some`: each weight layer's `[n][c]` sums of output · ∂loss/∂output,
    /// gathered as its backward starts (`fisher`; copied to the host for
    /// the reduction).
    taps: Option<Vec<(NodeId, Vec<f64>)>>,
}

fn internal(what: &str) -> Error {
    Error::Internal(what.to_string())
}

impl Runner<'_> {
    /// The value region of node `j`, or `None` for the input batch.
    fn value_region<'p>(
        &self,
        graph: &Graph,
        plan: &'p TrainPlan,
        j: NodeId,
    ) -> Result<Option<&'p Region>> {
        if graph.nodes[j].op.spec().role() == Role::Input {
            return Ok(None);
        }
        plan.nodes[j]
            .value
            .as_ref()
            .map(Some)
            .ok_or_else(|| internal(&format!("node {} has no value", graph.nodes[j].name)))
    }
}

/// Views of node `i`'s parameters in `params`.
fn param_views<'p>(
    params: &'p DeviceBuffer<f32>,
    graph: &Graph,
    plan: &TrainPlan,
    i: NodeId,
) -> Result<Vec<DView<'p, f32>>> {
    plan.param_regions(graph, i)?
        .iter()
        .map(|r| {
            params
                .try_slice(r.clone())
                .ok_or_else(|| internal("parameter region"))
        })
        .collect()
}

impl TrainRunner for Runner<'_> {
    fn forward(&mut self, graph: &Graph, plan: &TrainPlan, i: NodeId) -> Result<()> {
        let np = &plan.nodes[i];
        let out = np
            .value
            .clone()
            .ok_or_else(|| internal("a computed node without a value"))?;
        let xs = np
            .reads
            .iter()
            .map(|&j| self.value_region(graph, plan, j))
            .collect::<Result<Vec<_>>>()?;
        let shapes: Vec<Shape> = np.reads.iter().map(|&j| plan.nodes[j].shape).collect();
        let params = param_views(self.params, graph, plan, i)?;
        let dev = self.dev;
        let bufs = &mut *self.bufs;
        let partials_in = match &np.partials_in {
            Some((p, count)) => {
                let mut v =
                    disjoint_mut(bufs.stats.buffer_mut(), &[p.psum.clone(), p.psumsq.clone()])?
                        .into_iter();
                Some((
                    CudaPartials {
                        psum: v.next().expect("psum"),
                        psumsq: v.next().expect("psumsq"),
                    },
                    false,
                    *count,
                ))
            }
            None => None,
        };
        let saved = match &np.saved {
            Some(r) => Some(bufs.saved.view_mut(r)?),
            None => None,
        };
        with_views(
            bufs.values.buffer_mut(),
            &self.input,
            &out,
            &xs,
            |y, views| {
                let mut a = CudaFwd {
                    dev,
                    inputs: views.iter().copied().zip(shapes.iter().copied()).collect(),
                    out: y.as_view_mut(),
                    out_shape: np.shape,
                    params,
                    relu_input: np.relu_input,
                    in_place: None,
                    partials_out: None,
                    partials_in,
                    saved,
                    pack: None,
                };
                Forward::<Cuda>::forward(&graph.nodes[i].op, &mut a)
            },
        )
    }

    fn free_value(&mut self, _plan: &TrainPlan, _j: NodeId) {}

    fn loss(&mut self, graph: &Graph, plan: &TrainPlan) -> Result<()> {
        let out = graph.output;
        let b = plan.batch;
        let classes = plan.nodes[out].shape.per_sample();
        let bufs = &mut *self.bufs;
        let logits = bufs.values.view(
            plan.nodes[out]
                .value
                .as_ref()
                .ok_or_else(|| internal("no logits"))?,
        )?;
        let mut dl = bufs.grads.view_mut(
            plan.nodes[out]
                .grad
                .as_ref()
                .ok_or_else(|| internal("no output gradient"))?,
        )?;
        if let Some(v) = self.seed {
            return self.dev.copy_htod(&vec![v; b * classes], &mut dl);
        }
        let out = crate::ops::softmax_ce::cuda::SoftmaxCeOut {
            loss: bufs.sample_loss.view_mut(&(0..b))?,
            correct: bufs.correct.view_mut(&self.correct_at)?,
            dlogits: dl,
            mean_loss: bufs.losses.view_mut(&(self.mean_at..self.mean_at + 1))?,
        };
        crate::ops::softmax_ce::cuda::softmax_ce(self.dev, b, classes, &logits, &self.labels, out)
    }

    fn zero_param_grads(&mut self, plan: &TrainPlan) -> Result<()> {
        let mut pg = self.bufs.pgrads.view_mut(&(0..plan.params_len))?;
        self.dev.memset_zeros(&mut pg)
    }

    fn backward(&mut self, graph: &Graph, plan: &TrainPlan, i: NodeId) -> Result<()> {
        let node = &graph.nodes[i];
        let np = &plan.nodes[i];
        if self.taps.is_some() && node.op.spec().is_weight_layer() {
            let y = np
                .value
                .as_ref()
                .ok_or_else(|| internal("a layer without a value"))?;
            let dy = np
                .grad
                .as_ref()
                .ok_or_else(|| internal("a layer without a gradient"))?;
            let y = Tensor {
                shape: np.shape,
                data: self.dev.download(&self.bufs.values.view(y)?)?,
            };
            let dy = Tensor {
                shape: np.shape,
                data: self.dev.download(&self.bufs.grads.view(dy)?)?,
            };
            let t = crate::train::cpu::channel_taps(&y, &dy);
            if let Some(taps) = self.taps.as_mut() {
                taps.push((i, t));
            }
        }
        let reads_values = node.op.spec().backward_reads_inputs();
        let dev = self.dev;
        let input = self.input;
        let param_regions = plan.param_regions(graph, i)?;
        let params = param_views(self.params, graph, plan, i)?;
        let bufs = &mut *self.bufs;
        let values = bufs.values.buffer();
        let inputs = np
            .reads
            .iter()
            .map(|&j| {
                if !reads_values {
                    return Ok(None);
                }
                if graph.nodes[j].op.spec().role() == Role::Input {
                    return Ok(Some(input));
                }
                let r = plan.nodes[j]
                    .value
                    .as_ref()
                    .ok_or_else(|| internal("value to read"))?;
                values
                    .try_slice(r.clone())
                    .map(Some)
                    .ok_or_else(|| internal("value region"))
            })
            .collect::<Result<Vec<_>>>()?;
        let saved = match &np.saved {
            Some(r) => Some(bufs.saved.view(r)?),
            None => None,
        };
        // The gradient regions: dy first, then each target's.
        let dy_r = np
            .grad
            .clone()
            .ok_or_else(|| internal("no gradient to propagate"))?;
        let mut regions = vec![dy_r];
        regions.extend(np.targets.iter().flatten().map(|t| t.region.clone()));
        let mut views = disjoint_mut(bufs.grads.buffer_mut(), &regions)?.into_iter();
        let dy = views.next().expect("dy view");
        let dx = np
            .targets
            .iter()
            .map(|t| {
                t.as_ref().map(|t| CudaGrad {
                    dx: views.next().expect("target view"),
                    accumulate: t.accumulate,
                })
            })
            .collect();
        let dparams = disjoint_mut(bufs.pgrads.buffer_mut(), &param_regions)?;
        let (s32, s64) = np.backward_scratch;
        let scratch32 = (s32 > 0)
            .then(|| bufs.scratch32.view_mut(&(0..s32)))
            .transpose()?;
        let scratch64 = (s64 > 0)
            .then(|| bufs.scratch64.view_mut(&(0..s64)))
            .transpose()?;
        let mut a = CudaBwd {
            dev,
            inputs,
            in_shapes: np.reads.iter().map(|&j| plan.nodes[j].shape).collect(),
            params,
            saved,
            dy: dy.as_view(),
            dx,
            dparams,
            relu_input: np.relu_input,
            scratch32,
            scratch64,
        };
        Backward::<Cuda>::backward(&node.op, &mut a)
    }

    fn merge(&mut self, _plan: &TrainPlan, t: &GradTarget) -> Result<()> {
        let into = t
            .merge_into
            .clone()
            .ok_or_else(|| internal("merge without a target"))?;
        let mut v =
            disjoint_mut(self.bufs.grads.buffer_mut(), &[into, t.region.clone()])?.into_iter();
        let mut acc = v.next().expect("gradient view");
        let g = v.next().expect("scratch view");
        crate::ops::add::cuda::add_into(self.dev, &mut acc, &g.as_view())
    }

    fn free_grad(&mut self, _plan: &TrainPlan, _i: NodeId) {}
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
    gradients_with_taps(dev, graph, params, input, labels, false).map(|(l, g, _)| (l, g))
}

/// [`gradients`], and with `taps` each weight layer's `[n][c]` sums over
/// positions of output · ∂loss/∂output (the CPU's
/// [`crate::train::cpu::GradientPass::layer_taps`]), in node order.
pub fn gradients_with_taps(
    dev: &CudaDevice,
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    taps: bool,
) -> Result<(f64, Vec<Vec<f32>>, crate::train::cpu::LayerTaps)> {
    let options = crate::train::plan::PlanOptions {
        input_grad: false,
        keep_layer_outputs: taps,
    };
    let (plan, bufs, gathered) = single_pass(dev, graph, params, input, labels, options, None)?;
    let mut mean = [0f32];
    dev.copy_dtoh(&bufs.losses.view(&(0..1))?, &mut mean)?;
    let pg = dev.download(&bufs.pgrads.view(&(0..plan.params_len))?)?;
    let grads = plan
        .params
        .iter()
        .map(|s| pg[s.offset..s.offset + s.len].to_vec())
        .collect();
    Ok((f64::from(mean[0]), grads, gathered))
}

/// ∂(seed · Σ outputs)/∂input of `graph` with `params` on `input` on the
/// GPU, copied back (NHWC like `input`): the input Jacobian of the
/// measures `jacov` and `epe_nas`.
pub fn input_jacobian(
    dev: &CudaDevice,
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    seed: f32,
) -> Result<Tensor> {
    let options = crate::train::plan::PlanOptions {
        input_grad: true,
        keep_layer_outputs: false,
    };
    let labels = vec![0u32; input.shape.n];
    let (plan, bufs, _) = single_pass(dev, graph, params, input, &labels, options, Some(seed))?;
    let input_node = graph
        .nodes
        .iter()
        .position(|n| n.op.spec().role() == Role::Input)
        .ok_or_else(|| internal("no input node"))?;
    let data = match &plan.nodes[input_node].grad {
        Some(r) if plan.nodes[input_node].has_grad => dev.download(&bufs.grads.view(r)?)?,
        // No path from the input to the output: a zero Jacobian.
        _ => vec![0.0; input.data.len()],
    };
    Ok(Tensor {
        shape: input.shape,
        data,
    })
}

/// The forward pass of `graph` with `params` on `input` on the GPU (BatchNorm
/// on the batch's statistics, as in training), handing `visit` the value of
/// every node `samples` asks for, copied back as soon as it is computed:
/// its first `samples(i)` samples (0: not copied; more than the batch:
/// all of it). A ReLU fused into its readers is visited as the ReLU of
/// its source's copy. The input node is not visited. The CPU's
/// [`crate::train::cpu::forward_visit`] on the device.
pub fn forward_visit(
    dev: &CudaDevice,
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    samples: &dyn Fn(NodeId) -> usize,
    visit: &mut dyn FnMut(NodeId, &Tensor) -> Result<()>,
) -> Result<()> {
    let b = input.shape.n;
    let plan = TrainPlan::new(graph, b)?;
    let mut up = Uploaded::new(dev, graph, &plan, params, input, &vec![0; b])?;
    let fused = plan.fused_relus(graph);
    let mut runner = up.runner(dev, b, None, false);
    let input_node = graph
        .nodes
        .iter()
        .position(|n| n.op.spec().role() == Role::Input);
    for (i, node) in plan.nodes.iter().enumerate() {
        let relus = fused.get(&i).map(Vec::as_slice).unwrap_or(&[]);
        let want = relus
            .iter()
            .map(|&r| samples(r))
            .chain([if node.computes { samples(i) } else { 0 }])
            .max()
            .unwrap_or(0)
            .min(b);
        if node.computes {
            runner.forward(graph, &plan, i)?;
        }
        if want == 0 {
            continue;
        }
        let shape = plan.nodes[i].shape;
        let value = if Some(i) == input_node {
            Tensor {
                shape: input.shape.with_n(want),
                data: input.data[..want * shape.per_sample()].to_vec(),
            }
        } else {
            let r = node
                .value
                .as_ref()
                .ok_or_else(|| internal("a computed node without a value"))?;
            let part = r.start..r.start + want * shape.per_sample();
            Tensor {
                shape: shape.with_n(want),
                data: dev.download(&runner.bufs.values.view(&part)?)?,
            }
        };
        if node.computes && samples(i) > 0 {
            visit(i, &value)?;
        }
        for &r in relus {
            if samples(r) > 0 {
                visit(r, &crate::train::cpu::relu_copy(&value)?)?;
            }
        }
    }
    Ok(())
}

/// One forward and backward of `graph` with `params` on `input` (planned
/// with `options`; the loss: the cross-entropy against `labels`, or
/// `seed` times the sum of the outputs), its buffers left on the device
/// for the caller to read, and the layer taps when `options` keeps the
/// layers' outputs.
fn single_pass(
    dev: &CudaDevice,
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    labels: &[u32],
    options: crate::train::plan::PlanOptions,
    seed: Option<f32>,
) -> Result<(TrainPlan, TrainBufs, crate::train::cpu::LayerTaps)> {
    let b = input.shape.n;
    let plan = TrainPlan::with_options(graph, b, options)?;
    let mut up = Uploaded::new(dev, graph, &plan, params, input, labels)?;
    let mut runner = up.runner(dev, b, seed, options.keep_layer_outputs);
    train_pass(&mut runner, graph, &plan)?;
    let mut taps = runner.taps.take().unwrap_or_default();
    taps.sort_by_key(|(i, _)| *i);
    Ok((plan, up.bufs, taps))
}

/// One pass's inputs on the device: the parameters laid out as the plan
/// places them, the batch, its labels, and one lane's buffers sized for
/// the plan.
struct Uploaded {
    params: DeviceBuffer<f32>,
    input: DeviceBuffer<f32>,
    labels: DeviceBuffer<i32>,
    bufs: TrainBufs,
}

impl Uploaded {
    /// Checks `input` and `params` against `plan` and uploads them.
    fn new(
        dev: &CudaDevice,
        graph: &Graph,
        plan: &TrainPlan,
        params: &[Vec<f32>],
        input: &Tensor,
        labels: &[u32],
    ) -> Result<Uploaded> {
        if input.shape.with_n(1) != plan.input {
            return Err(Error::Shape(format!(
                "input batch {} does not fit the network's input {}",
                input.shape, plan.input
            )));
        }
        graph.check_params(params, "parameter")?;
        let mut flat = vec![0f32; plan.params_len.max(1)];
        for (s, p) in plan.params.iter().zip(params) {
            flat[s.offset..s.offset + s.len].copy_from_slice(p);
        }
        let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let mut bufs = TrainBufs::new();
        bufs.size_for(dev, plan, 1)?;
        Ok(Uploaded {
            params: dev.upload(&flat)?,
            input: dev.upload(&input.data)?,
            labels: dev.upload(&lab)?,
            bufs,
        })
    }

    /// A runner of one pass over these buffers (batch `b`; the loss
    /// `seed` times the sum of the outputs, else the cross-entropy; the
    /// layer taps gathered when `taps`).
    fn runner<'a>(
        &'a mut self,
        dev: &'a CudaDevice,
        b: usize,
        seed: Option<f32>,
        taps: bool,
    ) -> Runner<'a> {
        Runner {
            dev,
            bufs: &mut self.bufs,
            params: &self.params,
            input: self.input.as_view(),
            labels: self.labels.as_view(),
            correct_at: 0..b,
            mean_at: 0,
            seed,
            taps: taps.then(Vec::new),
        }
    }
}

/// Reads back the chunk's training results: per cell, the loss of every
/// step (to catch divergence) and the last step's accuracy.
pub fn read_results(
    dev: &CudaDevice,
    bufs: &TrainBufs,
    count: usize,
    steps: usize,
    batch: usize,
) -> Result<Vec<(Vec<f32>, f64)>> {
    let losses = dev.download(&bufs.losses.view(&(0..count * steps))?)?;
    let correct = dev.download(&bufs.correct.view(&(0..count * batch))?)?;
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
    swap: bool,
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
        let mut swaps = Vec::with_capacity(cells.len());
        for (slot, i) in cells.clone().enumerate() {
            let graph = build(i)?;
            let plan = plan_for(&graph, shape)?;
            let tplan = TrainPlan::new(&graph, data.batch.n)?;
            lane.state.init_params(&lane.dev, &plan, seed, false)?;
            enqueue_training(
                &lane.dev,
                &mut tb,
                lane.state.params_mut(),
                &graph,
                &tplan,
                data,
                slot,
            )?;
            lane.state
                .enqueue_scoring(&lane.dev, &plan, &graph, input, slot, false)?;
            units.push(plan.n_units);
            // Before the next cell's pass overwrites the codes.
            swaps.push(if swap {
                Some(lane.state.swap_of_last_pass(&lane.dev, &plan)?)
            } else {
                None
            });
        }
        let n = cells.len();
        let out = lane.state.finish_chunk(&lane.dev, shape.n, n, None)?;
        let trained = read_results(&lane.dev, &tb, n, data.steps, data.batch.n)?;
        let share = t0.elapsed().as_secs_f64() / n as f64;
        let mut cells_out = Vec::with_capacity(n);
        for (k, (((ld, n_units), (losses, acc)), swap)) in out
            .into_iter()
            .zip(units)
            .zip(trained)
            .zip(swaps)
            .enumerate()
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
                    scores: crate::Scores {
                        swap,
                        ..cell_scores(ld, n_units, shape.n, alpha)
                    },
                    seconds: share,
                },
                stats,
            ));
        }
        Ok(cells_out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::batches::LabelledBatches;

    fn images(n: usize) -> crate::data::cifar::CifarImages {
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.push((i % 10) as u8);
            bytes.extend((0..3072).map(|k| ((k * 7 + i * 13) % 256) as u8));
        }
        crate::data::cifar::CifarImages::from_bytes(&bytes, crate::data::cifar::Dataset::Cifar10)
            .unwrap()
    }

    /// Training memory is refused with an error naming the training batch
    /// before anything is drawn or allocated: batches whose length
    /// overflows (anywhere), and on a GPU, batches and training buffers
    /// beyond its free memory (the emulation does not know its free
    /// memory, and refuses nothing it can address).
    fn training_memory_is_checked_before_allocating(dev: &CudaDevice) {
        let imgs = images(3);
        let config = SgdConfig::default();
        let mut batches =
            LabelledBatches::new(&imgs, vec![0, 1, 2], 4, 0, Default::default()).unwrap();
        let steps = usize::MAX / 4;
        let e = TrainData::upload(dev, &mut batches, steps, config)
            .err()
            .expect("refused");
        assert!(matches!(e, Error::Arg(_)), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains(&format!("training batch 4: the batches of {steps} steps")),
            "{e}"
        );
        let arch = crate::space::Arch::parse(
            "nb201".parse::<crate::space::Space>().unwrap(),
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        )
        .unwrap();
        let graph = arch.network().unwrap();
        // About 560 GB of training buffers: more than any GPU has.
        let plan = TrainPlan::new(&graph, 100_000).unwrap();
        let bufs = TrainBufs::new();
        let room = bufs.check_room(dev, &plan, 1, CHUNK, CHUNK * 100_000);
        if dev.is_emulated() {
            room.unwrap();
            return;
        }
        let e = room.unwrap_err().to_string();
        assert!(e.contains("training batch 100000 needs about"), "{e}");
        assert!(e.contains("are available on the GPU"), "{e}");
        let e = TrainBufs::new()
            .size_for(dev, &plan, 1)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("training batch 100000 needs about"), "{e}");
        // 10^5 images for each of 1,000 steps: 1.2 TB on the GPU.
        let mut batches =
            LabelledBatches::new(&imgs, vec![0, 1, 2], 100_000, 0, Default::default()).unwrap();
        let e = TrainData::upload(dev, &mut batches, 1000, config)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("training batch 100000: the batches of 1000 steps need 1.2 TB on the GPU"),
            "{e}"
        );
    }
    gpu_test!(training_memory_is_checked_before_allocating);

    /// The batches are uploaded one at a time into their slice of the
    /// device buffer: the same data as drawing them all on the host.
    fn uploaded_batches_are_the_drawn_ones(dev: &CudaDevice) {
        let imgs = images(7);
        let aug = crate::train::batches::Augment {
            crop: true,
            flip: true,
        };
        let pool: Vec<usize> = (1..7).collect();
        let mut batches = LabelledBatches::new(&imgs, pool.clone(), 4, 3, aug).unwrap();
        let data = TrainData::upload(dev, &mut batches, 3, SgdConfig::default()).unwrap();
        assert_eq!(data.batch, Shape::new(4, 32, 32, 3));
        let mut again = LabelledBatches::new(&imgs, pool, 4, 3, aug).unwrap();
        let inputs = dev.download(&data.inputs.as_view()).unwrap();
        let labels = dev.download(&data.labels.as_view()).unwrap();
        let per = 4 * 3072;
        for t in 0..3 {
            let (x, l) = again.batch_at(t as u64).unwrap();
            assert_eq!(inputs[t * per..(t + 1) * per], x.data[..]);
            let l: Vec<i32> = l.iter().map(|&v| v as i32).collect();
            assert_eq!(labels[t * 4..(t + 1) * 4], l[..]);
        }
        let lr = dev.download(&data.lr.as_view()).unwrap();
        assert_eq!(lr.len(), 3);
        assert_eq!(lr[0], 0.1);
    }
    gpu_test!(uploaded_batches_are_the_drawn_ones);
}
