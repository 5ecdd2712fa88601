//! The GPU scorer: scores networks on one GPU, several cells in flight,
//! and brings back only the scores.
//!
//! The scoring job of a lane (see [`super::lane`]): for each cell of a
//! chunk of [`CHUNK`] cells, plan the network on the host, then queue (no
//! host synchronisation): the parameter table copy and one initialisation
//! launch, the plan's steps ([`crate::exec::walk::run_plan`] with this
//! module's runner, which hands each op its buffers and calls its CUDA
//! forward), the Hamming accumulation per code group into that cell's H,
//! and K_H = N_A − H. After the chunk, one batched Cholesky launch
//! computes the ln dets of all its cells, and one copy of `count` ln dets
//! and flags (a few hundred bytes) is the only synchronisation. Several
//! lanes run at once, so the GPU works on one lane's cell while the host
//! queues another's.
//!
//! Buffers (layouts in `exec::plan`) are allocated once per lane and grow
//! only when a network needs more (after a synchronisation); the scoring
//! batch is uploaded once and shared by every lane: every buffer of a lane
//! is used only on its stream, and the shared input is written and
//! synchronised before any lane starts, so no cross-stream events are
//! needed.

use super::lane::{disjoint_mut, run_lanes, with_views, Grow, Lane};
use crate::error::{Error, Result};
use crate::exec::budget::CellMemory;
use crate::exec::plan::{CodeGroup, NodeStep, PackStep, Plan, Region, Src};
use crate::exec::walk::{run_plan, PlanRunner};
use crate::net::Graph;
use crate::ops::{CudaFwd, CudaPartials, Forward, PackDest};
use crate::runtime::cuda::{kernels, CudaDevice, DViewMut, DeviceBuffer, Event, Pass};
use crate::score::metrics::{self, Scores};
use crate::score::ReluCodes;
use crate::tensor::{Shape, Tensor};
use std::ops::Range;
use std::time::Instant;

pub use super::lane::{CHUNK, DEFAULT_LANES};

/// Where the GPU time of profiled cells went, from CUDA events around each
/// step (one lane, so the times do not overlap).
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Cells profiled.
    pub cells: usize,
    /// Seconds by kind: op kinds of [`crate::net::Op::kind`] plus `init`,
    /// `pack_signs`, `hamming` and `logdet` (K_H and Cholesky).
    pub by_kind: Vec<(&'static str, f64)>,
    /// Per shape of every op that does arithmetic (convs, linears): time
    /// and FLOPs, for achieved rates.
    pub shapes: Vec<OpTime>,
    /// Code words the Hamming launches streamed over (per sample row).
    pub hamming_words: u64,
    /// Matrices factorised.
    pub logdets: u64,
}

/// Time of one op shape over the profiled cells.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    /// The op's kind.
    pub kind: &'static str,
    /// The op itself (its spec, as `Debug` prints it).
    pub op: String,
    /// Its input's shape (batch included).
    pub input: Shape,
    /// Launches of this op shape over the profiled cells.
    pub launches: u64,
    /// GPU seconds of those launches (CUDA events), summed.
    pub seconds: f64,
    /// FLOPs of those launches ([`crate::ops::OpSpec::flops`] at this shape), summed.
    pub flops: u64,
}

impl Profile {
    fn add(&mut self, kind: &'static str, s: f64) {
        match self.by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, t)) => *t += s,
            None => self.by_kind.push((kind, s)),
        }
    }

    fn add_shape(&mut self, kind: &'static str, op: String, input: Shape, s: f64, flops: u64) {
        match self
            .shapes
            .iter_mut()
            .find(|c| c.op == op && c.input == input)
        {
            Some(c) => {
                c.launches += 1;
                c.seconds += s;
                c.flops += flops;
            }
            None => self.shapes.push(OpTime {
                kind,
                op,
                input,
                launches: 1,
                seconds: s,
                flops,
            }),
        }
    }
}

