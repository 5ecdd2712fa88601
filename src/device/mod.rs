//! Compute devices. The CPU device runs a [`crate::net::Graph`] on host
//! tensors with the CPU ops of [`crate::ops`]; a CUDA device slots in beside
//! it with the same entry point (a graph, its parameters and a batch in; the
//! Hamming matrix of the counted ReLUs out).

pub mod budget;
pub mod cpu;
pub mod cuda;
pub mod plan;
pub mod run;

use crate::error::{Error, Result};

/// Which device computes: `auto` (the first GPU when one works, else the
/// CPU), `cpu`, `cuda` (GPU 0) or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The first GPU when one works, else the CPU.
    Auto,
    /// The CPU (the rayon thread pool).
    Cpu,
    /// The CUDA GPU of this ordinal.
    Cuda(usize),
}

impl std::str::FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceKind::Auto),
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceKind::Cuda(n)),
                _ => Err(Error::Arg(format!(
                    "unknown device `{other}` (expected auto, cpu, cuda or cuda:N)"
                ))),
            },
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceKind::Auto => f.write_str("auto"),
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// What a forward pass over the scoring batch produces for the scores.
#[derive(Clone, Debug, PartialEq)]
pub struct ReluCodes {
    /// Images in the scoring batch (B): `hamming` is B×B.
    pub batch: usize,
    /// N_A: counted ReLU units per sample.
    pub n_units: u64,
    /// H[i, j] summed over every counted ReLU, B×B row-major, exact.
    pub hamming: Vec<u64>,
    /// SWAP: distinct per-unit sign patterns over the batch, when the pass
    /// was asked to count them.
    pub swap: Option<u64>,
}

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

/// The CUDA sources (`cuda/*.cu`, `src/ops/*/*.cu`), embedded by `build.rs` for NVRTC.
pub mod cuda_sources {
    include!(concat!(env!("OUT_DIR"), "/cuda_sources.rs"));
}
