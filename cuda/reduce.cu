// Fixed-order sums of split partials: the last step of a weight gradient
// computed in parts (the conv's split-K GEMM, the axis conv's per-sample
// sums). Twin: the f64 loops over the parts in the ops' CPU code.
//
// Layout: part is f32 [parts][len]; out is f32 [len];
//   out[i] = (float) sum over p = 0, 1, ..., parts - 1 of part[p * len + i],
// accumulated in f64 in that order and rounded once. One thread per i,
// grid-stride, no atomics: the same bits on every run and every GPU.
extern "C" __global__ void sum_parts_f64(const float* __restrict__ part, float* __restrict__ out,
                                         u64 len, u64 parts) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        double s = 0.0;
        for (u64 p = 0; p < parts; ++p) s += (double)part[p * len + i];
        out[i] = (float)s;
    }
}
