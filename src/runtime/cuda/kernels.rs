//! Launch functions of the kernels in `cuda/`, one per kernel. Each checks
//! the buffer sizes against the layout its kernel assumes (stated again
//! here), so a launch never reads or writes past a buffer, then queues the
//! kernel on the device's stream (asynchronous: copy back or
//! [`CudaDevice::synchronize`] to wait).
//!
//! | kernel | source | CPU twin |
//! |---|---|---|
//! | [`init_uniform`] | `cuda/init.cu` | `net::init::init_param` |
//! | [`init_params_table`] | `cuda/init.cu` | `net::init::init_params` |
//! | [`pack_signs`], [`pack_signs_into`] | `cuda/codes.cu` | `score::codes::pack_signs` |
//! | [`kernel_from_hamming`] | `cuda/hamming.cu` | `score::hamming::kernel_from_hamming` |
//! | [`hamming_accumulate`] | `cuda/hamming.cu` | `score::hamming::hamming_accumulate` |
//! | [`cholesky_logdet`] | `cuda/logdet.cu` | `score::logdet::cholesky_logdet` |
//! | [`sgd_update`] | `cuda/sgd.cu` | the SGD step of `train` |
//! | [`sum_parts`] | `cuda/reduce.cu` | the f64 loops over parts in the ops' CPU weight gradients |

use super::CudaDevice;
use crate::error::{Error, Result};
use crate::runtime::cuda::{DView, DViewMut, KernelRef, LaunchConfig};

/// `init_uniform` of `cuda/init.cu`.
pub const INIT_UNIFORM: KernelRef = KernelRef::forward("init", "init_uniform");
/// `pack_signs` of `cuda/codes.cu`.
pub const PACK_SIGNS: KernelRef = KernelRef::forward("codes", "pack_signs");
/// `hamming_accumulate` of `cuda/hamming.cu`.
pub const HAMMING_ACCUMULATE: KernelRef = KernelRef::forward("hamming", "hamming_accumulate");
/// `kernel_from_hamming` of `cuda/hamming.cu`.
pub const KERNEL_FROM_HAMMING: KernelRef = KernelRef::forward("hamming", "kernel_from_hamming");
/// `init_params_table` of `cuda/init.cu`.
pub const INIT_PARAMS_TABLE: KernelRef = KernelRef::forward("init", "init_params_table");
/// `cholesky_logdet` of `cuda/logdet.cu`.
pub const CHOLESKY_LOGDET: KernelRef = KernelRef::forward("logdet", "cholesky_logdet");
/// `sgd_update` of `cuda/sgd.cu`.
pub const SGD_UPDATE: KernelRef = KernelRef::backward("sgd", "sgd_update");
/// `sum_parts_f64` of `cuda/reduce.cu`.
pub const SUM_PARTS_F64: KernelRef = KernelRef::backward("reduce", "sum_parts_f64");

/// The kernels of `cuda/` (those that are not ops), for the kernel table.
pub const KERNELS: &[KernelRef] = &[
    INIT_UNIFORM,
    PACK_SIGNS,
    HAMMING_ACCUMULATE,
    KERNEL_FROM_HAMMING,
    INIT_PARAMS_TABLE,
    CHOLESKY_LOGDET,
    SGD_UPDATE,
    SUM_PARTS_F64,
];

/// Grid-stride kernels never need more blocks than this to fill a GPU
/// (132 SMs × 16 resident 256-thread blocks is ~2 K); it also keeps
/// `grid_dim.x` far inside its 2³¹ − 1 limit.
const MAX_GRID_BLOCKS: u64 = 1 << 16;

