//! The execution plan of a network for one batch size: every buffer placed
//! in one arena, every op a [`Step`] that names arena regions, every counted
//! ReLU's sign bits a packing step into one code buffer.
//!
//! A plan is made once per network (on the host, in microseconds) and then
//! walked by a device ([`crate::exec::walk::run_plan`]) with no decision
//! and no allocation left: the CPU backend runs each step with the CPU ops,
//! the CUDA backend turns it into one or a few kernel launches on a
//! stream, with no host synchronisation inside a cell. The planner asks
//! every op what it can do ([`crate::ops::OpSpec`]) and matches on no op.
//!
//! Fusions: a ReLU whose readers all apply it on load
//! ([`OpSpec::fuses_relu_input`](crate::ops::OpSpec::fuses_relu_input): a
//! conv) is never stored; an op that can emit its output's channel partial
//! sums (a conv) does so when its only reader normalises from them (a
//! BatchNorm), which then normalises that buffer in place; an op that may
//! accumulate in place (an Add) does so into an input buffer it is the last
//! reader and only holder of; an op that can pack on store (BatchNorm, Add)
//! packs the sign bits of a counted tensor as it writes it; ReLUs of one
//! tensor share one packing, counted with multiplicity.
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
use crate::net::{Graph, NodeId, ParamId};
use crate::ops::{InPlace, Role};
use crate::param::ParamSlot;
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
    /// Per-channel partial sums of `x`: f64 `[parts][c]`, a region of `stats`.
    pub psum: Region,
    /// Per-channel partial sums of `x²`: f64 `[parts][c]`, a region of `stats`.
    pub psumsq: Region,
    /// Partial rows per channel (summed on use).
    pub parts: usize,
}

/// Where a step that writes a counted tensor packs its sign bits as it
/// stores it (see [`PackStep`] for the fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInto {
    /// The code group ([`Plan::groups`] index).
    pub group: usize,
    /// Word (u64) of each sample's row of the group where this tensor's bits start.
    pub word_offset: usize,
}

/// One input of a [`NodeStep`]: which node's value it is, where it is
/// read, and its shape (batch included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepInput {
    /// The node whose value this input is.
    pub node: NodeId,
    /// Where the value is read.
    pub src: Src,
    /// Its shape, batch included.
    pub shape: Shape,
}

/// Partial sums of a step's input that it normalises by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialsIn {
    /// The partial sums (regions of `stats`).
    pub partials: Partials,
    /// Already filled by the input's producer (else: scratch the step sums
    /// its input into first).
    pub filled: bool,
    /// Values summed per channel (`n·h·w` of the input).
    pub count: usize,
}

/// Computes one node by its op.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStep {
    /// The node computed.
    pub node: NodeId,
    /// The op's inputs in order. The one at `in_place` (if any) is held in
    /// `out` when the step starts; its `src` is then `out`.
    pub inputs: Vec<StepInput>,
    /// The output region and its shape (batch included).
    pub out: Region,
    /// The output's shape, batch included.
    pub out_shape: Shape,
    /// The input (position) whose buffer the op writes its output over.
    pub in_place: Option<usize>,
    /// Input 0 is a stored tensor whose ReLU the op applies as it loads
    /// it (the ReLU itself is not stored).
    pub relu_input: bool,
    /// Emit the output's per-channel partial sums here.
    pub partials_out: Option<Partials>,
    /// Normalise by partial sums of input 0.
    pub partials_in: Option<PartialsIn>,
    /// Pack the output's sign bits while storing it.
    pub pack: Option<PackInto>,
}

/// Packs the sign bits of a stored tensor (`per_sample` units per sample)
/// into code group `group` at word `word_offset` of each sample's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackStep {
    /// The node whose stored value is packed: the tensor the counted ReLUs read
    /// (the ReLUs' input).
    pub node: NodeId,
    /// Where that tensor is stored.
    pub x: Src,
    /// Its shape, batch included.
    pub shape: Shape,
    /// Units per sample: bits of each sample's code this tensor fills.
    pub per_sample: usize,
    /// The code group ([`Plan::groups`] index).
    pub group: usize,
    /// Word (u64) of each sample's row of the group where this tensor's bits start.
    pub word_offset: usize,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Computes one node.
    Node(NodeStep),
    /// Packs a stored tensor's sign bits that no op packed as it stored it.
    Pack(PackStep),
}

