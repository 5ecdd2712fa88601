//! The B×B Hamming matrix of sign-bit codes by XOR-popcount, in exact `u64`.
//!
//! `H[i][j] = Σ_w popcount(c_i[w] XOR c_j[w])` over the words of
//! [`Codes`] (sample-major rows of `words_per_sample` words; padding bits are
//! 0 in both codes so they never count).
//!
//! # Blocking
//! Only pairs `i < j` are computed (`H` is symmetric, the diagonal is 0).
//! * Word chunks: the words of a sample are cut into chunks of
//!   `chunk_words` words (about 256 KiB for the chunk across all B rows),
//!   so one chunk of every row stays in L2 while the rows of a task sweep
//!   over it, and the current row `i` and the four `j` rows stay in L1.
//! * Pair groups: row `i` is compared with four rows `j..j+4` at once, so each
//!   word of row `i` is loaded once for four pairs (5 loads per 4 pairs).
//! * Threads: rows are cut into blocks of `ROW_BLOCK`; rayon task `t`
//!   takes block `t` and block `nb-1-t`, so every task has about the same
//!   number of pairs despite the triangle. Each task owns its rows' partial
//!   sums, the sums are integers, so the result does not depend on the thread
//!   count or the blocking.
//!
//! # Kernels
//! * [`PopcountKernel::Portable`]: `u64::count_ones` compiled for the
//!   baseline target (a SWAR bit-count on x86_64 without POPCNT).
//! * [`PopcountKernel::Popcnt`]: the same loop compiled with
//!   `target_feature = "popcnt"`, so `count_ones` is one POPCNT instruction.
//! * [`PopcountKernel::Avx2`]: Muła's nibble lookup (`vpshufb` on the low and
//!   high nibbles of each byte of `a XOR b`), per-byte counts summed in a byte
//!   accumulator for at most 31 vectors (31 × 8 = 248 < 256, no overflow),
//!   then folded into four u64 lanes with `_mm256_sad_epu8`.
//! * [`PopcountKernel::Avx512`]: `vpopcntq` (AVX512_VPOPCNTDQ) on 512-bit
//!   vectors of 8 words, counts added into 8 u64 lanes per pair (no
//!   overflow: a pair contributes at most 64 per lane per vector); the
//!   `len % 8` trailing words through a masked load (masked-out words read
//!   as 0 in both codes, so they count 0).
//!
//! Every kernel counts exactly, in integers, so all of them give the same
//! matrix bit for bit.

use super::codes::Codes;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// A popcount implementation for the XOR-popcount inner loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PopcountKernel {
    /// `u64::count_ones` for the baseline target; works everywhere.
    Portable,
    /// Hardware POPCNT (x86/x86_64 with the `popcnt` feature).
    Popcnt,
    /// AVX2 nibble-lookup popcount (x86/x86_64 with `avx2`).
    Avx2,
    /// AVX-512 `vpopcntq` (x86/x86_64 with `avx512f` and
    /// `avx512vpopcntdq`).
    Avx512,
}

impl PopcountKernel {
    /// The fastest kernel this CPU supports: Avx512 > Avx2 > Popcnt >
    /// Portable.
    pub fn detect() -> Self {
        let all = Self::available();
        // `available` lists in increasing speed and always holds Portable.
        all.last().copied().unwrap_or(PopcountKernel::Portable)
    }

