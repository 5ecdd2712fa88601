//! CPU global average pooling. NHWC: one sample's pixels are `h * w`
//! consecutive runs of `c` channels, summed into `c` accumulators (f64, in
//! pixel order) and divided by `h * w`. Samples run in parallel.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// `y[n][c] = mean over (h, w) of x[n][.][.][c]`; `y` is `[n, 1, 1, c]`
/// and is fully overwritten.
pub fn global_avg_pool_forward(x: &Tensor, y: &mut Tensor) -> Result<()> {
    let out = super::out_shape(x.shape)?;
    check_len("global_avg_pool", "input", x.shape, x.data.len())?;
    check_shape("global_avg_pool", "output", out, y.shape)?;
    check_len("global_avg_pool", "output", y.shape, y.data.len())?;
    let c = x.shape.c;
    let inv = 1.0 / (x.shape.h * x.shape.w) as f64;
    y.data
        .par_chunks_mut(c)
        .zip(x.data.par_chunks(x.shape.per_sample()))
        .for_each(|(ys, xs)| {
            let mut acc = vec![0.0f64; c];
            for xp in xs.chunks_exact(c) {
                for (a, &v) in acc.iter_mut().zip(xp) {
                    *a += v as f64;
                }
            }
            for (o, a) in ys.iter_mut().zip(&acc) {
                *o = (a * inv) as f32;
            }
        });
    Ok(())
}
