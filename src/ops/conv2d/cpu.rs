//! CPU forward convolution: direct (implicit-GEMM) convolution, no im2col.
//!
//! # Data layout and why
//!
//! * Input and output are NHWC: the channels of one pixel are contiguous.
//! * Weights are `[kh][kw][cin_g][cout]` (see [`super`]): for one reduction
//!   index `k = (ky, kx, ci)` the weights of consecutive output channels are
//!   contiguous, so 8 or 16 of them load as one or two AVX vectors.
//! * Per image, the input is copied into a zero-padded scratch
//!   `[h + 2p][w + 2p][cin]` (thread-local, reused across images), so the
//!   inner loops have no border tests. The fused-ReLU variant applies the
//!   ReLU during this copy (also when `pad == 0`: measured faster than a
//!   `max` per broadcast in the microkernel, which competes with the FMAs
//!   for the FP pipes). With `pad == 0` and no ReLU the image is read in
//!   place.
//! * While a thread computes image `n`, the AVX2 path prefetches image
//!   `n + 1`'s input into L2 (spread over the tiles of the first channel
//!   block), because a batch-128 activation does not fit in L2 and the
//!   copy above otherwise runs at memory latency.
//! * For each group and each block of 32, 16 or 8 output channels of that
//!   group, the weights are repacked once per call into a contiguous panel
//!   `[K][width]` (`K = kh * kw * cin_g`, in `(ky, kx, ci)` order), so the
//!   microkernel streams them linearly.
//!
//! # Microkernel
//!
//! Output pixels are flattened (`p = oy * ow + ox`) and taken `MR` at a time
//! (the last tile may wrap onto the next row; each pixel carries its own
//! input offset, so rows and strides do not matter). A tile of `MR` pixels ×
//! 16 channels lives in `2 * MR` ymm accumulators (`MR = 6`: 12 accumulators,
//! 2 weight vectors and 1 broadcast = 15 of the 16 ymm registers, enough
//! independent FMA chains to cover the FMA latency on 2 pipes). For each `k`
//! it loads 2 weight vectors and, for each pixel, broadcasts one input value
//! and issues 2 FMAs. The reduction runs over "segments": runs of `k` whose
//! input values are contiguous in the padded image (`kw * cin` values per
//! kernel row when `groups == 1` and `dilation == 1`, else `cin_g` values per
//! tap), which keeps the inner loop long even for tiny `cin` (the 3-channel
//! stem).
//!
//! Where the CPU has AVX-512F (detected at run time), 32- and 16-wide
//! blocks run on zmm tiles instead: 12 pixels × 32 channels (24
//! accumulators) or 14 pixels × 16 channels (the broadcast input folded
//! into the FMA), out of 32 zmm registers. Both widths run one tile,
//! generic over the vector type (`lanes.rs`). Each element is the same FMA
//! chain in the same order as on AVX2, so the two give the same bits
//! (measured on a Sapphire Rapids Xeon, 2 cores, B = 128, the two
//! interleaved while other builds ran: 330 against 200 GFLOP/s on NB101's
//! 128-channel 3×3, 175 against 115 on NB201's 32-channel one).
//!
//! Output channels not covered by 32/16/8-wide blocks (`cout_g % 8`) take a
//! scalar path; depthwise convs (`cin_g == cout_g == 1`) take the kernels
//! of `depthwise.rs` (vectorised across channels, AVX-512 / AVX2 /
//! portable), on the same padded scratch.
//!
//! # Fused BatchNorm statistics
//!
//! [`conv2d_forward_stats`] also returns the per-channel sums `Σ y` and
//! `Σ y²` of its output (a [`ChannelSums`]), so the BatchNorm that follows
//! needs no statistics pass over the tensor. The SIMD tiles accumulate them
//! right after their store, from the accumulator registers, except the
//! 12 × 32 zmm tile, which reads its outputs back while they are in L1 (its
//! 24 accumulators, kept live past the FMA loop for the sums, made it spill
//! some inside that loop): each vector of outputs is widened to two f64
//! vectors (the square of an f32 is exact in f64, so an FMA equals a
//! multiply then an add) and added to per-image f64 sums. Other paths
//! (portable, depthwise, channels left to the scalar path) run the same f64
//! loop over the image they just wrote, while it is in cache. Per channel
//! every image sums its pixels in order `p = 0, 1, ...`, then images are
//! combined in sample order, so the sums are bitwise the same as a plain
//! loop in that order and do not depend on the thread count or on which
//! path computed which channel.
//!
//! # Determinism
//!
//! Every output element is one sum over `k` in the fixed `(ky, kx, ci)` order,
//! computed by one thread; images are distributed over rayon threads, so the
//! result does not depend on the thread count. The AVX2 path uses fused
//! multiply-adds and the portable path separate multiply and add, so the two
//! paths may differ in the last bits (tests compare them with a tolerance).

use rayon::prelude::*;

use super::{Conv2dSpec, ConvAlgo};

#[path = "winograd.rs"]
pub mod winograd;
use crate::error::{Error, Result};
use crate::ops::batchnorm::ChannelSums;
use crate::ops::{check_len, check_param, check_shape};
use crate::tensor::{Shape, Tensor};

/// Which CPU microkernel a call may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvKernel {
    /// The fastest the CPU supports (AVX2 + FMA when detected at run time).
    #[default]
    Auto,
    /// The portable Rust kernel (no explicit SIMD), on every target.
    Portable,
    /// AVX2 + FMA even where AVX-512 is available (when the CPU has AVX2
    /// and FMA; otherwise the portable kernel). Tests compare it with the
    /// AVX-512 kernel, which must give the same bits.
    Avx2,
}

/// `y = conv2d(x, w)`. `x` is `[n, h, w, cin]`, `w` has
/// [`Conv2dSpec::weight_len`] elements in the `[kh][kw][cin_g][cout]` layout,
/// `y` must already have the shape [`Conv2dSpec::out_shape`] gives; every
/// element of `y` is overwritten.
pub fn conv2d_forward(spec: &Conv2dSpec, x: &Tensor, w: &[f32], y: &mut Tensor) -> Result<()> {
    conv2d_forward_with(spec, x, w, y, false, ConvKernel::Auto)
}

/// `y = conv2d(relu(x), w)`: the ReLU is applied while the input is copied
/// into the padded scratch, so it costs no extra pass over `x` (the NB201
/// op is ReLU → conv → BN). `x` is not modified.
pub fn conv2d_forward_relu_input(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
) -> Result<()> {
    conv2d_forward_with(spec, x, w, y, true, ConvKernel::Auto)
}

/// [`conv2d_forward`] / [`conv2d_forward_relu_input`] with an explicit
/// choice of microkernel (tests compare the SIMD and portable paths).
pub fn conv2d_forward_with(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu_input: bool,
    kernel: ConvKernel,
) -> Result<()> {
    conv_impl(spec, x, w, y, relu_input, kernel, ConvAlgo::Exact, false).map(|_| ())
}

/// [`conv2d_forward_with`] that also returns the per-channel sums of `y`
/// over `(n, oh, ow)` for a following training-mode BatchNorm (see the
/// module docs: accumulated in f64 while the output tiles are stored,
/// bitwise equal to a plain per-image, pixel-order loop combined in sample
/// order). `y` itself is bitwise the same as [`conv2d_forward_with`]'s.
pub fn conv2d_forward_stats(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu_input: bool,
    kernel: ConvKernel,
) -> Result<ChannelSums> {
    let sums = conv_impl(spec, x, w, y, relu_input, kernel, ConvAlgo::Exact, true)?;
    sums.ok_or_else(|| Error::Internal("conv2d: statistics were not computed".into()))
}

