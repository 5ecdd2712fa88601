// SGD parameter update with torch.optim.SGD's semantics (dampening 0),
// twin of the CPU update in src/train/.
//
// Layout: p, g, buf: f32 [len], one flat array of all parameters (any
// order, the same for the three); lr: f32 [steps], the learning rate of
// every step (the schedule, computed once on the host), read at lr[step],
// so a whole training loop can be queued without a host round trip.
// Per element, with separate f32 roundings (no FMA contraction, so the CPU
// twin can match bit for bit):
//   d = g + wd * p                            (skipped when wd == 0)
//   if momentum != 0:
//       buf = first ? d : momentum * buf + d  (first: the buffer's first step)
//       d   = nesterov ? d + momentum * buf : buf
//   p = p - lr[step] * d
// g is not modified. buf is neither read nor written when momentum == 0.
// Grid-stride, any geometry.

extern "C" __global__ void sgd_update(float* __restrict__ p, const float* __restrict__ g,
                                      float* __restrict__ buf, const float* __restrict__ lr,
                                      u64 step, u64 len, float momentum, float weight_decay,
                                      int nesterov, int first) {
    const float rate = lr[step];
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += stride) {
        float d = g[i];
        const float pv = p[i];
        if (weight_decay != 0.0f) d = __fadd_rn(d, __fmul_rn(weight_decay, pv));
        if (momentum != 0.0f) {
            const float b = first ? d : __fadd_rn(__fmul_rn(momentum, buf[i]), d);
            buf[i] = b;
            d = nesterov ? __fadd_rn(d, __fmul_rn(momentum, b)) : b;
        }
        p[i] = __fsub_rn(pv, __fmul_rn(rate, d));
    }
}
