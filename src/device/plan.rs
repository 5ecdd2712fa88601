//! The execution plan of a network for one batch size: every buffer placed
//! in one arena, every op a [`Step`] that names arena regions, every counted
//! ReLU's sign bits a packing step into one code buffer.
//!
//! A plan is made once per network (on the host, in microseconds) and then
//! run by a device with no decision and no allocation left: the CUDA
//! executor (`device::cuda::executor`) turns each step into one or a few
//! kernel launches on a stream, with no host synchronisation inside a cell.
//! Keeping the plan device-free means its memory reuse and fusions can be
//! tested without a GPU: `run_on_host` (tests only) executes a plan with the
//! CPU ops on a host arena, and its Hamming matrix must equal the CPU
//! executor's, so a region that two live buffers share, or a step that
//! reads a freed buffer, shows up in CI.
//!
//! Fusions (the CPU executor's, see `device::cpu`): a ReLU whose readers are
//! all convs is applied while the conv loads its input and is never stored;
//! a conv whose only reader is a BatchNorm emits the BN's channel partial
//! sums from its epilogue and the BN normalises the conv's region in place;
//! an Add accumulates into an input region it is the last reader of; ReLUs
//! of one tensor share one packing, counted with multiplicity.
//!
//! Layout of the buffers a plan describes:
//! * `arena`: f32 `[arena_len]`; each activation is a [`Region`] of it
//!   holding an NHWC tensor of the plan's batch (`[batch][h][w][c]`), each
//!   region starting on a [`ALIGN`]-float (256-byte) boundary;
//! * `params`: f32 `[params_len]`, parameter `p` at `param_regions[p]`;
//! * `stats`: f64 `[stats_len]` scratch for BatchNorm partial sums;
//! * `codes`: u64 `[codes_len]`, one block per [`CodeGroup`]: group `g` is
//!   `[batch][words_per_sample]` at word `offset`, its layers side by side
//!   in each sample's row (a layer at word `word_offset` of the row);
//! * the input batch is a separate buffer ([`Src::Input`]), uploaded once
//!   and shared by every cell.

use crate::error::{Error, Result};
use crate::net::{Graph, NodeId, Op, ParamId};
use crate::ops::batchnorm::BatchNormSpec;
use crate::ops::conv2d::Conv2dSpec;
use crate::ops::linear::LinearSpec;
use crate::ops::pool::PoolSpec;
use crate::tensor::Shape;
use std::ops::Range;

/// Regions start on multiples of this many elements (256 bytes of f32):
/// aligned for float4 access and whole memory transactions.
pub const ALIGN: usize = 64;

/// A range of elements of one of the plan's buffers.
pub type Region = Range<usize>;

/// Where a step reads a tensor from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Src {
    /// The input batch.
    Input,
    /// A region of the arena.
    Arena(Region),
}

/// BatchNorm partial sums in the `stats` buffer: f64 `[parts][c]` each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partials {
    pub psum: Region,
    pub psumsq: Region,
    pub parts: usize,
}

/// Where a step that writes a counted tensor packs its sign bits as it
/// stores it (see [`Step::Pack`] for the fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInto {
    pub group: usize,
    pub word_offset: usize,
}

/// One step of a plan. Shapes are of the whole batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `y = 0`.
    Zeros {
        node: NodeId,
        y: Region,
    },
    /// `y = conv(relu_input ? relu(x) : x)`; with `stats`, also the channel
    /// partial sums of `y` for the BatchNorm that reads it.
    Conv {
        node: NodeId,
        spec: Conv2dSpec,
        input: Shape,
        x: Src,
        weight: ParamId,
        y: Region,
        relu_input: bool,
        stats: Option<Partials>,
    },
    /// BatchNorm of `x` into `y` (regions may be equal: in place). With
    /// `from_conv`, the statistics are the partial sums the conv left
    /// (`count` values per channel); otherwise the step sums `x` into
    /// `scratch` first.
    BatchNorm {
        node: NodeId,
        spec: BatchNormSpec,
        shape: Shape,
        x: Src,
        y: Region,
        gamma: ParamId,
        beta: ParamId,
        partials: Partials,
        from_conv: bool,
        /// Pack `y`'s sign bits while storing it (a counted tensor).
        pack: Option<PackInto>,
    },
    Relu {
        node: NodeId,
        x: Src,
        y: Region,
    },
    Pool {
        node: NodeId,
        spec: PoolSpec,
        input: Shape,
        x: Src,
        y: Region,
    },
    /// `y = Σ inputs`, `y` disjoint from every input.
    Add {
        node: NodeId,
        inputs: Vec<Src>,
        y: Region,
        /// Pack `y`'s sign bits while storing it (a counted tensor).
        pack: Option<PackInto>,
    },
    /// `acc += Σ others`, where `acc` held input `pos` of the sum (the
    /// summation order is the input order, as in the CPU op).
    AddInPlace {
        node: NodeId,
        acc: Region,
        pos: usize,
        others: Vec<Src>,
        pack: Option<PackInto>,
    },
    /// `y` = the inputs side by side along channels (`channels[k]` of
    /// input k, `pixels` = n·h·w positions).
    Concat {
        node: NodeId,
        inputs: Vec<Src>,
        channels: Vec<usize>,
        pixels: usize,
        y: Region,
    },
    /// `y` = a window of `x` (shape `input`).
    Crop {
        node: NodeId,
        spec: crate::ops::crop::CropSpec,
        input: Shape,
        x: Src,
        y: Region,
    },
    GlobalAvgPool {
        node: NodeId,
        input: Shape,
        x: Src,
        y: Region,
    },
    Linear {
        node: NodeId,
        spec: LinearSpec,
        input: Shape,
        x: Src,
        weight: ParamId,
        bias: ParamId,
        y: Region,
    },
    /// Packs the sign bits of `x` (`per_sample` units per sample) into code
    /// group `group` at word `word_offset` of each sample's row.
    Pack {
        node: NodeId,
        x: Src,
        per_sample: usize,
        group: usize,
        word_offset: usize,
    },
}

