//! The network IR: a DAG of ops over NHWC tensors, with named parameters.
//!
//! A search space builds a [`Graph`] with [`GraphBuilder`]; [`Graph::prune`]
//! removes every node whose result cannot reach the output (docs/scores.md, "Which ReLUs count":
//! those ReLUs are not counted), and [`init`] draws the parameters from the
//! counter-based generator. Devices execute the graph node by node in order
//! (nodes are stored topologically: every input id is smaller than its user's).

pub mod init;

use crate::error::{Error, Result};
use crate::ops::batchnorm::BatchNormSpec;
use crate::ops::conv2d::ConvLayer;
use crate::ops::crop::CropSpec;
use crate::ops::linear::LinearSpec;
use crate::ops::pool::{PoolKind, PoolSpec};
use crate::ops::Role;
use crate::tensor::Shape;

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;
/// Index of a parameter tensor in [`Graph::params`].
pub type ParamId = usize;

/// BatchNorm epsilon used everywhere (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;

pub use crate::ops::Op;
use crate::param::{InitScheme, ParamInit};

/// A node: its op, its input nodes, the parameter tensors it owns (in the
/// order of its op's [`OpSpec::params`](crate::ops::OpSpec::params)) and its
/// per-sample output shape (`n = 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node computes.
    pub op: Op,
    /// Input nodes, in the order the op takes them (each id smaller than this
    /// node's).
    pub inputs: Vec<NodeId>,
    /// Parameter tensors the node owns, in its op's declaration order.
    pub params: Vec<ParamId>,
    /// Per-sample output shape (`n = 1`).
    pub shape: Shape,
    /// The node's name; its parameters are named `<name>.<suffix>`, which seeds
    /// their values.
    pub name: String,
}

/// Which ReLUs count as units (N_A, the codes, SWAP) where a space has
/// `none` edges (NB201, DARTS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Counting {
    /// The ReLUs whose value can reach the output: a `none` edge is no edge
    /// (docs/scores.md, "Which ReLUs count"; the default, which ranks better on NB201).
    #[default]
    Functional,
    /// As the NASWOT research code counts: `none` is `x · 0`, through which
    /// the backward pass still flows, so every ReLU with a graph path to
    /// the output counts, `none` edges included.
    Graph,
}

impl std::str::FromStr for Counting {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "functional" => Ok(Counting::Functional),
            "graph" => Ok(Counting::Graph),
            other => Err(Error::Arg(format!(
                "unknown counting `{other}` (expected functional or graph)"
            ))),
        }
    }
}

/// A parameter tensor: its name (which also seeds its values), length and init.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// `<node name>.<suffix>`; also the seed of its random stream ([`crate::rng`]).
    pub name: String,
    /// Number of f32 values.
    pub len: usize,
    /// How the values are drawn.
    pub init: ParamInit,
}

/// A whole network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// The nodes in topological order (every input id smaller than its user's).
    pub nodes: Vec<Node>,
    /// The parameter tensors, indexed by [`ParamId`].
    pub params: Vec<Param>,
    /// The node whose result is the network's output.
    pub output: NodeId,
    /// The outputs of the network's blocks in order: the stem's output,
    /// then each cell's or block's output (a reduction block and a
    /// downsampling pool between cells count as blocks). AZ-NAS's
    /// expressivity, progressivity and trainability read these feature
    /// maps (docs/measures.md); a space that marks none leaves it empty.
    pub blocks: Vec<NodeId>,
}

impl Graph {
    /// Errors unless `tensors` are shaped like this network's parameters
    /// (one per parameter, each of its length); `what` names them in the
    /// message ("parameter", "gradient").
    pub fn check_params(&self, tensors: &[Vec<f32>], what: &str) -> Result<()> {
        if tensors.len() != self.params.len() {
            return Err(Error::Arg(format!(
                "{} {what} tensors given, the network has {}",
                tensors.len(),
                self.params.len()
            )));
        }
        for (p, v) in self.params.iter().zip(tensors) {
            if p.len != v.len() {
                return Err(Error::Arg(format!(
                    "{what} {} has {} values, needs {}",
                    p.name,
                    v.len(),
                    p.len
                )));
            }
        }
        Ok(())
    }

