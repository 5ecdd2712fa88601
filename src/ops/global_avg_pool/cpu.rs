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

/// Backward of global average pooling: `dx[n][y][x][c] = dy[n][c] / (h·w)`
/// (an f32 division). `dx`'s shape gives `h` and `w`; it is fully
/// overwritten.
pub fn global_avg_pool_backward(dy: &Tensor, dx: &mut Tensor) -> Result<()> {
    let out = super::out_shape(dx.shape)?;
    check_len("global_avg_pool backward", "dx", dx.shape, dx.data.len())?;
    check_shape("global_avg_pool backward", "dy", out, dy.shape)?;
    check_len("global_avg_pool backward", "dy", dy.shape, dy.data.len())?;
    let c = dx.shape.c;
    let hw = (dx.shape.h * dx.shape.w) as f32;
    dx.data
        .par_chunks_mut(dx.shape.per_sample())
        .zip(dy.data.par_chunks(c))
        .for_each(|(xs, ds)| {
            let g: Vec<f32> = ds.iter().map(|&d| d / hw).collect();
            for xp in xs.chunks_exact_mut(c) {
                xp.copy_from_slice(&g);
            }
        });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for super::GlobalAvgPoolOp {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        global_avg_pool_forward(a.input("global_avg_pool", 0)?, a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for super::GlobalAvgPoolOp {
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let dy = a.dy;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            g.write(|dx| global_avg_pool_backward(dy, dx))?;
        }
        Ok(())
    }
}