/// The conv by algorithm `algo`: [`ConvAlgo::Exact`] is
/// [`conv2d_forward_with`] (or, with `want_stats`,
/// [`conv2d_forward_stats`]); [`ConvAlgo::Fast`] runs 3×3 stride-1 convs
/// by Winograd F(4×4, 3×3) ([`winograd`]; equal up to rounding) and every
/// other conv directly. Returns the channel sums when `want_stats`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_algo(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu_input: bool,
    kernel: ConvKernel,
    algo: ConvAlgo,
    want_stats: bool,
) -> Result<Option<ChannelSums>> {
    conv_impl(spec, x, w, y, relu_input, kernel, algo, want_stats)
}

/// The conv by Winograd F(4×4, 3×3) whatever its channel counts (where
/// [`ConvAlgo::Fast`] would choose the direct conv too); an error for a
/// conv it cannot compute ([`winograd::supports`]). For tests and benches.
pub fn conv2d_forward_winograd(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu_input: bool,
    kernel: ConvKernel,
    want_stats: bool,
) -> Result<Option<ChannelSums>> {
    check_conv_args(spec, x, w, y)?;
    winograd::forward(spec, x, w, y, relu_input, kernel.simd(), want_stats)
}

/// The shared body: checks, plans, runs every image in parallel and, with
/// `want_stats`, combines the per-image channel sums in sample order.
#[allow(clippy::too_many_arguments)]
fn conv_impl(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu_input: bool,
    kernel: ConvKernel,
    algo: ConvAlgo,
    want_stats: bool,
) -> Result<Option<ChannelSums>> {
    let out = check_conv_args(spec, x, w, y)?;

    let simd = kernel.simd();
    if algo == ConvAlgo::Fast && winograd::applies(spec) {
        return winograd::forward(spec, x, w, y, relu_input, simd, want_stats);
    }
    let plan = Plan::new(spec, x.shape.h, x.shape.w, out.h, out.w, relu_input, simd)?;
    let panels = plan.pack_weights(w);
    let wpk = panels.as_slice();

    let in_img = x.shape.per_sample();
    let out_img = out.per_sample();
    let scratch_len = if plan.copy_input {
        plan.hp * plan.wp * plan.cin
    } else {
        0
    };
    let one_image = |scratch: &mut Vec<f32>,
                     n: usize,
                     yimg: &mut [f32],
                     ximg: &[f32],
                     stats: Option<&mut [f64]>| {
        // The image this thread most likely takes next (rayon hands
        // out contiguous ranges): prefetched while this one runs.
        let next = x.data.get((n + 1) * in_img..(n + 2) * in_img);
        let src: &[f32] = if plan.copy_input {
            plan.fill_padded(ximg, scratch);
            scratch
        } else {
            ximg
        };
        let weights = ImageWeights {
            plain: w,
            packed: wpk,
        };
        plan.run_image(src, weights, yimg, simd, next.unwrap_or(&[]), stats);
    };
    // Zeroed once per rayon job; only the interior is ever written, so the
    // padding border stays zero across images.
    let init = || vec![0.0f32; scratch_len];
    if !want_stats {
        y.data
            .par_chunks_mut(out_img)
            .zip(x.data.par_chunks(in_img))
            .enumerate()
            .for_each_init(init, |scratch, (n, (yimg, ximg))| {
                one_image(scratch, n, yimg, ximg, None)
            });
        return Ok(None);
    }
    // Per image: `[Σ y per channel (cout)][Σ y² per channel (cout)]`.
    let cout = spec.cout;
    let mut per_image = vec![0.0f64; x.shape.n * 2 * cout];
    y.data
        .par_chunks_mut(out_img)
        .zip(x.data.par_chunks(in_img))
        .zip(per_image.par_chunks_mut(2 * cout))
        .enumerate()
        .for_each_init(init, |scratch, (n, ((yimg, ximg), st))| {
            one_image(scratch, n, yimg, ximg, Some(st))
        });
    Ok(Some(combine_image_sums(
        &per_image,
        cout,
        out.n * out.h * out.w,
    )))
}

/// The channel sums of a batch from per-image `[Σ y (cout)][Σ y² (cout)]`
/// blocks, combined in sample order (so they do not depend on which thread
/// computed which image); `count` values per channel.
fn combine_image_sums(per_image: &[f64], cout: usize, count: usize) -> ChannelSums {
    let mut sum = vec![0.0f64; cout];
    let mut sumsq = vec![0.0f64; cout];
    for st in per_image.chunks_exact(2 * cout) {
        let (s, q) = st.split_at(cout);
        for (a, &v) in sum.iter_mut().zip(s) {
            *a += v;
        }
        for (a, &v) in sumsq.iter_mut().zip(q) {
            *a += v;
        }
    }
    ChannelSums { count, sum, sumsq }
}

/// Checks a forward conv's input, weights and output against `spec`;
/// returns the output shape.
fn check_conv_args(spec: &Conv2dSpec, x: &Tensor, w: &[f32], y: &Tensor) -> Result<Shape> {
    let out = spec.out_shape(x.shape)?;
    check_len("conv2d", "input", x.shape, x.data.len())?;
    check_param("conv2d", "weight", spec.weight_len(), w.len())?;
    check_shape("conv2d", "output", out, y.shape)?;
    check_len("conv2d", "output", y.shape, y.data.len())?;
    Ok(out)
}

impl ConvKernel {
    /// The instruction set this choice runs on, on this CPU.
    fn simd(self) -> Simd {
        match self {
            ConvKernel::Auto => Simd::detect(),
            ConvKernel::Portable => Simd::Portable,
            ConvKernel::Avx2 => Simd::detect().at_most_avx2(),
        }
    }
}

/// The instruction set a call runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512F on top of AVX2 + FMA: 32- and 16-wide channel blocks in zmm
    /// registers, the 8-wide blocks on the AVX2 tiles.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                if is_x86_feature_detected!("avx512f") {
                    return Simd::Avx512;
                }
                return Simd::Avx2Fma;
            }
        }
        Simd::Portable
    }

    /// This instruction set, or AVX2 where it is AVX-512.
    fn at_most_avx2(self) -> Self {
        match self {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => Simd::Avx2Fma,
            s => s,
        }
    }

    /// Whether channel blocks may be 32 wide (two zmm vectors).
    fn wide_blocks(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self == Simd::Avx512
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// A run of reduction indices whose input values are contiguous: input
/// offset `off` (relative to a pixel's base offset) and length `len`. The
/// weight-panel index continues from one segment to the next.
#[derive(Clone, Copy, Debug)]
struct Seg {
    off: usize,
    len: usize,
}

/// A block of `width` (32, 16 or 8) output channels of one group, with its
/// weight panel at `wpk[panel..panel + K * width]`.
#[derive(Clone, Copy, Debug)]
struct Block {
    group: usize,
    co0: usize,
    width: usize,
    panel: usize,
    /// Channels of the block that exist (`width` but for a group's last
    /// channels on a SIMD path: `cout_g % 8` of an 8-wide block on AVX2,
    /// `cout_g % 16` of a 16-wide one on AVX-512, the panel zero beyond
    /// them and the stores masked).
    valid: usize,
}

/// Packed weight panels inside an over-allocated buffer (for alignment).
struct Panels {
    buf: Vec<f32>,
    start: usize,
    total: usize,
}

impl Panels {
    fn as_slice(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.total]
    }
}

