//! CUDA linear layer: launches `linear_fwd` of `src/ops/linear/linear.cu`; CPU twin
//! [`super::cpu::linear_forward`], bit for bit (same order, no FMA).
//!
//! Layout: `x` is f32 `[n][inputs]` (each sample's flat NHWC values, shape
//! `x_shape`), `w` is f32 `[inputs][outputs]` row-major, `b` is f32
//! `[outputs]`, `y` is f32 `[n][1][1][outputs]`.

use crate::runtime::cuda::{DView, DViewMut};

use super::LinearSpec;
use crate::error::Result;
use crate::ops::cuda_launch::grid_1d;
use crate::ops::{check_len, check_param};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;
use crate::tensor::Shape;

/// `linear_fwd` of `linear.cu`.
const LINEAR_FWD: KernelRef = KernelRef::forward("linear", "linear_fwd");
/// `linear_bwd_input` of `linear.cu`.
const LINEAR_BWD_INPUT: KernelRef = KernelRef::backward("linear", "linear_bwd_input");
/// `linear_bwd_params` of `linear.cu`.
const LINEAR_BWD_PARAMS: KernelRef = KernelRef::backward("linear", "linear_bwd_params");

impl crate::ops::CudaKernels for super::LinearSpec {
    const KERNELS: &'static [KernelRef] = &[LINEAR_FWD, LINEAR_BWD_INPUT, LINEAR_BWD_PARAMS];
}

/// `y[n][o] = b[o] + sum_i x[n][i] * w[i][o]`; returns the output shape.
/// Errors (before any launch) on a spec that does not fit `x_shape` or
/// buffers of the wrong lengths.
pub fn linear_forward(
    dev: &CudaDevice,
    spec: &LinearSpec,
    x_shape: Shape,
    x: &DView<'_, f32>,
    w: &DView<'_, f32>,
    b: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<Shape> {
    let out = spec.out_shape(x_shape)?;
    check_len("linear", "input", x_shape, x.len())?;
    check_param("linear", "weight", spec.weight_len(), w.len())?;
    check_param("linear", "bias", spec.outputs, b.len())?;
    check_len("linear", "output", out, y.len())?;
    let f = dev.kernel(LINEAR_FWD)?;
    let (n, ni, no) = (x_shape.n as u64, spec.inputs as u64, spec.outputs as u64);
    let mut lb = dev.launch_builder(&f);
    lb.arg(x).arg(w).arg(b).arg(y).arg(&n).arg(&ni).arg(&no);
    // SAFETY: the arguments match `linear_fwd(const float* x, const float*
    // w, const float* bias, float* y, u64 n, u64 inputs, u64 outputs)`; the
    // kernel reads x[0..n*inputs), w[0..inputs*outputs), bias[0..outputs)
    // and writes y[0..n*outputs), all four lengths checked above (out_shape
    // checked h*w*c == inputs, so x.len() == n*inputs; weight_len did not
    // saturate since it equals w.len()); y is an exclusive borrow, distinct
    // from the inputs as `__restrict__` assumes.
    unsafe { lb.launch(grid_1d(n * no)) }?;
    Ok(out)
}

/// What [`linear_backward`] writes: the input gradient when asked for
/// (written, or added to with `accumulate`), and the weight and bias
/// gradients (overwritten).
pub struct LinearGrads<'a> {
    /// The input's gradient, f32 like `x`; `None` when the input needs none.
    pub dx: Option<crate::ops::CudaGrad<'a>>,
    /// Overwritten: the weight gradient, f32 `[inputs][outputs]`.
    pub dw: DViewMut<'a, f32>,
    /// Overwritten: the bias gradient, f32 `[outputs]`.
    pub db: DViewMut<'a, f32>,
}