impl Step {
    /// The graph node this step computes (or packs).
    pub fn node(&self) -> NodeId {
        match self {
            Step::Node(s) => s.node,
            Step::Pack(p) => p.node,
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

/// The parameter buffer's layout: every parameter tensor of `graph` at an
/// [`ALIGN`]ed offset, and the buffer's length.
pub fn param_slots(graph: &Graph) -> (Vec<ParamSlot>, usize) {
    let mut params = Vec::with_capacity(graph.params.len());
    let mut len = 0usize;
    for p in &graph.params {
        params.push(ParamSlot {
            offset: len,
            len: p.len,
            init: p.init,
            name_id: crate::rng::name_id(&p.name),
        });
        len += p.len.div_ceil(ALIGN) * ALIGN;
    }
    (params, len)
}

/// A network compiled for one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Samples per batch the plan is laid out for (B).
    pub batch: usize,
    /// Per-sample input shape.
    pub input: Shape,
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// f32 elements of the arena (its high-water mark).
    pub arena_len: usize,
    /// Each parameter tensor's slot in the parameter buffer, indexed by
    /// [`ParamId`].
    pub params: Vec<ParamSlot>,
    /// f32 elements of the parameter buffer (each tensor padded to [`ALIGN`]).
    pub params_len: usize,
    /// f64 elements of the `stats` scratch (BatchNorm partial sums).
    pub stats_len: usize,
    /// Largest `saved_len` of a step (BatchNorm: 2 × channels): the scratch
    /// for its mean and 1/std.
    pub saved_len: usize,
    /// Code groups, one per ReLU multiplicity, in increasing multiplicity.
    pub groups: Vec<CodeGroup>,
    /// u64 words of the code buffer: `batch × words_per_sample`, summed over the
    /// groups.
    pub codes_len: usize,
    /// N_A: counted units per sample, with multiplicity.
    pub n_units: u64,
}

impl Plan {
    /// Where each packed tensor's units lie in the code buffer: `(group,
    /// first bit of each sample's row of the group, units per sample)`, for
    /// every pack step and every node step that packs as it stores, in
    /// step order.
    pub fn pack_placements(&self) -> Vec<(usize, usize, usize)> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::Pack(p) => Some((p.group, p.word_offset * 64, p.per_sample)),
                Step::Node(n) => n
                    .pack
                    .map(|k| (k.group, k.word_offset * 64, n.out_shape.per_sample())),
            })
            .collect()
    }

    /// SWAP of the pass whose codes (`codes_len` words, laid out as the
    /// module docs say) are `codes`: every packed tensor's units read per
    /// unit ([`crate::score::swap`]).
    pub fn swap_of_codes(&self, codes: &[u64]) -> u64 {
        let mut patterns = crate::score::swap::Patterns::new(self.batch);
        for (group, first_bit, bits) in self.pack_placements() {
            if let Some(g) = self.groups.get(group) {
                let rows = codes.get(g.offset..g.offset + self.batch * g.words_per_sample);
                if let Some(rows) = rows {
                    patterns.add_packed(rows, g.words_per_sample, first_bit, bits);
                }
            }
        }
        patterns.distinct()
    }
}

/// First-fit allocator of aligned regions in a growing buffer; freed
/// regions merge with their neighbours. Deterministic: the same sequence of
/// requests always gives the same regions.
#[derive(Default)]
pub(crate) struct Allocator {
    /// Free regions, sorted by start, never adjacent.
    free: Vec<Region>,
    /// The buffer's length so far.
    pub(crate) end: usize,
}

