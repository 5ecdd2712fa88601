//! The CUDA executor and scorer: runs [`Plan`]s on a GPU, several cells in
//! flight, and brings back only the scores.
//!
//! Pipeline of one *lane* (one host thread, one CUDA stream, one set of
//! buffers): for each cell of a chunk of [`CHUNK`] cells, plan the network
//! on the host, then queue (no host synchronisation): the parameter table
//! copy and one initialisation launch, each plan step's launches, the
//! packing of every counted tensor, the Hamming accumulation per code group
//! into that cell's H, and K_H = N_A − H. After the chunk, one batched
//! Cholesky launch computes the ln dets of all its cells, and one copy of
//! `count` ln dets and flags (a few hundred bytes) is the only
//! synchronisation. Several lanes run at once, so the GPU works on one
//! lane's cell while the host queues another's.
//!
//! Buffers (layouts in `device::plan`) are allocated once per lane and grow
//! only when a network needs more (after a synchronisation); the scoring
//! batch is uploaded once and shared by every lane: every buffer of a lane
//! is used only on its stream, and the shared input is written and
//! synchronised before any lane starts, so no cross-stream events are
//! needed.

use super::{kernels, CudaDevice, Event};
use crate::device::cuda::{DView, DViewMut, DeviceBuffer};
use crate::device::plan::{PackInto, Partials, Plan, Region, Src, Step};
use crate::device::ReluCodes;
use crate::error::{Error, Result};
use crate::net::Graph;
use crate::ops;
use crate::ops::cuda_launch::PackDest;
use crate::score::metrics::{self, Scores};
use crate::tensor::{Shape, Tensor};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Cells a lane queues before it synchronises once (their ln dets are one
/// batched launch).
pub const CHUNK: usize = 8;

/// Default number of lanes (streams with a host thread each).
pub const DEFAULT_LANES: usize = 4;

/// A device buffer that grows to the largest size asked of it.
struct Buf<T> {
    slice: DeviceBuffer<T>,
}

impl<T: bytemuck::Pod> Buf<T> {
    fn new(dev: &CudaDevice) -> Result<Self> {
        Ok(Buf {
            slice: dev.alloc_zeros::<T>(64)?,
        })
    }

    /// Makes room for `len` elements. Growing waits for the stream first:
    /// queued work may still use the old buffer.
    fn ensure(&mut self, dev: &CudaDevice, len: usize) -> Result<()> {
        if self.slice.len() >= len {
            return Ok(());
        }
        dev.synchronize()?;
        let len = len + len / 4;
        self.slice = dev.alloc_zeros::<T>(len)?;
        Ok(())
    }

    fn view(&self, r: &Region) -> Result<DView<'_, T>> {
        self.slice
            .try_slice(r.clone())
            .ok_or_else(|| region_err(r, self.slice.len()))
    }

    fn view_mut(&mut self, r: &Region) -> Result<DViewMut<'_, T>> {
        let len = self.slice.len();
        self.slice
            .try_slice_mut(r.clone())
            .ok_or_else(|| region_err(r, len))
    }
}

fn region_err(r: &Region, len: usize) -> Error {
    Error::Device(format!(
        "internal: region {r:?} outside a device buffer of {len}"
    ))
}

/// Runs `f` with a mutable view of arena region `y` and views of `xs`,
/// which must not overlap `y` (the plan guarantees it; checked here).
fn with_views<R>(
    arena: &mut DeviceBuffer<f32>,
    input: &DeviceBuffer<f32>,
    y: &Region,
    xs: &[&Src],
    f: impl FnOnce(&mut DViewMut<'_, f32>, &[DView<'_, f32>]) -> Result<R>,
) -> Result<R> {
    let len = arena.len();
    let (left, mut rest) = arena
        .try_split_at_mut(y.start)
        .ok_or_else(|| region_err(y, len))?;
    let (mut out, right) = rest
        .try_split_at_mut(y.len())
        .ok_or_else(|| region_err(y, len))?;
    let (lv, rv) = (left.as_view(), right.as_view());
    let mut views = Vec::with_capacity(xs.len());
    for x in xs {
        let v = match x {
            Src::Input => Some(input.as_view()),
            Src::Arena(r) if r.end <= y.start => lv.try_slice(r.clone()),
            Src::Arena(r) if r.start >= y.end => rv.try_slice(r.start - y.end..r.end - y.end),
            Src::Arena(r) => {
                return Err(Error::Device(format!(
                    "internal: plan step reads {r:?} while writing {y:?}"
                )))
            }
        };
        views.push(v.ok_or_else(|| Error::Device(format!("internal: bad region {x:?}")))?);
    }
    f(&mut out, &views)
}

