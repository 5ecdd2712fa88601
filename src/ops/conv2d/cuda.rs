//! CUDA conv2d forward: launch side of `src/ops/conv2d/conv2d.cu` (implicit GEMM,
//! NHWC, fp32 accumulation). CPU twin: [`super::cpu::conv2d_forward_with`]
//! and, for the statistics variant, [`super::cpu::conv2d_forward_stats`].
//!
//! Layouts (as the kernel's header states them):
//! * `x`: f32 `[n][h][w][cin]` (the `input` shape),
//! * `w`: f32 `[kh][kw][cin / groups][cout]` ([`Conv2dSpec::weight_len`]),
//! * `y`: f32 `[n][oh][ow][cout]` ([`Conv2dSpec::out_shape`]), fully
//!   overwritten,
//! * statistics: f64 `psum` / `psumsq` `[parts][cout]`, `parts =`
//!   [`conv2d_stats_parts`]: per block row of the grid, the channel sums of
//!   `y` and `y²` over the output pixels that block computed. Reduce them
//!   with `ops::batchnorm::cuda::batchnorm_stats_from_partials`.
//!
//! All launches are asynchronous on the device's stream.

use super::Conv2dSpec;
use crate::error::{Error, Result};
use crate::ops::{CudaGrad, CudaKernels, CudaPartials};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::{DView, DViewMut, KernelParams, KernelRef, LaunchConfig};
use crate::tensor::Shape;

/// Forward kernels by tile width BN = 16, 32, 64 (`conv2d.cu`).
const FORWARD: [KernelRef; 3] = [
    KernelRef::forward("conv2d", "conv2d_igemm_n16"),
    KernelRef::forward("conv2d", "conv2d_igemm_n32"),
    KernelRef::forward("conv2d", "conv2d_igemm_n64"),
];
/// Forward kernels that also write channel sums, by BN.
const FORWARD_STATS: [KernelRef; 3] = [
    KernelRef::forward("conv2d", "conv2d_igemm_stats_n16"),
    KernelRef::forward("conv2d", "conv2d_igemm_stats_n32"),
    KernelRef::forward("conv2d", "conv2d_igemm_stats_n64"),
];
/// Input-gradient kernels by BN (`conv2d_backward.cu`).
const BACKWARD_INPUT: [KernelRef; 3] = [
    KernelRef::backward("conv2d_backward", "conv2d_bwd_input_n16"),
    KernelRef::backward("conv2d_backward", "conv2d_bwd_input_n32"),
    KernelRef::backward("conv2d_backward", "conv2d_bwd_input_n64"),
];
/// Split-K weight-gradient kernels by BN.
const BACKWARD_WEIGHT: [KernelRef; 3] = [
    KernelRef::backward("conv2d_backward", "conv2d_bwd_weight_n16"),
    KernelRef::backward("conv2d_backward", "conv2d_bwd_weight_n32"),
    KernelRef::backward("conv2d_backward", "conv2d_bwd_weight_n64"),
];

impl CudaKernels for Conv2dSpec {
    const KERNELS: &'static [KernelRef] = &[
        FORWARD[0],
        FORWARD[1],
        FORWARD[2],
        FORWARD_STATS[0],
        FORWARD_STATS[1],
        FORWARD_STATS[2],
        BACKWARD_INPUT[0],
        BACKWARD_INPUT[1],
        BACKWARD_INPUT[2],
        BACKWARD_WEIGHT[0],
        BACKWARD_WEIGHT[1],
        BACKWARD_WEIGHT[2],
    ];
}

/// The variant of a kernel for tile width `bn` (16, 32 or 64).
fn by_tile(kernels: &[KernelRef; 3], bn: usize) -> KernelRef {
    match bn {
        16 => kernels[0],
        32 => kernels[1],
        _ => kernels[2],
    }
}

