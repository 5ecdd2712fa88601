// Host emulation of cuda/conv2d.cu, cuda/batchnorm.cu and the backward /
// training kernels (conv2d_backward.cu, batchnorm_backward.cu, the pool
// backward of pool.cu, softmax_ce.cu, sgd.cu), for machines without a GPU:
// the kernel sources are compiled as C++ with the CUDA keywords defined
// away; a launch runs blockDim std::threads that execute the blocks one
// after another, synchronised by a std::barrier (__syncthreads, and once
// between blocks); __shared__ becomes `static` (one block at a time).
// Results are checked against naive references in double written from the
// layout definitions (forward: here; backward: cuda_emu_backward.inc).
//
//   g++ -std=c++20 -O2 -pthread -Wno-unknown-pragmas -o /tmp/cuda_emu tools/cuda_emu.cpp && /tmp/cuda_emu
//
// It checks index math, tiling, boundary and group handling of the exact
// kernel source; it cannot show data races that a barrier-per-block host
// schedule hides, nor anything about GPU speed.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>
using std::min; using std::max;
struct dim3u { unsigned x = 0, y = 0, z = 0; };
thread_local dim3u threadIdx, blockIdx;
dim3u blockDim, gridDim;
std::barrier<>* g_bar;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __restrict__
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct alignas(16) float4 { float x, y, z, w; };
inline void __syncthreads() { g_bar->arrive_and_wait(); }
// Warp votes: each warp of 32 threads has its own barrier; a ballot posts
// the thread's vote, waits for its warp, reads the 32 votes, and waits
// again so that no vote is overwritten before every lane has read it.
// Needs blockDim a multiple of 32 and warp-uniform control flow around the
// ballot, as on a GPU with a full mask.
std::vector<std::unique_ptr<std::barrier<>>>* g_warp_bars;
unsigned g_votes[1024];
inline unsigned __ballot_sync(unsigned, bool pred) {
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned warp = t / 32;
    g_votes[t] = pred ? 1u : 0u;
    (*g_warp_bars)[warp]->arrive_and_wait();
    unsigned m = 0;
    for (unsigned l = 0; l < 32; ++l) m |= g_votes[warp * 32 + l] << l;
    (*g_warp_bars)[warp]->arrive_and_wait();
    return m;
}
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
#include "../cuda/common.cuh"
#include "../cuda/conv2d.cu"
#include "../cuda/batchnorm.cu"
#include "../cuda/conv2d_backward.cu"
#include "../cuda/batchnorm_backward.cu"
#include "../cuda/pool.cu"
#include "../cuda/softmax_ce.cu"
#include "../cuda/sgd.cu"
#include "../cuda/codes.cu"
#include "../cuda/add.cu"

// One std::thread per thread of a block, created once per launch; the
// threads run the blocks one after another, with a barrier between blocks
// (every thread of a block takes the same number of __syncthreads, so the
// barrier phases stay aligned and the `static` shared arrays of one block
// are not touched by the next before all threads are done).
void launch(dim3u grid, dim3u block, std::function<void()> k) {
    gridDim = grid; blockDim = block;
    unsigned nt = block.x * block.y * block.z;
    std::barrier<> bar(nt); g_bar = &bar;
    std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
    for (unsigned w = 0; w < (nt + 31) / 32; ++w)
        warp_bars.push_back(std::make_unique<std::barrier<>>(std::min(32u, nt - 32 * w)));
    g_warp_bars = &warp_bars;
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < nt; ++t)
        ts.emplace_back([&, t] {
            threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            for (unsigned bz = 0; bz < grid.z; ++bz)
            for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = {bx, by, bz};
                k();
                bar.arrive_and_wait();
            }
        });
    for (auto& th : ts) th.join();
}

