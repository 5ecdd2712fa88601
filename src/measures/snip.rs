//! `snip`: Σ over the weights of conv and linear layers of |w · ∂L/∂w|,
//! L the batch's cross-entropy (SNIP's connection sensitivity, as NASLib's
//! `snip.py` computes it: the gradient with respect to a mask of ones
//! that multiplies each weight, which is w · ∂L/∂w).

use super::{sum_over_weights, Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "snip",
    aliases: &[],
    summary: "Σ |w · ∂L/∂w| over conv and linear weights (SNIP's saliency)",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/snip.py",
    need: Need::CrossEntropy,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let g = p.grads()?;
    Ok(Some(sum_over_weights(p.graph, p.params, g, |t, d| {
        f64::from(t * d).abs()
    })))
}
