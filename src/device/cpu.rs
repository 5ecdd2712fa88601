//! The CPU executor: runs a pruned graph node by node over the whole batch
//! (BatchNorm needs batch statistics, so a layer finishes before the next),
//! each op parallel over samples inside. While it runs it packs the sign bits
//! of every tensor a counted ReLU reads and accumulates their Hamming matrix.
//!
//! Fusions: a ReLU whose every reader is a conv is never materialised (the
//! conv applies max(x, 0) while it pads its input); several ReLUs of one
//! tensor share one packing, counted with multiplicity; a conv whose only
//! reader is a BatchNorm accumulates the BN's channel sums while it stores
//! its output, and the BN then normalises the conv's buffer in place in one
//! pass (it takes the buffer over); an Add accumulates into an input buffer
//! it is the last reader and sole owner of. Buffers are recycled through a
//! free list, so a network allocates each activation size a handful of
//! times, not once per node; the free list outlives the pass (a per-thread
//! pool, capped at [`POOL_MAX_BYTES`]), so scoring cell after cell reuses
//! warm, already-faulted pages instead of zero-filling fresh ones (measured:
//! 9–18 fresh activation buffers, up to ~100 MB, per NB201 cell without it). Buffers are `Rc<Tensor>` (NHWC, batch-sized):
//! a materialised ReLU may share its twin's buffer, so "owned" below means
//! a strong count of 1.

use super::plan::Fusions;
use super::{ForwardTiming, ReluCodes};
use crate::error::{Error, Result};
use crate::net::{Graph, NodeId, Op};
use crate::ops;
use crate::ops::batchnorm::ChannelSums;
use crate::score::{codes, hamming};
use crate::tensor::{Shape, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

/// Runs the forward pass of `graph` on `input` and returns the Hamming matrix
/// of the counted ReLUs (all ReLUs of the pruned graph).
pub fn relu_codes(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
) -> Result<(ReluCodes, ForwardTiming)> {
    Executor::new(graph, params, input, true)?.run()
}

/// [`relu_codes`] with the conv→BN and in-place add fusions off: the plain
/// ops only (tests compare the two).
#[cfg(test)]
fn relu_codes_unfused(
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
) -> Result<(ReluCodes, ForwardTiming)> {
    Executor::new(graph, params, input, false)?.run()
}

/// Most bytes of idle activation buffers a thread keeps between passes.
pub const POOL_MAX_BYTES: usize = 512 << 20;

thread_local! {
    /// Idle activation buffers by length, handed from one pass to the next
    /// on this thread. Stale contents are harmless: every op overwrites its
    /// whole output (see `crate::ops`).
    static POOL: RefCell<HashMap<usize, Vec<Vec<f32>>>> = RefCell::new(HashMap::new());
}

struct Executor<'a> {
    graph: &'a Graph,
    params: &'a [Vec<f32>],
    input: &'a Tensor,
    batch: usize,
    /// For a conv whose input is a ReLU it can fuse: that ReLU's input node.
    fused_relu_source: Vec<Option<NodeId>>,
    /// Whether a ReLU node must be materialised (some reader is not a fused conv).
    relu_materialised: Vec<bool>,
    /// Number of counted ReLUs reading each node (their codes are equal).
    relu_readers: Vec<u64>,
    /// For a conv: whether its only reader is a BatchNorm (and it is not the
    /// output), so it runs with fused statistics.
    conv_feeds_bn: Vec<bool>,
    /// Whether an Add may accumulate into an input it owns.
    add_in_place: bool,
    /// Channel sums a fused conv left for its BatchNorm.
    pending_sums: Vec<Option<ChannelSums>>,
    /// After which node each buffer is last read.
    last_read: Vec<usize>,
    buffers: Vec<Option<Rc<Tensor>>>,
    free: HashMap<usize, Vec<Vec<f32>>>,
}

