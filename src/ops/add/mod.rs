//! N-ary elementwise sum `y = x0 + x1 + ... + x(k-1)`, added in input order.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The output shape (the common input shape); errors on an empty list, a
/// zero dimension, or inputs of different shapes (naming the first that
/// differs).
pub fn out_shape(inputs: &[Shape]) -> Result<Shape> {
    let first = *inputs
        .first()
        .ok_or_else(|| Error::Shape("add: no inputs".into()))?;
    crate::ops::check_nonempty("add", "input 0", first)?;
    for (i, s) in inputs.iter().enumerate().skip(1) {
        if *s != first {
            return Err(Error::Shape(format!(
                "add: input {i} has shape {s}, input 0 has {first}"
            )));
        }
    }
    Ok(first)
}

/// Elementwise sum of all inputs, in input order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AddOp;

impl crate::ops::spec::OpSpec for AddOp {
    fn kind(&self) -> &'static str {
        "add"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        out_shape(inputs)
    }
    fn in_place(&self) -> crate::ops::spec::InPlace {
        crate::ops::spec::InPlace::OwnedInput
    }
    fn packs_on_store(&self) -> bool {
        true
    }
}
