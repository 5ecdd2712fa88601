// Parameter initialisation (twin of src/net/init.rs).
// Layout: `out` is one parameter tensor of `len` f32 in the op's own weight
// layout; element i = dn_uniform_pm1(key, i) * bound, where key is
// stream_key(seed, name_id(name)) computed on the host.
// __fmul_rn keeps the product a single IEEE multiply (no contraction).
extern "C" __global__ void init_uniform(float* out, u64 len, u64 key, float bound) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < len;
         i += (u64)gridDim.x * blockDim.x) {
        out[i] = __fmul_rn(dn_uniform_pm1(key, i), bound);
    }
}

// Every parameter of a network in one launch (twin of src/net/init.rs
// `init_params`, bit for bit).
//
// Layout:
//   out   : f32 parameter buffer; parameter e occupies
//           out[table[4e] .. table[4e] + table[4e + 1]).
//   table : u64 [count][4]: offset, len, key, rule. rule's low 32 bits are
//           an f32 bit pattern v; bit 32 set means Const(v) (every element
//           v), clear means Uniform with bound v (element i =
//           dn_uniform_pm1(key, i) * v, as init_uniform); bit 33 set means
//           "leave": the host uploads this parameter (a Normal init).
// One block per parameter (blockIdx.x = e, grid-stride over blockIdx.y for
// large counts), threads stride over its elements.
extern "C" __global__ void init_params_table(float* __restrict__ out,
                                             const u64* __restrict__ table,
                                             u64 count) {
    for (u64 e = blockIdx.x; e < count; e += gridDim.x) {
        const u64 offset = table[4 * e];
        const u64 len = table[4 * e + 1];
        const u64 key = table[4 * e + 2];
        const u64 rule = table[4 * e + 3];
        const float v = __uint_as_float((u32)(rule & 0xffffffffULL));
        const bool is_const = (rule >> 32) & 1ULL;
        if ((rule >> 33) & 1ULL) {
            continue;
        }
        for (u64 i = threadIdx.x; i < len; i += blockDim.x) {
            out[offset + i] = is_const ? v : __fmul_rn(dn_uniform_pm1(key, i), v);
        }
    }
}