impl<'a> Executor<'a> {
    /// `fuse` enables the conv→BN and in-place add fusions.
    fn new(
        graph: &'a Graph,
        params: &'a [Vec<f32>],
        input: &'a Tensor,
        fuse: bool,
    ) -> Result<Self> {
        let in_shape = graph.input_shape()?;
        let s = input.shape;
        if s.with_n(1) != in_shape || s.n == 0 {
            return Err(Error::Shape(format!(
                "input batch {s} does not fit the network's input [n, {}, {}, {}]",
                in_shape.h, in_shape.w, in_shape.c
            )));
        }
        if params.len() != graph.params.len() {
            return Err(Error::Arg(format!(
                "{} parameter tensors given, the network has {}",
                params.len(),
                graph.params.len()
            )));
        }
        for (p, v) in graph.params.iter().zip(params) {
            if p.len != v.len() {
                return Err(Error::Arg(format!(
                    "parameter {} has {} values, needs {}",
                    p.name,
                    v.len(),
                    p.len
                )));
            }
        }
        let n = graph.nodes.len();
        let f = Fusions::of(graph);
        let conv_feeds_bn = if fuse {
            f.conv_feeds_bn
        } else {
            vec![false; n]
        };
        Ok(Executor {
            graph,
            params,
            input,
            batch: s.n,
            fused_relu_source: f.fused_relu_source,
            relu_materialised: f.relu_materialised,
            relu_readers: f.relu_readers,
            conv_feeds_bn,
            add_in_place: fuse,
            pending_sums: vec![None; n],
            last_read: f.last_read,
            buffers: vec![None; n],
            free: POOL.with(|p| std::mem::take(&mut *p.borrow_mut())),
        })
    }

    /// A buffer of `shape` (batch `self.batch`) whose contents the op overwrites.
    fn alloc(&mut self, shape: Shape) -> Tensor {
        let shape = shape.with_n(self.batch);
        let data = match self.free.get_mut(&shape.len()).and_then(|v| v.pop()) {
            Some(d) => d,
            None => vec![0.0; shape.len()],
        };
        Tensor { shape, data }
    }

    fn get(&self, id: NodeId) -> Result<Rc<Tensor>> {
        self.buffers[id].clone().ok_or_else(|| {
            Error::Shape(format!(
                "internal: node {} read before it was computed",
                self.graph.nodes[id].name
            ))
        })
    }

    /// Takes node `id`'s buffer out of the executor if node `reader` is its
    /// last reader and nothing else holds it (so `reader` may overwrite it);
    /// otherwise leaves it and returns `None`.
    fn take_owned(&mut self, id: NodeId, reader: NodeId) -> Option<Tensor> {
        if self.last_read[id] != reader {
            return None;
        }
        match &self.buffers[id] {
            Some(rc) if Rc::strong_count(rc) == 1 => {}
            _ => return None,
        }
        Rc::try_unwrap(self.buffers[id].take()?).ok()
    }

    fn release(&mut self, id: NodeId) {
        if let Some(rc) = self.buffers[id].take() {
            if let Ok(t) = Rc::try_unwrap(rc) {
                self.free.entry(t.data.len()).or_default().push(t.data);
            }
        }
    }

    fn run(mut self) -> Result<(ReluCodes, ForwardTiming)> {
        let b = self.batch;
        let mut h = vec![0u64; b * b];
        let mut n_units = 0u64;
        let mut timing = ForwardTiming::default();
        let start = Instant::now();
        for i in 0..self.graph.nodes.len() {
            let node = &self.graph.nodes[i];
            let t_op = Instant::now();
            let out = self.compute(i)?;
            timing.add_op(node.op.kind(), t_op.elapsed().as_secs_f64());
            if let Some(t) = out {
                if self.relu_readers[i] > 0 {
                    let t0 = Instant::now();
                    let c = codes::pack_signs(&t.data, b)?;
                    hamming::hamming_accumulate(&c, self.relu_readers[i], &mut h)?;
                    n_units += self.relu_readers[i] * node.shape.per_sample() as u64;
                    timing.codes_s += t0.elapsed().as_secs_f64();
                }
                self.buffers[i] = Some(t);
            }
            // Free every buffer whose last reader was this node.
            let reads: Vec<NodeId> = match self.fused_relu_source[i] {
                Some(src) => vec![src],
                None => node.inputs.clone(),
            };
            for j in reads {
                if self.last_read[j] == i {
                    self.release(j);
                }
            }
        }
        timing.ops_s = start.elapsed().as_secs_f64() - timing.codes_s;
        Ok((
            ReluCodes {
                batch: b,
                n_units,
                hamming: h,
            },
            timing,
        ))
    }

