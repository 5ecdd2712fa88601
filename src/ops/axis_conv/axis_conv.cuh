// Shared by the kernel families of this folder (axis_conv.cu and
// axis_conv_backward.cu); build.rs prepends it to each, after common.cuh.

// The geometry of one 1-d convolution along a spatial axis, passed by value
// to every axis_conv kernel. Rust twin: `ops::axis_conv::cuda::AxisConvGeom`
// (#[repr(C)], the same 10 u64 fields in the same order; the launch checks
// the size against the kernel's parameter list).
//
// An NHWC tensor is seen as lines [n][rows][len][inner][c], the convolution
// running along len: along H rows = 1, len = h, inner = w; along W
// rows = h, len = w, inner = 1 (`ops::axis_conv::Lines`).
struct AxisConvGeom {
    u64 n, rows, len, inner;  // input  x [n][rows][len][inner][cin]
    u64 cin, out_len, cout;   // output y [n][rows][out_len][inner][cout]
    u64 k, stride, pad;       // taps, stride and zero padding along len
};
static_assert(sizeof(AxisConvGeom) == 10 * sizeof(u64), "AxisConvGeom is 10 u64, no padding");

// The geometry as the short local names the kernels' index arithmetic uses.
#define AXIS_GEOM_LOCALS(geom)                                                                 \
    [[maybe_unused]] const u64 n = (geom).n, rows = (geom).rows, len = (geom).len;             \
    [[maybe_unused]] const u64 inner = (geom).inner, cin = (geom).cin;                         \
    [[maybe_unused]] const u64 out_len = (geom).out_len, cout = (geom).cout;                   \
    [[maybe_unused]] const u64 k = (geom).k, stride = (geom).stride, pad = (geom).pad

// The ReLU a kernel applies to its input when the op fused one:
// v > 0 ? v : +0 (NaN gives 0), as ops::relu and the CPU twins.
__device__ __forceinline__ float dn_axis_relu(float v) { return v > 0.0f ? v : 0.0f; }