/// Runs `f` with mutable views of two disjoint regions `a`, `b` of one
/// buffer (in that order).
fn with_two_mut<T: bytemuck::Pod, R>(
    buf: &mut DeviceBuffer<T>,
    a: &Region,
    b: &Region,
    f: impl FnOnce(&mut DViewMut<'_, T>, &mut DViewMut<'_, T>) -> Result<R>,
) -> Result<R> {
    let len = buf.len();
    let swap = a.start > b.start;
    let (lo, hi) = if swap { (b, a) } else { (a, b) };
    if lo.end > hi.start || hi.end > len {
        return Err(Error::Device(format!(
            "internal: regions {a:?} and {b:?} overlap or exceed {len}"
        )));
    }
    let (mut first, mut second) = buf.split_at_mut(hi.start);
    let mut lo_v = first.slice_mut(lo.clone());
    let mut hi_v = second.slice_mut(0..hi.len());
    if swap {
        f(&mut hi_v, &mut lo_v)
    } else {
        f(&mut lo_v, &mut hi_v)
    }
}

/// Where the GPU time of profiled cells went, from CUDA events around each
/// step (one lane, so the times do not overlap).
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Cells profiled.
    pub cells: usize,
    /// Seconds by kind: op kinds of [`crate::net::Op::kind`] plus `init`,
    /// `pack_signs`, `hamming` and `logdet` (K_H and Cholesky).
    pub by_kind: Vec<(&'static str, f64)>,
    /// Per conv shape: (spec, input shape, launches, seconds, FLOPs).
    pub convs: Vec<ConvTime>,
    /// Code words the Hamming launches streamed over (per sample row).
    pub hamming_words: u64,
    /// Matrices factorised.
    pub logdets: u64,
}

/// Time of one conv shape over the profiled cells.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTime {
    pub spec: ops::conv2d::Conv2dSpec,
    pub input: Shape,
    pub launches: u64,
    pub seconds: f64,
    pub flops: u64,
}

impl Profile {
    fn add(&mut self, kind: &'static str, s: f64) {
        match self.by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, t)) => *t += s,
            None => self.by_kind.push((kind, s)),
        }
    }

    fn add_conv(&mut self, spec: ops::conv2d::Conv2dSpec, input: Shape, s: f64) -> Result<()> {
        let flops = spec.flops(input)?;
        match self
            .convs
            .iter_mut()
            .find(|c| c.spec == spec && c.input == input)
        {
            Some(c) => {
                c.launches += 1;
                c.seconds += s;
                c.flops += flops;
            }
            None => self.convs.push(ConvTime {
                spec,
                input,
                launches: 1,
                seconds: s,
                flops,
            }),
        }
        Ok(())
    }
}

/// What a profiled lane records per cell until the chunk's synchronisation.
enum Mark {
    Kind(&'static str),
    Conv(ops::conv2d::Conv2dSpec, Shape),
}

/// One cell pipeline: a stream, its host thread's state, its buffers.
struct Lane {
    dev: CudaDevice,
    arena: Buf<f32>,
    params: Buf<f32>,
    table: Buf<u64>,
    stats: Buf<f64>,
    mean: Buf<f32>,
    inv_std: Buf<f32>,
    codes: Buf<u64>,
    /// H of each cell of the chunk: u64 `[CHUNK][B][B]`.
    h: Buf<u64>,
    /// K_H of each cell of the chunk: f64 `[CHUNK][B][B]`.
    k: Buf<f64>,
    dup: Buf<i32>,
    logdet: Buf<f64>,
    ok: Buf<i32>,
    /// Event pairs of the profiled steps queued since the last sync.
    marks: Vec<(Mark, Event, Event)>,
    /// Fast-training buffers, made on the first cell that trains.
    train: Option<crate::train::cuda::TrainBufs>,
}

impl Lane {
    fn new(dev: CudaDevice, batch: usize) -> Result<Lane> {
        let mut lane = Lane {
            arena: Buf::new(&dev)?,
            params: Buf::new(&dev)?,
            table: Buf::new(&dev)?,
            stats: Buf::new(&dev)?,
            mean: Buf::new(&dev)?,
            inv_std: Buf::new(&dev)?,
            codes: Buf::new(&dev)?,
            h: Buf::new(&dev)?,
            k: Buf::new(&dev)?,
            dup: Buf::new(&dev)?,
            logdet: Buf::new(&dev)?,
            ok: Buf::new(&dev)?,
            marks: Vec::new(),
            train: None,
            dev,
        };
        let bb = batch * batch;
        lane.h.ensure(&lane.dev, CHUNK * bb)?;
        lane.k.ensure(&lane.dev, CHUNK * bb)?;
        lane.dup.ensure(&lane.dev, CHUNK)?;
        lane.logdet.ensure(&lane.dev, CHUNK)?;
        lane.ok.ensure(&lane.dev, CHUNK)?;
        Ok(lane)
    }

