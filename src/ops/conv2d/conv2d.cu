// 2-d convolution forward as a tiled implicit GEMM (twin of
// src/ops/conv2d/cpu.rs `conv2d_forward_with` / `conv2d_forward_stats`).
//
// Layout (all f32, row-major, 32-bit indices: the launch checks that every
// buffer has fewer than 2^31 elements):
//   x : [N][H][W][CIN]              NHWC input
//   w : [KH][KW][CIN_G][COUT]       weight of tap (ky, kx), group-local input
//                                   channel ci, global output channel co
//   y : [N][OH][OW][COUT]           NHWC output, every element written once
//
// GEMM of group g = blockIdx.z (CIN_G = CIN / groups, COUT_G = COUT / groups):
//   Y_g[m][n] = sum_k A[m][k] * B[k][n]
//   m = (img * OH + oy) * OW + ox      output pixel,        0 <= m < M = N*OH*OW
//   n                                  group-local out ch,  0 <= n < COUT_G
//   k = (ky * KW + kx) * CIN_G + ci    reduction index,     0 <= k < K = KH*KW*CIN_G
//   A[m][k] = x[img][iy][ix][g*CIN_G + ci],  iy = oy*S - P + ky*D,
//             ix = ox*S - P + kx*D, 0 when (iy, ix) lies outside the image
//             (zero padding), max(v, 0) when relu_input
//   B[k][n] = w[k * COUT + g*COUT_G + n]     (the weight layout is B row-major)
//   y[m * COUT + g*COUT_G + n] = Y_g[m][n]
//
// Tiling: 256 threads compute a BM x BN block of Y_g (BN = 16, 32 or 64 by
// entry point, BM = 4096 / BN so every thread owns a 4 x 4 register tile:
// rows tm*4..tm*4+3, cols tn*4..tn*4+3 with tm = tid / (BN/4), tn = tid %
// (BN/4)). K advances in tiles of CV_BK = 8: A tile stored transposed as
// As[k][m] (row padded by 4 floats against bank conflicts, kept a multiple
// of 4 for float4 reads), B tile as Bs[k][n]. Double buffered: the next
// tile is loaded into registers while the current one is multiplied, then
// stored into the other buffer; one barrier per K tile.
//
// Accumulation is fp32 (fmaf), in k order within a thread; the sum order
// differs from the CPU's, so results agree to rounding, not bitwise.
//
// Statistics variant (conv2d_igemm_stats_*): also writes, per block row
// bx = blockIdx.x and global channel co, the f64 sum and sum of squares of
// the block's outputs of that channel:
//   psum[bx * COUT + co], psumsq[bx * COUT + co],   bx < gridDim.x
// Each (bx, co) is written by exactly one block; the per-thread partials
// (4 pixels, in f64) are combined in a fixed order, so the partials and the
// totals that bn_finalize (batchnorm.cu) reduces from them are the same on
// every run: no atomics.

#define CV_THREADS 256
#define CV_BK 8
#define CV_TM 4
#define CV_TN 4

