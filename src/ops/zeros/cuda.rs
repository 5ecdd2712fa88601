//! CUDA zeros: a memset of the output (no kernel). Layout: any f32 buffer.

use crate::error::Result;
use crate::runtime::cuda::KernelRef;
use crate::runtime::cuda::{CudaDevice, DViewMut};

impl crate::ops::CudaKernels for super::ZerosOp {
    const KERNELS: &'static [KernelRef] = &[];
}

/// `y = 0` (every element), queued on the device's stream.
pub fn zeros_forward(dev: &CudaDevice, y: &mut DViewMut<'_, f32>) -> Result<()> {
    dev.memset_zeros(y)
}

impl crate::ops::Forward<crate::ops::Cuda> for super::ZerosOp {
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        zeros_forward(a.dev, &mut a.out)
    }
}

/// No gradient flows through `x · 0`.
impl crate::ops::Backward<crate::ops::Cuda> for super::ZerosOp {
    fn backward(&self, _: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        Ok(())
    }
}
