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

use super::{BatchNormSpec, BnStats, ChannelSums};
use crate::error::{Error, Result};
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

/// Training-mode BatchNorm of `x`, in place, from its channel sums (as
/// [`crate::ops::conv2d::cpu::conv2d_forward_stats`] returns them), in one
/// pass over `x`: the fused path for a conv whose only reader is this BN.
///
/// Statistics, in f64: `mean = Σx / count`, `var = max(Σx² / count − mean²,
/// 0)` (biased, like [`batchnorm_forward`]). This one-pass formula
/// amplifies the rounding error of the sums by `1 + mean² / var`: the
/// squares are exact in f64 and the sums carry a relative error of at most
/// about `count · 2⁻⁵³` (1.5e-11 at count = 131,072), so the variance stays
/// well inside f32 precision unless `mean² / var` exceeds ~1e3 — far from
/// a freshly initialised conv's output, whose mean is ≈ 0. Rounding can
/// make the difference slightly negative, hence the clamp. A constant
/// channel still gives `y = beta` exactly (below 2²⁹ values): every partial
/// sum `k · v` is exact in f64, so `mean` equals the value and
/// `x − mean = 0`.
///
/// Normalisation is `y = (x − mean) * (gamma * inv_std) + beta` in f32, the
/// same expression as [`batchnorm_forward`], so equal statistics give
/// bitwise equal outputs.
pub fn batchnorm_forward_from_sums(
    spec: &BatchNormSpec,
    x: &mut Tensor,
    gamma: &[f32],
    beta: &[f32],
    sums: &ChannelSums,
) -> Result<BnStats> {
    check_args(spec, x, gamma, beta)?;
    let c = spec.channels;
    let count = x.shape.n * x.shape.h * x.shape.w;
    if sums.sum.len() != c || sums.sumsq.len() != c || sums.count != count {
        return Err(Error::Shape(format!(
            "batchnorm: channel sums of {} / {} channels over {} values do not fit input {}",
            sums.sum.len(),
            sums.sumsq.len(),
            sums.count,
            x.shape
        )));
    }
    let cnt = count as f64;
    let eps = spec.eps as f64;
    let mut mean = Vec::with_capacity(c);
    let mut inv_std = Vec::with_capacity(c);
    for (&s, &q) in sums.sum.iter().zip(&sums.sumsq) {
        let m = s / cnt;
        let var = (q / cnt - m * m).max(0.0);
        mean.push(m as f32);
        inv_std.push((1.0 / (var + eps).sqrt()) as f32);
    }
    let stats = BnStats { mean, inv_std };
    let (scale, beta) = scale_shift(&stats, gamma, beta);
    normalise_inplace(x, c, &stats.mean, &scale, &beta);
    Ok(stats)
}

/// Channel parameters repeated to a period of at least [`PERIOD_MIN`]
/// values that is a multiple of both `c` and 8. A sample's NHWC data
/// (`h * w * c` values, channel innermost) then splits into fixed runs of
/// `period` values that all start at channel 0, so one flat, branch-free
/// loop over a run lines up with the parameter arrays and vectorises
/// (whatever `c` is; the last, shorter run uses a prefix of them).
const PERIOD_MIN: usize = 64;

fn periodic(v: &[f32], c: usize) -> Vec<f32> {
    let lcm = c * (8 / gcd(c, 8));
    let period = lcm * PERIOD_MIN.div_ceil(lcm);
    v.iter().copied().cycle().take(period).collect()
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `x[p][ch] = (x[p][ch] − mean[ch]) * scale[ch] + beta[ch]` over an NHWC
/// tensor of `c` channels, samples in parallel (no reduction: the split
/// cannot change a value). Multiply and add stay separate operations (Rust
/// does not contract them to FMA), so the AVX2 and portable paths agree
/// bitwise with each other and with [`batchnorm_forward`]'s loop.
fn normalise_inplace(x: &mut Tensor, c: usize, mean: &[f32], scale: &[f32], beta: &[f32]) {
    let (m, s, b) = (periodic(mean, c), periodic(scale, c), periodic(beta, c));
    let avx2 = crate::ops::has_avx2_fma();
    x.data.par_chunks_mut(x.shape.per_sample()).for_each(|xs| {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2 and FMA were detected at run time.
            unsafe { normalise_avx2(xs, &m, &s, &b) };
            return;
        }
        let _ = avx2;
        normalise_body(xs, &m, &s, &b);
    });
}

