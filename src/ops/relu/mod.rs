//! ReLU: `y = x if x > 0 else 0`, elementwise (any shape).
//!
//! Written as `x > 0 ? x : 0` rather than `max(x, 0)`: -0.0 and NaN both
//! give +0.0, consistent with the activation code bit `x > 0`.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::tensor::Shape;

/// The output shape (the input's); errors on a zero dimension.
pub fn out_shape(input: Shape) -> Result<Shape> {
    crate::ops::check_nonempty("relu", "input", input)?;
    Ok(input)
}

/// A ReLU. Every ReLU left after pruning is counted: its input's sign bits are part of the code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ReluOp;

impl crate::ops::spec::OpSpec for ReluOp {
    fn kind(&self) -> &'static str {
        "relu"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        out_shape(crate::ops::one_input("relu", inputs)?)
    }
    fn role(&self) -> crate::ops::spec::Role {
        crate::ops::spec::Role::CountedRelu
    }
    /// The mask of its backward is its input's sign.
    fn backward_reads_inputs(&self) -> bool {
        true
    }
}
