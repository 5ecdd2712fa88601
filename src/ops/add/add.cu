// Elementwise add (twin of src/ops/add/cpu.rs). An n-ary sum
// ((x0 + x1) + x2) + ... is one add2 followed by add_into per further
// input, so every element is summed in input order, bitwise like the CPU
// (f32 adds, no multiply, so nothing for the compiler to contract).
//
// Layout: every buffer is f32 [len], flat and contiguous (elementwise, so
// any tensor shape, NHWC included).
//   add2     : y = a + b           (y distinct from a and b)
//   add_into : y = y + x           (accumulates into y; x distinct from y)
// The _vec4 kernels move float4: every pointer must be 16-byte aligned (the
// launch checks); the len % 4 tail is done in scalar. Grid-stride loops.

extern "C" __global__ void add2(const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ y, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        y[i] = a[i] + b[i];
    }
}

extern "C" __global__ void add2_vec4(const float* __restrict__ a, const float* __restrict__ b,
                                     float* __restrict__ y, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 n4 = len >> 2;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (u64 i = tid; i < n4; i += step) {
        const float4 p = a4[i];
        const float4 q = b4[i];
        float4 r;
        r.x = p.x + q.x;
        r.y = p.y + q.y;
        r.z = p.z + q.z;
        r.w = p.w + q.w;
        y4[i] = r;
    }
    const u64 t = (n4 << 2) + tid;
    if (t < len) {
        y[t] = a[t] + b[t];
    }
}

extern "C" __global__ void add_into(float* __restrict__ y, const float* __restrict__ x, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        y[i] = y[i] + x[i];
    }
}

extern "C" __global__ void add_into_vec4(float* __restrict__ y, const float* __restrict__ x,
                                         u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 n4 = len >> 2;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (u64 i = tid; i < n4; i += step) {
        const float4 q = x4[i];
        float4 r = y4[i];
        r.x = r.x + q.x;
        r.y = r.y + q.y;
        r.z = r.z + q.z;
        r.w = r.w + q.w;
        y4[i] = r;
    }
    const u64 t = (n4 << 2) + tid;
    if (t < len) {
        y[t] = y[t] + x[t];
    }
}

// n-ary sum in one pass: y = ((x0 + x1) + x2) + ... over n_inputs <= 8
// inputs, in input order (the CPU's order, so bitwise equal). Input
// `self_pos` (or -1) is read from y itself: the in-place add, where y holds
// that input; each element is read and then written by one thread, so the
// aliasing is safe (no __restrict__ on y or the inputs). Unused input
// pointers are null. add_n_pack also packs the sign bits of y
// (dn_pack_loop, cuda/common.cuh): y is f32 [batch][n].
#define ADD_MAX_INPUTS 8

__device__ __forceinline__ float add_n_at(const float* x0, const float* x1, const float* x2,
                                          const float* x3, const float* x4, const float* x5,
                                          const float* x6, const float* x7, int n_inputs,
                                          int self_pos, const float* y, u64 i) {
    const float* xs[ADD_MAX_INPUTS] = {x0, x1, x2, x3, x4, x5, x6, x7};
    float s = 0.0f;
    for (int k = 0; k < n_inputs; ++k) {
        const float v = (k == self_pos) ? y[i] : xs[k][i];
        s = (k == 0) ? v : __fadd_rn(s, v);
    }
    return s;
}

extern "C" __global__ void add_n(const float* x0, const float* x1, const float* x2,
                                 const float* x3, const float* x4, const float* x5,
                                 const float* x6, const float* x7, int n_inputs, int self_pos,
                                 float* y, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        y[i] = add_n_at(x0, x1, x2, x3, x4, x5, x6, x7, n_inputs, self_pos, y, i);
    }
}

extern "C" __global__ void __launch_bounds__(256)
    add_n_pack(const float* x0, const float* x1, const float* x2, const float* x3,
               const float* x4, const float* x5, const float* x6, const float* x7,
               int n_inputs, int self_pos, float* y, u64 batch, u64 n, u64 wps,
               u64* __restrict__ codes, u64 row_stride, u64 word_offset) {
    dn_pack_loop(batch, n, wps, codes, row_stride, word_offset, [&](u64 i) {
        const float v = add_n_at(x0, x1, x2, x3, x4, x5, x6, x7, n_inputs, self_pos, y, i);
        y[i] = v;
        return v;
    });
}