    fn event(&self) -> Result<Event> {
        self.dev.record_event()
    }

    /// Queues cell `slot` of the chunk: weights, forward, codes, H, K_H.
    fn enqueue(
        &mut self,
        plan: &Plan,
        input: &DeviceBuffer<f32>,
        seed: u64,
        slot: usize,
        profile: bool,
    ) -> Result<()> {
        self.init_params(plan, seed, profile)?;
        self.enqueue_scoring(plan, input, slot, profile)
    }

    /// Queues the seeded initialisation of the plan's parameters.
    fn init_params(&mut self, plan: &Plan, seed: u64, profile: bool) -> Result<()> {
        let dev = self.dev.clone_handle();
        self.params.ensure(&dev, plan.params_len)?;
        self.table.ensure(&dev, 4 * plan.params.len())?;
        let t0 = profile.then(|| self.event()).transpose()?;
        let host_table = kernels::param_table(&plan.params, seed);
        {
            let mut table = self.table.view_mut(&(0..host_table.len()))?;
            let mut params = self.params.view_mut(&(0..plan.params_len))?;
            kernels::init_params_table(&dev, &mut params, &mut table, &host_table)?;
        }
        // Normal inits are drawn on the host and copied in (same stream,
        // after the table launch, which leaves them).
        for s in &plan.params {
            if let crate::net::ParamInit::Normal { .. } = s.init {
                let key = crate::net::rng::stream_key(seed, s.name_id);
                let values = crate::net::init::init_values(s.init, s.len, key);
                let mut v = self.params.view_mut(&(s.offset..s.offset + s.len))?;
                dev.copy_htod(&values, &mut v)?;
            }
        }
        if let Some(t0) = t0 {
            let t1 = self.event()?;
            self.marks.push((Mark::Kind("init"), t0, t1));
        }
        Ok(())
    }

    /// Queues `data.steps` SGD steps of `graph` on the lane's parameters
    /// (initialised by [`Self::init_params`]).
    fn enqueue_training(
        &mut self,
        graph: &Graph,
        plan: &Plan,
        tplan: &crate::train::cuda::TrainPlan,
        data: &crate::train::cuda::TrainData,
        slot: usize,
    ) -> Result<()> {
        let dev = self.dev.clone_handle();
        let bufs = self
            .train
            .get_or_insert_with(crate::train::cuda::TrainBufs::new);
        crate::train::cuda::enqueue_training(
            &dev,
            bufs,
            &mut self.params.slice,
            plan.params_len,
            &plan.params,
            graph,
            tplan,
            data,
            slot,
        )
    }