/// What a profiled lane records per cell until the chunk's synchronisation.
enum Mark {
    Kind(&'static str),
    /// An op with arithmetic: kind, spec, input shape, FLOPs of the step.
    Op(&'static str, String, Shape, u64),
}

/// The scoring buffers of one lane.
pub struct ScoreBufs {
    arena: Grow<f32>,
    params: Grow<f32>,
    table: Grow<u64>,
    stats: Grow<f64>,
    saved: Grow<f32>,
    codes: Grow<u64>,
    /// H of each cell of the chunk: u64 `[CHUNK][B][B]`.
    h: Grow<u64>,
    /// K_H of each cell of the chunk: f64 `[CHUNK][B][B]`.
    k: Grow<f64>,
    dup: Grow<i32>,
    logdet: Grow<f64>,
    ok: Grow<i32>,
    /// Event pairs of the profiled steps queued since the last sync.
    marks: Vec<(Mark, Event, Event)>,
}

impl ScoreBufs {
    /// SWAP of the pass enqueued last: its code buffer copied back (which
    /// waits for the pass) and read per unit ([`Plan::swap_of_codes`]).
    /// Call it before the next pass overwrites the codes.
    pub fn swap_of_last_pass(&self, dev: &CudaDevice, plan: &Plan) -> Result<u64> {
        let mut codes = vec![0u64; plan.codes_len];
        dev.copy_dtoh(&self.codes.view(&(0..plan.codes_len))?, &mut codes)?;
        Ok(plan.swap_of_codes(&codes))
    }

    fn new(dev: &CudaDevice, batch: usize) -> Result<ScoreBufs> {
        let mut b = ScoreBufs {
            arena: Grow::new(),
            params: Grow::new(),
            table: Grow::new(),
            stats: Grow::new(),
            saved: Grow::new(),
            codes: Grow::new(),
            h: Grow::new(),
            k: Grow::new(),
            dup: Grow::new(),
            logdet: Grow::new(),
            ok: Grow::new(),
            marks: Vec::new(),
        };
        let bb = batch * batch;
        b.h.ensure(dev, CHUNK * bb)?;
        b.k.ensure(dev, CHUNK * bb)?;
        b.dup.ensure(dev, CHUNK)?;
        b.logdet.ensure(dev, CHUNK)?;
        b.ok.ensure(dev, CHUNK)?;
        Ok(b)
    }

    /// The parameter buffer (laid out by `plan.params`), for a job that
    /// changes the parameters between initialisation and scoring.
    pub fn params_mut(&mut self) -> &mut DeviceBuffer<f32> {
        self.params.buffer_mut()
    }

    fn event(dev: &CudaDevice) -> Result<Event> {
        dev.record_event()
    }

    /// Refuses a cell of `plan` whose lane buffers (one chunk's, see
    /// [`CellMemory::gpu`]) do not fit in what the GPU has free plus what
    /// this lane and the input already hold, before any buffer grows: the
    /// driver's own failure would come after the lane dropped its buffers,
    /// and would not name the batch. Nothing to check when none must grow.
    fn check_room(&self, dev: &CudaDevice, plan: &Plan) -> Result<()> {
        let grows = self.arena.must_grow(plan.arena_len)
            || self.params.must_grow(plan.params_len)
            || self.stats.must_grow(plan.stats_len)
            || self.saved.must_grow(plan.saved_len)
            || self.codes.must_grow(plan.codes_len);
        if !grows {
            return Ok(());
        }
        // Unknown (the emulation, or a failed query): not refused, as on
        // the CPU; a real driver failure shows in the next call anyway.
        let Some(free) = dev.free_memory().ok().flatten() else {
            return Ok(());
        };
        let held = [
            self.arena.bytes(),
            self.params.bytes(),
            self.table.bytes(),
            self.stats.bytes(),
            self.saved.bytes(),
            self.codes.bytes(),
            self.h.bytes(),
            self.k.bytes(),
        ];
        let need = CellMemory::gpu(plan, CHUNK);
        let available = held
            .iter()
            .fold(free.saturating_add(need.input), |a, &b| a.saturating_add(b));
        if need.total <= available {
            return Ok(());
        }
        Err(crate::runtime::budget::too_big(
            plan.batch,
            "about",
            need.total,
            need.pairwise,
            Some(available),
            "are available on the GPU",
        ))
    }

    /// Queues the seeded initialisation of the plan's parameters.
    pub fn init_params(
        &mut self,
        dev: &CudaDevice,
        plan: &Plan,
        seed: u64,
        profile: bool,
    ) -> Result<()> {
        self.params.ensure(dev, plan.params_len)?;
        self.table.ensure(dev, 4 * plan.params.len())?;
        let t0 = profile.then(|| Self::event(dev)).transpose()?;
        let host_table = kernels::param_table(&plan.params, seed);
        {
            let mut table = self.table.view_mut(&(0..host_table.len()))?;
            let mut params = self.params.view_mut(&(0..plan.params_len))?;
            kernels::init_params_table(dev, &mut params, &mut table, &host_table)?;
        }
        // Normal inits are drawn on the host and copied in (same stream,
        // after the table launch, which leaves them).
        for s in &plan.params {
            if let crate::param::ParamInit::Normal { .. } = s.init {
                let key = crate::rng::stream_key(seed, s.name_id);
                let values = crate::param::init_values(s.init, s.len, key);
                let mut v = self.params.view_mut(&s.region())?;
                dev.copy_htod(&values, &mut v)?;
            }
        }
        if let Some(t0) = t0 {
            let t1 = Self::event(dev)?;
            self.marks.push((Mark::Kind("init"), t0, t1));
        }
        Ok(())
    }

    /// Queues the scoring of cell `slot` with the parameters in place:
    /// forward, codes, H, K_H.
    pub fn enqueue_scoring(
        &mut self,
        dev: &CudaDevice,
        plan: &Plan,
        graph: &Graph,
        input: &DeviceBuffer<f32>,
        slot: usize,
        profile: bool,
    ) -> Result<()> {
        let b = plan.batch;
        self.arena.ensure(dev, plan.arena_len)?;
        self.params.ensure(dev, plan.params_len)?;
        self.stats.ensure(dev, plan.stats_len)?;
        self.saved.ensure(dev, plan.saved_len)?;
        self.codes.ensure(dev, plan.codes_len)?;
        {
            let mut runner = Runner {
                dev,
                bufs: self,
                plan,
                input,
                profile,
            };
            run_plan(&mut runner, plan, graph)?;
        }
        let t0 = profile.then(|| Self::event(dev)).transpose()?;
        let bb = b * b;
        let cell = slot * bb..(slot + 1) * bb;
        {
            let mut h = self.h.view_mut(&cell)?;
            dev.memset_zeros(&mut h)?;
            for g in &plan.groups {
                let words = g.offset..g.offset + b * g.words_per_sample;
                let codes = self.codes.view(&words)?;
                kernels::hamming_accumulate(
                    dev,
                    &codes,
                    b,
                    g.words_per_sample,
                    g.multiplicity,
                    &mut h,
                )?;
            }
        }
        if let Some(t0) = t0 {
            let t1 = Self::event(dev)?;
            self.marks.push((Mark::Kind("hamming"), t0, t1));
        }
        let t0 = profile.then(|| Self::event(dev)).transpose()?;
        {
            let h = self.h.view(&cell)?;
            let mut k = self.k.view_mut(&cell)?;
            let mut dup = self.dup.view_mut(&(slot..slot + 1))?;
            dev.memset_zeros(&mut dup)?;
            kernels::kernel_from_hamming(dev, &h, b, 1, plan.n_units, &mut k, &mut dup)?;
        }
        if let Some(t0) = t0 {
            let t1 = Self::event(dev)?;
            self.marks.push((Mark::Kind("logdet"), t0, t1));
        }
        Ok(())
    }

    /// Queues the batched Cholesky of the chunk's `count` cells, waits for
    /// the stream, and returns (ln det, positive definite, duplicate codes)
    /// per cell; folds profiled events into `profile`.
    pub fn finish_chunk(
        &mut self,
        dev: &CudaDevice,
        batch: usize,
        count: usize,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<(f64, bool, bool)>> {
        let bb = batch * batch;
        let t0 = profile.is_some().then(|| Self::event(dev)).transpose()?;
        {
            let mut k = self.k.view_mut(&(0..count * bb))?;
            let mut logdet = self.logdet.view_mut(&(0..count))?;
            let mut ok = self.ok.view_mut(&(0..count))?;
            kernels::cholesky_logdet(dev, &mut k, batch, count, &mut logdet, &mut ok)?;
        }
        let t1 = profile.is_some().then(|| Self::event(dev)).transpose()?;
        let mut logdet = vec![0f64; count];
        let mut ok = vec![0i32; count];
        let mut dup = vec![0i32; count];
        dev.copy_dtoh(&self.logdet.view(&(0..count))?, &mut logdet)?;
        dev.copy_dtoh(&self.ok.view(&(0..count))?, &mut ok)?;
        dev.copy_dtoh(&self.dup.view(&(0..count))?, &mut dup)?;
        if let Some(p) = profile {
            if let (Some(t0), Some(t1)) = (&t0, &t1) {
                p.add("logdet", t0.seconds_to(t1)?);
            }
            for (mark, a, b) in self.marks.drain(..) {
                let s = a.seconds_to(&b)?;
                match mark {
                    Mark::Kind(k) => p.add(k, s),
                    Mark::Op(kind, op, input, flops) => {
                        p.add(kind, s);
                        p.add_shape(kind, op, input, s, flops);
                    }
                }
            }
            p.cells += count;
            p.logdets += count as u64;
        }
        Ok((0..count)
            .map(|i| (logdet[i], ok[i] == 1, dup[i] != 0))
            .collect())
    }
}

/// The plan runner of the CUDA backend: views of a lane's buffers for each
/// step, the op's CUDA forward, CUDA events around it when profiling.
struct Runner<'a> {
    dev: &'a CudaDevice,
    bufs: &'a mut ScoreBufs,
    plan: &'a Plan,
    input: &'a DeviceBuffer<f32>,
    profile: bool,
}

impl PlanRunner for Runner<'_> {
    fn node_step(&mut self, graph: &Graph, s: &NodeStep, groups: &[CodeGroup]) -> Result<()> {
        let dev = self.dev;
        let node = &graph.nodes[s.node];
        let t0 = self.profile.then(|| dev.record_event()).transpose()?;
        let param_regions = self.plan.param_regions(graph, s.node)?;
        let bufs = &mut *self.bufs;
        // Stats regions: partial sums emitted and / or read, disjoint.
        let mut stat_regions = Vec::new();
        if let Some(p) = &s.partials_out {
            stat_regions.extend([p.psum.clone(), p.psumsq.clone()]);
        }
        if let Some(p) = &s.partials_in {
            stat_regions.extend([p.partials.psum.clone(), p.partials.psumsq.clone()]);
        }
        let mut stats = disjoint_mut(bufs.stats.buffer_mut(), &stat_regions)?.into_iter();
        let partials_out = s.partials_out.as_ref().map(|_| CudaPartials {
            psum: stats.next().expect("psum view"),
            psumsq: stats.next().expect("psumsq view"),
        });
        let partials_in = s.partials_in.as_ref().map(|p| {
            (
                CudaPartials {
                    psum: stats.next().expect("psum view"),
                    psumsq: stats.next().expect("psumsq view"),
                },
                p.filled,
                p.count,
            )
        });
        let saved = if self.plan.saved_len > 0 {
            Some(bufs.saved.view_mut(&(0..self.plan.saved_len))?)
        } else {
            None
        };
        let (mut code_rows, stride, word_offset) = match s.pack {
            Some(p) => {
                let (rows, stride) = code_rows(&mut bufs.codes, self.plan, p.group)?;
                (Some(rows), stride, p.word_offset)
            }
            None => (None, 0, 0),
        };
        let params = param_regions
            .iter()
            .map(|r| bufs.params.view(r))
            .collect::<Result<Vec<_>>>()?;
        let reads: Vec<(usize, Option<&Region>, Shape)> = s
            .inputs
            .iter()
            .enumerate()
            .filter(|&(k, _)| Some(k) != s.in_place)
            .map(|(k, x)| {
                let r = match &x.src {
                    Src::Input => None,
                    Src::Arena(r) => Some(r),
                };
                (k, r, x.shape)
            })
            .collect();
        let xs: Vec<Option<&Region>> = reads.iter().map(|(_, r, _)| *r).collect();
        let in_place = s.in_place.map(|k| (k, s.inputs[k].shape));
        with_views(
            bufs.arena.buffer_mut(),
            self.input,
            &s.out,
            &xs,
            |out, views| {
                // A reborrow as long-lived as the arguments (PackDest holds
                // an exclusive reference to a view).
                let mut rows = code_rows.as_mut().map(|r| r.as_view_mut());
                let mut a = CudaFwd {
                    dev,
                    inputs: views
                        .iter()
                        .zip(&reads)
                        .map(|(v, (_, _, shape))| (*v, *shape))
                        .collect(),
                    out: out.as_view_mut(),
                    out_shape: s.out_shape,
                    params,
                    relu_input: s.relu_input,
                    in_place,
                    partials_out,
                    partials_in,
                    saved,
                    pack: rows.as_mut().map(|rows| PackDest {
                        codes: rows,
                        row_stride: stride,
                        word_offset,
                    }),
                };
                Forward::<crate::ops::Cuda>::forward(&node.op, &mut a)
            },
        )?;
        let _ = groups;
        if let Some(t0) = t0 {
            let t1 = dev.record_event()?;
            let kind = node.op.kind();
            let ins: Vec<Shape> = node.inputs.iter().map(|&j| graph.nodes[j].shape).collect();
            let flops = node.op.spec().flops(&ins, node.shape) * s.out_shape.n as u64;
            let mark = if flops > 0 {
                Mark::Op(kind, format!("{:?}", node.op), s.inputs[0].shape, flops)
            } else {
                Mark::Kind(kind)
            };
            self.bufs.marks.push((mark, t0, t1));
        }
        Ok(())
    }

    fn pack_step(&mut self, p: &PackStep, group: &CodeGroup) -> Result<()> {
        let dev = self.dev;
        let t0 = self.profile.then(|| dev.record_event()).transpose()?;
        let b = p.shape.n;
        let words = group.offset..group.offset + b * group.words_per_sample;
        let bufs = &mut *self.bufs;
        let mut out = bufs.codes.view_mut(&words)?;
        let x = match &p.x {
            Src::Input => self.input.as_view(),
            Src::Arena(r) => bufs.arena.view(r)?,
        };
        kernels::pack_signs_into(dev, &x, b, &mut out, group.words_per_sample, p.word_offset)?;
        if let Some(t0) = t0 {
            let t1 = dev.record_event()?;
            self.bufs.marks.push((Mark::Kind("pack_signs"), t0, t1));
        }
        Ok(())
    }
}

/// The rows of code group `group` in the code buffer, and their stride.
fn code_rows<'a>(
    codes: &'a mut Grow<u64>,
    plan: &Plan,
    group: usize,
) -> Result<(DViewMut<'a, u64>, usize)> {
    let g = plan
        .groups
        .get(group)
        .ok_or_else(|| Error::Internal(format!("no code group {group}")))?;
    let words = g.offset..g.offset + plan.batch * g.words_per_sample;
    Ok((codes.view_mut(&words)?, g.words_per_sample))
}

