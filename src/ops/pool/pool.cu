// 2-d max / average pooling, NHWC (twin of src/ops/pool/cpu.rs).
//
// Layout: x is f32 [n][h][w][c] contiguous; y is f32 [n][oh][ow][c] with
// oh = (h + 2 pad - k) / stride + 1 (same for ow), pad <= k / 2, so every
// window holds at least one in-bounds tap. Output (b, oy, ox) covers padded
// rows [oy*stride, oy*stride + k), i.e. image rows clipped to
// [max(oy*stride, pad) - pad, min(oy*stride + k, pad + h) - pad), columns
// likewise. Taps are visited row-major, as on the CPU.
//
// mode: 0 = max (padding taps ignored, i.e. -inf; NaN propagates: a tap
//           replaces the running value when it is larger or NaN),
//       1 = average over the in-bounds taps (count_include_pad = false),
//       2 = average over k * k (count_include_pad = true).
// The average is an f32 sum in tap order times (1.0f / count): the CPU's
// operations in its order, so both kinds match the CPU bit for bit.
//
// pool_nhwc: one thread per output element, index g = ((b*oh + oy)*ow + ox)*c + ch.
// pool_nhwc_vec4: c % 4 == 0 and x, y 16-byte aligned (the launch checks);
// one thread per (output pixel, 4 channels), cv = c / 4 float4 per pixel,
// index g = ((b*oh + oy)*ow + ox)*cv + q. Grid-stride loops over both.

// The geometry every pool kernel takes by value. Rust twin:
// `ops::pool::cuda::PoolGeom` (#[repr(C)], the same 9 u64 in this order).
struct PoolGeom {
    u64 n, h, w, c;     // input [n][h][w][c]
    u64 oh, ow;         // output [n][oh][ow][c]
    u64 k, stride, pad; // square window
};
static_assert(sizeof(PoolGeom) == 9 * sizeof(u64), "PoolGeom is 9 u64, no padding");

#define POOL_GEOM_LOCALS(geom)                                                          \
    [[maybe_unused]] const u64 n = (geom).n, h = (geom).h, w = (geom).w, c = (geom).c;  \
    [[maybe_unused]] const u64 oh = (geom).oh, ow = (geom).ow;                          \
    [[maybe_unused]] const u64 k = (geom).k, stride = (geom).stride, pad = (geom).pad

#define DN_NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float dn_pool_max(float acc, float v) {
    return (v > acc || v != v) ? v : acc;
}

// Image rows (or columns) [*lo, *hi) of window o.
__device__ __forceinline__ void dn_pool_clip(u64 o, u64 stride, u64 k, u64 pad, u64 size,
                                             u64* lo, u64* hi) {
    const u64 w0 = o * stride;
    const u64 w1 = w0 + k;
    const u64 lim = pad + size;
    *lo = (w0 > pad ? w0 : pad) - pad;
    *hi = (w1 < lim ? w1 : lim) - pad;
}

extern "C" __global__ void pool_nhwc(const float* __restrict__ x, float* __restrict__ y,
                                     const PoolGeom geom, u32 mode) {
    POOL_GEOM_LOCALS(geom);
    const u64 total = n * oh * ow * c;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 ch = g % c;
        u64 p = g / c;
        const u64 ox = p % ow;
        p /= ow;
        const u64 oy = p % oh;
        const u64 b = p / oh;
        u64 y0, y1, x0, x1;
        dn_pool_clip(oy, stride, k, pad, h, &y0, &y1);
        dn_pool_clip(ox, stride, k, pad, w, &x0, &x1);
        const float* xb = x + b * h * w * c + ch;
        float acc;
        if (mode == 0) {
            acc = DN_NEG_INF;
            for (u64 yy = y0; yy < y1; ++yy) {
                for (u64 xx = x0; xx < x1; ++xx) {
                    acc = dn_pool_max(acc, xb[(yy * w + xx) * c]);
                }
            }
        } else {
            acc = 0.0f;
            for (u64 yy = y0; yy < y1; ++yy) {
                for (u64 xx = x0; xx < x1; ++xx) {
                    acc = acc + xb[(yy * w + xx) * c];
                }
            }
            u64 count = mode == 2 ? k * k : (y1 - y0) * (x1 - x0);
            if (count == 0) count = 1;
            acc = acc * (1.0f / (float)count);
        }
        y[g] = acc;
    }
}