    /// Per-sample shape of the input node (errors if the graph has none).
    pub fn input_shape(&self) -> Result<Shape> {
        self.nodes
            .iter()
            .find(|n| n.op.spec().role() == Role::Input)
            .map(|n| n.shape)
            .ok_or_else(|| Error::Shape("graph has no input node".into()))
    }

    /// Ids of the counted ReLUs (every ReLU of a pruned graph).
    pub fn relus(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].op.spec().role() == Role::CountedRelu)
    }

    /// The number of parameters (every f32 of every parameter tensor:
    /// conv and linear weights and biases, BatchNorm's γ and β), the
    /// `params` baseline of zero-cost papers. NB101's `trainable_parameters`
    /// equals it on the shared table.
    pub fn param_count(&self) -> u64 {
        self.params.iter().map(|p| p.len as u64).sum()
    }

    /// The network with every batch-normalising node
    /// ([`crate::ops::OpSpec::normalises_batch`]) replaced by the identity:
    /// its readers read its input. Parameters keep their ids (a removed
    /// node's parameters stay, read by no node).
    pub fn without_batchnorm(&self) -> Graph {
        let mut map: Vec<NodeId> = Vec::with_capacity(self.nodes.len());
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let inputs: Vec<NodeId> = node.inputs.iter().map(|&j| map[j]).collect();
            if node.op.spec().normalises_batch() {
                if let Some(&first) = inputs.first() {
                    map.push(first);
                    continue;
                }
            }
            map.push(nodes.len());
            nodes.push(Node {
                inputs,
                ..node.clone()
            });
        }
        Graph {
            nodes,
            params: self.params.clone(),
            output: map[self.output],
            blocks: self.blocks.iter().map(|&b| map[b]).collect(),
        }
    }

    /// The part of the network that maps node `from`'s value to node
    /// `to`'s: every node on a path from `from` to `to`, with `from`
    /// replaced by the new graph's first input node and every other value
    /// those nodes read (a DARTS cell's other input) by a further input
    /// node, held constant. Returns the graph (output: `to`'s copy;
    /// parameter ids unchanged, every parameter kept) and, for each
    /// further input node, its id and the id in `self` of the value it
    /// stands for. Errors unless `from < to` and `to` depends on `from`.
    pub fn between(&self, from: NodeId, to: NodeId) -> Result<(Graph, Vec<(NodeId, NodeId)>)> {
        let n = self.nodes.len();
        if from >= to || to >= n {
            return Err(Error::Internal(format!(
                "no block from node {from} to node {to} in a graph of {n} nodes"
            )));
        }
        // Descendants of `from` that `to` depends on.
        let mut below = vec![false; n];
        below[from] = true;
        for i in from + 1..=to {
            below[i] = self.nodes[i].inputs.iter().any(|&j| below[j]);
        }
        let mut above = vec![false; n];
        above[to] = true;
        for i in (from..=to).rev() {
            if above[i] {
                for &j in &self.nodes[i].inputs {
                    above[j] = true;
                }
            }
        }
        if !above[from] || !below[to] {
            return Err(Error::Internal(format!(
                "node {} does not depend on node {}",
                self.nodes[to].name, self.nodes[from].name
            )));
        }
        let input = |shape: Shape, name: String| Node {
            op: crate::ops::input::InputOp { shape }.into(),
            inputs: Vec::new(),
            params: Vec::new(),
            shape,
            name,
        };
        let mut map = vec![usize::MAX; n];
        let mut nodes = vec![input(self.nodes[from].shape, "input".into())];
        map[from] = 0;
        let mut constants = Vec::new();
        for i in from + 1..=to {
            if !(below[i] && above[i]) {
                continue;
            }
            for &j in &self.nodes[i].inputs {
                if map[j] == usize::MAX {
                    map[j] = nodes.len();
                    constants.push((nodes.len(), j));
                    nodes.push(input(
                        self.nodes[j].shape,
                        format!("{}.held", self.nodes[j].name),
                    ));
                }
            }
            map[i] = nodes.len();
            nodes.push(Node {
                inputs: self.nodes[i].inputs.iter().map(|&j| map[j]).collect(),
                ..self.nodes[i].clone()
            });
        }
        // Inputs appear before their readers; a held input added while
        // copying node i sits before i's copy, so the order stays
        // topological.
        Ok((
            Graph {
                nodes,
                params: self.params.clone(),
                output: map[to],
                blocks: Vec::new(),
            },
            constants,
        ))
    }

    /// The network as JSON, for a reference formulation in another
    /// framework (`scripts/torch_measures.py`): `input` `[h, w, c]`,
    /// `output` (a node id), `params` (`name`, `len`, by parameter id) and
    /// `nodes` in topological order, each with `name`, `op`
    /// ([`crate::ops::Op::to_json`]), `inputs` and `params` (ids) and its
    /// per-sample `shape` `[h, w, c]`, and `blocks` ([`Graph::blocks`]).
    /// Parameter values are in this
    /// crate's layouts (each op's module documents its own).
    pub fn to_json(&self) -> serde_json::Value {
        let shape = |s: crate::tensor::Shape| serde_json::json!([s.h, s.w, s.c]);
        let input = self
            .nodes
            .iter()
            .find(|n| n.op.spec().role() == crate::ops::Role::Input)
            .map(|n| shape(n.shape));
        let params: Vec<serde_json::Value> = self
            .params
            .iter()
            .map(|p| serde_json::json!({ "name": p.name, "len": p.len }))
            .collect();
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "name": n.name,
                    "op": n.op.to_json(),
                    "inputs": n.inputs,
                    "params": n.params,
                    "shape": shape(n.shape),
                })
            })
            .collect();
        serde_json::json!({
            "input": input,
            "output": self.output,
            "blocks": self.blocks,
            "params": params,
            "nodes": nodes,
        })
    }

    /// Multiply-adds per sample of the convolutions and linear layers (half
    /// of [`OpSpec::flops`](crate::ops::OpSpec::flops) summed), the `flops`
    /// baseline as thop and fvcore count it (one multiply-add is one
    /// "FLOP"); pools, BatchNorm, adds and ReLUs are not counted.
    pub fn macs(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                let ins: Vec<Shape> = n.inputs.iter().map(|&i| self.nodes[i].shape).collect();
                n.op.spec().flops(&ins, n.shape) / 2
            })
            .sum()
    }

    /// N_A: the number of counted ReLU units per sample.
    pub fn n_units(&self) -> u64 {
        self.relus()
            .map(|i| self.nodes[i].shape.per_sample() as u64)
            .sum()
    }

    /// Removes every node that has no path to the output, and every
    /// parameter only such nodes used; ids are renumbered, order is kept.
    pub fn prune(&self) -> Graph {
        let mut live = vec![false; self.nodes.len()];
        live[self.output] = true;
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for &j in &self.nodes[i].inputs {
                    live[j] = true;
                }
            }
        }
        // Keep the input node even if nothing reads it: the batch still has a shape.
        for (i, n) in self.nodes.iter().enumerate() {
            if n.op.spec().role() == Role::Input {
                live[i] = true;
            }
        }
        let mut node_map = vec![usize::MAX; self.nodes.len()];
        let mut param_map = vec![usize::MAX; self.params.len()];
        let mut out = Graph {
            nodes: Vec::new(),
            params: Vec::new(),
            output: 0,
            blocks: Vec::new(),
        };
        let mut map_param = |p: ParamId, out: &mut Graph| -> ParamId {
            if param_map[p] == usize::MAX {
                param_map[p] = out.params.len();
                out.params.push(self.params[p].clone());
            }
            param_map[p]
        };
        for (i, n) in self.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let params = n.params.iter().map(|&p| map_param(p, &mut out)).collect();
            node_map[i] = out.nodes.len();
            out.nodes.push(Node {
                op: n.op.clone(),
                inputs: n.inputs.iter().map(|&j| node_map[j]).collect(),
                params,
                shape: n.shape,
                name: n.name.clone(),
            });
        }
        out.output = node_map[self.output];
        out.blocks = self
            .blocks
            .iter()
            .filter(|&&b| live[b])
            .map(|&b| node_map[b])
            .collect();
        out
    }

    /// Number of learnable values (conv and linear weights, linear biases,
    /// BatchNorm γ and β), as PyTorch's `sum(p.numel())` counts them.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.len).sum()
    }

    /// [`Self::flops`] split by the ops' profile kinds
    /// ([`crate::ops::Op::profile_kind`]), in first-node order, kinds
    /// without FLOPs left out.
    pub fn flops_by_kind(&self, batch: usize) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = Vec::new();
        for n in &self.nodes {
            let inputs: Vec<Shape> = n.inputs.iter().map(|&j| self.nodes[j].shape).collect();
            let f = n.op.spec().flops(&inputs, n.shape) * batch as u64;
            if f == 0 {
                continue;
            }
            let k = n.op.profile_kind();
            match out.iter_mut().find(|(kk, _)| *kk == k) {
                Some((_, t)) => *t += f,
                None => out.push((k, f)),
            }
        }
        out
    }

    /// Floating-point operations of every node
    /// ([`OpSpec::flops`](crate::ops::OpSpec::flops): the multiply-adds of
    /// convs and linears, times 2) for a batch of `batch` samples.
    pub fn flops(&self, batch: usize) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                let inputs: Vec<Shape> = n.inputs.iter().map(|&j| self.nodes[j].shape).collect();
                n.op.spec().flops(&inputs, n.shape)
            })
            .sum::<u64>()
            * batch as u64
    }
}

