// Shared helpers of every dasnas kernel. Self-contained: NVRTC compiles it
// without system headers, so fixed-width types are spelled out here.
typedef unsigned long long u64;
typedef unsigned int u32;

// The counter-based generator of src/net/rng.rs, bit for bit: a value is a
// pure function of (seed, stream, index), so the GPU draws the same weights
// as the CPU in any launch geometry.
__device__ __forceinline__ u64 dn_mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define DN_GOLDEN 0x9e3779b97f4a7c15ULL

__device__ __forceinline__ u64 dn_bits(u64 key, u64 index) {
    return dn_mix64(key + (index + 1ULL) * DN_GOLDEN);
}

// Uniform in [-1, 1) from 24 bits: exact in f32, like uniform_pm1 in Rust.
__device__ __forceinline__ float dn_uniform_pm1(u64 key, u64 index) {
    int m = (int)(dn_bits(key, index) >> 40);
    return (float)(2 * m - (1 << 24)) * (1.0f / 16777216.0f);
}
