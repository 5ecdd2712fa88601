//! `meco` and `meco_opt`: MeCo (NeurIPS 2023), the minimum eigenvalue of
//! the Pearson correlation of each feature map's channels, as its official
//! code (HamsterMimi/MeCo, `correlation/NAS_Bench_201.py`, `get_score`)
//! computes it. For each feature map, sample 0 of the batch is taken as
//! C channels of H·W positions; P is the C×C correlation of the channels
//! over the positions (`torch.corrcoef`), with a constant channel's row
//! and column (NaN there) set to 0; the layer's value is P's smallest
//! eigenvalue, and `meco` is their sum. The official code hooks every
//! PyTorch module, so a value returned by several nested modules (a
//! BatchNorm inside its ReLU-conv-BN wrapper) is counted once per module;
//! here each distinct feature map of the network (every node's output with
//! more than one position, a ReLU's included) is counted once. Maps with
//! one position (after global pooling, the logits) add 0 in the official
//! code and are left out. The symmetric eigensolver runs in f64.
//!
//! `meco_opt` is the official sampled-channel variant: 8 channels of each
//! map, drawn without replacement (here from the weight seed and the
//! node's name, where the official code uses Python's unseeded `random`),
//! and the smallest eigenvalue of their correlation times C/8. A map of
//! fewer than 8 channels keeps them all (the official code raises).

use super::jacov::{centre_to_unit, unit_row_gram};
use super::{Measure, Need, Passes};
use crate::error::Result;
use crate::rng::{bits, name_id, stream_key};

/// The registry entry of `meco`.
pub const MEASURE: Measure = Measure {
    name: "meco",
    aliases: &[],
    summary: "Σ over feature maps of λ_min of sample 0's channel correlation matrix",
    reference: "HamsterMimi/MeCo correlation/NAS_Bench_201.py (meco)",
    need: Need::SampleFeatures,
    compute: Some(compute),
};

/// The registry entry of `meco_opt`.
pub const OPT: Measure = Measure {
    name: "meco_opt",
    aliases: &[],
    summary: "MeCo on 8 sampled channels per feature map, × C/8",
    reference: "HamsterMimi/MeCo correlation/NAS_Bench_201.py (meco_opt)",
    need: Need::SampleFeatures,
    compute: Some(compute_opt),
};

/// Channels `meco_opt` samples per map.
pub const SAMPLED: usize = 8;

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let f = p.sample_features()?;
    let total = f
        .maps
        .iter()
        .map(|(_, t)| {
            let all: Vec<usize> = (0..t.shape.c).collect();
            min_eigenvalue(&t.data, t.shape.c, &all)
        })
        .sum();
    Ok(Some(total))
}

fn compute_opt(p: &Passes<'_>) -> Result<Option<f64>> {
    let f = p.sample_features()?;
    let mut total = 0.0;
    for (node, t) in &f.maps {
        let c = t.shape.c;
        let key = stream_key(
            p.seed,
            name_id(&format!("meco_opt.{}", p.graph.nodes[*node].name)),
        );
        let chosen = sample_channels(c, SAMPLED.min(c), key);
        total += min_eigenvalue(&t.data, c, &chosen) * c as f64 / chosen.len() as f64;
    }
    Ok(Some(total))
}

/// `k` distinct channels of `0..c` (a partial Fisher–Yates shuffle drawn
/// from `key`).
pub(crate) fn sample_channels(c: usize, k: usize, key: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..c).collect();
    for i in 0..k {
        let j = i + (bits(key, i as u64) % (c - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

/// λ_min of the correlation over positions of `channels` of one sample's
/// map `x` (positions × `c`, NHWC), a constant channel's row and column 0.
pub(crate) fn min_eigenvalue(x: &[f32], c: usize, channels: &[usize]) -> f64 {
    let k = channels.len();
    let positions = x.len() / c.max(1);
    if k == 0 || positions == 0 {
        return 0.0;
    }
    // Centred, unit-norm rows (one per channel), or zeros if constant
    // (its NaN correlations set to 0).
    let mut z = vec![0f64; k * positions];
    for (r, &ch) in channels.iter().enumerate() {
        let row = &mut z[r * positions..(r + 1) * positions];
        for (p, o) in row.iter_mut().enumerate() {
            *o = f64::from(x[p * c + ch]);
        }
        if !centre_to_unit(row) {
            row.fill(0.0);
        }
    }
    let m = unit_row_gram(&z, k, positions);
    nalgebra::SymmetricEigen::new(m)
        .eigenvalues
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
}