/// Builds a [`Graph`], inferring every node's shape as it goes.
///
/// It also keeps a running count of the network's parameters and of one
/// image's activations, and refuses (an [`Error::Arg`] with the estimate)
/// a network whose parameters and two images' activations could not fit
/// in the host's available memory: options such as DARTS's
/// `init_channels=100000000` or `layers=100000000` fail while the graph
/// is still small, never by aborting in an allocation later.
#[derive(Default)]
pub struct GraphBuilder {
    graph: Graph,
    init: InitScheme,
    /// f32 values of every parameter so far.
    param_values: u64,
    /// f32 values of every node's output for one image so far.
    activation_values: u64,
}

/// The host memory a network may take: what is available when the first
/// network is built (read once per process).
fn network_limit() -> Option<u64> {
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(crate::runtime::budget::host_available)
}

impl GraphBuilder {
    /// An empty builder with the default init scheme ([`InitScheme::Default`]).
    pub fn new() -> Self {
        Self::with_init(InitScheme::Default)
    }

    /// A builder whose convs and linears draw their weights by `init`.
    pub fn with_init(init: InitScheme) -> Self {
        GraphBuilder {
            graph: Graph::default(),
            init,
            param_values: 0,
            activation_values: 0,
        }
    }

    /// Bytes of the parameters and of two images' activations so far: the
    /// least any run of this network holds.
    pub fn bytes_so_far(&self) -> u64 {
        self.param_values
            .saturating_add(self.activation_values.saturating_mul(2))
            .saturating_mul(4)
    }

