//! CUDA axis convolution: launches the kernels of
//! `src/ops/axis_conv/axis_conv.cu` (forward, input gradient, weight
//! gradient). CPU twins: [`super::cpu`], bit for bit (same f32 operations
//! in the same order, see [`super`]).
//!
//! Layouts (as the kernels' headers state them), every buffer checked
//! against them before any launch:
//! * `x`, `dx`, ReLU mask: f32 NHWC `[n][h][w][cin]` (the input shape),
//! * `w`, `dw`: f32 `[k][cin][cout]` ([`AxisConvSpec::weight_len`]),
//! * `y`, `dy`: f32 NHWC `[n][oh][ow][cout]` ([`AxisConvSpec::out_shape`]),
//! * `part`: f32 `[n][k][cin][cout]`, the per-sample weight gradients
//!   (scratch, [`OpSpec::backward_scratch`](crate::ops::OpSpec::backward_scratch)).
//!
//! All launches are asynchronous on the device's stream; one thread per
//! output element (1-d grid-stride, u64 indices).

use super::AxisConvSpec;
use crate::error::{Error, Result};
use crate::ops::cuda_launch::grid_1d;
use crate::ops::{check_len, check_param, CudaGrad, CudaKernels};
use crate::runtime::cuda::{CudaDevice, DView, DViewMut, KernelParams, KernelRef};
use crate::tensor::Shape;

/// `axis_conv_forward` of `axis_conv.cu`.
const FORWARD: KernelRef = KernelRef::forward("axis_conv", "axis_conv_forward");
/// `axis_conv_bwd_input` of `axis_conv.cu`.
const BACKWARD_INPUT: KernelRef = KernelRef::backward("axis_conv", "axis_conv_bwd_input");
/// `axis_conv_bwd_weight_part` of `axis_conv.cu`.
const BACKWARD_WEIGHT_PART: KernelRef =
    KernelRef::backward("axis_conv", "axis_conv_bwd_weight_part");

impl CudaKernels for AxisConvSpec {
    const KERNELS: &'static [KernelRef] = &[FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT_PART];
}

/// The geometry every axis_conv kernel takes by value: the C struct
/// `AxisGeom` of `axis_conv.cu`, field for field (10 `u64`). The
/// tensors are seen as lines `[n][rows][len][inner][c]` (see
/// [`super::Lines`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AxisGeom {
    /// Samples.
    pub n: u64,
    /// Lines per sample (1 along H, `h` along W).
    pub rows: u64,
    /// Input positions along a line (`h` along H, `w` along W).
    pub len: u64,
    /// Pixels between two positions of a line (`w` along H, 1 along W).
    pub inner: u64,
    /// Input channels.
    pub cin: u64,
    /// Output positions along a line.
    pub out_len: u64,
    /// Output channels.
    pub cout: u64,
    /// Taps of the kernel.
    pub k: u64,
    /// Stride along the line.
    pub stride: u64,
    /// Zero padding at both ends of the line.
    pub pad: u64,
}

// SAFETY: #[repr(C)], 10 u64 in the order of `struct AxisGeom` in
// axis_conv.cu (which static_asserts the same size: no padding).
unsafe impl KernelParams for AxisGeom {}

impl AxisGeom {
    /// The geometry of `spec` on an input of shape `input` (batch
    /// included), after [`AxisConvSpec::out_shape`] accepted it.
    fn new(spec: &AxisConvSpec, input: Shape, out: Shape) -> AxisGeom {
        let (li, lo) = (spec.lines(input), spec.lines(out));
        let u = |v: usize| v as u64;
        AxisGeom {
            n: u(li.n),
            rows: u(li.rows),
            len: u(li.len),
            inner: u(li.inner),
            cin: u(spec.cin),
            out_len: u(lo.len),
            cout: u(spec.cout),
            k: u(spec.k),
            stride: u(spec.stride),
            pad: u(spec.pad),
        }
    }
}

/// The input of an axis conv as its kernels read it: the tensor, its shape
/// (batch included), and whether it is read through a ReLU (fused).
#[derive(Clone, Copy, Debug)]
pub struct AxisConvInput<'a, 'v> {
    /// The input tensor, f32 NHWC `[n][h][w][cin]`.
    pub x: &'v DView<'a, f32>,
    /// Its shape (batch included).
    pub shape: Shape,
    /// Read it through a ReLU (the op fused the ReLU that feeds it).
    pub relu: bool,
}

