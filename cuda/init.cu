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
