//! Natural log-determinant of a symmetric positive-definite matrix by
//! Cholesky factorisation in f64.
//!
//! `ln det A = Σ_k ln p_k` where `p_k = L_kk²` are the Cholesky pivots
//! (`A = L Lᵀ`), so the determinant itself, which overflows f64 for B = 128
//! and N_A ~ 10^6 (about 10^770), is never formed.
//!
//! # Singularity rule
//! The matrix counts as not positive definite (`None`) when any pivot
//! `p_k <= tol` with
//!
//! `tol = n · ε · 16 · max_i A_ii`  (ε = `f64::EPSILON`).
//!
//! Why: for a positive semi-definite matrix `|A_ij| <= max_i A_ii`, and
//! the rounding error of a Cholesky pivot is of order `n · ε · max|A_ij|`,
//! so an exactly singular matrix (two identical codes give two identical
//! rows of K_H) yields a last pivot that is rounding noise of either sign
//! below that size; the factor 16 is margin. Genuine pivots of a kernel
//! K_H are far above it: two codes that differ in a single bit out of N_A
//! give a pivot of about 2, while `tol` is about `n · 3.6e-15 · N_A`
//! (≈ 1e-6 at n = 128, N_A = 2.5·10⁶).
//! Also `None`: a non-positive or non-finite diagonal maximum, any non-finite
//! entry, `a.len() != n * n`. An empty matrix (`n = 0`) has det 1: `Some(0.0)`.
//!
//! Only the lower triangle (diagonal included) is read; the matrix is taken
//! to be symmetric.

/// Natural log det of the SPD matrix `a` (row-major n×n, lower triangle
/// read), or `None` when it is not positive definite by the rule in the
/// module docs.
pub fn cholesky_logdet(a: &[f64], n: usize) -> Option<f64> {
    match factor(a, n, true)? {
        Factored::Complete { logdet, .. } => Some(logdet),
        Factored::Stopped { .. } => None,
    }
}

/// The smallest Cholesky pivot of `a` divided by the singularity tolerance
/// of [`cholesky_logdet`]: at most 1 means singular by its rule, and the
/// further from 1, the less a rounding difference in `a` can change that
/// verdict. The factorisation goes on past pivots below the tolerance while
/// they stay positive (a non-positive pivot ends it, and is the result).
/// `None` for the inputs [`cholesky_logdet`] rejects before factoring (bad
/// size, a non-finite entry, no positive diagonal); an empty matrix gives
/// infinity.
pub fn pivot_margin(a: &[f64], n: usize) -> Option<f64> {
    match factor(a, n, false)? {
        Factored::Complete { min_ratio, .. } | Factored::Stopped { min_ratio } => Some(min_ratio),
    }
}

enum Factored {
    Complete { logdet: f64, min_ratio: f64 },
    Stopped { min_ratio: f64 },
}

/// Left-looking Cholesky of `a`; stops at the first pivot `<= tol` when
/// `stop_at_tol`, else at the first pivot `<= 0`. `None` for inputs
/// rejected before factoring.
fn factor(a: &[f64], n: usize, stop_at_tol: bool) -> Option<Factored> {
    if n.checked_mul(n) != Some(a.len()) {
        return None;
    }
    if n == 0 {
        return Some(Factored::Complete {
            logdet: 0.0,
            min_ratio: f64::INFINITY,
        });
    }
    let mut dmax = f64::NEG_INFINITY;
    for i in 0..n {
        let row = &a[i * n..i * n + i + 1];
        if row.iter().any(|v| !v.is_finite()) {
            return None;
        }
        dmax = dmax.max(row[i]);
    }
    if dmax <= 0.0 {
        return None;
    }
    let tol = n as f64 * f64::EPSILON * 16.0 * dmax;
    let stop = if stop_at_tol { tol } else { 0.0 };

    // L in row-major n×n, lower triangle filled column by column (left-
    // looking). Entry (i, j) needs the dot product of the first j entries of
    // rows i and j of L, both contiguous in row-major order.
    let mut l = vec![0.0f64; n * n];
    let mut logdet = 0.0f64;
    let mut min_ratio = f64::INFINITY;
    for j in 0..n {
        // Row j of L and the rows below it (rows < j are finished).
        let (lj, below) = l[j * n..].split_at_mut(n);
        let pivot = a[j * n + j] - dot(&lj[..j], &lj[..j]);
        let ratio = pivot / tol;
        // A NaN ratio (NaN pivot) is kept: it ends the factorisation below.
        if ratio.is_nan() || ratio < min_ratio {
            min_ratio = ratio;
        }
        // `!(p > stop)` also catches NaN.
        if pivot.partial_cmp(&stop) != Some(std::cmp::Ordering::Greater) {
            return Some(Factored::Stopped { min_ratio });
        }
        let d = pivot.sqrt();
        lj[j] = d;
        logdet += pivot.ln();
        // Rows i > j: L[i][j] = (A[i][j] − Σ_{k<j} L[i][k] L[j][k]) / L[j][j].
        for (r, li) in below.chunks_mut(n).enumerate() {
            let i = j + 1 + r;
            li[j] = (a[i * n + j] - dot(&li[..j], &lj[..j])) / d;
        }
    }
    Some(Factored::Complete { logdet, min_ratio })
}