int fails = 0;
void conv_case(int N, int H, int W, int CIN, int COUT, int Kk, int S, int P, int D, int G, int relu, unsigned seed) {
    int OH = (H + 2 * P - D * (Kk - 1) - 1) / S + 1, OW = (W + 2 * P - D * (Kk - 1) - 1) / S + 1;
    int CIN_G = CIN / G, COUT_G = COUT / G, KH = Kk, KW = Kk;
    std::mt19937 rng(seed); std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(N * H * W * CIN), w(KH * KW * CIN_G * COUT), y(N * OH * OW * COUT, NAN);
    for (auto& v : x) v = u(rng);
    for (auto& v : w) v = u(rng);
    // Naive reference from the layout definition.
    std::vector<double> ref(y.size()), mag(y.size());
    for (int n = 0; n < N; ++n) for (int oy = 0; oy < OH; ++oy) for (int ox = 0; ox < OW; ++ox)
    for (int co = 0; co < COUT; ++co) {
        int g = co / COUT_G; double s = 0, a = 0;
        for (int ky = 0; ky < KH; ++ky) for (int kx = 0; kx < KW; ++kx) for (int ci = 0; ci < CIN_G; ++ci) {
            int iy = oy * S - P + ky * D, ix = ox * S - P + kx * D;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            double xv = x[((n * H + iy) * W + ix) * CIN + g * CIN_G + ci];
            if (relu && xv < 0) xv = 0;
            double wv = w[((ky * KW + kx) * CIN_G + ci) * COUT + co];
            s += xv * wv; a += std::fabs(xv * wv);
        }
        size_t i = ((size_t)(n * OH + oy) * OW + ox) * COUT + co; ref[i] = s; mag[i] = a;
    }
    int BN = COUT_G <= 16 ? 16 : COUT_G <= 32 ? 32 : 64, BM = 4096 / BN;
    int M = N * OH * OW; int gx = (M + BM - 1) / BM;
    std::vector<double> ps(gx * COUT, NAN), pq(gx * COUT, NAN);
    auto k = [&] {
        if (BN == 16) conv2d_igemm_stats_n16(x.data(), w.data(), y.data(), N, H, W, CIN, OH, OW, COUT, KH, KW, S, P, D, CIN_G, COUT_G, relu, ps.data(), pq.data());
        else if (BN == 32) conv2d_igemm_stats_n32(x.data(), w.data(), y.data(), N, H, W, CIN, OH, OW, COUT, KH, KW, S, P, D, CIN_G, COUT_G, relu, ps.data(), pq.data());
        else conv2d_igemm_stats_n64(x.data(), w.data(), y.data(), N, H, W, CIN, OH, OW, COUT, KH, KW, S, P, D, CIN_G, COUT_G, relu, ps.data(), pq.data());
    };
    launch({(unsigned)gx, (unsigned)((COUT_G + BN - 1) / BN), (unsigned)G}, {256, 1, 1}, k);
    int bad = 0;
    for (size_t i = 0; i < y.size(); ++i)
        if (!(std::fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-30)) { if (bad++ < 3) printf("  y[%zu] %g want %g\n", i, y[i], ref[i]); }
    for (int co = 0; co < COUT; ++co) {
        double s = 0, q = 0, rs = 0, rq = 0;
        for (int p = 0; p < gx; ++p) { s += ps[p * COUT + co]; q += pq[p * COUT + co]; }
        for (int m = 0; m < M; ++m) { double v = y[(size_t)m * COUT + co]; rs += v; rq += v * v; }
        if (!(std::fabs(s - rs) <= 1e-9 * (std::fabs(rq) + 1) && std::fabs(q - rq) <= 1e-9 * (rq + 1))) { if (bad++ < 3) printf("  stats ch %d: %g %g want %g %g\n", co, s, q, rs, rq); }
    }
    // BN: partial sums + finalize + normalize on y, against a direct computation.
    int rows = M, C = COUT, parts = (rows + 63) / 64;
    std::vector<double> bs(parts * C, NAN), bq(parts * C, NAN);
    std::vector<float> mean(C, NAN), istd(C, NAN), gam(C), bet(C), z(y.size(), NAN);
    for (int c = 0; c < C; ++c) { gam[c] = u(rng); bet[c] = u(rng); }
    launch({(unsigned)parts, (unsigned)((C + 31) / 32), 1}, {32, 8, 1}, [&] { bn_partial_sums(y.data(), rows, C, 64, bs.data(), bq.data()); });
    launch({(unsigned)C, 1, 1}, {256, 1, 1}, [&] { bn_finalize(bs.data(), bq.data(), parts, C, (double)rows, 1e-5f, mean.data(), istd.data()); });
    launch({(unsigned)std::min((int)((y.size() + 255) / 256), 4), 1, 1}, {256, 1, 1}, [&] { bn_normalize(y.data(), z.data(), (int)y.size(), C, mean.data(), istd.data(), gam.data(), bet.data()); });
    for (int c = 0; c < C; ++c) {
        double m = 0, v = 0;
        for (int r = 0; r < rows; ++r) m += y[(size_t)r * C + c];
        m /= rows;
        for (int r = 0; r < rows; ++r) { double d = y[(size_t)r * C + c] - m; v += d * d; }
        v /= rows; double is = 1 / std::sqrt(v + 1e-5);
        if (!(std::fabs(mean[c] - m) <= 1e-5 * (std::fabs(m) + std::sqrt(v) + 1e-3) && std::fabs(istd[c] - is) <= 1e-5 * is)) { if (bad++ < 3) printf("  bn ch %d: %g %g want %g %g\n", c, mean[c], istd[c], m, is); }
        for (int r = 0; r < rows; ++r) {
            size_t i = (size_t)r * C + c; double want = (y[i] - m) * is * gam[c] + bet[c];
            if (!(std::fabs(z[i] - want) <= 1e-4 * std::max(1.0, std::fabs(want)))) { if (bad++ < 3) printf("  bn z[%zu] %g want %g\n", i, z[i], want); }
        }
    }
    printf("%s N%d H%d W%d cin%d cout%d k%d s%d p%d d%d g%d relu%d (BN %d, %d blocks)\n", bad ? "FAIL" : "ok  ", N, H, W, CIN, COUT, Kk, S, P, D, G, relu, BN, gx);
    if (bad) fails++;
}

