// 1-d convolution along one spatial axis, forward (twin of
// axis_conv_forward in src/ops/axis_conv/cpu.rs, bit for bit).
//
// Layout (f32, row-major; AxisConvGeom of axis_conv.cuh gives the sizes):
//   x : [n][rows][len][inner][cin]          NHWC input seen as lines
//   w : [k][cin][cout]                      weight, tap t, ci, co at (t*cin + ci)*cout + co
//   y : [n][rows][out_len][inner][cout]     NHWC output seen as lines
//   y[l][o][j][co] = sum over t < k, ci < cin of
//                    xr[l][o*stride + t - pad][j][ci] * w[t][ci][co]
// (l = b*rows + r a line), where xr is relu(x) when relu_input != 0 and x
// otherwise; taps whose position o*stride + t - pad falls outside
// [0, len) are padding and skipped (not added as zeros).
//
// One thread per output element g = ((l*out_len + o)*inner + j)*cout + co,
// grid-stride. The sum runs t ascending, then ci ascending, each product
// and add rounded separately (__fmul_rn / __fadd_rn: no FMA), from 0.0f:
// the CPU's operations in the CPU's order. Consecutive threads take
// consecutive co, so w is read coalesced and x is a broadcast.
extern "C" __global__ void axis_conv_forward(const float* __restrict__ x,
                                             const float* __restrict__ w,
                                             float* __restrict__ y, const AxisConvGeom geom,
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