/// `y = axis_conv(input.relu ? relu(x) : x, w)` on the GPU; `y` is fully
/// overwritten. Errors (nothing launched) on a bad spec or input shape, or
/// a buffer whose length does not match the layout.
pub fn axis_conv_forward(
    dev: &CudaDevice,
    spec: &AxisConvSpec,
    input: AxisConvInput<'_, '_>,
    w: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let out = spec.out_shape(input.shape)?;
    check_len("axis_conv (CUDA)", "input", input.shape, input.x.len())?;
    check_param("axis_conv (CUDA)", "weight", spec.weight_len(), w.len())?;
    check_len("axis_conv (CUDA)", "output", out, y.len())?;
    let geom = AxisGeom::new(spec, input.shape, out);
    let relu = i32::from(input.relu);
    let f = dev.kernel(FORWARD)?;
    let mut b = dev.launch_builder(&f);
    b.arg(input.x).arg(w).arg(y).arg(&geom).arg(&relu);
    // SAFETY: the arguments match `axis_conv_forward(const float* x, const
    // float* w, float* y, AxisGeom geom, int relu_input)` in type and
    // order. Thread g < n·rows·out_len·inner·cout = out.len() = y.len()
    // (checked) writes y[g] only; it reads x at line l < n·rows, position
    // q − pad in [0, len) (tested), pixel j < inner, channel < cin: below
    // input.len() = x.len() (checked); and w[(t·cin + ci)·cout + co] with
    // t < k, ci < cin, co < cout: below weight_len = w.len() (checked).
    // out_shape checked that none of these counts overflows. y is an
    // exclusive borrow, distinct from x and w as `__restrict__` assumes.
    unsafe { b.launch(grid_1d(out.len() as u64)) }?;
    Ok(())
}

/// Gradient of the input: `dx = (accumulate ? dx : 0) + mask ⊙ Σ dy · w`
/// (`grad.dx`, `grad.accumulate`), where `mask` is `relu_mask > 0`
/// elementwise when `relu_mask` is given (the input of the ReLU the op
/// fused) and 1 otherwise. `input` is the shape of `dx`. Errors (nothing
/// launched) on a bad shape or a buffer whose length does not match.
pub fn axis_conv_backward_input(
    dev: &CudaDevice,
    spec: &AxisConvSpec,
    input: Shape,
    dy: &DView<'_, f32>,
    w: &DView<'_, f32>,
    grad: &mut CudaGrad<'_>,
    relu_mask: Option<&DView<'_, f32>>,
) -> Result<()> {
    let out = spec.out_shape(input)?;
    let op = "axis_conv backward (CUDA)";
    check_len(op, "output gradient", out, dy.len())?;
    check_param(op, "weight", spec.weight_len(), w.len())?;
    check_len(op, "input gradient", input, grad.dx.len())?;
    if let Some(m) = relu_mask {
        check_len(op, "ReLU mask", input, m.len())?;
    }
    let geom = AxisGeom::new(spec, input, out);
    let (mask, acc) = (i32::from(relu_mask.is_some()), i32::from(grad.accumulate));
    let f = dev.kernel(BACKWARD_INPUT)?;
    let mut b = dev.launch_builder(&f);
    b.arg(dy).arg(w);
    // Without a mask the kernel never reads `xmask`: dy stands in for it.
    b.arg(relu_mask.unwrap_or(dy));
    b.arg(&grad.dx).arg(&geom).arg(&mask).arg(&acc);
    // SAFETY: the arguments match `axis_conv_bwd_input(const float* dy,
    // const float* w, const float* xmask, float* dx, AxisGeom geom, int
    // mask, int accumulate)`. Thread g < n·rows·len·inner·cin = input.len()
    // = dx.len() (checked) reads and writes dx[g] only, and reads xmask[g]
    // only when mask = 1, when xmask has dx's length (checked); it reads dy
    // at line l < n·rows, output o < out_len (tested), pixel j < inner,
    // channel < cout: below out.len() = dy.len() (checked); and w[(t·cin +
    // ci)·cout + co] below weight_len = w.len() (checked). dx is an
    // exclusive borrow, distinct from the read-only buffers.
    unsafe { b.launch(grid_1d(input.len() as u64)) }?;
    Ok(())
}

