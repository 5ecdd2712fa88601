//! AZ-NAS (CVPR 2024): three of its four components, as its official code
//! (cvlab-yonsei/AZ-NAS, `NB201/ZeroShotProxy/compute_az_nas_score.py`)
//! computes them on the blocks' outputs ([`crate::net::Graph::blocks`]:
//! the stem, then every cell and reduction block). The network's conv and
//! linear weights are re-drawn Kaiming-normal (fan-in), biases 0, and it
//! scores a batch of N(0, 1) images shaped like the scoring batch, with
//! BatchNorm in training mode ([`super::forward::block_pass`]).
//!
//! - `az_expressivity`: for each block's feature map, the eigenvalues s of
//!   its channels' covariance over the batch and positions, p = s / Σ s,
//!   and the entropy −Σ p ln(p + 10⁻⁸); summed over the blocks.
//! - `az_progressivity`: the smallest increase of that entropy from one
//!   block to the next.
//! - `az_trainability`: for each block after the stem, a Rademacher vector
//!   at its output is carried back through the block alone to its input
//!   (folded space-to-depth where the block halves the size); σ is the
//!   largest singular value of the position-averaged product of the two
//!   and the block scores 2 − σ − 1/(σ + 10⁻⁶); the mean over the blocks.
//!   A block whose output is its input scores −∞ in the official code, and
//!   so here (the measure is then not a number).
//!
//! The fourth component, complexity, is the FLOP count (`flops`); AZ-NAS
//! combines the four by their ranks over the scored cells, which needs
//! the whole population (done where cells are ranked, not per cell).

use super::{Measure, Need, Passes};
use crate::error::Result;

/// The registry entry of `az_expressivity`.
pub const EXPRESSIVITY: Measure = Measure {
    name: "az_expressivity",
    aliases: &["expressivity"],
    summary: "AZ-NAS: Σ over blocks of the entropy of their channel covariance's eigenvalues",
    reference: "cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/compute_az_nas_score.py",
    need: Need::Blocks,
    compute: Some(expressivity),
};

/// The registry entry of `az_progressivity`.
pub const PROGRESSIVITY: Measure = Measure {
    name: "az_progressivity",
    aliases: &["progressivity"],
    summary: "AZ-NAS: the smallest block-to-block increase of that entropy",
    reference: "cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/compute_az_nas_score.py",
    need: Need::Blocks,
    compute: Some(progressivity),
};

/// The registry entry of `az_trainability`.
pub const TRAINABILITY: Measure = Measure {
    name: "az_trainability",
    aliases: &["trainability"],
    summary: "AZ-NAS: mean over blocks of 2 − σ − 1/σ, σ the top singular value of a block's Jacobian sketch",
    reference: "cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/compute_az_nas_score.py",
    need: Need::Blocks,
    compute: Some(trainability),
};

/// The entropy of the normalised eigenvalues of one block's covariance
/// (NaN where they sum to 0 or one is negative enough, as officially).
fn entropy(c: usize, cov: &[f64]) -> f64 {
    let m = nalgebra::DMatrix::from_row_slice(c, c, cov);
    let s = nalgebra::SymmetricEigen::new(m).eigenvalues;
    let total: f64 = s.iter().sum();
    -s.iter()
        .map(|&v| {
            let p = v / total;
            p * (p + 1e-8).ln()
        })
        .sum::<f64>()
}

fn entropies(p: &Passes<'_>) -> Result<Vec<f64>> {
    Ok(p.blocks()?
        .covariances
        .iter()
        .map(|(c, cov)| entropy(*c, cov))
        .collect())
}

fn expressivity(p: &Passes<'_>) -> Result<Option<f64>> {
    Ok(Some(entropies(p)?.iter().sum()))
}

fn progressivity(p: &Passes<'_>) -> Result<Option<f64>> {
    let e = entropies(p)?;
    Ok(e.windows(2).map(|w| w[1] - w[0]).reduce(f64::min))
}

fn trainability(p: &Passes<'_>) -> Result<Option<f64>> {
    let products = &p.blocks()?.products;
    if products.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0;
    for product in products {
        let Some((rows, cols, m)) = product else {
            return Ok(Some(f64::NEG_INFINITY));
        };
        let sigma = top_singular_value(*rows, *cols, m);
        total += 2.0 - sigma - 1.0 / (sigma + 1e-6);
    }
    Ok(Some(total / products.len() as f64))
}

/// The largest singular value of the `rows × cols` matrix `m`: √ of the
/// largest eigenvalue of the smaller of MᵀM and MMᵀ.
pub(crate) fn top_singular_value(rows: usize, cols: usize, m: &[f64]) -> f64 {
    let a = nalgebra::DMatrix::from_row_slice(rows, cols, m);
    let gram = if rows >= cols {
        a.transpose() * &a
    } else {
        &a * a.transpose()
    };
    nalgebra::SymmetricEigen::new(gram)
        .eigenvalues
        .iter()
        .copied()
        .fold(0.0f64, f64::max)
        .max(0.0)
        .sqrt()
}
