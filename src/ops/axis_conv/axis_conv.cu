// 1-d convolution along one spatial axis: forward, gradient of the input
// (dx) and gradient of the weight (dw). Twins of axis_conv_forward,
// axis_conv_backward_input and axis_conv_backward_weight in
// src/ops/axis_conv/cpu.rs, bit for bit.
//
// An NHWC tensor is seen as lines [n][rows][len][inner][c], the convolution
// running along len: along H rows = 1, len = h, inner = w; along W
// rows = h, len = w, inner = 1 (`ops::axis_conv::Lines`). l = b*rows + r
// numbers the lines.
//
// Layout (f32, row-major; sizes from AxisGeom below):
//   x, xmask : [n][rows][len][inner][cin]        forward input
//   dx       : [n][rows][len][inner][cin]        its gradient
//   w, dw    : [k][cin][cout]                    weight (tap t, ci, co at
//                                                (t*cin + ci)*cout + co), its gradient
//   y, dy    : [n][rows][out_len][inner][cout]   forward output, its gradient
//   part     : [n][k][cin][cout]                 per-sample partial dw (scratch)
// Forward:
//   y[l][o][j][co] = sum over t < k, ci < cin of
//                    xr[l][o*stride + t - pad][j][ci] * w[t][ci][co]
// where xr is relu(x) when relu_input != 0 and x otherwise; taps whose
// position o*stride + t - pad falls outside [0, len) are padding and
// skipped (not added as zeros).
//
// Every sum is f32 with each product and add rounded separately
// (__fmul_rn / __fadd_rn: no FMA), from 0.0f, except the f64 sum over
// samples of dw; no atomics, so every result is the same on every run, GPU
// and launch geometry, and equals the CPU twin's, which runs the same
// operations in the same order. Every kernel is 1-d grid-stride with u64
// indices.

// The geometry every axis_conv kernel takes by value. Rust twin:
// `ops::axis_conv::cuda::AxisGeom` (#[repr(C)], the same 10 u64 in this
// order; the launch checks the size against the kernel's parameter list).
struct AxisGeom {
    u64 n, rows, len, inner;  // input  x [n][rows][len][inner][cin]
    u64 cin, out_len, cout;   // output y [n][rows][out_len][inner][cout]
    u64 k, stride, pad;       // taps, stride and zero padding along len
};
static_assert(sizeof(AxisGeom) == 10 * sizeof(u64), "AxisGeom is 10 u64, no padding");

// The geometry as the short local names the kernels' index arithmetic uses.
#define AXIS_GEOM_LOCALS(geom)                                                     \
    [[maybe_unused]] const u64 n = (geom).n, rows = (geom).rows, len = (geom).len; \
    [[maybe_unused]] const u64 inner = (geom).inner, cin = (geom).cin;             \
    [[maybe_unused]] const u64 out_len = (geom).out_len, cout = (geom).cout;       \
    [[maybe_unused]] const u64 k = (geom).k, stride = (geom).stride, pad = (geom).pad

// The ReLU a kernel applies to its input when the op fused one:
// v > 0 ? v : +0 (NaN gives 0), as ops::relu and the CPU twins.
__device__ __forceinline__ float dn_axis_relu(float v) { return v > 0.0f ? v : 0.0f; }

// Forward: one thread per output element g = ((l*out_len + o)*inner +
// j)*cout + co. The sum runs t ascending, then ci ascending. Consecutive
// threads take consecutive co, so w is read coalesced and x is a broadcast.
extern "C" __global__ void axis_conv_forward(const float* __restrict__ x,
                                             const float* __restrict__ w,
                                             float* __restrict__ y, const AxisGeom geom,
                                             int relu_input) {
    AXIS_GEOM_LOCALS(geom);
    const u64 total = n * rows * out_len * inner * cout;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 co = g % cout;
        u64 p = g / cout;
        const u64 j = p % inner;
        p /= inner;
        const u64 o = p % out_len;
        const u64 l = p / out_len;
        const float* xl = x + l * len * inner * cin;
        float acc = 0.0f;
        for (u64 t = 0; t < k; ++t) {
            const u64 q = o * stride + t;  // position in the padded line
            if (q < pad || q - pad >= len) continue;
            const float* xp = xl + ((q - pad) * inner + j) * cin;
            const float* wt = w + t * cin * cout + co;
            for (u64 ci = 0; ci < cin; ++ci) {
                const float v = relu_input ? dn_axis_relu(xp[ci]) : xp[ci];
                acc = __fadd_rn(acc, __fmul_rn(v, wt[ci * cout]));
            }
        }
        y[g] = acc;
    }
}