    /// Computes node `i`; `None` for a ReLU that no reader needs materialised.
    fn compute(&mut self, i: NodeId) -> Result<Option<Rc<Tensor>>> {
        let node = &self.graph.nodes[i];
        let params = self.params;
        let x = |k: usize| node.inputs.get(k).copied();
        let t = match &node.op {
            Op::Input => Rc::new(self.input.clone()),
            Op::Zeros => {
                let mut t = self.alloc(node.shape);
                t.data.fill(0.0);
                Rc::new(t)
            }
            Op::Conv2d { spec, weight } => {
                let mut y = self.alloc(node.shape);
                let (src, relu) = match self.fused_relu_source[i] {
                    Some(src) => (src, true),
                    None => (input_of(node, x(0))?, false),
                };
                let xin = self.get(src)?;
                let w = &params[*weight];
                if self.conv_feeds_bn[i] {
                    let kernel = ops::conv2d::cpu::ConvKernel::Auto;
                    let sums = ops::conv2d::cpu::conv2d_forward_stats(
                        spec, &xin, w, &mut y, relu, kernel,
                    )?;
                    self.pending_sums[i] = Some(sums);
                } else if relu {
                    ops::conv2d::cpu::conv2d_forward_relu_input(spec, &xin, w, &mut y)?;
                } else {
                    ops::conv2d::cpu::conv2d_forward(spec, &xin, w, &mut y)?;
                }
                Rc::new(y)
            }
            Op::BatchNorm { spec, gamma, beta } => {
                let src = input_of(node, x(0))?;
                // Fused path: the conv left its channel sums and this node is
                // its only reader, so normalise the conv's buffer in place.
                if let Some(sums) = self.pending_sums[src].take() {
                    if let Some(mut t) = self.take_owned(src, i) {
                        ops::batchnorm::cpu::batchnorm_forward_from_sums(
                            spec,
                            &mut t,
                            &params[*gamma],
                            &params[*beta],
                            &sums,
                        )?;
                        return Ok(Some(Rc::new(t)));
                    }
                }
                let xin = self.get(src)?;
                let mut y = self.alloc(node.shape);
                ops::batchnorm::cpu::batchnorm_forward(
                    spec,
                    &xin,
                    &params[*gamma],
                    &params[*beta],
                    &mut y,
                )?;
                Rc::new(y)
            }
            Op::Relu => {
                if !self.relu_materialised[i] {
                    return Ok(None);
                }
                let src = input_of(node, x(0))?;
                // Another ReLU of the same tensor may already hold the result.
                let twin = (0..i).find(|&r| {
                    self.graph.nodes[r].op == Op::Relu
                        && self.graph.nodes[r].inputs[0] == src
                        && self.buffers[r].is_some()
                });
                match twin {
                    Some(r) => self.get(r)?,
                    None => {
                        let xin = self.get(src)?;
                        let mut y = self.alloc(node.shape);
                        ops::relu::cpu::relu_forward(&xin, &mut y)?;
                        Rc::new(y)
                    }
                }
            }
            Op::Pool(spec) => {
                let xin = self.get(input_of(node, x(0))?)?;
                let mut y = self.alloc(node.shape);
                ops::pool::cpu::pool_forward(spec, &xin, &mut y)?;
                Rc::new(y)
            }
            Op::Add => {
                // Accumulate into an input buffer this node owns, if any (the
                // first such input that appears once in the list).
                let owned = node.inputs.iter().enumerate().find_map(|(k, &j)| {
                    if !self.add_in_place {
                        return None;
                    }
                    let once = node.inputs.iter().filter(|&&jj| jj == j).count() == 1;
                    (once && self.last_read[j] == i)
                        .then(|| self.take_owned(j, i).map(|t| (k, t)))
                        .flatten()
                });
                if let Some((k, mut acc)) = owned {
                    let others = node
                        .inputs
                        .iter()
                        .enumerate()
                        .filter(|&(kk, _)| kk != k)
                        .map(|(_, &j)| self.get(j))
                        .collect::<Result<Vec<_>>>()?;
                    let refs: Vec<&Tensor> = others.iter().map(|t| t.as_ref()).collect();
                    ops::add::cpu::add_forward_inplace(&mut acc, k, &refs)?;
                    return Ok(Some(Rc::new(acc)));
                }
                let xs = node
                    .inputs
                    .iter()
                    .map(|&j| self.get(j))
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&Tensor> = xs.iter().map(|t| t.as_ref()).collect();
                let mut y = self.alloc(node.shape);
                ops::add::cpu::add_forward(&refs, &mut y)?;
                Rc::new(y)
            }
            Op::GlobalAvgPool => {
                let xin = self.get(input_of(node, x(0))?)?;
                let mut y = self.alloc(node.shape);
                ops::global_avg_pool::cpu::global_avg_pool_forward(&xin, &mut y)?;
                Rc::new(y)
            }
            Op::Linear { spec, weight, bias } => {
                let xin = self.get(input_of(node, x(0))?)?;
                let mut y = self.alloc(node.shape);
                ops::linear::cpu::linear_forward(
                    spec,
                    &xin,
                    &params[*weight],
                    &params[*bias],
                    &mut y,
                )?;
                Rc::new(y)
            }
            Op::Concat => {
                let xs = node
                    .inputs
                    .iter()
                    .map(|&j| self.get(j))
                    .collect::<Result<Vec<_>>>()?;
                let refs: Vec<&Tensor> = xs.iter().map(|t| t.as_ref()).collect();
                let mut y = self.alloc(node.shape);
                ops::concat::cpu::concat_forward(&refs, &mut y)?;
                Rc::new(y)
            }
            Op::Crop(spec) => {
                let xin = self.get(input_of(node, x(0))?)?;
                let mut y = self.alloc(node.shape);
                ops::crop::cpu::crop_forward(spec, &xin, &mut y)?;
                Rc::new(y)
            }
        };
        Ok(Some(t))
    }
}