impl Step {
    /// The graph node this step computes (or packs).
    pub fn node(&self) -> NodeId {
        match self {
            Step::Zeros { node, .. }
            | Step::Conv { node, .. }
            | Step::BatchNorm { node, .. }
            | Step::Relu { node, .. }
            | Step::Pool { node, .. }
            | Step::Add { node, .. }
            | Step::AddInPlace { node, .. }
            | Step::Concat { node, .. }
            | Step::Crop { node, .. }
            | Step::GlobalAvgPool { node, .. }
            | Step::Linear { node, .. }
            | Step::Pack { node, .. } => *node,
        }
    }
}

/// The codes of all counted tensors read by the same number of ReLUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeGroup {
    /// ReLUs per tensor: each pair's Hamming distance counts this many times.
    pub multiplicity: u64,
    /// Words of one sample's row (the group's layers side by side).
    pub words_per_sample: usize,
    /// First word of the group in the code buffer.
    pub offset: usize,
}

/// How one parameter tensor is initialised on the device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSlot {
    /// Elements `offset..offset + len` of the parameter buffer.
    pub offset: usize,
    pub len: usize,
    pub init: crate::net::ParamInit,
    /// `name_id` of the parameter's name (its random stream).
    pub name_id: u64,
}

/// A network compiled for one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub batch: usize,
    /// Per-sample input shape.
    pub input: Shape,
    pub steps: Vec<Step>,
    pub arena_len: usize,
    pub params: Vec<ParamSlot>,
    pub params_len: usize,
    pub stats_len: usize,
    /// Largest channel count of a BatchNorm (its mean / inv_std scratch).
    pub max_channels: usize,
    pub groups: Vec<CodeGroup>,
    pub codes_len: usize,
    /// N_A: counted units per sample, with multiplicity.
    pub n_units: u64,
}

/// First-fit allocator of aligned regions in a growing buffer; freed
/// regions merge with their neighbours. Deterministic: the same sequence of
/// requests always gives the same regions.
#[derive(Default)]
struct Allocator {
    /// Free regions, sorted by start, never adjacent.
    free: Vec<Region>,
    end: usize,
}

impl Allocator {
    fn alloc(&mut self, len: usize) -> Region {
        let len = len.max(1).div_ceil(ALIGN) * ALIGN;
        if let Some(k) = self.free.iter().position(|r| r.len() >= len) {
            let r = self.free[k].clone();
            if r.len() == len {
                self.free.remove(k);
            } else {
                self.free[k].start += len;
            }
            return r.start..r.start + len;
        }
        // Grow, reusing a free region that ends at the current end.
        let start = match self.free.last() {
            Some(r) if r.end == self.end => {
                let s = r.start;
                self.free.pop();
                s
            }
            _ => self.end,
        };
        self.end = start + len;
        start..start + len
    }

    fn free(&mut self, r: Region) {
        let len = r.len().div_ceil(ALIGN) * ALIGN;
        let r = r.start..r.start + len;
        let k = self.free.partition_point(|f| f.start < r.start);
        self.free.insert(k, r);
        // Merge with the next, then with the previous region.
        if k + 1 < self.free.len() && self.free[k].end == self.free[k + 1].start {
            self.free[k].end = self.free[k + 1].end;
            self.free.remove(k + 1);
        }
        if k > 0 && self.free[k - 1].end == self.free[k].start {
            self.free[k - 1].end = self.free[k].end;
            self.free.remove(k);
        }
    }
}

/// Which fusions apply to which nodes: the one analysis behind the CPU
/// executor and the plans.
pub(crate) struct Fusions {
    /// For a conv reading a ReLU: that ReLU's input (the conv applies it).
    pub fused_relu_source: Vec<Option<NodeId>>,
    /// Whether a ReLU must be stored (some reader is not a conv, or it is
    /// the output).
    pub relu_materialised: Vec<bool>,
    /// Counted ReLUs reading each node.
    pub relu_readers: Vec<u64>,
    /// A conv whose only reader is a BatchNorm (and not the output).
    pub conv_feeds_bn: Vec<bool>,
    /// The last node reading each node's buffer (`n` for the output).
    pub last_read: Vec<usize>,
}