/// Everything one call needs, computed once: geometry, segments, blocks.
#[derive(Debug)]
struct Plan {
    cin: usize,
    cout: usize,
    cin_g: usize,
    cout_g: usize,
    groups: usize,
    kh: usize,
    kw: usize,
    dil: usize,
    h: usize,
    w: usize,
    pad: usize,
    relu: bool,
    /// Whether the input goes through the padded scratch (`pad > 0` or
    /// ReLU, which is applied during the copy).
    copy_input: bool,
    /// Dimensions of the image the kernels read (padded scratch or input).
    hp: usize,
    wp: usize,
    oh: usize,
    ow: usize,
    /// Reduction length per output element.
    kdim: usize,
    segs: Vec<Seg>,
    /// Per output pixel `p = oy * ow + ox`: offset of its window origin
    /// `(oy * stride, ox * stride)` in the read image (no division in the
    /// tile loops).
    pix_base: Vec<usize>,
    blocks: Vec<Block>,
    /// The first group-local output channel left to the scalar path (the
    /// same in every group).
    scalar_from: usize,
    depthwise: bool,
}

/// A conv's weights as one image's pass reads them: the plain layout
/// `[kh][kw][cin_g][cout]` (scalar and depthwise paths) and the packed
/// panels of the tiled paths.
#[derive(Clone, Copy)]
struct ImageWeights<'a> {
    plain: &'a [f32],
    packed: &'a [f32],
}

impl Plan {
    fn new(
        spec: &Conv2dSpec,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        relu: bool,
        simd: Simd,
    ) -> Result<Self> {
        // With ReLU the input is always copied (ReLU applied in the copy):
        // measured faster than a max per broadcast inside the microkernel,
        // which competes with the FMAs for the FP pipes.
        let copy_input = spec.pad > 0 || relu;
        let (hp, wp) = if copy_input {
            (h + 2 * spec.pad, w + 2 * spec.pad)
        } else {
            (h, w)
        };
        let (cin, cin_g, cout_g, d) = (spec.cin, spec.cin_g(), spec.cout_g(), spec.dilation);
        let mut segs = Vec::new();
        if cin_g == cin && d == 1 {
            // One kernel row reads kw * cin contiguous values.
            for ky in 0..spec.kh {
                segs.push(Seg {
                    off: ky * wp * cin,
                    len: spec.kw * cin,
                });
            }
        } else {
            for ky in 0..spec.kh {
                for kx in 0..spec.kw {
                    segs.push(Seg {
                        off: (ky * d * wp + kx * d) * cin,
                        len: cin_g,
                    });
                }
            }
        }
        let kdim = spec.fan_in();
        let depthwise = cin_g == 1 && cout_g == 1;
        let mut blocks = Vec::new();
        let mut scalar_from = 0;
        if !depthwise {
            for g in 0..spec.groups {
                let mut c = 0;
                while c < cout_g {
                    // The last `cout_g % 8` channels: a masked 8-wide block
                    // on the SIMD paths (a scalar dot product each would
                    // run an order of magnitude slower: NB101's split
                    // channel counts such as 43 and 171 have them).
                    let (width, valid) = match cout_g - c {
                        r if r >= 32 && simd.wide_blocks() => (32, 32),
                        r if r >= 16 => (16, 16),
                        // AVX-512: one masked 16-wide block (the input is
                        // read once more instead of twice).
                        r if simd.wide_blocks() => (16, r),
                        r if r >= 8 => (8, 8),
                        r if simd != Simd::Portable => (8, r),
                        _ => break,
                    };
                    let panel = blocks
                        .last()
                        .map_or(0, |b: &Block| b.panel + kdim * b.width);
                    blocks.push(Block {
                        group: g,
                        co0: g * cout_g + c,
                        width,
                        panel,
                        valid,
                    });
                    c += valid;
                }
                scalar_from = c;
            }
        }
        let mut pix_base = Vec::with_capacity(oh * ow);
        for oy in 0..oh {
            for ox in 0..ow {
                pix_base.push((oy * spec.stride * wp + ox * spec.stride) * cin);
            }
        }
        // The largest input index any tile reads must lie inside the image.
        let max_read = ((oh - 1) * spec.stride + (spec.kh - 1) * d) * wp * cin
            + ((ow - 1) * spec.stride + (spec.kw - 1) * d) * cin
            + cin
            - 1;
        if max_read >= hp * wp * cin {
            return Err(Error::Internal(format!(
                "conv2d: geometry error for {spec:?} on {h}x{w}"
            )));
        }
        Ok(Plan {
            cin,
            cout: spec.cout,
            cin_g,
            cout_g,
            groups: spec.groups,
            kh: spec.kh,
            kw: spec.kw,
            dil: d,
            h,
            w,
            pad: spec.pad,
            relu,
            copy_input,
            hp,
            wp,
            oh,
            ow,
            kdim,
            segs,
            pix_base,
            blocks,
            scalar_from,
            depthwise,
        })
    }

    /// Weight panels `[K][width]` of every block, concatenated, starting on
    /// a 64-byte boundary (every panel is a multiple of 32 bytes long, so no
    /// vector load of a 16- or 8-wide row straddles a cache line).
    fn pack_weights(&self, w: &[f32]) -> Panels {
        let total: usize = self.blocks.iter().map(|b| self.kdim * b.width).sum();
        let buf = vec![0.0f32; total + 15];
        let start = buf.as_ptr().align_offset(64).min(15);
        let mut panels = Panels { buf, start, total };
        let out = &mut panels.buf[start..start + total];
        for b in &self.blocks {
            let panel = &mut out[b.panel..b.panel + self.kdim * b.width];
            for (k, row) in panel.chunks_exact_mut(b.width).enumerate() {
                let src = k * self.cout + b.co0;
                // Zeros beyond `valid` (the buffer starts zeroed).
                row[..b.valid].copy_from_slice(&w[src..src + b.valid]);
            }
        }
        panels
    }

