//! The network IR: a DAG of ops over NHWC tensors, with named parameters.
//!
//! A search space builds a [`Graph`] with [`GraphBuilder`]; [`Graph::prune`]
//! removes every node whose result cannot reach the output (DESIGN.md §1:
//! those ReLUs are not counted), and [`init`] draws the parameters from the
//! counter-based generator. Devices execute the graph node by node in order
//! (nodes are stored topologically: every input id is smaller than its user's).

pub mod init;
pub mod rng;

use crate::error::{Error, Result};
use crate::ops::batchnorm::BatchNormSpec;
use crate::ops::conv2d::Conv2dSpec;
use crate::ops::crop::CropSpec;
use crate::ops::linear::LinearSpec;
use crate::ops::pool::{PoolKind, PoolSpec};
use crate::tensor::Shape;

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;
/// Index of a parameter tensor in [`Graph::params`].
pub type ParamId = usize;

/// BatchNorm epsilon used everywhere (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;

/// One operation of the network.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The input batch.
    Input,
    /// `x · 0`: zeros of its input's shape. A cell node all of whose incoming
    /// edges are `none` holds this; like the reference's `x.mul(0.)` it keeps
    /// its input live, so the layers before a cell that ignores its input
    /// still reach the output (and their ReLUs still count).
    Zeros,
    Conv2d {
        spec: Conv2dSpec,
        weight: ParamId,
    },
    BatchNorm {
        spec: BatchNormSpec,
        gamma: ParamId,
        beta: ParamId,
    },
    /// A ReLU. Every ReLU left after pruning is a counted ReLU: its input's
    /// sign bits are part of the code (DESIGN.md §1).
    Relu,
    Pool(PoolSpec),
    /// Elementwise sum of all inputs, in input order.
    Add,
    GlobalAvgPool,
    Linear {
        spec: LinearSpec,
        weight: ParamId,
        bias: ParamId,
    },
    /// Channel concatenation of all inputs, in input order (NHWC, along C).
    Concat,
    /// A window of the input's rows, columns and channels (DARTS's
    /// factorized reduce reads `x[:, 1:, 1:]`; NB101 truncates channels).
    Crop(CropSpec),
}

impl Op {
    /// A short name of the op's kind, for timings and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Zeros => "zeros",
            Op::Conv2d { .. } => "conv2d",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Relu => "relu",
            Op::Pool(_) => "pool",
            Op::Add => "add",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Concat => "concat",
            Op::Crop(_) => "crop",
        }
    }
}

/// A node: its op, its input nodes and its per-sample output shape (`n = 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    pub name: String,
}

/// How a parameter tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// Uniform in [-bound, bound), PyTorch's default for conv and linear.
    Uniform { bound: f32 },
    /// Every element equal (BatchNorm gamma = 1, beta = 0).
    Const(f32),
    /// Normal with mean 0 and this standard deviation (Box–Muller on the
    /// host in f64, rounded to f32: a GPU must upload these values rather
    /// than draw them, its log/cos are not bitwise the host's).
    Normal { std: f32 },
}

/// How a network's conv and linear weights are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InitScheme {
    /// PyTorch's default: uniform ±1/√fan_in for conv and linear weights
    /// and the linear bias (DESIGN.md, "Conventions").
    #[default]
    Default,
    /// The NASWOT code's NB101 init: conv weights N(0, 2 / (k²·cout))
    /// (He normal, fan-out), linear weights N(0, 0.01²), linear bias 0.
    Naswot,
}

impl std::str::FromStr for InitScheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(InitScheme::Default),
            "naswot" => Ok(InitScheme::Naswot),
            other => Err(Error::Arg(format!(
                "unknown init `{other}` (expected default or naswot)"
            ))),
        }
    }
}

/// A parameter tensor: its name (which also seeds its values), length and init.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub len: usize,
    pub init: ParamInit,
}

/// A whole network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub params: Vec<Param>,
    pub output: NodeId,
}

impl Graph {
    /// Per-sample shape of the input node (errors if the graph has none).
    pub fn input_shape(&self) -> Result<Shape> {
        self.nodes
            .iter()
            .find(|n| n.op == Op::Input)
            .map(|n| n.shape)
            .ok_or_else(|| Error::Shape("graph has no input node".into()))
    }

