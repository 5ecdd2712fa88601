// BatchNorm2d, training mode (twin of src/ops/batchnorm/cpu.rs
// `batchnorm_forward` / `batchnorm_forward_from_sums`).
//
// Layout (32-bit indices: the launch checks rows * C + 2^24 < 2^31, so the
// normalisation's grid-stride index cannot overflow):
//   x, y      : f32 [rows][C], rows = N*H*W (an NHWC tensor, channel innermost)
//   psum      : f64 [parts][C]  per-part channel sums  Σ x
//   psumsq    : f64 [parts][C]  per-part channel sums  Σ x²
//               part p covers rows [p*rows_per_part, min((p+1)*rows_per_part, rows))
//               (conv2d_igemm_stats_* writes the same layout, one part per
//               block row of its grid, so bn_finalize serves both)
//   mean, inv_std, gamma, beta : f32 [C]
//
// Three kernels, all deterministic (fixed partition, fixed reduction order,
// no atomics):
//   bn_partial_sums : grid (parts, ceil(C/32)), block (32, 8). Thread (tx, ty)
//                     sums channel c = blockIdx.y*32 + tx over rows
//                     r0 + ty, r0 + ty + 8, ... in f64; the 8 partials are
//                     added in ty order.
//   bn_finalize     : grid C, block 256. Channel c's parts are summed
//                     strided by thread then by a fixed shared-memory tree;
//                     mean = Σx / count, var = max(Σx²/count − mean², 0)
//                     in f64 (biased), inv_std = 1 / sqrt(var + eps).
//   bn_normalize    : y = (x − mean) * (gamma * inv_std) + beta in f32 with
//                     separate roundings (no FMA contraction), the CPU's
//                     expression, so equal statistics give equal bits.

#define BN_TX 32
#define BN_TY 8
#define BN_FIN_THREADS 256

extern "C" __global__ void __launch_bounds__(BN_TX* BN_TY)
    bn_partial_sums(const float* __restrict__ x, int rows, int C, int rows_per_part,
                    double* __restrict__ psum, double* __restrict__ psumsq) {
    __shared__ double ss[BN_TY][BN_TX];
    __shared__ double qq[BN_TY][BN_TX];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.y * BN_TX + tx;
    const int p = blockIdx.x;
    const int r0 = p * rows_per_part;
    const int r1 = min(r0 + rows_per_part, rows);
    double s = 0.0, q = 0.0;
    if (c < C) {
        for (int r = r0 + ty; r < r1; r += BN_TY) {
            const double v = (double)x[r * C + c];
            s += v;
            q += v * v;
        }
    }
    ss[ty][tx] = s;
    qq[ty][tx] = q;
    __syncthreads();
    if (ty == 0 && c < C) {
        double a = 0.0, b = 0.0;
        for (int i = 0; i < BN_TY; ++i) {
            a += ss[i][tx];
            b += qq[i][tx];
        }
        psum[p * C + c] = a;
        psumsq[p * C + c] = b;
    }
}

extern "C" __global__ void __launch_bounds__(BN_FIN_THREADS)
    bn_finalize(const double* __restrict__ psum, const double* __restrict__ psumsq, int parts,
                int C, double count, float eps, float* __restrict__ mean,
                float* __restrict__ inv_std) {
    const int c = blockIdx.x;
    const int t = threadIdx.x;
    double s = 0.0, q = 0.0;
    for (int p = t; p < parts; p += BN_FIN_THREADS) {
        s += psum[p * C + c];
        q += psumsq[p * C + c];
    }
    dn_block_sum2<BN_FIN_THREADS>(s, q);
    if (t == 0) {
        const double m = s / count;
        const double var = fmax(q / count - m * m, 0.0);
        mean[c] = (float)m;
        inv_std[c] = (float)(1.0 / sqrt(var + (double)eps));
    }
}

__device__ __forceinline__ void bn_normalize_body(const float* x, float* y, int total, int C,
                                                  const float* __restrict__ mean,
                                                  const float* __restrict__ inv_std,
                                                  const float* __restrict__ gamma,
                                                  const float* __restrict__ beta) {
    const int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = i % C;
        const float scale = __fmul_rn(gamma[c], inv_std[c]);
        y[i] = __fadd_rn(__fmul_rn(__fsub_rn(x[i], mean[c]), scale), beta[c]);
    }
}

// x and y may not alias (use bn_normalize_inplace for that).
extern "C" __global__ void __launch_bounds__(256)
    bn_normalize(const float* __restrict__ x, float* __restrict__ y, int total, int C,
                 const float* __restrict__ mean, const float* __restrict__ inv_std,
                 const float* __restrict__ gamma, const float* __restrict__ beta) {
    bn_normalize_body(x, y, total, C, mean, inv_std, gamma, beta);
}

// x is overwritten: each element is read and written by the same thread.
extern "C" __global__ void __launch_bounds__(256)
    bn_normalize_inplace(float* x, int total, int C, const float* __restrict__ mean,
                         const float* __restrict__ inv_std, const float* __restrict__ gamma,
                         const float* __restrict__ beta) {
    bn_normalize_body(x, x, total, C, mean, inv_std, gamma, beta);
}

// bn_normalize (in place when x is null: y is read) with the sign bits of y packed into
// codes on the way (dn_pack_loop, cuda/common.cuh): the BatchNorm output a
// counted ReLU reads is coded without reading it again. x, y: f32
// [batch][n] with n = h * w * C, channel = unit % C; same arithmetic as
// bn_normalize_body. blockDim.x must be a multiple of 32.
extern "C" __global__ void __launch_bounds__(256)
    bn_normalize_pack(const float* x, float* y, u64 batch, u64 n, int C,
                      const float* __restrict__ mean, const float* __restrict__ inv_std,
                      const float* __restrict__ gamma, const float* __restrict__ beta,
                      u64 wps, u64* __restrict__ codes, u64 row_stride, u64 word_offset) {
    const float* src = x ? x : y;
    dn_pack_loop(batch, n, wps, codes, row_stride, word_offset, [&](u64 i) {
        const int c = (int)(i % (u64)C);
        const float scale = __fmul_rn(gamma[c], inv_std[c]);
        const float v = __fadd_rn(__fmul_rn(__fsub_rn(src[i], mean[c]), scale), beta[c]);
        y[i] = v;
        return v;
    });
}
