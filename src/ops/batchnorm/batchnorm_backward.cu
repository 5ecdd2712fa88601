// BatchNorm2d backward, training mode (twin of the CPU backward in
// src/ops/batchnorm/cpu.rs; forward in batchnorm.cu).
//
// With M = rows = N*H*W values per channel, x̂ = (x − mean) · inv_std (the
// forward's batch mean and 1/sqrt(biased var + eps)):
//   dβ[c] = Σ dy,   dγ[c] = Σ dy · x̂   (sums over the rows of channel c)
//   dx    = γ · inv_std / M · (M · dy − dβ − x̂ · dγ)
//         = γ · inv_std · (dy − dβ/M − x̂ · dγ/M)
//
// Layout (32-bit indices: the launch checks rows * C + 2^24 < 2^31):
//   x, dy, dx : f32 [rows][C] (NHWC, channel innermost)
//   pdy, pdyx : f64 [parts][C] per-part channel sums of dy and dy·x̂; part p
//               covers rows [p*rows_per_part, min((p+1)*rows_per_part, rows))
//   mean, inv_std, gamma, dgamma, dbeta : f32 [C]
//
// Three kernels, deterministic like the forward statistics (fixed
// partition, fixed reduction order, f64 partials, no atomics):
//   bnb_partial_sums : grid (parts, ceil(C/32)), block (32, 8): thread
//                      (tx, ty) sums channel blockIdx.y*32 + tx over rows
//                      r0 + ty, r0 + ty + 8, ... in f64 (x̂ in f64), the 8
//                      partials added in ty order.
//   bnb_finalize     : grid C, block 256: the parts of channel c summed
//                      strided by thread, then by a fixed tree; writes
//                      dβ, dγ (rounded to f32).
//   bnb_dx           : dx = (accumulate ? dx : 0) + γ·inv_std·(dy − dβ·(1/M)
//                      − x̂·dγ·(1/M)), elementwise in f32, grid-stride.

#define BNB_TX 32
#define BNB_TY 8
#define BNB_FIN_THREADS 256

extern "C" __global__ void __launch_bounds__(BNB_TX* BNB_TY)
    bnb_partial_sums(const float* __restrict__ x, const float* __restrict__ dy,
                     const float* __restrict__ mean, const float* __restrict__ inv_std, int rows,
                     int C, int rows_per_part, double* __restrict__ pdy,
                     double* __restrict__ pdyx) {
    __shared__ double ss[BNB_TY][BNB_TX];
    __shared__ double qq[BNB_TY][BNB_TX];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.y * BNB_TX + tx;
    const int p = blockIdx.x;
    const int r0 = p * rows_per_part;
    const int r1 = min(r0 + rows_per_part, rows);
    double s = 0.0, q = 0.0;
    if (c < C) {
        const double m = (double)mean[c];
        const double is = (double)inv_std[c];
        for (int r = r0 + ty; r < r1; r += BNB_TY) {
            const double g = (double)dy[r * C + c];
            s += g;
            q += g * (((double)x[r * C + c] - m) * is);
        }
    }
    ss[ty][tx] = s;
    qq[ty][tx] = q;
    __syncthreads();
    if (ty == 0 && c < C) {
        double a = 0.0, b = 0.0;
        for (int i = 0; i < BNB_TY; ++i) {
            a += ss[i][tx];
            b += qq[i][tx];
        }
        pdy[p * C + c] = a;
        pdyx[p * C + c] = b;
    }
}

extern "C" __global__ void __launch_bounds__(BNB_FIN_THREADS)
    bnb_finalize(const double* __restrict__ pdy, const double* __restrict__ pdyx, int parts,
                 int C, float* __restrict__ dgamma, float* __restrict__ dbeta) {
    const int c = blockIdx.x;
    const int t = threadIdx.x;
    double s = 0.0, q = 0.0;
    for (int p = t; p < parts; p += BNB_FIN_THREADS) {
        s += pdy[p * C + c];
        q += pdyx[p * C + c];
    }
    dn_block_sum2<BNB_FIN_THREADS>(s, q);
    if (t == 0) {
        dbeta[c] = (float)s;
        dgamma[c] = (float)q;
    }
}

// dx may not alias x or dy.
extern "C" __global__ void __launch_bounds__(256)
    bnb_dx(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
           int total, int C, const float* __restrict__ mean, const float* __restrict__ inv_std,
           const float* __restrict__ gamma, const float* __restrict__ dgamma,
           const float* __restrict__ dbeta, float inv_rows, int accumulate) {
    const int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = i % C;
        const float is = inv_std[c];
        const float xhat = (x[i] - mean[c]) * is;
        const float v = gamma[c] * is * (dy[i] - dbeta[c] * inv_rows - xhat * (dgamma[c] * inv_rows));
        dx[i] = accumulate ? dx[i] + v : v;
    }
}