template <int BN, bool STATS>
__device__ __forceinline__ void conv2d_igemm(
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
    double* __restrict__ psum, double* __restrict__ psumsq,
    const ConvGeom geom, int relu_input) {
    CONV_GEOM_LOCALS(geom);
    constexpr int BM = CV_THREADS * CV_TM * CV_TN / BN;  // 64, 128, 256
    constexpr int AS_LD = BM + 4;                         // padded row of As
    constexpr int THREADS_N = BN / CV_TN;                 // threads along n
    constexpr int ROWS_PER_PASS = CV_THREADS / CV_BK;     // A rows loaded per pass
    constexpr int A_PER_THREAD = BM / ROWS_PER_PASS;      // 2, 4, 8
    constexpr int B_ELEMS = CV_BK * BN;
    constexpr int B_PER_THREAD = (B_ELEMS + CV_THREADS - 1) / CV_THREADS;

    __shared__ __align__(16) float As[2][CV_BK][AS_LD];
    __shared__ __align__(16) float Bs[2][CV_BK][BN];

    const int tid = threadIdx.x;
    const int g = blockIdx.z;
    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int M = N * OH * OW;
    const int K = KH * KW * CIN_G;
    const float* __restrict__ xg = x + g * CIN_G;   // channel 0 of group g
    const float* __restrict__ wg = w + g * COUT_G;  // column 0 of group g

    // A loader: element (row ml, col kl) of the BM x BK tile, with
    // kl = tid % BK (the same for all of this thread's elements) and
    // ml = tid / BK + i * ROWS_PER_PASS. The pixel part of the gather is
    // fixed per row: precomputed once.
    const int a_kl = tid % CV_BK;
    int a_img[A_PER_THREAD];  // img * H * W * CIN, or -1 when m >= M
    int a_iy0[A_PER_THREAD];  // oy * S - P
    int a_ix0[A_PER_THREAD];  // ox * S - P
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) {
        const int m = m0 + tid / CV_BK + i * ROWS_PER_PASS;
        if (m < M) {
            const int ox = m % OW;
            const int t = m / OW;
            const int oy = t % OH;
            const int img = t / OH;
            a_img[i] = img * H * W * CIN;
            a_iy0[i] = oy * S - P;
            a_ix0[i] = ox * S - P;
        } else {
            a_img[i] = -1;
            a_iy0[i] = 0;
            a_ix0[i] = 0;
        }
    }

    float a_reg[A_PER_THREAD];
    float b_reg[B_PER_THREAD];

    // Global -> registers for the K tile starting at k0.
    auto load_tile = [&](int k0) {
        const int k = k0 + a_kl;
        const bool k_ok = k < K;
        const int ci = k_ok ? k % CIN_G : 0;
        const int tap = k_ok ? k / CIN_G : 0;
        const int ky = tap / KW;
        const int kx = tap - ky * KW;
#pragma unroll
        for (int i = 0; i < A_PER_THREAD; ++i) {
            const int iy = a_iy0[i] + ky * D;
            const int ix = a_ix0[i] + kx * D;
            float v = 0.0f;
            if (k_ok && a_img[i] >= 0 && iy >= 0 && iy < H && ix >= 0 && ix < W) {
                v = xg[a_img[i] + (iy * W + ix) * CIN + ci];
                if (relu_input) v = v > 0.0f ? v : 0.0f;
            }
            a_reg[i] = v;
        }
#pragma unroll
        for (int i = 0; i < B_PER_THREAD; ++i) {
            const int e = tid + i * CV_THREADS;
            const int kl = e / BN;
            const int nl = e % BN;
            float v = 0.0f;
            if (e < B_ELEMS && k0 + kl < K && n0 + nl < COUT_G) {
                v = wg[(k0 + kl) * COUT + n0 + nl];
            }
            b_reg[i] = v;
        }
    };
    // Registers -> shared buffer `buf`.
    auto store_tile = [&](int buf) {
#pragma unroll
        for (int i = 0; i < A_PER_THREAD; ++i) {
            As[buf][a_kl][tid / CV_BK + i * ROWS_PER_PASS] = a_reg[i];
        }
#pragma unroll
        for (int i = 0; i < B_PER_THREAD; ++i) {
            const int e = tid + i * CV_THREADS;
            if (e < B_ELEMS) Bs[buf][e / BN][e % BN] = b_reg[i];
        }
    };

    const int tm = tid / THREADS_N;
    const int tn = tid % THREADS_N;
    float acc[CV_TM][CV_TN];
#pragma unroll
    for (int i = 0; i < CV_TM; ++i)
