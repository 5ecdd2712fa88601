// Shared by the conv kernel families of this folder (conv2d.cu and
// conv2d_backward.cu); build.rs prepends it to each, after common.cuh.

// The geometry of one 2-d convolution, passed by value to every conv
// kernel. Rust twin: `ops::conv2d::cuda::ConvGeom` (#[repr(C)], the same 14
// i32 fields in the same order; the launch checks the size against the
// kernel's parameter list). Groups split cin and cout into cin_g / cout_g.
struct ConvGeom {
    int n, h, w, cin;      // input [n][h][w][cin]
    int oh, ow, cout;      // output [n][oh][ow][cout]
    int kh, kw;            // kernel window
    int stride, pad, dilation;
    int cin_g, cout_g;     // channels per group
};
static_assert(sizeof(ConvGeom) == 14 * sizeof(int), "ConvGeom is 14 ints, no padding");

// The geometry as the short local names the kernels' index arithmetic uses.
#define CONV_GEOM_LOCALS(geom)                                                             \
    [[maybe_unused]] const int N = (geom).n, H = (geom).h, W = (geom).w, CIN = (geom).cin; \
    [[maybe_unused]] const int OH = (geom).oh, OW = (geom).ow, COUT = (geom).cout;         \
    [[maybe_unused]] const int KH = (geom).kh, KW = (geom).kw;                             \
    [[maybe_unused]] const int S = (geom).stride, P = (geom).pad, D = (geom).dilation;     \
    [[maybe_unused]] const int CIN_G = (geom).cin_g, COUT_G = (geom).cout_g