/// Dot product with four independent partial sums (lets LLVM vectorise
/// without reassociation flags; the order is fixed, so the result is
/// deterministic).
#[inline]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut s = [0.0f64; 4];
    let mut k = 0;
    while k + 4 <= n {
        for p in 0..4 {
            s[p] += x[k + p] * y[k + p];
        }
        k += 4;
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    while k < n {
        t += x[k] * y[k];
        k += 1;
    }
    t
}

/// [`cholesky_logdet`] of an integer kernel such as K_H (row-major n×n).
///
/// The `u64 → f64` conversion is exact for entries ≤ 2^53; kernel entries
/// are at most N_A, the number of counted ReLU units per sample (about
/// 10^5 to 10^7 in the supported search spaces), so in practice it is exact.
/// Larger entries are rounded to the nearest f64.
pub fn logdet_of_kernel(k: &[u64], n: usize) -> Option<f64> {
    let a: Vec<f64> = k.iter().map(|&v| v as f64).collect();
    cholesky_logdet(&a, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::codes::Codes;
    use crate::score::hamming::{hamming_accumulate, kernel_from_hamming};
    use nalgebra::DMatrix;

    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// A = M Mᵀ + n I with M uniform in [-1, 1).
    fn random_spd(n: usize, rng: &mut Rng) -> Vec<f64> {
        let m: Vec<f64> = (0..n * n).map(|_| rng.unit()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let s: f64 = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum();
                a[i * n + j] = s + if i == j { n as f64 } else { 0.0 };
            }
        }
        a
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        // Relative error, with absolute error near 0 (ln det can be ~0 at n = 1).
        (got - want).abs() <= rel * want.abs().max(1.0)
    }

    #[test]
    fn matches_nalgebra_lu_on_random_spd() {
        let mut rng = Rng(42);
        for &n in &[1usize, 2, 5, 17, 64, 128] {
            for _ in 0..3 {
                let a = random_spd(n, &mut rng);
                let got = cholesky_logdet(&a, n).expect("SPD");
                // det(A) reaches ~10^280 at n = 128; compare on A/n instead:
                // ln det A = ln det(A/n) + n ln n.
                let scaled = DMatrix::from_row_slice(n, n, &a) / n as f64;
                let det = scaled.lu().determinant();
                assert!(det.is_finite() && det > 0.0);
                let want = det.ln() + n as f64 * (n as f64).ln();
                assert!(close(got, want, 1e-9), "n={n}: got {got}, want {want}");
            }
        }
    }

    #[test]
    fn closed_forms() {
        for &n in &[1usize, 3, 64] {
            let mut eye = vec![0.0; n * n];
            for i in 0..n {
                eye[i * n + i] = 1.0;
            }
            assert_eq!(cholesky_logdet(&eye, n), Some(0.0));

            let mut diag = vec![0.0; n * n];
            let mut want = 0.0;
            for i in 0..n {
                let d = 0.5 + 1.7 * i as f64;
                diag[i * n + i] = d;
                want += f64::ln(d);
            }
            let got = cholesky_logdet(&diag, n).unwrap();
            assert!(close(got, want, 1e-12), "diag n={n}: {got} vs {want}");

            // Matrix determinant lemma: det(I + u uᵀ) = 1 + |u|².
            let mut rng = Rng(n as u64);
            let u: Vec<f64> = (0..n).map(|_| 3.0 * rng.unit()).collect();
            let mut a = eye.clone();
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] += u[i] * u[j];
                }
            }
            let want = (1.0 + u.iter().map(|x| x * x).sum::<f64>()).ln();
            let got = cholesky_logdet(&a, n).unwrap();
            assert!(close(got, want, 1e-9), "rank-one n={n}: {got} vs {want}");
        }
        assert_eq!(cholesky_logdet(&[], 0), Some(0.0));
    }

    #[test]
    fn singular_and_invalid_give_none() {
        let mut rng = Rng(7);
        for &n in &[2usize, 5, 17, 64, 128] {
            // Gram matrix V Vᵀ with two identical rows of V: rank-deficient,
            // exactly singular in exact arithmetic.
            let m = n + 3;
            let mut v: Vec<f64> = (0..n * m).map(|_| rng.unit()).collect();
            let (src, dst) = (0, n - 1);
            for k in 0..m {
                v[dst * m + k] = v[src * m + k];
            }
            let mut g = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    g[i * n + j] = (0..m).map(|k| v[i * m + k] * v[j * m + k]).sum();
                }
            }
            assert_eq!(cholesky_logdet(&g, n), None, "duplicate rows n={n}");

            assert_eq!(cholesky_logdet(&vec![0.0; n * n], n), None, "zero n={n}");

            let mut neg = random_spd(n, &mut rng);
            neg.iter_mut().for_each(|x| *x = -*x);
            assert_eq!(cholesky_logdet(&neg, n), None, "negative definite n={n}");
        }
        // Indefinite with a positive diagonal.
        assert_eq!(cholesky_logdet(&[1.0, 2.0, 2.0, 1.0], 2), None);
        // Non-finite entries and a wrong length.
        assert_eq!(cholesky_logdet(&[1.0, 0.0, f64::NAN, 1.0], 2), None);
        assert_eq!(cholesky_logdet(&[f64::INFINITY], 1), None);
        assert_eq!(cholesky_logdet(&[1.0, 0.0, 0.0], 2), None);
        assert_eq!(logdet_of_kernel(&[], 3), None);
    }

    /// K_H from real codes: a duplicate code makes it singular, a code that
    /// differs in one bit out of 2^20 must still count as non-singular.
    #[test]
    fn kernel_from_codes_singular_vs_near_duplicate() {
        let (b, bits) = (16usize, 1usize << 20);
        let mut rng = Rng(99);
        let mut codes = Codes::zeros(b, bits);
        codes.words.iter_mut().for_each(|w| *w = rng.next_u64());
        let wps = codes.words_per_sample;
        let logdet = |codes: &Codes| {
            let mut h = vec![0u64; b * b];
            hamming_accumulate(codes, 1, &mut h).unwrap();
            logdet_of_kernel(&kernel_from_hamming(&h, bits as u64, b), b)
        };
        // Random codes: K_H ≈ N_A/2 (I + 11ᵀ) → ln det ≈ B ln(N_A/2) + ln(B+1).
        let ld = logdet(&codes).expect("random codes are distinct");
        let approx = b as f64 * (bits as f64 / 2.0).ln() + ((b + 1) as f64).ln();
        assert!((ld - approx).abs() < 0.1, "{ld} vs {approx}");

        // The last sample becomes a copy of sample 0.
        let dup = b - 1;
        codes.words.copy_within(0..wps, dup * wps);
        assert_eq!(logdet(&codes), None, "duplicate code");

        codes.words[dup * wps + 1000] ^= 1 << 17;
        assert!(
            logdet(&codes).is_some(),
            "one-bit difference is not singular"
        );
    }
}

