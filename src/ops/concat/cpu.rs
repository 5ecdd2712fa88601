//! CPU channel concatenation (NHWC): per pixel, each input's channel run is
//! copied into its slot of the output pixel. Parallel over fixed chunks of
//! pixels; a copy, so the split cannot change a result.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// Output pixels per parallel chunk.
const PIXELS: usize = 1 << 10;

/// `y = concat(inputs)` along channels; `y` must have the shape
/// [`super::out_shape`] gives and is fully overwritten.
pub fn concat_forward(inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape).collect();
    let shape = super::out_shape(&shapes)?;
    for (i, t) in inputs.iter().enumerate() {
        check_len("concat", &format!("input {i}"), t.shape, t.data.len())?;
    }
    check_shape("concat", "output", shape, y.shape)?;
    check_len("concat", "output", y.shape, y.data.len())?;
    let cy = shape.c;
    y.data
        .par_chunks_mut(PIXELS * cy)
        .enumerate()
        .for_each(|(ci, ys)| {
            let p0 = ci * PIXELS;
            for (dp, out) in ys.chunks_exact_mut(cy).enumerate() {
                let p = p0 + dp;
                let mut off = 0;
                for t in inputs {
                    let c = t.shape.c;
                    out[off..off + c].copy_from_slice(&t.data[p * c..(p + 1) * c]);
                    off += c;
                }
            }
        });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for super::ConcatOp {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        concat_forward(&a.inputs, a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for super::ConcatOp {
    /// Input `k`'s gradient is its channel window of `dy`.
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let dy = a.dy;
        let mut c0 = 0;
        for (k, g) in a.dx.iter_mut().enumerate() {
            let c = a.in_shapes[k].c;
            if let Some(g) = g {
                let spec = crate::ops::crop::CropSpec {
                    top: 0,
                    left: 0,
                    h: dy.shape.h,
                    w: dy.shape.w,
                    c0,
                    c,
                };
                g.write(|dx| crate::ops::crop::cpu::crop_forward(&spec, dy, dx))?;
            }
            c0 += c;
        }
        Ok(())
    }
}
