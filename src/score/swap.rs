//! SWAP (Peng et al., ICLR 2024): the number of distinct sample-wise
//! activation patterns — each counted ReLU unit's sign bits across the
//! batch, read per unit instead of per sample.
//!
//! The bits are the codes' (1 iff the ReLU's input is > 0, i.e. its output
//! is positive, as SWAP's `sign()` of a ReLU output); so SWAP comes from the
//! same forward pass as the Hamming matrix. Units a tensor feeds to several
//! ReLUs have equal patterns and count once, as they would in SWAP's code.
//!
//! Layout: [`Patterns`] keeps one pattern per unit, `words = ⌈B/64⌉` u64
//! per pattern, bit `b % 64` of word `b / 64` for sample `b`; padding bits
//! are 0. Counting sorts the patterns (in parallel; the count does not
//! depend on the order) and counts the runs.

use rayon::prelude::*;

/// The per-unit sign patterns of a forward pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patterns {
    batch: usize,
    words: usize,
    data: Vec<u64>,
}

impl Patterns {
    /// No patterns yet, for a batch of `batch` samples.
    pub fn new(batch: usize) -> Self {
        Patterns {
            batch,
            words: batch.div_ceil(64).max(1),
            data: Vec::new(),
        }
    }

    /// Units collected so far.
    pub fn units(&self) -> usize {
        self.data.len() / self.words
    }

    /// Adds `bits` units from packed codes: `batch` rows of `row_words`
    /// words (sample-major, as [`super::codes::Codes`] and the GPU's code
    /// groups lay them out), this tensor's units starting at bit
    /// `first_bit` of each row. Rows shorter than the range are an
    /// internal error the caller's plan rules out; they add nothing.
    pub fn add_packed(&mut self, words: &[u64], row_words: usize, first_bit: usize, bits: usize) {
        let (b, w) = (self.batch, self.words);
        if words.len() < b * row_words || first_bit + bits > row_words * 64 {
            return;
        }
        let start = self.data.len();
        self.data.resize(start + bits * w, 0);
        let out = &mut self.data[start..];
        for s in 0..b {
            let row = &words[s * row_words..(s + 1) * row_words];
            let (word, bit) = (s / 64, s % 64);
            for u in 0..bits {
                let k = first_bit + u;
                let on = (row[k / 64] >> (k % 64)) & 1;
                out[u * w + word] |= on << bit;
            }
        }
    }

    /// SWAP: the number of distinct patterns.
    pub fn distinct(mut self) -> u64 {
        let w = self.words;
        if self.data.is_empty() {
            return 0;
        }
        if w == 1 {
            self.data.par_sort_unstable();
            self.data.dedup();
            return self.data.len() as u64;
        }
        let mut rows: Vec<&[u64]> = self.data.chunks_exact(w).collect();
        rows.par_sort_unstable();
        rows.dedup();
        rows.len() as u64
    }
}

/// SWAP's regularised form: `swap · exp(−(P − μ)² / σ)` with P the
/// parameter count in thousands, as SWAP's code (`count_parameters_in_MB
/// · 1e3`); μ and σ in the same unit.
pub fn regularised(swap: u64, params: u64, mu: f64, sigma: f64) -> f64 {
    let p = params as f64 / 1e3;
    swap as f64 * (-(p - mu).powi(2) / sigma).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::codes::pack_signs;
    use proptest::prelude::*;

    /// The plain reference: unique rows of the explicit units × samples 0/1 matrix.
    fn naive(x: &[f32], batch: usize) -> u64 {
        let n = x.len() / batch;
        let rows: std::collections::HashSet<Vec<bool>> = (0..n)
            .map(|u| (0..batch).map(|b| x[b * n + u] > 0.0).collect())
            .collect();
        rows.len() as u64
    }

    proptest! {
        #[test]
        fn matches_unique_rows(batch in 1usize..140, units in 1usize..300, seed in any::<u64>(),
                               levels in 1u32..4) {
            // Few distinct values, so that patterns repeat.
            let mut s = seed;
            let x: Vec<f32> = (0..batch * units)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((s >> 33) % (levels as u64 + 1)) as f32 - 0.5 * levels as f32
                })
                .collect();
            let c = pack_signs(&x, batch).unwrap();
            let mut p = Patterns::new(batch);
            p.add_packed(&c.words, c.words_per_sample, 0, c.bits);
            prop_assert_eq!(p.units(), units);
            prop_assert_eq!(p.distinct(), naive(&x, batch));
        }
    }

    #[test]
    fn two_tensors_share_one_set_and_offsets_are_honoured() {
        // Tensor A: units (+,+), (−,+); tensor B: (+,+) again and (−,−).
        let a = [1.0f32, -1.0, 1.0, 1.0];
        let b = [1.0f32, -1.0, 1.0, -1.0];
        let (ca, cb) = (pack_signs(&a, 2).unwrap(), pack_signs(&b, 2).unwrap());
        let mut p = Patterns::new(2);
        p.add_packed(&ca.words, 1, 0, 2);
        p.add_packed(&cb.words, 1, 0, 2);
        assert_eq!(p.distinct(), 3);
        // A group row holding B after 64 bits of A (word_offset 1).
        let rows = [ca.words[0], cb.words[0], ca.words[1], cb.words[1]];
        let mut q = Patterns::new(2);
        q.add_packed(&rows, 2, 64, 2);
        assert_eq!(q.distinct(), 2);
        assert_eq!(Patterns::new(3).distinct(), 0);
    }

    #[test]
    fn regularised_is_gaussian_in_thousands_of_params() {
        assert_eq!(regularised(10, 2_000, 2.0, 1.0), 10.0);
        assert!((regularised(10, 3_000, 2.0, 1.0) - 10.0 * (-1.0f64).exp()).abs() < 1e-12);
    }
}
