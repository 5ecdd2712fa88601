//! CPU depthwise convolution (`groups == cin == cout`): one image at a time,
//! called by [`super::cpu`] on the image it has already padded (and ReLU'd).
//!
//! # Data layout
//!
//! * `src`: the image the kernels read, `[hp][wp][c]` (NHWC without `n`):
//!   the zero-padded scratch of `cpu.rs` (with the ReLU applied during its
//!   copy) or, with `pad == 0` and no ReLU, the input image itself.
//! * `w`: `[kh][kw][1][c]`, i.e. `[tap][c]`: the weights of one tap are
//!   contiguous over channels, like the input channels of one pixel, so
//!   one vector load gives 16 (AVX-512) or 8 (AVX2) channels of either.
//! * `y`: the output image `[oh][ow][c]`.
//! * `pix_base[p]`: for output pixel `p = oy * ow + ox`, the offset in
//!   `src` of its window origin `(oy * stride, ox * stride)`. Tap
//!   `(ky, kx)` of that pixel is at `pix_base[p] + (ky * dil * wp + kx *
//!   dil) * c`. The kernels never see the stride: each pixel carries its
//!   own offset.
//!
//! # Kernels
//!
//! Output pixels are flattened and taken a tile at a time (16 pixels for
//! AVX-512, 8 for AVX2, then 8/4/2/1 for the last ones; a tile may wrap
//! onto the next row). Both widths run one tile, generic over the vector
//! type (`lanes.rs`). For each vector of channels, the tile's
//! accumulators (one vector per pixel) stay in registers across all
//! `kh * kw` taps; per tap the kernel loads one weight vector and one input
//! vector per pixel, multiplies and adds. The output is written once, with
//! no read-modify-write of `y` per tap (the previous loop kept its
//! accumulators in `y`). Channels not filling a whole vector (`c % 16` or
//! `c % 8`, and all of them when `c` is below the width) use masked loads
//! and stores, which neither read nor write the masked-out lanes, so
//! nothing outside the pixel's `c` channels is touched.
//!
//! Cost per tap and channel vector of an `M`-pixel tile: `M + 1` loads and
//! `2 * M` FP operations (multiply, add), so the FP ports bound it; `M`
//! independent sums (8 or 16) cover the add latency.
//!
//! # Numerics
//!
//! Every path computes every output element as `acc = 0.0`, then for each
//! tap in `(ky, kx)` row-major order `acc = acc + x * w` with the product
//! rounded to f32 and then the sum rounded (no fused multiply-add). The
//! AVX-512, AVX2 and portable paths are therefore bitwise identical to each
//! other and to the per-pixel loop this module replaced, so scores and the
//! bit-for-bit regression fixture are unchanged. (FMA would free one FP
//! operation per tap, but it changes results and the portable path would
//! need `f32::mul_add`, a libm call per element on x86_64 without FMA.)
//! Each image is computed by one thread, so the result does not depend on
//! the thread count.

/// Geometry of one depthwise image pass (see the module docs for the
/// layout of the buffers it describes).
#[derive(Clone, Copy, Debug)]
pub(super) struct DwGeom<'a> {
    /// Channels (`cin == cout == groups`).
    pub(super) c: usize,
    /// Kernel height and width.
    pub(super) kh: usize,
    pub(super) kw: usize,
    /// Dilation.
    pub(super) dil: usize,
    /// Width of the image the kernels read (padded width).
    pub(super) wp: usize,
    /// Window origin of every output pixel, in `src` elements.
    pub(super) pix_base: &'a [usize],
}

impl DwGeom<'_> {
    /// Offset of each tap from a pixel's window origin, in `(ky, kx)` order.
    fn tap_offsets(&self) -> Vec<usize> {
        let mut taps = Vec::with_capacity(self.kh * self.kw);
        for ky in 0..self.kh {
            for kx in 0..self.kw {
                taps.push((ky * self.dil * self.wp + kx * self.dil) * self.c);
            }
        }
        taps
    }

    /// Whether every access of a pass is in bounds: the last tap of the
    /// farthest window ends inside `src`, `w` holds every tap's weights and
    /// `y` is exactly one output image.
    fn fits(&self, taps: &[usize], src: usize, w: usize, y: usize) -> bool {
        let last_tap = taps.last().copied().unwrap_or(0);
        let max_base = self.pix_base.iter().copied().max().unwrap_or(0);
        let end = max_base
            .checked_add(last_tap)
            .and_then(|v| v.checked_add(self.c));
        let wlen = taps.len().checked_mul(self.c);
        let ylen = self.pix_base.len().checked_mul(self.c);
        matches!(end, Some(e) if e <= src) && matches!(wlen, Some(l) if l <= w) && ylen == Some(y)
    }
}

