//! CPU crop (NHWC): each output pixel is one contiguous run of `c` floats
//! of an input pixel (a whole output row is one run when the window keeps
//! every channel). Parallel over output rows; a copy, bit-exact.

use rayon::prelude::*;

use super::CropSpec;
use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// `y = x[:, top..top+h, left..left+w, c0..c0+c]`; `y` is fully overwritten.
pub fn crop_forward(spec: &CropSpec, x: &Tensor, y: &mut Tensor) -> Result<()> {
    let shape = spec.out_shape(x.shape)?;
    check_len("crop", "input", x.shape, x.data.len())?;
    check_shape("crop", "output", shape, y.shape)?;
    check_len("crop", "output", y.shape, y.data.len())?;
    let (ih, iw, ic) = (x.shape.h, x.shape.w, x.shape.c);
    let row = spec.w * spec.c;
    y.data.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
        let (n, i) = (r / spec.h, r % spec.h);
        let src = ((n * ih + spec.top + i) * iw + spec.left) * ic + spec.c0;
        if spec.c == ic {
            out.copy_from_slice(&x.data[src..src + row]);
        } else {
            for (j, px) in out.chunks_exact_mut(spec.c).enumerate() {
                let s = src + j * ic;
                px.copy_from_slice(&x.data[s..s + spec.c]);
            }
        }
    });
    Ok(())
}
