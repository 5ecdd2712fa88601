//! The scores (docs/scores.md) from the exact Hamming matrix.
//!
//! K_H = N_A − H; WOT = ln det K_H; D = ln det(K_H / N_A) = WOT − B·ln N_A;
//! DAS_α = D + α·B·ln N_A (α = 1 is WOT, α = 0 is D). Two equal codes make
//! K_H singular: then WOT, D and DAS are `None` and `singular` is true.

use super::hamming::kernel_from_hamming;
use super::logdet::logdet_of_kernel;

/// What a forward pass over the scoring batch produces for the scores.
#[derive(Clone, Debug, PartialEq)]
pub struct ReluCodes {
    /// Images in the scoring batch (B): `hamming` is B×B.
    pub batch: usize,
    /// N_A: counted ReLU units per sample.
    pub n_units: u64,
    /// H[i, j] summed over every counted ReLU, B×B row-major, exact.
    pub hamming: Vec<u64>,
    /// SWAP: distinct per-unit sign patterns over the batch, when the pass
    /// was asked to count them.
    pub swap: Option<u64>,
}

/// The default α of `dasnas score` (docs/results.md, "Ranking quality on NAS-Bench-201", has the measurement that chose it).
pub const DEFAULT_ALPHA: f64 = 1.0;

/// The scores of one cell.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scores {
    /// NASWOT: ln det K_H (None when singular).
    pub wot: Option<f64>,
    /// Distinguishing ability: ln det(K_H / N_A) (None when singular).
    pub d: Option<f64>,
    /// N_A: counted ReLU units per sample.
    pub n_units: u64,
    /// ln N_A (−∞ when N_A = 0).
    pub ln_n_units: f64,
    /// DAS_α = D + α·B·ln N_A (None when singular).
    pub das: Option<f64>,
    /// The α `das` was computed with.
    pub alpha: f64,
    /// K_H is singular (two equal codes, no units, or not positive definite
    /// in Cholesky's arithmetic): `wot`, `d` and `das` are `None`.
    pub singular: bool,
    /// SWAP: distinct per-unit sign patterns over the batch (when asked
    /// for; [`super::swap`]).
    pub swap: Option<u64>,
    /// SWAP regularised by the parameter count (when μ and σ are given).
    pub swap_reg: Option<f64>,
    /// Parameters of the network (when the scorer knows its graph).
    pub params: Option<u64>,
    /// Multiply-adds per sample of its convolutions and linear layers.
    pub flops: Option<u64>,
}

impl Scores {
    /// DAS with another α, from the same decomposition.
    pub fn das_with(&self, alpha: f64, batch: usize) -> Option<f64> {
        self.d.map(|d| d + alpha * batch as f64 * self.ln_n_units)
    }
}

/// Scores from the accumulated Hamming matrix of a forward pass.
pub fn scores(codes: &ReluCodes, alpha: f64) -> Scores {
    let b = codes.batch;
    let n_units = codes.n_units;
    // Equal codes (H = 0 off the diagonal) make two rows of K_H equal: the
    // determinant is exactly 0, whatever rounding Cholesky would show.
    let duplicate =
        n_units == 0 || (0..b).any(|i| (i + 1..b).any(|j| codes.hamming[i * b + j] == 0));
    let wot = if duplicate {
        None
    } else {
        logdet_of_kernel(&kernel_from_hamming(&codes.hamming, n_units, b), b)
    };
    let mut s = scores_from_wot(b, n_units, wot, alpha);
    s.swap = codes.swap;
    s
}

