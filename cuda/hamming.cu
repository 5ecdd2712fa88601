// Hamming accumulation by XOR-popcount (twin of src/score/hamming.rs
// `hamming_accumulate`).
//
// Layout:
//   codes : u64 [batch][words_per_sample], sample-major (src/score/codes.rs
//           `Codes`; padding bits 0 in every sample, so they never count).
//   h     : u64 [batch][batch], row-major. For every pair i != j,
//           h[i][j] += multiplicity * popcount(codes_i XOR codes_j), and the
//           same amount is added to h[j][i]. The diagonal is not touched.
//
// Tiling: block (HT_TILE x HT_TILE) threads owns the tile of rows
// [blockIdx.y * T, +T) x columns [blockIdx.x * T, +T); only tiles on or above
// the diagonal run (blockIdx.x >= blockIdx.y), and inside a diagonal tile only
// pairs i < j write, so each unordered pair has exactly one owner thread.
// blockIdx.z splits the words of a sample into ranges of `words_per_split`
// words (a multiple of HT_K), so small batches still fill the GPU; the splits
// add into h with 64-bit integer atomics, which are exact and commutative:
// the result does not depend on the split or the launch order.
// Per step, the block stages HT_K words of its T row codes and T column codes
// in shared memory (rows padded to HT_K + 1 words so the column reads of a
// warp hit distinct banks); each thread then XOR-popcounts its pair.
// Overflow of u64 is not checked here (the CPU twin errors instead); the
// caller keeps multiplicity * N_A far below 2^64.

#define HT_TILE 16
#define HT_K 32

extern "C" __global__ void __launch_bounds__(HT_TILE * HT_TILE) hamming_accumulate(const u64* __restrict__ codes,
                                              u64* __restrict__ h,
                                              u64 batch, u64 words_per_sample,
                                              u64 words_per_split, u64 multiplicity) {
    if (blockIdx.x < blockIdx.y) {
        return;  // below the diagonal: the mirrored tile does this work
    }
    __shared__ u64 rows[HT_TILE][HT_K + 1];
    __shared__ u64 cols[HT_TILE][HT_K + 1];

    const u32 tx = threadIdx.x;
    const u32 ty = threadIdx.y;
    const u32 tid = ty * HT_TILE + tx;
    const u64 row0 = (u64)blockIdx.y * HT_TILE;
    const u64 col0 = (u64)blockIdx.x * HT_TILE;
    const u64 w_begin = (u64)blockIdx.z * words_per_split;
    u64 w_end = w_begin + words_per_split;
    if (w_end > words_per_sample) {
        w_end = words_per_sample;
    }

    u64 sum = 0;
    for (u64 w0 = w_begin; w0 < w_end; w0 += HT_K) {
        // Stage T x HT_K words of each side: element e -> (sample e / HT_K,
        // word e % HT_K), so 32 consecutive threads read 32 consecutive words
        // of one sample. Samples >= batch and words >= w_end load 0 (0 XOR 0
        // counts nothing, and those pairs are never written anyway).
        for (u32 e = tid; e < HT_TILE * HT_K; e += HT_TILE * HT_TILE) {
            const u32 r = e / HT_K;
            const u32 k = e % HT_K;
            const u64 w = w0 + k;
            const bool w_ok = w < w_end;
            rows[r][k] = (w_ok && row0 + r < batch) ? codes[(row0 + r) * words_per_sample + w] : 0ULL;
            cols[r][k] = (w_ok && col0 + r < batch) ? codes[(col0 + r) * words_per_sample + w] : 0ULL;
        }
        __syncthreads();
#pragma unroll 8
        for (u32 k = 0; k < HT_K; ++k) {
            sum += (u64)__popcll(rows[ty][k] ^ cols[tx][k]);
        }
        __syncthreads();
    }

    const u64 i = row0 + ty;
    const u64 j = col0 + tx;
    if (i < j && j < batch && sum != 0) {
        const u64 add = sum * multiplicity;
        atomicAdd(&h[i * batch + j], add);
        atomicAdd(&h[j * batch + i], add);
    }
}

// K_H = N_A - H as f64, for the Cholesky of cuda/logdet.cu (twin of
// src/score/hamming.rs `kernel_from_hamming` followed by the f64 conversion
// of `logdet_of_kernel`; every value is an integer below 2^53, so exact).
//
// Layout:
//   h   : u64 [count][batch][batch], row-major per matrix.
//   k   : f64 [count][batch][batch]; k[m][i][j] = n_units - h[m][i][j]
//         (the diagonal, where h = 0, is n_units).
//   dup : i32 [count]; set to 1 when some off-diagonal h[m][i][j] is 0 (two
//         equal codes: K_H is exactly singular, whatever Cholesky rounds
//         to). The caller zeroes it first; every writer stores the same 1,
//         so the race is benign.
extern "C" __global__ void kernel_from_hamming(const u64* __restrict__ h,
                                               double* __restrict__ k,
                                               int* __restrict__ dup,
                                               u64 count, u64 batch, u64 n_units) {
    const u64 per = batch * batch;
    const u64 total = count * per;
    for (u64 e = blockIdx.x * (u64)blockDim.x + threadIdx.x; e < total;
         e += (u64)gridDim.x * blockDim.x) {
        const u64 v = h[e];
        k[e] = (double)(n_units - v);
        const u64 r = e % per;
        if (v == 0 && r / batch != r % batch) {
            dup[e / per] = 1;
        }
    }
}
