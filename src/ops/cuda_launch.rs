//! Helpers shared by the CUDA launch functions of the ops
//! (`src/ops/<op>/cuda.rs`): the 1-D grid-stride configuration, the error
//! and the alignment test that picks a float4 kernel.

use crate::error::{Error, Result};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::{AsDView, DViewMut, LaunchConfig};

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

/// Whether a device buffer starts on a 16-byte boundary (a float4 load or
/// store needs it). Allocations are 256-byte aligned; a view at an offset
/// may not be.
pub(crate) fn aligned16<T: bytemuck::Pod, V: AsDView<T>>(_dev: &CudaDevice, p: &V) -> bool {
    p.dview().device_ptr() % 16 == 0
}

/// Where a fused kernel packs the sign bits of the tensor it writes (the
/// layout of `runtime::cuda::kernels::pack_signs_into`): sample `b`'s words
/// go to `codes[b * row_stride + word_offset ..]`.
pub struct PackDest<'a, 'b> {
    /// The code buffer the bits go to.
    pub codes: &'a mut DViewMut<'b, u64>,
    /// u64 words between two samples' rows of `codes`.
    pub row_stride: usize,
    /// Word of each sample's row where this tensor's bits start.
    pub word_offset: usize,
}

/// Checks a packing of `len` values as `batch` samples into `dest`;
/// returns `(n per sample, words per sample)`.
pub(crate) fn check_pack(
    op: &str,
    len: usize,
    batch: usize,
    dest: &PackDest<'_, '_>,
) -> Result<(usize, usize)> {
    if batch == 0 || !len.is_multiple_of(batch) {
        return Err(Error::Shape(format!(
            "{op}: {len} values do not split into {batch} samples to pack"
        )));
    }
    let n = len / batch;
    let wps = n.div_ceil(64);
    if dest
        .word_offset
        .checked_add(wps)
        .is_none_or(|e| e > dest.row_stride)
        || batch
            .checked_mul(dest.row_stride)
            .is_none_or(|t| t > dest.codes.len())
    {
        return Err(Error::Shape(format!(
            "{op}: {wps} code words per sample at word {} of rows of {} do not fit \
             {batch} rows in {} words",
            dest.word_offset,
            dest.row_stride,
            dest.codes.len()
        )));
    }
    Ok((n, wps))
}

/// The grid of a fused packing kernel: one warp per code word (8 per
/// 256-thread block), grid-stride beyond [`MAX_GRID_BLOCKS`].
pub(crate) fn pack_grid(words: u64) -> LaunchConfig {
    let blocks = words.div_ceil(8).clamp(1, MAX_GRID_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}