/// [`normalise_body`] compiled for AVX2 (8-wide vectors).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn normalise_avx2(xs: &mut [f32], m: &[f32], s: &[f32], b: &[f32]) {
    normalise_body(xs, m, s, b)
}

/// One sample: `xs` in runs of `m.len()` values (the periodic parameters).
#[inline(always)]
fn normalise_body(xs: &mut [f32], m: &[f32], s: &[f32], b: &[f32]) {
    for run in xs.chunks_mut(m.len()) {
        for (((v, &mm), &ss), &bb) in run.iter_mut().zip(m).zip(s).zip(b) {
            *v = (*v - mm) * ss + bb;
        }
    }
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

/// The gradients of BatchNorm's parameters, `[c]` each, overwritten by
/// [`batchnorm_backward`].
#[derive(Debug)]
pub struct BnParamGrads<'a> {
    /// γ's gradient.
    pub dgamma: &'a mut [f32],
    /// β's gradient.
    pub dbeta: &'a mut [f32],
}

/// Backward of training-mode BatchNorm (batch statistics): given the
/// forward's input `x`, its statistics `stats` (as [`batchnorm_forward`]
/// returned them) and `dy`, writes `dx` and `grads` (`dgamma`, `dbeta`),
/// all fully overwritten.
///
/// Per channel, with `M = n·h·w` and `x̂ = (x − mean)·inv_std`:
/// `dβ = Σ dy`, `dγ = Σ dy·x̂`,
/// `dx = γ·inv_std / M · (M·dy − Σ dy − x̂·Σ dy·x̂)`.
/// Everything after reading `x`, `dy`, `mean`, `inv_std` and `γ` (f32) is
/// computed in f64; the sums are per-sample partials (pixels in order)
/// added in sample order, so the result does not depend on the thread
/// count.
pub fn batchnorm_backward(
    spec: &BatchNormSpec,
    x: &Tensor,
    gamma: &[f32],
    stats: &BnStats,
    dy: &Tensor,
    dx: &mut Tensor,
    grads: BnParamGrads<'_>,
) -> Result<()> {
    let BnParamGrads { dgamma, dbeta } = grads;
    let op = "batchnorm backward";
    spec.out_shape(x.shape)?;
    check_len(op, "input", x.shape, x.data.len())?;
    let c = spec.channels;
    check_param(op, "gamma", c, gamma.len())?;
    check_param(op, "mean", c, stats.mean.len())?;
    check_param(op, "inv_std", c, stats.inv_std.len())?;
    check_param(op, "dgamma", c, dgamma.len())?;
    check_param(op, "dbeta", c, dbeta.len())?;
    check_shape(op, "dy", x.shape, dy.shape)?;
    check_len(op, "dy", dy.shape, dy.data.len())?;
    check_shape(op, "dx", x.shape, dx.shape)?;
    check_len(op, "dx", dx.shape, dx.data.len())?;
    let per = x.shape.per_sample();
    let mean: Vec<f64> = stats.mean.iter().map(|&v| v as f64).collect();
    let inv: Vec<f64> = stats.inv_std.iter().map(|&v| v as f64).collect();
    // Per-sample [Σ dy (c)][Σ dy·x̂ (c)], combined in sample order.
    let partials: Vec<Vec<f64>> = x
        .data
        .par_chunks(per)
        .zip(dy.data.par_chunks(per))
        .map(|(xs, ds)| {
            let mut acc = vec![0.0f64; 2 * c];
            let (sd, sdx) = acc.split_at_mut(c);
            for (xp, dp) in xs.chunks_exact(c).zip(ds.chunks_exact(c)) {
                for i in 0..c {
                    let d = dp[i] as f64;
                    let xh = (xp[i] as f64 - mean[i]) * inv[i];
                    sd[i] += d;
                    sdx[i] += d * xh;
                }
            }
            acc
        })
        .collect();
    let mut sums = vec![0.0f64; 2 * c];
    for p in &partials {
        for (s, v) in sums.iter_mut().zip(p) {
            *s += v;
        }
    }
    let (sum_dy, sum_dyx) = sums.split_at(c);
    let m = (x.shape.n * x.shape.h * x.shape.w) as f64;
    for i in 0..c {
        dbeta[i] = sum_dy[i] as f32;
        dgamma[i] = sum_dyx[i] as f32;
    }
    let scale: Vec<f64> = (0..c).map(|i| gamma[i] as f64 * inv[i] / m).collect();
    dx.data
        .par_chunks_mut(per)
        .zip(x.data.par_chunks(per).zip(dy.data.par_chunks(per)))
        .for_each(|(os, (xs, ds))| {
            for ((op, xp), dp) in os
                .chunks_exact_mut(c)
                .zip(xs.chunks_exact(c))
                .zip(ds.chunks_exact(c))
            {
                for i in 0..c {
                    let xh = (xp[i] as f64 - mean[i]) * inv[i];
                    let v = m * dp[i] as f64 - sum_dy[i] - xh * sum_dyx[i];
                    op[i] = (scale[i] * v) as f32;
                }
            }
        });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for BatchNormSpec {
    /// In place from the channel sums the conv before it left, or from its
    /// own statistics; saves mean and 1/std when training.
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        let gamma = a.param("batchnorm", 0)?;
        let beta = a.param("batchnorm", 1)?;
        if let Some(sums) = a.partials_in.take() {
            batchnorm_forward_from_sums(self, a.out, gamma, beta, &sums)?;
            return Ok(());
        }
        let x = a.input("batchnorm", 0)?;
        let st = batchnorm_forward(self, x, gamma, beta, a.out)?;
        if let Some(saved) = a.saved.as_deref_mut() {
            let c = self.channels;
            saved[..c].copy_from_slice(&st.mean);
            saved[c..2 * c].copy_from_slice(&st.inv_std);
        }
        Ok(())
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for BatchNormSpec {
    /// Input gradient (always computed: it needs the same sums as γ's and
    /// β's gradients) and the parameter gradients, from the saved mean and
    /// 1/std.
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let c = self.channels;
        let x = a.input("batchnorm", 0)?;
        let gamma = a.param("batchnorm", 0)?;
        let saved = a
            .saved
            .filter(|s| s.len() >= 2 * c)
            .ok_or_else(|| Error::Internal("batchnorm backward: statistics missing".into()))?;
        let st = BnStats {
            mean: saved[..c].to_vec(),
            inv_std: saved[c..2 * c].to_vec(),
        };
        let dy = a.dy;
        let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
        match a.dx.get_mut(0).and_then(Option::as_mut) {
            Some(g) => g.write(|dx| {
                let grads = BnParamGrads {
                    dgamma: &mut dg,
                    dbeta: &mut db,
                };
                batchnorm_backward(self, x, gamma, &st, dy, dx, grads)
            })?,
            None => {
                let mut dx = Tensor::zeros(x.shape);
                let grads = BnParamGrads {
                    dgamma: &mut dg,
                    dbeta: &mut db,
                };
                batchnorm_backward(self, x, gamma, &st, dy, &mut dx, grads)?;
            }
        }
        a.add_param_grad("batchnorm", 0, &dg)?;
        a.add_param_grad("batchnorm", 1, &db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Periodic runs line up with channels, and the AVX2 build of the
    /// normalise loop equals the portable one (and a per-channel loop) bit
    /// for bit, at odd channel counts and image sizes.
    #[test]
    fn normalise_paths_agree_bitwise() {
        let mut state = 0x9e37_79b9_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for c in [1usize, 3, 5, 7, 16, 17, 24, 64, 65] {
            for pixels in [1usize, 7, 13, 50] {
                let xs: Vec<f32> = (0..pixels * c).map(|_| next()).collect();
                let (mean, scale, beta): (Vec<f32>, Vec<f32>, Vec<f32>) =
                    (0..c).map(|_| (next(), next(), next())).fold(
                        (vec![], vec![], vec![]),
                        |(mut a, mut b, mut d), (x, y, z)| {
                            a.push(x);
                            b.push(y);
                            d.push(z);
                            (a, b, d)
                        },
                    );
                let want: Vec<f32> = xs
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (v - mean[i % c]) * scale[i % c] + beta[i % c])
                    .collect();
                let (m, s, b) = (periodic(&mean, c), periodic(&scale, c), periodic(&beta, c));
                assert!(m.len() >= PERIOD_MIN && m.len() % c == 0 && m.len() % 8 == 0);
                let mut p = xs.clone();
                normalise_body(&mut p, &m, &s, &b);
                assert_eq!(p, want, "portable c={c}");
                #[cfg(target_arch = "x86_64")]
                if crate::ops::has_avx2_fma() {
                    let mut v = xs.clone();
                    // SAFETY: AVX2 and FMA detected.
                    unsafe { normalise_avx2(&mut v, &m, &s, &b) };
                    assert_eq!(v, want, "avx2 c={c}");
                }
            }
        }
    }
}
