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