    /// Refuses the network when [`Self::bytes_so_far`] exceeds the limit.
    fn check_size(&self, name: &str) -> Result<()> {
        let need = self.bytes_so_far();
        // `None`: unknown, then only what no machine can address is refused.
        let limit = network_limit();
        if crate::runtime::budget::fits(need, limit) {
            return Ok(());
        }
        let human = crate::runtime::budget::human;
        let have = match limit {
            Some(a) => format!("{} are available", human(a)),
            None => "more than this machine can address".into(),
        };
        Err(Error::Arg(format!(
            "this network is too large: at node `{name}` ({} nodes so far) its parameters \
             ({}) and two images' activations ({}) already need {}, {have}; use fewer \
             channels or cells",
            self.graph.nodes.len(),
            human(self.param_values.saturating_mul(4)),
            human(self.activation_values.saturating_mul(8)),
            human(need),
        )))
    }

    /// The per-sample shape (`n = 1`) of node `x`; panics if `x` is not a node.
    pub fn shape(&self, x: NodeId) -> Shape {
        self.graph.nodes[x].shape
    }

    /// Adds a node computing `op` of `inputs`: its shape from the op's
    /// shape rule, its parameters (`<name>.<suffix>`) from the op's
    /// declaration, drawn by this builder's [`InitScheme`]. Every op can be
    /// added this way; the methods below are shorthands that derive the
    /// op's spec from its input's shape.
    pub fn op(&mut self, op: impl Into<Op>, inputs: &[NodeId], name: &str) -> Result<NodeId> {
        let id = self.op_unchecked(op, inputs, name)?;
        self.check_size(name)?;
        Ok(id)
    }

