//! Sign-bit codes: one bit per ReLU input unit, 1 iff the unit is positive.
//!
//! Layout of [`Codes`] (sample-major, little-endian bit order):
//! sample `b` owns `words[b * words_per_sample .. (b + 1) * words_per_sample]`;
//! unit `u` of that sample is bit `u % 64` of word `u / 64`. Padding bits at
//! positions `>= bits` in the last word are always 0, so XOR-popcount over
//! whole words counts only real units.
//!
//! Packing is memory bound (one f32 read per output bit), so the AVX2 path
//! only has to keep up with the load stream: 8 compares + 8 movemasks per
//! output word. Large inputs are split over samples with rayon; each sample's
//! words are written by exactly one task, so the result does not depend on
//! the thread count.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Packed sign bits of a batch of samples. See the module docs for the layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Codes {
    /// Number of samples.
    pub batch: usize,
    /// Bits (units) per sample.
    pub bits: usize,
    /// `bits.div_ceil(64)`.
    pub words_per_sample: usize,
    /// `batch * words_per_sample` words, sample-major.
    pub words: Vec<u64>,
}

impl Codes {
    /// All-zero codes for `batch` samples of `bits` units.
    pub fn zeros(batch: usize, bits: usize) -> Self {
        let words_per_sample = bits.div_ceil(64);
        Codes {
            batch,
            bits,
            words_per_sample,
            words: vec![0; batch * words_per_sample],
        }
    }

    /// The words of sample `b`, or `None` when `b` is out of range or the
    /// buffer is shorter than the fields claim.
    pub fn sample(&self, b: usize) -> Option<&[u64]> {
        if b >= self.batch {
            return None;
        }
        let w = self.words_per_sample;
        self.words.get(b * w..(b + 1) * w)
    }

    /// Bit `u` of sample `b` (`None` when out of range).
    pub fn bit(&self, b: usize, u: usize) -> Option<bool> {
        if u >= self.bits {
            return None;
        }
        let word = self.sample(b)?.get(u / 64)?;
        Some((word >> (u % 64)) & 1 == 1)
    }

    /// Checks that the public fields agree with each other: the word count
    /// is `bits.div_ceil(64)` per sample and the buffer has exactly
    /// `batch * words_per_sample` words. (Padding bits are not checked.)
    pub fn validate(&self) -> Result<()> {
        if self.words_per_sample != self.bits.div_ceil(64) {
            return Err(Error::Shape(format!(
                "codes: words_per_sample = {} but {} bits need {}",
                self.words_per_sample,
                self.bits,
                self.bits.div_ceil(64)
            )));
        }
        let need = self.batch.checked_mul(self.words_per_sample);
        if need != Some(self.words.len()) {
            return Err(Error::Shape(format!(
                "codes: {} words for batch {} x {} words per sample",
                self.words.len(),
                self.batch,
                self.words_per_sample
            )));
        }
        Ok(())
    }
}

/// Inputs at least this many floats are packed in parallel over samples;
/// below it the rayon fork/join costs more than the work (~64 K floats is
/// a few tens of microseconds of packing).
const PAR_MIN_FLOATS: usize = 1 << 16;

/// Packs `batch` samples of `x.len() / batch` floats into sign-bit codes:
/// bit = 1 iff `x > 0.0` (so `0.0`, `-0.0` and NaN give 0).
///
/// Errors when `batch == 0` or `x.len()` is not a multiple of `batch`.
pub fn pack_signs(x: &[f32], batch: usize) -> Result<Codes> {
    let mut out = Codes::default();
    pack_signs_into(x, batch, &mut out)?;
    Ok(out)
}

/// Like [`pack_signs`], but reuses `out`'s buffer (resized as needed; every
/// word, padding included, is overwritten). On error `out` is left unchanged.
pub fn pack_signs_into(x: &[f32], batch: usize, out: &mut Codes) -> Result<()> {
    pack_signs_with(x, batch, out, PackPath::detect(), PAR_MIN_FLOATS)
}

/// Which row packer to use. Private: the public API always takes the best
/// available; tests run every available one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PackPath {
    Portable,
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    Avx2,
}

impl PackPath {
    fn detect() -> Self {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if std::arch::is_x86_feature_detected!("avx2") {
            return PackPath::Avx2;
        }
        PackPath::Portable
    }