/// Gradient of the weight: `dw = Σ over samples and output pixels of x̂ ⊗
/// dy` (`x̂ = relu(x)` when `input.relu`, as the forward read it),
/// overwriting `dw`. Two launches: the per-sample sums into `part` (f32
/// `[n][k][cin][cout]`, exactly `n · weight_len` values), then their sum
/// in sample order in f64: deterministic, no atomics. Errors (nothing
/// launched) on a bad shape or a buffer whose length does not match.
pub fn axis_conv_backward_weight(
    dev: &CudaDevice,
    spec: &AxisConvSpec,
    input: AxisConvInput<'_, '_>,
    dy: &DView<'_, f32>,
    dw: &mut DViewMut<'_, f32>,
    part: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let out = spec.out_shape(input.shape)?;
    let op = "axis_conv backward (CUDA)";
    let wlen = spec.weight_len();
    check_len(op, "input", input.shape, input.x.len())?;
    check_len(op, "output gradient", out, dy.len())?;
    check_param(op, "weight gradient", wlen, dw.len())?;
    // out_shape checked that n · weight_len does not overflow.
    check_param(
        op,
        "per-sample weight-gradient scratch",
        input.shape.n * wlen,
        part.len(),
    )?;
    let geom = AxisGeom::new(spec, input.shape, out);
    let relu = i32::from(input.relu);
    let f = dev.kernel(BACKWARD_WEIGHT_PART)?;
    let mut b = dev.launch_builder(&f);
    b.arg(input.x).arg(dy).arg(&*part).arg(&geom).arg(&relu);
    // SAFETY: the arguments match `axis_conv_bwd_weight_part(const float* x,
    // const float* dy, float* part, AxisGeom geom, int relu_input)`.
    // Thread g < n·weight_len = part.len() (checked) writes part[g] only;
    // it reads x at line b·rows + r < n·rows, position in [0, len)
    // (tested), pixel j < inner, channel ci < cin: below x.len() (checked),
    // and dy at output o < out_len of the same line: below dy.len()
    // (checked). part is an exclusive borrow, distinct from x and dy.
    unsafe { b.launch(grid_1d((input.shape.n * wlen) as u64)) }?;

    // The per-sample sums added in sample order in f64 (the shared
    // `sum_parts` kernel).
    crate::runtime::cuda::kernels::sum_parts(dev, &part.as_view(), dw)?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for AxisConvSpec {
    /// The conv of the input, or of its ReLU when the plan fused the ReLU
    /// that feeds it.
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, shape) = a.input("axis_conv", 0)?;
        let w = a.param("axis_conv", 0)?;
        let input = AxisConvInput {
            x: &x,
            shape,
            relu: a.relu_input,
        };
        axis_conv_forward(a.dev, self, input, &w, &mut a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for AxisConvSpec {
    /// The weight gradient (per-sample sums in the f32 scratch, reduced in
    /// sample order), then the input gradient, masked by the ReLU the op
    /// applied, if any.
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let internal = |what: &str| Error::Internal(format!("axis_conv backward: no {what}"));
        let x = a.input("axis_conv", 0)?;
        let xs = *a.in_shapes.first().ok_or_else(|| internal("input shape"))?;
        let w = a.param("axis_conv", 0)?;
        let need = self.backward_scratch_len(xs)?;
        let part = a.scratch32.as_mut().ok_or_else(|| internal("scratch"))?;
        let mut part = part
            .try_slice_mut(0..need)
            .ok_or_else(|| internal("scratch of the per-sample weight gradients"))?;
        let dw = a
            .dparams
            .get_mut(0)
            .ok_or_else(|| internal("weight gradient"))?;
        let input = AxisConvInput {
            x: &x,
            shape: xs,
            relu: a.relu_input,
        };
        axis_conv_backward_weight(a.dev, self, input, &a.dy, dw, &mut part)?;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            let mask = a.relu_input.then_some(&x);
            axis_conv_backward_input(a.dev, self, xs, &a.dy, &w, g, mask)?;
        }
        Ok(())
    }
}

impl AxisConvSpec {
    /// f32 values of the per-sample weight-gradient scratch for an input
    /// of shape `input` (batch included): `n · weight_len`.
    fn backward_scratch_len(&self, input: Shape) -> Result<usize> {
        crate::ops::OpSpec::backward_scratch(self, input).map(|(f32s, _)| f32s)
    }
}
