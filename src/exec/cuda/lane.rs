//! Lanes: cells in flight on one GPU. A lane is a CUDA stream (its own
//! [`CudaDevice`] handle), the host thread that queues its work, and the
//! per-lane state of the job it runs (buffers, allocated once and grown
//! only when a network needs more). [`run_lanes`] hands chunks of
//! [`CHUNK`] cells to the lanes, each on its own thread, and gathers the
//! results in cell order. Scoring (`executor`) and fast training
//! (`train::cuda`) are two jobs run this way.

use crate::error::{Error, Result};
use crate::exec::plan::Region;
use crate::runtime::cuda::{AsDView, CudaDevice, DView, DViewMut, DeviceBuffer};
use bytemuck::Pod;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Cells a lane queues before it synchronises once (their ln dets are one
/// batched launch).
pub const CHUNK: usize = 8;

/// Default number of lanes (streams with a host thread each).
pub const DEFAULT_LANES: usize = 4;

/// A device buffer that grows to the largest size asked of it (the one
/// growable buffer type of the lanes).
pub struct Grow<T> {
    buf: DeviceBuffer<T>,
}

impl<T: Pod> Grow<T> {
    /// An empty buffer (allocates nothing until [`Self::ensure`]).
    pub fn new() -> Self {
        Grow {
            buf: DeviceBuffer::from_raw(0, 0, None),
        }
    }

    /// Makes room for `len` elements (a quarter more, so slowly growing
    /// networks do not reallocate each time). Growing waits for the stream
    /// first: queued work may still use the old buffer.
    pub fn ensure(&mut self, dev: &CudaDevice, len: usize) -> Result<()> {
        if self.buf.len() >= len {
            return Ok(());
        }
        dev.synchronize()?;
        self.buf = DeviceBuffer::from_raw(0, 0, None);
        self.buf = dev.alloc_zeros::<T>(len + len / 4)?;
        Ok(())
    }

    /// Whether [`Self::ensure`]`(len)` would allocate.
    pub fn must_grow(&self, len: usize) -> bool {
        self.buf.len() < len
    }

    /// Bytes of device memory held.
    pub fn bytes(&self) -> u64 {
        (self.buf.len() as u64).saturating_mul(std::mem::size_of::<T>() as u64)
    }

    /// The whole buffer.
    pub fn buffer(&self) -> &DeviceBuffer<T> {
        &self.buf
    }

    /// The whole buffer, exclusively.
    pub fn buffer_mut(&mut self) -> &mut DeviceBuffer<T> {
        &mut self.buf
    }

    /// A shared view of region `r`.
    pub fn view(&self, r: &Region) -> Result<DView<'_, T>> {
        self.buf
            .try_slice(r.clone())
            .ok_or_else(|| region_err(r, self.buf.len()))
    }

    /// An exclusive view of region `r`.
    pub fn view_mut(&mut self, r: &Region) -> Result<DViewMut<'_, T>> {
        let len = self.buf.len();
        self.buf
            .try_slice_mut(r.clone())
            .ok_or_else(|| region_err(r, len))
    }
}

impl<T: Pod> Default for Grow<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn region_err(r: &Region, len: usize) -> Error {
    Error::Internal(format!("region {r:?} outside a device buffer of {len}"))
}

/// Exclusive views of pairwise disjoint `regions` of one buffer, in the
/// order given; an error when two overlap or one exceeds the buffer.
pub fn disjoint_mut<'a, T: Pod>(
    buf: &'a mut DeviceBuffer<T>,
    regions: &[Region],
) -> Result<Vec<DViewMut<'a, T>>> {
    let len = buf.len();
    let mut order: Vec<usize> = (0..regions.len()).collect();
    order.sort_by_key(|&k| regions[k].start);
    let mut out: Vec<Option<DViewMut<'a, T>>> = (0..regions.len()).map(|_| None).collect();
    let mut rest = buf.as_view_mut();
    let mut at = 0usize;
    for &k in &order {
        let r = &regions[k];
        if r.start < at || r.end > len || r.start > r.end {
            return Err(Error::Internal(format!(
                "regions {regions:?} overlap or exceed a buffer of {len}"
            )));
        }
        let (_, tail) = rest
            .into_split_at_mut(r.start - at)
            .ok_or_else(|| region_err(r, len))?;
        let (mine, tail) = tail
            .into_split_at_mut(r.len())
            .ok_or_else(|| region_err(r, len))?;
        out[k] = Some(mine);
        rest = tail;
        at = r.end;
    }
    Ok(out
        .into_iter()
        .map(|v| v.expect("every region placed"))
        .collect())
}

