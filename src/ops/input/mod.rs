//! The input batch: the node every network starts from. It computes
//! nothing; devices read the scoring (or training) batch where a step reads
//! it.

use super::spec::{OpSpec, Role};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The input node, with its per-sample shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct InputOp {
    /// Per-sample shape of the batch (`n = 1`).
    pub shape: Shape,
}

impl OpSpec for InputOp {
    fn kind(&self) -> &'static str {
        "input"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        if !inputs.is_empty() {
            return Err(Error::Shape("input: takes no inputs".into()));
        }
        super::check_nonempty("input", "shape", self.shape)?;
        Ok(self.shape.with_n(1))
    }
    fn role(&self) -> Role {
        Role::Input
    }
}

/// The input computes nothing: plans read the batch where it is used, so a
/// forward pass of it is never asked for.
impl<B: super::Device> super::Forward<B> for InputOp {
    fn forward(&self, _: &mut B::Fwd<'_>) -> Result<()> {
        Err(Error::Internal("the input node has no forward pass".into()))
    }
}

/// The input has no inputs and no parameters: nothing flows back from it.
impl<B: super::DeviceBwd> super::Backward<B> for InputOp {
    fn backward(&self, _: &mut B::Bwd<'_>) -> Result<()> {
        Ok(())
    }
}

/// The input launches no kernel.
impl super::CudaKernels for InputOp {
    const KERNELS: &'static [crate::runtime::cuda::KernelRef] = &[];
}
