//! CUDA crop: launches `crop` of `src/ops/crop/crop.cu`; CPU twin [`super::cpu`].
//!
//! Layout: NHWC, flat. x is `[n][ih][iw][ic]`, y is `[n][h][w][c]` with
//! `y[n][i][j][k] = x[n][top + i][left + j][c0 + k]`.

use crate::runtime::cuda::{DView, DViewMut};

use super::CropSpec;
use crate::error::{Error, Result};
use crate::ops::check_len;
use crate::ops::cuda_launch::grid_1d;
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::{KernelParams, KernelRef};
use crate::tensor::Shape;

/// `crop_backward` of `crop.cu`.
const CROP_BACKWARD: KernelRef = KernelRef::backward("crop", "crop_backward");
/// `crop` of `crop.cu`.
const CROP: KernelRef = KernelRef::forward("crop", "crop");

/// The geometry both crop kernels take by value: the C struct `CropGeom`
/// of `crop.cu`, field for field (9 `u64`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CropGeom {
    /// Input rows, columns, channels.
    pub ih: u64,
    /// Input columns.
    pub iw: u64,
    /// Input channels.
    pub ic: u64,
    /// The window's origin.
    pub top: u64,
    /// Column of the window's left edge.
    pub left: u64,
    /// First channel of the window.
    pub c0: u64,
    /// The window's (the output's) size.
    pub h: u64,
    /// Output columns.
    pub w: u64,
    /// Output channels.
    pub c: u64,
}

// SAFETY: #[repr(C)], 9 u64 in the order of `struct CropGeom` in crop.cu
// (which static_asserts the same size).
unsafe impl KernelParams for CropGeom {}

impl CropGeom {
    fn new(spec: &CropSpec, input: Shape) -> CropGeom {
        let u = |v: usize| v as u64;
        CropGeom {
            ih: u(input.h),
            iw: u(input.w),
            ic: u(input.c),
            top: u(spec.top),
            left: u(spec.left),
            c0: u(spec.c0),
            h: u(spec.h),
            w: u(spec.w),
            c: u(spec.c),
        }
    }
}

impl crate::ops::CudaKernels for super::CropSpec {
    const KERNELS: &'static [KernelRef] = &[CROP_BACKWARD, CROP];
}

/// `y = crop(x)`; `input` is x's shape (batch included). Errors (before any
/// launch) when the window does not fit or a length does not match.
pub fn crop_forward(
    dev: &CudaDevice,
    spec: &CropSpec,
    input: Shape,
    x: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<()> {
    crop_launch(dev, spec, input, x, y, false)
}

/// [`crop_forward`] that adds into `y` when `accumulate` (the backward of a
/// concatenation: an input's gradient is a channel window of the output's).
pub fn crop_forward_acc(
    dev: &CudaDevice,
    spec: &CropSpec,
    input: Shape,
    x: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    crop_launch(dev, spec, input, x, y, accumulate)
}

/// The backward of crop: `dx` (shape `input`) gets `dy` inside the window
/// and 0 outside, or has that added when `accumulate`. CPU twin:
/// [`super::cpu::crop_backward`].
pub fn crop_backward(
    dev: &CudaDevice,
    spec: &CropSpec,
    input: Shape,
    dy: &DView<'_, f32>,
    dx: &mut DViewMut<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    let out = spec.out_shape(input)?;
    check_len("crop backward", "input gradient", input, dx.len())?;
    check_len("crop backward", "output gradient", out, dy.len())?;
    let len = dx.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let f = dev.kernel(CROP_BACKWARD)?;
    let geom = CropGeom::new(spec, input);
    let acc = i32::from(accumulate);
    let mut lb = dev.launch_builder(&f);
    lb.arg(dy).arg(dx).arg(&len);
    lb.arg(&geom).arg(&acc);
    // SAFETY: the arguments match `crop_backward(const float* dy, float* dx,
    // u64 len, CropGeom geom, int accumulate)`; it writes dx[0..len) (dx's length,
    // checked) and reads dy only inside the window, at indices below
    // n·h·w·c = dy's length (checked).
    unsafe { lb.launch(grid_1d(len)) }?;
    Ok(())
}

fn crop_launch(
    dev: &CudaDevice,
    spec: &CropSpec,
    input: Shape,
    x: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    let out = spec.out_shape(input)?;
    check_len("crop", "input", input, x.len())?;
    check_len("crop", "output", out, y.len())?;
    let len = y.len() as u64;
    let f = dev.kernel(CROP)?;
    let geom = CropGeom::new(spec, input);
    let acc = i32::from(accumulate);
    let mut lb = dev.launch_builder(&f);
    lb.arg(x).arg(y).arg(&len);
    lb.arg(&geom).arg(&acc);
    // SAFETY: the arguments match `crop(const float* x, float* y, u64 len,
    // CropGeom geom, int accumulate)`; the kernel writes y[0..len) (len = y's length = n·h·w·c,
    // checked) and reads x at ((n·ih + top + i)·iw + left + j)·ic + c0 + k
    // with top + i < ih, left + j < iw, c0 + k < ic (the window fits,
    // checked), inside x's n·ih·iw·ic floats; x and y are distinct borrows.
    unsafe { lb.launch(grid_1d(len)) }?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for CropSpec {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, xs) = a.input("crop", 0)?;
        crop_forward(a.dev, self, xs, &x, &mut a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for CropSpec {
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let xs = *a
            .in_shapes
            .first()
            .ok_or_else(|| Error::Internal("crop backward: no input shape".into()))?;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            crop_backward(a.dev, self, xs, &a.dy, &mut g.dx, g.accumulate)?;
        }
        Ok(())
    }
}