/// Runs `f` with an exclusive view of region `y` of `arena` and shared
/// views of `xs` (each region of `arena`, disjoint from `y`, or `None` for
/// `other`, a separate buffer such as the input batch).
pub fn with_views<T: Pod, R>(
    arena: &mut DeviceBuffer<T>,
    other: &impl AsDView<T>,
    y: &Region,
    xs: &[Option<&Region>],
    f: impl FnOnce(&mut DViewMut<'_, T>, &[DView<'_, T>]) -> Result<R>,
) -> Result<R> {
    let len = arena.len();
    let (left, rest) = arena
        .try_split_at_mut(y.start)
        .ok_or_else(|| region_err(y, len))?;
    let (mut out, right) = rest
        .into_split_at_mut(y.len())
        .ok_or_else(|| region_err(y, len))?;
    let (lv, rv) = (left.as_view(), right.as_view());
    let ov = other.dview();
    let mut views = Vec::with_capacity(xs.len());
    for x in xs {
        let v = match x {
            None => Some(ov),
            Some(r) if r.end <= y.start => lv.try_slice((*r).clone()),
            Some(r) if r.start >= y.end => rv.try_slice(r.start - y.end..r.end - y.end),
            Some(r) => {
                return Err(Error::Internal(format!(
                    "a step reads {r:?} while writing {y:?}"
                )))
            }
        };
        views.push(v.ok_or_else(|| Error::Internal(format!("bad region {x:?}")))?);
    }
    f(&mut out, &views)
}

/// One lane: its index among the lanes, its stream, and its job state.
pub struct Lane<S> {
    /// Position among the scorer's lanes (0 first; with a profile, lane 0 does
    /// all the work).
    pub index: usize,
    /// A handle of the device on this lane's own stream.
    pub dev: CudaDevice,
    /// The job's per-lane state (its buffers, grown as needed).
    pub state: S,
}

/// Runs chunks of [`CHUNK`] cells of `0..count` on the lanes, each lane on
/// its own host thread pulling the next chunk, and gathers `per_chunk`'s
/// results in cell order. With `profile`, the first lane does all the
/// work (so its event times do not overlap another's). The first error
/// stops every lane at its next chunk and is returned; the lanes are then
/// synchronised and left usable (`reset` clears a lane's state of the
/// unfinished chunk).
pub fn run_lanes<S, T, P, F>(
    lanes: &mut [Lane<S>],
    count: usize,
    profile: Option<&mut P>,
    per_chunk: F,
    reset: impl Fn(&mut Lane<S>) + Sync,
) -> Result<Vec<T>>
where
    S: Send,
    T: Send,
    P: Send,
    F: Fn(&mut Lane<S>, Range<usize>, Option<&mut P>) -> Result<Vec<T>> + Sync,
{
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let run_lane = |lane: &mut Lane<S>, mut profile: Option<&mut P>| -> Result<()> {
        lane.dev.bind_to_thread()?;
        while !abort.load(Ordering::Relaxed) {
            let start = next.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= count {
                break;
            }
            let cells = start..(start + CHUNK).min(count);
            let out = per_chunk(lane, cells.clone(), profile.as_deref_mut())?;
            if out.len() != cells.len() {
                return Err(Error::Internal("a chunk lost cells".into()));
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
        // Leave the lanes usable: wait for what they queued.
        for lane in lanes.iter_mut() {
            let _ = lane.dev.synchronize();
            reset(lane);
        }
        return Err(e);
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| Error::Internal(format!("cell {i} not scored"))))
        .collect()
}
