//! CUDA global average pooling: launches `global_avg_pool_nhwc` of
//! `src/ops/global_avg_pool/global_avg_pool.cu`; CPU twin [`super::cpu::global_avg_pool_forward`].
//!
//! Layout: `x` is f32 NHWC `[n][h][w][c]` (`x_shape`), `y` is f32
//! `[n][1][1][c]`. One thread per (sample, channel) sums the pixels in
//! order in f64: a deterministic reduction, bit for bit the CPU's.

use crate::runtime::cuda::{DView, DViewMut};

use crate::error::Result;
use crate::ops::check_len;
use crate::ops::cuda_launch::grid_1d;
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;
use crate::tensor::Shape;

/// `global_avg_pool_nhwc` of `global_avg_pool.cu`.
const GLOBAL_AVG_POOL_NHWC: KernelRef =
    KernelRef::forward("global_avg_pool", "global_avg_pool_nhwc");
/// `global_avg_pool_backward_nhwc` of `global_avg_pool.cu`.
const GLOBAL_AVG_POOL_BACKWARD_NHWC: KernelRef =
    KernelRef::backward("global_avg_pool", "global_avg_pool_backward_nhwc");

impl crate::ops::CudaKernels for super::GlobalAvgPoolOp {
    const KERNELS: &'static [KernelRef] = &[GLOBAL_AVG_POOL_NHWC, GLOBAL_AVG_POOL_BACKWARD_NHWC];
}

/// `y[n][c] = mean over (h, w) of x[n][.][.][c]`; returns the output shape
/// `[n, 1, 1, c]`. Errors (before any launch) on an empty input shape or
/// buffer lengths that do not match the shapes.
pub fn global_avg_pool_forward(
    dev: &CudaDevice,
    x_shape: Shape,
    x: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<Shape> {
    let out = super::out_shape(x_shape)?;
    check_len("global_avg_pool", "input", x_shape, x.len())?;
    check_len("global_avg_pool", "output", out, y.len())?;
    let f = dev.kernel(GLOBAL_AVG_POOL_NHWC)?;
    let n = x_shape.n as u64;
    let hw = (x_shape.h * x_shape.w) as u64;
    let c = x_shape.c as u64;
    let mut b = dev.launch_builder(&f);
    b.arg(x).arg(y).arg(&n).arg(&hw).arg(&c);
    // SAFETY: the arguments match `global_avg_pool_nhwc(const float* x,
    // float* y, u64 n, u64 hw, u64 c)`; the kernel reads x[0..n*hw*c) and
    // writes y[0..n*c), the two view lengths checked above (hw >= 1, every
    // dimension being non-zero); y is an exclusive borrow, distinct from x.
    unsafe { b.launch(grid_1d(n * c)) }?;
    Ok(out)
}

/// Global average pooling backward:
/// `dx[b][p][ch] = (accumulate ? dx : 0) + dy[b][ch] / (h·w)`, an f32
/// division (and f32 sum), bit for bit the CPU twin
/// [`super::cpu::global_avg_pool_backward`]. `dx` has shape `x_shape`,
/// `dy` is `[n][1][1][c]`. Errors (before any launch) on an empty shape or
/// lengths that do not match.
pub fn global_avg_pool_backward(
    dev: &CudaDevice,
    x_shape: Shape,
    dy: &DView<'_, f32>,
    dx: &mut DViewMut<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    let out = super::out_shape(x_shape)?;
    check_len(
        "global_avg_pool backward",
        "input gradient",
        x_shape,
        dx.len(),
    )?;
    check_len("global_avg_pool backward", "output gradient", out, dy.len())?;
    let f = dev.kernel(GLOBAL_AVG_POOL_BACKWARD_NHWC)?;
    let n = x_shape.n as u64;
    let hw = (x_shape.h * x_shape.w) as u64;
    let c = x_shape.c as u64;
    let acc = i32::from(accumulate);
    let mut b = dev.launch_builder(&f);
    b.arg(dy).arg(dx).arg(&n).arg(&hw).arg(&c).arg(&acc);
    // SAFETY: the arguments match `global_avg_pool_backward_nhwc(const
    // float* dy, float* dx, u64 n, u64 hw, u64 c, int accumulate)`; the
    // kernel reads dy[0..n*c) and reads / writes dx[0..n*hw*c), the lengths
    // checked above; dx is an exclusive borrow, distinct from dy.
    unsafe { b.launch(grid_1d(n * hw * c)) }?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for super::GlobalAvgPoolOp {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, xs) = a.input("global_avg_pool", 0)?;
        global_avg_pool_forward(a.dev, xs, &x, &mut a.out).map(|_| ())
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for super::GlobalAvgPoolOp {
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let xs = a.in_shapes[0];
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            global_avg_pool_backward(a.dev, xs, &a.dy, &mut g.dx, g.accumulate)?;
        }
        Ok(())
    }
}