// dx: one thread per dx element g = ((l*len + i)*inner + j)*cin + ci,
// grid-stride. A gather over the outputs that read it: for t ascending,
// the output o with o*stride + t = i + pad (when that division is exact and
// o < out_len), then co ascending:
//   acc = sum_t sum_co dy[l][o][j][co] * w[t][ci][co]
//   dx[g] = (accumulate ? dx[g] : 0) + (mask && !(xmask[g] > 0) ? 0 : acc)
// The mask fuses the backward of the ReLU in front of the op (xmask is that
// ReLU's input: the gradient passes where it was > 0). xmask is read only
// when mask != 0.
extern "C" __global__ void axis_conv_bwd_input(const float* __restrict__ dy,
                                               const float* __restrict__ w,
                                               const float* __restrict__ xmask,
                                               float* __restrict__ dx, const AxisGeom geom,
                                               int mask, int accumulate) {
    AXIS_GEOM_LOCALS(geom);
    const u64 total = n * rows * len * inner * cin;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 ci = g % cin;
        u64 p = g / cin;
        const u64 j = p % inner;
        p /= inner;
        const u64 i = p % len;
        const u64 l = p / len;
        const float* dyl = dy + l * out_len * inner * cout;
        const u64 q = i + pad;  // position in the padded line
        float acc = 0.0f;
        for (u64 t = 0; t < k; ++t) {
            if (q < t || (q - t) % stride != 0) continue;
            const u64 o = (q - t) / stride;
            if (o >= out_len) continue;
            const float* dyp = dyl + (o * inner + j) * cout;
            const float* wr = w + (t * cin + ci) * cout;
            for (u64 co = 0; co < cout; ++co) {
                acc = __fadd_rn(acc, __fmul_rn(dyp[co], wr[co]));
            }
        }
        if (mask && !(xmask[g] > 0.0f)) acc = 0.0f;
        dx[g] = accumulate ? __fadd_rn(dx[g], acc) : acc;
    }
}

// dw, step 1: one thread per (sample b, weight e) g = b*wlen + e,
// e = (t*cin + ci)*cout + co, wlen = k*cin*cout, grid-stride. The sample's
// sum over its output pixels in memory order (r, then o, then j: oy then
// ox), padding taps skipped:
//   part[b][e] = sum_{r, o, j} xr[b*rows + r][o*stride + t - pad][j][ci]
//                              * dy[b*rows + r][o][j][co]
// xr = relu(x) when relu_input != 0 (the forward read relu(x)).
// Step 2 adds the per-sample partials in sample order in f64: the shared
// sum_parts_f64 of cuda/reduce.cu.
extern "C" __global__ void axis_conv_bwd_weight_part(const float* __restrict__ x,
                                                     const float* __restrict__ dy,
                                                     float* __restrict__ part,
                                                     const AxisGeom geom, int relu_input) {
    AXIS_GEOM_LOCALS(geom);
    const u64 wlen = k * cin * cout;
    const u64 total = n * wlen;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 b = g / wlen;
        const u64 e = g - b * wlen;
        const u64 co = e % cout;
        const u64 ci = (e / cout) % cin;
        const u64 t = e / (cout * cin);
        float acc = 0.0f;
        for (u64 r = 0; r < rows; ++r) {
            const u64 l = b * rows + r;
            const float* xl = x + l * len * inner * cin + ci;
            const float* dyl = dy + l * out_len * inner * cout + co;
            for (u64 o = 0; o < out_len; ++o) {
                const u64 q = o * stride + t;
                if (q < pad || q - pad >= len) continue;
                const u64 i = q - pad;
                for (u64 j = 0; j < inner; ++j) {
                    const float v = xl[(i * inner + j) * cin];
                    const float xv = relu_input ? dn_axis_relu(v) : v;
                    acc = __fadd_rn(acc, __fmul_rn(xv, dyl[(o * inner + j) * cout]));
                }
            }
        }
        part[g] = acc;
    }
}
