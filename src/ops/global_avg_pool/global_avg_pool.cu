// Global average pooling (twin of src/ops/global_avg_pool/cpu.rs).
//
// Layout: x is f32 NHWC [n][h][w][c] contiguous, hw = h * w; y is f32
// [n][c] (the [n, 1, 1, c] output). y[b][ch] = (f32)(sum_p x[b][p][ch] / hw)
// with the sum in f64 over pixels p = 0, 1, ..., hw - 1 in order.
//
// One thread per output (b, ch), grid-stride over n * c: the reduction
// order is fixed (sequential over pixels), so the result is deterministic
// and equals the CPU's bit for bit. Consecutive threads take consecutive
// channels, so each pixel's channel run is read coalesced.

extern "C" __global__ void global_avg_pool_nhwc(const float* __restrict__ x,
                                                float* __restrict__ y, u64 n, u64 hw, u64 c) {
    const u64 total = n * c;
    const u64 step = (u64)gridDim.x * blockDim.x;
    const double inv = 1.0 / (double)hw;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 b = g / c;
        const u64 ch = g - b * c;
        const float* xs = x + b * hw * c + ch;
        double acc = 0.0;
        for (u64 p = 0; p < hw; ++p) {
            acc += (double)xs[p * c];
        }
        y[g] = (float)(acc * inv);
    }
}

// Backward, the exact twin of the CPU backward in
// src/ops/global_avg_pool/cpu.rs (an f32 division, then the f32 sum of
// the gradients of a tensor read twice):
//   dx[b][p][ch] = (accumulate ? dx : 0) + dy[b][ch] / (f32)hw
// dy: f32 [n][c], dx: f32 [n][hw][c] (NHWC), hw < 2^24 (exact in f32).
// One thread per dx element, grid-stride.
extern "C" __global__ void global_avg_pool_backward_nhwc(const float* __restrict__ dy,
                                                         float* __restrict__ dx, u64 n, u64 hw,
                                                         u64 c, int accumulate) {
    const u64 total = n * hw * c;
    const u64 step = (u64)gridDim.x * blockDim.x;
    const float hw_f = (float)hw;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 ch = g % c;
        const u64 b = g / (hw * c);
        const float v = __fdiv_rn(dy[b * c + ch], hw_f);
        dx[g] = accumulate ? __fadd_rn(dx[g], v) : v;
    }
}
