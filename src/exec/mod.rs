//! Execution: a network ([`crate::net::Graph`]) planned for one batch
//! size ([`plan`]) and run by the one walker ([`walk`]) on either device:
//! the CPU runner ([`cpu`]) on host tensors with the CPU ops, or the GPU
//! scorer ([`cuda`]: the executor and its lanes) on device buffers with
//! the ops' CUDA launches. Both end in the Hamming matrix of the counted
//! ReLUs ([`crate::score::ReluCodes`]). Also here: the memory estimate of
//! a planned cell ([`budget`]) and the table of every kernel the crate
//! launches ([`kernel_table`]), which needs the op registry.

pub mod budget;
pub mod cpu;
pub mod cpu_lanes;
pub mod cuda;
pub mod kernel_table;
pub mod plan;
pub mod walk;

/// Wall time of the two phases of a forward pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ForwardTiming {
    /// Ops of the network (convolutions, BatchNorm, pools, …).
    pub ops_s: f64,
    /// Sign-bit packing and the Hamming accumulation.
    pub codes_s: f64,
    /// `ops_s` split by op kind (see [`crate::net::Op::kind`]), in first-run order.
    pub by_op: Vec<(&'static str, f64)>,
}

impl ForwardTiming {
    /// Adds `seconds` to op kind `kind`.
    pub fn add_op(&mut self, kind: &'static str, seconds: f64) {
        match self.by_op.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, t)) => *t += seconds,
            None => self.by_op.push((kind, seconds)),
        }
    }
}

/// Wall time of one cell's scoring, by phase.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CellTiming {
    /// Building the network and drawing its weights.
    pub build_s: f64,
    /// The network's ops.
    pub ops_s: f64,
    /// Sign-bit packing and Hamming accumulation.
    pub codes_s: f64,
    /// K_H, Cholesky and the metrics.
    pub logdet_s: f64,
    /// `ops_s` by op kind.
    pub by_op: Vec<(&'static str, f64)>,
    /// The passes and reductions of the measures beyond the scoring pass.
    pub measures_s: f64,
    /// `measures_s` by gradient pass (`cross-entropy`, `halves`,
    /// `input jacobian`); the rest of it is the reductions.
    pub measures_by_pass: Vec<(&'static str, f64)>,
}

impl CellTiming {
    /// Sum of the five phases, in seconds (`by_op` splits `ops_s`, so it is not added).
    pub fn total_s(&self) -> f64 {
        self.build_s + self.ops_s + self.codes_s + self.logdet_s + self.measures_s
    }
}
