//! Global average pooling: `[n, h, w, c] -> [n, 1, 1, c]`, the mean over
//! every pixel of each sample and channel.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::tensor::Shape;

/// The output shape `[n, 1, 1, c]`; errors on a zero dimension.
pub fn out_shape(input: Shape) -> Result<Shape> {
    crate::ops::check_nonempty("global_avg_pool", "input", input)?;
    Ok(Shape::new(input.n, 1, 1, input.c))
}

/// Global average pooling: `[n, h, w, c] → [n, 1, 1, c]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct GlobalAvgPoolOp;

impl crate::ops::spec::OpSpec for GlobalAvgPoolOp {
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        out_shape(crate::ops::one_input("global_avg_pool", inputs)?)
    }
}