    /// Copies one image into the interior of the padded scratch, applying
    /// the ReLU when asked. The border is never written (it stays zero).
    fn fill_padded(&self, ximg: &[f32], scratch: &mut [f32]) {
        let row = self.w * self.cin;
        for yy in 0..self.h {
            let dst0 = ((yy + self.pad) * self.wp + self.pad) * self.cin;
            let dst = &mut scratch[dst0..dst0 + row];
            let src = &ximg[yy * row..(yy + 1) * row];
            if self.relu {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = relu(s);
                }
            } else {
                dst.copy_from_slice(src);
            }
        }
    }

    /// Offset in the read image of output pixel `p`'s window origin.
    #[inline(always)]
    fn pixel_base(&self, p: usize) -> usize {
        self.pix_base[p]
    }

    /// Computes every output element of one image.
    ///
    /// `next` (possibly empty) is prefetched into L2 over the course of the
    /// image (AVX2 path), so the next image's input is not read at DRAM
    /// latency.
    ///
    /// With `stats` (`2 * cout` zeros: `[Σ y][Σ y²]` per channel), also
    /// accumulates this image's channel sums in pixel order.
    fn run_image(
        &self,
        src: &[f32],
        weights: ImageWeights<'_>,
        yimg: &mut [f32],
        simd: Simd,
        next: &[f32],
        stats: Option<&mut [f64]>,
    ) {
        let ImageWeights {
            plain: w,
            packed: wpk,
        } = weights;
        if self.depthwise {
            let g = super::depthwise::DwGeom {
                c: self.cout,
                kh: self.kh,
                kw: self.kw,
                dil: self.dil,
                wp: self.wp,
                pix_base: &self.pix_base,
            };
            let path = if simd == Simd::Portable {
                super::depthwise::DwPath::Portable
            } else {
                super::depthwise::DwPath::detect()
            };
            super::depthwise::image(&g, src, w, yimg, path);
            if let Some(st) = stats {
                image_sums(yimg, self.cout, 0..self.cout, st);
            }
            return;
        }
        match simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2Fma | Simd::Avx512 => {
                let wide = simd == Simd::Avx512;
                // SAFETY: `Simd::Avx2Fma` is only chosen after
                // `is_x86_feature_detected!` found both AVX2 and FMA, and
                // `Simd::Avx512` after it found AVX-512F too.
                match stats {
                    Some(st) => {
                        // SAFETY: the features are detected (above).
                        unsafe { x86::blocks_image::<true>(self, src, wpk, yimg, next, st, wide) };
                        if self.scalar_from < self.cout_g {
                            self.scalar_channels(src, w, yimg);
                            // Only the channels the tiles did not cover.
                            for g in 0..self.groups {
                                let r = g * self.cout_g + self.scalar_from..(g + 1) * self.cout_g;
                                image_sums(yimg, self.cout, r, st);
                            }
                        }
                        return;
                    }
                    // SAFETY: the features are detected (above).
                    None => unsafe {
                        x86::blocks_image::<false>(self, src, wpk, yimg, next, &mut [], wide)
                    },
                }
            }
            Simd::Portable => {
                let _ = next; // the portable path does not prefetch
                self.blocks_image_portable(src, wpk, yimg)
            }
        }
        if self.scalar_from < self.cout_g {
            self.scalar_channels(src, w, yimg);
        }
        if let Some(st) = stats {
            image_sums(yimg, self.cout, 0..self.cout, st);
        }
    }

    /// Portable tiles: the same blocking as the AVX2 path.
    fn blocks_image_portable(&self, src: &[f32], wpk: &[f32], yimg: &mut [f32]) {
        let npix = self.oh * self.ow;
        for b in &self.blocks {
            let panel = &wpk[b.panel..b.panel + self.kdim * b.width];
            let goff = b.group * self.cin_g;
            let mut p = 0;
            while p < npix {
                let m = (npix - p).min(PORTABLE_MR);
                let mut bases = [0usize; PORTABLE_MR];
                for (i, base) in bases.iter_mut().enumerate().take(m) {
                    *base = self.pixel_base(p + i) + goff;
                }
                let out = &mut yimg[p * self.cout + b.co0..];
                let (sg, l) = (&self.segs[..], self.cout);
                match (b.width, m) {
                    (16, 4) => tile_portable::<4, 2>(src, &bases, sg, panel, out, l),
                    (16, 3) => tile_portable::<3, 2>(src, &bases, sg, panel, out, l),
                    (16, 2) => tile_portable::<2, 2>(src, &bases, sg, panel, out, l),
                    (16, _) => tile_portable::<1, 2>(src, &bases, sg, panel, out, l),
                    (_, 4) => tile_portable::<4, 1>(src, &bases, sg, panel, out, l),
                    (_, 3) => tile_portable::<3, 1>(src, &bases, sg, panel, out, l),
                    (_, 2) => tile_portable::<2, 1>(src, &bases, sg, panel, out, l),
                    (_, _) => tile_portable::<1, 1>(src, &bases, sg, panel, out, l),
                }
                p += m;
            }
        }
    }

    /// Output channels `scalar_from..cout_g` of every group, one dot product each.
    fn scalar_channels(&self, src: &[f32], w: &[f32], yimg: &mut [f32]) {
        let npix = self.oh * self.ow;
        for g in 0..self.groups {
            let goff = g * self.cin_g;
            for co in g * self.cout_g + self.scalar_from..(g + 1) * self.cout_g {
                for p in 0..npix {
                    let base = self.pixel_base(p) + goff;
                    let mut acc = 0.0f32;
                    let mut k = 0;
                    for s in &self.segs {
                        let xs = &src[base + s.off..base + s.off + s.len];
                        for &xv in xs {
                            acc += xv * w[k * self.cout + co];
                            k += 1;
                        }
                    }
                    yimg[p * self.cout + co] = acc;
                }
            }
        }
    }
}

/// Adds to `st = [Σ y (cout)][Σ y² (cout)]` the values of channels `chans`
/// of one NHWC image `yimg` (`cout` channels a pixel), pixel by pixel in
/// order, in f64 (`y²` of an f32 is exact in f64, so this equals the AVX2
/// tiles' FMA bit for bit).
fn image_sums(yimg: &[f32], cout: usize, chans: std::ops::Range<usize>, st: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if Simd::detect() == Simd::Avx512 {
        // SAFETY: AVX-512F was detected at run time.
        return unsafe { image_sums_avx512(yimg, cout, chans, st) };
    }
    image_sums_body(yimg, cout, chans, st)
}

/// [`image_sums_body`] compiled for AVX-512 (8 f64 lanes; the same adds
/// and multiplies in the same order, no contraction: the same bits).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn image_sums_avx512(
    yimg: &[f32],
    cout: usize,
    chans: std::ops::Range<usize>,
    st: &mut [f64],
) {
    image_sums_body(yimg, cout, chans, st)
}

#[inline(always)]
fn image_sums_body(yimg: &[f32], cout: usize, chans: std::ops::Range<usize>, st: &mut [f64]) {
    let (sum, sumsq) = st.split_at_mut(cout);
    let (sum, sumsq) = (&mut sum[chans.clone()], &mut sumsq[chans.clone()]);
    for px in yimg.chunks_exact(cout) {
        for ((s, q), &v) in sum.iter_mut().zip(sumsq.iter_mut()).zip(&px[chans.clone()]) {
            let v = v as f64;
            *s += v;
            *q += v * v;
        }
    }
}

/// ReLU as `x > 0 ? x : 0` (not `f32::max`), so -0.0 and NaN give +0.0,
/// like `crate::ops::relu`.
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Pixels per portable tile.
const PORTABLE_MR: usize = 4;

/// Portable tile: `M` pixels × `8 * V` output channels. `out` starts at
/// the first pixel's first channel of the block; pixel `m` is at
/// `out[m * ldo..]`. Written with fixed-size arrays and per-segment slices
/// so that the compiler can drop bounds checks and vectorise over channels.
fn tile_portable<const M: usize, const V: usize>(
    src: &[f32],
    bases: &[usize; PORTABLE_MR],
    segs: &[Seg],
    panel: &[f32],
    out: &mut [f32],
    ldo: usize,
) {
    let mut acc = [[[0.0f32; 8]; V]; M];
    let width = 8 * V;
    let mut k = 0;
    for s in segs {
        let xs: [&[f32]; M] =
            std::array::from_fn(|m| &src[bases[m] + s.off..bases[m] + s.off + s.len]);
        let wseg = &panel[k * width..(k + s.len) * width];
        for (i, wrow) in wseg.chunks_exact(width).enumerate() {
            for (am, x) in acc.iter_mut().zip(&xs) {
                let xv = x[i];
                for (av, wv) in am.iter_mut().zip(wrow.chunks_exact(8)) {
                    for (a, &w) in av.iter_mut().zip(wv) {
                        *a += xv * w;
                    }
                }
            }
        }
        k += s.len;
    }
    for (m, am) in acc.iter().enumerate() {
        let o = &mut out[m * ldo..m * ldo + width];
        for (ov, av) in o.chunks_exact_mut(8).zip(am) {
            ov.copy_from_slice(av);
        }
    }
}