impl Fusions {
    pub fn of(graph: &Graph) -> Fusions {
        let n = graph.nodes.len();
        let mut fused_relu_source = vec![None; n];
        let mut relu_materialised = vec![false; n];
        let mut relu_readers = vec![0u64; n];
        let mut readers = vec![0usize; n];
        let mut only_reader_is_bn = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            for &j in &node.inputs {
                readers[j] += 1;
                only_reader_is_bn[j] = matches!(node.op, Op::BatchNorm { .. });
                if graph.nodes[j].op == Op::Relu {
                    if matches!(node.op, Op::Conv2d { .. }) {
                        fused_relu_source[i] = Some(graph.nodes[j].inputs[0]);
                    } else {
                        relu_materialised[j] = true;
                    }
                }
            }
            if node.op == Op::Relu {
                relu_readers[node.inputs[0]] += 1;
            }
        }
        relu_materialised[graph.output] = true;
        let conv_feeds_bn = (0..n)
            .map(|i| {
                matches!(graph.nodes[i].op, Op::Conv2d { .. })
                    && readers[i] == 1
                    && only_reader_is_bn[i]
                    && i != graph.output
            })
            .collect();
        let mut last_read = vec![0usize; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let reads: Vec<NodeId> = match fused_relu_source[i] {
                Some(src) => vec![src],
                None if node.op == Op::Relu && !relu_materialised[i] => vec![],
                None => node.inputs.clone(),
            };
            for j in reads {
                last_read[j] = last_read[j].max(i);
            }
        }
        last_read[graph.output] = n;
        Fusions {
            fused_relu_source,
            relu_materialised,
            relu_readers,
            conv_feeds_bn,
            last_read,
        }
    }
}

/// A buffer of the arena and how many nodes hold it (a ReLU twin shares
/// its twin's buffer).
struct Held {
    region: Region,
    holders: usize,
}

struct Planner<'a> {
    graph: &'a Graph,
    batch: usize,
    f: Fusions,
    arena: Allocator,
    stats: Allocator,
    /// Buffer index each node's result lives in (`None`: not stored, or the
    /// input batch, or freed).
    holder: Vec<Option<usize>>,
    held: Vec<Held>,
    /// Partial sums a fused conv left for its BatchNorm.
    pending: Vec<Option<Partials>>,
    steps: Vec<Step>,
    max_channels: usize,
}

