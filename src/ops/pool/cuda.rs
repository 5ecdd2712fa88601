//! CUDA pooling: launches `pool_nhwc` / `pool_nhwc_vec4` of `src/ops/pool/pool.cu`;
//! CPU twin [`super::cpu::pool_forward`], bit for bit (same taps in the
//! same order, same f32 operations).
//!
//! Layout: `x` is f32 NHWC `[n][h][w][c]` (`x_shape`), `y` is f32 NHWC
//! `[n][oh][ow][c]` with the shape [`PoolSpec::out_shape`] gives. The
//! float4 kernel (one thread per output pixel and 4 channels) runs when
//! `c % 4 == 0` and both buffers are 16-byte aligned; otherwise one thread
//! per output element.

use crate::runtime::cuda::{DView, DViewMut};

use super::{PoolKind, PoolSpec};
use crate::error::{Error, Result};
use crate::ops::check_len;
use crate::ops::cuda_launch::{aligned16, grid_1d};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::{KernelParams, KernelRef};
use crate::tensor::Shape;

/// `pool_nhwc` of `pool.cu`.
const POOL_NHWC: KernelRef = KernelRef::forward("pool", "pool_nhwc");
/// `pool_nhwc_vec4` of `pool.cu`.
const POOL_NHWC_VEC4: KernelRef = KernelRef::forward("pool", "pool_nhwc_vec4");
/// `pool_backward_nhwc` of `pool.cu`.
const POOL_BACKWARD_NHWC: KernelRef = KernelRef::backward("pool", "pool_backward_nhwc");

/// The geometry every pool kernel takes by value: the C struct `PoolGeom`
/// of `pool.cu`, field for field (9 `u64`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolGeom {
    /// Input `[n][h][w][c]`.
    pub n: u64,
    /// Input rows.
    pub h: u64,
    /// Input columns.
    pub w: u64,
    /// Channels (input and output).
    pub c: u64,
    /// Output rows and columns.
    pub oh: u64,
    /// Output columns.
    pub ow: u64,
    /// Square window, stride, padding.
    pub k: u64,
    /// Step between windows, in pixels.
    pub stride: u64,
    /// Implicit padding per side, in pixels (at most `k / 2`).
    pub pad: u64,
}

// SAFETY: #[repr(C)], 9 u64 in the order of `struct PoolGeom` in pool.cu
// (which static_asserts the same size).
unsafe impl KernelParams for PoolGeom {}

impl PoolGeom {
    /// The geometry of `spec` on input `x` with output `out`.
    fn new(spec: &PoolSpec, x: Shape, out: Shape) -> PoolGeom {
        let u = |v: usize| v as u64;
        PoolGeom {
            n: u(x.n),
            h: u(x.h),
            w: u(x.w),
            c: u(x.c),
            oh: u(out.h),
            ow: u(out.w),
            k: u(spec.k),
            stride: u(spec.stride),
            pad: u(spec.pad),
        }
    }
}

/// The kernels' `mode`: 0 max, 1 average over the in-bounds taps, 2
/// average over `k * k`.
fn mode(spec: &PoolSpec) -> u32 {
    match spec.kind {
        PoolKind::Max => 0,
        PoolKind::Avg if spec.count_include_pad => 2,
        PoolKind::Avg => 1,
    }
}

impl crate::ops::CudaKernels for super::PoolSpec {
    const KERNELS: &'static [KernelRef] = &[POOL_NHWC, POOL_NHWC_VEC4, POOL_BACKWARD_NHWC];
}

