//! CUDA linear layer: launches `linear_fwd` of `cuda/linear.cu`; CPU twin
//! [`super::cpu::linear_forward`], bit for bit (same order, no FMA).
//!
//! Layout: `x` is f32 `[n][inputs]` (each sample's flat NHWC values, shape
//! `x_shape`), `w` is f32 `[inputs][outputs]` row-major, `b` is f32
//! `[outputs]`, `y` is f32 `[n][1][1][outputs]`.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use super::LinearSpec;
use crate::device::cuda::CudaDevice;
use crate::error::Result;
use crate::ops::cuda_launch::{grid_1d, launch_err};
use crate::ops::{check_len, check_param};
use crate::tensor::Shape;

/// `y[n][o] = b[o] + sum_i x[n][i] * w[i][o]`; returns the output shape.
/// Errors (before any launch) on a spec that does not fit `x_shape` or
/// buffers of the wrong lengths.
pub fn linear_forward(
    dev: &CudaDevice,
    spec: &LinearSpec,
    x_shape: Shape,
    x: &CudaView<'_, f32>,
    w: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<Shape> {
    let out = spec.out_shape(x_shape)?;
    check_len("linear", "input", x_shape, x.len())?;
    check_param("linear", "weight", spec.weight_len(), w.len())?;
    check_param("linear", "bias", spec.outputs, b.len())?;
    check_len("linear", "output", out, y.len())?;
    let f = dev.function("linear", "linear_fwd")?;
    let (n, ni, no) = (x_shape.n as u64, spec.inputs as u64, spec.outputs as u64);
    let mut lb = dev.stream().launch_builder(&f);
    lb.arg(x).arg(w).arg(b).arg(y).arg(&n).arg(&ni).arg(&no);
    // SAFETY: the arguments match `linear_fwd(const float* x, const float*
    // w, const float* bias, float* y, u64 n, u64 inputs, u64 outputs)`; the
    // kernel reads x[0..n*inputs), w[0..inputs*outputs), bias[0..outputs)
    // and writes y[0..n*outputs), all four lengths checked above (out_shape
    // checked h*w*c == inputs, so x.len() == n*inputs; weight_len did not
    // saturate since it equals w.len()); y is an exclusive borrow, distinct
    // from the inputs as `__restrict__` assumes.
    unsafe { lb.launch(grid_1d(n * no)) }.map_err(launch_err("linear_fwd"))?;
    Ok(out)
}
