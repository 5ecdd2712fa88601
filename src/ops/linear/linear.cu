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

// Backward (twin of the CPU backward in src/ops/linear/cpu.rs), same
// layouts plus dy: f32 [n][outputs], dx like x, dw like w, db like bias.
// Every sum runs in f64 in index order, one thread per output value (no
// atomics, deterministic), rounded once to f32.
//   linear_bwd_input : dx[b][i] = (accumulate ? dx : 0) + sum_o dy[b][o] * w[i][o]
//   linear_bwd_params: thread g < inputs*outputs: dw[i][o] = sum_b x[b][i] * dy[b][o]
//                      (g = i*outputs + o); thread inputs*outputs + o:
//                      db[o] = sum_b dy[b][o]. Grid-stride over both ranges.
extern "C" __global__ void linear_bwd_input(const float* __restrict__ dy,
                                            const float* __restrict__ w, float* __restrict__ dx,
                                            u64 n, u64 inputs, u64 outputs, int accumulate) {
    const u64 total = n * inputs;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 b = g / inputs;
        const u64 i = g - b * inputs;
        const float* dyb = dy + b * outputs;
        const float* wi = w + i * outputs;
        double acc = 0.0;
        for (u64 o = 0; o < outputs; ++o) acc += (double)dyb[o] * (double)wi[o];
        const float v = (float)acc;
        dx[g] = accumulate ? dx[g] + v : v;
    }
}

extern "C" __global__ void linear_bwd_params(const float* __restrict__ x,
                                             const float* __restrict__ dy,
                                             float* __restrict__ dw, float* __restrict__ db,
                                             u64 n, u64 inputs, u64 outputs) {
    const u64 nw = inputs * outputs;
    const u64 total = nw + outputs;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        double acc = 0.0;
        if (g < nw) {
            const u64 i = g / outputs;
            const u64 o = g - i * outputs;
            for (u64 b = 0; b < n; ++b) acc += (double)x[b * inputs + i] * (double)dy[b * outputs + o];
            dw[g] = (float)acc;
        } else {
            const u64 o = g - nw;
            for (u64 b = 0; b < n; ++b) acc += (double)dy[b * outputs + o];
            db[o] = (float)acc;
        }
    }
}