/// A 1-D grid-stride configuration covering `work` items at `per_block`
/// items per block.
fn grid_1d(work: u64, per_block: u64, threads: u32) -> LaunchConfig {
    let blocks = work.div_ceil(per_block).clamp(1, MAX_GRID_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Fills `out` with the seeded uniform values of one parameter tensor:
/// `out[i] = uniform_pm1(key, i) * bound`, `key = stream_key(seed,
/// name_id(name))` (see `net::rng`), bit-identical to
/// `net::init::init_param` with `ParamInit::Uniform { bound }`.
///
/// Layout: `out` is the parameter's `len` f32 in the op's own weight order.
pub fn init_uniform(
    dev: &CudaDevice,
    out: &mut DViewMut<'_, f32>,
    key: u64,
    bound: f32,
) -> Result<()> {
    let len = out.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let f = dev.kernel(INIT_UNIFORM)?;
    let cfg = grid_1d(len, 256, 256);
    let mut b = dev.launch_builder(&f);
    b.arg(out).arg(&len).arg(&key).arg(&bound);
    // SAFETY: the arguments match `init_uniform(float* out, u64 len, u64 key,
    // float bound)` in type and order, and the kernel writes only
    // out[0..len), the whole view.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Packs the sign bits of `batch` samples into `out`; returns
/// `words_per_sample`. Same result as `score::codes::pack_signs`.
///
/// Layout: `x` is f32 `[batch][n]` sample-major (`n = x.len() / batch`);
/// `out` is u64 `[batch][words_per_sample]` with `words_per_sample =
/// n.div_ceil(64)`: unit `u` of sample `b` is bit `u % 64` of word
/// `b * words_per_sample + u / 64`, 1 iff `x > 0.0`, padding bits 0.
///
/// Errors when `batch == 0`, `x.len()` is not a multiple of `batch`, or
/// `out.len() != batch * words_per_sample`.
pub fn pack_signs(
    dev: &CudaDevice,
    x: &DView<'_, f32>,
    batch: usize,
    out: &mut DViewMut<'_, u64>,
) -> Result<usize> {
    if batch == 0 {
        return Err(Error::Arg("pack_signs: batch must be > 0".into()));
    }
    let wps = (x.len() / batch).div_ceil(64);
    if out.len() != batch * wps {
        return Err(Error::Shape(format!(
            "pack_signs: output has {} words, {batch} samples of {} units need {}",
            out.len(),
            x.len() / batch,
            batch * wps
        )));
    }
    pack_signs_into(dev, x, batch, out, wps, 0)
}

/// [`pack_signs`] into rows of `row_stride` words: sample `b`'s
/// `words_per_sample` words go to `out[b * row_stride + word_offset ..]`,
/// and no other word of `out` is written (a plan packs several layers side
/// by side in one row). Returns `words_per_sample`.
///
/// Errors when `batch == 0`, `x.len()` is not a multiple of `batch`, or the
/// rows do not fit: `word_offset + words_per_sample > row_stride` or
/// `out.len() < batch * row_stride`.
pub fn pack_signs_into(
    dev: &CudaDevice,
    x: &DView<'_, f32>,
    batch: usize,
    out: &mut DViewMut<'_, u64>,
    row_stride: usize,
    word_offset: usize,
) -> Result<usize> {
    if batch == 0 {
        return Err(Error::Arg("pack_signs: batch must be > 0".into()));
    }
    if !x.len().is_multiple_of(batch) {
        return Err(Error::Shape(format!(
            "pack_signs: {} floats do not split into {batch} equal samples",
            x.len()
        )));
    }
    let n = x.len() / batch;
    let wps = n.div_ceil(64);
    if word_offset.checked_add(wps).is_none_or(|e| e > row_stride)
        || batch.checked_mul(row_stride).is_none_or(|t| t > out.len())
    {
        return Err(Error::Shape(format!(
            "pack_signs: {wps} words per sample at word {word_offset} of rows of \
             {row_stride} do not fit {batch} rows in {} words",
            out.len()
        )));
    }
    let total = (batch * wps) as u64;
    if total == 0 {
        return Ok(wps);
    }
    let f = dev.kernel(PACK_SIGNS)?;
    // 256 threads = 8 warps = 8 words per block per grid-stride step.
    let cfg = grid_1d(total, 8, 256);
    let (batch_u, n_u, wps_u) = (batch as u64, n as u64, wps as u64);
    let (stride_u, offset_u) = (row_stride as u64, word_offset as u64);
    let mut b = dev.launch_builder(&f);
    b.arg(x)
        .arg(out)
        .arg(&batch_u)
        .arg(&n_u)
        .arg(&wps_u)
        .arg(&stride_u)
        .arg(&offset_u);
    // SAFETY: the arguments match `pack_signs(const float* x, u64* out,
    // u64 batch, u64 n, u64 words_per_sample, u64 row_stride, u64
    // word_offset)`; the kernel reads x[0..batch*n) and writes
    // out[b*row_stride + word_offset + w] for b < batch, w < wps, all below
    // batch*row_stride <= out.len() (checked above); blockDim (256) is a
    // multiple of 32 as its full-mask ballots need.
    unsafe { b.launch(cfg) }?;
    Ok(wps)
}

/// Tile edge and word chunk of `cuda/hamming.cu` (`HT_TILE`, `HT_K`).
const HT_TILE: u64 = 16;
const HT_K: u64 = 32;

/// Adds `multiplicity * popcount(c_i XOR c_j)` to `h[i][j]` and `h[j][i]`
/// for every pair `i != j` (diagonal untouched), like
/// `score::hamming::hamming_accumulate`.
///
/// Layout: `codes` is u64 `[batch][words_per_sample]` (the `Codes` layout,
/// padding bits 0); `h` is u64 `[batch][batch]` row-major.
///
/// Unlike the CPU twin, overflow of an entry is not detected (it wraps);
/// the caller keeps `multiplicity * N_A` below 2⁶⁴, as the scores do by
/// many orders of magnitude.
pub fn hamming_accumulate(
    dev: &CudaDevice,
    codes: &DView<'_, u64>,
    batch: usize,
    words_per_sample: usize,
    multiplicity: u64,
    h: &mut DViewMut<'_, u64>,
) -> Result<()> {
    if batch.checked_mul(words_per_sample) != Some(codes.len()) {
        return Err(Error::Shape(format!(
            "hamming: {} code words for batch {batch} x {words_per_sample} words",
            codes.len()
        )));
    }
    if batch.checked_mul(batch) != Some(h.len()) {
        return Err(Error::Shape(format!(
            "hamming: matrix has {} entries, batch {batch} needs {batch}x{batch}",
            h.len()
        )));
    }
    if batch < 2 || words_per_sample == 0 || multiplicity == 0 {
        return Ok(());
    }
    let tiles = (batch as u64).div_ceil(HT_TILE);
    if tiles > 65_535 {
        return Err(Error::Arg(format!(
            "hamming: batch {batch} is larger than the kernel's grid allows"
        )));
    }
    // Split the words over grid.z until about four blocks per SM run, but
    // give every split at least 4 chunks (128 words) so the two atomics per
    // pair and the staging stay small next to the popcounts.
    let active_tiles = tiles * (tiles + 1) / 2;
    let chunks = (words_per_sample as u64).div_ceil(HT_K);
    let target = 4 * u64::from(dev.info().multiprocessors.max(1));
    let splits = target
        .div_ceil(active_tiles)
        .min(chunks.div_ceil(4))
        .clamp(1, 65_535);
    let words_per_split = chunks.div_ceil(splits) * HT_K;
    let splits = (words_per_sample as u64).div_ceil(words_per_split);
    let cfg = LaunchConfig {
        grid_dim: (tiles as u32, tiles as u32, splits as u32),
        block_dim: (HT_TILE as u32, HT_TILE as u32, 1),
        shared_mem_bytes: 0,
    };
    let f = dev.kernel(HAMMING_ACCUMULATE)?;
    let (batch_u, wps_u) = (batch as u64, words_per_sample as u64);
    let mut b = dev.launch_builder(&f);
    b.arg(codes)
        .arg(h)
        .arg(&batch_u)
        .arg(&wps_u)
        .arg(&words_per_split)
        .arg(&multiplicity);
    // SAFETY: the arguments match `hamming_accumulate(const u64* codes,
    // u64* h, u64 batch, u64 words_per_sample, u64 words_per_split,
    // u64 multiplicity)`; it reads codes[0..batch*wps) and writes
    // h[0..batch²), both checked above; words_per_split is a multiple of
    // HT_K and the block is HT_TILE × HT_TILE, as the kernel assumes.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// K_H = N_A − H in f64 for `count` matrices, and a flag per matrix that
/// two codes are equal (an off-diagonal 0 in H), as `score::metrics`
/// treats them: singular.
///
/// Layout: `h` is u64 `[count][batch][batch]`; `k` is f64 of the same
/// layout (`k = n_units − h`, exact below 2⁵³); `dup` is i32 `[count]`, set
/// to 1 for a matrix with an off-diagonal zero and otherwise left as it was
/// (zero it first).
pub fn kernel_from_hamming(
    dev: &CudaDevice,
    h: &DView<'_, u64>,
    batch: usize,
    count: usize,
    n_units: u64,
    k: &mut DViewMut<'_, f64>,
    dup: &mut DViewMut<'_, i32>,
) -> Result<()> {
    let per = batch.checked_mul(batch);
    let total = per.and_then(|p| p.checked_mul(count));
    if total != Some(h.len()) || total != Some(k.len()) || dup.len() != count {
        return Err(Error::Shape(format!(
            "kernel_from_hamming: {} / {} / {} values for {count} matrices of {batch}x{batch}",
            h.len(),
            k.len(),
            dup.len()
        )));
    }
    if n_units >= 1 << 53 {
        return Err(Error::Arg(format!(
            "kernel_from_hamming: N_A = {n_units} is not exact in f64"
        )));
    }
    let total = total.unwrap_or(0) as u64;
    if total == 0 {
        return Ok(());
    }
    let f = dev.kernel(KERNEL_FROM_HAMMING)?;
    let cfg = grid_1d(total, 256, 256);
    let (count_u, batch_u) = (count as u64, batch as u64);
    let mut b = dev.launch_builder(&f);
    b.arg(h)
        .arg(k)
        .arg(dup)
        .arg(&count_u)
        .arg(&batch_u)
        .arg(&n_units);
    // SAFETY: the arguments match `kernel_from_hamming(const u64* h,
    // double* k, int* dup, u64 count, u64 batch, u64 n_units)`; it reads
    // h[0..count*batch²), writes k over the same range and dup[0..count),
    // all checked above.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// The table [`init_params_table`] reads: per parameter `offset, len,
/// key, rule` (see `cuda/init.cu`), with `key = stream_key(seed, name_id)`.
/// `ParamInit::Normal` parameters are marked "leave": the caller uploads
/// their host-drawn values (`net::init::init_values`).
pub fn param_table(slots: &[crate::param::ParamSlot], seed: u64) -> Vec<u64> {
    use crate::param::ParamInit;
    let mut t = Vec::with_capacity(4 * slots.len());
    for s in slots {
        let rule = match s.init {
            ParamInit::Uniform { bound } => u64::from(bound.to_bits()),
            ParamInit::Const(v) => u64::from(v.to_bits()) | 1 << 32,
            // Drawn on the host (f64 log/cos would not match bit for bit)
            // and copied in by the caller: the kernel leaves it.
            ParamInit::Normal { .. } => 1 << 33,
        };
        t.extend_from_slice(&[
            s.offset as u64,
            s.len as u64,
            crate::rng::stream_key(seed, s.name_id),
            rule,
        ]);
    }
    t
}

/// Initialises every parameter of a network in one launch, bit-identical
/// to `net::init::init_params`: copies `host_table` (from [`param_table`],
/// checked so that no entry writes past `out`) into `table` (device
/// scratch of the same length), then launches; both asynchronous.
///
/// Layout: `out` is the f32 parameter buffer; entry `e` of the table
/// (`[offset, len, key, rule]`) fills `out[offset .. offset + len)`.
pub fn init_params_table(
    dev: &CudaDevice,
    out: &mut DViewMut<'_, f32>,
    table: &mut DViewMut<'_, u64>,
    host_table: &[u64],
) -> Result<()> {
    if table.len() != host_table.len() || !host_table.len().is_multiple_of(4) {
        return Err(Error::Shape(format!(
            "init_params_table: device table of {} words, host table of {}",
            table.len(),
            host_table.len()
        )));
    }
    for e in host_table.chunks_exact(4) {
        if e[0]
            .checked_add(e[1])
            .is_none_or(|end| end > out.len() as u64)
        {
            return Err(Error::Shape(format!(
                "init_params_table: entry at {} of {} values exceeds the buffer of {}",
                e[0],
                e[1],
                out.len()
            )));
        }
    }
    let count = (host_table.len() / 4) as u64;
    if count == 0 {
        return Ok(());
    }
    dev.copy_htod(host_table, table)?;
    let f = dev.kernel(INIT_PARAMS_TABLE)?;
    let cfg = LaunchConfig {
        grid_dim: (count.min(MAX_GRID_BLOCKS) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = dev.launch_builder(&f);
    b.arg(out).arg(table).arg(&count);
    // SAFETY: the arguments match `init_params_table(float* out, const u64*
    // table, u64 count)`; `table` holds `host_table` (copied just above on
    // the same stream), every entry of which lies inside `out` (checked).
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Largest matrix [`cholesky_logdet`] takes (one thread per row, one block).
pub const LOGDET_MAX_N: usize = 1024;

/// ln det of `count` symmetric n×n matrices by Cholesky in f64, with the
/// singularity rule of `score::logdet::cholesky_logdet`: `ok[m] = 1` and
/// `logdet[m] = ln det` when matrix `m` is positive definite, else
/// `ok[m] = 0` and `logdet[m] = -inf`.
///
/// Layout: `a` is f64 `[count][n][n]` row-major; only the lower triangle
/// (diagonal included) is read. The kernel overwrites the upper triangle
/// and the diagonal with Lᵀ (the strict lower triangle is kept).
/// `logdet` is f64 `[count]`, `ok` is i32 `[count]`.
///
/// Errors when `n > LOGDET_MAX_N` or the buffer sizes do not match.
pub fn cholesky_logdet(
    dev: &CudaDevice,
    a: &mut DViewMut<'_, f64>,
    n: usize,
    count: usize,
    logdet: &mut DViewMut<'_, f64>,
    ok: &mut DViewMut<'_, i32>,
) -> Result<()> {
    if n > LOGDET_MAX_N {
        return Err(Error::Arg(format!(
            "logdet: matrices of size {n} exceed the GPU kernel's {LOGDET_MAX_N}"
        )));
    }
    if n.checked_mul(n).and_then(|nn| nn.checked_mul(count)) != Some(a.len()) {
        return Err(Error::Shape(format!(
            "logdet: {} values for {count} matrices of {n}x{n}",
            a.len()
        )));
    }
    if logdet.len() != count || ok.len() != count {
        return Err(Error::Shape(format!(
            "logdet: outputs of {} and {} entries for {count} matrices",
            logdet.len(),
            ok.len()
        )));
    }
    if count == 0 {
        return Ok(());
    }
    if count > i32::MAX as usize {
        return Err(Error::Arg(format!(
            "logdet: {count} matrices in one launch"
        )));
    }
    // One thread per row, at least one warp.
    let threads = (n.div_ceil(32) * 32).max(32) as u32;
    let cfg = LaunchConfig {
        grid_dim: (count as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    let f = dev.kernel(CHOLESKY_LOGDET)?;
    let n_u = n as u32;
    let mut b = dev.launch_builder(&f);
    b.arg(a).arg(&n_u).arg(logdet).arg(ok);
    // SAFETY: the arguments match `cholesky_logdet(double* a, u32 n,
    // double* logdet, int* ok)`; block m touches a[m*n*n..(m+1)*n*n) and
    // entry m of the outputs, all checked above; n <= blockDim <= 1024 as the
    // kernel's one-thread-per-row scheme and its shared arrays require.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Hyper-parameters of [`sgd_update`] (torch.optim.SGD, dampening 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Momentum factor; 0 turns the momentum buffer off.
    pub momentum: f32,
    /// L2 penalty added to the gradient: `g + weight_decay · p`.
    pub weight_decay: f32,
    /// Nesterov momentum (`g + momentum · buf` instead of `buf`).
    pub nesterov: bool,
    /// Index into the learning-rate array: this step's rate is `lr[step]`.
    pub step: usize,
    /// Whether the momentum buffer is fresh (its first step sets
    /// `buf = g` instead of `momentum · buf + g`).
    pub first: bool,
}

/// One SGD step over a flat parameter array, torch.optim.SGD's update
/// (dampening 0) elementwise in f32 with separate roundings:
/// `d = g + wd·p` (skipped when wd = 0); when momentum ≠ 0,
/// `buf = first ? d : momentum·buf + d` and `d = nesterov ? d + momentum·buf
/// : buf`; then `p = p − lr[step]·d`. `g` is not modified.
///
/// Layout: `p`, `g`, `buf` f32 `[len]` (all parameters in one order); `buf`
/// is neither read nor written when momentum = 0 (it must still have `len`
/// values). `lr` f32 `[steps]` is the whole learning-rate schedule on the
/// device, indexed by `step.step` in the kernel, so a training loop of many
/// steps is queued without reading anything back. Errors (nothing
/// launched) on lengths that differ or `step.step >= lr.len()`.
pub fn sgd_update(
    dev: &CudaDevice,
    p: &mut DViewMut<'_, f32>,
    g: &DView<'_, f32>,
    buf: &mut DViewMut<'_, f32>,
    lr: &DView<'_, f32>,
    step: SgdStep,
) -> Result<()> {
    if g.len() != p.len() || buf.len() != p.len() {
        return Err(Error::Shape(format!(
            "sgd: parameters {}, gradients {}, momentum buffer {} values: must be equal",
            p.len(),
            g.len(),
            buf.len()
        )));
    }
    if step.step >= lr.len() {
        return Err(Error::Arg(format!(
            "sgd: step {} outside the learning-rate schedule of {} steps",
            step.step,
            lr.len()
        )));
    }
    let len = p.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let f = dev.kernel(SGD_UPDATE)?;
    let (idx, nesterov, first) = (
        step.step as u64,
        i32::from(step.nesterov),
        i32::from(step.first),
    );
    let mut b = dev.launch_builder(&f);
    b.arg(p)
        .arg(g)
        .arg(buf)
        .arg(lr)
        .arg(&idx)
        .arg(&len)
        .arg(&step.momentum)
        .arg(&step.weight_decay)
        .arg(&nesterov)
        .arg(&first);
    // SAFETY: the arguments match `sgd_update(float* p, const float* g,
    // float* buf, const float* lr, u64 step, u64 len, float momentum, float
    // weight_decay, int nesterov, int first)`; the kernel reads lr[step]
    // (step < lr.len(), checked) and touches p, g, buf at [0, len), all
    // three exactly len long (checked); p and buf are exclusive borrows,
    // distinct from each other and from g and lr.
    unsafe { b.launch(grid_1d(len, 256, 256)) }?;
    Ok(())
}

/// `out[i] = Σ_p part[p·len + i]` over the parts in order, in f64, rounded
/// once (`sum_parts_f64`): the deterministic last step of a weight gradient
/// computed in parts (the conv's splits, the axis conv's samples).
///
/// Layout: `part` is f32 `[parts][len]` with `len = out.len()`; errors
/// (nothing launched) unless `part.len()` is a whole number of parts.
pub fn sum_parts(
    dev: &CudaDevice,
    part: &DView<'_, f32>,
    out: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let len = out.len();
    if len == 0 {
        return Ok(());
    }
    if !part.len().is_multiple_of(len) {
        return Err(Error::Shape(format!(
            "sum_parts: {} partial values are not a whole number of parts of {len}",
            part.len()
        )));
    }
    let (len_u, parts) = (len as u64, (part.len() / len) as u64);
    let f = dev.kernel(SUM_PARTS_F64)?;
    let mut b = dev.launch_builder(&f);
    b.arg(part).arg(out).arg(&len_u).arg(&parts);
    // SAFETY: the arguments match `sum_parts_f64(const float* part, float*
    // out, u64 len, u64 parts)`; thread i < len = out.len() writes out[i]
    // and reads part[p·len + i] for p < parts = part.len() / len: inside
    // both views (checked above). out is an exclusive borrow, distinct
    // from part.
    unsafe { b.launch(grid_1d(len_u, 256, 256)) }?;
    Ok(())
}
