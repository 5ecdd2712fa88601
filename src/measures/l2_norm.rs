//! `l2_norm`: Σ over weight layers of ‖W‖₂, the Euclidean norm of each
//! conv or linear weight (NASLib's `l2_norm.py`: `layer.weight.norm()`
//! per `nn.Conv2d` / `nn.Linear`, summed). Biases and BatchNorm are not
//! counted. Accumulated in f64.

use super::{weight_layers, Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "l2_norm",
    aliases: &[],
    summary: "Σ over conv and linear layers of the weight's L2 norm",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/l2_norm.py",
    need: Need::Weights,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    Ok(Some(
        weight_layers(p.graph)
            .into_iter()
            .map(|(_, w)| norm(&p.params[w]))
            .sum(),
    ))
}

/// ‖v‖₂ accumulated in f64.
pub(crate) fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}