impl Allocator {
    /// An aligned region of `len` elements (rounded up to [`ALIGN`]).
    pub(crate) fn alloc(&mut self, len: usize) -> Region {
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

    /// Returns region `r` (as [`Self::alloc`] gave it, or its exact part).
    pub(crate) fn free(&mut self, r: Region) {
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

/// Which fusions apply to which nodes: the one analysis behind the
/// scoring plans and the training plans, from what each op says it can do.
pub(crate) struct Fusions {
    /// For a node that applies a ReLU on load (a conv reading a ReLU): that
    /// ReLU's input.
    pub fused_relu_source: Vec<Option<NodeId>>,
    /// Whether a ReLU must be stored (some reader does not apply it on
    /// load, or it is the output).
    pub relu_materialised: Vec<bool>,
    /// Counted ReLUs reading each node.
    pub relu_readers: Vec<u64>,
    /// A node that emits its output's partial sums for its only reader,
    /// which normalises from them in place (a conv feeding only a BN).
    pub emits_partials: Vec<bool>,
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
        let mut only_reader_takes_partials = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let spec = node.op.spec();
            for &j in &node.inputs {
                readers[j] += 1;
                only_reader_takes_partials[j] = spec.in_place() == InPlace::WithInputPartials;
                if graph.nodes[j].op.spec().role() == Role::CountedRelu {
                    if spec.fuses_relu_input() {
                        fused_relu_source[i] = Some(graph.nodes[j].inputs[0]);
                    } else {
                        relu_materialised[j] = true;
                    }
                }
            }
            if spec.role() == Role::CountedRelu {
                relu_readers[node.inputs[0]] += 1;
            }
        }
        relu_materialised[graph.output] = true;
        let emits_partials = (0..n)
            .map(|i| {
                let node = &graph.nodes[i];
                let can = node.inputs.first().is_some_and(|&j| {
                    matches!(
                        node.op.spec().partials_out(graph.nodes[j].shape),
                        Ok(Some(_))
                    )
                });
                can && readers[i] == 1 && only_reader_takes_partials[i] && i != graph.output
            })
            .collect();
        let mut last_read = vec![0usize; n];
        for i in 0..n {
            for j in reads_of(graph, &fused_relu_source, &relu_materialised, i) {
                last_read[j] = last_read[j].max(i);
            }
        }
        last_read[graph.output] = n;
        Fusions {
            fused_relu_source,
            relu_materialised,
            relu_readers,
            emits_partials,
            last_read,
        }
    }

    /// The nodes whose stored values node `i` reads.
    pub fn reads(&self, graph: &Graph, i: NodeId) -> Vec<NodeId> {
        reads_of(graph, &self.fused_relu_source, &self.relu_materialised, i)
    }
}

fn reads_of(
    graph: &Graph,
    fused_relu_source: &[Option<NodeId>],
    relu_materialised: &[bool],
    i: NodeId,
) -> Vec<NodeId> {
    let node = &graph.nodes[i];
    match fused_relu_source[i] {
        Some(src) => {
            let mut r = node.inputs.clone();
            r[0] = src;
            r
        }
        None if node.op.spec().role() == Role::CountedRelu && !relu_materialised[i] => vec![],
        None => node.inputs.clone(),
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
    /// Partial sums a node emitted for its reader.
    pending: Vec<Option<Partials>>,
    steps: Vec<Step>,
    saved_len: usize,
    /// Adds may accumulate into an input they own.
    in_place_adds: bool,
}

impl Planner<'_> {
    fn src(&self, id: NodeId) -> Result<Src> {
        if self.graph.nodes[id].op.spec().role() == Role::Input {
            return Ok(Src::Input);
        }
        match self.holder[id] {
            Some(b) => Ok(Src::Arena(self.held[b].region.clone())),
            None => Err(Error::Internal(format!(
                "plan reads node {} before it is stored",
                self.graph.nodes[id].name
            ))),
        }
    }

    fn input(&self, id: NodeId) -> Result<StepInput> {
        Ok(StepInput {
            node: id,
            src: self.src(id)?,
            shape: self.graph.nodes[id].shape.with_n(self.batch),
        })
    }

    /// A new buffer for node `id`'s output (its shape at the plan's batch).
    fn place(&mut self, id: NodeId) -> Region {
        let len = self.graph.nodes[id].shape.with_n(self.batch).len();
        // The allocator rounds up; the region is exactly the tensor (and
        // `Allocator::free` rounds up again).
        let start = self.arena.alloc(len).start;
        self.held.push(Held {
            region: start..start + len,
            holders: 1,
        });
        self.holder[id] = Some(self.held.len() - 1);
        start..start + len
    }

    /// Node `to` takes over node `from`'s buffer (to write over it).
    fn take_over(&mut self, from: NodeId, to: NodeId) -> Result<Region> {
        let b = self.holder[from].take().ok_or_else(|| {
            Error::Internal(format!(
                "node {} has no buffer to take over",
                self.graph.nodes[from].name
            ))
        })?;
        self.holder[to] = Some(b);
        Ok(self.held[b].region.clone())
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
        let spec = node.op.spec();
        let b = self.batch;
        match spec.role() {
            Role::Input => return Ok(()),
            Role::CountedRelu => {
                if !self.f.relu_materialised[i] {
                    return Ok(());
                }
                let src = node.inputs[0];
                // A stored ReLU of the same tensor already holds the result.
                let twin = (0..i).find(|&r| {
                    graph.nodes[r].op.spec().role() == Role::CountedRelu
                        && graph.nodes[r].inputs[0] == src
                        && self.holder[r].is_some()
                });
                if let Some(r) = twin {
                    let buf = self.holder[r].expect("twin holds a buffer");
                    self.held[buf].holders += 1;
                    self.holder[i] = Some(buf);
                    return Ok(());
                }
            }
            Role::Compute => {}
        }
        let reads = self.f.reads(graph, i);
        let mut inputs = reads
            .iter()
            .map(|&j| self.input(j))
            .collect::<Result<Vec<_>>>()?;
        let relu_input = self.f.fused_relu_source[i].is_some();
        let out_shape = node.shape.with_n(b);
        // Partial sums this node emits for its reader.
        let partials_out = if self.f.emits_partials[i] {
            let parts = spec
                .partials_out(inputs[0].shape)?
                .ok_or_else(|| Error::Internal(format!("{} emits no partial sums", node.name)))?;
            let p = self.partials(parts, out_shape.c);
            self.pending[i] = Some(p.clone());
            Some(p)
        } else {
            None
        };
        let mut in_place = None;
        let mut scratch = None;
        let mut partials_in = None;
        let mut out = None;
        if let Some((parts, c)) = inputs.first().and_then(|x| spec.partials_in(x.shape)) {
            let src = inputs[0].node;
            let count = inputs[0].shape.n * inputs[0].shape.h * inputs[0].shape.w;
            let fused = spec.in_place() == InPlace::WithInputPartials
                && self.pending[src].is_some()
                && self.owned_by(src, i);
            if fused {
                let partials = self.pending[src].take().expect("pending partials");
                out = Some(self.take_over(src, i)?);
                in_place = Some(0);
                partials_in = Some(PartialsIn {
                    partials,
                    filled: true,
                    count,
                });
            } else {
                let p = self.partials(parts, c);
                scratch = Some(p.clone());
                partials_in = Some(PartialsIn {
                    partials: p,
                    filled: false,
                    count,
                });
            }
        }
        if out.is_none() && self.in_place_adds && spec.in_place() == InPlace::OwnedInput {
            let owned = node.inputs.iter().enumerate().find_map(|(k, &j)| {
                let once = node.inputs.iter().filter(|&&jj| jj == j).count() == 1;
                (once && self.owned_by(j, i)).then_some((k, j))
            });
            if let Some((pos, j)) = owned {
                out = Some(self.take_over(j, i)?);
                in_place = Some(pos);
            }
        }
        let out = match out {
            Some(r) => r,
            None => self.place(i),
        };
        if let Some(k) = in_place {
            inputs[k].src = Src::Arena(out.clone());
        }
        self.saved_len = self.saved_len.max(spec.saved_len(out_shape));
        let consumed = partials_in
            .as_ref()
            .filter(|p| p.filled)
            .map(|p| p.partials.clone());
        self.steps.push(Step::Node(NodeStep {
            node: i,
            inputs,
            out,
            out_shape,
            in_place,
            relu_input,
            partials_out,
            partials_in,
            pack: None,
        }));
        for p in scratch.into_iter().chain(consumed) {
            self.free_partials(p);
        }
        Ok(())
    }
}

impl Plan {
    /// Plans `graph` (pruned: every node reaches the output) for batches of
    /// `batch` samples.
    pub fn new(graph: &Graph, batch: usize) -> Result<Plan> {
        Self::with_fusions(graph, batch, true)
    }

