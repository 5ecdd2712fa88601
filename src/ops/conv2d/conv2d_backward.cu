// 2-d convolution backward: gradient of the input (dx) and of the weight
// (dw), as tiled implicit GEMMs (twin of the CPU backward in
// src/ops/conv2d/cpu.rs; forward in conv2d.cu, whose layouts these share).
//
// Layout (all f32, row-major, 32-bit indices: the launch checks that every
// buffer has fewer than 2^31 elements):
//   x  : [N][H][W][CIN]              NHWC forward input
//   dx : [N][H][W][CIN]              its gradient
//   w  : [KH][KW][CIN_G][COUT]       forward weight
//   dw : [KH][KW][CIN_G][COUT]       its gradient
//   dy : [N][OH][OW][COUT]           gradient of the forward output
//   part : [splits][KH*KW*CIN_G*COUT]  per-split partial dw (scratch)
// Forward (conv2d.cu): y[img][oy][ox][g*COUT_G + co] = sum over ky, kx, ci
// of x[img][oy*S - P + ky*D][ox*S - P + kx*D][g*CIN_G + ci] *
// w[ky][kx][ci][g*COUT_G + co], zero outside the image.
//
// dx, GEMM of group g = blockIdx.z:
//   DX_g[m][n] = sum_k A[m][k] * B[k][n]
//   m = (img * H + iy) * W + ix         input pixel,  0 <= m < N*H*W
//   n = ci                              group-local input channel, < CIN_G
//   k = (ky * KW + kx) * COUT_G + co    0 <= k < KH*KW*COUT_G
//   A[m][k] = dy[img][oy][ox][g*COUT_G + co] where oy = (iy + P - ky*D) / S
//             when that division is exact and 0 <= oy < OH (same for ox),
//             else 0 (no output pixel reads x[iy][ix] through this tap)
//   B[k][n] = w[((ky*KW + kx)*CIN_G + n)*COUT + g*COUT_G + co]
//   dx[m*CIN + g*CIN_G + n] = (accumulate ? dx[..] : 0) +
//                             (mask && !(xmask[..] > 0) ? 0 : DX_g[m][n])
//   The mask fuses the backward of a ReLU in front of the conv (xmask is
//   the ReLU's input: the gradient passes where it was > 0).
//
// dw, GEMM of group g = blockIdx.z, split-K over output pixels:
//   DW_g[r][n] = sum_k A[r][k] * B[k][n]
//   r = (ky * KW + kx) * CIN_G + ci     weight row,  0 <= r < KH*KW*CIN_G
//   n = co                              group-local output channel
//   k = (img * OH + oy) * OW + ox       output pixel, split s covers
//                                       [s*pix_per_split, (s+1)*pix_per_split)
//   A[r][k] = x[img][oy*S - P + ky*D][ox*S - P + kx*D][g*CIN_G + ci]
//             (0 outside the image, max(v, 0) when relu_input: the forward
//             read relu(x))
//   B[k][n] = dy[k*COUT + g*COUT_G + n]
//   part[s][r*COUT + g*COUT_G + n] = split s's sum, each written by one block;
//   sum_parts_f64 (cuda/reduce.cu) then sums the splits in order s = 0, 1,
//   ... in f64: dw = (float) sum_s part[s][i]. No atomics, so dw is the same on
//   every run and every GPU (the split size depends on the shape only).
//
// Tiling (both GEMMs): 256 threads compute a BM x BN tile (BN = 16, 32 or
// 64 by entry point, BM = 4096 / BN: each thread owns a 4 x 4 register tile
// at rows tm*4.., cols tn*4.., tm = tid / (BN/4), tn = tid % (BN/4)); K
// advances in tiles of 8, A stored transposed As[k][m] (row padded by 4
// floats), B as Bs[k][n], double-buffered through registers with one
// barrier per K tile, like conv2d.cu. The element each thread loads is
// chosen so that consecutive threads read consecutive addresses: along k
// for dx (co is innermost in dy and w), along m / n for dw (ci innermost in
// x, co innermost in dy). fp32 fmaf accumulation in k order.

#define CB_THREADS 256
#define CB_BK 8

