//! `plain`: Σ over the weights of conv and linear layers of w · ∂L/∂w, L
//! the batch's cross-entropy (NASLib's `plain.py`): the first-order change
//! of the loss when every weight is scaled, a signed baseline.

use super::{sum_over_weights, Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "plain",
    aliases: &[],
    summary: "Σ w · ∂L/∂w over conv and linear weights",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/plain.py",
    need: Need::CrossEntropy,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let g = p.grads()?;
    Ok(Some(sum_over_weights(p.graph, p.params, g, |t, d| {
        f64::from(t * d)
    })))
}