// ---------------------------------------------------------------------------
// Backward pass
// ---------------------------------------------------------------------------

/// `dx = ∂L/∂x` of `y = conv2d(x, w)` given `dy = ∂L/∂y`. `input_shape` is
/// `x`'s shape (the values of `x` are not needed), `dy` has the shape
/// [`Conv2dSpec::out_shape`] gives, `dx` must have `input_shape` and is
/// fully overwritten.
///
/// The gradient of a convolution with respect to its input is itself a
/// convolution, run by the fast forward kernel: of `dy` (upsampled by the
/// stride, i.e. zeros between its pixels, and offset by
/// `L = dilation · (k − 1) − pad` pixels on each axis) with the weights
/// flipped in (ky, kx) and transposed per group to `[kh][kw][cout_g][cin]`,
/// stride 1, same dilation. When `stride == 1`, `kh == kw` and `L ≥ 0` that
/// offset is the forward kernel's own symmetric zero padding, so `dy` is
/// read in place; otherwise `dy` is first scattered into a zero buffer of
/// `[n, h + dil·(kh−1), w + dil·(kw−1), cout]`.
pub fn conv2d_backward_input(
    spec: &Conv2dSpec,
    input_shape: Shape,
    dy: &Tensor,
    w: &[f32],
    dx: &mut Tensor,
) -> Result<()> {
    let out = spec.out_shape(input_shape)?;
    check_shape("conv2d backward", "dy", out, dy.shape)?;
    check_len("conv2d backward", "dy", dy.shape, dy.data.len())?;
    check_param("conv2d backward", "weight", spec.weight_len(), w.len())?;
    check_shape("conv2d backward", "dx", input_shape, dx.shape)?;
    check_len("conv2d backward", "dx", dx.shape, dx.data.len())?;
    let wt = transpose_flip_weights(spec, w);
    let d = spec.dilation;
    let span_h = d * (spec.kh - 1);
    let span_w = d * (spec.kw - 1);
    let tspec = Conv2dSpec {
        cin: spec.cout,
        cout: spec.cin,
        kh: spec.kh,
        kw: spec.kw,
        stride: 1,
        pad: 0,
        dilation: d,
        groups: spec.groups,
    };
    if spec.stride == 1 && spec.kh == spec.kw && spec.pad <= span_h {
        let tspec = Conv2dSpec {
            pad: span_h - spec.pad,
            ..tspec
        };
        return conv2d_forward(&tspec, dy, &wt, dx);
    }
    // General case: P[n][u][v] = dy[n][oy][ox] at u = oy·s + Lh,
    // v = ox·s + Lw (dropped when outside P), zero elsewhere.
    let (hp, wp) = (input_shape.h + span_h, input_shape.w + span_w);
    let lh = span_h as isize - spec.pad as isize;
    let lw = span_w as isize - spec.pad as isize;
    let c = spec.cout;
    let pshape = Shape::new(out.n, hp, wp, c);
    let mut p = Tensor::zeros(pshape);
    p.data
        .par_chunks_mut(hp * wp * c)
        .zip(dy.data.par_chunks(out.per_sample()))
        .for_each(|(pimg, dimg)| {
            for oy in 0..out.h {
                let u = (oy * spec.stride) as isize + lh;
                if u < 0 || u >= hp as isize {
                    continue;
                }
                for ox in 0..out.w {
                    let v = (ox * spec.stride) as isize + lw;
                    if v < 0 || v >= wp as isize {
                        continue;
                    }
                    let dst = (u as usize * wp + v as usize) * c;
                    let src = (oy * out.w + ox) * c;
                    pimg[dst..dst + c].copy_from_slice(&dimg[src..src + c]);
                }
            }
        });
    conv2d_forward(&tspec, &p, &wt, dx)
}

/// The weights of the input-gradient convolution: `wt[ky'][kx'][co_l][ci]
/// = w[kh−1−ky'][kw−1−kx'][ci_l][co]` with `ci = g·cin_g + ci_l`,
/// `co = g·cout_g + co_l` (layout `[kh][kw][cout_g][cin]`, i.e. the
/// crate's weight layout for a conv from `cout` to `cin` channels).
fn transpose_flip_weights(spec: &Conv2dSpec, w: &[f32]) -> Vec<f32> {
    let (cin, cout, cin_g, cout_g) = (spec.cin, spec.cout, spec.cin_g(), spec.cout_g());
    let mut wt = vec![0.0f32; w.len()];
    for ky in 0..spec.kh {
        for kx in 0..spec.kw {
            let src_tap = (spec.kh - 1 - ky) * spec.kw + (spec.kw - 1 - kx);
            let dst_tap = ky * spec.kw + kx;
            for ci in 0..cin {
                let (g, ci_l) = (ci / cin_g, ci % cin_g);
                for co_l in 0..cout_g {
                    let co = g * cout_g + co_l;
                    wt[(dst_tap * cout_g + co_l) * cin + ci] =
                        w[(src_tap * cin_g + ci_l) * cout + co];
                }
            }
        }
    }
    wt
}

/// `dw = ∂L/∂w` of `y = conv2d(x, w)` given `dy`; `dw` (layout
/// `[kh][kw][cin_g][cout]`) is fully overwritten.
///
/// `dw[ky][kx][ci][co] = Σ_{n, oy, ox} x[n][oy·s + ky·d − p][ox·s + kx·d −
/// p][g·cin_g + ci] · dy[n][oy][ox][co]`. Each image's sum is computed by
/// one thread in f32, in a fixed order (pixels row-major for each
/// (tap, ci, co)), and the per-image partials are added in sample order in
/// f64, so the result does not depend on the thread count.
pub fn conv2d_backward_weight(
    spec: &Conv2dSpec,
    x: &Tensor,
    dy: &Tensor,
    dw: &mut [f32],
) -> Result<()> {
    weight_grad(spec, x, dy, dw, false)
}

/// [`conv2d_backward_weight`] of `y = conv2d(relu(x), w)` (the fused
/// ReLU → conv of [`conv2d_forward_relu_input`]): the ReLU is applied to
/// `x` while the image is read, `x` is not modified.
pub fn conv2d_backward_weight_relu_input(
    spec: &Conv2dSpec,
    x: &Tensor,
    dy: &Tensor,
    dw: &mut [f32],
) -> Result<()> {
    weight_grad(spec, x, dy, dw, true)
}

