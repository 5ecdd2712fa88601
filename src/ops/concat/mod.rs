//! Channel concatenation, NHWC: `y[n, h, w, :] = x0[n, h, w, :] ‖ x1[n, h, w, :] ‖ ...`,
//! the inputs in list order (PyTorch's `torch.cat(xs, dim=1)` on NCHW).
//!
//! Used by the NAS-Bench-101 output vertex, the DARTS cell output and the
//! DARTS factorized reduce. A pure copy: the result is bit-exact on every
//! device.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The output shape: the inputs' common `n, h, w` and the sum of their
/// channels. Errors on an empty list, a zero dimension, or an input whose
/// `n, h, w` differ from input 0's (naming it).
pub fn out_shape(inputs: &[Shape]) -> Result<Shape> {
    let first = *inputs
        .first()
        .ok_or_else(|| Error::Shape("concat: no inputs".into()))?;
    let mut c = 0usize;
    for (i, s) in inputs.iter().enumerate() {
        crate::ops::check_nonempty("concat", &format!("input {i}"), *s)?;
        if (s.n, s.h, s.w) != (first.n, first.h, first.w) {
            return Err(Error::Shape(format!(
                "concat: input {i} has shape {s}, input 0 has {first} (n, h, w must agree)"
            )));
        }
        c = c
            .checked_add(s.c)
            .ok_or_else(|| Error::Shape("concat: channel count overflows".into()))?;
    }
    Ok(Shape::new(first.n, first.h, first.w, c))
}

/// Channel concatenation of all inputs, in input order (NHWC, along C).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ConcatOp;

impl crate::ops::spec::OpSpec for ConcatOp {
    fn kind(&self) -> &'static str {
        "concat"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        out_shape(inputs)
    }
}