#pragma unroll
        for (int j = 0; j < CV_TN; ++j) acc[i][j] = 0.0f;

    const int ntiles = (K + CV_BK - 1) / CV_BK;
    load_tile(0);
    store_tile(0);
    __syncthreads();
    for (int t = 0; t < ntiles; ++t) {
        const int cur = t & 1;
        // Buffer cur ^ 1 was last read in iteration t - 1, which ended
        // with a barrier: it is free to overwrite after this multiply.
        if (t + 1 < ntiles) load_tile((t + 1) * CV_BK);
#pragma unroll
        for (int kk = 0; kk < CV_BK; ++kk) {
            const float4 a = *reinterpret_cast<const float4*>(&As[cur][kk][tm * CV_TM]);
            const float4 b = *reinterpret_cast<const float4*>(&Bs[cur][kk][tn * CV_TN]);
            const float av[4] = {a.x, a.y, a.z, a.w};
            const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < CV_TM; ++i)
#pragma unroll
                for (int j = 0; j < CV_TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        if (t + 1 < ntiles) store_tile(cur ^ 1);
        __syncthreads();
    }

    // Epilogue: rows m0 + tm*4 + i, cols n0 + tn*4 + j.
#pragma unroll
    for (int i = 0; i < CV_TM; ++i) {
        const int m = m0 + tm * CV_TM + i;
        if (m < M) {
#pragma unroll
            for (int j = 0; j < CV_TN; ++j) {
                const int n = n0 + tn * CV_TN + j;
                if (n < COUT_G) y[m * COUT + g * COUT_G + n] = acc[i][j];
            }
        }
    }

    if (STATS) {
        // red[r][c]: thread row r = tm's f64 partials of block column c.
        __shared__ double red_s[BM / CV_TM][BN];
        __shared__ double red_q[BM / CV_TM][BN];
#pragma unroll
        for (int j = 0; j < CV_TN; ++j) {
            double s = 0.0, q = 0.0;
#pragma unroll
            for (int i = 0; i < CV_TM; ++i) {
                if (m0 + tm * CV_TM + i < M) {
                    const double v = (double)acc[i][j];
                    s += v;
                    q += v * v;
                }
            }
            red_s[tm][tn * CV_TN + j] = s;
            red_q[tm][tn * CV_TN + j] = q;
        }
        __syncthreads();
        if (tid < BN && n0 + tid < COUT_G) {
            double s = 0.0, q = 0.0;
            for (int r = 0; r < BM / CV_TM; ++r) {
                s += red_s[r][tid];
                q += red_q[r][tid];
            }
            const int idx = blockIdx.x * COUT + g * COUT_G + n0 + tid;
            psum[idx] = s;
            psumsq[idx] = q;
        }
    }
}

#define CV_PARAMS                                                                    \
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, \
        const ConvGeom geom, int relu_input
#define CV_ARGS geom, relu_input

// Entry points: conv2d_igemm_n{16,32,64} (block tile BN = 16/32/64 output
// channels; the launch picks the smallest >= COUT_G, capped at 64) and the
// same with `_stats` and two extra f64 outputs. Grid: (ceil(M / BM),
// ceil(COUT_G / BN), groups), block: 256 threads.
extern "C" __global__ void __launch_bounds__(CV_THREADS) conv2d_igemm_n16(CV_PARAMS) {
    conv2d_igemm<16, false>(x, w, y, nullptr, nullptr, CV_ARGS);
}
extern "C" __global__ void __launch_bounds__(CV_THREADS) conv2d_igemm_n32(CV_PARAMS) {
    conv2d_igemm<32, false>(x, w, y, nullptr, nullptr, CV_ARGS);
}
extern "C" __global__ void __launch_bounds__(CV_THREADS) conv2d_igemm_n64(CV_PARAMS) {
    conv2d_igemm<64, false>(x, w, y, nullptr, nullptr, CV_ARGS);
}
extern "C" __global__ void __launch_bounds__(CV_THREADS) conv2d_igemm_stats_n16(
    CV_PARAMS, double* __restrict__ psum, double* __restrict__ psumsq) {
    conv2d_igemm<16, true>(x, w, y, psum, psumsq, CV_ARGS);
}
extern "C" __global__ void __launch_bounds__(CV_THREADS) conv2d_igemm_stats_n32(
    CV_PARAMS, double* __restrict__ psum, double* __restrict__ psumsq) {
    conv2d_igemm<32, true>(x, w, y, psum, psumsq, CV_ARGS);
}
extern "C" __global__ void __launch_bounds__(CV_THREADS) conv2d_igemm_stats_n64(
    CV_PARAMS, double* __restrict__ psum, double* __restrict__ psumsq) {
    conv2d_igemm<64, true>(x, w, y, psum, psumsq, CV_ARGS);
}