    /// Queues the scoring of cell `slot` with the parameters in place:
    /// forward, codes, H, K_H.
    fn enqueue_scoring(
        &mut self,
        plan: &Plan,
        input: &DeviceBuffer<f32>,
        slot: usize,
        profile: bool,
    ) -> Result<()> {
        let b = plan.batch;
        let dev = self.dev.clone_handle();
        self.arena.ensure(&dev, plan.arena_len)?;
        self.params.ensure(&dev, plan.params_len)?;
        self.stats.ensure(&dev, plan.stats_len)?;
        self.mean.ensure(&dev, plan.max_channels)?;
        self.inv_std.ensure(&dev, plan.max_channels)?;
        self.codes.ensure(&dev, plan.codes_len)?;
        for step in &plan.steps {
            let t0 = profile.then(|| self.event()).transpose()?;
            self.step(&dev, plan, input, step)?;
            if let Some(t0) = t0 {
                let mark = match step {
                    Step::Conv { spec, input, .. } => Mark::Conv(*spec, *input),
                    Step::Pack { .. } => Mark::Kind("pack_signs"),
                    s => Mark::Kind(kind_of(s)),
                };
                let t1 = self.event()?;
                self.marks.push((mark, t0, t1));
            }
        }
        let t0 = profile.then(|| self.event()).transpose()?;
        let bb = b * b;
        let cell = slot * bb..(slot + 1) * bb;
        {
            let mut h = self.h.view_mut(&cell)?;
            dev.memset_zeros(&mut h)?;
            for g in &plan.groups {
                let words = g.offset..g.offset + b * g.words_per_sample;
                let codes = self.codes.view(&words)?;
                kernels::hamming_accumulate(
                    &dev,
                    &codes,
                    b,
                    g.words_per_sample,
                    g.multiplicity,
                    &mut h,
                )?;
            }
        }
        if let Some(t0) = t0 {
            let t1 = self.event()?;
            self.marks.push((Mark::Kind("hamming"), t0, t1));
        }
        let t0 = profile.then(|| self.event()).transpose()?;
        {
            let h = self.h.view(&cell)?;
            let mut k = self.k.view_mut(&cell)?;
            let mut dup = self.dup.view_mut(&(slot..slot + 1))?;
            dev.memset_zeros(&mut dup)?;
            kernels::kernel_from_hamming(&dev, &h, b, 1, plan.n_units, &mut k, &mut dup)?;
        }
        if let Some(t0) = t0 {
            let t1 = self.event()?;
            self.marks.push((Mark::Kind("logdet"), t0, t1));
        }
        Ok(())
    }

