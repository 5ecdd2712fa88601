//! ReLU: `y = x if x > 0 else 0`, elementwise (any shape).
//!
//! Written as `x > 0 ? x : 0` rather than `max(x, 0)`: -0.0 and NaN both
//! give +0.0, consistent with the activation code bit `x > 0`.

pub mod cpu;
pub mod cuda;

use crate::error::Result;
use crate::tensor::Shape;

/// The output shape (the input's); errors on a zero dimension.
pub fn out_shape(input: Shape) -> Result<Shape> {
    crate::ops::check_nonempty("relu", "input", input)?;
    Ok(input)
}
