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
use crate::device::cuda::executor::{cell_scores, plan_for, GpuCell, GpuScorer, CHUNK};
use crate::device::cuda::lane::{disjoint_mut, with_views, Grow};
use crate::device::cuda::{kernels, CudaDevice, DView, DeviceBuffer};
use crate::device::plan::Region;
use crate::error::{Error, Result};
use crate::net::{Graph, NodeId};
use crate::ops::{Backward, Cuda, CudaBwd, CudaFwd, CudaGrad, CudaPartials, Forward, Role};
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
    /// K: training steps (batches uploaded).
    pub steps: usize,
    /// The SGD hyper-parameters of every step (the rates in `lr` follow its
    /// schedule).
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
        // Compile the training-only kernels now (the scorer compiled the
        // forward ones when it opened), so a GPU that cannot run them fails
        // before the first cell, not in the middle of a batch of cells.
        for family in crate::device::cuda::table::families(crate::device::cuda::Pass::Backward) {
            dev.module_loaded(family)?;
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

    /// Grows every buffer to what `plan` needs, with room for `losses`
    /// step losses and `correct` per-sample hits.
    fn size_for(
        &mut self,
        dev: &CudaDevice,
        plan: &TrainPlan,
        losses: usize,
        correct: usize,
    ) -> Result<()> {
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
    bufs.size_for(dev, plan, CHUNK * k, CHUNK * b)?;
    let per_batch = data.batch.len();
    for t in 0..k {
        let input = data
            .inputs
            .try_slice(t * per_batch..(t + 1) * per_batch)
            .ok_or_else(|| Error::Device("internal: training batch outside its buffer".into()))?;
        let labels = data
            .labels
            .try_slice(t * b..(t + 1) * b)
            .ok_or_else(|| Error::Device("internal: labels outside their buffer".into()))?;
        {
            let mut runner = Runner {
                dev,
                bufs: &mut *bufs,
                params: &*params,
                input,
                labels,
                correct_at: slot * b..(slot + 1) * b,
                mean_at: slot * k + t,
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
            .ok_or_else(|| Error::Device("internal: parameter buffer too small".into()))?;
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
}

fn internal(what: &str) -> Error {
    Error::Device(format!("internal: {what}"))
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
        let dl = bufs.grads.view_mut(
            plan.nodes[out]
                .grad
                .as_ref()
                .ok_or_else(|| internal("no output gradient"))?,
        )?;
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
    let b = input.shape.n;
    let plan = TrainPlan::new(graph, b)?;
    if input.shape.with_n(1) != plan.input {
        return Err(Error::Shape(format!(
            "input batch {} does not fit the network's input {}",
            input.shape, plan.input
        )));
    }
    if params.len() != plan.params.len() {
        return Err(Error::Arg(format!(
            "{} parameter tensors given, the network has {}",
            params.len(),
            plan.params.len()
        )));
    }
    let mut flat = vec![0f32; plan.params_len.max(1)];
    for (s, p) in plan.params.iter().zip(params) {
        if p.len() != s.len {
            return Err(Error::Arg(format!(
                "parameter of {} values where the network needs {}",
                p.len(),
                s.len
            )));
        }
        flat[s.offset..s.offset + s.len].copy_from_slice(p);
    }
    let pdev = dev.upload(&flat)?;
    let xin = dev.upload(&input.data)?;
    let lab: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
    let lab = dev.upload(&lab)?;
    let mut bufs = TrainBufs::new();
    bufs.size_for(dev, &plan, 1, b)?;
    {
        let mut runner = Runner {
            dev,
            bufs: &mut bufs,
            params: &pdev,
            input: xin.as_view(),
            labels: lab.as_view(),
            correct_at: 0..b,
            mean_at: 0,
        };
        train_pass(&mut runner, graph, &plan)?;
    }
    let mut mean = [0f32];
    dev.copy_dtoh(&bufs.losses.view(&(0..1))?, &mut mean)?;
    let pg = dev.download(&bufs.pgrads.view(&(0..plan.params_len))?)?;
    let grads = plan
        .params
        .iter()
        .map(|s| pg[s.offset..s.offset + s.len].to_vec())
        .collect();
    Ok((f64::from(mean[0]), grads))
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