extern "C" __global__ void pool_nhwc_vec4(const float* __restrict__ x, float* __restrict__ y,
                                          const PoolGeom geom, u32 mode) {
    POOL_GEOM_LOCALS(geom);
    const u64 cv = c >> 2;
    const u64 total = n * oh * ow * cv;
    const u64 step = (u64)gridDim.x * blockDim.x;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 q = g % cv;
        u64 p = g / cv;
        const u64 ox = p % ow;
        p /= ow;
        const u64 oy = p % oh;
        const u64 b = p / oh;
        u64 y0, y1, x0, x1;
        dn_pool_clip(oy, stride, k, pad, h, &y0, &y1);
        dn_pool_clip(ox, stride, k, pad, w, &x0, &x1);
        const float4* xb = x4 + b * h * w * cv + q;
        float4 acc;
        if (mode == 0) {
            acc.x = DN_NEG_INF;
            acc.y = DN_NEG_INF;
            acc.z = DN_NEG_INF;
            acc.w = DN_NEG_INF;
            for (u64 yy = y0; yy < y1; ++yy) {
                for (u64 xx = x0; xx < x1; ++xx) {
                    const float4 v = xb[(yy * w + xx) * cv];
                    acc.x = dn_pool_max(acc.x, v.x);
                    acc.y = dn_pool_max(acc.y, v.y);
                    acc.z = dn_pool_max(acc.z, v.z);
                    acc.w = dn_pool_max(acc.w, v.w);
                }
            }
        } else {
            acc.x = 0.0f;
            acc.y = 0.0f;
            acc.z = 0.0f;
            acc.w = 0.0f;
            for (u64 yy = y0; yy < y1; ++yy) {
                for (u64 xx = x0; xx < x1; ++xx) {
                    const float4 v = xb[(yy * w + xx) * cv];
                    acc.x = acc.x + v.x;
                    acc.y = acc.y + v.y;
                    acc.z = acc.z + v.z;
                    acc.w = acc.w + v.w;
                }
            }
            u64 count = mode == 2 ? k * k : (y1 - y0) * (x1 - x0);
            if (count == 0) count = 1;
            const float inv = 1.0f / (float)count;
            acc.x = acc.x * inv;
            acc.y = acc.y * inv;
            acc.z = acc.z * inv;
            acc.w = acc.w * inv;
        }
        y4[g] = acc;
    }
}

// Backward (twin of the CPU backward in src/ops/pool/cpu.rs), as a gather:
// one thread per dx element g = ((b*h + iy)*w + ix)*c + ch loops over the
// windows (oy, ox) that contain (iy, ix), oy then ox ascending, and sums
// their contributions in f32 in that order (no atomics, deterministic):
//   avg (mode 1, 2): dy[b][oy][ox][ch] * (1.0f / count), count as in the
//                    forward (in-bounds taps, or k * k);
//   max (mode 0):    dy[b][oy][ox][ch] when (iy, ix) is the window's argmax:
//                    the forward's scan (rows outer, columns inner, a tap
//                    replaces the running maximum when larger or NaN), so
//                    the first maximum, or the last NaN; a window of only
//                    -inf gives its first in-bounds tap (PyTorch's rule).
// dx[g] = (accumulate ? dx[g] : 0) + sum. x: f32 [n][h][w][c] (forward
// input, read for max only), dy: f32 [n][oh][ow][c], dx like x.
// Window oy covers padded rows [oy*stride, oy*stride + k): it contains
// image row iy iff oy*stride <= iy + pad < oy*stride + k.
extern "C" __global__ void pool_backward_nhwc(const float* __restrict__ x,
                                              const float* __restrict__ dy,
                                              float* __restrict__ dx, const PoolGeom geom,
                                              u32 mode, int accumulate) {
    POOL_GEOM_LOCALS(geom);
    const u64 total = n * h * w * c;
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += step) {
        const u64 ch = g % c;
        u64 p = g / c;
        const u64 ix = p % w;
        p /= w;
        const u64 iy = p % h;
        const u64 b = p / h;
        const u64 py = iy + pad, px = ix + pad;
        // First window whose end passes py: oy*stride + k > py.
        const u64 oy0 = py + 1 > k ? (py + 1 - k + stride - 1) / stride : 0;
        const u64 ox0 = px + 1 > k ? (px + 1 - k + stride - 1) / stride : 0;
        const u64 oy1 = min(py / stride + 1, oh);  // exclusive
        const u64 ox1 = min(px / stride + 1, ow);
        const float* xb = x + b * h * w * c + ch;
        const float* dyb = dy + b * oh * ow * c + ch;
        float acc = 0.0f;
        for (u64 oy = oy0; oy < oy1; ++oy) {
            u64 y0, y1;
            dn_pool_clip(oy, stride, k, pad, h, &y0, &y1);
            for (u64 ox = ox0; ox < ox1; ++ox) {
                u64 x0, x1;
                dn_pool_clip(ox, stride, k, pad, w, &x0, &x1);
                const float d = dyb[(oy * ow + ox) * c];
                if (mode == 0) {
                    float best = DN_NEG_INF;
                    u64 by = y0, bx = x0;
                    for (u64 yy = y0; yy < y1; ++yy) {
                        for (u64 xx = x0; xx < x1; ++xx) {
                            const float v = xb[(yy * w + xx) * c];
                            if (v > best || v != v) {
                                best = v;
                                by = yy;
                                bx = xx;
                            }
                        }
                    }
                    if (by == iy && bx == ix) acc = acc + d;
                } else {
                    u64 count = mode == 2 ? k * k : (y1 - y0) * (x1 - x0);
                    if (count == 0) count = 1;
                    acc = __fadd_rn(acc, __fmul_rn(d, 1.0f / (float)count));
                }
            }
        }
        dx[g] = accumulate ? dx[g] + acc : acc;
    }
}
