//! The GPU side of execution: the scorer that runs plans on a
//! [`CudaDevice`](crate::runtime::cuda::CudaDevice) ([`executor`]) and the
//! lanes it runs them on ([`lane`]: one CUDA stream and host thread each,
//! several cells in flight).

pub mod executor;
pub mod lane;
