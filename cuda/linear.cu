// Linear layer (twin of src/ops/linear/cpu.rs):
//   y[b][o] = (sum_i x[b][i] * w[i][o]) + bias[o]
//
// Layout: x is f32 [n][inputs] (a sample's flat NHWC values), w is f32
// [inputs][outputs] row-major (row i: the weights from input i to every
// output), bias is f32 [outputs], y is f32 [n][outputs].
//
// One thread per output (b, o), grid-stride over n * outputs; the sum runs
// over i in order from 0, each product and add rounded separately
// (__fmul_rn / __fadd_rn keep the compiler from fusing them into an FMA),
// then the bias is added: the CPU's operations in the CPU's order, so the
// result is the same bit for bit. Consecutive threads take consecutive
// outputs, so row i of w is read coalesced and x[b][i] is a broadcast.

extern "C" __global__ void linear_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                      const float* __restrict__ bias, float* __restrict__ y,
                                      u64 n, u64 inputs, u64 outputs) {
    const u64 total = n * outputs;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 b = g / outputs;
        const u64 o = g - b * outputs;
        const float* xs = x + b * inputs;
        float acc = 0.0f;
        for (u64 i = 0; i < inputs; ++i) {
            acc = __fadd_rn(acc, __fmul_rn(xs[i], w[i * outputs + o]));
        }
        y[g] = __fadd_rn(acc, bias[o]);
    }
}
