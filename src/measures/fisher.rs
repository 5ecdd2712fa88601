//! `fisher`: NASLib's channel-wise Fisher information (after Theis et al.
//! and Turner et al.'s `fisher` pruning criterion). For each conv and
//! linear layer with output `a` (before anything follows it) and
//! `g = ∂L/∂a` (L the batch's cross-entropy), per sample n and output
//! channel k: `s_nk = Σ_positions a·g`; per channel
//! `F_k = ½ · mean_n s_nk²`. NASLib then spreads each channel's value over
//! the weights of that channel before summing (`reshape_elements` fills a
//! tensor of `weight.shape[1:]` with it), so the sum is
//! `Σ_layers Σ_k F_k · (weights per output channel)`. That quirk is the
//! default here, as in every published figure of NASLib's `fisher`.

use super::{weight_layers, Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "fisher",
    aliases: &[],
    summary:
        "Σ over conv/linear output channels of ½·mean_n(Σ_pos a·∂L/∂a)², × weights per channel",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/fisher.py",
    need: Need::LayerTaps,
    compute: Some(compute),
};

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let taps = p.layer_taps()?;
    let mut total = 0.0;
    for (node, w) in weight_layers(p.graph) {
        let c = p.graph.nodes[node].shape.c;
        // A layer the loss does not reach has no backward and no taps: it
        // adds 0, as NASLib's hook, never called, leaves its zeros.
        let Some(tap) = taps
            .iter()
            .find(|(i, _)| *i == node)
            .map(|(_, t)| t.as_slice())
        else {
            continue;
        };
        let n = tap.len() / c.max(1);
        let per_channel = p.graph.params[w].len / c.max(1);
        for k in 0..c {
            let mean_sq = (0..n).map(|b| tap[b * c + k] * tap[b * c + k]).sum::<f64>() / n as f64;
            total += 0.5 * mean_sq * per_channel as f64;
        }
    }
    Ok(Some(total))
}
