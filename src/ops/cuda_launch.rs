//! Helpers shared by the CUDA launch functions of the ops
//! (`src/ops/<op>/cuda.rs`): the 1-D grid-stride configuration, the error
//! mapping, and the alignment test that picks a float4 kernel.

use crate::device::cuda::CudaDevice;
use crate::error::Error;
use cudarc::driver::{DevicePtr, DriverError, LaunchConfig};

/// Threads per block of every elementwise / one-thread-per-output kernel.
pub(crate) const THREADS: u32 = 256;

/// Grid-stride kernels never need more blocks than this to fill a GPU; it
/// also keeps `grid_dim.x` far inside its 2³¹ − 1 limit.
const MAX_GRID_BLOCKS: u64 = 1 << 16;

/// A 1-D grid-stride configuration with one thread per work item (capped
/// at [`MAX_GRID_BLOCKS`] blocks of [`THREADS`]; the kernels loop).
pub(crate) fn grid_1d(work: u64) -> LaunchConfig {
    let blocks = work.div_ceil(u64::from(THREADS)).clamp(1, MAX_GRID_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Maps a launch failure to [`Error::Device`] naming the kernel.
pub(crate) fn launch_err(kernel: &'static str) -> impl Fn(DriverError) -> Error {
    move |e| Error::Device(format!("CUDA launch of `{kernel}`: {e}"))
}

/// Whether a device buffer starts on a 16-byte boundary (a float4 load or
/// store needs it). Allocations are 256-byte aligned; a view at an offset
/// may not be.
pub(crate) fn aligned16<T, P: DevicePtr<T>>(dev: &CudaDevice, p: &P) -> bool {
    let (ptr, _record) = p.device_ptr(dev.stream());
    ptr % 16 == 0
}