/// The scores of one cell scored on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuCell {
    /// The cell's scores.
    pub scores: Scores,
    /// The cell's share of its chunk's wall time (host planning included).
    pub seconds: f64,
}

/// Scores networks on one GPU: the scoring batch uploaded once, `lanes`
/// cell pipelines in flight.
pub struct GpuScorer {
    dev: CudaDevice,
    lanes: Vec<Lane<ScoreBufs>>,
    input: DeviceBuffer<f32>,
    /// Shape of the scoring batch.
    shape: Shape,
}

impl std::fmt::Debug for GpuScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuScorer")
            .field("device", self.dev.info())
            .field("lanes", &self.lanes.len())
            .field("batch", &self.shape)
            .finish()
    }
}

impl GpuScorer {
    /// Uploads the scoring batch and opens `lanes` streams on `dev`.
    pub fn new(dev: &CudaDevice, batch: &Tensor, lanes: usize) -> Result<GpuScorer> {
        if lanes == 0 {
            return Err(Error::Arg("the GPU scorer needs at least one lane".into()));
        }
        let b = batch.shape.n;
        if !(2..=kernels::LOGDET_MAX_N).contains(&b) {
            return Err(Error::Arg(format!(
                "batch {b}: the GPU scorer takes 2 to {} images",
                kernels::LOGDET_MAX_N
            )));
        }
        let input = dev.upload(&batch.data)?;
        dev.synchronize()?;
        // Compile (or load from the image cache) every kernel family now, so
        // that a GPU that cannot run them fails here, where `--device auto`
        // can still fall back to the CPU.
        for family in crate::exec::kernel_table::families(Pass::Forward) {
            dev.module_loaded(family)?;
        }
        let lanes = (0..lanes)
            .map(|index| {
                let ldev = dev.with_new_stream()?;
                let state = ScoreBufs::new(&ldev, b)?;
                Ok(Lane {
                    index,
                    dev: ldev,
                    state,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuScorer {
            dev: dev.clone_handle(),
            lanes,
            input,
            shape: batch.shape,
        })
    }

    /// The device this scorer runs on.
    pub fn device(&self) -> &CudaDevice {
        &self.dev
    }

    /// Lanes: cell pipelines, each on its own stream, in flight at once.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Images in the scoring batch (B).
    pub fn batch_size(&self) -> usize {
        self.shape.n
    }

    /// The scoring batch on the device, and its shape.
    pub fn input(&self) -> (&DeviceBuffer<f32>, Shape) {
        (&self.input, self.shape)
    }

    /// Runs a job on the lanes: `per_chunk(lane, cells, input, profile)`
    /// for chunks of `0..count` (see [`run_lanes`]); results in cell order.
    pub fn run_job<T, F>(
        &mut self,
        count: usize,
        profile: Option<&mut Profile>,
        per_chunk: F,
    ) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(
                &mut Lane<ScoreBufs>,
                Range<usize>,
                &DeviceBuffer<f32>,
                Option<&mut Profile>,
            ) -> Result<Vec<T>>
            + Sync,
    {
        let input = &self.input;
        run_lanes(
            &mut self.lanes,
            count,
            profile,
            |lane, cells, p| per_chunk(lane, cells, input, p),
            |lane| lane.state.marks.clear(),
        )
    }

    /// Scores `count` networks, `build(i)` giving network `i` (pruned),
    /// weights from `seed`; results in index order. With `profile`, runs
    /// one lane and times every step with CUDA events. With `swap`, each
    /// cell's codes are copied back after its pass (which waits for it)
    /// and SWAP is counted from them on the host ([`Plan::swap_of_codes`]).
    pub fn score<F>(
        &mut self,
        count: usize,
        build: F,
        seed: u64,
        alpha: f64,
        profile: Option<&mut Profile>,
        swap: bool,
    ) -> Result<Vec<GpuCell>>
    where
        F: Fn(usize) -> Result<Graph> + Sync,
    {
        let shape = self.shape;
        self.run_job(count, profile, |lane, cells, input, mut profile| {
            let t0 = Instant::now();
            let mut units = Vec::with_capacity(cells.len());
            let mut swaps = Vec::with_capacity(cells.len());
            for (slot, i) in cells.clone().enumerate() {
                let graph = build(i)?;
                let plan = plan_for(&graph, shape)?;
                lane.state.check_room(&lane.dev, &plan)?;
                let profiled = profile.is_some();
                lane.state.init_params(&lane.dev, &plan, seed, profiled)?;
                lane.state
                    .enqueue_scoring(&lane.dev, &plan, &graph, input, slot, profiled)?;
                units.push(plan.n_units);
                // The code buffer is the next cell's: read it now.
                swaps.push(if swap {
                    Some(lane.state.swap_of_last_pass(&lane.dev, &plan)?)
                } else {
                    None
                });
                if let Some(p) = profile.as_deref_mut() {
                    let words: usize = plan.groups.iter().map(|g| g.words_per_sample).sum();
                    p.hamming_words += words as u64;
                }
            }
            let out = lane
                .state
                .finish_chunk(&lane.dev, shape.n, cells.len(), profile)?;
            let share = t0.elapsed().as_secs_f64() / cells.len() as f64;
            Ok(out
                .into_iter()
                .zip(units)
                .zip(swaps)
                .map(|((ld, n_units), swap)| GpuCell {
                    scores: Scores {
                        swap,
                        ..cell_scores(ld, n_units, shape.n, alpha)
                    },
                    seconds: share,
                })
                .collect())
        })
    }

    /// The Hamming matrix of one network on the GPU (weights from `seed`),
    /// copied back: for tests and for users who want K_H itself.
    pub fn relu_codes(&mut self, graph: &Graph, seed: u64) -> Result<ReluCodes> {
        let plan = plan_for(graph, self.shape)?;
        let b = plan.batch;
        let lane = self
            .lanes
            .first_mut()
            .ok_or_else(|| Error::Device("no lane".into()))?;
        lane.dev.bind_to_thread()?;
        lane.state.check_room(&lane.dev, &plan)?;
        lane.state.init_params(&lane.dev, &plan, seed, false)?;
        lane.state
            .enqueue_scoring(&lane.dev, &plan, graph, &self.input, 0, false)?;
        let mut h = vec![0u64; b * b];
        lane.dev
            .copy_dtoh(&lane.state.h.view(&(0..b * b))?, &mut h)?;
        Ok(ReluCodes {
            batch: b,
            n_units: plan.n_units,
            hamming: h,
            swap: None,
        })
    }
}

/// Plans `graph` for the scoring batch of shape `batch`.
pub fn plan_for(graph: &Graph, batch: Shape) -> Result<Plan> {
    let plan = Plan::new(graph, batch.n)?;
    if plan.input != batch.with_n(1) {
        return Err(Error::Shape(format!(
            "scoring batch {batch} does not fit the network's input [n, {}, {}, {}]",
            plan.input.h, plan.input.w, plan.input.c
        )));
    }
    Ok(plan)
}

/// The scores of a cell from its chunk's (ln det, positive definite,
/// duplicate codes) and its N_A.
pub fn cell_scores(ld: (f64, bool, bool), n_units: u64, batch: usize, alpha: f64) -> Scores {
    let (logdet, ok, dup) = ld;
    let wot = (ok && !dup && n_units > 0).then_some(logdet);
    metrics::scores_from_wot(batch, n_units, wot, alpha)
}
