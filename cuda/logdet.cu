// Log-determinant by Cholesky in f64 (twin of src/score/logdet.rs
// `cholesky_logdet`, same singularity rule and the same arithmetic).
//
// Layout:
//   a      : f64 [count][n][n], row-major; matrix m starts at a + m * n * n.
//            Only the lower triangle (diagonal included) is read as input.
//            The kernel stores the factor there transposed: on return the
//            upper triangle and the diagonal of each matrix hold Lᵀ
//            (a[k][i] = L[i][k] for k <= i); the strict lower triangle is
//            left as it was.
//   logdet : f64 [count]: ln det A when ok[m] = 1, -inf otherwise.
//   ok     : i32 [count]: 1 if A is positive definite by the rule below, else 0.
//
// Rule (as on the CPU): not positive definite when any lower-triangle entry
// is not finite, when max_i A_ii <= 0, or when a pivot p_j <= tol with
// tol = ((n * eps) * 16) * max_i A_ii, eps = 2^-52 (NaN pivots fail too).
//
// One block per matrix, one thread per row (n <= blockDim.x <= 1024).
// Left-looking, column by column: thread i >= j computes
//   s_i = A[i][j] - dot(L[i][0..j], L[j][0..j])
// with the CPU's summation order (four interleaved partial sums, combined as
// (s0 + s1) + (s2 + s3), then the tail), using __dmul_rn / __dadd_rn so that
// no multiply-add is contracted into an FMA. s_j is the pivot;
// L[i][j] = s_i / sqrt(p_j). So the pivots and L match the CPU bit for bit;
// only ln() may differ in the last ulp. Lᵀ is stored so that the reads
// L[i][k] = a[k * n + i] of consecutive threads are consecutive in memory.

#define LD_MAX_THREADS 1024

__device__ __forceinline__ double ld_neg_inf() {
    return __longlong_as_double((long long)0xfff0000000000000ULL);
}

__device__ __forceinline__ bool ld_is_finite(double v) {
    // Exponent bits all ones means inf or NaN.
    return ((u64)__double_as_longlong(v) & 0x7ff0000000000000ULL) != 0x7ff0000000000000ULL;
}

// Σ_k x[k * n] * y[k * n] for k < len, in the CPU `dot` order.
__device__ __forceinline__ double ld_dot(const double* x, const double* y, u32 len, u32 n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    u32 k = 0;
    for (; k + 4 <= len; k += 4) {
        s0 = __dadd_rn(s0, __dmul_rn(x[(u64)(k + 0) * n], y[(u64)(k + 0) * n]));
        s1 = __dadd_rn(s1, __dmul_rn(x[(u64)(k + 1) * n], y[(u64)(k + 1) * n]));
        s2 = __dadd_rn(s2, __dmul_rn(x[(u64)(k + 2) * n], y[(u64)(k + 2) * n]));
        s3 = __dadd_rn(s3, __dmul_rn(x[(u64)(k + 3) * n], y[(u64)(k + 3) * n]));
    }
    double t = __dadd_rn(__dadd_rn(s0, s1), __dadd_rn(s2, s3));
    for (; k < len; ++k) {
        t = __dadd_rn(t, __dmul_rn(x[(u64)k * n], y[(u64)k * n]));
    }
    return t;
}

// __launch_bounds__: the launch may use 1024 threads, so the compiler must
// keep the kernel within 64 registers per thread or the launch would fail.
extern "C" __global__ void __launch_bounds__(LD_MAX_THREADS) cholesky_logdet(double* __restrict__ a, u32 n,
                                           double* __restrict__ logdet,
                                           int* __restrict__ ok) {
    __shared__ double part_max[LD_MAX_THREADS];
    __shared__ int part_bad[LD_MAX_THREADS];
    __shared__ double sh_tol;
    __shared__ double sh_pivot;
    __shared__ int sh_fail;

    const u32 i = threadIdx.x;
    double* m = a + (u64)blockIdx.x * n * n;

    // Pass 1: every lower-triangle entry finite? max of the diagonal?
    double dmax = ld_neg_inf();
    int bad = 0;
    if (i < n) {
        for (u32 k = 0; k <= i; ++k) {
            bad |= !ld_is_finite(m[(u64)i * n + k]);
        }
        dmax = m[(u64)i * n + i];
    }
    part_max[i] = dmax;
    part_bad[i] = bad;
    __syncthreads();
    if (i == 0) {
        double mx = ld_neg_inf();
        int anybad = 0;
        for (u32 t = 0; t < blockDim.x; ++t) {
            anybad |= part_bad[t];
            mx = part_max[t] > mx ? part_max[t] : mx;
        }
        sh_fail = (n > 0) && (anybad || !(mx > 0.0));
        // f64::EPSILON = 2^-52; same left-to-right product as the CPU.
        sh_tol = __dmul_rn(__dmul_rn(__dmul_rn((double)n, 2.220446049250313080847e-16), 16.0), mx);
    }
    __syncthreads();

    double acc = 0.0;  // Σ ln p_j, kept by thread 0 in column order
    const double tol = sh_tol;
    for (u32 j = 0; j < n && !sh_fail; ++j) {
        double s = 0.0;
        if (i >= j && i < n) {
            // Column i of Lᵀ is row i of L: a[k * n + i], k < j.
            s = __dadd_rn(m[(u64)i * n + j], -ld_dot(m + i, m + j, j, n));
        }
        if (i == j) {
            sh_pivot = s;
        }
        __syncthreads();
        const double p = sh_pivot;
        // `!(p > tol)` also catches NaN, like partial_cmp on the CPU.
        if (!(p > tol)) {
            if (i == 0) {
                sh_fail = 1;
            }
            __syncthreads();
            break;
        }
        const double d = __dsqrt_rn(p);
        if (i == 0) {
            acc += log(p);
        }
        if (i > j && i < n) {
            m[(u64)j * n + i] = __ddiv_rn(s, d);
        } else if (i == j) {
            m[(u64)j * n + j] = d;
        }
        // Column j of Lᵀ (row j of the stored matrix) must be complete, and
        // every thread must have read sh_pivot, before the next column.
        __syncthreads();
    }
    if (i == 0) {
        const bool good = !sh_fail;
        logdet[blockIdx.x] = good ? acc : ld_neg_inf();
        ok[blockIdx.x] = good ? 1 : 0;
    }
}
