//! CPU pooling, NHWC. For each output pixel the in-bounds part of its window
//! is clipped once (`y0..y1`, `x0..x1`), then the window's pixels, each a
//! contiguous run of `c` channels, are combined into `c` accumulators
//! (vectorises across channels). Taps are visited in row-major order, so the
//! result is deterministic; samples run in parallel.

use rayon::prelude::*;

use super::{PoolKind, PoolSpec};
use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// `y = pool(x)`; `y` must have the shape [`PoolSpec::out_shape`] gives and
/// is fully overwritten.
pub fn pool_forward(spec: &PoolSpec, x: &Tensor, y: &mut Tensor) -> Result<()> {
    let out = spec.out_shape(x.shape)?;
    check_len("pool", "input", x.shape, x.data.len())?;
    check_shape("pool", "output", out, y.shape)?;
    check_len("pool", "output", y.shape, y.data.len())?;
    let geo = Geometry {
        h: x.shape.h,
        w: x.shape.w,
        c: x.shape.c,
        oh: out.h,
        ow: out.w,
    };
    let spec = *spec;
    let avx2 = crate::ops::has_avx2_fma();
    y.data
        .par_chunks_mut(out.per_sample())
        .zip(x.data.par_chunks(x.shape.per_sample()))
        .for_each(|(ys, xs)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected at run time.
                unsafe { pool_image_avx2(&spec, &geo, xs, ys) };
                return;
            }
            let _ = avx2;
            pool_image(&spec, &geo, xs, ys);
        });
    Ok(())
}

/// Input `h × w × c` and output `oh × ow` of one image.
struct Geometry {
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
}

/// [`pool_image`] compiled for AVX2 (8-wide channel loops; same operations
/// in the same order, so bitwise the same result).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pool_image_avx2(spec: &PoolSpec, g: &Geometry, xs: &[f32], ys: &mut [f32]) {
    pool_image(spec, g, xs, ys)
}

/// Channels combined per register chunk (two AVX vectors).
const LANES: usize = 16;

/// One NHWC image `xs` (`h × w × c`) into `ys` (`oh × ow × c`).
#[inline(always)]
fn pool_image(spec: &PoolSpec, g: &Geometry, xs: &[f32], ys: &mut [f32]) {
    let (h, w, c, oh, ow) = (g.h, g.w, g.c, g.oh, g.ow);
    for oy in 0..oh {
        // Window rows in padded coordinates [oy*s, oy*s + k), clipped
        // to the image [pad, pad + h).
        let wy0 = oy * spec.stride;
        let y0 = wy0.max(spec.pad) - spec.pad;
        let y1 = (wy0 + spec.k).min(spec.pad + h) - spec.pad;
        for ox in 0..ow {
            let wx0 = ox * spec.stride;
            let x0 = wx0.max(spec.pad) - spec.pad;
            let x1 = (wx0 + spec.k).min(spec.pad + w) - spec.pad;
            let out = &mut ys[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
            let inv = match spec.kind {
                PoolKind::Max => 1.0,
                PoolKind::Avg => {
                    let count = if spec.count_include_pad {
                        spec.k.saturating_mul(spec.k)
                    } else {
                        (y1 - y0) * (x1 - x0)
                    };
                    1.0 / count.max(1) as f32
                }
            };
            // Channels in register-sized chunks of LANES: each chunk's
            // accumulators stay in registers over all taps instead of being
            // loaded and stored per tap. Per channel the taps are still
            // combined in row-major order, so the result is unchanged.
            let mut c0 = 0;
            while c0 < c {
                let lanes = LANES.min(c - c0);
                let init = match spec.kind {
                    PoolKind::Max => f32::NEG_INFINITY,
                    PoolKind::Avg => 0.0,
                };
                let mut acc = [init; LANES];
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        let base = (yy * w + xx) * c + c0;
                        let p = &xs[base..base + lanes];
                        // A full chunk as a fixed-size array, so the loop
                        // compiles to whole vectors.
                        match (spec.kind, <&[f32; LANES]>::try_from(p)) {
                            (PoolKind::Avg, Ok(full)) => {
                                for (a, &v) in acc.iter_mut().zip(full) {
                                    *a += v;
                                }
                            }
                            (PoolKind::Avg, Err(_)) => {
                                for (a, &v) in acc.iter_mut().zip(p) {
                                    *a += v;
                                }
                            }
                            (PoolKind::Max, _) => {
                                for (a, &v) in acc.iter_mut().zip(p) {
                                    // NaN propagates, as in PyTorch.
                                    if v > *a || v.is_nan() {
                                        *a = v;
                                    }
                                }
                            }
                        }
                    }
                }
                for (o, &a) in out[c0..c0 + lanes].iter_mut().zip(&acc) {
                    *o = match spec.kind {
                        PoolKind::Max => a,
                        PoolKind::Avg => a * inv,
                    };
                }
                c0 += lanes;
            }
        }
    }
}

