//! `x · 0`: zeros of a given per-sample shape. A cell node all of whose
//! incoming edges are `none` holds this; like the reference's `x.mul(0.)`
//! it keeps its input live (its input is a liveness-only edge), so the
//! layers before a cell that ignores its input still reach the output and
//! their ReLUs still count. No gradient flows through it.

pub mod cpu;
pub mod cuda;

use super::spec::OpSpec;
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Zeros of per-sample shape `shape`, reading one input for liveness only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ZerosOp {
    /// Per-sample output shape (`n = 1`); DARTS's `none` at stride 2 is
    /// smaller than its input.
    pub shape: Shape,
}

impl OpSpec for ZerosOp {
    fn kind(&self) -> &'static str {
        "zeros"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        if inputs.len() != 1 {
            return Err(Error::Shape(format!(
                "zeros: takes one (liveness) input, got {}",
                inputs.len()
            )));
        }
        super::check_nonempty("zeros", "shape", self.shape)?;
        Ok(self.shape.with_n(1))
    }
    fn passes_gradient(&self) -> bool {
        false
    }
}
