//! `grad_norm`: Σ over weight layers of ‖∂L/∂W‖₂, L the cross-entropy of
//! the batch (mean over samples) against its labels (NASLib's
//! `grad_norm.py`: `layer.weight.grad.norm()` per `nn.Conv2d` /
//! `nn.Linear`, summed). BatchNorm normalises with the batch's statistics.

use super::l2_norm::norm;
use super::{weight_layers, Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "grad_norm",
    aliases: &[],
    summary: "Σ over conv and linear layers of the L2 norm of the cross-entropy's weight gradient",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/grad_norm.py",
    need: Need::CrossEntropy,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let g = p.grads()?;
    Ok(Some(
        weight_layers(p.graph)
            .into_iter()
            .map(|(_, w)| norm(&g[w]))
            .sum(),
    ))
}
