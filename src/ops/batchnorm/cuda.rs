//! CUDA BatchNorm2d (training mode): launch side of `src/ops/batchnorm/batchnorm.cu`.
//! CPU twins: [`super::cpu::batchnorm_forward`],
//! [`super::cpu::batchnorm_forward_inplace`] and
//! [`super::cpu::batchnorm_forward_from_sums`].
//!
//! Layouts (as the kernel's header states them):
//! * `x`, `y`: f32 `[rows][c]`, `rows = n·h·w` (NHWC, channel innermost),
//! * `psum`, `psumsq`: f64 `[parts][c]` scratch, per-part channel sums of
//!   `x` and `x²`; [`batchnorm_parts`] gives `parts` for a shape (part `p`
//!   covers rows `p·BN_ROWS_PER_PART ..`); the conv statistics variant
//!   writes the same layout,
//! * `mean`, `inv_std` (outputs, the [`super::BnStats`] of the CPU), `gamma`,
//!   `beta`: f32 `[c]`.
//!
//! Statistics are deterministic (fixed partition, fixed reduction order, no
//! atomics), accumulated in f64 as `Σx` and `Σx²` (one pass: see
//! [`super::cpu::batchnorm_forward_from_sums`] for the error bound, which
//! holds unless a channel's `mean² / var` exceeds ~1e3).
//!
//! All launches are asynchronous on the device's stream.

use super::BatchNormSpec;
use crate::error::{Error, Result};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;
use crate::runtime::cuda::{DView, DViewMut, LaunchConfig};
use crate::tensor::Shape;

/// `bn_partial_sums` of `batchnorm.cu`.
const BN_PARTIAL_SUMS: KernelRef = KernelRef::forward("batchnorm", "bn_partial_sums");
/// `bn_finalize` of `batchnorm.cu`.
const BN_FINALIZE: KernelRef = KernelRef::forward("batchnorm", "bn_finalize");
/// `bn_normalize` of `batchnorm.cu`.
const BN_NORMALIZE: KernelRef = KernelRef::forward("batchnorm", "bn_normalize");
/// `bn_normalize_inplace` of `batchnorm.cu`.
const BN_NORMALIZE_INPLACE: KernelRef = KernelRef::forward("batchnorm", "bn_normalize_inplace");
/// `bnb_partial_sums` of `batchnorm_backward.cu`.
const BNB_PARTIAL_SUMS: KernelRef = KernelRef::backward("batchnorm_backward", "bnb_partial_sums");
/// `bnb_finalize` of `batchnorm_backward.cu`.
const BNB_FINALIZE: KernelRef = KernelRef::backward("batchnorm_backward", "bnb_finalize");
/// `bnb_dx` of `batchnorm_backward.cu`.
const BNB_DX: KernelRef = KernelRef::backward("batchnorm_backward", "bnb_dx");
/// `bn_normalize_pack` of `batchnorm.cu`.
const BN_NORMALIZE_PACK: KernelRef = KernelRef::forward("batchnorm", "bn_normalize_pack");

impl crate::ops::CudaKernels for super::BatchNormSpec {
    const KERNELS: &'static [KernelRef] = &[
        BN_PARTIAL_SUMS,
        BN_FINALIZE,
        BN_NORMALIZE,
        BN_NORMALIZE_INPLACE,
        BNB_PARTIAL_SUMS,
        BNB_FINALIZE,
        BNB_DX,
        BN_NORMALIZE_PACK,
    ];
}

/// Rows (pixels) summed per part by `bn_partial_sums`: fixed, so the
/// statistics do not depend on the GPU.
pub const BN_ROWS_PER_PART: usize = 64;

/// Number of parts of the partial sums of an input of shape `shape`.
pub fn batchnorm_parts(shape: Shape) -> usize {
    (shape.n * shape.h * shape.w).div_ceil(BN_ROWS_PER_PART)
}

fn to_i32(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::Shape(format!(
            "batchnorm (CUDA): {what} = {v} does not fit the kernel's 32-bit indices"
        ))
    })
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "batchnorm (CUDA): {what} has {got} values, {want} needed"
        )))
    }
}

