//! `synflow`: SynFlow's saliency (Tanaka et al., 2020) as NASLib's
//! `synflow.py` computes it for zero-cost NAS (`bn=False`, mode "param"):
//! the network with every BatchNorm replaced by the identity and every
//! parameter by its absolute value, one input of ones shaped like one
//! image; R = Σ outputs; `synflow = Σ over conv and linear weights of
//! |θ · ∂R/∂θ|`.
//!
//! NASLib runs this pass in float64 because R reaches 10⁴² on NB101 cells,
//! beyond float32. Here it runs in float32, scaled: every value of the pass
//! is non-negative (so every ReLU is the identity and nothing cancels),
//! the network is linear in its input but for the classifier's bias, which
//! no weight gradient reads, and the gradients are linear in the seed of
//! the backward pass. With the input scaled by s = 2⁻⁶⁰ and the seed by
//! t = 2⁻⁶⁰, every activation, gradient and weight gradient is its exact
//! value times s, t or s·t, inside float32's range for R up to about
//! 2¹⁸⁰; the sum is taken in f64 and divided by s·t, a power of 2.

use super::{sum_over_weights, Measure, Need, Passes};
use crate::error::Result;

/// The scale of the pass's input and of its backward seed (2⁻⁶⁰).
pub const SCALE: f32 = 1.0 / (1u64 << 60) as f32;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "synflow",
    aliases: &["synflow_param"],
    summary: "Σ |θ·∂R/∂θ| over conv/linear weights; R: Σ outputs of |θ|, no BatchNorm, input ones",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/synflow.py",
    need: Need::Synflow,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let pass = p.synflow()?;
    let unscale = 1.0 / (f64::from(SCALE) * f64::from(SCALE));
    let total = sum_over_weights(p.graph, &pass.abs, &pass.grads, |a, g| {
        (f64::from(a) * f64::from(g)).abs()
    });
    Ok(Some(total * unscale))
}
