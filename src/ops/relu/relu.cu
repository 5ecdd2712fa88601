// ReLU (twin of src/ops/relu/cpu.rs): y = x > 0 ? x : +0, so -0 and NaN
// both give +0, consistent with the activation code bit `x > 0`.
//
// Layout: x and y are f32 [len], flat and contiguous (elementwise, so any
// tensor shape). The _vec4 kernels read and write float4: x and y must be
// 16-byte aligned (the launch checks); the len % 4 tail is done in scalar.
// The _inplace kernels overwrite x. Grid-stride loops, any launch geometry.

__device__ __forceinline__ float dn_relu(float v) { return v > 0.0f ? v : 0.0f; }

extern "C" __global__ void relu(const float* __restrict__ x, float* __restrict__ y, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        y[i] = dn_relu(x[i]);
    }
}

extern "C" __global__ void relu_vec4(const float* __restrict__ x, float* __restrict__ y, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 n4 = len >> 2;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (u64 i = tid; i < n4; i += step) {
        float4 v = x4[i];
        v.x = dn_relu(v.x);
        v.y = dn_relu(v.y);
        v.z = dn_relu(v.z);
        v.w = dn_relu(v.w);
        y4[i] = v;
    }
    const u64 t = (n4 << 2) + tid;
    if (t < len) {
        y[t] = dn_relu(x[t]);
    }
}

extern "C" __global__ void relu_inplace(float* __restrict__ x, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        x[i] = dn_relu(x[i]);
    }
}

extern "C" __global__ void relu_inplace_vec4(float* __restrict__ x, u64 len) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const u64 n4 = len >> 2;
    float4* x4 = reinterpret_cast<float4*>(x);
    for (u64 i = tid; i < n4; i += step) {
        float4 v = x4[i];
        v.x = dn_relu(v.x);
        v.y = dn_relu(v.y);
        v.z = dn_relu(v.z);
        v.w = dn_relu(v.w);
        x4[i] = v;
    }
    const u64 t = (n4 << 2) + tid;
    if (t < len) {
        x[t] = dn_relu(x[t]);
    }
}

// ReLU backward (twin of the CPU backward in src/ops/relu/cpu.rs):
//   dx[i] = (accumulate ? dx[i] : 0) + (x[i] > 0 ? dy[i] : 0)
// x is the ReLU's input (its output gives the same mask: y > 0 iff x > 0);
// the same rule as the forward's x > 0 (a NaN or -0 input passes nothing).
// x, dy, dx: f32 [len]; dx distinct from x and dy. accumulate sums the
// gradients of a tensor read by several ops. Grid-stride.
extern "C" __global__ void relu_backward(const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dx, u64 len, int accumulate) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += step) {
        const float v = x[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + v : v;
    }
}