/// Whether a cell's `singular` verdict is clear-cut, so that two forward
/// passes that round differently (the GPU's conv sums in another order than
/// the CPU's, by design) must agree on it. It is not when the smallest
/// Cholesky pivot of K_H is within a factor 100 of the tolerance
/// ([`pivot_margin`](super::logdet::pivot_margin) in [0.01, 100]), or when
/// two codes are within 2 bits of each other (one flipped sign bit can make
/// them equal, or tell equal ones apart). `hamming` is the `[batch][batch]`
/// Hamming matrix of `n_units` units per code.
pub fn singular_verdict_is_clear(hamming: &[u64], n_units: u64, batch: usize) -> bool {
    let b = batch;
    let min_distance = (0..b)
        .flat_map(|i| (0..i).map(move |j| (i, j)))
        .map(|(i, j)| hamming[i * b + j])
        .min()
        .unwrap_or(u64::MAX);
    let k: Vec<f64> = hamming
        .iter()
        .map(|&v| n_units.saturating_sub(v) as f64)
        .collect();
    let margin = super::logdet::pivot_margin(&k, b).unwrap_or(0.0);
    min_distance > 2 && !(0.01..=100.0).contains(&margin)
}

/// The scores of a batch of `batch` samples from N_A and WOT = ln det K_H
/// (`None` when K_H is singular), wherever ln det was computed.
pub fn scores_from_wot(batch: usize, n_units: u64, wot: Option<f64>, alpha: f64) -> Scores {
    let b = batch;
    let ln_n_units = (n_units as f64).ln();
    let d = wot.map(|w| w - b as f64 * ln_n_units);
    Scores {
        wot,
        d,
        n_units,
        ln_n_units,
        das: d.map(|d| d + alpha * b as f64 * ln_n_units),
        alpha,
        singular: wot.is_none(),
        swap: None,
        swap_reg: None,
        params: None,
        flops: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_from_bits(bits: &[Vec<bool>]) -> ReluCodes {
        let b = bits.len();
        let n = bits[0].len();
        let mut h = vec![0u64; b * b];
        for i in 0..b {
            for j in 0..b {
                h[i * b + j] = (0..n).filter(|&u| bits[i][u] != bits[j][u]).count() as u64;
            }
        }
        ReluCodes {
            batch: b,
            n_units: n as u64,
            hamming: h,
            swap: None,
        }
    }

    #[test]
    fn matches_the_float_reference_formulation() {
        // K = x xᵀ + (1 − x)(1 − x)ᵀ computed in floats, then ln det by LU.
        let key = crate::rng::stream_key(9, 9);
        let bits: Vec<Vec<bool>> = (0..5)
            .map(|i| {
                (0..23)
                    .map(|u| crate::rng::bits(key, i * 23 + u) & 1 == 1)
                    .collect()
            })
            .collect();
        let b = bits.len();
        let mut k = nalgebra::DMatrix::<f64>::zeros(b, b);
        for i in 0..b {
            for j in 0..b {
                k[(i, j)] = (0..23)
                    .map(|u| {
                        let (x, y) = (bits[i][u] as u8 as f64, bits[j][u] as u8 as f64);
                        x * y + (1.0 - x) * (1.0 - y)
                    })
                    .sum();
            }
        }
        let want = k.lu().determinant().ln();
        let s = scores(&codes_from_bits(&bits), 0.5);
        assert!(!s.singular);
        let wot = s.wot.unwrap();
        assert!(
            (wot - want).abs() < 1e-9 * want.abs().max(1.0),
            "{wot} vs {want}"
        );
        let d = s.d.unwrap();
        assert!((d - (wot - 5.0 * 23f64.ln())).abs() < 1e-12);
        assert!(d <= 0.0);
        assert!((s.das.unwrap() - (d + 0.5 * 5.0 * 23f64.ln())).abs() < 1e-12);
        assert_eq!(s.das_with(1.0, 5), s.wot);
    }

    #[test]
    fn orthogonal_codes_have_d_zero() {
        // One unit, one sample: K = [N_A]; D = 0.
        let s = scores(&codes_from_bits(&[vec![true]]), 0.0);
        assert_eq!(s.d, Some(0.0));
    }

    #[test]
    fn duplicate_codes_are_singular_not_nan() {
        let bits = vec![
            vec![true, false, true],
            vec![true, false, true],
            vec![false; 3],
        ];
        let s = scores(&codes_from_bits(&bits), 1.0);
        assert!(s.singular);
        assert_eq!((s.wot, s.d, s.das), (None, None, None));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"wot\":null"), "{json}");
    }
}