    /// Ids of the counted ReLUs (every ReLU of a pruned graph).
    pub fn relus(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].op == Op::Relu)
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
            if n.op == Op::Input {
                live[i] = true;
            }
        }
        let mut node_map = vec![usize::MAX; self.nodes.len()];
        let mut param_map = vec![usize::MAX; self.params.len()];
        let mut out = Graph {
            nodes: Vec::new(),
            params: Vec::new(),
            output: 0,
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
            let op = match n.op.clone() {
                Op::Conv2d { spec, weight } => Op::Conv2d {
                    spec,
                    weight: map_param(weight, &mut out),
                },
                Op::BatchNorm { spec, gamma, beta } => Op::BatchNorm {
                    spec,
                    gamma: map_param(gamma, &mut out),
                    beta: map_param(beta, &mut out),
                },
                Op::Linear { spec, weight, bias } => Op::Linear {
                    spec,
                    weight: map_param(weight, &mut out),
                    bias: map_param(bias, &mut out),
                },
                op => op,
            };
            node_map[i] = out.nodes.len();
            out.nodes.push(Node {
                op,
                inputs: n.inputs.iter().map(|&j| node_map[j]).collect(),
                shape: n.shape,
                name: n.name.clone(),
            });
        }
        out.output = node_map[self.output];
        out
    }

    /// Number of learnable values (conv and linear weights, linear biases,
    /// BatchNorm γ and β), as PyTorch's `sum(p.numel())` counts them.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.len).sum()
    }

    /// Multiply-adds of all convs and linears for a batch of `batch` samples, times 2.
    pub fn flops(&self, batch: usize) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv2d { spec, .. } => {
                    let s = n.shape;
                    2 * (s.h * s.w * s.c * spec.fan_in()) as u64
                }
                Op::Linear { spec, .. } => 2 * (spec.inputs * spec.outputs) as u64,
                _ => 0,
            })
            .sum::<u64>()
            * batch as u64
    }
}

/// Builds a [`Graph`], inferring every node's shape as it goes.
#[derive(Default)]
pub struct GraphBuilder {
    graph: Graph,
    init: InitScheme,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder whose convs and linears draw their weights by `init`.
    pub fn with_init(init: InitScheme) -> Self {
        GraphBuilder {
            graph: Graph::default(),
            init,
        }
    }

    pub fn shape(&self, x: NodeId) -> Shape {
        self.graph.nodes[x].shape
    }

    fn push(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape, name: &str) -> NodeId {
        self.graph.nodes.push(Node {
            op,
            inputs,
            shape,
            name: name.to_string(),
        });
        self.graph.nodes.len() - 1
    }

    fn param(&mut self, name: String, len: usize, init: ParamInit) -> ParamId {
        self.graph.params.push(Param { name, len, init });
        self.graph.params.len() - 1
    }

    /// The input node, per-sample shape `h × w × c`.
    pub fn input(&mut self, h: usize, w: usize, c: usize) -> NodeId {
        self.push(Op::Input, vec![], Shape::new(1, h, w, c), "input")
    }

    /// `x · 0`: zeros shaped like `x`, with `x` as its (liveness-only) input.
    pub fn zeros_like(&mut self, x: NodeId, name: &str) -> NodeId {
        let shape = self.shape(x);
        self.push(Op::Zeros, vec![x], shape, name)
    }

    /// Zeros of per-sample shape `shape`, with `x` as its (liveness-only)
    /// input: DARTS's `none` op at stride 2 (`x[:, :, ::2, ::2] · 0`).
    pub fn zeros(&mut self, x: NodeId, shape: Shape, name: &str) -> NodeId {
        self.push(Op::Zeros, vec![x], shape.with_n(1), name)
    }