// acc (4 x 4 per thread) = A[m0.., kb..ke) * B[kb..ke), ..n0..] for one
// BM x BN tile. load_a(ml, k) returns A[m0 + ml][k] (0 past the rows),
// load_b(k, nl) returns B[k][n0 + nl] (0 past the columns); k < ke is
// checked here. A_MFAST / B_NFAST pick the loading order (see above).
template <int BN, bool A_MFAST, bool B_NFAST, class LoadA, class LoadB>
__device__ __forceinline__ void cb_gemm_tile(int kb, int ke, const LoadA& load_a,
                                             const LoadB& load_b, float (&acc)[4][4]) {
    constexpr int BM = CB_THREADS * 16 / BN;  // 256, 128, 64
    constexpr int AS_LD = BM + 4;
    constexpr int THREADS_N = BN / 4;
    constexpr int A_PER_THREAD = BM * CB_BK / CB_THREADS;  // 8, 4, 2 (exact)
    constexpr int B_ELEMS = CB_BK * BN;
    constexpr int B_PER_THREAD = (B_ELEMS + CB_THREADS - 1) / CB_THREADS;

    __shared__ __align__(16) float As[2][CB_BK][AS_LD];
    __shared__ __align__(16) float Bs[2][CB_BK][BN];

    const int tid = threadIdx.x;
    float a_reg[A_PER_THREAD];
    float b_reg[B_PER_THREAD];

    // Tile element e of A: (ml, kl); of B: (kl, nl).
    auto a_ml = [&](int e) { return A_MFAST ? e % BM : e / CB_BK; };
    auto a_kl = [&](int e) { return A_MFAST ? e / BM : e % CB_BK; };
    auto b_kl = [&](int e) { return B_NFAST ? e / BN : e % CB_BK; };
    auto b_nl = [&](int e) { return B_NFAST ? e % BN : e / CB_BK; };

    auto load_tile = [&](int k0) {
#pragma unroll
        for (int i = 0; i < A_PER_THREAD; ++i) {
            const int e = tid + i * CB_THREADS;
            const int k = k0 + a_kl(e);
            a_reg[i] = k < ke ? load_a(a_ml(e), k) : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < B_PER_THREAD; ++i) {
            const int e = tid + i * CB_THREADS;
            const int k = k0 + b_kl(e);
            b_reg[i] = (e < B_ELEMS && k < ke) ? load_b(k, b_nl(e)) : 0.0f;
        }
    };
    auto store_tile = [&](int buf) {
#pragma unroll
        for (int i = 0; i < A_PER_THREAD; ++i) {
            const int e = tid + i * CB_THREADS;
            As[buf][a_kl(e)][a_ml(e)] = a_reg[i];
        }
#pragma unroll
        for (int i = 0; i < B_PER_THREAD; ++i) {
            const int e = tid + i * CB_THREADS;
            if (e < B_ELEMS) Bs[buf][b_kl(e)][b_nl(e)] = b_reg[i];
        }
    };

    const int tm = tid / THREADS_N;
    const int tn = tid % THREADS_N;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    const int ntiles = ke > kb ? (ke - kb + CB_BK - 1) / CB_BK : 0;
    if (ntiles == 0) return;  // uniform over the block: no barrier skipped by some
    load_tile(kb);
    store_tile(0);
    __syncthreads();
    for (int t = 0; t < ntiles; ++t) {
        const int cur = t & 1;
        if (t + 1 < ntiles) load_tile(kb + (t + 1) * CB_BK);
#pragma unroll
        for (int kk = 0; kk < CB_BK; ++kk) {
            const float4 a = *reinterpret_cast<const float4*>(&As[cur][kk][tm * 4]);
            const float4 b = *reinterpret_cast<const float4*>(&Bs[cur][kk][tn * 4]);
            const float av[4] = {a.x, a.y, a.z, a.w};
            const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        // Buffer cur ^ 1 was last read in iteration t - 1, which ended with
        // a barrier; the barrier below also frees `cur` for iteration t + 1.
        if (t + 1 < ntiles) store_tile(cur ^ 1);
        __syncthreads();
    }
}

template <int BN>
__device__ __forceinline__ void conv2d_bwd_input(
    const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
    const float* __restrict__ xmask, const ConvGeom geom, int mask, int accumulate) {
    CONV_GEOM_LOCALS(geom);
    constexpr int BM = CB_THREADS * 16 / BN;
    const int g = blockIdx.z;
    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int M = N * H * W;
    const int K = KH * KW * COUT_G;
    const float* __restrict__ dyg = dy + g * COUT_G;
    const float* __restrict__ wg = w + g * COUT_G;
    auto load_a = [&](int ml, int k) -> float {
        const int m = m0 + ml;
        if (m >= M) return 0.0f;
        const int ix = m % W;
        const int t = m / W;
        const int iy = t % H;
        const int img = t / H;
        const int co = k % COUT_G;
        const int tap = k / COUT_G;
        const int ky = tap / KW;
        const int kx = tap - ky * KW;
        const int ty = iy + P - ky * D;  // = oy * S when a forward output used this tap
        const int tx = ix + P - kx * D;
        if (ty < 0 || tx < 0 || ty % S != 0 || tx % S != 0) return 0.0f;
        const int oy = ty / S;
        const int ox = tx / S;
        if (oy >= OH || ox >= OW) return 0.0f;
        return dyg[((img * OH + oy) * OW + ox) * COUT + co];
    };
    auto load_b = [&](int k, int nl) -> float {
        const int n = n0 + nl;
        if (n >= CIN_G) return 0.0f;
        const int co = k % COUT_G;
        const int tap = k / COUT_G;
        return wg[(tap * CIN_G + n) * COUT + co];
    };
    float acc[4][4];
    cb_gemm_tile<BN, false, false>(0, K, load_a, load_b, acc);

    const int tm = threadIdx.x / (BN / 4);
    const int tn = threadIdx.x % (BN / 4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + tm * 4 + i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tn * 4 + j;
            if (n >= CIN_G) continue;
            const int idx = m * CIN + g * CIN_G + n;
            float v = acc[i][j];
            if (mask && !(xmask[idx] > 0.0f)) v = 0.0f;
            dx[idx] = accumulate ? dx[idx] + v : v;
        }
    }
}

