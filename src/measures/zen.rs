//! `zen`: Zen-NAS's score (ICCV 2021) as NASLib computes it
//! (`naslib/predictors/utils/pruners/measures/zen.py`, after the official
//! idstcv/ZenNAS `compute_zen_score.py`, one repeat). Every conv and
//! linear weight is re-drawn N(0, 1) (biases 0, BatchNorm γ = 1, β = 0);
//! x is a batch of N(0, 1) images shaped like the scoring batch and
//! x' = x + γ·ε with ε another such batch and γ = 0.01. With f the
//! features before global pooling (BatchNorm in training mode),
//! `zen = ln(mean over samples of Σ |f(x) − f(x')|) + Σ over BatchNorm
//! layers of ln √(mean over channels of its running variance)`, the
//! running variance as PyTorch leaves it after the two passes (from 1,
//! momentum 0.1, the unbiased batch variance: 0.81 + 0.09·v(x) + 0.1·v(x')).
//! Every BatchNorm counts, including NB201's cell BatchNorms, which track
//! no statistics in NASLib's NB201 (where `zen.py` then fails).

use super::{Measure, Need, Passes};
use crate::error::Result;

/// The mixing weight γ of the perturbed input.
pub const GAMMA: f32 = 1e-2;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "zen",
    aliases: &["zen_nas"],
    summary: "Zen-NAS: ln E|f(x) − f(x + 0.01ε)| before pooling + Σ_BN ln √(mean running var), N(0,1) weights",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/zen.py; idstcv/ZenNAS",
    need: Need::Zen,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let z = p.zen()?;
    let bn: f64 = z.running_var.iter().map(|&v| v.sqrt().ln()).sum();
    Ok(Some(z.distance.ln() + bn))
}
