//! Rank correlations between a score and a ground truth: Kendall τ-b and
//! Spearman ρ, both with the usual tie corrections (the scipy semantics).
//!
//! Scores of NAS cells tie often (identical unit counts, saturated scores), so
//! both statistics correct for ties. Kendall τ-b runs in O(n log n) (Knight's
//! algorithm), so a whole search space (15,625 or millions of cells) is cheap.
//!
//! # NaN
//! A pair `(x[i], y[i])` where either value is NaN is dropped before ranking,
//! so the statistics are those of the remaining pairs. `-0.0` and `0.0` are
//! treated as the same value (a tie). Infinities are ordinary values.
//!
//! # Unequal lengths
//! `x` and `y` are paired element by element; slices of different lengths are
//! a caller bug and give `None` rather than a silently truncated answer.

use std::cmp::Ordering;

/// Kendall's τ-b of the paired samples `x`, `y`, with tie correction:
/// `(C − D) / sqrt((n0 − n1)(n0 − n2))`, where `C`/`D` count concordant and
/// discordant pairs, `n0 = n(n−1)/2`, and `n1`/`n2` count pairs tied in `x`/`y`.
///
/// O(n log n) by Knight's algorithm: sort by `(x, y)`, count the exchanges a
/// merge sort on `y` needs (= discordant pairs), and count the tie groups.
///
/// Returns `None` when the lengths differ, when fewer than two pairs remain
/// after dropping pairs with a NaN, or when either variable is constant
/// (the denominator is zero, the statistic is undefined).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let mut p = clean_pairs(x, y)?;
    let n = p.len();
    if n < 2 {
        return None;
    }
    p.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));

    // n1: pairs tied in x; n3: pairs tied in both x and y. After the sort, a
    // group of equal x is contiguous and, inside it, a group of equal y too.
    let (mut n1, mut n3) = (0u64, 0u64);
    let mut i = 0;
    while i < n {
        let j = run_end(&p, i, |a, b| a.0 == b.0);
        n1 += pair_count(j - i);
        let mut k = i;
        while k < j {
            let m = run_end(&p[..j], k, |a, b| a.1 == b.1);
            n3 += pair_count(m - k);
            k = m;
        }
        i = j;
    }

    // Discordant pairs = exchanges needed to sort y (ties in y, and ties in x
    // which are already sorted by y, cost no exchange).
    let mut ys: Vec<f64> = p.iter().map(|q| q.1).collect();
    let discordant = sort_counting_exchanges(&mut ys);
    let mut n2 = 0u64;
    let mut i = 0;
    while i < n {
        let j = run_end(&ys, i, |a, b| a == b);
        n2 += pair_count(j - i);
        i = j;
    }

    let n0 = pair_count(n);
    let (dx, dy) = (n0 - n1, n0 - n2);
    if dx == 0 || dy == 0 {
        return None;
    }
    // C − D = n0 − n1 − n2 + n3 − 2·D (scipy's `con_minus_dis`).
    let s = i128::from(n0) - i128::from(n1) - i128::from(n2) + i128::from(n3)
        - 2 * i128::from(discordant);
    let tau = s as f64 / ((dx as f64).sqrt() * (dy as f64).sqrt());
    Some(tau.clamp(-1.0, 1.0))
}

/// Spearman's ρ of the paired samples: the Pearson correlation of their
/// average ranks (tied values share the mean of the ranks they span).
///
/// Returns `None` when the lengths differ, when fewer than two pairs remain
/// after dropping pairs with a NaN, or when either variable is constant.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    let p = clean_pairs(x, y)?;
    if p.len() < 2 {
        return None;
    }
    let (xs, ys): (Vec<f64>, Vec<f64>) = p.into_iter().unzip();
    pearson_r(&average_ranks(&xs), &average_ranks(&ys))
}

