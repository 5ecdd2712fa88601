//! `zico`: ZiCo (ICLR 2023), the zero-shot proxy of gradients' inverse
//! coefficient of variation, as its official code (SLDGroup/ZiCo,
//! `ZeroShotProxy/compute_zico.py`) computes it on two batches: here the
//! first half of the scoring batch and the rest, each its own forward and
//! backward of the cross-entropy (mean over that half). For each weight θ
//! of a conv or linear layer, over the two gradients: σ_θ their standard
//! deviation (population, numpy's default) and μ_θ the mean of their
//! absolute values; per layer `S = Σ_{σ_θ ≠ 0} μ_θ/σ_θ`, and
//! `zico = Σ_layers ln S` over the layers with S ≠ 0. In f64 (the official
//! code works in the gradients' f32).

use super::{weight_layers, Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "zico",
    aliases: &[],
    summary:
        "Σ over conv/linear layers of ln Σ mean|g|/std(g), gradients of the batch's two halves",
    reference: "SLDGroup/ZiCo ZeroShotProxy/compute_zico.py",
    need: Need::Halves,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let [g1, g2] = p.halves()?;
    let mut total = 0.0;
    for (_, w) in weight_layers(p.graph) {
        let mut s = 0.0;
        for (&a, &b) in g1[w].iter().zip(&g2[w]) {
            let (a, b) = (f64::from(a), f64::from(b));
            let std = (a - b).abs() / 2.0;
            if std != 0.0 {
                s += (a.abs() + b.abs()) / 2.0 / std;
            }
        }
        if s != 0.0 {
            total += s.ln();
        }
    }
    Ok(Some(total))
}
