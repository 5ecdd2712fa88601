//! `epe_nas`: EPE-NAS (Lopes et al., 2021) as NASLib's `epe_nas.py`
//! computes it, from the same input Jacobian as `jacov` (∂(Σ logits)/∂input
//! per sample). The samples are grouped by label; for each label c with
//! correlation matrix C_c of its samples' Jacobians (`np.corrcoef`; a label
//! with one sample has the scalar 1), `s_c = Σ_ij ln(|C_c,ij| + 10⁻⁵)`.
//! With at most 100 classes (the logits' count) the score is `Σ_c |s_c|`;
//! with more, each `s_c` is first divided by its matrix's order and the
//! score is `Σ_c Σ_c' |s_c − s_c'|` divided by the number of labels seen.
//! A label whose correlations are not numbers (a constant Jacobian) makes
//! the measure not a number, as in NASLib; with more than 100 classes a
//! label with one sample is left out (NASLib's `len` of its scalar fails
//! and its `except` skips the label).

use super::jacov::correlation;
use super::{Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "epe_nas",
    aliases: &[],
    summary: "Σ over labels of |Σ ln(|corr|+k)| of the input-Jacobian correlations of that label's samples",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/epe_nas.py",
    need: Need::InputJacobian,
    compute: Some(compute),
};

const K: f64 = 1e-5;

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let j = p.input_grad()?;
    let classes = p.graph.nodes[p.graph.output].shape.c;
    let f = j.shape.per_sample();
    // Labels in order of first appearance, as NASLib's dict fills.
    let mut seen: Vec<u32> = Vec::new();
    for &l in p.labels {
        if !seen.contains(&l) {
            seen.push(l);
        }
    }
    let mut per_label = Vec::with_capacity(seen.len());
    for &c in &seen {
        let rows: Vec<usize> = (0..p.labels.len()).filter(|&i| p.labels[i] == c).collect();
        let s = if rows.len() == 1 {
            // NASLib's corrcoef of one row is the scalar 1; with more than
            // 100 classes its `len` then fails and the label is skipped.
            if classes > 100 {
                continue;
            }
            (1.0 + K).ln()
        } else {
            let mut x = Vec::with_capacity(rows.len() * f);
            for &r in &rows {
                x.extend_from_slice(&j.data[r * f..(r + 1) * f]);
            }
            let Some(corr) = correlation(&x, rows.len(), f) else {
                return Ok(None);
            };
            let s: f64 = corr.iter().map(|v| (v.abs() + K).ln()).sum();
            if classes > 100 {
                s / rows.len() as f64
            } else {
                s
            }
        };
        per_label.push(s);
    }
    if classes <= 100 {
        return Ok(Some(per_label.iter().map(|s| s.abs()).sum()));
    }
    let mut score = 0.0;
    for a in &per_label {
        for b in &per_label {
            score += (a - b).abs();
        }
    }
    Ok(Some(score / per_label.len().max(1) as f64))
}
