// Sign-bit packing (twin of src/score/codes.rs `pack_signs`).
//
// Layout:
//   x   : f32 [batch][n], sample-major, contiguous (one ReLU input flattened
//         per sample, in whatever order the op stores it: the CPU twin packs
//         the same flat order).
//   out : u64 rows of `row_stride` words, one per sample; the sample's
//         words_per_sample = ceil(n / 64) words start at word `word_offset`
//         of its row: unit u of sample b is bit (u % 64) of
//         out[b * row_stride + word_offset + u / 64]. (row_stride =
//         words_per_sample, word_offset = 0 is the plain Codes layout; a
//         plan packs several layers side by side in one row.) Words of a row
//         outside [word_offset, word_offset + words_per_sample) are not
//         touched.
//         Bit = 1 iff x > 0.0f (0, -0, NaN give 0); padding bits of the last
//         word are 0, so XOR-popcount over whole words counts only real units.
//
// One warp builds one output word: lane l reads units 64w + l and 64w + 32 + l
// (two coalesced 128-byte loads), and two __ballot_sync calls give the low and
// high 32 bits. Lane l's vote lands on bit l of the ballot, which is exactly
// the unit order above. A grid-stride loop over all batch * words_per_sample
// words keeps the loop condition warp-uniform, so every lane reaches each
// ballot with the full mask. blockDim.x must be a multiple of 32; the launch
// uses 256 (CODES_THREADS).
#define CODES_THREADS 256
extern "C" __global__ void __launch_bounds__(CODES_THREADS) pack_signs(const float* __restrict__ x,
                                      u64* __restrict__ out,
                                      u64 batch, u64 n, u64 words_per_sample,
                                      u64 row_stride, u64 word_offset) {
    const u32 lane = threadIdx.x & 31u;
    const u64 warps_per_grid = ((u64)gridDim.x * blockDim.x) >> 5;
    const u64 total = batch * words_per_sample;
    for (u64 g = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; g < total;
         g += warps_per_grid) {
        const u64 b = g / words_per_sample;
        const u64 w = g - b * words_per_sample;
        const float* row = x + b * n;
        const u64 u_lo = w * 64 + lane;
        const u64 u_hi = u_lo + 32;
        // Units past n are padding: vote 0 without reading past the sample.
        const bool lo = u_lo < n && row[u_lo] > 0.0f;
        const bool hi = u_hi < n && row[u_hi] > 0.0f;
        const u32 bits_lo = __ballot_sync(0xffffffffu, lo);
        const u32 bits_hi = __ballot_sync(0xffffffffu, hi);
        if (lane == 0) {
            out[b * row_stride + word_offset + w] = (u64)bits_lo | ((u64)bits_hi << 32);
        }
    }
}
