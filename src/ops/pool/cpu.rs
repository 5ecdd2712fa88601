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
    let (h, w, c) = (x.shape.h, x.shape.w, x.shape.c);
    let (oh, ow) = (out.h, out.w);
    let spec = *spec;
    y.data
        .par_chunks_mut(out.per_sample())
        .zip(x.data.par_chunks(x.shape.per_sample()))
        .for_each(|(ys, xs)| {
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
                    let acc = &mut ys[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
                    match spec.kind {
                        PoolKind::Max => {
                            acc.fill(f32::NEG_INFINITY);
                            for yy in y0..y1 {
                                for xx in x0..x1 {
                                    let p = &xs[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                                    for (a, &v) in acc.iter_mut().zip(p) {
                                        // NaN propagates, as in PyTorch.
                                        if v > *a || v.is_nan() {
                                            *a = v;
                                        }
                                    }
                                }
                            }
                        }
                        PoolKind::Avg => {
                            acc.fill(0.0);
                            for yy in y0..y1 {
                                for xx in x0..x1 {
                                    let p = &xs[(yy * w + xx) * c..(yy * w + xx + 1) * c];
                                    for (a, &v) in acc.iter_mut().zip(p) {
                                        *a += v;
                                    }
                                }
                            }
                            let count = if spec.count_include_pad {
                                spec.k.saturating_mul(spec.k)
                            } else {
                                (y1 - y0) * (x1 - x0)
                            };
                            let inv = 1.0 / count.max(1) as f32;
                            for a in acc.iter_mut() {
                                *a *= inv;
                            }
                        }
                    }
                }
            }
        });
    Ok(())
}
