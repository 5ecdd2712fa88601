//! The counter-based generator behind every random number of the crate.
//!
//! A value is a pure function `f(seed, stream, index)`: no state, no order of
//! draws. Weights therefore do not depend on the thread count, the order in
//! which tensors are initialised, or the device: `cuda/common.cuh` carries the
//! same three functions, so a GPU builds a bit-identical network from the same
//! seed. Only 64-bit integer arithmetic and exact float conversions are used.

/// SplitMix64's finaliser: a bijective 64-bit mixer with full avalanche.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The key of one stream (one tensor, one input batch) under one seed.
#[inline]
pub const fn stream_key(seed: u64, stream: u64) -> u64 {
    mix64(mix64(seed.wrapping_add(GOLDEN)) ^ stream)
}

/// 64 random bits for element `index` of the stream with key `key`.
#[inline]
pub const fn bits(key: u64, index: u64) -> u64 {
    mix64(key.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// Uniform in [-1, 1) with 24 random bits: `(2m - 2^24) * 2^-24`, exact in f32,
/// so `uniform_pm1(..) * bound` is one IEEE multiply on any device.
#[inline]
pub fn uniform_pm1(key: u64, index: u64) -> f32 {
    let m = (bits(key, index) >> 40) as i32; // 24 bits
    (2 * m - (1 << 24)) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// Uniform in (0, 1] with 53 random bits, for Box–Muller on the host.
#[inline]
pub fn uniform_open0_f64(key: u64, index: u64) -> f64 {
    ((bits(key, index) >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal value (Box–Muller on elements 2i and 2i+1 of the stream;
/// host only: the GPU receives inputs, it does not draw them).
pub fn normal(key: u64, index: u64) -> f64 {
    let u1 = uniform_open0_f64(key, 2 * index);
    let u2 = uniform_open0_f64(key, 2 * index + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A stable 64-bit id of a named tensor (FNV-1a of the name): the same name
/// draws the same values in every network that has it, so two cells that
/// share an edge op also share its weights (common random numbers).
pub const fn name_id(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_in_range_and_centred() {
        let key = stream_key(7, name_id("w"));
        let n = 200_000u64;
        let mut sum = 0.0f64;
        let (mut lo, mut hi) = (f32::MAX, f32::MIN);
        for i in 0..n {
            let v = uniform_pm1(key, i);
            assert!((-1.0..1.0).contains(&v));
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v as f64;
        }
        assert!((sum / n as f64).abs() < 0.01);
        assert!(lo < -0.999 && hi > 0.999);
    }

    #[test]
    fn normal_has_unit_moments() {
        let key = stream_key(3, 11);
        let n = 200_000u64;
        let (mut s1, mut s2) = (0.0, 0.0);
        for i in 0..n {
            let v = normal(key, i);
            assert!(v.is_finite());
            s1 += v;
            s2 += v * v;
        }
        let mean = s1 / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((s2 / n as f64 - 1.0).abs() < 0.02);
    }

    #[test]
    fn values_are_a_pure_function_of_the_counter() {
        let k1 = stream_key(1, 2);
        assert_eq!(uniform_pm1(k1, 5).to_bits(), uniform_pm1(k1, 5).to_bits());
        assert_ne!(stream_key(1, 2), stream_key(2, 2));
        assert_ne!(stream_key(1, 2), stream_key(1, 3));
        assert_eq!(mix64(0), 0);
        assert_eq!(name_id(""), 0xcbf2_9ce4_8422_2325);
    }

    /// Pins the generator to values computed by an independent Python
    /// implementation of the same formulas: a change here would silently
    /// change every network ever scored (and break CPU/GPU parity).
    #[test]
    fn generator_matches_pinned_values() {
        let id = name_id("stem.conv.weight");
        assert_eq!(id, 0xe244_e2a6_a97c_f0ba);
        let key = stream_key(0, id);
        assert_eq!(key, 0xb27e_0a3f_249c_fee7);
        let got: Vec<u32> = (0..4).map(|i| uniform_pm1(key, i).to_bits()).collect();
        assert_eq!(got, [0x3be6_6a00, 0x3f4c_5506, 0x3eb2_9208, 0x3f7c_df3c]);
    }
}