    /// Queues one plan step.
    fn step(
        &mut self,
        dev: &CudaDevice,
        plan: &Plan,
        input: &DeviceBuffer<f32>,
        step: &Step,
    ) -> Result<()> {
        let b = plan.batch;
        let param = |_: &Lane, p: usize| param_region(plan, p);
        match step {
            Step::Zeros { y, .. } => {
                let mut v = self.arena.view_mut(y)?;
                dev.memset_zeros(&mut v)?;
            }
            Step::Conv {
                spec,
                input: ishape,
                x,
                weight,
                y,
                relu_input,
                stats,
                ..
            } => {
                let w = self.params.view(&param(self, *weight)?)?;
                match stats {
                    Some(p) => {
                        let arena = &mut self.arena.slice;
                        with_two_mut(&mut self.stats.slice, &p.psum, &p.psumsq, |psum, psumsq| {
                            with_views(arena, input, y, &[x], |out, xs| {
                                ops::conv2d::cuda::conv2d_forward_stats(
                                    dev,
                                    spec,
                                    *ishape,
                                    &xs[0],
                                    &w,
                                    out,
                                    *relu_input,
                                    psum,
                                    psumsq,
                                )
                                .map(|_| ())
                            })
                        })?;
                    }
                    None => with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                        ops::conv2d::cuda::conv2d_forward(
                            dev,
                            spec,
                            *ishape,
                            &xs[0],
                            &w,
                            out,
                            *relu_input,
                        )
                    })?,
                }
            }
            Step::BatchNorm {
                spec,
                shape,
                x,
                y,
                gamma,
                beta,
                partials,
                from_conv,
                pack,
                ..
            } => {
                let c = spec.channels;
                let g = self.params.view(&param(self, *gamma)?)?;
                let be = self.params.view(&param(self, *beta)?)?;
                let mut mean = self.mean.view_mut(&(0..c))?;
                let mut inv_std = self.inv_std.view_mut(&(0..c))?;
                let Partials { psum, psumsq, .. } = partials;
                let count = shape.n * shape.h * shape.w;
                let arena = &mut self.arena;
                with_two_mut(&mut self.stats.slice, psum, psumsq, |ps, pq| {
                    if !from_conv {
                        match x {
                            Src::Input => ops::batchnorm::cuda::batchnorm_partial_sums(
                                dev,
                                spec,
                                *shape,
                                &input.as_view(),
                                ps,
                                pq,
                            )?,
                            Src::Arena(r) => ops::batchnorm::cuda::batchnorm_partial_sums(
                                dev,
                                spec,
                                *shape,
                                &arena.view(r)?,
                                ps,
                                pq,
                            )?,
                        }
                    }
                    ops::batchnorm::cuda::batchnorm_stats_from_partials(
                        dev,
                        spec,
                        count,
                        &ps.as_view(),
                        &pq.as_view(),
                        &mut mean,
                        &mut inv_std,
                    )
                })?;
                let (mean, inv_std) = (mean.as_view(), inv_std.as_view());
                match (pack, *from_conv) {
                    (None, true) => {
                        let mut v = self.arena.view_mut(y)?;
                        ops::batchnorm::cuda::batchnorm_normalize_inplace(
                            dev, spec, *shape, &mut v, &mean, &inv_std, &g, &be,
                        )?;
                    }
                    (None, false) => {
                        with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                            ops::batchnorm::cuda::batchnorm_normalize(
                                dev, spec, *shape, &xs[0], &mean, &inv_std, &g, &be, out,
                            )
                        })?;
                    }
                    (Some(p), true) => {
                        let (mut cv, stride) = code_rows(&mut self.codes, plan, p)?;
                        let dest = PackDest {
                            codes: &mut cv,
                            row_stride: stride,
                            word_offset: p.word_offset,
                        };
                        let mut v = self.arena.view_mut(y)?;
                        ops::batchnorm::cuda::batchnorm_normalize_pack(
                            dev, spec, *shape, None, &mut v, &mean, &inv_std, &g, &be, dest,
                        )?;
                    }
                    (Some(p), false) => {
                        let (mut cv, stride) = code_rows(&mut self.codes, plan, p)?;
                        with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                            let dest = PackDest {
                                codes: &mut cv,
                                row_stride: stride,
                                word_offset: p.word_offset,
                            };
                            ops::batchnorm::cuda::batchnorm_normalize_pack(
                                dev,
                                spec,
                                *shape,
                                Some(&xs[0]),
                                out,
                                &mean,
                                &inv_std,
                                &g,
                                &be,
                                dest,
                            )
                        })?;
                    }
                }
            }
            Step::Relu { x, y, .. } => {
                with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                    ops::relu::cuda::relu_forward(dev, &xs[0], out)
                })?;
            }
            Step::Pool {
                spec,
                input: ishape,
                x,
                y,
                ..
            } => {
                with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                    ops::pool::cuda::pool_forward(dev, spec, *ishape, &xs[0], out).map(|_| ())
                })?;
            }
            Step::Add {
                inputs, y, pack, ..
            } => {
                let xs: Vec<&Src> = inputs.iter().collect();
                let mut codes = match pack {
                    Some(p) => Some((code_rows(&mut self.codes, plan, p)?, p.word_offset)),
                    None => None,
                };
                with_views(&mut self.arena.slice, input, y, &xs, |out, views| {
                    let refs: Vec<&DView<'_, f32>> = views.iter().collect();
                    let dest = codes.as_mut().map(|((cv, stride), off)| PackDest {
                        codes: cv,
                        row_stride: *stride,
                        word_offset: *off,
                    });
                    ops::add::cuda::add_n(dev, &refs, out, b, dest)
                })?;
            }
            Step::AddInPlace {
                acc,
                pos,
                others,
                pack,
                ..
            } => {
                let xs: Vec<&Src> = others.iter().collect();
                let mut codes = match pack {
                    Some(p) => Some((code_rows(&mut self.codes, plan, p)?, p.word_offset)),
                    None => None,
                };
                with_views(&mut self.arena.slice, input, acc, &xs, |out, views| {
                    let refs: Vec<&DView<'_, f32>> = views.iter().collect();
                    let dest = codes.as_mut().map(|((cv, stride), off)| PackDest {
                        codes: cv,
                        row_stride: *stride,
                        word_offset: *off,
                    });
                    ops::add::cuda::add_n_inplace(dev, out, *pos, &refs, b, dest)
                })?;
            }
            Step::Concat {
                inputs,
                channels,
                pixels,
                y,
                ..
            } => {
                let xs: Vec<&Src> = inputs.iter().collect();
                with_views(&mut self.arena.slice, input, y, &xs, |out, views| {
                    let refs: Vec<&DView<'_, f32>> = views.iter().collect();
                    ops::concat::cuda::concat_forward(dev, &refs, channels, *pixels, out)
                })?;
            }
            Step::Crop {
                spec,
                input: ishape,
                x,
                y,
                ..
            } => {
                with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                    ops::crop::cuda::crop_forward(dev, spec, *ishape, &xs[0], out)
                })?;
            }
            Step::GlobalAvgPool {
                input: ishape,
                x,
                y,
                ..
            } => {
                with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                    ops::global_avg_pool::cuda::global_avg_pool_forward(dev, *ishape, &xs[0], out)
                        .map(|_| ())
                })?;
            }
            Step::Linear {
                spec,
                input: ishape,
                x,
                weight,
                bias,
                y,
                ..
            } => {
                let w = self.params.view(&param(self, *weight)?)?;
                let bi = self.params.view(&param(self, *bias)?)?;
                with_views(&mut self.arena.slice, input, y, &[x], |out, xs| {
                    ops::linear::cuda::linear_forward(dev, spec, *ishape, &xs[0], &w, &bi, out)
                        .map(|_| ())
                })?;
            }
            Step::Pack {
                x,
                group,
                word_offset,
                ..
            } => {
                let g = plan
                    .groups
                    .get(*group)
                    .ok_or_else(|| Error::Device(format!("internal: no code group {group}")))?;
                let words = g.offset..g.offset + b * g.words_per_sample;
                let mut out = self.codes.view_mut(&words)?;
                match x {
                    Src::Input => kernels::pack_signs_into(
                        dev,
                        &input.as_view(),
                        b,
                        &mut out,
                        g.words_per_sample,
                        *word_offset,
                    )?,
                    Src::Arena(r) => kernels::pack_signs_into(
                        dev,
                        &self.arena.view(r)?,
                        b,
                        &mut out,
                        g.words_per_sample,
                        *word_offset,
                    )?,
                };
            }
        }
        Ok(())
    }

    /// Queues the batched Cholesky of the chunk's `count` cells, waits for
    /// the stream, and returns (ln det, positive definite, duplicate codes)
    /// per cell; folds profiled events into `profile`.
    fn finish_chunk(
        &mut self,
        batch: usize,
        count: usize,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<(f64, bool, bool)>> {
        let bb = batch * batch;
        let t0 = profile.is_some().then(|| self.event()).transpose()?;
        {
            let mut k = self.k.view_mut(&(0..count * bb))?;
            let mut logdet = self.logdet.view_mut(&(0..count))?;
            let mut ok = self.ok.view_mut(&(0..count))?;
            kernels::cholesky_logdet(&self.dev, &mut k, batch, count, &mut logdet, &mut ok)?;
        }
        let t1 = profile.is_some().then(|| self.event()).transpose()?;
        let mut logdet = vec![0f64; count];
        let mut ok = vec![0i32; count];
        let mut dup = vec![0i32; count];
        let d = &self.dev;
        d.copy_dtoh(&self.logdet.view(&(0..count))?, &mut logdet)?;
        d.copy_dtoh(&self.ok.view(&(0..count))?, &mut ok)?;
        d.copy_dtoh(&self.dup.view(&(0..count))?, &mut dup)?;
        if let Some(p) = profile {
            let ms = |a: &Event, b: &Event| a.seconds_to(b);
            if let (Some(t0), Some(t1)) = (&t0, &t1) {
                p.add("logdet", ms(t0, t1)?);
            }
            for (mark, a, b) in self.marks.drain(..) {
                let s = ms(&a, &b)?;
                match mark {
                    Mark::Kind(k) => p.add(k, s),
                    Mark::Conv(spec, input) => {
                        p.add("conv2d", s);
                        p.add_conv(spec, input, s)?;
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

/// The rows of code group `p.group` in the code buffer, and their stride.
fn code_rows<'a>(
    codes: &'a mut Buf<u64>,
    plan: &Plan,
    p: &PackInto,
) -> Result<(DViewMut<'a, u64>, usize)> {
    let g = plan
        .groups
        .get(p.group)
        .ok_or_else(|| Error::Device(format!("internal: no code group {}", p.group)))?;
    let words = g.offset..g.offset + plan.batch * g.words_per_sample;
    Ok((codes.view_mut(&words)?, g.words_per_sample))
}

/// The region of parameter `p` in the parameter buffer.
fn param_region(plan: &Plan, p: usize) -> Result<Region> {
    let s = plan
        .params
        .get(p)
        .ok_or_else(|| Error::Device(format!("internal: no parameter {p}")))?;
    Ok(s.offset..s.offset + s.len)
}

fn kind_of(step: &Step) -> &'static str {
    match step {
        Step::Zeros { .. } => "zeros",
        Step::Conv { .. } => "conv2d",
        Step::BatchNorm { .. } => "batchnorm",
        Step::Relu { .. } => "relu",
        Step::Pool { .. } => "pool",
        Step::Add { .. } | Step::AddInPlace { .. } => "add",
        Step::Concat { .. } => "concat",
        Step::Crop { .. } => "crop",
        Step::GlobalAvgPool { .. } => "global_avg_pool",
        Step::Linear { .. } => "linear",
        Step::Pack { .. } => "pack_signs",
    }
}

/// The scores of one cell scored on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuCell {
    pub scores: Scores,
    /// The cell's share of its chunk's wall time (host planning included).
    pub seconds: f64,
}

/// Scores networks on one GPU: the scoring batch uploaded once, `lanes`
/// cell pipelines in flight.
pub struct GpuScorer {
    dev: CudaDevice,
    lanes: Vec<Lane>,
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
        // Compile (or load from the PTX cache) every kernel family now, so
        // that a GPU that cannot run them fails here, where `--device auto`
        // can still fall back to the CPU.
        for family in [
            "init",
            "conv2d",
            "batchnorm",
            "relu",
            "pool",
            "add",
            "global_avg_pool",
            "linear",
            "concat",
            "crop",
            "codes",
            "hamming",
            "logdet",
        ] {
            dev.module_loaded(family)?;
        }
        let lanes = (0..lanes)
            .map(|_| Lane::new(dev.with_new_stream()?, b))
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuScorer {
            dev: dev.clone_handle(),
            lanes,
            input,
            shape: batch.shape,
        })
    }

    pub fn device(&self) -> &CudaDevice {
        &self.dev
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Images in the scoring batch (B).
    pub fn batch_size(&self) -> usize {
        self.shape.n
    }

    /// Scores `count` networks, `build(i)` giving network `i` (pruned),
    /// weights from `seed`; results in index order. With `profile`, runs
    /// one lane and times every step with CUDA events.
    pub fn score<F>(
        &mut self,
        count: usize,
        build: F,
        seed: u64,
        alpha: f64,
        profile: Option<&mut Profile>,
    ) -> Result<Vec<GpuCell>>
    where
        F: Fn(usize) -> Result<Graph> + Sync,
    {
        let (input, shape) = (&self.input, self.shape);
        let chunk = |lane: &mut Lane, cells: Range<usize>, mut profile: Option<&mut Profile>| {
            let t0 = Instant::now();
            let mut units = Vec::with_capacity(cells.len());
            for (slot, i) in cells.clone().enumerate() {
                let plan = plan_for(&build(i)?, shape)?;
                lane.enqueue(&plan, input, seed, slot, profile.is_some())?;
                units.push(plan.n_units);
                if let Some(p) = profile.as_deref_mut() {
                    let words: usize = plan.groups.iter().map(|g| g.words_per_sample).sum();
                    p.hamming_words += words as u64;
                }
            }
            let out = lane.finish_chunk(shape.n, cells.len(), profile)?;
            let share = t0.elapsed().as_secs_f64() / cells.len() as f64;
            Ok(out
                .into_iter()
                .zip(units)
                .map(|(ld, n_units)| GpuCell {
                    scores: cell_scores(ld, n_units, shape.n, alpha),
                    seconds: share,
                })
                .collect())
        };
        run_lanes(&mut self.lanes, count, profile, chunk)
    }

    /// Trains each of `count` networks `data.steps` SGD steps from the
    /// weights of `seed` (the lanes train different cells at once), then
    /// scores it with the trained weights on the scoring batch, as
    /// [`Self::score`] does untrained. Per cell: the scores and the
    /// training summary (last step's loss and batch accuracy). A
    /// non-finite loss at any step is an error naming the step.
    pub fn score_trained<F>(
        &mut self,
        count: usize,
        build: F,
        seed: u64,
        alpha: f64,
        data: &crate::train::cuda::TrainData,
    ) -> Result<Vec<(GpuCell, crate::train::TrainStats)>>
    where
        F: Fn(usize) -> Result<Graph> + Sync,
    {
        let (input, shape) = (&self.input, self.shape);
        let chunk = |lane: &mut Lane, cells: Range<usize>, _: Option<&mut Profile>| {
            let t0 = Instant::now();
            let mut units = Vec::with_capacity(cells.len());
            for (slot, i) in cells.clone().enumerate() {
                let graph = build(i)?;
                let plan = plan_for(&graph, shape)?;
                let tplan = crate::train::cuda::TrainPlan::new(&graph, data.batch.n)?;
                lane.init_params(&plan, seed, false)?;
                lane.enqueue_training(&graph, &plan, &tplan, data, slot)?;
                lane.enqueue_scoring(&plan, input, slot, false)?;
                units.push(plan.n_units);
            }
            let n = cells.len();
            let out = lane.finish_chunk(shape.n, n, None)?;
            let bufs = lane
                .train
                .as_ref()
                .ok_or_else(|| Error::Device("internal: no training buffers".into()))?;
            let trained =
                crate::train::cuda::read_results(&lane.dev, bufs, n, data.steps, data.batch.n)?;
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
                let stats = crate::train::TrainStats {
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
        };
        run_lanes(&mut self.lanes, count, None, chunk)
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
        lane.enqueue(&plan, &self.input, seed, 0, false)?;
        let mut h = vec![0u64; b * b];
        lane.dev.copy_dtoh(&lane.h.view(&(0..b * b))?, &mut h)?;
        Ok(ReluCodes {
            batch: b,
            n_units: plan.n_units,
            hamming: h,
        })
    }
}

/// Plans `graph` for the scoring batch of shape `batch`.
fn plan_for(graph: &Graph, batch: Shape) -> Result<Plan> {
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
fn cell_scores(ld: (f64, bool, bool), n_units: u64, batch: usize, alpha: f64) -> Scores {
    let (logdet, ok, dup) = ld;
    let wot = (ok && !dup && n_units > 0).then_some(logdet);
    metrics::scores_from_wot(batch, n_units, wot, alpha)
}

/// Runs chunks of [`CHUNK`] cells of `0..count` on the lanes, each lane on
/// its own host thread pulling the next chunk, and gathers `per_chunk`'s
/// results in cell order. With `profile`, one lane does all the work (so
/// its event times do not overlap another's). The first error stops every
/// lane at its next chunk and is returned; the lanes are then synchronised
/// and left usable.
fn run_lanes<T, F>(
    lanes: &mut [Lane],
    count: usize,
    profile: Option<&mut Profile>,
    per_chunk: F,
) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(&mut Lane, Range<usize>, Option<&mut Profile>) -> Result<Vec<T>> + Sync,
{
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let run_lane = |lane: &mut Lane, mut profile: Option<&mut Profile>| -> Result<()> {
        lane.dev.bind_to_thread()?;
        while !abort.load(Ordering::Relaxed) {
            let start = next.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= count {
                break;
            }
            let cells = start..(start + CHUNK).min(count);
            let out = per_chunk(lane, cells.clone(), profile.as_deref_mut())?;
            if out.len() != cells.len() {
                return Err(Error::Device("internal: a chunk lost cells".into()));
            }
            let mut res = results.lock().unwrap_or_else(|e| e.into_inner());
            for (k, r) in out.into_iter().enumerate() {
                res[start + k] = Some(r);
            }
        }
        Ok(())
    };
    let fail = |e: Error| {
        abort.store(true, Ordering::Relaxed);
        let mut f = first_error.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
    };
    if let Some(p) = profile {
        let lane = lanes
            .first_mut()
            .ok_or_else(|| Error::Device("no lane".into()))?;
        if let Err(e) = run_lane(lane, Some(p)) {
            fail(e);
        }
    } else {
        std::thread::scope(|s| {
            for lane in lanes.iter_mut() {
                let (run_lane, fail) = (&run_lane, &fail);
                s.spawn(move || {
                    if let Err(e) = run_lane(lane, None) {
                        fail(e);
                    }
                });
            }
        });
    }
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        // Leave the lanes usable: wait for what they queued, drop the
        // events of the unfinished chunk.
        for lane in lanes.iter_mut() {
            let _ = lane.dev.synchronize();
            lane.marks.clear();
        }
        return Err(e);
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| Error::Device(format!("internal: cell {i} not scored"))))
        .collect()
}
