// Crop (twin of src/ops/crop/cpu.rs): a copy, bit-exact.
//
// Layout: NHWC, flat. x is [n][ih][iw][ic], y is [n][h][w][c];
// y[n][i][j][k] = x[n][top + i][left + j][c0 + k] (with accumulate != 0:
// y += that, the backward of a concatenation: the gradient of one input is
// a channel window of the output's). One thread per output element,
// grid-stride.

// The geometry both crop kernels take by value. Rust twin:
// `ops::crop::cuda::CropGeom` (#[repr(C)], the same 9 u64 in this order).
struct CropGeom {
    u64 ih, iw, ic;      // input [n][ih][iw][ic]
    u64 top, left, c0;   // window origin
    u64 h, w, c;         // window (output) size
};
static_assert(sizeof(CropGeom) == 9 * sizeof(u64), "CropGeom is 9 u64, no padding");

#define CROP_GEOM_LOCALS(geom)                                                      \
    [[maybe_unused]] const u64 ih = (geom).ih, iw = (geom).iw, ic = (geom).ic;      \
    [[maybe_unused]] const u64 top = (geom).top, left = (geom).left, c0 = (geom).c0; \
    [[maybe_unused]] const u64 h = (geom).h, w = (geom).w, c = (geom).c

extern "C" __global__ void crop(const float* __restrict__ x, float* __restrict__ y, u64 len,
                                const CropGeom geom, int accumulate) {
    CROP_GEOM_LOCALS(geom);
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 o = (u64)blockIdx.x * blockDim.x + threadIdx.x; o < len; o += step) {
        const u64 k = o % c;
        const u64 pix = o / c;
        const u64 j = pix % w;
        const u64 r = pix / w;
        const u64 i = r % h;
        const u64 n = r / h;
        const float v = x[((n * ih + top + i) * iw + left + j) * ic + c0 + k];
        y[o] = accumulate ? y[o] + v : v;
    }
}

// The backward of crop: dx[n][y][x][k] = dy[n][y - top][x - left][k - c0]
// inside the window, 0 outside (with accumulate != 0: dx += that). dx is
// [n][ih][iw][ic] (len elements), dy [n][h][w][c]. One thread per dx
// element, grid-stride: a gather, every element written once.
extern "C" __global__ void crop_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                         u64 len, const CropGeom geom, int accumulate) {
    CROP_GEOM_LOCALS(geom);
    const u64 step = (u64)gridDim.x * blockDim.x;
    for (u64 o = (u64)blockIdx.x * blockDim.x + threadIdx.x; o < len; o += step) {
        const u64 k = o % ic;
        const u64 pix = o / ic;
        const u64 xx = pix % iw;
        const u64 r = pix / iw;
        const u64 yy = r % ih;
        const u64 n = r / ih;
        float v = 0.0f;
        if (yy >= top && yy < top + h && xx >= left && xx < left + w && k >= c0 && k < c0 + c) {
            v = dy[((n * h + (yy - top)) * w + (xx - left)) * c + (k - c0)];
        }
        dx[o] = accumulate ? dx[o] + v : v;
    }
}
