//! The CPU backend: runs a scoring [`Plan`] step by step with the CPU ops
//! (each parallel over samples inside; BatchNorm needs batch statistics,
//! so a layer finishes before the next), packs the sign bits of every
//! counted tensor and accumulates their Hamming matrix as it goes.
//!
//! The plan's fusions apply as on the GPU (see `exec::plan`): a ReLU read
//! only by convs is applied as the conv loads it; a conv whose only reader
//! is a BatchNorm leaves its output's channel sums and the BN normalises
//! that buffer in place; an Add accumulates into an input buffer it owns;
//! ReLUs of one tensor share one packing, counted with multiplicity.
//!
//! Buffers: each arena region of the plan is one host tensor while it is
//! live, keyed by the region's start; a tensor whose region a later step
//! overwrites goes back to a free list by length, and the free list
//! outlives the pass (a per-thread pool, capped at [`POOL_MAX_BYTES`]), so
//! scoring cell after cell reuses warm, already-faulted pages instead of
//! zero-filling fresh ones (measured: 9–18 fresh activation buffers, up to
//! ~100 MB, per NB201 cell without it).

use super::budget::POOL_MAX_BYTES;
use super::plan::{CodeGroup, NodeStep, PackStep, Plan, Src};
use super::walk::{run_plan, PlanRunner};
use super::{CellTiming, ForwardTiming};
use crate::error::{Error, Result};
use crate::net::Graph;
use crate::ops::batchnorm::ChannelSums;
use crate::ops::conv2d::ConvAlgo;
use crate::ops::{CpuFwd, Forward};
use crate::score::swap::Patterns;
use crate::score::ReluCodes;
use crate::score::Scores;
use crate::score::{codes, hamming};
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// What a CPU scoring pass computes besides the codes, and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassOptions {
    /// Also count SWAP's distinct per-unit sign patterns
    /// ([`ReluCodes::swap`]).
    pub swap: bool,
    /// The convs' algorithm ([`ConvAlgo::Fast`]: Winograd where it
    /// applies; equal up to rounding).
    pub conv: ConvAlgo,
}

/// The scores of `graph` with parameters `params` (indexed like
/// `graph.params`) on `batch` (NHWC, BatchNorm in training mode), DAS with
/// `alpha`, computed with the pass options `opts`, and where the time went
/// (`timing.build_s` is 0: nothing was built here).
pub fn score_pass(
    graph: &Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    alpha: f64,
    opts: PassOptions,
) -> Result<(Scores, CellTiming)> {
    let (codes, fwd) = relu_codes_with(graph, params, batch, opts)?;
    let t1 = std::time::Instant::now();
    let scores = crate::score::metrics::scores(&codes, alpha);
    let timing = CellTiming {
        build_s: 0.0,
        ops_s: fwd.ops_s,
        codes_s: fwd.codes_s,
        logdet_s: t1.elapsed().as_secs_f64(),
        by_op: fwd.by_op,
        measures_s: 0.0,
        measures_by_pass: Vec::new(),
    };
    Ok((scores, timing))
}

/// Runs the forward pass of `graph` on `input` and returns the Hamming matrix
/// of the counted ReLUs (all ReLUs of the pruned graph).
pub fn relu_codes(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
) -> Result<(ReluCodes, ForwardTiming)> {
    run(graph, params, input, true, PassOptions::default())
}

/// [`relu_codes`] with `opts` (SWAP, the conv algorithm).
pub fn relu_codes_with(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    opts: PassOptions,
) -> Result<(ReluCodes, ForwardTiming)> {
    run(graph, params, input, true, opts)
}

/// [`relu_codes`], also counting SWAP's distinct per-unit sign patterns
/// into [`ReluCodes::swap`] (from the same codes; costs a transposition
/// and a sort of one pattern per unit).
pub fn relu_codes_with_swap(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
) -> Result<(ReluCodes, ForwardTiming)> {
    let opts = PassOptions {
        swap: true,
        ..Default::default()
    };
    run(graph, params, input, true, opts)
}

/// [`relu_codes`] with the conv→BN and in-place add fusions off: the plain
/// ops only (tests compare the two).
pub fn relu_codes_unfused(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
) -> Result<(ReluCodes, ForwardTiming)> {
    run(graph, params, input, false, PassOptions::default())
}

