// Softmax cross-entropy, forward and backward in one kernel (twin of the
// CPU code in src/ops/softmax_ce/cpu.rs).
//
// Layout: logits f32 [B][K] row-major, labels i32 [B] (class of sample b,
// 0 <= label < K), loss f32 [B], correct i32 [B], dlogits f32 [B][K],
// mean_loss f32 [1].
// Per sample b, in f64, with mx = max_k logits[b][k]:
//   s = sum_k exp(l_k - mx),  lse = mx + log(s)
//   loss[b] = lse - l[label]                        (= -log softmax[label])
//   dlogits[b][k] = (exp(l_k - mx) / s - [k == label]) / B
//   correct[b] = (argmax_k l_k == label), ties to the lowest index
// mean_loss[0] = (sum_b loss[b]) / B, i.e. the gradient above is that of
// the mean loss. A label outside [0, K) gives loss NaN, correct 0 and a NaN
// gradient row (the kernel cannot report an error; the caller's CPU-side
// labels are checked before upload).
//
// One block of 256 threads (grid 1): thread t takes samples t, t + 256, ...
// and keeps its f64 loss sum; the 256 sums are then added by a fixed tree:
// deterministic. The batch is small (a training mini-batch), so one block
// suffices.

#define SCE_THREADS 256

extern "C" __global__ void __launch_bounds__(SCE_THREADS)
    softmax_ce_fwd_bwd(const float* __restrict__ logits, const int* __restrict__ labels,
                       float* __restrict__ loss, int* __restrict__ correct,
                       float* __restrict__ dlogits, float* __restrict__ mean_loss, int B, int K) {
    __shared__ double red[SCE_THREADS];
    const int t = threadIdx.x;
    const double inv_b = 1.0 / (double)B;
    double sum = 0.0;
    for (int b = t; b < B; b += SCE_THREADS) {
        const float* l = logits + (u64)b * K;
        float* d = dlogits + (u64)b * K;
        const int label = labels[b];
        int arg = 0;
        float mx = l[0];
        for (int k = 1; k < K; ++k) {
            if (l[k] > mx) {
                mx = l[k];
                arg = k;
            }
        }
        double s = 0.0;
        for (int k = 0; k < K; ++k) s += exp((double)l[k] - (double)mx);
        if (label < 0 || label >= K) {
            const float nan = __int_as_float(0x7fc00000);
            loss[b] = nan;
            correct[b] = 0;
            for (int k = 0; k < K; ++k) d[k] = nan;
            sum += (double)nan;
            continue;
        }
        const double lse = (double)mx + log(s);
        const double lb = lse - (double)l[label];
        loss[b] = (float)lb;
        correct[b] = arg == label ? 1 : 0;
        sum += lb;
        for (int k = 0; k < K; ++k) {
            const double p = exp((double)l[k] - (double)mx) / s;
            d[k] = (float)((p - (k == label ? 1.0 : 0.0)) * inv_b);
        }
    }
    red[t] = sum;
    __syncthreads();
    for (int half = SCE_THREADS / 2; half > 0; half >>= 1) {
        if (t < half) red[t] += red[t + half];
        __syncthreads();
    }
    if (t == 0) mean_loss[0] = (float)(red[0] * inv_b);
}