#[cfg(test)]
mod margin_tests {
    use super::*;

    #[test]
    fn pivot_margin_measures_the_distance_to_the_singularity_rule() {
        // diag(4, 1): pivots 4 and 1, tol = 2·ε·16·4.
        let a = [4.0, 0.0, 0.0, 1.0];
        let tol = 2.0 * f64::EPSILON * 16.0 * 4.0;
        assert!((pivot_margin(&a, 2).unwrap() - 1.0 / tol).abs() < 1e-3 / tol);
        // Exactly singular: the second pivot is 0, a margin of 0.
        let s = [1.0, 1.0, 1.0, 1.0];
        assert_eq!(pivot_margin(&s, 2), Some(0.0));
        assert_eq!(cholesky_logdet(&s, 2), None);
        // Just above the tolerance: PD by the rule, with a margin near 1.
        let eps = 2.0 * f64::EPSILON * 16.0 * 1.5;
        let b = [1.0, 1.0, 1.0, 1.0 + 1.5 * eps];
        let m = pivot_margin(&b, 2).unwrap();
        assert!(m > 1.0 && m < 3.0, "{m}");
        assert!(cholesky_logdet(&b, 2).is_some());
        assert_eq!(pivot_margin(&[f64::NAN], 1), None);
        assert_eq!(pivot_margin(&[], 0), Some(f64::INFINITY));
    }
}
