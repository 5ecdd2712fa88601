//! CUDA channel concatenation: one launch of `concat_copy` (`src/ops/concat/concat.cu`)
//! per input, each writing its channel slot of every output pixel; CPU twin
//! [`super::cpu`].
//!
//! Layout: NHWC, flat. Input k holds `pixels × c_k` floats, the output
//! `pixels × Σ c_k`; input k's channels land at offset `Σ_{j<k} c_j` of each
//! output pixel.

use crate::runtime::cuda::{DView, DViewMut};
use crate::tensor::Shape;

use crate::error::{Error, Result};
use crate::ops::cuda_launch::grid_1d;
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;

/// `concat_copy` of `concat.cu`.
const CONCAT_COPY: KernelRef = KernelRef::forward("concat", "concat_copy");

impl crate::ops::CudaKernels for super::ConcatOp {
    const KERNELS: &'static [KernelRef] = &[CONCAT_COPY];
}

/// `y = concat(inputs)` along channels: `channels[k]` is input k's channel
/// count, `pixels` the number of (n, h, w) positions. Errors (before any
/// launch) when a length does not match or the lists differ in length.
pub fn concat_forward(
    dev: &CudaDevice,
    inputs: &[&DView<'_, f32>],
    channels: &[usize],
    pixels: usize,
    y: &mut DViewMut<'_, f32>,
) -> Result<()> {
    if inputs.is_empty() || inputs.len() != channels.len() {
        return Err(Error::Shape(format!(
            "concat: {} inputs with {} channel counts",
            inputs.len(),
            channels.len()
        )));
    }
    let cy: usize = channels.iter().sum();
    for (k, (x, &c)) in inputs.iter().zip(channels).enumerate() {
        if Some(x.len()) != pixels.checked_mul(c) {
            return Err(Error::Shape(format!(
                "concat: input {k} has {} elements, expected {pixels} pixels × {c} channels",
                x.len()
            )));
        }
    }
    if Some(y.len()) != pixels.checked_mul(cy) {
        return Err(Error::Shape(format!(
            "concat: output has {} elements, expected {pixels} pixels × {cy} channels",
            y.len()
        )));
    }
    let f = dev.kernel(CONCAT_COPY)?;
    let mut offset = 0u64;
    for (x, &c) in inputs.iter().zip(channels) {
        let len = (pixels * c) as u64;
        if len == 0 {
            continue;
        }
        let (cx, cy64) = (c as u64, cy as u64);
        let mut lb = dev.launch_builder(&f);
        lb.arg(*x)
            .arg(&*y)
            .arg(&len)
            .arg(&cx)
            .arg(&cy64)
            .arg(&offset);
        // SAFETY: the arguments match `concat_copy(const float* x, float* y,
        // u64 len, u64 cx, u64 cy, u64 offset)`; the kernel reads x[0..len)
        // (len = pixels·cx, the view's length, checked above) and writes
        // y[p·cy + offset + c] for p < pixels, c < cx, inside y's
        // pixels·cy floats since offset + cx ≤ cy; x and y are distinct
        // (a shared and an exclusive borrow).
        unsafe { lb.launch(grid_1d(len)) }?;
        offset += cx;
    }
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for super::ConcatOp {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let views: Vec<DView<'_, f32>> = a.inputs.iter().map(|(v, _)| *v).collect();
        let refs: Vec<&DView<'_, f32>> = views.iter().collect();
        let channels: Vec<usize> = a.inputs.iter().map(|(_, s)| s.c).collect();
        let s = a.out_shape;
        concat_forward(a.dev, &refs, &channels, s.n * s.h * s.w, &mut a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for super::ConcatOp {
    /// Input `k`'s gradient is its channel window of `dy` (a crop).
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let ys = a.in_shapes.iter().fold(
            Shape::new(
                a.in_shapes.first().map_or(0, |s| s.n),
                a.in_shapes.first().map_or(0, |s| s.h),
                a.in_shapes.first().map_or(0, |s| s.w),
                0,
            ),
            |acc, s| Shape::new(acc.n, acc.h, acc.w, acc.c + s.c),
        );
        let mut c0 = 0;
        for (k, g) in a.dx.iter_mut().enumerate() {
            let c = a.in_shapes[k].c;
            if let Some(g) = g {
                let spec = crate::ops::crop::CropSpec {
                    top: 0,
                    left: 0,
                    h: ys.h,
                    w: ys.w,
                    c0,
                    c,
                };
                crate::ops::crop::cuda::crop_forward_acc(
                    a.dev,
                    &spec,
                    ys,
                    &a.dy,
                    &mut g.dx,
                    g.accumulate,
                )?;
            }
            c0 += c;
        }
        Ok(())
    }
}