fn run(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    fuse: bool,
    opts: PassOptions,
) -> Result<(ReluCodes, ForwardTiming)> {
    let in_shape = graph.input_shape()?;
    let s = input.shape;
    if s.with_n(1) != in_shape || s.n == 0 || input.data.len() != s.len() {
        return Err(Error::Shape(format!(
            "input batch {s} does not fit the network's input [n, {}, {}, {}]",
            in_shape.h, in_shape.w, in_shape.c
        )));
    }
    graph.check_params(params, "parameter")?;
    let plan = Plan::with_fusions(graph, s.n, fuse)?;
    // Before H (B×B) and the activations are allocated: a failed
    // allocation would abort the process instead of returning an error.
    super::budget::check_host(&plan)?;
    let mut runner = CpuRunner {
        params,
        input,
        live: BTreeMap::new(),
        free: POOL.with(|p| std::mem::take(&mut *p.borrow_mut())),
        sums: HashMap::new(),
        h: vec![0u64; s.n * s.n],
        timing: ForwardTiming::default(),
        patterns: opts.swap.then(|| Patterns::new(s.n)),
        conv: opts.conv,
    };
    let start = Instant::now();
    run_plan(&mut runner, &plan, graph)?;
    let mut timing = std::mem::take(&mut runner.timing);
    let t0 = Instant::now();
    let swap = runner.patterns.take().map(Patterns::distinct);
    timing.codes_s += t0.elapsed().as_secs_f64();
    timing.ops_s = start.elapsed().as_secs_f64() - timing.codes_s;
    Ok((
        ReluCodes {
            batch: s.n,
            n_units: plan.n_units,
            hamming: std::mem::take(&mut runner.h),
            swap,
        },
        timing,
    ))
}

thread_local! {
    /// Idle activation buffers by length, handed from one pass to the next
    /// on this thread. Stale contents are harmless: every op overwrites its
    /// whole output (see `crate::ops`).
    static POOL: RefCell<HashMap<usize, Vec<Vec<f32>>>> = RefCell::new(HashMap::new());
}

/// The plan runner of the CPU backend.
struct CpuRunner<'a> {
    params: &'a [Vec<f32>],
    input: &'a Tensor,
    /// The tensor of each live arena region, by region start.
    live: BTreeMap<usize, Tensor>,
    /// Idle buffers by length.
    free: HashMap<usize, Vec<Vec<f32>>>,
    /// Channel sums a step left for its reader, by (psum, psumsq) start.
    sums: HashMap<(usize, usize), ChannelSums>,
    h: Vec<u64>,
    timing: ForwardTiming,
    /// SWAP's per-unit patterns, when asked for.
    patterns: Option<Patterns>,
    /// The convs' algorithm.
    conv: ConvAlgo,
}

impl CpuRunner<'_> {
    /// Returns to the free list every live tensor whose region overlaps
    /// `r` (the plan has no live buffer there any more).
    fn evict(&mut self, r: &std::ops::Range<usize>) {
        let starts: Vec<usize> = self
            .live
            .range(..r.end)
            .rev()
            .take_while(|(&s, t)| s + t.data.len() > r.start)
            .map(|(&s, _)| s)
            .collect();
        for s in starts {
            if let Some(t) = self.live.remove(&s) {
                self.free.entry(t.data.len()).or_default().push(t.data);
            }
        }
    }

    /// A buffer of `len` elements whose contents the op overwrites.
    fn buffer(&mut self, len: usize) -> Vec<f32> {
        match self.free.get_mut(&len).and_then(|v| v.pop()) {
            Some(d) => d,
            None => vec![0.0; len],
        }
    }

    fn tensor(&self, src: &Src) -> Result<&Tensor> {
        tensor_at(&self.live, self.input, src)
    }
}

fn tensor_at<'t>(
    live: &'t BTreeMap<usize, Tensor>,
    input: &'t Tensor,
    src: &Src,
) -> Result<&'t Tensor> {
    match src {
        Src::Input => Ok(input),
        Src::Arena(r) => live
            .get(&r.start)
            .filter(|t| t.data.len() == r.len())
            .ok_or_else(|| Error::Internal(format!("region {r:?} read before written"))),
    }
}

/// Packs `data` (the whole batch) and adds its Hamming distances,
/// `multiplicity` times, to `h`.
fn pack_into_h(
    h: &mut [u64],
    timing: &mut ForwardTiming,
    patterns: Option<&mut Patterns>,
    data: &[f32],
    batch: usize,
    multiplicity: u64,
) -> Result<()> {
    let t0 = Instant::now();
    let c = codes::pack_signs(data, batch)?;
    hamming::hamming_accumulate(&c, multiplicity, h)?;
    if let Some(p) = patterns {
        p.add_packed(&c.words, c.words_per_sample, 0, c.bits);
    }
    timing.codes_s += t0.elapsed().as_secs_f64();
    Ok(())
}

