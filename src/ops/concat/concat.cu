// Channel concatenation (twin of src/ops/concat/cpu.rs): a copy, bit-exact.
//
// Layout: NHWC, flat. The input x is [pixels][cx], the output y is
// [pixels][cy]; x's channels go to y[p][offset .. offset + cx). One launch
// per input, one thread per input element, grid-stride.

extern "C" __global__ void concat_copy(const float* __restrict__ x, float* __restrict__ y,
                                       u64 len, u64 cx, u64 cy, u64 offset) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        const u64 p = i / cx;
        const u64 c = i - p * cx;
        y[p * cy + offset + c] = x[i];
    }
}
