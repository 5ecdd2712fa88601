//! Winograd F(4×4, 3×3) convolution on the CPU: the fast path of 3×3,
//! stride-1, undilated, ungrouped convs (`--conv fast`).
//!
//! # Why
//!
//! A direct 3×3 conv spends 9 multiply-adds per output per (input,
//! output) channel pair and is bound by the FMA rate. Winograd's minimal
//! filtering computes a 4×4 output tile from a 6×6 input tile with 36
//! element-wise products per channel pair instead of 144: 4× fewer
//! multiplications. The transforms cost additions only (a few per value),
//! and the 36 products of all channel pairs are 36 small GEMMs.
//!
//! The results differ from the direct conv by rounding (the transforms
//! scale values by up to 4·4 and the weight transform has fractions), so
//! the direct conv stays the exact reference and this path is chosen by
//! [`ConvAlgo::Fast`](super::ConvAlgo). The agreement of the scores is
//! measured, not assumed (docs/results.md, "Fast convolution").
//!
//! # Algorithm (Lavin & Gray, 2016)
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A` per channel pair, summed over input
//! channels, with the interpolation points 0, ±1, ±2, ∞. The weight
//! transform `U = G g Gᵀ` is done once per call in f64 and rounded once.
//!
//! # Data layout
//!
//! * Input and output NHWC (a pixel's channels contiguous), as every CPU op.
//! * Transformed weights `U[ξ][ci][co]` (`ξ < 36` the position in the 6×6
//!   tile): for each ξ a `[cin][cout]` matrix, i.e. the weights of a 1×1
//!   conv from `cin` to `cout` channels, packed into that conv's panels.
//! * Per block of `tb` output tiles of one image (tiles numbered row-major
//!   over the `⌈oh/4⌉ × ⌈ow/4⌉` grid), the transformed input
//!   `V[ξ][t][ci]` and the products `M[ξ][t][co]`: for each ξ, `V[ξ]` is a
//!   `tb`-pixel "image" of `cin` channels, and `M[ξ] = V[ξ] · U[ξ]` is
//!   exactly a 1×1 conv of it, so the GEMMs run on the direct conv's own
//!   tiles (AVX-512, AVX2 or portable, with its channel blocking).
//!   Blocks are sized so `V` and `M` stay within about 512 KiB (L2).
//! * The input transform reads a 6×6 window at `(4·ty − pad, 4·tx − pad)`,
//!   values outside the image are zeros, the ReLU (when fused) is applied
//!   as it loads; it works on 16 channels at a time (arrays the compiler
//!   vectorises), as does the output transform, which writes only the
//!   outputs inside the image.
//!
//! # Determinism
//!
//! Every output is computed by one thread in a fixed order (images are
//! spread over rayon threads), and the BatchNorm sums are the same
//! pixel-order f64 loop as the direct path's, so results do not depend on
//! the thread count.

use super::{combine_image_sums, image_sums, Plan, Simd};
use crate::error::Result;
use crate::ops::batchnorm::ChannelSums;
use crate::ops::conv2d::Conv2dSpec;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Positions in a 6×6 tile.
const XI: usize = 36;
/// Channels a transform handles at once (one zmm, two ymm).
const CW: usize = 16;
/// Bytes of `V` and `M` a tile block aims at (about L2).
const BLOCK_BYTES: usize = 512 << 10;

/// Whether the Winograd path computes this conv: 3×3, stride 1,
/// dilation 1, one group (any padding), and channel counts where it was
/// measured faster than the direct conv (Sapphire Rapids, 2 cores, B =
/// 128, AVX-512 both sides, the two interleaved while other builds ran): from 32 input channels (2.2× at 32, 2.6× at
/// 64, 2.8× at 128 channels), up to 256 × 256 channel pairs (2.2×). Below
/// 32 input channels the transforms cost more than the 4× fewer
/// multiplications save (0.7× at 16, 0.3× on the 3-channel stem); at 512
/// × 512 the 37 MB of transformed weights stream from memory for every
/// image (0.9×).
pub fn applies(spec: &Conv2dSpec) -> bool {
    supports(spec) && spec.cin >= 32 && spec.cin * spec.cout <= 256 * 256
}

/// Whether the Winograd path ([`super::conv2d_forward_winograd`]) accepts
/// this conv at all (the shape rule of the algorithm, whatever the speed):
/// 3×3, stride 1, dilation 1, one group.
pub fn supports(spec: &Conv2dSpec) -> bool {
    spec.kh == 3 && spec.kw == 3 && spec.stride == 1 && spec.dilation == 1 && spec.groups == 1
}

/// `G` of F(4×4, 3×3): the 6×3 weight interpolation matrix.
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `U[ξ][ci][co] = (G g Gᵀ)[ξ]` for every channel pair, from weights in the
/// conv layout `[3][3][cin][cout]`; in f64, rounded once.
fn transform_weights(spec: &Conv2dSpec, w: &[f32]) -> Vec<f32> {
    let (cin, cout) = (spec.cin, spec.cout);
    let mut u = vec![0.0f32; XI * cin * cout];
    for ci in 0..cin {
        for co in 0..cout {
            let g = |ky: usize, kx: usize| w[((ky * 3 + kx) * cin + ci) * cout + co] as f64;
            // t = G g (6×3), then U = t Gᵀ (6×6).
            let mut t = [[0.0f64; 3]; 6];
            for (i, row) in t.iter_mut().enumerate() {
                for (kx, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|ky| G[i][ky] * g(ky, kx)).sum();
                }
            }
            for i in 0..6 {
                for j in 0..6 {
                    let v: f64 = (0..3).map(|kx| t[i][kx] * G[j][kx]).sum();
                    u[((i * 6 + j) * cin + ci) * cout + co] = v as f32;
                }
            }
        }
    }
    u
}

/// `Bᵀ d` on one column of 6 values (each a vector of `CW` channels).
#[inline(always)]
fn bt(d: [&[f32; CW]; 6], out: [&mut [f32; CW]; 6]) {
    let [o0, o1, o2, o3, o4, o5] = out;
    for c in 0..CW {
        let (d0, d1, d2, d3, d4, d5) = (d[0][c], d[1][c], d[2][c], d[3][c], d[4][c], d[5][c]);
        o0[c] = 4.0 * d0 - 5.0 * d2 + d4;
        o1[c] = -4.0 * (d1 + d2) + d3 + d4;
        o2[c] = 4.0 * (d1 - d2) - d3 + d4;
        o3[c] = -2.0 * (d1 - d3) - d2 + d4;
        o4[c] = 2.0 * (d1 - d3) - d2 + d4;
        o5[c] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// `Aᵀ m` on one column of 6 values: 4 outputs.
#[inline(always)]
fn at(m: [&[f32; CW]; 6], out: [&mut [f32; CW]; 4]) {
    let [o0, o1, o2, o3] = out;
    for c in 0..CW {
        let (m0, m1, m2, m3, m4, m5) = (m[0][c], m[1][c], m[2][c], m[3][c], m[4][c], m[5][c]);
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        o0[c] = m0 + s12 + s34;
        o1[c] = d12 + 2.0 * d34;
        o2[c] = s12 + 4.0 * s34;
        o3[c] = d12 + 8.0 * d34 + m5;
    }
}

/// `src[at..at + cw]` as a full vector of `CW` channels, zeros beyond
/// `cw`. A whole vector is one fixed-size copy (a slice copy of run-time
/// length would be a `memcpy` call per 64 bytes, which dominated the
/// transforms).
#[inline(always)]
fn load(src: &[f32], at: usize, cw: usize) -> [f32; CW] {
    if cw == CW {
        if let Some(v) = src
            .get(at..at + CW)
            .and_then(|s| <[f32; CW]>::try_from(s).ok())
        {
            return v;
        }
    }
    let mut v = [0.0f32; CW];
    for (o, &x) in v.iter_mut().zip(&src[at..at + cw]) {
        *o = x;
    }
    v
}

/// Stores the first `cw` channels of `v` at `dst[at..]` (see [`load`]).
#[inline(always)]
fn store(dst: &mut [f32], at: usize, cw: usize, v: &[f32; CW]) {
    if cw == CW {
        if let Some(Ok(d)) = dst.get_mut(at..at + CW).map(<&mut [f32; CW]>::try_from) {
            *d = *v;
            return;
        }
    }
    for (o, &x) in dst[at..at + cw].iter_mut().zip(v) {
        *o = x;
    }
}

/// Geometry of one call.
struct Geometry {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    pad: usize,
    oh: usize,
    ow: usize,
    /// Tiles per row and column of the output.
    tw: usize,
    tiles: usize,
    relu: bool,
}

impl Geometry {
    /// Transforms tiles `t0..t0 + tb` of image `x` into `v` (`[ξ][tb][cin]`),
    /// compiled for the widest vectors `simd` allows (the 16-channel loops
    /// then take one zmm or two ymm registers; the crate's baseline target
    /// would give SSE2). The same operations in the same order on every
    /// path (no contraction into FMAs), so the same bits.
    fn input_transform(&self, simd: Simd, x: &[f32], t0: usize, tb: usize, v: &mut [f32]) {
        match simd {
            // SAFETY: `Simd::Avx512` / `Simd::Avx2Fma` are chosen only after
            // run-time detection of those features.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { self.input_transform_avx512(x, t0, tb, v) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, AVX2 and FMA were detected.
            Simd::Avx2Fma => unsafe { self.input_transform_avx2(x, t0, tb, v) },
            Simd::Portable => self.input_transform_body(x, t0, tb, v),
        }
    }

    /// [`Self::input_transform_body`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn input_transform_avx512(&self, x: &[f32], t0: usize, tb: usize, v: &mut [f32]) {
        self.input_transform_body(x, t0, tb, v)
    }

    /// [`Self::input_transform_body`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn input_transform_avx2(&self, x: &[f32], t0: usize, tb: usize, v: &mut [f32]) {
        self.input_transform_body(x, t0, tb, v)
    }

    #[inline(always)]
    fn input_transform_body(&self, x: &[f32], t0: usize, tb: usize, v: &mut [f32]) {
        let cin = self.cin;
        let mut d = [[0.0f32; CW]; XI];
        let mut tmp = [[0.0f32; CW]; XI];
        let mut vt = [[0.0f32; CW]; XI];
        for j in 0..tb {
            let t = t0 + j;
            let (ty, tx) = (t / self.tw, t % self.tw);
            let y0 = (4 * ty) as isize - self.pad as isize;
            let x0 = (4 * tx) as isize - self.pad as isize;
            let mut c0 = 0;
            while c0 < cin {
                let cw = (cin - c0).min(CW);
                // Gather the 6×6 window of channels c0..c0 + cw.
                for r in 0..6 {
                    let iy = y0 + r as isize;
                    for c in 0..6 {
                        let ix = x0 + c as isize;
                        let cell = &mut d[r * 6 + c];
                        if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                            *cell = [0.0; CW];
                            continue;
                        }
                        let at = ((iy as usize * self.w) + ix as usize) * cin + c0;
                        *cell = load(x, at, cw);
                        if self.relu {
                            for o in cell.iter_mut() {
                                *o = if *o > 0.0 { *o } else { 0.0 };
                            }
                        }
                    }
                }
                // Bᵀ d over columns, then (Bᵀ d) B over rows.
                for c in 0..6 {
                    let [a, b, e, f, g, h] = std::array::from_fn(|r| r * 6 + c);
                    let col = [&d[a], &d[b], &d[e], &d[f], &d[g], &d[h]];
                    let mut out = [[0.0f32; CW]; 6];
                    {
                        let [o0, o1, o2, o3, o4, o5] = &mut out;
                        bt(col, [o0, o1, o2, o3, o4, o5]);
                    }
                    for (r, o) in out.iter().enumerate() {
                        tmp[r * 6 + c] = *o;
                    }
                }
                for r in 0..6 {
                    let row: [&[f32; CW]; 6] = std::array::from_fn(|c| &tmp[r * 6 + c]);
                    let [o0, o1, o2, o3, o4, o5] = {
                        let (a, rest) = vt[r * 6..r * 6 + 6].split_at_mut(1);
                        let (b, rest) = rest.split_at_mut(1);
                        let (c, rest) = rest.split_at_mut(1);
                        let (e, rest) = rest.split_at_mut(1);
                        let (f, g) = rest.split_at_mut(1);
                        [
                            &mut a[0], &mut b[0], &mut c[0], &mut e[0], &mut f[0], &mut g[0],
                        ]
                    };
                    bt(row, [o0, o1, o2, o3, o4, o5]);
                }
                for (xi, val) in vt.iter().enumerate() {
                    let at = (xi * tb + j) * cin + c0;
                    store(v, at, cw, val);
                }
                c0 += cw;
            }
        }
    }

    /// Transforms the products `m` (`[ξ][tb][cout]`) of tiles `t0..t0 + tb`
    /// back into output pixels of image `y`, those inside the image only
    /// (compiled per instruction set as [`Self::input_transform`]).
    fn output_transform(&self, simd: Simd, m: &[f32], t0: usize, tb: usize, y: &mut [f32]) {
        match simd {
            // SAFETY: as in `input_transform`.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { self.output_transform_avx512(m, t0, tb, y) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `input_transform`.
            Simd::Avx2Fma => unsafe { self.output_transform_avx2(m, t0, tb, y) },
            Simd::Portable => self.output_transform_body(m, t0, tb, y),
        }
    }

    /// [`Self::output_transform_body`] compiled for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn output_transform_avx512(&self, m: &[f32], t0: usize, tb: usize, y: &mut [f32]) {
        self.output_transform_body(m, t0, tb, y)
    }

    /// [`Self::output_transform_body`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn output_transform_avx2(&self, m: &[f32], t0: usize, tb: usize, y: &mut [f32]) {
        self.output_transform_body(m, t0, tb, y)
    }

    #[inline(always)]
    fn output_transform_body(&self, m: &[f32], t0: usize, tb: usize, y: &mut [f32]) {
        let cout = self.cout;
        let mut mt = [[0.0f32; CW]; XI];
        let mut tmp = [[0.0f32; CW]; 24];
        let mut o = [[0.0f32; CW]; 16];
        for j in 0..tb {
            let t = t0 + j;
            let (ty, tx) = (t / self.tw, t % self.tw);
            let mut c0 = 0;
            while c0 < cout {
                let cw = (cout - c0).min(CW);
                for (xi, cell) in mt.iter_mut().enumerate() {
                    let at = (xi * tb + j) * cout + c0;
                    *cell = load(m, at, cw);
                }
                // Aᵀ m over columns (6 → 4 rows), then over rows (6 → 4).
                for c in 0..6 {
                    let col: [&[f32; CW]; 6] = std::array::from_fn(|r| &mt[r * 6 + c]);
                    let mut out = [[0.0f32; CW]; 4];
                    {
                        let [o0, o1, o2, o3] = &mut out;
                        at(col, [o0, o1, o2, o3]);
                    }
                    for (r, v) in out.iter().enumerate() {
                        tmp[r * 6 + c] = *v;
                    }
                }
                for r in 0..4 {
                    let row: [&[f32; CW]; 6] = std::array::from_fn(|c| &tmp[r * 6 + c]);
                    let mut out = [[0.0f32; CW]; 4];
                    {
                        let [o0, o1, o2, o3] = &mut out;
                        at(row, [o0, o1, o2, o3]);
                    }
                    o[r * 4..r * 4 + 4].copy_from_slice(&out);
                }
                for r in 0..4 {
                    let oy = 4 * ty + r;
                    if oy >= self.oh {
                        break;
                    }
                    for c in 0..4 {
                        let ox = 4 * tx + c;
                        if ox >= self.ow {
                            break;
                        }
                        let at = (oy * self.ow + ox) * cout + c0;
                        store(y, at, cw, &o[r * 4 + c]);
                    }
                }
                c0 += cw;
            }
        }
    }
}

/// `y = conv2d(relu?(x), w)` by Winograd F(4×4, 3×3), and with
/// `want_stats` the output's channel sums (as the direct path computes
/// them). The caller checked the shapes; a conv [`supports`] rejects is
/// an error.
pub(super) fn forward(
    spec: &Conv2dSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu: bool,
    simd: Simd,
    want_stats: bool,
) -> Result<Option<ChannelSums>> {
    if !supports(spec) {
        return Err(crate::error::Error::Shape(format!(
            "conv2d: Winograd F(4x4, 3x3) takes 3x3 stride-1 undilated ungrouped convs, not {spec:?}"
        )));
    }
    let out = spec.out_shape(x.shape)?;
    let (oh, ow) = (out.h, out.w);
    let (th, tw) = (oh.div_ceil(4), ow.div_ceil(4));
    let g = Geometry {
        h: x.shape.h,
        w: x.shape.w,
        cin: spec.cin,
        cout: spec.cout,
        pad: spec.pad,
        oh,
        ow,
        tw,
        tiles: th * tw,
        relu,
    };
    // Tiles per block: V and M of a block within BLOCK_BYTES.
    let per_tile = XI * (g.cin + g.cout) * 4;
    let tb = (BLOCK_BYTES / per_tile).clamp(1, g.tiles);
    // The GEMM of one ξ is a 1×1 conv over a `tb`-pixel image (and one
    // over the last, shorter block).
    let pointwise = Conv2dSpec {
        cin: g.cin,
        cout: g.cout,
        kh: 1,
        kw: 1,
        stride: 1,
        pad: 0,
        dilation: 1,
        groups: 1,
    };
    let gemm = Plan::new(&pointwise, tb, 1, tb, 1, false, simd)?;
    let last = g.tiles - (g.tiles - 1) / tb * tb;
    let gemm_last = Plan::new(&pointwise, last, 1, last, 1, false, simd)?;
    let u = transform_weights(spec, w);
    let stride = g.cin * g.cout;
    let panels: Vec<_> = (0..XI)
        .map(|xi| gemm.pack_weights(&u[xi * stride..(xi + 1) * stride]))
        .collect();

    let in_img = x.shape.per_sample();
    let out_img = out.per_sample();
    let cout = g.cout;
    let mut per_image = vec![0.0f64; if want_stats { x.shape.n * 2 * cout } else { 0 }];
    let init = || {
        (
            vec![0.0f32; XI * tb * g.cin],
            vec![0.0f32; XI * tb * g.cout],
        )
    };
    let one_image = |(v, m): &mut (Vec<f32>, Vec<f32>), ximg: &[f32], yimg: &mut [f32]| {
        let mut t0 = 0;
        while t0 < g.tiles {
            let n = tb.min(g.tiles - t0);
            let plan = if n == tb { &gemm } else { &gemm_last };
            g.input_transform(simd, ximg, t0, n, v);
            for (xi, panel) in panels.iter().enumerate() {
                let weights = super::ImageWeights {
                    plain: &u[xi * stride..(xi + 1) * stride],
                    packed: panel.as_slice(),
                };
                let vx = &v[xi * n * g.cin..(xi + 1) * n * g.cin];
                let mx = &mut m[xi * n * g.cout..(xi + 1) * n * g.cout];
                plan.run_image(vx, weights, mx, simd, &[], None);
            }
            g.output_transform(simd, m, t0, n, yimg);
            t0 += n;
        }
    };
    if want_stats {
        y.data
            .par_chunks_mut(out_img)
            .zip(x.data.par_chunks(in_img))
            .zip(per_image.par_chunks_mut(2 * cout))
            .for_each_init(init, |bufs, ((yimg, ximg), st)| {
                one_image(bufs, ximg, yimg);
                image_sums(yimg, cout, 0..cout, st);
            });
    } else {
        y.data
            .par_chunks_mut(out_img)
            .zip(x.data.par_chunks(in_img))
            .for_each_init(init, |bufs, (yimg, ximg)| one_image(bufs, ximg, yimg));
        return Ok(None);
    }
    Ok(Some(combine_image_sums(&per_image, cout, out.n * oh * ow)))
}