template <int BN>
__device__ __forceinline__ void conv2d_bwd_weight(
    const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ part,
    const ConvGeom geom, int relu_input, int pix_per_split, int mtiles) {
    CONV_GEOM_LOCALS(geom);
    constexpr int BM = CB_THREADS * 16 / BN;
    const int g = blockIdx.z;
    const int split = blockIdx.x / mtiles;
    const int m0 = (blockIdx.x - split * mtiles) * BM;
    const int n0 = blockIdx.y * BN;
    const int R = KH * KW * CIN_G;
    const int PIX = N * OH * OW;
    const int kb = split * pix_per_split;
    const int ke = min(kb + pix_per_split, PIX);
    const float* __restrict__ xg = x + g * CIN_G;
    const float* __restrict__ dyg = dy + g * COUT_G;
    auto load_a = [&](int ml, int k) -> float {
        const int r = m0 + ml;
        if (r >= R) return 0.0f;
        const int ci = r % CIN_G;
        const int tap = r / CIN_G;
        const int ky = tap / KW;
        const int kx = tap - ky * KW;
        const int ox = k % OW;
        const int t = k / OW;
        const int oy = t % OH;
        const int img = t / OH;
        const int iy = oy * S - P + ky * D;
        const int ix = ox * S - P + kx * D;
        if (iy < 0 || iy >= H || ix < 0 || ix >= W) return 0.0f;
        const float v = xg[((img * H + iy) * W + ix) * CIN + ci];
        return relu_input ? (v > 0.0f ? v : 0.0f) : v;
    };
    auto load_b = [&](int k, int nl) -> float {
        const int n = n0 + nl;
        return n < COUT_G ? dyg[k * COUT + n] : 0.0f;
    };
    float acc[4][4];
    cb_gemm_tile<BN, true, true>(kb, ke, load_a, load_b, acc);

    float* __restrict__ out = part + split * (R * COUT) + g * COUT_G;
    const int tm = threadIdx.x / (BN / 4);
    const int tn = threadIdx.x % (BN / 4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int r = m0 + tm * 4 + i;
        if (r >= R) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tn * 4 + j;
            if (n < COUT_G) out[r * COUT + n] = acc[i][j];
        }
    }
}

#define CB_DX_PARAMS                                                                   \
    const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,  \
        const float* __restrict__ xmask, const ConvGeom geom, int mask, int accumulate
#define CB_DX_ARGS dy, w, dx, xmask, geom, mask, accumulate

// dx entry points: BN = 16 / 32 / 64 input channels per block (the launch
// picks the smallest >= CIN_G, capped at 64). Grid (ceil(N*H*W / BM),
// ceil(CIN_G / BN), groups), 256 threads. xmask is read only when mask != 0.
extern "C" __global__ void __launch_bounds__(CB_THREADS) conv2d_bwd_input_n16(CB_DX_PARAMS) {
    conv2d_bwd_input<16>(CB_DX_ARGS);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS) conv2d_bwd_input_n32(CB_DX_PARAMS) {
    conv2d_bwd_input<32>(CB_DX_ARGS);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS) conv2d_bwd_input_n64(CB_DX_PARAMS) {
    conv2d_bwd_input<64>(CB_DX_ARGS);
}

#define CB_DW_PARAMS                                                                   \
    const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ part, \
        const ConvGeom geom, int relu_input, int pix_per_split, int mtiles
#define CB_DW_ARGS x, dy, part, geom, relu_input, pix_per_split, mtiles

// dw entry points: BN = 16 / 32 / 64 output channels per block (smallest >=
// COUT_G, capped at 64). Grid (mtiles * splits, ceil(COUT_G / BN), groups)
// with mtiles = ceil(KH*KW*CIN_G / BM): block x covers weight rows
// (x % mtiles) * BM .. and split x / mtiles. 256 threads.
extern "C" __global__ void __launch_bounds__(CB_THREADS) conv2d_bwd_weight_n16(CB_DW_PARAMS) {
    conv2d_bwd_weight<16>(CB_DW_ARGS);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS) conv2d_bwd_weight_n32(CB_DW_PARAMS) {
    conv2d_bwd_weight<32>(CB_DW_ARGS);
}
extern "C" __global__ void __launch_bounds__(CB_THREADS) conv2d_bwd_weight_n64(CB_DW_PARAMS) {
    conv2d_bwd_weight<64>(CB_DW_ARGS);
}