/// The instruction set of a depthwise pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DwPath {
    /// Plain Rust (vectorised by the compiler for the baseline target).
    Portable,
    /// 8 channels per ymm register.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 16 channels per zmm register, masked channel tail.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl DwPath {
    /// The fastest path this CPU runs (detected at run time).
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return DwPath::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return DwPath::Avx2;
            }
        }
        DwPath::Portable
    }

    /// Every path this CPU runs, portable first (tests run them all).
    #[cfg(test)]
    pub(super) fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut v = vec![DwPath::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                v.push(DwPath::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                v.push(DwPath::Avx512);
            }
        }
        v
    }
}

/// Computes every output element of one image: `y[p][ch] = Σ_taps
/// src[pix_base[p] + tap + ch] · w[tap][ch]` (see the module docs for the
/// layout and the summation rule, which every path follows bit for bit).
///
/// The buffer sizes hold by construction in `cpu.rs` (`Plan::new` checks
/// the largest read); they are checked again here, once per image, because
/// the SIMD paths read through raw pointers.
pub(super) fn image(g: &DwGeom<'_>, src: &[f32], w: &[f32], y: &mut [f32], path: DwPath) {
    let taps = g.tap_offsets();
    assert!(
        g.fits(&taps, src.len(), w.len(), y.len()),
        "depthwise conv: internal geometry error"
    );
    if g.c == 0 {
        return;
    }
    match path {
        DwPath::Portable => image_portable(g, &taps, src, w, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `DwPath::Avx2` comes from `detect`/`available`, which
        // checked AVX2 at run time; bounds were checked above.
        DwPath::Avx2 => unsafe { x86::image_avx2(g, &taps, src, w, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, AVX-512F detected.
        DwPath::Avx512 => unsafe { x86::image_avx512(g, &taps, src, w, y) },
    }
}

/// Portable path: per pixel, the taps in order, each a loop over channels
/// (which the compiler vectorises); the accumulators live in `y`.
fn image_portable(g: &DwGeom<'_>, taps: &[usize], src: &[f32], w: &[f32], y: &mut [f32]) {
    let c = g.c;
    for (acc, &base) in y.chunks_exact_mut(c).zip(g.pix_base) {
        acc.fill(0.0);
        for (t, &off) in taps.iter().enumerate() {
            let xs = &src[base + off..base + off + c];
            let ws = &w[t * c..(t + 1) * c];
            for ((a, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                *a += xv * wv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SIMD pass, written once over [`Lanes`] and run at 16 lanes
    //! (AVX-512F, [`Zmm`]) or 8 (AVX2, [`Ymm`]): `MR` pixels × one channel
    //! vector per tile, accumulated over all taps.

    use super::super::lanes::{Lanes, Ymm, Zmm};
    use super::DwGeom;

    /// Output pixels per AVX-512 tile: 16 zmm accumulators, plus one weight
    /// and one input vector, of the 32 registers.
    const MR512: usize = 16;
    /// Output pixels per AVX2 tile: 8 ymm accumulators of the 16 registers.
    const MR256: usize = 8;

    /// The pixels of the next tile: `max` (a power of two), or the largest
    /// power of two not above the `left` pixels that remain, so a few tile
    /// sizes cover any pixel count.
    fn tile_pixels(left: usize, max: usize) -> usize {
        if left >= max {
            max
        } else {
            1 << left.ilog2()
        }
    }

    /// The AVX-512 pass over one image (masked channel tail).
    ///
    /// # Safety
    /// AVX-512F must be available; `g.fits(taps, src.len(), w.len(),
    /// y.len())` must hold and `g.c > 0`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn image_avx512(
        g: &DwGeom<'_>,
        taps: &[usize],
        src: &[f32],
        w: &[f32],
        y: &mut [f32],
    ) {
        image::<Zmm, MR512>(g, taps, src, w, y)
    }

    /// The AVX2 pass over one image (`maskload`/`maskstore` for the channel
    /// tail).
    ///
    /// # Safety
    /// As [`image_avx512`], with AVX2 instead of AVX-512F.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn image_avx2(
        g: &DwGeom<'_>,
        taps: &[usize],
        src: &[f32],
        w: &[f32],
        y: &mut [f32],
    ) {
        image::<Ymm, MR256>(g, taps, src, w, y)
    }

    /// One image at the width of `L`: tiles of `MR` pixels (a power of two
    /// up to 16), the last pixels in smaller powers of two.
    ///
    /// # Safety
    /// As [`image_avx512`], with `L`'s instruction set.
    #[inline(always)]
    unsafe fn image<L: Lanes, const MR: usize>(
        g: &DwGeom<'_>,
        taps: &[usize],
        src: &[f32],
        w: &[f32],
        y: &mut [f32],
    ) {
        let c = g.c;
        let npix = g.pix_base.len();
        let full = c / L::N * L::N;
        // Lanes of the last, partial vector (none when `c % N == 0`).
        let tail = L::tail(c % L::N);
        let (s, wt, yp) = (src.as_ptr(), w.as_ptr(), y.as_mut_ptr());
        let mut p = 0;
        while p < npix {
            let m = tile_pixels(npix - p, MR);
            let bases = &g.pix_base[p..p + m];
            // Pixels p..p + m are output pixels, their windows lie in `src`
            // (`fits`), `y` holds their `c` channels.
            let o = yp.add(p * c);
            match m {
                16 if MR >= 16 => tile::<L, 16>(s, bases, taps, wt, o, c, full, tail),
                8 => tile::<L, 8>(s, bases, taps, wt, o, c, full, tail),
                4 => tile::<L, 4>(s, bases, taps, wt, o, c, full, tail),
                2 => tile::<L, 2>(s, bases, taps, wt, o, c, full, tail),
                _ => tile::<L, 1>(s, bases, taps, wt, o, c, full, tail),
            }
            p += m;
        }
    }

    /// `M` pixels, every channel: whole vectors up to `full`, then, when
    /// `full < c`, the last `c - full` channels through `tail`.
    ///
    /// # Safety
    /// `L`'s instruction set; for `m < M` the window at `src + bases[m]`
    /// lies in the image for every tap, `w` holds `taps.len() * c` weights,
    /// `out + m * c` has `c` writable floats, and `tail` selects lanes
    /// `0..c - full`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<L: Lanes, const M: usize>(
        src: *const f32,
        bases: &[usize],
        taps: &[usize],
        w: *const f32,
        out: *mut f32,
        c: usize,
        full: usize,
        tail: L::M,
    ) {
        let mut c0 = 0;
        while c0 < full {
            vec::<L, M, false>(src, bases, taps, w, out, c, c0, tail);
            c0 += L::N;
        }
        if full < c {
            vec::<L, M, true>(src, bases, taps, w, out, c, c0, tail);
        }
    }

    /// `M` pixels × channels `c0..c0 + N` (with `MASKED`, only the lanes
    /// set in `mask`; the others are neither loaded nor stored). The sum
    /// for each pixel is `0 + x₀w₀ + x₁w₁ + …` over the taps in order, a
    /// multiply and an add per tap (see the module docs).
    ///
    /// # Safety
    /// As [`tile`], with `c0 + N <= c` unless `MASKED`, and then `c0 +
    /// (lanes of mask) <= c` with `mask` a low-lane run.
    // `#[inline]`, not `always`: it has one call site per instantiation and
    // is inlined into the `#[target_feature]` entry either way (checked in
    // the disassembly: no calls remain), but optimised on its own first it
    // keeps the register use of the hand-written loops it replaced; forced,
    // the 16-pixel loop reloaded the tap list from the stack and the DARTS
    // shapes ran 4-7 % slower.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn vec<L: Lanes, const M: usize, const MASKED: bool>(
        src: *const f32,
        bases: &[usize],
        taps: &[usize],
        w: *const f32,
        out: *mut f32,
        c: usize,
        c0: usize,
        mask: L::M,
    ) {
        let load = |p: *const f32| {
            if MASKED {
                L::load_tail(p, mask)
            } else {
                L::load(p)
            }
        };
        let px: [*const f32; M] = std::array::from_fn(|m| src.add(bases[m] + c0));
        let mut acc = [L::zero(); M];
        let mut wk = w.add(c0);
        for &off in taps {
            let wv = load(wk);
            for (a, p) in acc.iter_mut().zip(&px) {
                *a = L::add(*a, L::mul(load(p.add(off)), wv));
            }
            wk = wk.add(c);
        }
        for (m, a) in acc.iter().enumerate() {
            let o = out.add(m * c + c0);
            if MASKED {
                L::store_tail(o, mask, *a)
            } else {
                L::store(o, *a)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv2d::cpu::{conv2d_forward_stats, conv2d_forward_with, ConvKernel};
    use crate::ops::conv2d::Conv2dSpec;
    use crate::tensor::{Shape, Tensor};
    use proptest::prelude::*;

    /// Values in [-1, 1) from a seed (xorshift64*), a quarter of them
    /// exactly 0 or negative zero so that the ReLU and signed zeros matter.
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
                match r % 8 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => (r >> 40) as f32 / (1u64 << 23) as f32 - 1.0,
                }
            })
            .collect()
    }

    fn relu(v: f32) -> f32 {
        if v > 0.0 {
            v
        } else {
            0.0
        }
    }

    /// Plain depthwise conv straight from the definition, no padded
    /// buffer: returns the output shape, the f32 sums in the documented
    /// order (`acc = 0; acc += x * w` per tap in (ky, kx) order, padding
    /// taps reading 0.0) and the exact sums in f64.
    fn reference(
        s: &Conv2dSpec,
        x: &Tensor,
        w: &[f32],
        relu_in: bool,
    ) -> (Shape, Vec<f32>, Vec<f64>) {
        let os = s.out_shape(x.shape).unwrap();
        let (h, wd, c) = (x.shape.h as isize, x.shape.w as isize, s.cout);
        let mut ord = vec![0.0f32; os.len()];
        let mut exact = vec![0.0f64; os.len()];
        for n in 0..os.n {
            for oy in 0..os.h {
                for ox in 0..os.w {
                    for ch in 0..c {
                        let (mut a, mut e) = (0.0f32, 0.0f64);
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let iy =
                                    (oy * s.stride + ky * s.dilation) as isize - s.pad as isize;
                                let ix =
                                    (ox * s.stride + kx * s.dilation) as isize - s.pad as isize;
                                let xv = if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                                    let v = x.data[((n * h as usize + iy as usize) * wd as usize
                                        + ix as usize)
                                        * c
                                        + ch];
                                    if relu_in {
                                        relu(v)
                                    } else {
                                        v
                                    }
                                } else {
                                    0.0
                                };
                                let wv = w[(ky * s.kw + kx) * c + ch];
                                a += xv * wv;
                                e += xv as f64 * wv as f64;
                            }
                        }
                        let i = ((n * os.h + oy) * os.w + ox) * c + ch;
                        ord[i] = a;
                        exact[i] = e;
                    }
                }
            }
        }
        (os, ord, exact)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A depthwise spec (`groups == cin == cout == c`).
    fn dw_spec(
        c: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        dil: usize,
    ) -> Conv2dSpec {
        Conv2dSpec {
            cin: c,
            cout: c,
            kh,
            kw,
            stride,
            pad,
            dilation: dil,
            groups: c,
        }
    }

    fn channels() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(1usize),
            Just(3),
            Just(7),
            Just(8),
            Just(15),
            Just(16),
            Just(17),
            Just(24),
            Just(32),
            Just(33),
            Just(48),
            Just(64),
            1usize..80,
        ]
    }

    /// (spec, n, h, w): odd sizes, k 1..=5 (mostly 3 and 5, also
    /// non-square), stride 1..=3, dilation 1..=3, pad 0..=4; only shapes
    /// with an output.
    fn case() -> impl Strategy<Value = (Conv2dSpec, usize, usize, usize)> {
        let k = prop_oneof![3 => Just(3usize), 3 => Just(5), 1 => 1usize..=5];
        (
            channels(),
            k.clone(),
            prop_oneof![3 => Just(None), 1 => k.prop_map(Some)],
            1usize..=3,
            1usize..=3,
            0usize..=4,
            1usize..=2,
            1usize..=13,
            1usize..=13,
        )
            .prop_filter_map("no output", |(c, kh, kw, st, dil, pad, n, h, w)| {
                let s = dw_spec(c, kh, kw.unwrap_or(kh), st, pad, dil);
                s.out_shape(Shape::new(n, h, w, c))
                    .ok()
                    .map(|_| (s, n, h, w))
            })
    }

    /// Runs one kernel path the way `cpu.rs` does: zero-padded copy of each
    /// image (ReLU applied in the copy) and per-pixel window origins; the
    /// output starts as NaN.
    fn run_path(s: &Conv2dSpec, x: &Tensor, w: &[f32], relu_in: bool, path: DwPath) -> Vec<f32> {
        let os = s.out_shape(x.shape).unwrap();
        let (h, wd, c, p) = (x.shape.h, x.shape.w, s.cin, s.pad);
        let (hp, wp) = (h + 2 * p, wd + 2 * p);
        let pix_base: Vec<usize> = (0..os.h)
            .flat_map(|oy| (0..os.w).map(move |ox| (oy * s.stride * wp + ox * s.stride) * c))
            .collect();
        let g = DwGeom {
            c,
            kh: s.kh,
            kw: s.kw,
            dil: s.dilation,
            wp,
            pix_base: &pix_base,
        };
        let mut y = vec![f32::NAN; os.len()];
        for (ximg, yimg) in x
            .data
            .chunks_exact(x.shape.per_sample())
            .zip(y.chunks_exact_mut(os.per_sample()))
        {
            let mut scratch = vec![0.0f32; hp * wp * c];
            for yy in 0..h {
                for xx in 0..wd {
                    for ch in 0..c {
                        let v = ximg[(yy * wd + xx) * c + ch];
                        scratch[((yy + p) * wp + xx + p) * c + ch] =
                            if relu_in { relu(v) } else { v };
                    }
                }
            }
            image(&g, &scratch, w, yimg, path);
        }
        y
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Every path this CPU runs is bitwise equal to the plain loop in
        /// the documented order, which is itself within rounding of the
        /// exact sum.
        #[test]
        fn every_path_matches_plain_loop_bitwise(
            (s, n, h, w) in case(),
            seed in any::<u64>(),
            relu_in in any::<bool>(),
        ) {
            let x = Tensor { shape: Shape::new(n, h, w, s.cin), data: values(seed, n * h * w * s.cin) };
            let wt = values(seed ^ 0x5555, s.weight_len());
            let (_, want, exact) = reference(&s, &x, &wt, relu_in);
            let taps = (s.kh * s.kw) as f64;
            for (&a, &e) in want.iter().zip(&exact) {
                // |x|, |w| <= 1: each rounding is at most taps · 2^-24 · taps.
                prop_assert!((a as f64 - e).abs() <= taps * taps * 1.2e-7, "{a} vs {e}");
            }
            for path in DwPath::available() {
                let got = run_path(&s, &x, &wt, relu_in, path);
                prop_assert_eq!(bits(&got), bits(&want), "{:?} {:?} on {}x{}x{}", path, s, n, h, w);
            }
        }

        /// Through the public API (padded scratch, in-place read when
        /// `pad == 0` without ReLU, threads over images, both kernel
        /// choices): the output, written over NaN, is bitwise the plain
        /// loop's, and the statistics variant gives the same output and
        /// the plain per-image, pixel-order f64 sums bit for bit.
        #[test]
        fn public_api_and_stats_match_plain_loop(
            (s, n, h, w) in case(),
            seed in any::<u64>(),
            relu_in in any::<bool>(),
            portable in any::<bool>(),
        ) {
            let k = if portable { ConvKernel::Portable } else { ConvKernel::Auto };
            let x = Tensor { shape: Shape::new(n, h, w, s.cin), data: values(seed, n * h * w * s.cin) };
            let wt = values(!seed, s.weight_len());
            let (os, want, _) = reference(&s, &x, &wt, relu_in);
            let mut y = Tensor::filled(os, f32::NAN);
            conv2d_forward_with(&s, &x, &wt, &mut y, relu_in, k).unwrap();
            prop_assert_eq!(bits(&y.data), bits(&want), "{:?} {:?}", s, k);
            let mut y2 = Tensor::filled(os, f32::NAN);
            let sums = conv2d_forward_stats(&s, &x, &wt, &mut y2, relu_in, k).unwrap();
            prop_assert_eq!(bits(&y2.data), bits(&want));
            let c = s.cout;
            let (mut sum, mut sumsq) = (vec![0.0f64; c], vec![0.0f64; c]);
            for img in want.chunks_exact(os.per_sample()) {
                let (mut s1, mut s2) = (vec![0.0f64; c], vec![0.0f64; c]);
                for px in img.chunks_exact(c) {
                    for (ch, &v) in px.iter().enumerate() {
                        s1[ch] += v as f64;
                        s2[ch] += v as f64 * v as f64;
                    }
                }
                for ch in 0..c {
                    sum[ch] += s1[ch];
                    sumsq[ch] += s2[ch];
                }
            }
            prop_assert_eq!(sums.count, os.n * os.h * os.w);
            let b64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(b64(&sums.sum), b64(&sum));
            prop_assert_eq!(b64(&sums.sumsq), b64(&sumsq));
        }
    }

    /// The DARTS shapes (C = 16: 16, 32, 64 channels; sep/dil convs with
    /// their paddings; the reduction cells' stride 2) on two images, every
    /// path against the plain loop, and the public API on 1 and 3 threads.
    #[test]
    fn darts_shapes_every_path_and_thread_count() {
        for (c, hw, stride) in [
            (16, 32, 1),
            (32, 16, 1),
            (64, 8, 1),
            (32, 32, 2),
            (64, 16, 2),
        ] {
            for (k, dil) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
                let pad = if dil == 1 { k / 2 } else { k - 1 };
                let s = dw_spec(c, k, k, stride, pad, dil);
                let x = Tensor {
                    shape: Shape::new(2, hw, hw, c),
                    data: values(c as u64 * 31 + k as u64, 2 * hw * hw * c),
                };
                let wt = values(k as u64 * 7 + dil as u64, s.weight_len());
                let (os, want, _) = reference(&s, &x, &wt, true);
                for path in DwPath::available() {
                    assert_eq!(
                        bits(&run_path(&s, &x, &wt, true, path)),
                        bits(&want),
                        "{path:?} {s:?}"
                    );
                }
                for threads in [1, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut y = Tensor::filled(os, f32::NAN);
                    pool.install(|| {
                        conv2d_forward_with(&s, &x, &wt, &mut y, true, ConvKernel::Auto)
                    })
                    .unwrap();
                    assert_eq!(bits(&y.data), bits(&want), "{threads} threads {s:?}");
                }
            }
        }
    }

    #[test]
    fn geometry_bounds_are_checked() {
        let pix_base = [0usize, 2, 4];
        let g = DwGeom {
            c: 2,
            kh: 3,
            kw: 3,
            dil: 1,
            wp: 4,
            pix_base: &pix_base,
        };
        let taps = g.tap_offsets();
        assert_eq!(taps, vec![0, 2, 4, 8, 10, 12, 16, 18, 20]);
        // Last read: base 4 + tap 20 + 2 channels = 26 floats.
        assert!(g.fits(&taps, 26, 18, 6));
        assert!(!g.fits(&taps, 25, 18, 6));
        assert!(!g.fits(&taps, 26, 17, 6));
        assert!(!g.fits(&taps, 26, 18, 7));
        assert_eq!(DwPath::available()[0], DwPath::Portable);
        assert!(DwPath::available().contains(&DwPath::detect()));
    }
}