    /// Every kernel this CPU supports, slowest first (Portable always).
    pub fn available() -> Vec<Self> {
        [
            PopcountKernel::Portable,
            PopcountKernel::Popcnt,
            PopcountKernel::Avx2,
            PopcountKernel::Avx512,
        ]
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            PopcountKernel::Portable => true,
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            PopcountKernel::Popcnt => std::arch::is_x86_feature_detected!("popcnt"),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            PopcountKernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            PopcountKernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            PopcountKernel::Popcnt | PopcountKernel::Avx2 | PopcountKernel::Avx512 => false,
        }
    }

    /// Short lowercase name: `portable`, `popcnt`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            PopcountKernel::Portable => "portable",
            PopcountKernel::Popcnt => "popcnt",
            PopcountKernel::Avx2 => "avx2",
            PopcountKernel::Avx512 => "avx512",
        }
    }

    /// `Σ_k popcount(a[k] XOR b[p][k])` for each `p`; every `b[p]` must be at
    /// least as long as `a`. Caller guarantees `self.is_available()`.
    #[inline]
    fn xor_pop<const P: usize>(self, a: &[u64], b: [&[u64]; P]) -> [u64; P] {
        match self {
            PopcountKernel::Portable => xor_pop_scalar(a, b),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            // SAFETY: only reached through `hamming_accumulate_with`, which
            // returns an error unless `is_available()` (POPCNT detected).
            PopcountKernel::Popcnt => unsafe { x86::xor_pop_popcnt(a, b) },
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            // SAFETY: as above, AVX2 detected.
            PopcountKernel::Avx2 => unsafe { x86::xor_pop_avx2(a, b) },
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            // SAFETY: as above, AVX-512F and AVX512_VPOPCNTDQ detected.
            PopcountKernel::Avx512 => unsafe { x86::xor_pop_avx512(a, b) },
            // Unreachable off x86: `is_available()` is false there and the
            // public entry point rejects the kernel first.
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            PopcountKernel::Popcnt | PopcountKernel::Avx2 | PopcountKernel::Avx512 => {
                xor_pop_scalar(a, b)
            }
        }
    }
}

impl std::fmt::Display for PopcountKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows per block of the row-parallel split; also the pair-group width.
const ROW_BLOCK: usize = 4;

/// Words per chunk for a batch of `batch` rows: about 256 KiB for the chunk
/// of all rows (fits the L2 of current x86 cores with room to spare), at
/// least 64 words so the per-call overhead stays small, at most 1024 words
/// (8 KiB) so row `i` plus four `j` rows fit a 32 KiB L1. A multiple of 8 so
/// AVX-512 (8-word) and AVX2 (4-word) vectors never straddle chunks except
/// at the row end.
fn chunk_words(batch: usize) -> usize {
    let w = (256 * 1024 / 8) / batch.max(1);
    w.clamp(64, 1024) & !7
}

/// Adds `multiplicity * popcount(c_i XOR c_j)` to `h[i*B + j]` and
/// `h[j*B + i]` for all `i != j` (the diagonal is untouched), using the
/// fastest kernel of this CPU. `h` is B×B row-major.
///
/// Errors when `h.len() != B*B`, when `codes` is inconsistent
/// ([`Codes::validate`]), or when an entry would overflow `u64` (then `h`
/// is left unchanged).
pub fn hamming_accumulate(codes: &Codes, multiplicity: u64, h: &mut [u64]) -> Result<()> {
    hamming_accumulate_with(PopcountKernel::detect(), codes, multiplicity, h)
}

/// [`hamming_accumulate`] with an explicit kernel; errors
/// ([`Error::Device`]) when this CPU cannot run it.
pub fn hamming_accumulate_with(
    kernel: PopcountKernel,
    codes: &Codes,
    multiplicity: u64,
    h: &mut [u64],
) -> Result<()> {
    accumulate_impl(
        kernel,
        codes,
        multiplicity,
        h,
        chunk_words(codes.batch),
        ROW_BLOCK,
    )
}