#include "cuda_emu_backward.inc"

#include "cuda_emu_pack.inc"

int main() {
    int cases[][11] = {
        {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0}, {2, 3, 3, 3, 5, 3, 1, 1, 1, 1, 1}, {3, 7, 7, 5, 17, 3, 2, 1, 1, 1, 0},
        {2, 13, 13, 16, 16, 3, 1, 1, 1, 1, 1}, {2, 13, 7, 17, 48, 1, 1, 0, 1, 1, 0}, {1, 13, 13, 32, 32, 5, 1, 2, 1, 1, 1},
        {2, 7, 13, 16, 16, 3, 1, 2, 2, 1, 0}, {2, 13, 13, 48, 48, 3, 2, 1, 1, 1, 1}, {2, 7, 7, 32, 32, 3, 1, 1, 1, 2, 0},
        {2, 13, 13, 16, 16, 3, 1, 1, 1, 16, 1}, {2, 13, 13, 48, 48, 5, 2, 2, 1, 48, 0}, {2, 7, 7, 17, 17, 3, 1, 1, 2, 17, 0},
        {2, 7, 7, 6, 10, 3, 2, 0, 1, 2, 1}, {1, 3, 3, 3, 16, 3, 1, 2, 1, 1, 0}, {1, 32, 32, 3, 16, 3, 1, 1, 1, 1, 0},
        {2, 5, 3, 1, 3, 1, 2, 0, 1, 1, 0}, {4, 13, 13, 32, 48, 1, 2, 0, 1, 1, 1}, {2, 13, 13, 3, 96, 3, 1, 1, 1, 1, 0},
        {2, 7, 7, 64, 130, 1, 1, 0, 1, 1, 0}, {2, 9, 9, 8, 8, 3, 1, 1, 1, 4, 1}, {2, 32, 32, 16, 16, 3, 1, 1, 1, 1, 1},
        {3, 13, 13, 5, 5, 5, 2, 1, 2, 5, 1}, {2, 1, 1, 48, 32, 3, 1, 1, 1, 1, 0}, {4, 16, 16, 32, 64, 3, 2, 1, 1, 1, 1},
    };
    unsigned seed = 1;
    for (auto& c : cases) conv_case(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], seed++);
    backward_cases(seed);
    pack_cases(seed + 100);
    printf("%d failing cases\n", fails);
    return fails != 0;
}