impl PlanRunner for CpuRunner<'_> {
    fn node_step(&mut self, graph: &Graph, s: &NodeStep, groups: &[CodeGroup]) -> Result<()> {
        let node = &graph.nodes[s.node];
        let t0 = Instant::now();
        // The output: the in-place input's tensor, or a fresh buffer.
        let mut out = match s.in_place {
            Some(_) => self.live.remove(&s.out.start).ok_or_else(|| {
                Error::Internal(format!("{} writes over a missing buffer", node.name))
            })?,
            None => {
                self.evict(&s.out);
                let data = self.buffer(s.out.len());
                Tensor {
                    shape: s.out_shape,
                    data,
                }
            }
        };
        out.shape = s.out_shape;
        let partials_in = match &s.partials_in {
            Some(p) if p.filled => Some(
                self.sums
                    .remove(&(p.partials.psum.start, p.partials.psumsq.start))
                    .ok_or_else(|| Error::Internal("partial sums missing".into()))?,
            ),
            _ => None,
        };
        let mut emitted = None;
        {
            let inputs = s
                .inputs
                .iter()
                .enumerate()
                .filter(|&(k, _)| Some(k) != s.in_place)
                .map(|(_, x)| self.tensor(&x.src))
                .collect::<Result<Vec<_>>>()?;
            let params = node
                .params
                .iter()
                .map(|&p| self.params.get(p).map(Vec::as_slice))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::Internal(format!("{} lacks a parameter", node.name)))?;
            let mut a = CpuFwd {
                inputs,
                out: &mut out,
                params,
                relu_input: s.relu_input,
                in_place: s.in_place,
                partials_out: s.partials_out.as_ref().map(|_| &mut emitted),
                partials_in,
                saved: None,
                conv: self.conv,
            };
            Forward::<crate::ops::Cpu>::forward(&node.op, &mut a)?;
        }
        if let (Some(p), Some(sums)) = (&s.partials_out, emitted) {
            self.sums.insert((p.psum.start, p.psumsq.start), sums);
        }
        self.timing
            .add_op(node.op.profile_kind(), t0.elapsed().as_secs_f64());
        if let Some(p) = s.pack {
            // The CPU packs right after the store (its ops have no fused
            // packing; the codes are the same).
            let group = groups
                .get(p.group)
                .ok_or_else(|| Error::Internal(format!("no code group {}", p.group)))?;
            pack_into_h(
                &mut self.h,
                &mut self.timing,
                self.patterns.as_mut(),
                &out.data,
                s.out_shape.n,
                group.multiplicity,
            )?;
        }
        self.live.insert(s.out.start, out);
        Ok(())
    }

    fn pack_step(&mut self, p: &PackStep, group: &CodeGroup) -> Result<()> {
        let t = tensor_at(&self.live, self.input, &p.x)?;
        pack_into_h(
            &mut self.h,
            &mut self.timing,
            self.patterns.as_mut(),
            &t.data,
            p.shape.n,
            group.multiplicity,
        )
    }
}

