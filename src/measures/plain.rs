//! `plain`: Σ over the weights of conv and linear layers of w · ∂L/∂w, L
//! the batch's cross-entropy (NASLib's `plain.py`): the first-order change
//! of the loss when every weight is scaled, a signed baseline.

use super::{weight_layers, Measure, Need, Passes};
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
    Ok(Some(
        weight_layers(p.graph)
            .into_iter()
            .map(|(_, w)| {
                p.params[w]
                    .iter()
                    .zip(&g[w])
                    .map(|(&x, &d)| f64::from(x * d))
                    .sum::<f64>()
            })
            .sum(),
    ))
}
