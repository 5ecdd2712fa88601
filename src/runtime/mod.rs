//! The runtime the ops run on: which device a run asks for
//! ([`DeviceKind`]), host memory budgets ([`budget`]), and the CUDA
//! runtime ([`cuda`]: device and host memory, `CudaDevice` on the driver or
//! its host emulation, NVRTC and the CUBIN cache, the kernel references,
//! the launches of the kernels that are not ops). Nothing here knows an op,
//! a network or a plan: those layers are above it.

pub mod budget;
pub mod cuda;

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

/// The CUDA sources (`cuda/*.cu`, `src/ops/*/*.cu`), embedded by `build.rs` for NVRTC.
pub mod cuda_sources {
    include!(concat!(env!("OUT_DIR"), "/cuda_sources.rs"));
}