impl Planner<'_> {
    fn src(&self, id: NodeId) -> Result<Src> {
        if self.graph.nodes[id].op == Op::Input {
            return Ok(Src::Input);
        }
        match self.holder[id] {
            Some(b) => Ok(Src::Arena(self.held[b].region.clone())),
            None => Err(Error::Shape(format!(
                "internal: plan reads node {} before it is stored",
                self.graph.nodes[id].name
            ))),
        }
    }

    /// A new buffer for node `id`'s output (its shape at the plan's batch).
    fn place(&mut self, id: NodeId) -> Region {
        let len = self.graph.nodes[id].shape.with_n(self.batch).len();
        // The allocator rounds up; the region is exactly the tensor (and
        // `Allocator::free` rounds up again).
        let start = self.arena.alloc(len).start;
        self.hold(id, start..start + len);
        start..start + len
    }

    fn hold(&mut self, id: NodeId, region: Region) {
        self.held.push(Held { region, holders: 1 });
        self.holder[id] = Some(self.held.len() - 1);
    }

    fn release(&mut self, id: NodeId) {
        if let Some(b) = self.holder[id].take() {
            self.held[b].holders -= 1;
            if self.held[b].holders == 0 {
                let r = self.held[b].region.clone();
                self.arena.free(r);
            }
        }
    }

    /// Whether node `reader` may overwrite node `id`'s buffer: it is the
    /// last reader and the only holder.
    fn owned_by(&self, id: NodeId, reader: NodeId) -> bool {
        self.f.last_read[id] == reader && self.holder[id].is_some_and(|b| self.held[b].holders == 1)
    }

    fn partials(&mut self, parts: usize, c: usize) -> Partials {
        let psum = self.stats.alloc(parts * c);
        let psumsq = self.stats.alloc(parts * c);
        Partials {
            psum: psum.start..psum.start + parts * c,
            psumsq: psumsq.start..psumsq.start + parts * c,
            parts,
        }
    }

    fn free_partials(&mut self, p: Partials) {
        self.stats.free(p.psum);
        self.stats.free(p.psumsq);
    }

    fn node(&mut self, i: NodeId) -> Result<()> {
        let graph = self.graph;
        let node = &graph.nodes[i];
        let b = self.batch;
        let one = |k: usize| -> Result<NodeId> {
            node.inputs
                .get(k)
                .copied()
                .ok_or_else(|| Error::Shape(format!("node {} has no input {k}", node.name)))
        };
        match &node.op {
            Op::Input => {}
            Op::Zeros => {
                let y = self.place(i);
                self.steps.push(Step::Zeros { node: i, y });
            }
            Op::Conv2d { spec, weight } => {
                let (src, relu_input) = match self.f.fused_relu_source[i] {
                    Some(s) => (s, true),
                    None => (one(0)?, false),
                };
                let x = self.src(src)?;
                let input = graph.nodes[src].shape.with_n(b);
                let stats = if self.f.conv_feeds_bn[i] {
                    let parts = crate::ops::conv2d::cuda::conv2d_stats_parts(spec, input)?;
                    let p = self.partials(parts, spec.cout);
                    self.pending[i] = Some(p.clone());
                    Some(p)
                } else {
                    None
                };
                let y = self.place(i);
                self.steps.push(Step::Conv {
                    node: i,
                    spec: *spec,
                    input,
                    x,
                    weight: *weight,
                    y,
                    relu_input,
                    stats,
                });
            }
            Op::BatchNorm { spec, gamma, beta } => {
                let src = one(0)?;
                let shape = graph.nodes[src].shape.with_n(b);
                self.max_channels = self.max_channels.max(spec.channels);
                let x = self.src(src)?;
                let fused = self.pending[src].is_some() && self.owned_by(src, i);
                let (y, partials) = if fused {
                    // Take over the conv's buffer: normalise in place.
                    let buf = self.holder[src].take().expect("owned buffer");
                    self.holder[i] = Some(buf);
                    let Src::Arena(r) = x.clone() else {
                        unreachable!("a conv output is in the arena")
                    };
                    (r, self.pending[src].take().expect("pending partials"))
                } else {
                    let parts = crate::ops::batchnorm::cuda::batchnorm_parts(shape);
                    let p = self.partials(parts, spec.channels);
                    (self.place(i), p)
                };
                self.steps.push(Step::BatchNorm {
                    node: i,
                    spec: *spec,
                    shape,
                    x,
                    y,
                    gamma: *gamma,
                    beta: *beta,
                    partials: partials.clone(),
                    from_conv: fused,
                    pack: None,
                });
                self.free_partials(partials);
            }
            Op::Relu => {
                if !self.f.relu_materialised[i] {
                    return Ok(());
                }
                let src = one(0)?;
                let twin = (0..i).find(|&r| {
                    graph.nodes[r].op == Op::Relu
                        && graph.nodes[r].inputs[0] == src
                        && self.holder[r].is_some()
                });
                match twin {
                    Some(r) => {
                        let buf = self.holder[r].expect("twin holds a buffer");
                        self.held[buf].holders += 1;
                        self.holder[i] = Some(buf);
                    }
                    None => {
                        let x = self.src(src)?;
                        let y = self.place(i);
                        self.steps.push(Step::Relu { node: i, x, y });
                    }
                }
            }
            Op::Pool(spec) => {
                let src = one(0)?;
                let x = self.src(src)?;
                let input = graph.nodes[src].shape.with_n(b);
                let y = self.place(i);
                self.steps.push(Step::Pool {
                    node: i,
                    spec: *spec,
                    input,
                    x,
                    y,
                });
            }
            Op::Add => {
                let owned = node.inputs.iter().enumerate().find_map(|(k, &j)| {
                    let once = node.inputs.iter().filter(|&&jj| jj == j).count() == 1;
                    (once && self.owned_by(j, i)).then_some((k, j))
                });
                if let Some((pos, j)) = owned {
                    let others = node
                        .inputs
                        .iter()
                        .enumerate()
                        .filter(|&(k, _)| k != pos)
                        .map(|(_, &jj)| self.src(jj))
                        .collect::<Result<Vec<_>>>()?;
                    let Src::Arena(acc) = self.src(j)? else {
                        unreachable!("an owned buffer is in the arena")
                    };
                    let buf = self.holder[j].take().expect("owned buffer");
                    self.holder[i] = Some(buf);
                    self.steps.push(Step::AddInPlace {
                        node: i,
                        acc,
                        pos,
                        others,
                        pack: None,
                    });
                } else {
                    let inputs = node
                        .inputs
                        .iter()
                        .map(|&j| self.src(j))
                        .collect::<Result<Vec<_>>>()?;
                    let y = self.place(i);
                    self.steps.push(Step::Add {
                        node: i,
                        inputs,
                        y,
                        pack: None,
                    });
                }
            }
            Op::Concat => {
                let inputs = node
                    .inputs
                    .iter()
                    .map(|&j| self.src(j))
                    .collect::<Result<Vec<_>>>()?;
                let channels = node
                    .inputs
                    .iter()
                    .map(|&j| graph.nodes[j].shape.c)
                    .collect();
                let pixels = b * node.shape.h * node.shape.w;
                let y = self.place(i);
                self.steps.push(Step::Concat {
                    node: i,
                    inputs,
                    channels,
                    pixels,
                    y,
                });
            }
            Op::Crop(spec) => {
                let src = one(0)?;
                let x = self.src(src)?;
                let input = graph.nodes[src].shape.with_n(b);
                let y = self.place(i);
                self.steps.push(Step::Crop {
                    node: i,
                    spec: *spec,
                    input,
                    x,
                    y,
                });
            }
            Op::GlobalAvgPool => {
                let src = one(0)?;
                let x = self.src(src)?;
                let input = graph.nodes[src].shape.with_n(b);
                let y = self.place(i);
                self.steps.push(Step::GlobalAvgPool {
                    node: i,
                    input,
                    x,
                    y,
                });
            }
            Op::Linear { spec, weight, bias } => {
                let src = one(0)?;
                let x = self.src(src)?;
                let input = graph.nodes[src].shape.with_n(b);
                let y = self.place(i);
                self.steps.push(Step::Linear {
                    node: i,
                    spec: *spec,
                    input,
                    x,
                    weight: *weight,
                    bias: *bias,
                    y,
                });
            }
        }
        Ok(())
    }
}

