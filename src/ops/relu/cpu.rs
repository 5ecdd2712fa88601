//! CPU ReLU. Layout-agnostic (elementwise over the flat buffer); split into
//! fixed chunks over rayon threads (memory-bound, no reduction, so the
//! split cannot change a result).

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 16;

#[inline(always)]
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// `y = relu(x)`; `y` must have `x`'s shape and is fully overwritten.
pub fn relu_forward(x: &Tensor, y: &mut Tensor) -> Result<()> {
    super::out_shape(x.shape)?;
    check_len("relu", "input", x.shape, x.data.len())?;
    check_shape("relu", "output", x.shape, y.shape)?;
    check_len("relu", "output", y.shape, y.data.len())?;
    y.data
        .par_chunks_mut(CHUNK)
        .zip(x.data.par_chunks(CHUNK))
        .for_each(|(ys, xs)| {
            for (o, &v) in ys.iter_mut().zip(xs) {
                *o = relu(v);
            }
        });
    Ok(())
}

/// `x = relu(x)` in place.
pub fn relu_forward_inplace(x: &mut Tensor) -> Result<()> {
    super::out_shape(x.shape)?;
    check_len("relu", "input", x.shape, x.data.len())?;
    x.data.par_chunks_mut(CHUNK).for_each(|xs| {
        for v in xs {
            *v = relu(*v);
        }
    });
    Ok(())
}

/// Backward of ReLU: `dx = dy` where `x > 0`, else 0 (`x` is the ReLU's
/// input; at `x = 0` the gradient is 0, like PyTorch's `threshold_backward`).
/// `dx` must have `x`'s shape and is fully overwritten.
pub fn relu_backward(x: &Tensor, dy: &Tensor, dx: &mut Tensor) -> Result<()> {
    check_len("relu backward", "input", x.shape, x.data.len())?;
    check_shape("relu backward", "dy", x.shape, dy.shape)?;
    check_len("relu backward", "dy", dy.shape, dy.data.len())?;
    check_shape("relu backward", "dx", x.shape, dx.shape)?;
    check_len("relu backward", "dx", dx.shape, dx.data.len())?;
    dx.data
        .par_chunks_mut(CHUNK)
        .zip(x.data.par_chunks(CHUNK).zip(dy.data.par_chunks(CHUNK)))
        .for_each(|(os, (xs, ds))| {
            for ((o, &v), &d) in os.iter_mut().zip(xs).zip(ds) {
                *o = if v > 0.0 { d } else { 0.0 };
            }
        });
    Ok(())
}

/// [`relu_backward`] in place: `g` holds `dy` and becomes `dx`.
pub fn relu_backward_inplace(x: &Tensor, g: &mut Tensor) -> Result<()> {
    check_len("relu backward", "input", x.shape, x.data.len())?;
    check_shape("relu backward", "gradient", x.shape, g.shape)?;
    check_len("relu backward", "gradient", g.shape, g.data.len())?;
    g.data
        .par_chunks_mut(CHUNK)
        .zip(x.data.par_chunks(CHUNK))
        .for_each(|(gs, xs)| {
            for (o, &v) in gs.iter_mut().zip(xs) {
                if v <= 0.0 || v.is_nan() {
                    *o = 0.0;
                }
            }
        });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for super::ReluOp {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        relu_forward(a.input("relu", 0)?, a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for super::ReluOp {
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let x = a.input("relu", 0)?;
        let dy = a.dy;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            g.write(|dx| relu_backward(x, dy, dx))?;
        }
        Ok(())
    }
}