    /// A convolution without bias, weights uniform ±1/√fan_in.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        x: NodeId,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        groups: usize,
        name: &str,
    ) -> Result<NodeId> {
        let input = self.shape(x);
        let spec = Conv2dSpec {
            cin: input.c,
            cout,
            kh: k,
            kw: k,
            stride,
            pad,
            dilation,
            groups,
        };
        let shape = spec.out_shape(input)?;
        let init = match self.init {
            InitScheme::Default => ParamInit::Uniform {
                bound: (1.0 / (spec.fan_in() as f64).sqrt()) as f32,
            },
            InitScheme::Naswot => ParamInit::Normal {
                std: (2.0 / (k * k * cout) as f64).sqrt() as f32,
            },
        };
        let weight = self.param(format!("{name}.weight"), spec.weight_len(), init);
        Ok(self.push(Op::Conv2d { spec, weight }, vec![x], shape, name))
    }

    /// BatchNorm in training mode, gamma = 1, beta = 0.
    pub fn batchnorm(&mut self, x: NodeId, name: &str) -> NodeId {
        let shape = self.shape(x);
        let spec = BatchNormSpec {
            channels: shape.c,
            eps: BN_EPS,
        };
        let gamma = self.param(format!("{name}.gamma"), shape.c, ParamInit::Const(1.0));
        let beta = self.param(format!("{name}.beta"), shape.c, ParamInit::Const(0.0));
        self.push(Op::BatchNorm { spec, gamma, beta }, vec![x], shape, name)
    }

    pub fn relu(&mut self, x: NodeId, name: &str) -> NodeId {
        let shape = self.shape(x);
        self.push(Op::Relu, vec![x], shape, name)
    }

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
        let shape = spec.out_shape(self.shape(x))?;
        Ok(self.push(Op::Pool(spec), vec![x], shape, name))
    }

    /// Sum of `xs` (one input is returned as is; none is an error).
    pub fn add(&mut self, xs: &[NodeId], name: &str) -> Result<NodeId> {
        let (&first, rest) = xs
            .split_first()
            .ok_or_else(|| Error::Shape(format!("{name}: add of no inputs")))?;
        if rest.is_empty() {
            return Ok(first);
        }
        let shape = self.shape(first);
        for &x in rest {
            if self.shape(x) != shape {
                return Err(Error::Shape(format!(
                    "{name}: add of {shape} and {}",
                    self.shape(x)
                )));
            }
        }
        Ok(self.push(Op::Add, xs.to_vec(), shape, name))
    }

    /// Channel concatenation of `xs` in order (one input is returned as is;
    /// none is an error).
    pub fn concat(&mut self, xs: &[NodeId], name: &str) -> Result<NodeId> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        let shapes: Vec<Shape> = xs.iter().map(|&x| self.shape(x)).collect();
        let shape = crate::ops::concat::out_shape(&shapes)
            .map_err(|e| Error::Shape(format!("{name}: {e}")))?;
        Ok(self.push(Op::Concat, xs.to_vec(), shape, name))
    }

    /// `x[:, top.., left.., :]` to the bottom-right corner.
    pub fn crop(&mut self, x: NodeId, top: usize, left: usize, name: &str) -> Result<NodeId> {
        let spec = CropSpec::to_end(self.shape(x), top, left)?;
        let shape = spec.out_shape(self.shape(x))?;
        Ok(self.push(Op::Crop(spec), vec![x], shape, name))
    }

    /// The first `c` channels of `x` (returned as is when it has `c`).
    pub fn first_channels(&mut self, x: NodeId, c: usize, name: &str) -> Result<NodeId> {
        if self.shape(x).c == c {
            return Ok(x);
        }
        let spec = CropSpec::first_channels(self.shape(x), c)?;
        let shape = spec.out_shape(self.shape(x))?;
        Ok(self.push(Op::Crop(spec), vec![x], shape, name))
    }

    pub fn global_avg_pool(&mut self, x: NodeId, name: &str) -> NodeId {
        let s = self.shape(x);
        self.push(Op::GlobalAvgPool, vec![x], Shape::new(1, 1, 1, s.c), name)
    }

    /// A linear layer with bias, weight and bias uniform ±1/√inputs.
    pub fn linear(&mut self, x: NodeId, outputs: usize, name: &str) -> NodeId {
        let spec = LinearSpec {
            inputs: self.shape(x).per_sample(),
            outputs,
        };
        let bound = (1.0 / (spec.fan_in() as f64).sqrt()) as f32;
        let (w_init, b_init) = match self.init {
            InitScheme::Default => (ParamInit::Uniform { bound }, ParamInit::Uniform { bound }),
            InitScheme::Naswot => (ParamInit::Normal { std: 0.01 }, ParamInit::Const(0.0)),
        };
        let weight = self.param(format!("{name}.weight"), spec.weight_len(), w_init);
        let bias = self.param(format!("{name}.bias"), outputs, b_init);
        self.push(
            Op::Linear { spec, weight, bias },
            vec![x],
            Shape::new(1, 1, 1, outputs),
            name,
        )
    }

    /// Finishes the graph with `output` as its output node.
    pub fn finish(mut self, output: NodeId) -> Graph {
        self.graph.output = output;
        self.graph
    }
}
