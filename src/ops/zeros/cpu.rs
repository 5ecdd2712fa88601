//! CPU zeros: fills the output. Layout: any f32 tensor.

use crate::tensor::Tensor;

/// `y = 0` (every element).
pub fn zeros_forward(y: &mut Tensor) {
    y.data.fill(0.0);
}

impl crate::ops::Forward<crate::ops::Cpu> for super::ZerosOp {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> crate::Result<()> {
        zeros_forward(a.out);
        Ok(())
    }
}

/// No gradient flows through `x · 0`.
impl crate::ops::Backward<crate::ops::Cpu> for super::ZerosOp {
    fn backward(&self, _: &mut crate::ops::CpuBwd<'_>) -> crate::Result<()> {
        Ok(())
    }
}