/// Checks `x`-shaped data of `shape` against `spec`: returns `(rows, c)`.
fn check_input(spec: &BatchNormSpec, shape: Shape, x_len: usize) -> Result<(usize, usize)> {
    spec.out_shape(shape)?;
    check_len("input", x_len, shape.len())?;
    // The normalisation's grid-stride index may pass the length by up to
    // one grid (2¹⁶ blocks x 256 threads) before the loop ends.
    to_i32("input length plus one grid", shape.len() + (1 << 24))?;
    Ok((shape.n * shape.h * shape.w, spec.channels))
}

/// Per-part channel sums of `x` (`bn_partial_sums`), written to `psum` /
/// `psumsq` (`[batchnorm_parts(shape)][c]` each).
pub fn batchnorm_partial_sums(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    shape: Shape,
    x: &DView<'_, f32>,
    psum: &mut DViewMut<'_, f64>,
    psumsq: &mut DViewMut<'_, f64>,
) -> Result<()> {
    let (rows, c) = check_input(spec, shape, x.len())?;
    let parts = batchnorm_parts(shape);
    check_len("psum", psum.len(), parts * c)?;
    check_len("psumsq", psumsq.len(), parts * c)?;
    let chunks = c.div_ceil(32);
    if chunks > 65_535 {
        return Err(Error::Shape(format!(
            "batchnorm (CUDA): {c} channels exceed the grid's limit"
        )));
    }
    let cfg = LaunchConfig {
        grid_dim: (parts as u32, chunks as u32, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    let (rows_i, c_i, rpp) = (
        to_i32("rows", rows)?,
        to_i32("channels", c)?,
        BN_ROWS_PER_PART as i32,
    );
    let f = dev.kernel(BN_PARTIAL_SUMS)?;
    let mut b = dev.launch_builder(&f);
    b.arg(x)
        .arg(&rows_i)
        .arg(&c_i)
        .arg(&rpp)
        .arg(psum)
        .arg(psumsq);
    // SAFETY: the arguments match `bn_partial_sums(const float* x, int rows,
    // int C, int rows_per_part, double* psum, double* psumsq)`; the kernel
    // reads x[0..rows·c) (the whole view, < 2³¹) and writes
    // psum/psumsq[p·c + ch] for p < parts = gridDim.x = ceil(rows /
    // rows_per_part), ch < c: both views hold parts·c values; the block is
    // (32, 8) as the kernel assumes.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Mean and `1 / sqrt(var + eps)` per channel from per-part sums (of
/// [`batchnorm_partial_sums`], or of the conv statistics variant, with
/// `count` = values summed per channel = `n·oh·ow`).
pub fn batchnorm_stats_from_partials(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    count: usize,
    psum: &DView<'_, f64>,
    psumsq: &DView<'_, f64>,
    mean: &mut DViewMut<'_, f32>,
    inv_std: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let c = spec.channels;
    if c == 0 || !(spec.eps > 0.0 && spec.eps.is_finite()) || count == 0 {
        return Err(Error::Shape(format!(
            "batchnorm (CUDA): bad statistics request: {c} channels, eps {}, count {count}",
            spec.eps
        )));
    }
    if !psum.len().is_multiple_of(c) || psum.len() != psumsq.len() || psum.is_empty() {
        return Err(Error::Shape(format!(
            "batchnorm (CUDA): partial sums of {} / {} values are not [parts][{c}]",
            psum.len(),
            psumsq.len()
        )));
    }
    check_len("mean", mean.len(), c)?;
    check_len("inv_std", inv_std.len(), c)?;
    to_i32("partial-sum length", psum.len())?;
    if c > i32::MAX as usize {
        return Err(Error::Shape(format!("batchnorm (CUDA): {c} channels")));
    }
    let parts = (psum.len() / c) as i32;
    let c_i = c as i32;
    let count_f = count as f64;
    let cfg = LaunchConfig {
        grid_dim: (c as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let f = dev.kernel(BN_FINALIZE)?;
    let mut b = dev.launch_builder(&f);
    b.arg(psum)
        .arg(psumsq)
        .arg(&parts)
        .arg(&c_i)
        .arg(&count_f)
        .arg(&spec.eps)
        .arg(mean)
        .arg(inv_std);
    // SAFETY: the arguments match `bn_finalize(const double* psum, const
    // double* psumsq, int parts, int C, double count, float eps, float*
    // mean, float* inv_std)`; block ch < c reads psum/psumsq[p·c + ch] for
    // p < parts = len / c and writes mean[ch], inv_std[ch]: all inside the
    // views (checked above); 256 threads, a power of two, as its tree
    // reduction assumes.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

fn norm_cfg(total: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (total.div_ceil(256).clamp(1, 1 << 16) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn check_params(c: usize, params: [(&str, usize); 4]) -> Result<()> {
    for (what, len) in params {
        check_len(what, len, c)?;
    }
    Ok(())
}

/// The per-channel vectors a normalisation reads, f32 `[c]` each: the
/// batch statistics and the affine parameters.
#[derive(Clone, Copy, Debug)]
pub struct BnChannels<'v, 'a> {
    /// Per-channel batch mean, f32 `[c]`.
    pub mean: &'v DView<'a, f32>,
    /// Per-channel `1 / sqrt(var + eps)` (biased variance), f32 `[c]`.
    pub inv_std: &'v DView<'a, f32>,
    /// Scale γ, f32 `[c]`.
    pub gamma: &'v DView<'a, f32>,
    /// Shift β, f32 `[c]`.
    pub beta: &'v DView<'a, f32>,
}

impl BnChannels<'_, '_> {
    fn check(&self, c: usize) -> Result<()> {
        check_params(
            c,
            [
                ("mean", self.mean.len()),
                ("inv_std", self.inv_std.len()),
                ("gamma", self.gamma.len()),
                ("beta", self.beta.len()),
            ],
        )
    }
}

/// What [`batchnorm_forward`] computes besides the output: the statistics
/// (`mean`, `inv_std`: f32 `[c]`, the backward reads them) and their f64
/// scratch (`psum`, `psumsq`: `[batchnorm_parts(shape)][c]`).
#[derive(Debug)]
pub struct BnStatsOut<'a> {
    /// Written: per-channel batch mean, f32 `[c]`.
    pub mean: DViewMut<'a, f32>,
    /// Written: per-channel `1 / sqrt(var + eps)` (biased variance), f32 `[c]`.
    pub inv_std: DViewMut<'a, f32>,
    /// Scratch: per-part channel sums of `x`, f64 `[parts][c]`.
    pub psum: DViewMut<'a, f64>,
    /// Scratch: per-part channel sums of `x²`, f64 `[parts][c]`.
    pub psumsq: DViewMut<'a, f64>,
}

/// What the backward reads of the forward: its input `x` (`[rows][c]`),
/// its statistics `mean`, `inv_std` and the scale `gamma` (`[c]`).
#[derive(Clone, Copy, Debug)]
pub struct BnSaved<'v, 'a> {
    /// The forward's input, f32 `[rows][c]`.
    pub x: &'v DView<'a, f32>,
    /// The forward's per-channel batch mean, f32 `[c]`.
    pub mean: &'v DView<'a, f32>,
    /// The forward's per-channel `1 / sqrt(var + eps)`, f32 `[c]`.
    pub inv_std: &'v DView<'a, f32>,
    /// Scale γ, f32 `[c]`.
    pub gamma: &'v DView<'a, f32>,
}

/// What [`batchnorm_backward`] writes: the input gradient when asked for
/// (written, or added to with `accumulate`), γ's and β's gradients (`[c]`),
/// and its f64 scratch `pdy`, `pdyx` (`[batchnorm_parts(shape)][c]`: the
/// per-part channel sums of `dy` and `dy·x̂`).
pub struct BnGrads<'a> {
    /// The input's gradient, f32 `[rows][c]`; `None` when the input needs none.
    pub dx: Option<crate::ops::CudaGrad<'a>>,
    /// Written: γ's gradient, f32 `[c]`.
    pub dgamma: DViewMut<'a, f32>,
    /// Written: β's gradient, f32 `[c]`.
    pub dbeta: DViewMut<'a, f32>,
    /// Scratch: per-part channel sums of `dy`, f64 `[parts][c]`.
    pub pdy: DViewMut<'a, f64>,
    /// Scratch: per-part channel sums of `dy·x̂`, f64 `[parts][c]`.
    pub pdyx: DViewMut<'a, f64>,
}

/// `y = (x − mean) * (gamma * inv_std) + beta` per channel (the CPU's
/// expression and rounding).
pub fn batchnorm_normalize(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    shape: Shape,
    x: &DView<'_, f32>,
    ch: BnChannels<'_, '_>,
    y: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let (_, c) = check_input(spec, shape, x.len())?;
    check_len("output", y.len(), x.len())?;
    ch.check(c)?;
    let BnChannels {
        mean,
        inv_std,
        gamma,
        beta,
    } = ch;
    let (total, c_i) = (x.len() as i32, c as i32);
    let f = dev.kernel(BN_NORMALIZE)?;
    let mut b = dev.launch_builder(&f);
    b.arg(x)
        .arg(y)
        .arg(&total)
        .arg(&c_i)
        .arg(mean)
        .arg(inv_std)
        .arg(gamma)
        .arg(beta);
    // SAFETY: the arguments match `bn_normalize(const float* x, float* y,
    // int total, int C, const float* mean, inv_std, gamma, beta)`; it reads
    // x[i] and writes y[i] for i < total = x.len() = y.len() (< 2³¹, checked)
    // and reads the four parameter arrays at i % c < c = their length. x
    // and y are distinct allocations or disjoint views (Rust's borrows).
    unsafe { b.launch(norm_cfg(x.len())) }?;
    Ok(())
}

/// [`batchnorm_normalize`] overwriting `x`.
pub fn batchnorm_normalize_inplace(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    shape: Shape,
    x: &mut DViewMut<'_, f32>,
    ch: BnChannels<'_, '_>,
) -> Result<()> {
    let (_, c) = check_input(spec, shape, x.len())?;
    ch.check(c)?;
    let BnChannels {
        mean,
        inv_std,
        gamma,
        beta,
    } = ch;
    let (total, c_i) = (x.len() as i32, c as i32);
    let cfg = norm_cfg(x.len());
    let f = dev.kernel(BN_NORMALIZE_INPLACE)?;
    let mut b = dev.launch_builder(&f);
    b.arg(x)
        .arg(&total)
        .arg(&c_i)
        .arg(mean)
        .arg(inv_std)
        .arg(gamma)
        .arg(beta);
    // SAFETY: the arguments match `bn_normalize_inplace(float* x, int total,
    // int C, const float* mean, inv_std, gamma, beta)`; it reads and writes
    // x[i] for i < total = x.len() (< 2³¹, checked), each element by one
    // thread, and reads the parameter arrays at i % c < c = their length.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Training-mode BatchNorm: statistics of `x` into `stats.mean` /
/// `stats.inv_std` (using `stats.psum` / `stats.psumsq` as scratch), then
/// `y = (x − mean)·γ·inv_std + β` with `affine = [γ, β]`. Three launches,
/// no host synchronisation.
pub fn batchnorm_forward(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    shape: Shape,
    x: &DView<'_, f32>,
    affine: [&DView<'_, f32>; 2],
    y: &mut DViewMut<'_, f32>,
    stats: BnStatsOut<'_>,
) -> Result<()> {
    let [gamma, beta] = affine;
    let BnStatsOut {
        mut mean,
        mut inv_std,
        mut psum,
        mut psumsq,
    } = stats;
    let (mean, inv_std) = (&mut mean, &mut inv_std);
    let (psum, psumsq) = (&mut psum, &mut psumsq);
    // Check everything before the first launch, so an error launches nothing.
    let (rows, c) = check_input(spec, shape, x.len())?;
    check_len("output", y.len(), x.len())?;
    check_params(
        c,
        [
            ("mean", mean.len()),
            ("inv_std", inv_std.len()),
            ("gamma", gamma.len()),
            ("beta", beta.len()),
        ],
    )?;
    batchnorm_partial_sums(dev, spec, shape, x, psum, psumsq)?;
    batchnorm_stats_from_partials(
        dev,
        spec,
        rows,
        &psum.as_view(),
        &psumsq.as_view(),
        mean,
        inv_std,
    )?;
    let (mean, inv_std) = (mean.as_view(), inv_std.as_view());
    let ch = BnChannels {
        mean: &mean,
        inv_std: &inv_std,
        gamma,
        beta,
    };
    batchnorm_normalize(dev, spec, shape, x, ch, y)
}

// ---------------------------------------------------------------------------
// Backward: `src/ops/batchnorm/batchnorm_backward.cu`. CPU twin: the backward of
// [`super::cpu`]. Layouts: `x`, `dy`, `dx` f32 `[rows][c]`; `mean`,
// `inv_std` (the forward's statistics), `gamma`, `dgamma`, `dbeta` f32
// `[c]`; scratch `pdy`, `pdyx` f64 `[batchnorm_parts(shape)][c]` (the
// forward's partition: part `p` covers rows `p·BN_ROWS_PER_PART ..`).

/// Training-mode BatchNorm backward, with `x̂ = (x − mean)·inv_std` and
/// `M = n·h·w`: `dbeta = Σ dy`, `dgamma = Σ dy·x̂` (per channel, f64
/// partials reduced in a fixed order: deterministic), and
/// `dx = (accumulate ? dx : 0) + gamma·inv_std·(dy − dbeta/M − x̂·dgamma/M)`
/// (`grads.dx`; `None` when the input needs no gradient). Three launches
/// (two without `dx`), no host synchronisation; errors (nothing launched)
/// when a buffer does not match the layout.
pub fn batchnorm_backward(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    shape: Shape,
    saved: BnSaved<'_, '_>,
    dy: &DView<'_, f32>,
    grads: BnGrads<'_>,
) -> Result<()> {
    let BnSaved {
        x,
        mean,
        inv_std,
        gamma,
    } = saved;
    let BnGrads {
        dx,
        mut dgamma,
        mut dbeta,
        mut pdy,
        mut pdyx,
    } = grads;
    let (dgamma, dbeta) = (&mut dgamma, &mut dbeta);
    let (pdy, pdyx) = (&mut pdy, &mut pdyx);
    let (rows, c) = check_input(spec, shape, x.len())?;
    check_len("output gradient", dy.len(), x.len())?;
    if let Some(g) = &dx {
        check_len("input gradient", g.dx.len(), x.len())?;
    }
    check_params(
        c,
        [
            ("mean", mean.len()),
            ("inv_std", inv_std.len()),
            ("gamma", gamma.len()),
            ("dgamma", dgamma.len()),
        ],
    )?;
    check_len("dbeta", dbeta.len(), c)?;
    let parts = batchnorm_parts(shape);
    check_len("pdy", pdy.len(), parts * c)?;
    check_len("pdyx", pdyx.len(), parts * c)?;
    to_i32("partial-sum length", parts * c)?;
    let chunks = c.div_ceil(32);
    if chunks > 65_535 {
        return Err(Error::Shape(format!(
            "batchnorm (CUDA): {c} channels exceed the grid's limit"
        )));
    }
    let (rows_i, c_i, rpp, parts_i) = (
        to_i32("rows", rows)?,
        to_i32("channels", c)?,
        BN_ROWS_PER_PART as i32,
        to_i32("parts", parts)?,
    );

    let f = dev.kernel(BNB_PARTIAL_SUMS)?;
    let mut b = dev.launch_builder(&f);
    b.arg(x)
        .arg(dy)
        .arg(mean)
        .arg(inv_std)
        .arg(&rows_i)
        .arg(&c_i)
        .arg(&rpp)
        .arg(&*pdy)
        .arg(&*pdyx);
    let cfg = LaunchConfig {
        grid_dim: (parts as u32, chunks as u32, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments match `bnb_partial_sums(const float* x, const
    // float* dy, const float* mean, const float* inv_std, int rows, int C,
    // int rows_per_part, double* pdy, double* pdyx)`; it reads x and dy at
    // [0, rows·c) (both that long, < 2³¹), mean / inv_std at channels < c,
    // and writes pdy / pdyx[p·c + ch] for p < parts = gridDim.x, ch < c:
    // both hold parts·c values; block (32, 8) as the kernel assumes.
    unsafe { b.launch(cfg) }?;

    let f = dev.kernel(BNB_FINALIZE)?;
    let (pdy, pdyx) = (pdy.as_view(), pdyx.as_view());
    let mut b = dev.launch_builder(&f);
    b.arg(&pdy)
        .arg(&pdyx)
        .arg(&parts_i)
        .arg(&c_i)
        .arg(&*dgamma)
        .arg(&*dbeta);
    let cfg = LaunchConfig {
        grid_dim: (c as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments match `bnb_finalize(const double* pdy, const
    // double* pdyx, int parts, int C, float* dgamma, float* dbeta)`; block
    // ch < c reads pdy / pdyx[p·c + ch], p < parts (parts·c values each)
    // and writes dgamma[ch], dbeta[ch] (c values each); 256 threads, the
    // power of two its tree reduction assumes.
    unsafe { b.launch(cfg) }?;

    let Some(crate::ops::CudaGrad { dx, accumulate }) = dx else {
        return Ok(());
    };
    let f = dev.kernel(BNB_DX)?;
    let (total, inv_rows, acc) = (x.len() as i32, 1.0f32 / rows as f32, i32::from(accumulate));
    let (dgamma, dbeta) = (dgamma.as_view(), dbeta.as_view());
    let mut b = dev.launch_builder(&f);
    b.arg(x)
        .arg(dy)
        .arg(&dx)
        .arg(&total)
        .arg(&c_i)
        .arg(mean)
        .arg(inv_std)
        .arg(gamma)
        .arg(&dgamma)
        .arg(&dbeta)
        .arg(&inv_rows)
        .arg(&acc);
    // SAFETY: the arguments match `bnb_dx(const float* x, const float* dy,
    // float* dx, int total, int C, const float* mean, inv_std, gamma,
    // dgamma, dbeta, float inv_rows, int accumulate)`; it reads x, dy and
    // reads / writes dx at i < total = their common length (< 2³¹ with a
    // grid to spare, checked), and the five channel arrays at i % c < c =
    // their length; dx is an exclusive borrow, distinct from x and dy.
    unsafe { b.launch(norm_cfg(x.len())) }?;
    Ok(())
}

/// [`batchnorm_normalize`] (or, with `x = None`, in place on `y`) that also
/// packs the sign bits of the output for `shape.n` samples into `pack`: a
/// BatchNorm output read by a counted ReLU is coded in the same pass.
/// Same arithmetic as the plain normalisation, so the same bits.
pub fn batchnorm_normalize_pack(
    dev: &CudaDevice,
    spec: &BatchNormSpec,
    shape: Shape,
    x: Option<&DView<'_, f32>>,
    y: &mut DViewMut<'_, f32>,
    ch: BnChannels<'_, '_>,
    pack: crate::ops::cuda_launch::PackDest<'_, '_>,
) -> Result<()> {
    let (_, c) = check_input(spec, shape, y.len())?;
    if let Some(x) = x {
        check_len("input", x.len(), y.len())?;
    }
    ch.check(c)?;
    let BnChannels {
        mean,
        inv_std,
        gamma,
        beta,
    } = ch;
    let (n, wps) = crate::ops::cuda_launch::check_pack("batchnorm", y.len(), shape.n, &pack)?;
    let words = (shape.n * wps) as u64;
    if words == 0 {
        return Ok(());
    }
    let null = 0u64;
    let (batch_u, n_u, wps_u) = (shape.n as u64, n as u64, wps as u64);
    let (stride_u, offset_u) = (pack.row_stride as u64, pack.word_offset as u64);
    let c_i = c as i32;
    let f = dev.kernel(BN_NORMALIZE_PACK)?;
    let mut b = dev.launch_builder(&f);
    match x {
        Some(x) => b.arg(x),
        None => b.arg(&null),
    };
    b.arg(y)
        .arg(&batch_u)
        .arg(&n_u)
        .arg(&c_i)
        .arg(mean)
        .arg(inv_std)
        .arg(gamma)
        .arg(beta)
        .arg(&wps_u)
        .arg(&*pack.codes)
        .arg(&stride_u)
        .arg(&offset_u);
    // SAFETY: the arguments match `bn_normalize_pack(const float* x, float*
    // y, u64 batch, u64 n, int C, mean, inv_std, gamma, beta, u64 wps, u64*
    // codes, u64 row_stride, u64 word_offset)`; x (or y when x is null) and
    // y hold batch·n values (checked), the channel vectors C (checked), and
    // the code words written lie inside `codes` (check_pack); blockDim 256
    // is a multiple of 32 as the ballots need.
    unsafe { b.launch(crate::ops::cuda_launch::pack_grid(words)) }?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for BatchNormSpec {
    /// Partial sums of the input (unless its conv left them), the channel
    /// statistics into the scratch / saved slot (`[mean: c][inv_std: c]`),
    /// then the normalisation: in place or not, packing the output's sign
    /// bits when asked.
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let internal = |what: &str| Error::Internal(format!("batchnorm: no {what}"));
        let gamma = a.param("batchnorm", 0)?;
        let beta = a.param("batchnorm", 1)?;
        let c = self.channels;
        let (mut p, filled, count) = a
            .partials_in
            .take()
            .ok_or_else(|| internal("partial sums"))?;
        let x = if a.in_place.is_some() {
            None
        } else {
            Some(a.input("batchnorm", 0)?)
        };
        let saved = a
            .saved
            .as_mut()
            .ok_or_else(|| internal("statistics slot"))?;
        let stats = saved
            .try_slice_mut(0..2 * c)
            .ok_or_else(|| internal("statistics slot of 2c"))?;
        let (mut mean, mut inv_std) = stats
            .into_split_at_mut(c)
            .ok_or_else(|| internal("statistics split"))?;
        if !filled {
            let (xv, xs) = x.ok_or_else(|| internal("input to sum"))?;
            batchnorm_partial_sums(a.dev, self, xs, &xv, &mut p.psum, &mut p.psumsq)?;
        }
        batchnorm_stats_from_partials(
            a.dev,
            self,
            count,
            &p.psum.as_view(),
            &p.psumsq.as_view(),
            &mut mean,
            &mut inv_std,
        )?;
        let (mean, inv_std) = (mean.as_view(), inv_std.as_view());
        let ch = BnChannels {
            mean: &mean,
            inv_std: &inv_std,
            gamma: &gamma,
            beta: &beta,
        };
        let shape = a.out_shape;
        match (x, a.pack.take()) {
            (None, None) => batchnorm_normalize_inplace(a.dev, self, shape, &mut a.out, ch),
            (Some((xv, _)), None) => batchnorm_normalize(a.dev, self, shape, &xv, ch, &mut a.out),
            (x, Some(dest)) => {
                let x = x.as_ref().map(|(v, _)| v);
                batchnorm_normalize_pack(a.dev, self, shape, x, &mut a.out, ch, dest)
            }
        }
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for BatchNormSpec {
    /// γ's and β's gradients by f64 partial sums (into the f64 scratch),
    /// then the input gradient when asked for.
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let internal = |what: &str| Error::Internal(format!("batchnorm backward: no {what}"));
        let c = self.channels;
        let x = a.input("batchnorm", 0)?;
        let xs = *a.in_shapes.first().ok_or_else(|| internal("input shape"))?;
        let gamma = a.param("batchnorm", 0)?;
        let saved = a.saved.ok_or_else(|| internal("statistics"))?;
        let mean = saved.try_slice(0..c).ok_or_else(|| internal("mean"))?;
        let inv_std = saved.try_slice(c..2 * c).ok_or_else(|| internal("1/std"))?;
        let parts = batchnorm_parts(xs);
        let scratch = a.scratch64.as_mut().ok_or_else(|| internal("scratch"))?;
        let (pdy, rest) = scratch
            .try_split_at_mut(parts * c)
            .ok_or_else(|| internal("scratch of 2·parts·c"))?;
        let pdyx = rest
            .into_slice_mut(0..parts * c)
            .ok_or_else(|| internal("scratch of 2·parts·c"))?;
        let (dg, db) = a.dparams.split_at_mut(1);
        let (dg, db) = (
            dg.first_mut().ok_or_else(|| internal("γ gradient"))?,
            db.first_mut().ok_or_else(|| internal("β gradient"))?,
        );
        let saved = BnSaved {
            x: &x,
            mean: &mean,
            inv_std: &inv_std,
            gamma: &gamma,
        };
        let grads = BnGrads {
            dx: a
                .dx
                .get_mut(0)
                .and_then(Option::as_mut)
                .map(|g| crate::ops::CudaGrad {
                    dx: g.dx.as_view_mut(),
                    accumulate: g.accumulate,
                }),
            dgamma: dg.as_view_mut(),
            dbeta: db.as_view_mut(),
            pdy,
            pdyx,
        };
        batchnorm_backward(a.dev, self, xs, saved, &a.dy, grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_row() {
        assert_eq!(batchnorm_parts(Shape::new(1, 1, 1, 3)), 1);
        assert_eq!(batchnorm_parts(Shape::new(1, 8, 8, 3)), 1);
        assert_eq!(batchnorm_parts(Shape::new(2, 8, 8, 3)), 2);
    }
}