/// Linear backward: `dx[b][i] = (accumulate ? dx : 0) + Σ_o dy[b][o]·w[i][o]`,
/// `dw[i][o] = Σ_b x[b][i]·dy[b][o]`, `db[o] = Σ_b dy[b][o]` (every sum in
/// f64 in index order, one thread per value: deterministic). `dw` and `db`
/// are overwritten. Layouts as the forward's, `dy` f32 `[n][outputs]`, `dx`
/// like `x`, `dw` like `w`, `db` like the bias (all in `grads`; `dx` is
/// `None` when the input needs no gradient). Two launches
/// (one without `dx`); errors (before any launch) on lengths that do not
/// match.
pub fn linear_backward(
    dev: &CudaDevice,
    spec: &LinearSpec,
    x_shape: Shape,
    x: &DView<'_, f32>,
    w: &DView<'_, f32>,
    dy: &DView<'_, f32>,
    grads: LinearGrads<'_>,
) -> Result<()> {
    let LinearGrads { dx, mut dw, mut db } = grads;
    let (dw, db) = (&mut dw, &mut db);
    let out = spec.out_shape(x_shape)?;
    check_len("linear backward", "input", x_shape, x.len())?;
    if let Some(g) = &dx {
        check_len("linear backward", "input gradient", x_shape, g.dx.len())?;
    }
    check_param("linear backward", "weight", spec.weight_len(), w.len())?;
    check_param(
        "linear backward",
        "weight gradient",
        spec.weight_len(),
        dw.len(),
    )?;
    check_param("linear backward", "bias gradient", spec.outputs, db.len())?;
    check_len("linear backward", "output gradient", out, dy.len())?;
    let (n, ni, no) = (x_shape.n as u64, spec.inputs as u64, spec.outputs as u64);
    if let Some(crate::ops::CudaGrad { dx, accumulate }) = dx {
        let acc = i32::from(accumulate);
        let f = dev.kernel(LINEAR_BWD_INPUT)?;
        let mut lb = dev.launch_builder(&f);
        lb.arg(dy)
            .arg(w)
            .arg(&dx)
            .arg(&n)
            .arg(&ni)
            .arg(&no)
            .arg(&acc);
        // SAFETY: the arguments match `linear_bwd_input(const float* dy, const
        // float* w, float* dx, u64 n, u64 inputs, u64 outputs, int accumulate)`;
        // it reads dy[0..n*outputs), w[0..inputs*outputs) and reads / writes
        // dx[0..n*inputs), the lengths checked above; dx is an exclusive
        // borrow, distinct from dy and w.
        unsafe { lb.launch(grid_1d(n * ni)) }?;
    }
    let f = dev.kernel(LINEAR_BWD_PARAMS)?;
    let mut lb = dev.launch_builder(&f);
    lb.arg(x).arg(dy).arg(dw).arg(db).arg(&n).arg(&ni).arg(&no);
    // SAFETY: the arguments match `linear_bwd_params(const float* x, const
    // float* dy, float* dw, float* db, u64 n, u64 inputs, u64 outputs)`; it
    // reads x[0..n*inputs), dy[0..n*outputs) and writes dw[0..inputs*outputs)
    // and db[0..outputs), the lengths checked above; dw and db are
    // exclusive borrows, distinct from each other and from x and dy.
    unsafe { lb.launch(grid_1d(ni * no + no)) }?;
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for LinearSpec {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let (x, xs) = a.input("linear", 0)?;
        let (w, b) = (a.param("linear", 0)?, a.param("linear", 1)?);
        linear_forward(a.dev, self, xs, &x, &w, &b, &mut a.out).map(|_| ())
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for LinearSpec {
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        let internal = |what: &str| crate::Error::Internal(format!("linear backward: no {what}"));
        let x = a.input("linear", 0)?;
        let xs = *a.in_shapes.first().ok_or_else(|| internal("input shape"))?;
        let w = a.param("linear", 0)?;
        let (dw, db) = a.dparams.split_at_mut(1);
        let (dw, db) = (
            dw.first_mut().ok_or_else(|| internal("weight gradient"))?,
            db.first_mut().ok_or_else(|| internal("bias gradient"))?,
        );
        let grads = LinearGrads {
            dx: a
                .dx
                .get_mut(0)
                .and_then(Option::as_mut)
                .map(|g| crate::ops::CudaGrad {
                    dx: g.dx.as_view_mut(),
                    accumulate: g.accumulate,
                }),
            dw: dw.as_view_mut(),
            db: db.as_view_mut(),
        };
        linear_backward(a.dev, self, xs, &x, &w, &a.dy, grads)
    }
}