impl Plan {
    /// Plans `graph` (pruned: every node reaches the output) for batches of
    /// `batch` samples.
    pub fn new(graph: &Graph, batch: usize) -> Result<Plan> {
        if batch == 0 {
            return Err(Error::Arg("plan: batch must be at least 1".into()));
        }
        let input = graph.input_shape()?;
        let n = graph.nodes.len();
        let f = Fusions::of(graph);
        // Code groups: one per multiplicity, in increasing order.
        let mut mults: Vec<u64> = f.relu_readers.iter().copied().filter(|&m| m > 0).collect();
        mults.sort_unstable();
        mults.dedup();
        let mut group_words = vec![0usize; mults.len()];
        let mut pack_at = vec![None; n];
        let mut n_units = 0u64;
        for (i, &m) in f.relu_readers.iter().enumerate() {
            if m == 0 {
                continue;
            }
            let g = mults.binary_search(&m).expect("listed multiplicity");
            let per_sample = graph.nodes[i].shape.per_sample();
            pack_at[i] = Some((g, group_words[g], per_sample));
            group_words[g] += per_sample.div_ceil(64);
            n_units = m
                .checked_mul(per_sample as u64)
                .and_then(|u| n_units.checked_add(u))
                .ok_or_else(|| Error::Shape("plan: N_A overflows u64".into()))?;
        }
        let mut groups = Vec::with_capacity(mults.len());
        let mut codes_len = 0usize;
        for (g, &m) in mults.iter().enumerate() {
            groups.push(CodeGroup {
                multiplicity: m,
                words_per_sample: group_words[g],
                offset: codes_len,
            });
            codes_len += batch * group_words[g];
        }
        let mut params = Vec::with_capacity(graph.params.len());
        let mut params_len = 0usize;
        for p in &graph.params {
            params.push(ParamSlot {
                offset: params_len,
                len: p.len,
                init: p.init,
                name_id: crate::net::rng::name_id(&p.name),
            });
            params_len += p.len.div_ceil(ALIGN) * ALIGN;
        }
        let mut pl = Planner {
            graph,
            batch,
            f,
            arena: Allocator::default(),
            stats: Allocator::default(),
            holder: vec![None; n],
            held: Vec::new(),
            pending: vec![None; n],
            steps: Vec::new(),
            max_channels: 0,
        };
        for (i, &pack) in pack_at.iter().enumerate() {
            pl.node(i)?;
            if let Some((group, word_offset, per_sample)) = pack {
                // Fused: the BatchNorm or Add that just stored node i packs
                // it in the same pass; otherwise a packing step reads it.
                let into = PackInto { group, word_offset };
                let fused = match pl.steps.last_mut() {
                    Some(
                        Step::BatchNorm { node, pack, .. }
                        | Step::Add { node, pack, .. }
                        | Step::AddInPlace { node, pack, .. },
                    ) if *node == i => {
                        *pack = Some(into);
                        true
                    }
                    _ => false,
                };
                if !fused {
                    let x = pl.src(i)?;
                    pl.steps.push(Step::Pack {
                        node: i,
                        x,
                        per_sample,
                        group,
                        word_offset,
                    });
                }
            }
            let node = &graph.nodes[i];
            let reads: Vec<NodeId> = match pl.f.fused_relu_source[i] {
                Some(src) => vec![src],
                None => node.inputs.clone(),
            };
            for j in reads {
                if pl.f.last_read[j] == i {
                    pl.release(j);
                }
            }
        }
        Ok(Plan {
            batch,
            input,
            steps: pl.steps,
            arena_len: pl.arena.end,
            params,
            params_len,
            stats_len: pl.stats.end,
            max_channels: pl.max_channels,
            groups,
            codes_len,
            n_units,
        })
    }
}

#[cfg(test)]
pub(crate) mod host {
    //! A host executor of plans: the CPU ops on a host arena, step for step
    //! as the CUDA executor launches them. It exists to test plans.

    use super::*;
    use crate::device::ReluCodes;
    use crate::ops;
    use crate::score::{codes, hamming};
    use crate::tensor::Tensor;
    use std::collections::HashMap;

    fn read(arena: &[f32], input: &Tensor, x: &Src, shape: Shape) -> Tensor {
        let data = match x {
            Src::Input => input.data.clone(),
            Src::Arena(r) => arena[r.clone()].to_vec(),
        };
        assert_eq!(data.len(), shape.len(), "region of the wrong size");
        Tensor { shape, data }
    }

    fn out(shape: Shape) -> Tensor {
        Tensor {
            shape,
            data: vec![f32::NAN; shape.len()],
        }
    }