fn weight_grad(
    spec: &Conv2dSpec,
    x: &Tensor,
    dy: &Tensor,
    dw: &mut [f32],
    relu_input: bool,
) -> Result<()> {
    let out = spec.out_shape(x.shape)?;
    check_len("conv2d backward", "input", x.shape, x.data.len())?;
    check_shape("conv2d backward", "dy", out, dy.shape)?;
    check_len("conv2d backward", "dy", dy.shape, dy.data.len())?;
    check_param("conv2d backward", "dw", spec.weight_len(), dw.len())?;
    let g = WGrad {
        spec: *spec,
        h: x.shape.h,
        w: x.shape.w,
        oh: out.h,
        ow: out.w,
        relu: relu_input,
    };
    let avx2 = crate::ops::has_avx2_fma();
    let partials: Vec<Vec<f32>> = x
        .data
        .par_chunks(x.shape.per_sample())
        .zip(dy.data.par_chunks(out.per_sample()))
        .map(|(ximg, dimg)| {
            let mut part = vec![0.0f32; dw.len()];
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected at run time.
                unsafe { wgrad_image_avx2(&g, ximg, dimg, &mut part) };
                return part;
            }
            let _ = avx2;
            g.image(ximg, dimg, &mut part);
            part
        })
        .collect();
    let mut acc = vec![0.0f64; dw.len()];
    for part in &partials {
        for (a, &v) in acc.iter_mut().zip(part) {
            *a += v as f64;
        }
    }
    for (o, a) in dw.iter_mut().zip(&acc) {
        *o = *a as f32;
    }
    Ok(())
}

/// Geometry of one weight-gradient call.
struct WGrad {
    spec: Conv2dSpec,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    relu: bool,
}

/// [`WGrad::image`] compiled for AVX2 (the same operations in the same
/// order: multiply and add stay separate, so the result is bitwise equal).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn wgrad_image_avx2(g: &WGrad, ximg: &[f32], dimg: &[f32], part: &mut [f32]) {
    g.image(ximg, dimg, part)
}

/// Output channels per weight-gradient accumulator block.
const WG_CO: usize = 16;
/// Input channels per weight-gradient accumulator block.
const WG_CI: usize = 4;

impl WGrad {
    /// Output rows (or columns) whose tap `k` lands inside an input axis of
    /// length `len`: `o·s + k·d − p ∈ [0, len)`, as a range of `o`.
    fn valid(&self, k: usize, len: usize, olen: usize) -> std::ops::Range<usize> {
        let (s, off) = (
            self.spec.stride,
            (k * self.spec.dilation) as isize - self.spec.pad as isize,
        );
        // Smallest o with o·s + off >= 0; largest with o·s + off <= len − 1.
        let lo = if off >= 0 {
            0
        } else {
            ((-off) as usize).div_ceil(s)
        };
        let hi_num = len as isize - 1 - off;
        let hi = if hi_num < 0 {
            0
        } else {
            (hi_num as usize / s + 1).min(olen)
        };
        lo.min(hi)..hi
    }

    /// One image's weight gradient into `part` (`[kh][kw][cin_g][cout]`).
    #[inline(always)]
    fn image(&self, ximg: &[f32], dimg: &[f32], part: &mut [f32]) {
        let sp = &self.spec;
        let (cout, cin_g, cout_g) = (sp.cout, sp.cin_g(), sp.cout_g());
        let relu_copy;
        let x: &[f32] = if self.relu {
            relu_copy = ximg.iter().map(|&v| relu(v)).collect::<Vec<f32>>();
            &relu_copy
        } else {
            ximg
        };
        for ky in 0..sp.kh {
            let rows = self.valid(ky, self.h, self.oh);
            for kx in 0..sp.kw {
                let cols = self.valid(kx, self.w, self.ow);
                let tap = ky * sp.kw + kx;
                for grp in 0..sp.groups {
                    let mut co = 0;
                    while co < cout_g {
                        let width = if cout_g - co >= WG_CO { WG_CO } else { 1 };
                        let mut ci = 0;
                        while ci < cin_g {
                            let nci = if cin_g - ci >= WG_CI { WG_CI } else { 1 };
                            let t = Tile {
                                ci0: grp * cin_g + ci,
                                co0: grp * cout_g + co,
                                ky,
                                kx,
                            };
                            let mut acc = [[0.0f32; WG_CO]; WG_CI];
                            match (width, nci) {
                                (WG_CO, WG_CI) => {
                                    self.tile::<WG_CO, WG_CI>(x, dimg, &t, &rows, &cols, &mut acc)
                                }
                                (WG_CO, _) => {
                                    self.tile::<WG_CO, 1>(x, dimg, &t, &rows, &cols, &mut acc)
                                }
                                (_, WG_CI) => {
                                    self.tile::<1, WG_CI>(x, dimg, &t, &rows, &cols, &mut acc)
                                }
                                _ => self.tile::<1, 1>(x, dimg, &t, &rows, &cols, &mut acc),
                            }
                            for (i, row) in acc.iter().enumerate().take(nci) {
                                let base = (tap * cin_g + ci + i) * cout + t.co0;
                                part[base..base + width].copy_from_slice(&row[..width]);
                            }
                            ci += nci;
                        }
                        co += width;
                    }
                }
            }
        }
    }

    /// `acc[i][j] = Σ_{oy ∈ rows, ox ∈ cols} x[iy][ix][ci0 + i] ·
    /// dy[oy][ox][co0 + j]` for `i < CI`, `j < CO`, pixels row-major.
    #[inline(always)]
    fn tile<const CO: usize, const CI: usize>(
        &self,
        x: &[f32],
        dimg: &[f32],
        t: &Tile,
        rows: &std::ops::Range<usize>,
        cols: &std::ops::Range<usize>,
        acc: &mut [[f32; WG_CO]; WG_CI],
    ) {
        let sp = &self.spec;
        let mut a = [[0.0f32; CO]; CI];
        for oy in rows.clone() {
            let iy = oy * sp.stride + t.ky * sp.dilation - sp.pad;
            for ox in cols.clone() {
                let ix = ox * sp.stride + t.kx * sp.dilation - sp.pad;
                let xb = (iy * self.w + ix) * sp.cin + t.ci0;
                let xs: &[f32; CI] = x[xb..xb + CI].try_into().unwrap();
                let db = (oy * self.ow + ox) * sp.cout + t.co0;
                let ds: &[f32; CO] = dimg[db..db + CO].try_into().unwrap();
                for (ai, &xv) in a.iter_mut().zip(xs) {
                    for (av, &dv) in ai.iter_mut().zip(ds) {
                        *av += xv * dv;
                    }
                }
            }
        }
        for (dst, src) in acc.iter_mut().zip(&a) {
            dst[..CO].copy_from_slice(src);
        }
    }
}

/// Which block of a weight gradient a tile computes.
struct Tile {
    ci0: usize,
    co0: usize,
    ky: usize,
    kx: usize,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SIMD tiles, written once over [`Lanes`]: AVX2 + FMA ([`Ymm`],
    //! 8 lanes) runs 16- and 8-wide blocks, AVX-512F ([`Zmm`], 16 lanes)
    //! 32- and 16-wide ones. Every function here requires AVX2 and FMA,
    //! the zmm ones AVX-512F too (callers check with
    //! `is_x86_feature_detected!`).
    //!
    //! Both widths compute each output element as the same chain of fused
    //! multiply-adds over `k` in segment order, starting from zero, and add
    //! the BatchNorm sums in the same pixel order, so their results are
    //! bitwise equal (tests check it).

    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};

    use super::super::lanes::{Lanes, Ymm, Zmm};
    use super::{Block, Plan, Seg};