/// The geometry every conv kernel takes by value: the C struct `ConvGeom`
/// of `conv2d.cuh`, field for field (14 `int`s).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvGeom {
    /// Input `[n][h][w][cin]`.
    pub n: i32,
    /// Input rows.
    pub h: i32,
    /// Input columns.
    pub w: i32,
    /// Input channels.
    pub cin: i32,
    /// Output `[n][oh][ow][cout]`.
    pub oh: i32,
    /// Output columns.
    pub ow: i32,
    /// Output channels.
    pub cout: i32,
    /// Kernel window.
    pub kh: i32,
    /// Kernel width.
    pub kw: i32,
    /// Stride (both axes).
    pub stride: i32,
    /// Zero padding on every side.
    pub pad: i32,
    /// Dilation (both axes).
    pub dilation: i32,
    /// Channels per group.
    pub cin_g: i32,
    /// Output channels per group.
    pub cout_g: i32,
}

// SAFETY: #[repr(C)], 14 i32 in the order of `struct ConvGeom` in
// conv2d.cuh (which static_asserts the same size: no padding).
unsafe impl KernelParams for ConvGeom {}

/// The input of a conv as its kernels read it: the tensor, its shape, and
/// whether it is read through a ReLU (fused into the conv).
#[derive(Clone, Copy, Debug)]
pub struct ConvInput<'a, 'v> {
    /// The input, f32 `[n][h][w][cin]`.
    pub x: &'v DView<'a, f32>,
    /// Its shape, batch included.
    pub shape: Shape,
    /// Read through a ReLU (`max(x, 0)` on load, the ReLU fused into the conv).
    pub relu: bool,
}

/// Threads per block of every conv kernel (`CV_THREADS`).
const THREADS: u32 = 256;
/// Outputs per block: `BM * BN` (each thread owns a 4 x 4 tile).
const BLOCK_OUTPUTS: usize = 4096;

/// The kernel variant for `cout_g` output channels per group: block tile
/// width BN (16, 32 or 64) and height BM = 4096 / BN.
fn tile_n(cout_g: usize) -> usize {
    if cout_g <= 16 {
        16
    } else if cout_g <= 32 {
        32
    } else {
        64
    }
}

/// Number of partial-sum rows (`parts`) the statistics variant writes for
/// `spec` on `input`: the grid's block rows, `ceil(n·oh·ow / BM)`.
pub fn conv2d_stats_parts(spec: &Conv2dSpec, input: Shape) -> Result<usize> {
    let out = spec.out_shape(input)?;
    let bm = BLOCK_OUTPUTS / tile_n(spec.cout_g());
    Ok((out.n * out.h * out.w).div_ceil(bm))
}

fn to_i32(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::Shape(format!(
            "conv2d (CUDA): {what} = {v} does not fit the kernel's 32-bit indices"
        ))
    })
}

/// Everything a launch needs, checked.
struct Launch {
    cfg: LaunchConfig,
    bn: usize,
    geom: ConvGeom,
    parts: usize,
}

