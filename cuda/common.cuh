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

// Sign packing fused into an elementwise kernel's store (layout as in
// cuda/codes.cu): warp `g` of the grid-stride loop owns word w of sample b
// (g = b * wps + w); lane l handles units 64w + l and 64w + 32 + l of the
// sample (flat index b * n + u), computes their values with `value(i)`
// (which also stores them), and two ballots give the word, written to
// codes[b * row_stride + word_offset + w]. The loop condition is
// warp-uniform, so every lane reaches each ballot with the full mask.
template <typename F>
__device__ __forceinline__ void dn_pack_loop(u64 batch, u64 n, u64 wps, u64* codes,
                                             u64 row_stride, u64 word_offset, F value) {
    const u32 lane = threadIdx.x & 31u;
    const u64 warps_per_grid = ((u64)gridDim.x * blockDim.x) >> 5;
    const u64 total = batch * wps;
    for (u64 g = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; g < total;
         g += warps_per_grid) {
        const u64 b = g / wps;
        const u64 w = g - b * wps;
        const u64 u_lo = w * 64 + lane;
        const u64 u_hi = u_lo + 32;
        const bool lo = u_lo < n && value(b * n + u_lo) > 0.0f;
        const bool hi = u_hi < n && value(b * n + u_hi) > 0.0f;
        const u32 bits_lo = __ballot_sync(0xffffffffu, lo);
        const u32 bits_hi = __ballot_sync(0xffffffffu, hi);
        if (lane == 0) {
            codes[b * row_stride + word_offset + w] = (u64)bits_lo | ((u64)bits_hi << 32);
        }
    }
}

// Sums (s, q) over the THREADS threads of a 1-D block by a fixed tree:
// thread t adds t + half for half = THREADS/2, ..., 1, one barrier per
// level, so the result is deterministic (the same bits on every run and
// launch geometry). On return every thread holds the block's sums. Every
// thread of the block must call it (it has barriers); THREADS is the
// block size, a power of two.
template <int THREADS>
__device__ __forceinline__ void dn_block_sum2(double& s, double& q) {
    static_assert(THREADS > 0 && (THREADS & (THREADS - 1)) == 0, "a power of two");
    __shared__ double ss[THREADS];
    __shared__ double qq[THREADS];
    const int t = threadIdx.x;
    ss[t] = s;
    qq[t] = q;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (t < half) {
            ss[t] += ss[t + half];
            qq[t] += qq[t + half];
        }
        __syncthreads();
    }
    s = ss[0];
    q = qq[0];
    __syncthreads();  // all have read before a next call overwrites ss, qq
}