    #[cfg(test)]
    fn available() -> Vec<Self> {
        let mut v = vec![PackPath::Portable];
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push(PackPath::Avx2);
        }
        v
    }

    /// Packs one sample: `out.len() == x.len().div_ceil(64)`.
    fn pack_row(self, x: &[f32], out: &mut [u64]) {
        match self {
            PackPath::Portable => pack_row_portable(x, out),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            // SAFETY: `Avx2` is only constructed after
            // `is_x86_feature_detected!("avx2")` returned true.
            PackPath::Avx2 => unsafe { pack_row_avx2(x, out) },
        }
    }
}

fn pack_signs_with(
    x: &[f32],
    batch: usize,
    out: &mut Codes,
    path: PackPath,
    par_min_floats: usize,
) -> Result<()> {
    if batch == 0 {
        return Err(Error::Arg("pack_signs: batch must be > 0".into()));
    }
    if !x.len().is_multiple_of(batch) {
        return Err(Error::Shape(format!(
            "pack_signs: {} floats do not split into {} equal samples",
            x.len(),
            batch
        )));
    }
    let n = x.len() / batch;
    let wps = n.div_ceil(64);
    out.batch = batch;
    out.bits = n;
    out.words_per_sample = wps;
    // No clear(): every word is overwritten below, so only growth is zeroed.
    out.words.resize(batch * wps, 0);
    if n == 0 {
        // Zero-width samples (chunks(0) would panic).
        return Ok(());
    }
    if x.len() >= par_min_floats && batch > 1 {
        out.words
            .par_chunks_mut(wps)
            .zip(x.par_chunks(n))
            .for_each(|(w, xs)| path.pack_row(xs, w));
    } else {
        for (w, xs) in out.words.chunks_mut(wps).zip(x.chunks(n)) {
            path.pack_row(xs, w);
        }
    }
    Ok(())
}

/// Portable packer: one word per 64 floats, the partial last word built the
/// same way with the missing bits left 0. The fixed-length inner loop lets
/// LLVM vectorise the compare.
fn pack_row_portable(x: &[f32], out: &mut [u64]) {
    for (w, chunk) in out.iter_mut().zip(x.chunks(64)) {
        let mut word = 0u64;
        for (i, &v) in chunk.iter().enumerate() {
            word |= ((v > 0.0) as u64) << i;
        }
        *w = word;
    }
}