impl Drop for Executor<'_> {
    /// Returns every buffer this pass still owns to the thread's pool,
    /// dropping the rest beyond [`POOL_MAX_BYTES`] (on error paths too).
    fn drop(&mut self) {
        let mut free = std::mem::take(&mut self.free);
        for rc in self.buffers.drain(..).flatten() {
            if let Ok(t) = Rc::try_unwrap(rc) {
                free.entry(t.data.len()).or_default().push(t.data);
            }
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

fn input_of(node: &crate::net::Node, id: Option<NodeId>) -> Result<NodeId> {
    id.ok_or_else(|| Error::Shape(format!("node {} has no input", node.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{init, GraphBuilder};
    use crate::ops::pool::PoolKind;

    /// A graph that hits every executor path: conv→BN fused (with and
    /// without a fused input ReLU), a conv with two readers (not fused), a
    /// conv feeding a ReLU, adds that own an input, share one (`x + x`), or
    /// read a buffer a later node still needs, twin ReLUs.
    fn graph() -> crate::net::Graph {
        let mut b = GraphBuilder::new();
        let x = b.input(9, 7, 3);
        let c0 = b.conv(x, 16, 3, 1, 1, 1, 1, "c0").unwrap();
        let n0 = b.batchnorm(c0, "bn0");
        let r0 = b.relu(n0, "r0");
        let c1 = b.conv(r0, 16, 3, 1, 1, 1, 1, "c1").unwrap();
        let n1 = b.batchnorm(c1, "bn1");
        let c2 = b.conv(n0, 16, 1, 1, 0, 1, 1, "c2").unwrap();
        let n2 = b.batchnorm(c2, "bn2");
        let a0 = b.add(&[n1, c2, n2], "a0").unwrap(); // c2 has two readers
        let r1 = b.relu(a0, "r1");
        let r1b = b.relu(a0, "r1b");
        let p = b.pool(a0, PoolKind::Avg, 3, 1, 1, "p").unwrap();
        let a1 = b.add(&[p, a0, a0], "a1").unwrap(); // a0 twice: not owned
        let c3 = b.conv(r1, 24, 3, 2, 1, 1, 1, "c3").unwrap();
        let c4 = b.conv(r1b, 24, 3, 2, 1, 1, 1, "c4").unwrap();
        let r3 = b.relu(c4, "r3"); // a conv whose reader is a ReLU
        let c5 = b.conv(a1, 24, 3, 2, 1, 1, 1, "c5").unwrap();
        let n5 = b.batchnorm(c5, "bn5");
        let a2 = b.add(&[c3, r3, n5], "a2").unwrap();
        let r4 = b.relu(a2, "r4");
        let g = b.global_avg_pool(r4, "gap");
        let l = b.linear(g, 10, "fc");
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
        let ex = Executor::new(&g, &params, &input, true).unwrap();
        let fused_convs: Vec<&str> = (0..g.nodes.len())
            .filter(|&i| ex.conv_feeds_bn[i])
            .map(|i| g.nodes[i].name.as_str())
            .collect();
        assert_eq!(fused_convs, ["c0", "c1", "c5"]);
        drop(ex);
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
        let x = b.input(10, 10, 3);
        let c0 = b.conv(x, 8, 3, 1, 1, 1, 1, "c0").unwrap();
        let r = b.relu(c0, "r");
        let a = b.conv(r, 4, 1, 2, 0, 1, 1, "fr.a").unwrap();
        let s = b.crop(r, 1, 1, "fr.shift").unwrap();
        let sb = b.conv(s, 4, 1, 2, 0, 1, 1, "fr.b").unwrap();
        let cat = b.concat(&[a, sb], "fr.cat").unwrap();
        let bn = b.batchnorm(cat, "fr.bn");
        let t = b.first_channels(bn, 5, "trunc").unwrap();
        let c1 = b.conv(bn, 5, 3, 1, 1, 1, 1, "c1").unwrap();
        let sum = b.add(&[t, c1], "sum").unwrap();
        let r2 = b.relu(sum, "r2");
        let g = b.global_avg_pool(r2, "gap");
        let l = b.linear(g, 3, "fc");
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