impl Drop for CpuRunner<'_> {
    /// Returns every buffer of this pass to the thread's pool, dropping the
    /// rest beyond [`POOL_MAX_BYTES`] (on error paths too).
    fn drop(&mut self) {
        let mut free = std::mem::take(&mut self.free);
        for (_, t) in std::mem::take(&mut self.live) {
            free.entry(t.data.len()).or_default().push(t.data);
        }
        let mut bytes = 0usize;
        for v in free.values_mut() {
            v.retain(|b| {
                let keep = bytes + b.len() * 4 <= POOL_MAX_BYTES;
                if keep {
                    bytes += b.len() * 4;
                }
                keep
            });
        }
        free.retain(|_, v| !v.is_empty());
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            // A nested pass on this thread may have refilled it: keep the
            // larger set.
            if free.values().map(Vec::len).sum::<usize>() >= p.values().map(Vec::len).sum() {
                *p = free;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{init, GraphBuilder};
    use crate::ops::conv2d::ConvLayer;
    use crate::ops::pool::PoolKind;
    use crate::tensor::Shape;

    /// A graph that hits every executor path: conv→BN fused (with and
    /// without a fused input ReLU), a conv with two readers (not fused), a
    /// conv feeding a ReLU, adds that own an input, share one (`x + x`), or
    /// read a buffer a later node still needs, twin ReLUs.
    fn graph() -> crate::net::Graph {
        let mut b = GraphBuilder::new();
        let x = b.input(9, 7, 3).unwrap();
        let c0 = b.conv(x, ConvLayer::new(16, 3).pad(1), "c0").unwrap();
        let n0 = b.batchnorm(c0, "bn0");
        let r0 = b.relu(n0, "r0");
        let c1 = b.conv(r0, ConvLayer::new(16, 3).pad(1), "c1").unwrap();
        let n1 = b.batchnorm(c1, "bn1");
        let c2 = b.conv(n0, ConvLayer::new(16, 1), "c2").unwrap();
        let n2 = b.batchnorm(c2, "bn2");
        let a0 = b.add(&[n1, c2, n2], "a0").unwrap(); // c2 has two readers
        let r1 = b.relu(a0, "r1");
        let r1b = b.relu(a0, "r1b");
        let p = b.pool(a0, PoolKind::Avg, 3, 1, 1, "p").unwrap();
        let a1 = b.add(&[p, a0, a0], "a1").unwrap(); // a0 twice: not owned
        let c3 = b
            .conv(r1, ConvLayer::new(24, 3).stride(2).pad(1), "c3")
            .unwrap();
        let c4 = b
            .conv(r1b, ConvLayer::new(24, 3).stride(2).pad(1), "c4")
            .unwrap();
        let r3 = b.relu(c4, "r3"); // a conv whose reader is a ReLU
        let c5 = b
            .conv(a1, ConvLayer::new(24, 3).stride(2).pad(1), "c5")
            .unwrap();
        let n5 = b.batchnorm(c5, "bn5");
        let a2 = b.add(&[c3, r3, n5], "a2").unwrap();
        let r4 = b.relu(a2, "r4");
        let g = b.global_avg_pool(r4, "gap");
        let l = b.linear(g, 10, "fc").unwrap();
        b.finish(l).prune()
    }

    #[test]
    fn fused_executor_matches_plain_ops() {
        let g = graph();
        let params = init::init_params(&g, 7);
        let input = crate::data::gaussian_batch(16, 9, 3);
        let input = Tensor::from_vec(
            Shape::new(16, 9, 7, 3),
            input.data[..16 * 9 * 7 * 3].to_vec(),
        )
        .unwrap();
        // c0, c1, c5 feed only a BN; c2 (two readers), c3 (an add) and c4
        // (a ReLU) do not.
        let plan = Plan::new(&g, 16).unwrap();
        let fused_convs: Vec<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                crate::exec::plan::Step::Node(n) if n.partials_out.is_some() => {
                    Some(g.nodes[n.node].name.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(fused_convs, ["c0", "c1", "c5"]);
        let (fused, _) = relu_codes(&g, &params, &input).unwrap();
        let (plain, _) = relu_codes_unfused(&g, &params, &input).unwrap();
        assert_eq!(fused.n_units, plain.n_units);
        // BN statistics differ in the last bits (one-pass vs two-pass), which
        // may flip the sign of a value within rounding of zero: allow 1e-5
        // of the total.
        let total: u64 = plain.hamming.iter().sum();
        let diff: u64 = fused
            .hamming
            .iter()
            .zip(&plain.hamming)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        assert!(total > 0);
        assert!(
            diff * 100_000 <= total,
            "hamming differs by {diff} of {total}"
        );
        // A second pass reuses pooled buffers (stale contents) and must give
        // the same result bit for bit.
        let (again, _) = relu_codes(&g, &params, &input).unwrap();
        assert_eq!(again, fused);
    }

    /// Concat and crop in the executor: a ReLU read by a crop and a conv
    /// (materialised, counted once), a concat feeding a BN, a channel
    /// truncation feeding an add. Fused and plain paths agree, and N_A
    /// counts each ReLU once.
    #[test]
    fn concat_and_crop_run_fused_and_plain() {
        let mut b = GraphBuilder::new();
        let x = b.input(10, 10, 3).unwrap();
        let c0 = b.conv(x, ConvLayer::new(8, 3).pad(1), "c0").unwrap();
        let r = b.relu(c0, "r");
        let a = b.conv(r, ConvLayer::new(4, 1).stride(2), "fr.a").unwrap();
        let s = b.crop(r, 1, 1, "fr.shift").unwrap();
        let sb = b.conv(s, ConvLayer::new(4, 1).stride(2), "fr.b").unwrap();
        let cat = b.concat(&[a, sb], "fr.cat").unwrap();
        let bn = b.batchnorm(cat, "fr.bn");
        let t = b.first_channels(bn, 5, "trunc").unwrap();
        let c1 = b.conv(bn, ConvLayer::new(5, 3).pad(1), "c1").unwrap();
        let sum = b.add(&[t, c1], "sum").unwrap();
        let r2 = b.relu(sum, "r2");
        let g = b.global_avg_pool(r2, "gap");
        let l = b.linear(g, 3, "fc").unwrap();
        let g = b.finish(l).prune();
        assert_eq!(g.nodes[g.output].shape, Shape::new(1, 1, 1, 3));
        let params = init::init_params(&g, 3);
        let full = crate::data::gaussian_batch(12, 10, 4);
        let (fused, _) = relu_codes(&g, &params, &full).unwrap();
        let (plain, _) = relu_codes_unfused(&g, &params, &full).unwrap();
        assert_eq!(fused.n_units, 10 * 10 * 8 + 5 * 5 * 5);
        assert_eq!(fused.n_units, plain.n_units);
        let total: u64 = plain.hamming.iter().sum();
        let diff: u64 = fused
            .hamming
            .iter()
            .zip(&plain.hamming)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        assert!(total > 0 && diff * 100_000 <= total, "{diff} of {total}");
    }
}
