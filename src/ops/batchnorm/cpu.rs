//! CPU BatchNorm2d (training mode), NHWC.
//!
//! Layout: channels innermost, so per-channel statistics are a running
//! vector of `c` accumulators updated pixel by pixel (vectorises across
//! channels), and normalisation is `y[p][c] = (x[p][c] - mean[c]) * s[c] +
//! beta[c]` with `s = gamma * inv_std`.
//!
//! Statistics are two-pass (mean, then the mean of squared deviations) in
//! f64: each sample's partial sums are computed in parallel, then the
//! partials are combined in sample order, so the result does not depend on
//! the thread count. A channel whose values are all equal has `x - mean = 0`
//! exactly (the f64 mean of equal f32 values is that value), so it gives
//! `y = beta`, never NaN (`eps > 0` is required by the shape rule).

use rayon::prelude::*;

use super::{BatchNormSpec, BnStats};
use crate::error::Result;
use crate::ops::{check_len, check_param, check_shape};
use crate::tensor::Tensor;

/// `y = batchnorm(x)` with batch statistics, which are returned. `y` must
/// have `x`'s shape and is fully overwritten; it cannot alias `x` (Rust's
/// borrows rule that out; use [`batchnorm_forward_inplace`] to normalise in
/// place).
pub fn batchnorm_forward(
    spec: &BatchNormSpec,
    x: &Tensor,
    gamma: &[f32],
    beta: &[f32],
    y: &mut Tensor,
) -> Result<BnStats> {
    check_args(spec, x, gamma, beta)?;
    check_shape("batchnorm", "output", x.shape, y.shape)?;
    check_len("batchnorm", "output", y.shape, y.data.len())?;
    let stats = batch_stats(spec, x);
    let (scale, beta) = scale_shift(&stats, gamma, beta);
    let c = spec.channels;
    y.data
        .par_chunks_mut(x.shape.per_sample())
        .zip(x.data.par_chunks(x.shape.per_sample()))
        .for_each(|(ys, xs)| {
            for (yp, xp) in ys.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
                for i in 0..c {
                    yp[i] = (xp[i] - stats.mean[i]) * scale[i] + beta[i];
                }
            }
        });
    Ok(stats)
}

/// [`batchnorm_forward`] overwriting `x` with the result.
pub fn batchnorm_forward_inplace(
    spec: &BatchNormSpec,
    x: &mut Tensor,
    gamma: &[f32],
    beta: &[f32],
) -> Result<BnStats> {
    check_args(spec, x, gamma, beta)?;
    let stats = batch_stats(spec, x);
    let (scale, beta) = scale_shift(&stats, gamma, beta);
    let c = spec.channels;
    let per = x.shape.per_sample();
    x.data.par_chunks_mut(per).for_each(|xs| {
        for xp in xs.chunks_exact_mut(c) {
            for i in 0..c {
                xp[i] = (xp[i] - stats.mean[i]) * scale[i] + beta[i];
            }
        }
    });
    Ok(stats)
}

fn check_args(spec: &BatchNormSpec, x: &Tensor, gamma: &[f32], beta: &[f32]) -> Result<()> {
    spec.out_shape(x.shape)?;
    check_len("batchnorm", "input", x.shape, x.data.len())?;
    check_param("batchnorm", "gamma", spec.channels, gamma.len())?;
    check_param("batchnorm", "beta", spec.channels, beta.len())?;
    Ok(())
}

/// `(gamma * inv_std, beta)` per channel.
fn scale_shift(stats: &BnStats, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let scale = gamma
        .iter()
        .zip(&stats.inv_std)
        .map(|(g, s)| g * s)
        .collect();
    (scale, beta.to_vec())
}

/// Per-channel batch mean and `1 / sqrt(var + eps)`, deterministic.
fn batch_stats(spec: &BatchNormSpec, x: &Tensor) -> BnStats {
    let c = spec.channels;
    let per = x.shape.per_sample();
    let count = (x.shape.n * x.shape.h * x.shape.w) as f64;

    // Pass 1: per-sample channel sums, combined in sample order.
    let sums: Vec<Vec<f64>> = x
        .data
        .par_chunks(per)
        .map(|xs| {
            let mut acc = vec![0.0f64; c];
            for xp in xs.chunks_exact(c) {
                for (a, &v) in acc.iter_mut().zip(xp) {
                    *a += v as f64;
                }
            }
            acc
        })
        .collect();
    let mut mean = vec![0.0f64; c];
    for s in &sums {
        for (m, v) in mean.iter_mut().zip(s) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= count;
    }

    // Pass 2: per-sample sums of squared deviations, combined in sample order.
    let sq: Vec<Vec<f64>> = x
        .data
        .par_chunks(per)
        .map(|xs| {
            let mut acc = vec![0.0f64; c];
            for xp in xs.chunks_exact(c) {
                for ((a, &v), m) in acc.iter_mut().zip(xp).zip(&mean) {
                    let d = v as f64 - m;
                    *a += d * d;
                }
            }
            acc
        })
        .collect();
    let mut var = vec![0.0f64; c];
    for s in &sq {
        for (v, d) in var.iter_mut().zip(s) {
            *v += d;
        }
    }
    let eps = spec.eps as f64;
    BnStats {
        mean: mean.iter().map(|&m| m as f32).collect(),
        inv_std: var
            .iter()
            .map(|&v| (1.0 / (v / count + eps).sqrt()) as f32)
            .collect(),
    }
}