    /// Pixels per AVX2 tile of a 16-wide block: 12 ymm accumulators, 2
    /// weight vectors and 1 broadcast = 15 of the 16 registers.
    const MR16: usize = 6;
    /// Pixels per AVX2 tile of an 8-wide block (8 accumulators).
    const MR8: usize = 8;

    /// Pixels per AVX-512 tile of a 32-wide block (24 zmm accumulators).
    const MR32_512: usize = 12;
    /// Pixels per AVX-512 tile of a 16-wide block (14 zmm accumulators).
    const MR16_512: usize = 14;
    /// The most pixels of any tile (the length of its offsets array).
    const MAX_MR: usize = MR16_512;

    /// One image as the blocks see it: the image the tiles read (`src`,
    /// `[hp][wp][cin]`), the weight panels (`wpk`), the output image
    /// (`yimg`, `[oh][ow][cout]`) and the statistics (`st`, `[Σ y per
    /// channel][Σ y² per channel]`, `2 * cout` values; empty without them).
    struct Image<'a> {
        plan: &'a Plan,
        src: &'a [f32],
        wpk: &'a [f32],
        yimg: &'a mut [f32],
        st: &'a mut [f64],
    }

    /// All 32/16/8-wide blocks of one image. `next` is prefetched into L2
    /// during the first block. With `S`, the tiles also add their channels'
    /// `Σ y` to `st[c]` and `Σ y²` to `st[cout + c]` (`st` has `2 * cout`
    /// values; ignored without `S`). With `wide` (AVX-512), 32- and
    /// 16-wide blocks run on zmm tiles.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and AVX-512F when `wide`.
    pub(super) unsafe fn blocks_image<const S: bool>(
        plan: &Plan,
        src: &[f32],
        wpk: &[f32],
        yimg: &mut [f32],
        next: &[f32],
        st: &mut [f64],
        wide: bool,
    ) {
        // These hold by construction (`Plan::new`, `pack_weights`, the
        // caller's chunking); checked once per image, they make the raw
        // pointer accesses of the tiles in bounds.
        assert!(src.len() >= plan.hp * plan.wp * plan.cin);
        assert!(yimg.len() == plan.oh * plan.ow * plan.cout);
        assert!(!S || st.len() == 2 * plan.cout);
        let mut img = Image {
            plan,
            src,
            wpk,
            yimg,
            st,
        };
        for (i, b) in plan.blocks.iter().enumerate() {
            assert!(b.panel + plan.kdim * b.width <= wpk.len());
            assert!(b.co0 + b.valid <= plan.cout);
            let pf = if i == 0 { next } else { &[] };
            if wide {
                block_512::<S>(&mut img, b, pf)
            } else {
                block_avx2::<S>(&mut img, b, pf)
            }
        }
    }

    /// One block on AVX2 tiles: 16 channels in two ymm vectors a pixel,
    /// 8 (or fewer, masked) in one.
    ///
    /// # Safety
    /// AVX2 + FMA; the bounds asserted in [`blocks_image`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2<const S: bool>(img: &mut Image<'_>, b: &Block, pf: &[f32]) {
        match b.width {
            16 => block::<Ymm, 2, MR16, S>(img, b, pf),
            _ => block::<Ymm, 1, MR8, S>(img, b, pf),
        }
    }

    /// One block on AVX-512 tiles: 32 channels in two zmm vectors a pixel,
    /// 16 (or fewer, masked) in one. AVX-512 plans make no 8-wide blocks;
    /// one would run on AVX2.
    ///
    /// # Safety
    /// AVX-512F, AVX2 and FMA; the bounds asserted in [`blocks_image`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn block_512<const S: bool>(img: &mut Image<'_>, b: &Block, pf: &[f32]) {
        match b.width {
            32 => block::<Zmm, 2, MR32_512, S>(img, b, pf),
            16 => block::<Zmm, 1, MR16_512, S>(img, b, pf),
            _ => block_avx2::<S>(img, b, pf),
        }
    }

    /// Block `b` (`N * V` output channels, `N` the lanes of `L`) over every
    /// pixel, `MR` pixels per tile (the last tile shorter), `pf` prefetched
    /// into L2 evenly over the tiles. A block with fewer channels than
    /// lanes in its last vector stores that vector through a mask, and so
    /// does every block where [`Lanes::MASK_FULL`].
    ///
    /// # Safety
    /// `L`'s instruction set and FMA; the bounds asserted in
    /// [`blocks_image`].
    #[inline(always)]
    unsafe fn block<L: Lanes, const V: usize, const MR: usize, const S: bool>(
        img: &mut Image<'_>,
        b: &Block,
        pf: &[f32],
    ) {
        // A panel row is `width` floats, and only the last vector may lack
        // channels: the tiles' reads and (masked) writes stay inside what
        // `blocks_image` asserted.
        assert!(b.width == L::N * V && b.valid > L::N * (V - 1));
        let tail = L::tail(b.valid - L::N * (V - 1));
        if L::MASK_FULL || b.valid < b.width {
            walk_tiles::<L, V, MR, S, true>(img, b, pf, tail)
        } else {
            walk_tiles::<L, V, MR, S, false>(img, b, pf, tail)
        }
    }

    /// The pixel loop of [`block`]: tiles of `MR` pixels, the last one
    /// shorter, each handed to [`tile`] (with `MASKED`, its last vector
    /// stored through `tail`).
    ///
    /// # Safety
    /// As [`block`], with `b.valid == b.width` unless `MASKED`.
    #[inline(always)]
    unsafe fn walk_tiles<
        L: Lanes,
        const V: usize,
        const MR: usize,
        const S: bool,
        const MASKED: bool,
    >(
        img: &mut Image<'_>,
        b: &Block,
        pf: &[f32],
        tail: L::M,
    ) {
        let plan = img.plan;
        // Statistics of this block's channels: `Σ y` at `stp[0..width]`,
        // `Σ y²` at `stp[cout..cout + width]` (in bounds: asserted in
        // `blocks_image`).
        let stp = if S {
            img.st.as_mut_ptr().add(b.co0)
        } else {
            std::ptr::null_mut()
        };
        let npix = plan.oh * plan.ow;
        let goff = b.group * plan.cin_g;
        // Prefetch `pf` (16 floats a cache line) evenly over the tiles.
        let tiles = npix.div_ceil(MR);
        let pf_per_tile = pf.len().div_ceil(16).div_ceil(tiles) * 16;
        let mut pf_at = 0;
        let mut p = 0;
        while p < npix {
            let pf_end = (pf_at + pf_per_tile).min(pf.len());
            while pf_at < pf_end {
                // A prefetch is a hint and never faults; the address is
                // inside `pf` anyway.
                _mm_prefetch::<_MM_HINT_T1>(pf.as_ptr().add(pf_at) as *const i8);
                pf_at += 16;
            }
            let m = (npix - p).min(MR);
            let mut bases = [0usize; MAX_MR];
            for (i, base) in bases.iter_mut().enumerate().take(m) {
                *base = plan.pixel_base(p + i) + goff;
            }
            // `Plan::new` checked that the largest input index a tile reads
            // (`pixel_base + goff + seg.off + seg.len - 1` over every pixel
            // and segment) is below `hp * wp * cin` <= src.len(); the panel
            // at `b.panel` holds `kdim * width` floats of `wpk`; output
            // pixels `p..p + m` hold channels `co0..co0 + valid` inside
            // `yimg` (asserted in `blocks_image`).
            let (s, ps, l) = (img.src.as_ptr(), &plan.segs[..], plan.cout);
            let w = img.wpk.as_ptr().add(b.panel);
            let o = img.yimg.as_mut_ptr().add(p * plan.cout + b.co0);
            // One instantiation per tile height up to `MR`.
            macro_rules! tiles {
                ($($m:literal)*) => {
                    match m {
                        $($m if $m <= MR => {
                            tile::<L, $m, V, S, MASKED>(s, &bases, ps, w, o, l, stp, tail)
                        })*
                        _ => tile::<L, 1, V, S, MASKED>(s, &bases, ps, w, o, l, stp, tail),
                    }
                };
            }
            tiles!(14 13 12 11 10 9 8 7 6 5 4 3 2);
            p += m;
        }
    }

    /// One tile: `M` pixels × `N * V` output channels in `M * V`
    /// accumulators (`N` the lanes of `L`). The shapes called keep them,
    /// the `V` weight vectors and the broadcast input in registers: 6 × 2
    /// and 8 × 1 of the 16 ymm, 12 × 2 and 14 × 1 of the 32 zmm (a
    /// one-vector zmm tile folds the broadcast into the FMA's memory
    /// operand). Accumulates `acc[m][v] += x[m][k] * W[k][N*v..N*v + N]`
    /// over all `k` in segment order (fixed), starting from zero, then
    /// stores each pixel's channels to `out + m * ldo`. With `S`, then
    /// adds each channel's values of the `M` pixels, in pixel order and
    /// widened to f64, to `stp[0..N*V]` and their squares to
    /// `stp[ldo..ldo + N*V]` (the square of an f32 is exact in f64, so the
    /// FMA rounds once, like an add); a tile wider than 16 channels reads
    /// those values back from the outputs it stored (see the module docs
    /// of `cpu.rs`), the others take them from the accumulators.
    ///
    /// # Safety
    /// `L`'s instruction set and FMA; for every `m < M` and segment `s`,
    /// `src[bases[m] + s.off .. + s.len]` is readable; `panel` holds
    /// `K * N * V` floats (`K` = total segment length); `out + m * ldo` has
    /// `N * V` writable (and, with `S`, read back) floats; with `S`,
    /// `stp[0..N*V]` and `stp[ldo..ldo + N*V]` are writable. With `MASKED`,
    /// only the lanes of `tail` are read or written in the last vector of
    /// the outputs and of the statistics, and only those need to be valid.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<L: Lanes, const M: usize, const V: usize, const S: bool, const MASKED: bool>(
        src: *const f32,
        bases: &[usize; MAX_MR],
        segs: &[Seg],
        panel: *const f32,
        out: *mut f32,
        ldo: usize,
        stp: *mut f64,
        tail: L::M,
    ) {
        let n = L::N;
        let mut acc = [[L::zero(); V]; M];
        let mut wk = panel;
        for s in segs {
            let ptrs: [*const f32; M] = std::array::from_fn(|m| src.add(bases[m] + s.off));
            for i in 0..s.len {
                let mut wv = [L::zero(); V];
                for (v, wvv) in wv.iter_mut().enumerate() {
                    *wvv = L::load(wk.add(n * v));
                }
                for (row, p) in acc.iter_mut().zip(&ptrs) {
                    let xb = L::splat(p.add(i));
                    for (a, &wvv) in row.iter_mut().zip(&wv) {
                        *a = L::fmadd(xb, wvv, *a);
                    }
                }
                wk = wk.add(n * V);
            }
        }
        // Only the last vector of a masked block goes through the mask.
        let masked = |v: usize| MASKED && v + 1 == V;
        for (m, row) in acc.iter().enumerate() {
            for (v, &a) in row.iter().enumerate() {
                let o = out.add(m * ldo + n * v);
                if masked(v) {
                    L::store_tail(o, tail, a)
                } else {
                    L::store(o, a)
                }
            }
        }
        if !S {
            return;
        }
        // Kept live for the sums, the 24 accumulators of the 12 × 32 zmm
        // tile made it spill some inside the FMA loop; read back from L1,
        // they die at the store. The narrower tiles do not spill, and a
        // read-back (which waits on the store just made) measured slower
        // there.
        let read_back = n * V > 16;
        // The f64 sums of lanes `0..N/2` and `N/2..N` of vector `v`.
        let (tlo, thi) = L::halves(tail);
        for v in 0..V {
            let (ps, pq, h) = (stp.add(n * v), stp.add(ldo + n * v), n / 2);
            let ld = |p: *const f64, t| {
                if masked(v) {
                    L::load_d_tail(p, t)
                } else {
                    L::load_d(p)
                }
            };
            let (mut s0, mut s1) = (ld(ps, tlo), ld(ps.add(h), thi));
            let (mut q0, mut q1) = (ld(pq, tlo), ld(pq.add(h), thi));
            for (m, row) in acc.iter().enumerate() {
                let o = out.add(m * ldo + n * v);
                let y = if !read_back {
                    row[v]
                } else if masked(v) {
                    L::load_tail(o, tail)
                } else {
                    L::load(o)
                };
                let (lo, hi) = L::widen(y);
                s0 = L::add_d(s0, lo);
                s1 = L::add_d(s1, hi);
                q0 = L::fmadd_d(lo, lo, q0);
                q1 = L::fmadd_d(hi, hi, q1);
            }
            let st = |p: *mut f64, t, x| {
                if masked(v) {
                    L::store_d_tail(p, t, x)
                } else {
                    L::store_d(p, x)
                }
            };
            st(ps, tlo, s0);
            st(ps.add(h), thi, s1);
            st(pq, tlo, q0);
            st(pq.add(h), thi, q1);
        }
    }
}

