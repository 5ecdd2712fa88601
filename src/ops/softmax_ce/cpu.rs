//! CPU softmax cross-entropy. Per sample (in parallel): the max logit, then
//! `lse = max + ln Σ exp(z − max)` in f64, `loss_b = lse − z[label]`,
//! `p = exp(z − lse)`; the batch mean of `loss_b` is summed in sample order,
//! so the result does not depend on the thread count.

use rayon::prelude::*;

use super::CeStats;
use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// Loss and batch accuracy of `logits` against `labels`, and the gradient
/// `dlogits = (softmax − onehot) / n` (same shape as `logits`, fully
/// overwritten).
pub fn softmax_ce_forward_backward(
    logits: &Tensor,
    labels: &[u32],
    dlogits: &mut Tensor,
) -> Result<CeStats> {
    check_shape("softmax_ce", "dlogits", logits.shape, dlogits.shape)?;
    check_len("softmax_ce", "dlogits", dlogits.shape, dlogits.data.len())?;
    run(logits, labels, Some(dlogits))
}

/// Loss and batch accuracy only.
pub fn softmax_ce_loss(logits: &Tensor, labels: &[u32]) -> Result<CeStats> {
    run(logits, labels, None)
}

fn run(logits: &Tensor, labels: &[u32], dlogits: Option<&mut Tensor>) -> Result<CeStats> {
    super::check(logits.shape, labels)?;
    check_len("softmax_ce", "logits", logits.shape, logits.data.len())?;
    let k = logits.shape.per_sample();
    let n = logits.shape.n;
    let inv_n = 1.0 / n as f64;
    let per_sample = |z: &[f32], label: u32, g: Option<&mut [f32]>| -> (f64, bool) {
        // Arg-max, ties to the lowest index (strict `>`).
        let mut best = 0;
        for (j, &v) in z.iter().enumerate() {
            if v > z[best] {
                best = j;
            }
        }
        let m = z[best] as f64;
        let s: f64 = z.iter().map(|&v| (v as f64 - m).exp()).sum();
        let lse = m + s.ln();
        if let Some(g) = g {
            for (j, (o, &v)) in g.iter_mut().zip(z).enumerate() {
                let p = (v as f64 - lse).exp();
                let t = if j == label as usize { 1.0 } else { 0.0 };
                *o = ((p - t) * inv_n) as f32;
            }
        }
        (lse - z[label as usize] as f64, best == label as usize)
    };
    let results: Vec<(f64, bool)> = match dlogits {
        Some(d) => d
            .data
            .par_chunks_mut(k)
            .zip(logits.data.par_chunks(k))
            .zip(labels.par_iter())
            .map(|((g, z), &l)| per_sample(z, l, Some(g)))
            .collect(),
        None => logits
            .data
            .par_chunks(k)
            .zip(labels.par_iter())
            .map(|(z, &l)| per_sample(z, l, None))
            .collect(),
    };
    let loss = results.iter().map(|r| r.0).sum::<f64>() * inv_n;
    let correct = results.iter().filter(|r| r.1).count();
    Ok(CeStats {
        loss,
        correct,
        batch: n,
    })
}