    /// [`Plan::new`] with the conv→BatchNorm statistics and the in-place add
    /// fusions on or off (off: the plain ops, which tests compare with).
    pub fn with_fusions(graph: &Graph, batch: usize, fuse: bool) -> Result<Plan> {
        if batch == 0 {
            return Err(Error::Arg("plan: batch must be at least 1".into()));
        }
        let input = graph.input_shape()?;
        let n = graph.nodes.len();
        let mut f = Fusions::of(graph);
        if !fuse {
            f.emits_partials.fill(false);
        }
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
        let (params, params_len) = param_slots(graph);
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
            saved_len: 0,
            in_place_adds: fuse,
        };
        for (i, &pack) in pack_at.iter().enumerate() {
            pl.node(i)?;
            if let Some((group, word_offset, per_sample)) = pack {
                // Fused: the op that just stored node i packs it in the
                // same pass; otherwise a packing step reads it.
                let into = PackInto { group, word_offset };
                let fused = match pl.steps.last_mut() {
                    Some(Step::Node(s))
                        if s.node == i && graph.nodes[i].op.spec().packs_on_store() =>
                    {
                        s.pack = Some(into);
                        true
                    }
                    _ => false,
                };
                if !fused {
                    let x = pl.src(i)?;
                    pl.steps.push(Step::Pack(PackStep {
                        node: i,
                        x,
                        shape: graph.nodes[i].shape.with_n(batch),
                        per_sample,
                        group,
                        word_offset,
                    }));
                }
            }
            for j in pl.f.reads(graph, i) {
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
            saved_len: pl.saved_len,
            groups,
            codes_len,
            n_units,
        })
    }