fn accumulate_impl(
    kernel: PopcountKernel,
    codes: &Codes,
    multiplicity: u64,
    h: &mut [u64],
    chunk: usize,
    row_block: usize,
) -> Result<()> {
    if !kernel.is_available() {
        return Err(Error::Device(format!(
            "popcount kernel `{}` is not supported by this CPU",
            kernel.name()
        )));
    }
    codes.validate()?;
    let b = codes.batch;
    if b.checked_mul(b) != Some(h.len()) {
        return Err(Error::Shape(format!(
            "hamming: matrix has {} entries, batch {} needs {}x{}",
            h.len(),
            b,
            b,
            b
        )));
    }
    if b < 2 || codes.words_per_sample == 0 || multiplicity == 0 {
        return Ok(());
    }
    let sums = upper_triangle_sums(kernel, codes, chunk.max(1), row_block.max(1));

    // Two passes so that an overflow leaves `h` untouched: first compute
    // every new value into `sums` (upper triangle for h[i][j], the unused
    // lower triangle for h[j][i]), then copy.
    let mut new = sums;
    for i in 0..b {
        for j in i + 1..b {
            let add = multiplicity.checked_mul(new[i * b + j]);
            let up = add.and_then(|a| h[i * b + j].checked_add(a));
            let lo = add.and_then(|a| h[j * b + i].checked_add(a));
            match (up, lo) {
                (Some(u), Some(l)) => {
                    new[i * b + j] = u;
                    new[j * b + i] = l;
                }
                _ => {
                    return Err(Error::Arg(format!(
                        "hamming: entry ({i}, {j}) overflows u64 \
                         (multiplicity {multiplicity})"
                    )))
                }
            }
        }
    }
    for i in 0..b {
        for j in 0..b {
            if i != j {
                h[i * b + j] = new[i * b + j];
            }
        }
    }
    Ok(())
}

/// B×B matrix holding `Σ popcount(c_i XOR c_j)` at `[i*B + j]` for `i < j`
/// and 0 elsewhere. See the module docs for the blocking.
fn upper_triangle_sums(
    kernel: PopcountKernel,
    codes: &Codes,
    chunk: usize,
    row_block: usize,
) -> Vec<u64> {
    let b = codes.batch;
    let wps = codes.words_per_sample;
    let words = &codes.words[..b * wps];
    let row = |i: usize| &words[i * wps..(i + 1) * wps];

    // Task t: row blocks t and nb-1-t (one block when they coincide).
    let nb = b.div_ceil(row_block);
    let tasks: Vec<Vec<usize>> = (0..nb.div_ceil(2))
        .map(|t| {
            let mut rows: Vec<usize> = (t * row_block..((t + 1) * row_block).min(b)).collect();
            let u = nb - 1 - t;
            if u != t {
                rows.extend(u * row_block..((u + 1) * row_block).min(b));
            }
            rows
        })
        .collect();

    let partial: Vec<(Vec<usize>, Vec<u64>)> = tasks
        .into_par_iter()
        .map(|rows| {
            // acc[r*B + j] = partial sum for pair (rows[r], j), j > rows[r].
            let mut acc = vec![0u64; rows.len() * b];
            let mut c0 = 0;
            while c0 < wps {
                let c1 = (c0 + chunk).min(wps);
                for (r, &i) in rows.iter().enumerate() {
                    let a = &row(i)[c0..c1];
                    let out = &mut acc[r * b..(r + 1) * b];
                    let mut j = i + 1;
                    while j + 4 <= b {
                        let s = kernel.xor_pop(
                            a,
                            [
                                &row(j)[c0..c1],
                                &row(j + 1)[c0..c1],
                                &row(j + 2)[c0..c1],
                                &row(j + 3)[c0..c1],
                            ],
                        );
                        for (o, v) in out[j..j + 4].iter_mut().zip(s) {
                            *o += v;
                        }
                        j += 4;
                    }
                    while j < b {
                        out[j] += kernel.xor_pop(a, [&row(j)[c0..c1]])[0];
                        j += 1;
                    }
                }
                c0 = c1;
            }
            (rows, acc)
        })
        .collect();

    let mut sums = vec![0u64; b * b];
    for (rows, acc) in partial {
        for (r, &i) in rows.iter().enumerate() {
            sums[i * b..(i + 1) * b].copy_from_slice(&acc[r * b..(r + 1) * b]);
        }
    }
    sums
}

