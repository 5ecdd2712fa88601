//! `jacov`: the Jacobian covariance of NASWOT's first version, as NASLib's
//! `jacov.py` computes it. J is ∂(Σ logits)/∂input per sample (the
//! gradient of the sum of every logit, BatchNorm in training mode),
//! flattened; C is the B×B correlation matrix of the samples' Jacobians
//! (`np.corrcoef`); with its eigenvalues v and k = 10⁻⁵,
//! `jacov = −Σ (ln(v + k) + 1/(v + k))`. NASLib takes the eigenvalues with
//! a general solver (`np.linalg.eig`) of the symmetric matrix; here the
//! symmetric solver (nalgebra), in f64. A sample whose Jacobian is
//! constant has no correlation: the measure is then not a number (null).

use super::{Measure, Need, Passes};
use crate::error::Result;

/// The registry entry.
pub const MEASURE: Measure = Measure {
    name: "jacov",
    aliases: &["jacob_cov"],
    summary: "−Σ ln(v+k) + 1/(v+k) over eigenvalues v of the samples' input-Jacobian correlations",
    reference: "automl/NASLib naslib/predictors/utils/pruners/measures/jacov.py",
    need: Need::InputJacobian,
    compute: Some(compute),
};

const K: f64 = 1e-5;

fn compute(p: &Passes<'_>) -> Result<Option<f64>> {
    let j = p.input_grad()?;
    let b = j.shape.n;
    let f = j.shape.per_sample();
    Ok(correlation(&j.data, b, f).map(|c| {
        let eig = nalgebra::SymmetricEigen::new(c).eigenvalues;
        -eig.iter()
            .map(|&v| (v + K).ln() + 1.0 / (v + K))
            .sum::<f64>()
    }))
}

/// The `b × b` correlation matrix of the rows of `x` (`b` rows of `f`
/// values), as `np.corrcoef`; `None` when a row is constant.
pub(crate) fn correlation(x: &[f32], b: usize, f: usize) -> Option<nalgebra::DMatrix<f64>> {
    let mut z: Vec<f64> = x[..b * f].iter().map(|&v| f64::from(v)).collect();
    for zr in z.chunks_exact_mut(f.max(1)) {
        if !centre_to_unit(zr) {
            return None;
        }
    }
    Some(unit_row_gram(&z, b, f))
}

/// Centres `row` and scales it to unit norm; false (row untouched past
/// centring) when it is constant, so it has no correlation.
pub(crate) fn centre_to_unit(row: &mut [f64]) -> bool {
    let mean = row.iter().sum::<f64>() / row.len().max(1) as f64;
    row.iter_mut().for_each(|v| *v -= mean);
    let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    row.iter_mut().for_each(|v| *v /= norm);
    true
}

/// The `b × b` matrix of dot products of the `b` unit rows of `z` (each
/// `f` long), clipped to [−1, 1] as `np.corrcoef` and `torch.corrcoef`
/// clip.
pub(crate) fn unit_row_gram(z: &[f64], b: usize, f: usize) -> nalgebra::DMatrix<f64> {
    let mut c = nalgebra::DMatrix::<f64>::zeros(b, b);
    for i in 0..b {
        for k in 0..=i {
            let dot: f64 = z[i * f..(i + 1) * f]
                .iter()
                .zip(&z[k * f..(k + 1) * f])
                .map(|(a, b)| a * b)
                .sum();
            // np.corrcoef clips to [-1, 1].
            let dot = dot.clamp(-1.0, 1.0);
            c[(i, k)] = dot;
            c[(k, i)] = dot;
        }
    }
    c
}