/// `y = pool(x)`; returns the output shape. Errors (before any launch) on
/// a bad spec or input shape, or buffers whose lengths do not match the
/// shapes.
pub fn pool_forward(
    dev: &CudaDevice,
    spec: &PoolSpec,
    x_shape: Shape,
    x: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<Shape> {
    let out = spec.out_shape(x_shape)?;
    check_len("pool", "input", x_shape, x.len())?;
    check_len("pool", "output", out, y.len())?;
    let mode = mode(spec);
    let vec = out.c.is_multiple_of(4) && aligned16(dev, x) && aligned16(dev, y);
    let (k, work) = if vec {
        (POOL_NHWC_VEC4, out.len() / 4)
    } else {
        (POOL_NHWC, out.len())
    };
    let f = dev.kernel(k)?;
    let geom = PoolGeom::new(spec, x_shape, out);
    let mut b = dev.launch_builder(&f);
    b.arg(x).arg(y).arg(&geom).arg(&mode);
    // SAFETY: the arguments match `pool_nhwc(_vec4)(const float* x, float*
    // y, PoolGeom geom, u32 mode)`. out_shape checked pad <= k / 2 and that every window
    // fits the padded input, so each clipped window lies inside the image:
    // the kernel reads x[0..n*h*w*c) and writes y[0..n*oh*ow*c), the two
    // view lengths checked above; y is an exclusive borrow, distinct from x
    // as `__restrict__` assumes; the vec4 kernel runs only when c % 4 == 0
    // and both buffers are 16-byte aligned.
    unsafe { b.launch(grid_1d(work as u64)) }?;
    Ok(out)
}

/// Pooling backward, as a gather (one thread per `dx` element over the
/// windows containing it, no atomics): average pooling passes `dy ·
/// (1/count)` to every tap of a window (count as in the forward); max
/// pooling passes `dy` to the window's first maximum in scan order (rows
/// outer, columns inner; the last NaN if any; the first in-bounds tap of a
/// window of only −inf). `dx = (accumulate ? dx : 0) + Σ`, the windows
/// summed in f32 in order (oy, then ox). `x` (the forward input, needed
/// for max pooling only: `None` is allowed for average pooling) and `dx`
/// have shape `x_shape`; `dy` has the output shape. Errors (before any launch) on a bad spec or lengths.
pub fn pool_backward(
    dev: &CudaDevice,
    spec: &PoolSpec,
    x_shape: Shape,
    x: Option<&DView<'_, f32>>,
    dy: &DView<'_, f32>,
    dx: &mut DViewMut<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    let out = spec.out_shape(x_shape)?;
    match (spec.kind, x) {
        (_, Some(x)) => check_len("pool backward", "input", x_shape, x.len())?,
        (PoolKind::Max, None) => {
            return Err(Error::Arg(
                "max pool backward needs the forward input".into(),
            ))
        }
        (PoolKind::Avg, None) => {}
    }
    check_len("pool backward", "input gradient", x_shape, dx.len())?;
    check_len("pool backward", "output gradient", out, dy.len())?;
    let mode = mode(spec);
    let f = dev.kernel(POOL_BACKWARD_NHWC)?;
    let geom = PoolGeom::new(spec, x_shape, out);
    let acc = i32::from(accumulate);
    let null = crate::runtime::cuda::NullPtr::new();
    let mut b = dev.launch_builder(&f);
    match x {
        Some(x) => b.arg(x),
        // Average pooling never reads x (mode != 0 in the kernel).
        None => b.arg(&null),
    };
    b.arg(dy).arg(dx).arg(&geom).arg(&mode).arg(&acc);
    // SAFETY: the arguments match `pool_backward_nhwc(const float* x, const
    // float* dy, float* dx, PoolGeom geom, u32 mode, int accumulate)`. out_shape checked pad <= k / 2 and that every
    // window fits the padded input; the kernel visits only windows oy < oh,
    // ox < ow whose clipped taps lie inside the image, so it reads
    // x[0..n*h*w*c), dy[0..n*oh*ow*c) and reads / writes dx[0..n*h*w*c),
    // the lengths checked above; dx is an exclusive borrow, distinct from x
    // and dy.
    unsafe { b.launch(grid_1d(x_shape.len() as u64)) }?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for PoolSpec {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, xs) = a.input("pool", 0)?;
        pool_forward(a.dev, self, xs, &x, &mut a.out).map(|_| ())
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for PoolSpec {
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let x = a.inputs.first().copied().flatten();
        let xs = *a
            .in_shapes
            .first()
            .ok_or_else(|| Error::Internal("pool backward: no input shape".into()))?;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            pool_backward(a.dev, self, xs, x.as_ref(), &a.dy, &mut g.dx, g.accumulate)?;
        }
        Ok(())
    }
}