/// Scalar XOR-popcount of `a` against `P` rows. Data layout: plain word
/// slices, word `k` of `a` against word `k` of each `b[p]`.
#[inline(always)]
fn xor_pop_scalar<const P: usize>(a: &[u64], b: [&[u64]; P]) -> [u64; P] {
    let n = a.len();
    // Re-slicing to `n` lets LLVM drop the bounds checks in the loop.
    let b = b.map(|s| &s[..n]);
    let mut s = [0u64; P];
    for k in 0..n {
        let x = a[k];
        for p in 0..P {
            s[p] += (x ^ b[p][k]).count_ones() as u64;
        }
    }
    s
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod x86 {
    #[cfg(target_arch = "x86")]
    use std::arch::x86::*;
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    /// [`super::xor_pop_scalar`] compiled with POPCNT, so `count_ones` is one
    /// instruction.
    ///
    /// # Safety
    /// The CPU must support `popcnt`.
    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn xor_pop_popcnt<const P: usize>(a: &[u64], b: [&[u64]; P]) -> [u64; P] {
        super::xor_pop_scalar(a, b)
    }

    /// Per-byte popcount of a 256-bit vector (Muła): look up the low and the
    /// high nibble of each byte in a 16-entry table (replicated in both
    /// 128-bit lanes, since `vpshufb` works per lane) and add. Each result
    /// byte is ≤ 8.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pop_bytes(v: __m256i, lut: __m256i, low: __m256i) -> __m256i {
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi))
    }

    /// AVX2 XOR-popcount of `a` against `P` rows. Data layout: the slices are
    /// read as unaligned 256-bit vectors of 4 words (word `4v..4v+4` is
    /// vector `v`); the `len % 4` trailing words use scalar `count_ones`.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn xor_pop_avx2<const P: usize>(a: &[u64], b: [&[u64]; P]) -> [u64; P] {
        let n = a.len();
        // Bounds: every `b[p]` is cut to exactly `n` words (panics only on
        // an internal bug, never reads past the end).
        let b = b.map(|s| &s[..n]);
        let nv = n / 4;
        #[rustfmt::skip]
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let mut tot = [zero; P];
        let pa = a.as_ptr() as *const __m256i;
        let pb = b.map(|s| s.as_ptr() as *const __m256i);
        let mut v = 0;
        while v < nv {
            // At most 31 vectors per byte accumulator: 31 * 8 = 248 <= 255.
            let end = (v + 31).min(nv);
            let mut acc = [zero; P];
            for k in v..end {
                // SAFETY: k < nv = n / 4, so words 4k..4k+4 are inside `a`
                // and inside every `b[p]` (all of length n); loadu needs no
                // alignment.
                let x = unsafe { _mm256_loadu_si256(pa.add(k)) };
                for p in 0..P {
                    // SAFETY: as above.
                    let y = unsafe { _mm256_loadu_si256(pb[p].add(k)) };
                    let c = pop_bytes(_mm256_xor_si256(x, y), lut, low);
                    acc[p] = _mm256_add_epi8(acc[p], c);
                }
            }
            for p in 0..P {
                // sad against 0 sums each 8-byte group into one u64 lane.
                tot[p] = _mm256_add_epi64(tot[p], _mm256_sad_epu8(acc[p], zero));
            }
            v = end;
        }
        let mut s = [0u64; P];
        for p in 0..P {
            let mut lanes = [0u64; 4];
            // SAFETY: `lanes` is 32 bytes; storeu needs no alignment.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, tot[p]) };
            s[p] = lanes.iter().sum::<u64>();
            for k in nv * 4..n {
                s[p] += (a[k] ^ b[p][k]).count_ones() as u64;
            }
        }
        s
    }

    /// AVX-512 XOR-popcount of `a` against `P` rows. Data layout: the slices
    /// are read as unaligned 512-bit vectors of 8 words (words `8v..8v+8`
    /// are vector `v`); the `len % 8` trailing words as one vector with a
    /// load mask (masked-out words are neither read nor counted). Each pair
    /// keeps 8 u64 lane sums (each lane adds at most 64 per vector, far from
    /// overflow for any slice that fits in memory), reduced at the end.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX512_VPOPCNTDQ.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(super) unsafe fn xor_pop_avx512<const P: usize>(a: &[u64], b: [&[u64]; P]) -> [u64; P] {
        let n = a.len();
        // Bounds: every `b[p]` is cut to exactly `n` words (panics only on
        // an internal bug, never reads past the end).
        let b = b.map(|s| &s[..n]);
        let nv = n / 8;
        let mut acc = [_mm512_setzero_si512(); P];
        let pa = a.as_ptr();
        let pb = b.map(|s| s.as_ptr());
        for k in 0..nv {
            // SAFETY: k < nv = n / 8, so words 8k..8k+8 are inside `a` and
            // inside every `b[p]` (all of length n); loadu needs no
            // alignment.
            let x = unsafe { _mm512_loadu_si512(pa.add(8 * k) as *const _) };
            for p in 0..P {
                // SAFETY: as above.
                let y = unsafe { _mm512_loadu_si512(pb[p].add(8 * k) as *const _) };
                acc[p] = _mm512_add_epi64(acc[p], _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
            }
        }
        let rest = n - 8 * nv;
        if rest > 0 {
            // Lanes 0..rest: words 8nv..n.
            let m: __mmask8 = ((1u32 << rest) - 1) as __mmask8;
            // SAFETY: the masked load reads only words 8nv..n, inside every
            // slice, and does not fault on the masked-out lanes; the
            // pointers themselves stay inside (8nv < n).
            let x = unsafe { _mm512_maskz_loadu_epi64(m, pa.add(8 * nv) as *const _) };
            for p in 0..P {
                // SAFETY: as above.
                let y = unsafe { _mm512_maskz_loadu_epi64(m, pb[p].add(8 * nv) as *const _) };
                acc[p] = _mm512_add_epi64(acc[p], _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
            }
        }
        acc.map(|v| _mm512_reduce_add_epi64(v) as u64)
    }
}

