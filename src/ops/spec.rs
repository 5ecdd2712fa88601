//! What every op says about itself, device-free: its shape rule, its
//! parameters, and the facts the planners need (which fusions it takes
//! part in, what its backward pass reads). Implemented once per op, in
//! the op's own folder (`src/ops/<op>/mod.rs`); the planners and walkers
//! ask these questions instead of matching on ops.

use crate::error::Result;
use crate::param::{InitScheme, ParamInit};
use crate::tensor::Shape;

/// A parameter tensor an op owns: `<node name>.<suffix>`, `len` values,
/// drawn by `init` (the name seeds its random stream, `net::rng`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamDecl {
    /// Suffix of the parameter's name after `<node name>.`: `weight`, `bias`, `gamma`, `beta`.
    pub suffix: &'static str,
    /// Number of f32 values.
    pub len: usize,
    /// How the values are drawn.
    pub init: ParamInit,
}

/// The part an op plays for the scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The input batch (no computation).
    Input,
    /// A ReLU: every ReLU of a pruned graph is counted, its input's sign
    /// bits are part of the code (docs/scores.md, "Codes, the Hamming matrix and K_H").
    CountedRelu,
    /// Everything else.
    Compute,
}

/// Whether an op may write its output over one of its inputs' buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// Never: the output is a buffer of its own.
    Never,
    /// Into any input it reads once and is the last reader and only
    /// holder of (Add: `acc += others`).
    OwnedInput,
    /// Over its input, when it normalises from partial sums its input's
    /// producer emitted (BatchNorm after a conv with fused statistics).
    WithInputPartials,
}

/// The device-free description of an op. Every method but `kind` and
/// `out_shape` has a default that says "nothing special".
pub trait OpSpec {
    /// A short name of the op's kind, for timings, profiles and messages.
    fn kind(&self) -> &'static str;

    /// The name a profile files this op's time under: its kind, or a
    /// finer one where one kind runs different kernels (a conv: `conv2d
    /// 3x3`, `conv2d 1x1`, `conv2d dw`, …), so a bench can report the time
    /// and FLOP rate of each kernel family.
    fn profile_kind(&self) -> &'static str {
        self.kind()
    }

    /// The per-sample output shape (`n = 1`) for the per-sample shapes of
    /// the inputs, in order; an error names what does not fit.
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape>;

    /// The parameter tensors the op owns, in the order a node's `params`
    /// lists them; `scheme` picks their initialisation.
    fn params(&self, scheme: InitScheme) -> Vec<ParamDecl> {
        let _ = scheme;
        Vec::new()
    }

    /// Floating-point operations per sample (a multiply-add counts 2), for
    /// throughput figures.
    fn flops(&self, inputs: &[Shape], out: Shape) -> u64 {
        let _ = (inputs, out);
        0
    }

    /// A layer the field's training-free measures hook (PyTorch's
    /// `nn.Conv2d` and `nn.Linear`): its first parameter is its weight.
    fn is_weight_layer(&self) -> bool {
        false
    }

    /// A layer that normalises by the batch's statistics (BatchNorm):
    /// measures that take the network without it (NASLib's `bn=False`
    /// copies, `synflow`) replace it by the identity.
    fn normalises_batch(&self) -> bool {
        false
    }

    /// The op's part for the scores.
    fn role(&self) -> Role {
        Role::Compute
    }

    /// Whether the op applies a ReLU that feeds it while it loads its
    /// input, so that ReLU needs no buffer (a conv).
    ///
    /// An op that says yes is handed, when its input 0 is a counted ReLU,
    /// the ReLU's *input* as input 0 and `relu_input = true`, on both
    /// backends and in both passes. It must then apply `max(x, 0)` as it
    /// loads input 0 in the forward, and in the backward mask input 0's
    /// gradient by `x > 0` (the ReLU's backward, fused in); the training
    /// plan keeps that input for the backward. Every reader that fuses a
    /// ReLU does so, even when another reader (one that does not fuse)
    /// makes the planner store the ReLU too.
    fn fuses_relu_input(&self) -> bool {
        false
    }

    /// For an op that can emit per-channel partial sums of its output from
    /// its epilogue (a conv), how many partial rows (`parts`) it writes for
    /// an input of shape `input` (batch included).
    fn partials_out(&self, input: Shape) -> Result<Option<usize>> {
        let _ = input;
        Ok(None)
    }

    /// For an op that normalises by per-channel statistics of its input (a
    /// BatchNorm): the partial rows of the f64 scratch it sums its input
    /// into when no producer emitted them, for an input of shape `input`
    /// (batch included), and the channel count.
    fn partials_in(&self, input: Shape) -> Option<(usize, usize)> {
        let _ = input;
        None
    }

    /// Whether, and how, the op may write over an input's buffer.
    fn in_place(&self) -> InPlace {
        InPlace::Never
    }

    /// Whether the op can pack the sign bits of the tensor it stores while
    /// storing it, when a counted ReLU reads that tensor.
    fn packs_on_store(&self) -> bool {
        false
    }

    /// Whether a gradient flows through the op to its inputs (`x · 0` does
    /// not).
    fn passes_gradient(&self) -> bool {
        true
    }

    /// Whether the op's backward pass reads its inputs' values (so
    /// training keeps them until then).
    fn backward_reads_inputs(&self) -> bool {
        false
    }

    /// f32 values the op's forward pass saves for its backward pass, for an
    /// output of shape `out` (BatchNorm: each channel's mean and 1/std).
    fn saved_len(&self, out: Shape) -> usize {
        let _ = out;
        0
    }

    /// Scratch the CUDA backward pass needs for an input of shape `input`
    /// (batch included): (f32, f64) elements (a conv's split weight
    /// gradient, a BatchNorm's partial sums).
    fn backward_scratch(&self, input: Shape) -> Result<(usize, usize)> {
        let _ = input;
        Ok((0, 0))
    }
}