    /// The parameter ids of step `s`'s node, as regions of the parameter
    /// buffer.
    pub fn param_regions(&self, graph: &Graph, node: NodeId) -> Result<Vec<Region>> {
        graph.nodes[node]
            .params
            .iter()
            .map(|&p: &ParamId| {
                self.params
                    .get(p)
                    .map(ParamSlot::region)
                    .ok_or_else(|| Error::Internal(format!("no parameter {p}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::GraphBuilder;
    use crate::ops::conv2d::ConvLayer;
    use crate::ops::pool::PoolKind;
    use crate::space::{self, Space};

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

    /// Every fusion path: a counted ReLU of the input, fused ReLU→conv,
    /// conv→BN with statistics, a conv with two readers, in-place and
    /// out-of-place adds (one reading a tensor twice), twin ReLUs, zeros.
    pub(crate) fn graph() -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input(9, 7, 3).unwrap();
        let r_in = b.relu(x, "r_in");
        let c0 = b.conv(r_in, ConvLayer::new(16, 3).pad(1), "c0").unwrap();
        let n0 = b.batchnorm(c0, "bn0");
        let r0 = b.relu(n0, "r0");
        let c1 = b.conv(r0, ConvLayer::new(16, 3).pad(1), "c1").unwrap();
        let n1 = b.batchnorm(c1, "bn1");
        let c2 = b.conv(n0, ConvLayer::new(16, 1), "c2").unwrap();
        let n2 = b.batchnorm(c2, "bn2");
        let a0 = b.add(&[n1, c2, n2], "a0").unwrap();
        let r1 = b.relu(a0, "r1");
        let r1b = b.relu(a0, "r1b");
        let p = b.pool(a0, PoolKind::Avg, 3, 1, 1, "p").unwrap();
        let a1 = b.add(&[p, a0, a0], "a1").unwrap();
        let c3 = b
            .conv(r1, ConvLayer::new(24, 3).stride(2).pad(1), "c3")
            .unwrap();
        let c4 = b
            .conv(r1b, ConvLayer::new(24, 3).stride(2).pad(1), "c4")
            .unwrap();
        let r3 = b.relu(c4, "r3");
        let r3b = b.relu(c4, "r3b");
        let z = b.zeros_like(r3b, "z");
        let c5 = b
            .conv(a1, ConvLayer::new(24, 3).stride(2).pad(1), "c5")
            .unwrap();
        let n5 = b.batchnorm(c5, "bn5");
        let a2 = b.add(&[c3, r3, n5, z, r3b], "a2").unwrap();
        let r4 = b.relu(a2, "r4");
        let g = b.global_avg_pool(r4, "gap");
        let l = b.linear(g, 10, "fc").unwrap();
        b.finish(l).prune()
    }

    /// Simulates `plan` on a shadow arena that records which node's value
    /// each element holds: every read must find the node it expects, whole,
    /// and every pack must read the node it packs. A region two live
    /// buffers share, or a step that reads a freed or overwritten buffer,
    /// fails here.
    pub(crate) fn check_dataflow(plan: &Plan, graph: &Graph) {
        let mut shadow: Vec<Option<NodeId>> = vec![None; plan.arena_len];
        // ReLUs of one tensor are one value (twins share a buffer).
        let canon: Vec<NodeId> = (0..graph.nodes.len())
            .map(|i| {
                let n = &graph.nodes[i];
                if n.op.spec().role() != Role::CountedRelu {
                    return i;
                }
                (0..i)
                    .find(|&r| {
                        graph.nodes[r].op.spec().role() == Role::CountedRelu
                            && graph.nodes[r].inputs[0] == n.inputs[0]
                    })
                    .unwrap_or(i)
            })
            .collect();
        let holds = |shadow: &[Option<NodeId>], src: &Src, node: NodeId, what: &str| match src {
            Src::Input => assert_eq!(
                graph.nodes[node].op.spec().role(),
                Role::Input,
                "{what} reads the input batch as node {}",
                graph.nodes[node].name
            ),
            Src::Arena(r) => assert!(
                shadow[r.clone()].iter().all(|&h| h == Some(canon[node])),
                "{what} reads {} from {r:?}, which holds {:?}",
                graph.nodes[node].name,
                shadow[r.clone()].iter().find(|&&h| h != Some(node))
            ),
        };
        for step in &plan.steps {
            match step {
                Step::Node(s) => {
                    let name = &graph.nodes[s.node].name;
                    for (k, x) in s.inputs.iter().enumerate() {
                        holds(&shadow, &x.src, x.node, &format!("{name} input {k}"));
                        if Some(k) != s.in_place {
                            if let Src::Arena(r) = &x.src {
                                assert!(
                                    r.end <= s.out.start || r.start >= s.out.end,
                                    "{name}: input {k} {r:?} overlaps the output {:?}",
                                    s.out
                                );
                            }
                        }
                    }
                    assert_eq!(s.out.len(), s.out_shape.len(), "{name}: output region size");
                    shadow[s.out.clone()].fill(Some(canon[s.node]));
                }
                Step::Pack(p) => holds(&shadow, &p.x, p.node, "pack"),
            }
        }
    }

    #[test]
    fn plan_shows_every_fusion() {
        let g = graph();
        let plan = Plan::new(&g, 13).unwrap();
        let names = |pred: &dyn Fn(&NodeStep) -> bool| -> Vec<&str> {
            plan.steps
                .iter()
                .filter_map(|s| match s {
                    Step::Node(n) if pred(n) => Some(g.nodes[n.node].name.as_str()),
                    _ => None,
                })
                .collect()
        };
        // c0, c1 and c5 emit statistics; their BNs run in place from them;
        // the convs reading r_in, r0, r1 and r1b apply those ReLUs.
        assert_eq!(names(&|s| s.partials_out.is_some()), ["c0", "c1", "c5"]);
        assert_eq!(
            names(&|s| s.partials_in.as_ref().is_some_and(|p| p.filled)),
            ["bn0", "bn1", "bn5"]
        );
        assert_eq!(names(&|s| s.relu_input), ["c0", "c1", "c3", "c4"]);
        assert!(!names(&|s| s.in_place.is_some() && s.partials_in.is_none()).is_empty());
        // r1/r1b and r3/r3b share a packing each (multiplicity 2).
        assert_eq!(
            plan.groups
                .iter()
                .map(|g| g.multiplicity)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(plan.n_units, g.n_units());
        check_dataflow(&plan, &g);
        assert!(plan.arena_len.is_multiple_of(ALIGN));
    }

    #[test]
    fn plans_of_every_space_are_sound() {
        for arch in space::sample(Space::NB201, 12, 11).unwrap() {
            let g = arch.network().unwrap();
            let plan = Plan::new(&g, 5).unwrap();
            assert_eq!(plan.n_units, g.n_units());
            check_dataflow(&plan, &g);
        }
        for arch in space::sample(Space::DARTS, 3, 4).unwrap() {
            let small = "init_channels=8,layers=5".parse().unwrap();
            let g = arch.with_options(&small).unwrap().network().unwrap();
            check_dataflow(&Plan::new(&g, 3).unwrap(), &g);
        }
        for arch in space::sample(Space::NB101, 3, 4).unwrap() {
            let g = arch.network().unwrap();
            check_dataflow(&Plan::new(&g, 2).unwrap(), &g);
        }
    }
}