    /// Packs `data` (the whole batch) into group `into.group` of `code_buf`.
    fn pack_into(plan: &Plan, code_buf: &mut [u64], data: &[f32], into: PackInto) -> Result<()> {
        let b = plan.batch;
        let c = codes::pack_signs(data, b)?;
        let g = &plan.groups[into.group];
        for s in 0..b {
            let row = g.offset + s * g.words_per_sample + into.word_offset;
            let words = c.sample(s).expect("sample in range");
            code_buf[row..row + words.len()].copy_from_slice(words);
        }
        Ok(())
    }

    /// Runs `plan` for `graph`; the arena starts poisoned with NaN.
    pub fn run_on_host(
        plan: &Plan,
        graph: &Graph,
        params: &[Vec<f32>],
        input: &Tensor,
    ) -> Result<ReluCodes> {
        let b = plan.batch;
        let mut arena = vec![f32::NAN; plan.arena_len];
        let mut code_buf = vec![u64::MAX; plan.codes_len];
        let mut sums: HashMap<(usize, usize), ops::batchnorm::ChannelSums> = HashMap::new();
        let shape_of = |id: NodeId| graph.nodes[id].shape.with_n(b);
        for step in &plan.steps {
            match step {
                Step::Zeros { y, .. } => arena[y.clone()].fill(0.0),
                Step::Conv {
                    node,
                    spec,
                    input: ishape,
                    x,
                    weight,
                    y,
                    relu_input,
                    stats,
                } => {
                    let xin = read(&arena, input, x, *ishape);
                    let mut t = out(shape_of(*node));
                    let w = &params[*weight];
                    if let Some(p) = stats {
                        let s = ops::conv2d::cpu::conv2d_forward_stats(
                            spec,
                            &xin,
                            w,
                            &mut t,
                            *relu_input,
                            ops::conv2d::cpu::ConvKernel::Auto,
                        )?;
                        sums.insert((p.psum.start, p.psumsq.start), s);
                    } else if *relu_input {
                        ops::conv2d::cpu::conv2d_forward_relu_input(spec, &xin, w, &mut t)?;
                    } else {
                        ops::conv2d::cpu::conv2d_forward(spec, &xin, w, &mut t)?;
                    }
                    arena[y.clone()].copy_from_slice(&t.data);
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
                    let mut t = read(&arena, input, x, *shape);
                    if *from_conv {
                        let s = sums
                            .remove(&(partials.psum.start, partials.psumsq.start))
                            .expect("partials of the conv");
                        assert_eq!(Src::Arena(y.clone()), *x, "fused BN is in place");
                        ops::batchnorm::cpu::batchnorm_forward_from_sums(
                            spec,
                            &mut t,
                            &params[*gamma],
                            &params[*beta],
                            &s,
                        )?;
                        arena[y.clone()].copy_from_slice(&t.data);
                    } else {
                        let mut o = out(*shape);
                        ops::batchnorm::cpu::batchnorm_forward(
                            spec,
                            &t,
                            &params[*gamma],
                            &params[*beta],
                            &mut o,
                        )?;
                        arena[y.clone()].copy_from_slice(&o.data);
                    }
                    if let Some(p) = pack {
                        pack_into(plan, &mut code_buf, &arena[y.clone()], *p)?;
                    }
                }
                Step::Relu { node, x, y } => {
                    let xin = read(&arena, input, x, shape_of(*node));
                    let mut t = out(shape_of(*node));
                    ops::relu::cpu::relu_forward(&xin, &mut t)?;
                    arena[y.clone()].copy_from_slice(&t.data);
                }
                Step::Pool {
                    node,
                    spec,
                    input: ishape,
                    x,
                    y,
                } => {
                    let xin = read(&arena, input, x, *ishape);
                    let mut t = out(shape_of(*node));
                    ops::pool::cpu::pool_forward(spec, &xin, &mut t)?;
                    arena[y.clone()].copy_from_slice(&t.data);
                }
                Step::Add {
                    node,
                    inputs,
                    y,
                    pack,
                } => {
                    let s = shape_of(*node);
                    let xs: Vec<Tensor> =
                        inputs.iter().map(|x| read(&arena, input, x, s)).collect();
                    let refs: Vec<&Tensor> = xs.iter().collect();
                    let mut t = out(s);
                    ops::add::cpu::add_forward(&refs, &mut t)?;
                    arena[y.clone()].copy_from_slice(&t.data);
                    if let Some(p) = pack {
                        pack_into(plan, &mut code_buf, &t.data, *p)?;
                    }
                }
                Step::AddInPlace {
                    node,
                    acc,
                    pos,
                    others,
                    pack,
                } => {
                    let s = shape_of(*node);
                    let mut a = read(&arena, input, &Src::Arena(acc.clone()), s);
                    let xs: Vec<Tensor> =
                        others.iter().map(|x| read(&arena, input, x, s)).collect();
                    let refs: Vec<&Tensor> = xs.iter().collect();
                    ops::add::cpu::add_forward_inplace(&mut a, *pos, &refs)?;
                    arena[acc.clone()].copy_from_slice(&a.data);
                    if let Some(p) = pack {
                        pack_into(plan, &mut code_buf, &a.data, *p)?;
                    }
                }
                Step::Concat {
                    node,
                    inputs,
                    channels,
                    y,
                    ..
                } => {
                    let s = shape_of(*node);
                    let xs: Vec<Tensor> = inputs
                        .iter()
                        .zip(channels)
                        .map(|(x, &c)| read(&arena, input, x, Shape::new(s.n, s.h, s.w, c)))
                        .collect();
                    let refs: Vec<&Tensor> = xs.iter().collect();
                    let mut t = out(s);
                    ops::concat::cpu::concat_forward(&refs, &mut t)?;
                    arena[y.clone()].copy_from_slice(&t.data);
                }
                Step::Crop {
                    node,
                    spec,
                    input: ishape,
                    x,
                    y,
                } => {
                    let xin = read(&arena, input, x, *ishape);
                    let mut t = out(shape_of(*node));
                    ops::crop::cpu::crop_forward(spec, &xin, &mut t)?;
                    arena[y.clone()].copy_from_slice(&t.data);
                }
                Step::GlobalAvgPool {
                    node,
                    input: ishape,
                    x,
                    y,
                } => {
                    let xin = read(&arena, input, x, *ishape);
                    let mut t = out(shape_of(*node));
                    ops::global_avg_pool::cpu::global_avg_pool_forward(&xin, &mut t)?;
                    arena[y.clone()].copy_from_slice(&t.data);
                }
                Step::Linear {
                    node,
                    spec,
                    input: ishape,
                    x,
                    weight,
                    bias,
                    y,
                } => {
                    let xin = read(&arena, input, x, *ishape);
                    let mut t = out(shape_of(*node));
                    ops::linear::cpu::linear_forward(
                        spec,
                        &xin,
                        &params[*weight],
                        &params[*bias],
                        &mut t,
                    )?;
                    arena[y.clone()].copy_from_slice(&t.data);
                }
                Step::Pack {
                    node,
                    x,
                    per_sample,
                    group,
                    word_offset,
                } => {
                    let xin = read(&arena, input, x, shape_of(*node));
                    assert_eq!(xin.shape.per_sample(), *per_sample);
                    let into = PackInto {
                        group: *group,
                        word_offset: *word_offset,
                    };
                    pack_into(plan, &mut code_buf, &xin.data, into)?;
                }
            }
        }
        let mut h = vec![0u64; b * b];
        for g in &plan.groups {
            let block = &code_buf[g.offset..g.offset + b * g.words_per_sample];
            let mut c = codes::Codes::zeros(b, g.words_per_sample * 64);
            c.words.copy_from_slice(block);
            hamming::hamming_accumulate(&c, g.multiplicity, &mut h)?;
        }
        Ok(ReluCodes {
            batch: b,
            n_units: plan.n_units,
            hamming: h,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{init, GraphBuilder};
    use crate::ops::pool::PoolKind;
    use crate::space::{self, Space};
    use crate::tensor::Tensor;

    #[test]
    fn allocator_reuses_and_merges() {
        let mut a = Allocator::default();
        let r0 = a.alloc(10);
        let r1 = a.alloc(100);
        let r2 = a.alloc(64);
        assert_eq!((r0.start, r1.start, r2.start), (0, 64, 192));
        a.free(r1.clone());
        // A smaller request fits in the hole left by r1.
        assert_eq!(a.alloc(64).start, 64);
        a.free(64..128);
        a.free(r0);
        // The holes at 0 and 64 merged with each other (128 floats).
        assert_eq!(a.alloc(128).start, 0);
        a.free(r2);
        // The free tail (128..256) is reused when growing.
        let r = a.alloc(1000);
        assert_eq!(r.start, 128);
        assert_eq!(a.end, 128 + 1024);
    }

    /// The executor test graph of `device::cpu`: every fusion path.
    fn graph() -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input(9, 7, 3);
        let r_in = b.relu(x, "r_in"); // a counted ReLU of the input batch
        let c0 = b.conv(r_in, 16, 3, 1, 1, 1, 1, "c0").unwrap();
        let n0 = b.batchnorm(c0, "bn0");
        let r0 = b.relu(n0, "r0");
        let c1 = b.conv(r0, 16, 3, 1, 1, 1, 1, "c1").unwrap();
        let n1 = b.batchnorm(c1, "bn1");
        let c2 = b.conv(n0, 16, 1, 1, 0, 1, 1, "c2").unwrap();
        let n2 = b.batchnorm(c2, "bn2");
        let a0 = b.add(&[n1, c2, n2], "a0").unwrap();
        let r1 = b.relu(a0, "r1");
        let r1b = b.relu(a0, "r1b");
        let p = b.pool(a0, PoolKind::Avg, 3, 1, 1, "p").unwrap();
        let a1 = b.add(&[p, a0, a0], "a1").unwrap();
        let c3 = b.conv(r1, 24, 3, 2, 1, 1, 1, "c3").unwrap();
        let c4 = b.conv(r1b, 24, 3, 2, 1, 1, 1, "c4").unwrap();
        let r3 = b.relu(c4, "r3");
        let r3b = b.relu(c4, "r3b");
        let z = b.zeros_like(r3b, "z");
        let c5 = b.conv(a1, 24, 3, 2, 1, 1, 1, "c5").unwrap();
        let n5 = b.batchnorm(c5, "bn5");
        let a2 = b.add(&[c3, r3, n5, z, r3b], "a2").unwrap();
        let r4 = b.relu(a2, "r4");
        let g = b.global_avg_pool(r4, "gap");
        let l = b.linear(g, 10, "fc");
        b.finish(l).prune()
    }

    fn batch(n: usize, h: usize, w: usize, c: usize, seed: u64) -> Tensor {
        let g = crate::data::gaussian_batch(n, h.max(w).max(c), seed);
        let s = Shape::new(n, h, w, c);
        let per = g.shape.per_sample();
        let mut data = Vec::with_capacity(s.len());
        for i in 0..n {
            data.extend_from_slice(&g.data[i * per..i * per + s.per_sample()]);
        }
        Tensor::from_vec(s, data).unwrap()
    }

    fn check(graph: &Graph, input: &Tensor, seed: u64) {
        let params = init::init_params(graph, seed);
        let plan = Plan::new(graph, input.shape.n).unwrap();
        let (want, _) = crate::device::cpu::relu_codes(graph, &params, input).unwrap();
        let got = host::run_on_host(&plan, graph, &params, input).unwrap();
        assert_eq!(plan.n_units, graph.n_units());
        assert_eq!(got.n_units, want.n_units);
        assert_eq!(got.hamming, want.hamming);
    }

    #[test]
    fn host_run_of_the_plan_matches_the_cpu_executor() {
        let g = graph();
        let plan = Plan::new(&g, 13).unwrap();
        // Fusions show in the steps: c0, c1 and c5 emit statistics; their
        // BNs run in place; some add accumulates in place; r1/r1b and
        // r3/r3b share a packing each (multiplicity 2).
        let names = |pred: &dyn Fn(&Step) -> bool| -> Vec<&str> {
            plan.steps
                .iter()
                .filter(|s| pred(s))
                .map(|s| g.nodes[s.node()].name.as_str())
                .collect()
        };
        assert_eq!(
            names(&|s| matches!(s, Step::Conv { stats: Some(_), .. })),
            ["c0", "c1", "c5"]
        );
        assert_eq!(
            names(&|s| matches!(
                s,
                Step::BatchNorm {
                    from_conv: true,
                    ..
                }
            )),
            ["bn0", "bn1", "bn5"]
        );
        assert!(plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::AddInPlace { .. })));
        assert_eq!(
            plan.groups
                .iter()
                .map(|g| g.multiplicity)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        check(&g, &batch(13, 9, 7, 3, 5), 3);
    }

    #[test]
    fn plans_of_nb201_cells_match_the_cpu_executor() {
        // Small images keep this fast; the network and its fusions are the
        // real ones.
        for arch in space::sample(Space::Nb201, 6, 11).unwrap() {
            let g = arch.network().unwrap();
            check(&g, &batch(5, 32, 32, 3, 2), 1);
        }
    }

    #[test]
    fn plans_of_nb101_and_darts_cells_match_the_cpu_executor() {
        // Concat, crop, zeros of another shape, grouped and dilated convs.
        for arch in space::sample(Space::Darts, 2, 4).unwrap() {
            let g = arch.with_darts_size(8, 5).network().unwrap();
            check(&g, &batch(3, 32, 32, 3, 6), 2);
        }
        for arch in space::sample(Space::Nb101, 2, 4).unwrap() {
            let g = arch.network().unwrap();
            check(&g, &batch(2, 32, 32, 3, 7), 3);
        }
    }

    #[test]
    fn live_regions_never_overlap() {
        // Every region a step writes must be disjoint from every region it
        // reads (except the in-place steps' own accumulator).
        let g = graph();
        let plan = Plan::new(&g, 7).unwrap();
        let overlap = |a: &Region, b: &Region| a.start < b.end && b.start < a.end;
        let reads = |xs: &[&Src], y: &Region| {
            for x in xs {
                if let Src::Arena(r) = x {
                    assert!(!overlap(r, y), "{r:?} overlaps {y:?}");
                }
            }
        };
        for s in &plan.steps {
            match s {
                Step::Conv { x, y, .. }
                | Step::Crop { x, y, .. }
                | Step::Relu { x, y, .. }
                | Step::Pool { x, y, .. }
                | Step::GlobalAvgPool { x, y, .. }
                | Step::Linear { x, y, .. } => reads(&[x], y),
                Step::BatchNorm {
                    x, y, from_conv, ..
                } if !from_conv => reads(&[x], y),
                Step::Add { inputs, y, .. } | Step::Concat { inputs, y, .. } => {
                    reads(&inputs.iter().collect::<Vec<_>>(), y)
                }
                Step::AddInPlace { acc, others, .. } => {
                    reads(&others.iter().collect::<Vec<_>>(), acc)
                }
                _ => {}
            }
            let _ = s.node();
        }
        assert!(plan.arena_len.is_multiple_of(ALIGN));
    }
}
