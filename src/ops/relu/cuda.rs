//! CUDA ReLU: launches `src/ops/relu/relu.cu`; CPU twin [`super::cpu`].
//!
//! Layout: flat f32 buffers of equal length (elementwise, any shape). The
//! float4 kernels are used when every buffer is 16-byte aligned; the result
//! is the same either way (`x > 0 ? x : +0`, bit for bit the CPU's).

use crate::runtime::cuda::{DView, DViewMut};

use crate::error::{Error, Result};
use crate::ops::cuda_launch::{aligned16, grid_1d};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;

/// `relu` of `relu.cu`.
const RELU: KernelRef = KernelRef::forward("relu", "relu");
/// `relu_vec4` of `relu.cu`.
const RELU_VEC4: KernelRef = KernelRef::forward("relu", "relu_vec4");
/// `relu_inplace` of `relu.cu`.
const RELU_INPLACE: KernelRef = KernelRef::forward("relu", "relu_inplace");
/// `relu_inplace_vec4` of `relu.cu`.
const RELU_INPLACE_VEC4: KernelRef = KernelRef::forward("relu", "relu_inplace_vec4");
/// `relu_backward` of `relu.cu`.
const RELU_BACKWARD: KernelRef = KernelRef::backward("relu", "relu_backward");

impl crate::ops::CudaKernels for super::ReluOp {
    const KERNELS: &'static [KernelRef] = &[
        RELU,
        RELU_VEC4,
        RELU_INPLACE,
        RELU_INPLACE_VEC4,
        RELU_BACKWARD,
    ];
}

/// `y = relu(x)`; errors (before any launch) when the lengths differ.
pub fn relu_forward(dev: &CudaDevice, x: &DView<'_, f32>, y: &mut DViewMut<'_, f32>) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::Shape(format!(
            "relu: input has {} elements, output {}",
            x.len(),
            y.len()
        )));
    }
    let len = x.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let vec = aligned16(dev, x) && aligned16(dev, y);
    let f = dev.kernel(if vec { RELU_VEC4 } else { RELU })?;
    // The vec4 kernel: one thread per float4, the tail (< 4) by the first threads.
    let cfg = grid_1d(if vec { len.div_ceil(4) } else { len });
    let mut b = dev.launch_builder(&f);
    b.arg(x).arg(y).arg(&len);
    // SAFETY: the arguments match `relu(_vec4)(const float* x, float* y,
    // u64 len)`; the kernel reads x[0..len) and writes y[0..len), both
    // views of exactly len floats (checked above). x and y are distinct
    // (a shared and an exclusive borrow), as `__restrict__` assumes; the
    // vec4 kernel runs only when both are 16-byte aligned.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// `x = relu(x)` in place.
pub fn relu_forward_inplace(dev: &CudaDevice, x: &mut DViewMut<'_, f32>) -> Result<()> {
    let len = x.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let vec = aligned16(dev, x);
    let f = dev.kernel(if vec { RELU_INPLACE_VEC4 } else { RELU_INPLACE })?;
    let cfg = grid_1d(if vec { len.div_ceil(4) } else { len });
    let mut b = dev.launch_builder(&f);
    b.arg(x).arg(&len);
    // SAFETY: the arguments match `relu_inplace(_vec4)(float* x, u64 len)`;
    // the kernel touches x[0..len), the whole view; the vec4 kernel runs
    // only when x is 16-byte aligned.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// ReLU backward: `dx = (accumulate ? dx : 0) + (x > 0 ? dy : 0)`, where
/// `x` is the ReLU's input (its output gives the same mask). `accumulate`
/// sums the gradients of a tensor that several ops read. Errors (before
/// any launch) when the three lengths differ.
///
/// Layout: flat f32 buffers of equal length (elementwise, any shape).
pub fn relu_backward(
    dev: &CudaDevice,
    x: &DView<'_, f32>,
    dy: &DView<'_, f32>,
    dx: &mut DViewMut<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    if x.len() != dx.len() || dy.len() != dx.len() {
        return Err(Error::Shape(format!(
            "relu backward: input has {} elements, output gradient {}, input gradient {}",
            x.len(),
            dy.len(),
            dx.len()
        )));
    }
    let len = x.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let f = dev.kernel(RELU_BACKWARD)?;
    let acc = i32::from(accumulate);
    let mut b = dev.launch_builder(&f);
    b.arg(x).arg(dy).arg(dx).arg(&len).arg(&acc);
    // SAFETY: the arguments match `relu_backward(const float* x, const
    // float* dy, float* dx, u64 len, int accumulate)`; the kernel reads
    // x[0..len), dy[0..len) and reads / writes dx[0..len), three views of
    // exactly len floats (checked above); dx is an exclusive borrow,
    // distinct from x and dy as `__restrict__` assumes.
    unsafe { b.launch(grid_1d(len)) }?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for super::ReluOp {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, _) = a.input("relu", 0)?;
        relu_forward(a.dev, &x, &mut a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for super::ReluOp {
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let x = a.input("relu", 0)?;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            relu_backward(a.dev, &x, &a.dy, &mut g.dx, g.accumulate)?;
        }
        Ok(())
    }
}