fn plan(
    spec: &Conv2dSpec,
    input: Shape,
    x_len: usize,
    w_len: usize,
    y_len: usize,
) -> Result<Launch> {
    let out = spec.out_shape(input)?;
    if x_len != input.len() {
        return Err(Error::Shape(format!(
            "conv2d (CUDA): input buffer has {x_len} floats, shape {input} needs {}",
            input.len()
        )));
    }
    if w_len != spec.weight_len() {
        return Err(Error::Shape(format!(
            "conv2d (CUDA): weight buffer has {w_len} floats, the spec needs {}",
            spec.weight_len()
        )));
    }
    if y_len != out.len() {
        return Err(Error::Shape(format!(
            "conv2d (CUDA): output buffer has {y_len} floats, shape {out} needs {}",
            out.len()
        )));
    }
    // Every index the kernel forms is below one of these lengths (or K).
    to_i32("input length", input.len())?;
    to_i32("output length", out.len())?;
    to_i32("weight length", spec.weight_len())?;
    let bn = tile_n(spec.cout_g());
    let bm = BLOCK_OUTPUTS / bn;
    let m = out.n * out.h * out.w;
    // Row indices run up to the end of the last block: m0 + BM.
    to_i32("output pixels rounded up to a block", m + bm)?;
    let grid_x = m.div_ceil(bm);
    let grid_y = spec.cout_g().div_ceil(bn);
    if grid_x > i32::MAX as usize || grid_y > 65_535 || spec.groups > 65_535 {
        return Err(Error::Shape(format!(
            "conv2d (CUDA): grid ({grid_x}, {grid_y}, {}) exceeds CUDA's limits",
            spec.groups
        )));
    }
    // Padded-coordinate arithmetic (oy*S - P + ky*D) must stay in i32.
    let reach = spec.stride * out.h.max(out.w)
        + spec.pad
        + spec.dilation * spec.kh.max(spec.kw)
        + input.h.max(input.w);
    to_i32("spatial extent", reach)?;
    let geom = ConvGeom {
        n: to_i32("n", input.n)?,
        h: to_i32("h", input.h)?,
        w: to_i32("w", input.w)?,
        cin: to_i32("cin", spec.cin)?,
        oh: to_i32("oh", out.h)?,
        ow: to_i32("ow", out.w)?,
        cout: to_i32("cout", spec.cout)?,
        kh: to_i32("kh", spec.kh)?,
        kw: to_i32("kw", spec.kw)?,
        stride: to_i32("stride", spec.stride)?,
        pad: to_i32("pad", spec.pad)?,
        dilation: to_i32("dilation", spec.dilation)?,
        cin_g: to_i32("cin_g", spec.cin_g())?,
        cout_g: to_i32("cout_g", spec.cout_g())?,
    };
    Ok(Launch {
        cfg: LaunchConfig {
            grid_dim: (grid_x as u32, grid_y as u32, spec.groups as u32),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
        bn,
        geom,
        parts: grid_x,
    })
}

/// `y = conv2d(relu_input ? relu(x) : x, w)` on the GPU (`input.relu`
/// applies the ReLU). Errors (nothing launched) when a buffer length does
/// not match the layout above or a size exceeds the kernel's 32-bit
/// indexing.
pub fn conv2d_forward(
    dev: &CudaDevice,
    spec: &Conv2dSpec,
    input: ConvInput<'_, '_>,
    w: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let l = plan(spec, input.shape, input.x.len(), w.len(), y.len())?;
    let k = by_tile(&FORWARD, l.bn);
    let f = dev.kernel(k)?;
    let relu = i32::from(input.relu);
    let mut b = dev.launch_builder(&f);
    b.arg(input.x).arg(w).arg(y).arg(&l.geom).arg(&relu);
    // SAFETY: the arguments match `conv2d_igemm_n{16,32,64}(const float* x,
    // const float* w, float* y, ConvGeom geom, int relu_input)` in type and
    // order; `plan` checked x, w and y against the layout, so the kernel
    // reads only x[0..n·h·w·cin), w[0..weight_len) and writes only
    // y[0..n·oh·ow·cout), with every index below 2³¹; the grid is
    // (ceil(M/BM), ceil(cout_g/BN), groups) with 256 threads, as the kernel
    // assumes for this BN.
    unsafe { b.launch(l.cfg) }?;
    Ok(())
}

/// [`conv2d_forward`] that also writes the per-block channel sums of `y`
/// and `y²` (f64, layout `[parts][cout]`, `parts =` [`conv2d_stats_parts`])
/// into `psum` / `psumsq`, for a following training-mode BatchNorm.
/// Deterministic: every partial is written by one block in a fixed order.
/// Returns `parts`.
pub fn conv2d_forward_stats(
    dev: &CudaDevice,
    spec: &Conv2dSpec,
    input: ConvInput<'_, '_>,
    w: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
    stats: &mut CudaPartials<'_>,
) -> Result<usize> {
    let l = plan(spec, input.shape, input.x.len(), w.len(), y.len())?;
    let (psum, psumsq) = (&mut stats.psum, &mut stats.psumsq);
    let need = l.parts.checked_mul(spec.cout);
    if need != Some(psum.len()) || need != Some(psumsq.len()) {
        return Err(Error::Shape(format!(
            "conv2d (CUDA): partial sums of {} / {} values, {} parts x {} channels needed",
            psum.len(),
            psumsq.len(),
            l.parts,
            spec.cout
        )));
    }
    to_i32("partial-sum length", psum.len())?;
    let k = by_tile(&FORWARD_STATS, l.bn);
    let f = dev.kernel(k)?;
    let relu = i32::from(input.relu);
    let mut b = dev.launch_builder(&f);
    b.arg(input.x).arg(w).arg(y).arg(&l.geom).arg(&relu);
    b.arg(psum).arg(psumsq);
    // SAFETY: as in `conv2d_forward`, plus the two trailing `double*`
    // arguments of `conv2d_igemm_stats_n{16,32,64}`: the kernel writes
    // psum/psumsq[bx·cout + co] for bx < grid_x = parts and co < cout, and
    // both views hold exactly parts·cout values (checked above).
    unsafe { b.launch(l.cfg) }?;
    Ok(l.parts)
}

// ---------------------------------------------------------------------------
// Backward: `src/ops/conv2d/conv2d_backward.cu`. CPU twin: the backward functions of
// [`super::cpu`]. Layouts as above, plus `dy` (gradient of `y`, f32
// `[n][oh][ow][cout]`), `dx` (like `x`), `dw` (like `w`), and the split-K
// scratch `part` of the weight gradient: f32 `[splits][weight_len]`,
// `splits =` [`conv2d_backward_weight_splits`].

/// Output pixels summed per split of the weight gradient: a function of
/// the shape only (at most [`MAX_DW_SPLITS`] splits, at least 256 pixels
/// each, a multiple of the K tile 8), so `dw` is the same on every GPU.
fn dw_pix_per_split(pixels: usize) -> usize {
    pixels.div_ceil(MAX_DW_SPLITS).max(256).next_multiple_of(8)
}

/// Most splits of the weight gradient's reduction over output pixels.
const MAX_DW_SPLITS: usize = 128;

/// Number of split-K partial sums (`splits`) [`conv2d_backward_weight`]
/// writes for `spec` on `input`: its scratch holds `splits ·
/// spec.weight_len()` floats.
pub fn conv2d_backward_weight_splits(spec: &Conv2dSpec, input: Shape) -> Result<usize> {
    let out = spec.out_shape(input)?;
    let pixels = out.n * out.h * out.w;
    Ok(pixels.div_ceil(dw_pix_per_split(pixels)))
}

/// Launch geometry of a backward GEMM whose rows are `rows` and columns
/// `cols` (per group), for tile width `bn`.
fn bwd_grid(spec: &Conv2dSpec, rows: usize, cols: usize, x_tiles: usize) -> Result<LaunchConfig> {
    let bn = tile_n(cols);
    to_i32("GEMM rows rounded up to a block", rows + BLOCK_OUTPUTS / bn)?;
    let grid_y = cols.div_ceil(bn);
    if x_tiles > i32::MAX as usize || grid_y > 65_535 || spec.groups > 65_535 {
        return Err(Error::Shape(format!(
            "conv2d backward (CUDA): grid ({x_tiles}, {grid_y}, {}) exceeds CUDA's limits",
            spec.groups
        )));
    }
    Ok(LaunchConfig {
        grid_dim: (x_tiles as u32, grid_y as u32, spec.groups as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Gradient of the input: `dx = (accumulate ? dx : 0) + mask ⊙ convᵀ(dy,
/// w)` (`grad.dx`, `grad.accumulate`), where `mask` is `relu_mask > 0`
/// elementwise when `relu_mask` is given (the input of a ReLU whose output
/// the conv read: the ReLU's backward fused in) and 1 otherwise. `input` is
/// the shape of `x` / `dx`. Errors (nothing launched) when a buffer length
/// does not match the layout or a size exceeds the kernel's 32-bit
/// indexing.
pub fn conv2d_backward_input(
    dev: &CudaDevice,
    spec: &Conv2dSpec,
    input: Shape,
    dy: &DView<'_, f32>,
    w: &DView<'_, f32>,
    grad: &mut CudaGrad<'_>,
    relu_mask: Option<&DView<'_, f32>>,
) -> Result<()> {
    let dx = &mut grad.dx;
    let l = plan(spec, input, dx.len(), w.len(), dy.len())?;
    if let Some(m) = relu_mask {
        if m.len() != dx.len() {
            return Err(Error::Shape(format!(
                "conv2d backward (CUDA): ReLU mask has {} floats, the input {}",
                m.len(),
                dx.len()
            )));
        }
    }
    let rows = input.n * input.h * input.w;
    let bn = tile_n(spec.cin_g());
    let cfg = bwd_grid(spec, rows, spec.cin_g(), rows.div_ceil(BLOCK_OUTPUTS / bn))?;
    let k = by_tile(&BACKWARD_INPUT, bn);
    let f = dev.kernel(k)?;
    let (mask, acc) = (i32::from(relu_mask.is_some()), i32::from(grad.accumulate));
    let mut b = dev.launch_builder(&f);
    b.arg(dy).arg(w).arg(dx);
    // Without a mask the kernel never reads `xmask`: dy stands in for it.
    b.arg(relu_mask.unwrap_or(dy));
    b.arg(&l.geom).arg(&mask).arg(&acc);
    // SAFETY: the arguments match `conv2d_bwd_input_n{16,32,64}(const
    // float* dy, const float* w, float* dx, const float* xmask, ConvGeom
    // geom, int mask, int accumulate)`; `plan` checked dx (the input's
    // length), w and dy against the layout and every index against 2³¹, and
    // xmask (read only when mask = 1) has dx's length: the kernel reads dy,
    // w, xmask and reads / writes dx only inside those views. dx is an
    // exclusive borrow, so it does not alias the read-only buffers. The grid
    // is (ceil(n·h·w / BM), ceil(cin_g / BN), groups) with 256 threads, as
    // the kernel assumes.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// Gradient of the weight: `dw = Σ over output pixels of x_tap ⊗ dy`
/// (`relu(x)` when `relu_input`, as the forward read it), overwriting `dw`.
/// Two launches: the split-K GEMM into `part` (f32 `[splits][weight_len]`,
/// `splits =` [`conv2d_backward_weight_splits`]), then the reduction of the
/// splits in a fixed order in f64: deterministic, no atomics.
pub fn conv2d_backward_weight(
    dev: &CudaDevice,
    spec: &Conv2dSpec,
    input: ConvInput<'_, '_>,
    dy: &DView<'_, f32>,
    dw: &mut DViewMut<'_, f32>,
    part: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let (x, relu_input) = (input.x, input.relu);
    let input = input.shape;
    let l = plan(spec, input, x.len(), dw.len(), dy.len())?;
    let out = spec.out_shape(input)?;
    let pixels = out.n * out.h * out.w;
    let pps = dw_pix_per_split(pixels);
    let splits = pixels.div_ceil(pps);
    let wlen = spec.weight_len();
    if splits.checked_mul(wlen) != Some(part.len()) {
        return Err(Error::Shape(format!(
            "conv2d backward (CUDA): weight-gradient scratch has {} floats, {splits} splits x \
             {wlen} weights needed",
            part.len()
        )));
    }
    // The GEMM indexes the scratch with 32-bit ints.
    to_i32("weight-gradient scratch length", part.len())?;
    let rows = spec.kh * spec.kw * spec.cin_g();
    let bn = tile_n(spec.cout_g());
    let mtiles = rows.div_ceil(BLOCK_OUTPUTS / bn);
    let cfg = bwd_grid(spec, rows, spec.cout_g(), mtiles * splits)?;
    let k = by_tile(&BACKWARD_WEIGHT, bn);
    let f = dev.kernel(k)?;
    let (relu, pps_i, mtiles_i) = (
        i32::from(relu_input),
        to_i32("pixels per split", pps)?,
        to_i32("row tiles", mtiles)?,
    );
    let mut b = dev.launch_builder(&f);
    b.arg(x).arg(dy).arg(&*part).arg(&l.geom);
    b.arg(&relu).arg(&pps_i).arg(&mtiles_i);
    // SAFETY: the arguments match `conv2d_bwd_weight_n{16,32,64}(const
    // float* x, const float* dy, float* part, ConvGeom geom, int
    // relu_input, int pix_per_split, int mtiles)`; `plan` checked x, dy and the weight
    // length against the layout and 2³¹; block (x, y, g) writes
    // part[s·wlen + r·cout + co] for s = x / mtiles < splits, r <
    // kh·kw·cin_g, co < cout: inside `part` (splits·wlen floats, checked),
    // and reads x and dy inside their views. Grid (mtiles·splits,
    // ceil(cout_g / BN), groups), 256 threads, as the kernel assumes.
    unsafe { b.launch(cfg) }?;

    // The splits summed in order in f64 (the shared `sum_parts` kernel).
    crate::runtime::cuda::kernels::sum_parts(dev, &part.as_view(), dw)?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for Conv2dSpec {
    /// `conv2d_forward`, or `conv2d_forward_stats` when the plan asks for
    /// the output's partial sums.
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, shape) = a.input("conv2d", 0)?;
        let w = a.param("conv2d", 0)?;
        let input = ConvInput {
            x: &x,
            shape,
            relu: a.relu_input,
        };
        match a.partials_out.as_mut() {
            Some(p) => conv2d_forward_stats(a.dev, self, input, &w, &mut a.out, p).map(|_| ()),
            None => conv2d_forward(a.dev, self, input, &w, &mut a.out),
        }
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for Conv2dSpec {
    /// The weight gradient (split-K into the f32 scratch, reduced in a
    /// fixed order), then the input gradient, masked by the ReLU the conv
    /// applied, if any.
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let internal = |what: &str| Error::Internal(format!("conv2d backward: no {what}"));
        let x = a.input("conv2d", 0)?;
        let xs = *a.in_shapes.first().ok_or_else(|| internal("input shape"))?;
        let w = a.param("conv2d", 0)?;
        let splits = conv2d_backward_weight_splits(self, xs)?;
        let part = a.scratch32.as_mut().ok_or_else(|| internal("scratch"))?;
        let mut part = part
            .try_slice_mut(0..splits * self.weight_len())
            .ok_or_else(|| internal("scratch of the split weight gradient"))?;
        let dw = a
            .dparams
            .get_mut(0)
            .ok_or_else(|| internal("weight gradient"))?;
        let input = ConvInput {
            x: &x,
            shape: xs,
            relu: a.relu_input,
        };
        conv2d_backward_weight(a.dev, self, input, &a.dy, dw, &mut part)?;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            let mask = a.relu_input.then_some(&x);
            conv2d_backward_input(a.dev, self, xs, &a.dy, &w, g, mask)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_choice_and_parts() {
        assert_eq!(tile_n(1), 16);
        assert_eq!(tile_n(16), 16);
        assert_eq!(tile_n(17), 32);
        assert_eq!(tile_n(48), 64);
        assert_eq!(tile_n(512), 64);
        let s = Conv2dSpec::new(16, 16, 3, 1, 1);
        // 128·32·32 pixels in blocks of 256.
        assert_eq!(
            conv2d_stats_parts(&s, Shape::new(128, 32, 32, 16)).unwrap(),
            512
        );
        let s = Conv2dSpec::new(64, 64, 3, 1, 1);
        assert_eq!(conv2d_stats_parts(&s, Shape::new(2, 3, 3, 64)).unwrap(), 1);
    }

    #[test]
    fn weight_gradient_splits() {
        // 128·32·32 = 131072 pixels: 128 splits of 1024.
        let s = Conv2dSpec::new(16, 16, 3, 1, 1);
        assert_eq!(dw_pix_per_split(131_072), 1024);
        assert_eq!(
            conv2d_backward_weight_splits(&s, Shape::new(128, 32, 32, 16)).unwrap(),
            128
        );
        // Small inputs: one split of at least 256 pixels.
        assert_eq!(dw_pix_per_split(5), 256);
        assert_eq!(
            conv2d_backward_weight_splits(&s, Shape::new(2, 3, 3, 16)).unwrap(),
            1
        );
        // Every split is a multiple of the K tile and the splits cover all pixels.
        for pixels in [1usize, 255, 256, 257, 40_000, 1_000_003] {
            let pps = dw_pix_per_split(pixels);
            assert_eq!(pps % 8, 0);
            let splits = pixels.div_ceil(pps);
            assert!(splits <= MAX_DW_SPLITS && splits * pps >= pixels);
            assert!((splits - 1) * pps < pixels, "an empty split for {pixels}");
        }
    }

    #[test]
    fn plan_rejects_wrong_lengths() {
        let s = Conv2dSpec::new(3, 5, 3, 1, 1);
        let x = Shape::new(2, 4, 4, 3);
        let (xl, wl, yl) = (x.len(), s.weight_len(), 2 * 4 * 4 * 5);
        assert!(plan(&s, x, xl, wl, yl).is_ok());
        for (a, b, c) in [(xl + 1, wl, yl), (xl, wl - 1, yl), (xl, wl, yl + 5)] {
            assert!(matches!(plan(&s, x, a, b, c), Err(Error::Shape(_))));
        }
    }
}
