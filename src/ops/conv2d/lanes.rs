//! One x86 vector register of f32 lanes, at the two widths the conv kernels
//! run on: [`Ymm`] (AVX2, 8 lanes) and [`Zmm`] (AVX-512F, 16 lanes).
//!
//! The tiles of `cpu.rs` and `depthwise.rs` are written once, generic
//! over [`Lanes`], and instantiated inside `#[target_feature]` entry
//! functions. Every op here is `#[inline(always)]` and one intrinsic (the
//! masks and the f32 → f64 widening two or three), so once inlined into
//! such an entry a generic tile is the same instructions as a tile written
//! with that width's intrinsics. (Called from code compiled without the
//! instruction set, an op would stay a call: sound, only slow.)
//!
//! Each op is the same IEEE operation per lane at both widths (`fmadd` one
//! fused multiply-add, `mul` and `add` one rounding each), so a kernel that
//! issues the same ops per element gives the same bits at either width.

use std::arch::x86_64::*;

/// The vector ops the conv tiles use, at one register width.
///
/// # Safety
/// Implementors: `N` is the number of f32 lanes of `F` (and `F` holds
/// `N / 2` f64 values widened as two `D`), and every op reads and writes
/// exactly the memory its doc names, so that the kernels' pointer
/// arithmetic in units of `N` stays inside the buffers they checked.
pub(super) unsafe trait Lanes {
    /// f32 lanes per vector.
    const N: usize;
    /// Whether a block's last vector is stored through its tail mask even
    /// when every lane exists: true where a masked store costs what a plain
    /// one does (AVX-512 mask registers), so one instantiation of a tile
    /// serves full and partial blocks; false where it does not (AVX2
    /// `vmaskmovps`), so full blocks store plainly.
    const MASK_FULL: bool;
    /// `N` f32 lanes.
    type F: Copy;
    /// `N / 2` f64 lanes.
    type D: Copy;
    /// Which f32 lanes a masked load or store touches.
    type M: Copy;
    /// Which f64 lanes a masked load or store touches.
    type DM: Copy;

    /// The mask of lanes `0..n`.
    ///
    /// # Safety
    /// The CPU supports this width; `n <= N`.
    unsafe fn tail(n: usize) -> Self::M;
    /// The f64 masks of the low and high halves of `m` (for the two
    /// vectors [`Lanes::widen`] gives).
    ///
    /// # Safety
    /// The CPU supports this width.
    unsafe fn halves(m: Self::M) -> (Self::DM, Self::DM);
    /// All lanes 0.0.
    ///
    /// # Safety
    /// The CPU supports this width.
    unsafe fn zero() -> Self::F;
    /// `p[0..N]`.
    ///
    /// # Safety
    /// The CPU supports this width; `p[0..N]` is readable.
    unsafe fn load(p: *const f32) -> Self::F;
    /// The lanes of `m` from `p`, the others 0.0 and not read.
    ///
    /// # Safety
    /// The CPU supports this width; `p[i]` is readable for every lane `i`
    /// of `m`.
    unsafe fn load_tail(p: *const f32, m: Self::M) -> Self::F;
    /// `*p` in every lane.
    ///
    /// # Safety
    /// The CPU supports this width; `*p` is readable.
    unsafe fn splat(p: *const f32) -> Self::F;
    /// Writes `p[0..N]`.
    ///
    /// # Safety
    /// The CPU supports this width; `p[0..N]` is writable.
    unsafe fn store(p: *mut f32, v: Self::F);
    /// Writes the lanes of `m` to `p`, leaves the others untouched.
    ///
    /// # Safety
    /// The CPU supports this width; `p[i]` is writable for every lane `i`
    /// of `m`.
    unsafe fn store_tail(p: *mut f32, m: Self::M, v: Self::F);
    /// `a + b`, rounded once.
    ///
    /// # Safety
    /// The CPU supports this width.
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b`, rounded once.
    ///
    /// # Safety
    /// The CPU supports this width.
    unsafe fn mul(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c`, fused (rounded once).
    ///
    /// # Safety
    /// The CPU supports this width and FMA.
    unsafe fn fmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Lanes `0..N/2` and `N/2..N`, each widened to f64 (exact).
    ///
    /// # Safety
    /// The CPU supports this width.
    unsafe fn widen(v: Self::F) -> (Self::D, Self::D);
    /// `p[0..N/2]`.
    ///
    /// # Safety
    /// The CPU supports this width; `p[0..N/2]` is readable.
    unsafe fn load_d(p: *const f64) -> Self::D;
    /// The lanes of `m` from `p`, the others 0.0 and not read.
    ///
    /// # Safety
    /// The CPU supports this width; `p[i]` is readable for every lane `i`
    /// of `m`.
    unsafe fn load_d_tail(p: *const f64, m: Self::DM) -> Self::D;
    /// Writes `p[0..N/2]`.
    ///
    /// # Safety
    /// The CPU supports this width; `p[0..N/2]` is writable.
    unsafe fn store_d(p: *mut f64, v: Self::D);
    /// Writes the lanes of `m` to `p`, leaves the others untouched.
    ///
    /// # Safety
    /// The CPU supports this width; `p[i]` is writable for every lane `i`
    /// of `m`.
    unsafe fn store_d_tail(p: *mut f64, m: Self::DM, v: Self::D);
    /// `a + b`, rounded once.
    ///
    /// # Safety
    /// The CPU supports this width.
    unsafe fn add_d(a: Self::D, b: Self::D) -> Self::D;
    /// `a * b + c`, fused (rounded once).
    ///
    /// # Safety
    /// The CPU supports this width and FMA.
    unsafe fn fmadd_d(a: Self::D, b: Self::D, c: Self::D) -> Self::D;
}