/// AVX2 packer. Data layout: each full word takes 64 consecutive floats as
/// 8 vectors of 8 lanes; `_mm256_movemask_ps` puts lane `l` (float
/// `8k + l` of the word) at bit `l`, shifted to bit `8k + l`, matching the
/// unit order of the portable packer. The last partial word goes through
/// the portable code.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn pack_row_avx2(x: &[f32], out: &mut [u64]) {
    #[cfg(target_arch = "x86")]
    use std::arch::x86::*;
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    let full = (x.len() / 64).min(out.len());
    let zero = _mm256_setzero_ps();
    for (w, slot) in out[..full].iter_mut().enumerate() {
        let chunk = &x[w * 64..w * 64 + 64];
        let mut word = 0u64;
        for k in 0..8 {
            // SAFETY: `chunk` has 64 floats, so floats 8k..8k+8 are in
            // bounds; loadu has no alignment requirement.
            let v = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * k)) };
            // _CMP_GT_OQ: ordered, so NaN compares false; -0.0 > 0.0 is false.
            let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, zero));
            word |= (m as u32 as u64) << (8 * k);
        }
        *slot = word;
    }
    pack_row_portable(&x[full * 64..], &mut out[full..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: one bool per unit, straight from the definition.
    fn reference_bits(x: &[f32], batch: usize) -> Vec<Vec<bool>> {
        let n = x.len() / batch;
        (0..batch)
            .map(|b| x[b * n..(b + 1) * n].iter().map(|&v| v > 0.0).collect())
            .collect()
    }

    fn check_against_reference(x: &[f32], batch: usize, c: &Codes) {
        let n = x.len() / batch;
        let r = reference_bits(x, batch);
        assert_eq!(c.batch, batch);
        assert_eq!(c.bits, n);
        assert_eq!(c.words_per_sample, n.div_ceil(64));
        c.validate().unwrap();
        for (b, rb) in r.iter().enumerate() {
            let words = c.sample(b).unwrap();
            for (u, &want) in rb.iter().enumerate() {
                assert_eq!((words[u / 64] >> (u % 64)) & 1 == 1, want, "b={b} u={u}");
                assert_eq!(c.bit(b, u), Some(want));
            }
            // Padding bits must be 0.
            if !n.is_multiple_of(64) {
                let last = words[words.len() - 1];
                assert_eq!(last >> (n % 64), 0, "padding of sample {b}");
            }
        }
    }

    fn float() -> impl Strategy<Value = f32> {
        prop_oneof![
            6 => -4.0f32..4.0,
            1 => Just(0.0f32),
            1 => Just(-0.0f32),
            1 => Just(f32::NAN),
            1 => Just(-f32::NAN),
            1 => Just(f32::INFINITY),
            1 => Just(f32::NEG_INFINITY),
            1 => Just(f32::MIN_POSITIVE / 4.0), // positive subnormal
            1 => Just(-f32::MIN_POSITIVE / 4.0),
            1 => any::<f32>(),
        ]
    }

    fn n_units() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(1usize),
            Just(63),
            Just(64),
            Just(65),
            Just(100),
            Just(128),
            Just(1000),
            1usize..300,
        ]
    }

    fn input() -> impl Strategy<Value = (usize, Vec<f32>)> {
        (1usize..20, n_units())
            .prop_flat_map(|(batch, n)| (Just(batch), prop::collection::vec(float(), batch * n)))
    }

    proptest! {
        #[test]
        fn pack_signs_matches_bool_loop((batch, x) in input()) {
            let c = pack_signs(&x, batch).unwrap();
            check_against_reference(&x, batch, &c);
        }

        #[test]
        fn every_path_and_parallel_split_match((batch, x) in input()) {
            for path in PackPath::available() {
                // par_min 0 forces the rayon split, usize::MAX the serial loop.
                for par_min in [0, usize::MAX] {
                    let mut out = Codes {
                        batch: 99,
                        bits: 7,
                        words_per_sample: 3,
                        words: vec![u64::MAX; batch * x.len().div_ceil(64) + 5],
                    };
                    pack_signs_with(&x, batch, &mut out, path, par_min).unwrap();
                    check_against_reference(&x, batch, &out);
                }
            }
        }

        #[test]
        fn pack_signs_into_overwrites_poisoned_buffer((batch, x) in input()) {
            let n = x.len() / batch;
            let mut out = Codes {
                batch,
                bits: n,
                words_per_sample: n.div_ceil(64),
                words: vec![u64::MAX; batch * n.div_ceil(64)],
            };
            pack_signs_into(&x, batch, &mut out).unwrap();
            check_against_reference(&x, batch, &out);
        }
    }

    #[test]
    fn large_input_uses_parallel_path_correctly() {
        // Above PAR_MIN_FLOATS, with a partial last word per sample.
        let batch = 7;
        let n: usize = 20_000 + 13;
        let x: Vec<f32> = (0..batch * n)
            .map(|i| match i % 11 {
                0 => 0.0,
                1 => -0.0,
                2 => f32::NAN,
                k => ((i * 2654435761) % 1000) as f32 - 500.0 + k as f32 * 0.1,
            })
            .collect();
        assert!(x.len() >= PAR_MIN_FLOATS);
        let mut out = Codes {
            words: vec![u64::MAX; batch * n.div_ceil(64)],
            ..Codes::default()
        };
        pack_signs_into(&x, batch, &mut out).unwrap();
        check_against_reference(&x, batch, &out);
    }

    #[test]
    fn special_values() {
        let x = [
            0.0f32,
            -0.0,
            f32::NAN,
            1e-45,
            -1e-45,
            f32::INFINITY,
            -1.0,
            2.0,
        ];
        let c = pack_signs(&x, 1).unwrap();
        assert_eq!(c.words, vec![0b1010_1000]);
    }

    #[test]
    fn errors_and_empty() {
        assert!(matches!(pack_signs(&[1.0; 6], 0), Err(Error::Arg(_))));
        assert!(matches!(pack_signs(&[1.0; 7], 2), Err(Error::Shape(_))));
        let mut out = Codes::zeros(3, 70);
        let before = out.clone();
        assert!(pack_signs_into(&[1.0; 7], 2, &mut out).is_err());
        assert_eq!(out, before, "error must leave the buffer unchanged");
        // Zero-width samples are valid: no bits, no words.
        let c = pack_signs(&[], 4).unwrap();
        assert_eq!((c.batch, c.bits, c.words_per_sample), (4, 0, 0));
        assert!(c.words.is_empty());
    }

    #[test]
    fn validate_catches_inconsistent_fields() {
        assert!(Codes::zeros(3, 65).validate().is_ok());
        let mut c = Codes::zeros(3, 65);
        c.words.pop();
        assert!(c.validate().is_err());
        let mut c = Codes::zeros(3, 65);
        c.words_per_sample = 1;
        assert!(c.validate().is_err());
        assert_eq!(Codes::zeros(2, 10).sample(2), None);
        assert_eq!(Codes::zeros(2, 10).bit(0, 10), None);
    }
}
