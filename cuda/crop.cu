// Crop (twin of src/ops/crop/cpu.rs): a copy, bit-exact.
//
// Layout: NHWC, flat. x is [n][ih][iw][ic], y is [n][h][w][c];
// y[n][i][j][k] = x[n][top + i][left + j][c0 + k]. One thread per output
// element, grid-stride.

extern "C" __global__ void crop(const float* __restrict__ x, float* __restrict__ y, u64 len,
                                u64 ih, u64 iw, u64 ic, u64 top, u64 left, u64 c0, u64 h,
                                u64 w, u64 c) {
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 o = (u64)blockIdx.x * blockDim.x + threadIdx.x; o < len; o += step) {
        const u64 k = o % c;
        const u64 pix = o / c;
        const u64 j = pix % w;
        const u64 r = pix / w;
        const u64 i = r % h;
        const u64 n = r / h;
        y[o] = x[((n * ih + top + i) * iw + left + j) * ic + c0 + k];
    }
}