    /// [`Self::op`] without the size check (the infallible shorthands; the
    /// next checked op counts what they added).
    fn op_unchecked(&mut self, op: impl Into<Op>, inputs: &[NodeId], name: &str) -> Result<NodeId> {
        let op = op.into();
        let n = self.graph.nodes.len();
        if let Some(&bad) = inputs.iter().find(|&&j| j >= n) {
            return Err(Error::Shape(format!(
                "{name}: input node {bad} does not exist"
            )));
        }
        let shapes: Vec<Shape> = inputs.iter().map(|&j| self.shape(j)).collect();
        let shape = op
            .spec()
            .out_shape(&shapes)
            .map_err(|e| e.context(format!("node `{name}`")))?;
        let params = op
            .spec()
            .params(self.init)
            .into_iter()
            .map(|d| self.param(format!("{name}.{}", d.suffix), d.len, d.init))
            .collect();
        self.activation_values = self
            .activation_values
            .saturating_add(shape.per_sample() as u64);
        self.graph.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            params,
            shape,
            name: name.to_string(),
        });
        Ok(n)
    }

    fn param(&mut self, name: String, len: usize, init: ParamInit) -> ParamId {
        self.param_values = self.param_values.saturating_add(len as u64);
        self.graph.params.push(Param { name, len, init });
        self.graph.params.len() - 1
    }

    /// Adds an op whose shape rule cannot fail for these inputs (the
    /// shorthands below check what could).
    fn infallible(&mut self, op: impl Into<Op>, inputs: &[NodeId], name: &str) -> NodeId {
        match self.op_unchecked(op, inputs, name) {
            Ok(id) => id,
            // The shorthands only build ops whose shape rule holds for the
            // inputs they were given; reaching here is a bug of theirs.
            Err(e) => panic!("internal: {e}"),
        }
    }

    /// The input node, per-sample shape `h × w × c` (each at least 1).
    pub fn input(&mut self, h: usize, w: usize, c: usize) -> Result<NodeId> {
        let op = crate::ops::input::InputOp {
            shape: Shape::new(1, h, w, c),
        };
        self.op(op, &[], "input")
    }

    /// `x · 0`: zeros shaped like `x`, with `x` as its (liveness-only) input.
    pub fn zeros_like(&mut self, x: NodeId, name: &str) -> NodeId {
        let shape = self.shape(x);
        self.infallible(crate::ops::zeros::ZerosOp { shape }, &[x], name)
    }

    /// Zeros of per-sample shape `shape`, with `x` as its (liveness-only)
    /// input: DARTS's `none` at stride 2 (`x[:, :, ::2, ::2] · 0`).
    pub fn zeros(&mut self, x: NodeId, shape: Shape, name: &str) -> Result<NodeId> {
        self.op(crate::ops::zeros::ZerosOp { shape }, &[x], name)
    }

    /// A convolution without bias (see [`ConvLayer`]), its weight drawn by
    /// the builder's init scheme.
    pub fn conv(&mut self, x: NodeId, layer: ConvLayer, name: &str) -> Result<NodeId> {
        let spec = layer.spec(self.shape(x).c);
        self.op(spec, &[x], name)
    }

    /// BatchNorm in training mode, gamma = 1, beta = 0.
    pub fn batchnorm(&mut self, x: NodeId, name: &str) -> NodeId {
        let spec = BatchNormSpec {
            channels: self.shape(x).c,
            eps: BN_EPS,
        };
        self.infallible(spec, &[x], name)
    }

    /// A ReLU of `x` (a counted ReLU: its input's sign bits are part of the code).
    pub fn relu(&mut self, x: NodeId, name: &str) -> NodeId {
        self.infallible(crate::ops::relu::ReluOp, &[x], name)
    }

    /// Pooling of `x` over a square `k × k` window at `stride`, with `pad` implicit
    /// padding per side (at most `k / 2`); an average excludes the padding from its
    /// divisor (see [`PoolSpec`]).
    pub fn pool(
        &mut self,
        x: NodeId,
        kind: PoolKind,
        k: usize,
        stride: usize,
        pad: usize,
        name: &str,
    ) -> Result<NodeId> {
        let spec = PoolSpec {
            kind,
            k,
            stride,
            pad,
            count_include_pad: false,
        };
        self.op(spec, &[x], name)
    }

    /// Sum of `xs` (one input is returned as is; none is an error).
    pub fn add(&mut self, xs: &[NodeId], name: &str) -> Result<NodeId> {
        match xs {
            [] => Err(Error::Shape(format!("{name}: add of no inputs"))),
            [x] => Ok(*x),
            _ => self.op(crate::ops::add::AddOp, xs, name),
        }
    }

    /// Channel concatenation of `xs` in order (one input is returned as is;
    /// none is an error).
    pub fn concat(&mut self, xs: &[NodeId], name: &str) -> Result<NodeId> {
        match xs {
            [x] => Ok(*x),
            _ => self.op(crate::ops::concat::ConcatOp, xs, name),
        }
    }

    /// `x[:, top.., left.., :]` to the bottom-right corner.
    pub fn crop(&mut self, x: NodeId, top: usize, left: usize, name: &str) -> Result<NodeId> {
        let spec = CropSpec::to_end(self.shape(x), top, left)?;
        self.op(spec, &[x], name)
    }

    /// The first `c` channels of `x` (returned as is when it has `c`).
    pub fn first_channels(&mut self, x: NodeId, c: usize, name: &str) -> Result<NodeId> {
        if self.shape(x).c == c {
            return Ok(x);
        }
        let spec = CropSpec::first_channels(self.shape(x), c)?;
        self.op(spec, &[x], name)
    }

    /// The per-channel mean over all pixels of `x`: per-sample shape `1 × 1 × c`.
    pub fn global_avg_pool(&mut self, x: NodeId, name: &str) -> NodeId {
        self.infallible(crate::ops::global_avg_pool::GlobalAvgPoolOp, &[x], name)
    }

    /// A linear layer with bias, weight and bias uniform ±1/√inputs (or
    /// NASWOT's init).
    pub fn linear(&mut self, x: NodeId, outputs: usize, name: &str) -> Result<NodeId> {
        let spec = LinearSpec {
            inputs: self.shape(x).per_sample(),
            outputs,
        };
        self.op(spec, &[x], name)
    }

    /// Marks `node` as the output of the next block (the stem, a cell, a
    /// reduction block): [`Graph::blocks`].
    pub fn mark_block(&mut self, node: NodeId) {
        self.graph.blocks.push(node);
    }

    /// Finishes the graph with `output` as its output node.
    pub fn finish(mut self, output: NodeId) -> Graph {
        self.graph.output = output;
        self.graph
    }
}