/// 1-based ranks of `v`, ties getting the mean of the ranks they span
/// (`[10, 20, 10, 30]` → `[1.5, 3, 1.5, 4]`, scipy's `rankdata` "average").
///
/// NaN entries are left out of the ranking and get rank NaN; the other values
/// are ranked among themselves (1..=m for m non-NaN values).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut out = vec![f64::NAN; v.len()];
    let mut idx: Vec<usize> = (0..v.len()).filter(|&i| !v[i].is_nan()).collect();
    idx.sort_unstable_by(|&a, &b| cmp_value(v[a], v[b]));
    let mut i = 0;
    while i < idx.len() {
        let j = run_end(&idx, i, |&a, &b| v[a] == v[b]);
        // Ranks i+1 ..= j share their mean.
        let rank = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            out[k] = rank;
        }
        i = j;
    }
    out
}

/// Pearson's product-moment correlation of two equally long samples
/// (two-pass: means first, then centred sums, for accuracy).
///
/// Returns `None` when the lengths differ, when there are fewer than two
/// values, when either sample is constant, or when the result is not finite
/// (NaN or infinite inputs). No NaN filtering: callers pass clean data.
pub fn pearson_r(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&p, &q) in a.iter().zip(b) {
        let (dp, dq) = (p - ma, q - mb);
        sab += dp * dq;
        saa += dp * dp;
        sbb += dq * dq;
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    let r = sab / (saa.sqrt() * sbb.sqrt());
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// The pairs of `x`, `y` with no NaN, `-0.0` turned into `0.0` (so that
/// `total_cmp` and `==` agree on ties). `None` if the lengths differ.
fn clean_pairs(x: &[f64], y: &[f64]) -> Option<Vec<(f64, f64)>> {
    if x.len() != y.len() {
        return None;
    }
    Some(
        x.iter()
            .zip(y)
            .filter(|(a, b)| !a.is_nan() && !b.is_nan())
            // Adding +0.0 maps -0.0 to +0.0 and leaves every other value as is.
            .map(|(&a, &b)| (a + 0.0, b + 0.0))
            .collect(),
    )
}

/// Total order on non-NaN values in which `-0.0 == 0.0`.
fn cmp_value(a: f64, b: f64) -> Ordering {
    (a + 0.0).total_cmp(&(b + 0.0))
}

/// End (exclusive) of the run of elements equal to `v[start]` under `eq`.
fn run_end<T>(v: &[T], start: usize, eq: impl Fn(&T, &T) -> bool) -> usize {
    let mut end = start + 1;
    while end < v.len() && eq(&v[end], &v[start]) {
        end += 1;
    }
    end
}

/// Number of unordered pairs among `k` items, `k(k−1)/2`.
fn pair_count(k: usize) -> u64 {
    let k = k as u64;
    k * k.saturating_sub(1) / 2
}

/// Sorts `v` ascending with a stable bottom-up merge sort and returns the
/// number of inversions (pairs `i < j` with `v[i] > v[j]`), i.e. the number of
/// adjacent exchanges a bubble sort would need. Equal values are not
/// inversions. `v` must hold no NaN.
fn sort_counting_exchanges(v: &mut Vec<f64>) -> u64 {
    let n = v.len();
    let mut buf = vec![0.0; n];
    let mut inversions = 0u64;
    let mut width = 1;
    while width < n {
        let mut lo = 0;
        while lo < n {
            let mid = (lo + width).min(n);
            let hi = (lo + 2 * width).min(n);
            let (mut i, mut j, mut k) = (lo, mid, lo);
            while i < mid && j < hi {
                if v[i] <= v[j] {
                    buf[k] = v[i];
                    i += 1;
                } else {
                    // v[j] jumps over every element still left in v[i..mid].
                    buf[k] = v[j];
                    j += 1;
                    inversions += (mid - i) as u64;
                }
                k += 1;
            }
            buf[k..k + (mid - i)].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buf[k..k + (hi - j)].copy_from_slice(&v[j..hi]);
            lo = hi;
        }
        std::mem::swap(v, &mut buf);
        width *= 2;
    }
    inversions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// O(n²) τ-b straight from the definition (pairs with a NaN dropped).
    fn naive_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
        let p: Vec<(f64, f64)> = x
            .iter()
            .zip(y)
            .filter(|(a, b)| !a.is_nan() && !b.is_nan())
            .map(|(&a, &b)| (a, b))
            .collect();
        let (mut c, mut d, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..p.len() {
            for j in i + 1..p.len() {
                let sx = p[i].0.partial_cmp(&p[j].0).unwrap();
                let sy = p[i].1.partial_cmp(&p[j].1).unwrap();
                match (sx.is_eq(), sy.is_eq()) {
                    (true, true) => {}
                    (true, false) => tx += 1,
                    (false, true) => ty += 1,
                    (false, false) if sx == sy => c += 1,
                    (false, false) => d += 1,
                }
            }
        }
        let den = (((c + d + ty) * (c + d + tx)) as f64).sqrt();
        (den > 0.0).then(|| (c - d) as f64 / den)
    }

    /// O(n²) average ranks: 1 + #smaller + (#equal − 1)/2.
    fn naive_ranks(v: &[f64]) -> Vec<f64> {
        v.iter()
            .map(|&a| {
                let less = v.iter().filter(|&&b| b < a).count() as f64;
                let eq = v.iter().filter(|&&b| b == a).count() as f64;
                1.0 + less + (eq - 1.0) / 2.0
            })
            .collect()
    }

    /// Spearman as covariance of ranks over the product of their deviations.
    fn naive_spearman(x: &[f64], y: &[f64]) -> Option<f64> {
        let (rx, ry) = (naive_ranks(x), naive_ranks(y));
        let n = x.len() as f64;
        let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
        let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
        let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
        (x.len() >= 2 && vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => (a - b).abs() < 1e-12,
            _ => false,
        }
    }

    #[test]
    fn known_value_without_ties() {
        // scipy.stats.kendalltau / spearmanr give 0.4 / 0.6 here.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [3.0, 1.0, 2.0, 5.0, 4.0];
        assert!((kendall_tau_b(&x, &y).unwrap() - 0.4).abs() < 1e-12);
        assert!((spearman_rho(&x, &y).unwrap() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn known_value_with_ties() {
        // By hand: C = 4, D = 0, one pair tied only in x, one only in y:
        // τ-b = 4 / sqrt(5·5) = 0.8. Ranks x = [1.5, 1.5, 3, 4],
        // y = [1, 2.5, 2.5, 4]: ρ = 3.75 / 4.5.
        let x = [1.0, 1.0, 2.0, 3.0];
        let y = [1.0, 2.0, 2.0, 3.0];
        assert!((kendall_tau_b(&x, &y).unwrap() - 0.8).abs() < 1e-12);
        assert!((spearman_rho(&x, &y).unwrap() - 3.75 / 4.5).abs() < 1e-12);
    }

    #[test]
    fn identical_and_reversed_order() {
        let x: Vec<f64> = (0..50).map(|i| f64::from(i) * 0.3 - 2.0).collect();
        let y: Vec<f64> = x.iter().map(|v| v.exp()).collect();
        let rev: Vec<f64> = x.iter().map(|v| -v).collect();
        assert!(close(kendall_tau_b(&x, &y), Some(1.0)));
        assert!(close(spearman_rho(&x, &y), Some(1.0)));
        assert!(close(kendall_tau_b(&x, &rev), Some(-1.0)));
        assert!(close(spearman_rho(&x, &rev), Some(-1.0)));
    }

    #[test]
    fn undefined_cases_are_none() {
        let x = [1.0, 2.0, 3.0];
        assert_eq!(kendall_tau_b(&x, &[1.0, 2.0]), None, "length mismatch");
        assert_eq!(spearman_rho(&x, &[1.0, 2.0]), None, "length mismatch");
        assert_eq!(kendall_tau_b(&[], &[]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[2.0]), None);
        assert_eq!(spearman_rho(&[1.0], &[2.0]), None);
        assert_eq!(kendall_tau_b(&x, &[5.0; 3]), None, "constant y");
        assert_eq!(kendall_tau_b(&[5.0; 3], &x), None, "constant x");
        assert_eq!(spearman_rho(&x, &[5.0; 3]), None, "constant y");
        assert_eq!(spearman_rho(&[5.0; 3], &x), None, "constant x");
        let nan = [f64::NAN; 3];
        assert_eq!(kendall_tau_b(&nan, &x), None);
        assert_eq!(spearman_rho(&x, &nan), None);
    }

    #[test]
    fn nan_pairs_are_dropped() {
        let x = [1.0, f64::NAN, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = [3.0, 0.0, 1.0, 2.0, f64::NAN, 5.0, 4.0];
        let xc = [1.0, 2.0, 3.0, 5.0, 6.0];
        let yc = [3.0, 1.0, 2.0, 5.0, 4.0];
        assert_eq!(kendall_tau_b(&x, &y), kendall_tau_b(&xc, &yc));
        assert_eq!(spearman_rho(&x, &y), spearman_rho(&xc, &yc));
        assert!(kendall_tau_b(&x, &y).is_some());
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let x = [-0.0, 0.0, 1.0];
        let y = [1.0, 2.0, 3.0];
        // Tied in x: C = 2, D = 0, one x tie → 2 / sqrt(2·3).
        let want = 2.0 / 6f64.sqrt();
        assert!((kendall_tau_b(&x, &y).unwrap() - want).abs() < 1e-12);
        assert_eq!(average_ranks(&x), vec![1.5, 1.5, 3.0]);
    }

    #[test]
    fn average_ranks_ties_and_nan() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            vec![1.5, 3.0, 1.5, 4.0]
        );
        let r = average_ranks(&[2.0, f64::NAN, 1.0, 2.0]);
        assert_eq!(r[0], 2.5);
        assert!(r[1].is_nan());
        assert_eq!((r[2], r[3]), (1.0, 2.5));
        assert!(average_ranks(&[]).is_empty());
    }

    #[test]
    fn exchange_count_matches_inversions() {
        let mut v = vec![3.0, 1.0, 2.0, 2.0, 0.0, 5.0, 4.0];
        // Inversions: 3>1,3>2,3>2,3>0, 1>0, 2>0, 2>0, 5>4 = 8.
        assert_eq!(sort_counting_exchanges(&mut v), 8);
        assert_eq!(v, vec![0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0]);
    }

    fn tied_pairs() -> impl Strategy<Value = Vec<(f64, f64)>> {
        prop::collection::vec((0i32..5, 0i32..4), 0..120)
            .prop_map(|v| v.into_iter().map(|(a, b)| (a.into(), b.into())).collect())
    }

    proptest! {
        #[test]
        fn tau_b_matches_naive_with_ties(p in tied_pairs()) {
            let (x, y): (Vec<f64>, Vec<f64>) = p.into_iter().unzip();
            let (fast, slow) = (kendall_tau_b(&x, &y), naive_tau_b(&x, &y));
            prop_assert!(close(fast, slow), "fast {:?} naive {:?}", fast, slow);
        }

        #[test]
        fn spearman_matches_naive_with_ties(p in tied_pairs()) {
            let (x, y): (Vec<f64>, Vec<f64>) = p.into_iter().unzip();
            let (fast, slow) = (spearman_rho(&x, &y), naive_spearman(&x, &y));
            prop_assert!(close(fast, slow), "fast {:?} naive {:?}", fast, slow);
            prop_assert_eq!(average_ranks(&x), naive_ranks(&x));
        }

        #[test]
        fn continuous_values_match_naive(
            p in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 2..200)
        ) {
            let (x, y): (Vec<f64>, Vec<f64>) = p.into_iter().unzip();
            prop_assert!(close(kendall_tau_b(&x, &y), naive_tau_b(&x, &y)));
            prop_assert!(close(spearman_rho(&x, &y), naive_spearman(&x, &y)));
        }

        #[test]
        fn symmetric_and_odd_under_negation(p in tied_pairs()) {
            let (x, y): (Vec<f64>, Vec<f64>) = p.into_iter().unzip();
            let neg: Vec<f64> = y.iter().map(|v| -v).collect();
            prop_assert!(close(kendall_tau_b(&x, &y), kendall_tau_b(&y, &x)));
            prop_assert!(close(spearman_rho(&x, &y), spearman_rho(&y, &x)));
            prop_assert!(close(kendall_tau_b(&x, &neg), kendall_tau_b(&x, &y).map(|t| -t)));
            prop_assert!(close(spearman_rho(&x, &neg), spearman_rho(&x, &y).map(|t| -t)));
        }
    }
}