/// The kernel `K_H = N_A − H` (B×B row-major, diagonal = `n_units`).
///
/// `h` must be B×B with off-diagonal entries ≤ `n_units` (true for a Hamming
/// matrix accumulated over exactly `n_units` bits with multiplicity 1). An
/// entry above `n_units` saturates to 0 rather than wrapping. When
/// `h.len() != batch * batch` (or B*B overflows) the result is empty, which
/// [`super::logdet::logdet_of_kernel`] rejects as `None`.
pub fn kernel_from_hamming(h: &[u64], n_units: u64, batch: usize) -> Vec<u64> {
    if batch.checked_mul(batch) != Some(h.len()) {
        return Vec::new();
    }
    let mut k: Vec<u64> = h.iter().map(|&x| n_units.saturating_sub(x)).collect();
    for i in 0..batch {
        k[i * batch + i] = n_units;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Codes from bool vectors (the reference representation).
    fn codes_from_bools(bits: &[Vec<bool>]) -> Codes {
        let batch = bits.len();
        let n = bits.first().map_or(0, |v| v.len());
        let mut c = Codes::zeros(batch, n);
        for (b, v) in bits.iter().enumerate() {
            for (u, &on) in v.iter().enumerate() {
                if on {
                    c.words[b * c.words_per_sample + u / 64] |= 1 << (u % 64);
                }
            }
        }
        c
    }

    /// Naive reference: count differing bools.
    fn naive(bits: &[Vec<bool>], multiplicity: u64, h: &mut [u64]) {
        let b = bits.len();
        for i in 0..b {
            for j in 0..b {
                if i != j {
                    let d = bits[i].iter().zip(&bits[j]).filter(|(x, y)| x != y).count() as u64;
                    h[i * b + j] += multiplicity * d;
                }
            }
        }
    }

    fn prefill(b: usize) -> Vec<u64> {
        (0..b * b).map(|k| (k as u64 * 7 + 3) % 1000).collect()
    }

    fn word_count() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(1usize),
            Just(3),
            Just(5),
            Just(37),
            Just(300),
            1usize..80
        ]
    }

    /// (bool codes of B samples, bits per sample). The bit count is the word
    /// count times 64 minus a random 0..64 so partial last words occur.
    fn bool_codes() -> impl Strategy<Value = Vec<Vec<bool>>> {
        (1usize..40, word_count(), 0usize..64).prop_flat_map(|(b, w, cut)| {
            let bits = (w * 64 - cut).max(1);
            prop::collection::vec(prop::collection::vec(any::<bool>(), bits), b)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_kernel_matches_naive(bits in bool_codes(), mult in prop_oneof![Just(1u64), Just(3)]) {
            let codes = codes_from_bools(&bits);
            let b = bits.len();
            let mut want = prefill(b);
            naive(&bits, mult, &mut want);
            for k in PopcountKernel::available() {
                let mut h = prefill(b);
                hamming_accumulate_with(k, &codes, mult, &mut h).unwrap();
                prop_assert_eq!(&h, &want, "kernel {}", k);
                // Odd blockings (tiny chunks, not multiples of 4; one-row
                // and large row blocks) must give the same integers.
                for (chunk, rb) in [(1, 1), (3, 2), (5, 3), (8, 7), (4096, 64)] {
                    let mut h = prefill(b);
                    accumulate_impl(k, &codes, mult, &mut h, chunk, rb).unwrap();
                    prop_assert_eq!(&h, &want, "kernel {} chunk {} rb {}", k, chunk, rb);
                }
            }
            let mut h = prefill(b);
            hamming_accumulate(&codes, mult, &mut h).unwrap();
            prop_assert_eq!(&h, &want);
        }

        #[test]
        fn two_calls_equal_one_call_on_concatenation(
            (a, c) in (1usize..20).prop_flat_map(|b| {
                let v = |n: std::ops::Range<usize>| n.prop_flat_map(move |n|
                    prop::collection::vec(prop::collection::vec(any::<bool>(), n), b));
                (v(1..200), v(1..300))
            })
        ) {
            let b = a.len();
            for k in PopcountKernel::available() {
                let mut two = prefill(b);
                hamming_accumulate_with(k, &codes_from_bools(&a), 1, &mut two).unwrap();
                hamming_accumulate_with(k, &codes_from_bools(&c), 1, &mut two).unwrap();
                let cat: Vec<Vec<bool>> = a
                    .iter()
                    .zip(&c)
                    .map(|(x, y)| x.iter().chain(y).copied().collect())
                    .collect();
                let mut one = prefill(b);
                hamming_accumulate_with(k, &codes_from_bools(&cat), 1, &mut one).unwrap();
                prop_assert_eq!(&two, &one, "kernel {}", k);
            }
        }
    }

    /// Random words, xorshift64* from `seed`.
    fn random_words(seed: u64, n: usize) -> Vec<u64> {
        let mut state = seed | 1;
        (0..n)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_F491_4F6C_DD1D)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The inner XOR-popcount of every kernel this CPU runs equals the
        /// portable one on random words of any length (odd ones, around
        /// the 4- and 8-word vector widths and the 31-vector AVX2 flush),
        /// for one and four rows, with rows longer than `a` as the blocking
        /// passes them.
        #[test]
        fn xor_pop_kernels_equal_portable(
            len in prop_oneof![0usize..40, 240usize..260, 1usize..2000],
            extra in 0usize..9,
            seed in any::<u64>(),
        ) {
            let a = random_words(seed, len);
            let rows: Vec<Vec<u64>> = (1..=4u64)
                .map(|r| random_words(seed ^ r.wrapping_mul(0x9E37_79B9), len + extra))
                .collect();
            let b4 = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
            let want4 = xor_pop_scalar(&a, b4);
            let want1 = xor_pop_scalar(&a, [&rows[0][..]]);
            for k in PopcountKernel::available() {
                prop_assert_eq!(k.xor_pop(&a, b4), want4, "kernel {} len {}", k, len);
                prop_assert_eq!(k.xor_pop(&a, [&rows[0][..]]), want1, "kernel {} len {}", k, len);
            }
        }
    }

    /// Random words over many AVX2 flush periods (31 vectors) and chunks,
    /// against a direct word-level count, at the typical B = 128.
    #[test]
    fn large_random_against_word_reference() {
        let (b, wps) = (128, 1000 + 3);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let words: Vec<u64> = (0..b * wps)
            .map(|_| {
                // xorshift64*
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_F491_4F6C_DD1D)
            })
            .collect();
        let codes = Codes {
            batch: b,
            bits: wps * 64,
            words_per_sample: wps,
            words,
        };
        let mut want = vec![0u64; b * b];
        for i in 0..b {
            for j in 0..b {
                if i != j {
                    want[i * b + j] = (0..wps)
                        .map(|w| {
                            (codes.words[i * wps + w] ^ codes.words[j * wps + w]).count_ones()
                                as u64
                        })
                        .sum();
                }
            }
        }
        for k in PopcountKernel::available() {
            let mut h = vec![0u64; b * b];
            hamming_accumulate_with(k, &codes, 1, &mut h).unwrap();
            assert_eq!(h, want, "kernel {k}");
        }
        // All-ones against all-zeros saturates every byte counter: 8 per byte
        // per vector, the worst case for the 31-vector flush rule.
        let wps = 31 * 4 * 3 + 1;
        let mut codes = Codes::zeros(2, wps * 64);
        codes.words[..wps].fill(u64::MAX);
        for k in PopcountKernel::available() {
            let mut h = vec![0u64; 4];
            hamming_accumulate_with(k, &codes, 2, &mut h).unwrap();
            assert_eq!(
                h,
                vec![0, 2 * 64 * wps as u64, 2 * 64 * wps as u64, 0],
                "kernel {k}"
            );
        }
    }

    #[test]
    fn errors_leave_h_unchanged() {
        let codes = Codes::zeros(3, 100);
        let mut h = vec![0u64; 8];
        assert!(matches!(
            hamming_accumulate(&codes, 1, &mut h),
            Err(Error::Shape(_))
        ));
        let mut bad = Codes::zeros(3, 100);
        bad.words.push(0);
        assert!(hamming_accumulate(&bad, 1, &mut [0u64; 9]).is_err());

        // Overflow: all-different codes and a huge multiplicity.
        let mut codes = Codes::zeros(2, 64);
        codes.words[0] = u64::MAX;
        let mut h = vec![5u64; 4];
        assert!(hamming_accumulate(&codes, u64::MAX / 2, &mut h).is_err());
        assert_eq!(h, vec![5; 4]);
        let mut h = vec![0, u64::MAX - 10, 0, 0];
        assert!(hamming_accumulate(&codes, 1, &mut h).is_err());
        assert_eq!(h, vec![0, u64::MAX - 10, 0, 0]);
    }

    #[test]
    fn kernel_listing() {
        let av = PopcountKernel::available();
        assert_eq!(av[0], PopcountKernel::Portable);
        assert_eq!(PopcountKernel::detect(), *av.last().unwrap());
        for k in [
            PopcountKernel::Portable,
            PopcountKernel::Popcnt,
            PopcountKernel::Avx2,
            PopcountKernel::Avx512,
        ] {
            let codes = Codes::zeros(2, 64);
            let r = hamming_accumulate_with(k, &codes, 1, &mut [0u64; 4]);
            assert_eq!(r.is_ok(), k.is_available(), "kernel {}", k.name());
        }
    }

    #[test]
    fn trivial_batches() {
        // B = 1 and zero-bit codes: nothing to add, no error.
        let mut h = vec![7u64];
        hamming_accumulate(&Codes::zeros(1, 100), 1, &mut h).unwrap();
        assert_eq!(h, vec![7]);
        let mut h = vec![1u64; 9];
        hamming_accumulate(&Codes::zeros(3, 0), 1, &mut h).unwrap();
        assert_eq!(h, vec![1; 9]);
        hamming_accumulate(&Codes::zeros(0, 10), 1, &mut []).unwrap();
    }

    #[test]
    fn kernel_from_hamming_values() {
        let h = [0, 3, 5, 3, 0, 2, 5, 2, 0];
        assert_eq!(
            kernel_from_hamming(&h, 10, 3),
            vec![10, 7, 5, 7, 10, 8, 5, 8, 10]
        );
        assert!(kernel_from_hamming(&h, 10, 2).is_empty());
        // Saturates instead of wrapping.
        assert_eq!(
            kernel_from_hamming(&[9, 12, 12, 9], 10, 2),
            vec![10, 0, 0, 10]
        );
    }
}