/// AVX2 (+ FMA for the fused ops): 8 f32 lanes in a ymm register. Masks
/// are vectors whose lanes are selected by their sign bit.
pub(super) struct Ymm;

/// AVX-512F: 16 f32 lanes in a zmm register. Masks are mask registers,
/// one bit a lane.
pub(super) struct Zmm;

// SAFETY: `__m256` is 8 f32 lanes (`__m256d` 4 f64 lanes), and each op below
// is the 256-bit intrinsic that touches exactly the lanes its trait doc
// names (`vmaskmov` neither reads nor writes unselected lanes).
unsafe impl Lanes for Ymm {
    const N: usize = 8;
    const MASK_FULL: bool = false;
    type F = __m256;
    type D = __m256d;
    type M = __m256i;
    type DM = __m256i;

    #[inline(always)]
    unsafe fn tail(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
    #[inline(always)]
    unsafe fn halves(m: __m256i) -> (__m256i, __m256i) {
        // Sign extension keeps each lane's sign bit.
        (
            _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m)),
            _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(m)),
        )
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_tail(p: *const f32, m: __m256i) -> __m256 {
        _mm256_maskload_ps(p, m)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_tail(p: *mut f32, m: __m256i, v: __m256) {
        _mm256_maskstore_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn widen(v: __m256) -> (__m256d, __m256d) {
        (
            _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
        )
    }
    #[inline(always)]
    unsafe fn load_d(p: *const f64) -> __m256d {
        _mm256_loadu_pd(p)
    }
    #[inline(always)]
    unsafe fn load_d_tail(p: *const f64, m: __m256i) -> __m256d {
        _mm256_maskload_pd(p, m)
    }
    #[inline(always)]
    unsafe fn store_d(p: *mut f64, v: __m256d) {
        _mm256_storeu_pd(p, v)
    }
    #[inline(always)]
    unsafe fn store_d_tail(p: *mut f64, m: __m256i, v: __m256d) {
        _mm256_maskstore_pd(p, m, v)
    }
    #[inline(always)]
    unsafe fn add_d(a: __m256d, b: __m256d) -> __m256d {
        _mm256_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd_d(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        _mm256_fmadd_pd(a, b, c)
    }
}

// SAFETY: `__m512` is 16 f32 lanes (`__m512d` 8 f64 lanes), and each op below
// is the 512-bit intrinsic that touches exactly the lanes its trait doc
// names (masked-out lanes are neither read nor written, and do not fault).
unsafe impl Lanes for Zmm {
    const N: usize = 16;
    const MASK_FULL: bool = true;
    type F = __m512;
    type D = __m512d;
    type M = __mmask16;
    type DM = __mmask8;

    #[inline(always)]
    unsafe fn tail(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn halves(m: __mmask16) -> (__mmask8, __mmask8) {
        (m as __mmask8, (m >> 8) as __mmask8)
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_tail(p: *const f32, m: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_tail(p: *mut f32, m: __mmask16, v: __m512) {
        _mm512_mask_storeu_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn widen(v: __m512) -> (__m512d, __m512d) {
        // The high half through the f64 view: `_mm512_extractf32x8_ps`
        // would need AVX-512DQ.
        let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
        (
            _mm512_cvtps_pd(_mm512_castps512_ps256(v)),
            _mm512_cvtps_pd(_mm256_castpd_ps(hi)),
        )
    }
    #[inline(always)]
    unsafe fn load_d(p: *const f64) -> __m512d {
        _mm512_loadu_pd(p)
    }
    #[inline(always)]
    unsafe fn load_d_tail(p: *const f64, m: __mmask8) -> __m512d {
        _mm512_maskz_loadu_pd(m, p)
    }
    #[inline(always)]
    unsafe fn store_d(p: *mut f64, v: __m512d) {
        _mm512_storeu_pd(p, v)
    }
    #[inline(always)]
    unsafe fn store_d_tail(p: *mut f64, m: __mmask8, v: __m512d) {
        _mm512_mask_storeu_pd(p, m, v)
    }
    #[inline(always)]
    unsafe fn add_d(a: __m512d, b: __m512d) -> __m512d {
        _mm512_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd_d(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        _mm512_fmadd_pd(a, b, c)
    }
}