/// Backward of pooling. `dx`'s shape is the forward input's; `dy` has the
/// shape [`PoolSpec::out_shape`] gives; `dx` is fully overwritten.
///
/// * Max: each output's gradient goes to the first maximum of its window in
///   the forward's scan order (rows outer, columns inner, strict `>`; a NaN
///   takes the place like in the forward), so `x` (the forward's input) is
///   required.
/// * Avg: each output's gradient times the forward's `1 / count` (same
///   count rule, computed the same way in f32) is added to every in-bounds
///   tap of its window; `x` is not read and may be `None`.
///
/// Per image, outputs are visited row-major and their contributions added
/// in that order, so overlapping windows sum deterministically.
pub fn pool_backward(
    spec: &PoolSpec,
    x: Option<&Tensor>,
    dy: &Tensor,
    dx: &mut Tensor,
) -> Result<()> {
    let out = spec.out_shape(dx.shape)?;
    check_len("pool backward", "dx", dx.shape, dx.data.len())?;
    check_shape("pool backward", "dy", out, dy.shape)?;
    check_len("pool backward", "dy", dy.shape, dy.data.len())?;
    let x = match (spec.kind, x) {
        (PoolKind::Max, None) => {
            return Err(crate::error::Error::Arg(
                "pool backward: max pooling needs the forward input".into(),
            ))
        }
        (_, Some(x)) => {
            check_shape("pool backward", "input", dx.shape, x.shape)?;
            check_len("pool backward", "input", x.shape, x.data.len())?;
            Some(x)
        }
        (PoolKind::Avg, None) => None,
    };
    let (h, w, c) = (dx.shape.h, dx.shape.w, dx.shape.c);
    let (oh, ow) = (out.h, out.w);
    let per = dx.shape.per_sample();
    let spec = *spec;
    let body = |(n, (gs, ds)): (usize, (&mut [f32], &[f32]))| {
        gs.fill(0.0);
        let xs = x.map(|t| &t.data[n * per..(n + 1) * per]);
        for oy in 0..oh {
            let wy0 = oy * spec.stride;
            let y0 = wy0.max(spec.pad) - spec.pad;
            let y1 = (wy0 + spec.k).min(spec.pad + h) - spec.pad;
            for ox in 0..ow {
                let wx0 = ox * spec.stride;
                let x0 = wx0.max(spec.pad) - spec.pad;
                let x1 = (wx0 + spec.k).min(spec.pad + w) - spec.pad;
                let d = &ds[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
                match (spec.kind, xs) {
                    (PoolKind::Max, Some(xs)) => {
                        for (ch, &dch) in d.iter().enumerate() {
                            let mut best = f32::NEG_INFINITY;
                            let mut at = (y0 * w + x0) * c + ch;
                            for yy in y0..y1 {
                                for xx in x0..x1 {
                                    let k = (yy * w + xx) * c + ch;
                                    let v = xs[k];
                                    // The forward's rule: a later tap wins only
                                    // when strictly greater (or NaN).
                                    if v > best || v.is_nan() {
                                        best = v;
                                        at = k;
                                    }
                                }
                            }
                            gs[at] += dch;
                        }
                    }
                    _ => {
                        let count = if spec.count_include_pad {
                            spec.k.saturating_mul(spec.k)
                        } else {
                            (y1 - y0) * (x1 - x0)
                        };
                        let inv = 1.0 / count.max(1) as f32;
                        for yy in y0..y1 {
                            for xx in x0..x1 {
                                let g = &mut gs[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                                for (gv, &dv) in g.iter_mut().zip(d) {
                                    *gv += dv * inv;
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    dx.data
        .par_chunks_mut(per)
        .zip(dy.data.par_chunks(out.per_sample()))
        .enumerate()
        .for_each(body);
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for PoolSpec {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        pool_forward(self, a.input("pool", 0)?, a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for PoolSpec {
    /// Max pooling reads its input to find each window's arg-max; average
    /// pooling does not.
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let x = a.inputs.first().copied().flatten();
        let dy = a.dy;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            g.write(|dx| pool_backward(self, x, dy, dx))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of the image loop equals the portable one bit for bit
    /// (odd sizes, every pool kind and padding rule, NaN-poisoned outputs).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_portable_agree_bitwise() {
        if !crate::ops::has_avx2_fma() {
            return;
        }
        let mut state = 0x1234_5678_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for (kind, k, stride, pad, incl) in [
            (PoolKind::Avg, 3, 1, 1, false),
            (PoolKind::Avg, 3, 1, 1, true),
            (PoolKind::Avg, 2, 2, 0, false),
            (PoolKind::Max, 3, 2, 1, false),
        ] {
            for (h, w, c) in [(7, 5, 3), (9, 11, 17), (4, 6, 16), (1, 1, 1)] {
                let spec = PoolSpec {
                    kind,
                    k,
                    stride,
                    pad,
                    count_include_pad: incl,
                };
                let Ok(out) = spec.out_shape(crate::tensor::Shape::new(1, h, w, c)) else {
                    continue;
                };
                let g = Geometry {
                    h,
                    w,
                    c,
                    oh: out.h,
                    ow: out.w,
                };
                let xs: Vec<f32> = (0..h * w * c).map(|_| next()).collect();
                let mut a = vec![f32::NAN; out.len()];
                let mut b = vec![f32::NAN; out.len()];
                pool_image(&spec, &g, &xs, &mut a);
                // SAFETY: AVX2 and FMA detected above.
                unsafe { pool_image_avx2(&spec, &g, &xs, &mut b) };
                assert!(a.iter().all(|v| !v.is_nan()));
                let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{spec:?} on {h}x{w}x{c}");
            }
        }
    }
}