impl crate::ops::Forward<crate::ops::Cpu> for Conv2dSpec {
    /// The plain conv, the conv of a ReLU'd input, or (for the BatchNorm
    /// that reads it) the conv that also leaves its output's channel sums.
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        let x = a.input("conv2d", 0)?;
        let w = a.param("conv2d", 0)?;
        let (relu, conv) = (a.relu_input, a.conv);
        match a.partials_out.as_deref_mut() {
            Some(slot) => {
                let sums =
                    conv2d_forward_algo(self, x, w, a.out, relu, ConvKernel::Auto, conv, true)?;
                *slot = Some(sums.ok_or_else(|| {
                    Error::Internal("conv2d: statistics were not computed".into())
                })?);
            }
            None => {
                conv2d_forward_algo(self, x, w, a.out, relu, ConvKernel::Auto, conv, false)?;
            }
        }
        Ok(())
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for Conv2dSpec {
    /// The weight gradient (of the ReLU'd input, when the conv applied the
    /// ReLU), then the input gradient, masked by that ReLU.
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let x = a.input("conv2d", 0)?;
        let w = a.param("conv2d", 0)?;
        let (dy, relu) = (a.dy, a.relu_input);
        if a.wants_param_grads() {
            let mut dw = vec![0.0f32; w.len()];
            if relu {
                conv2d_backward_weight_relu_input(self, x, dy, &mut dw)?;
            } else {
                conv2d_backward_weight(self, x, dy, &mut dw)?;
            }
            a.add_param_grad("conv2d", 0, &dw)?;
        }
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            g.write(|dx| {
                conv2d_backward_input(self, x.shape, dy, w, dx)?;
                if relu {
                    crate::ops::relu::cpu::relu_backward_inplace(x, dx)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}
