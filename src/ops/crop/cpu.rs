//! CPU crop (NHWC): each output row is one contiguous run of `w · c` floats
//! of an input row. Parallel over output rows; a copy, bit-exact.

use rayon::prelude::*;

use super::CropSpec;
use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// `y = x[:, top..top+h, left..left+w, :]`; `y` is fully overwritten.
pub fn crop_forward(spec: &CropSpec, x: &Tensor, y: &mut Tensor) -> Result<()> {
    let shape = spec.out_shape(x.shape)?;
    check_len("crop", "input", x.shape, x.data.len())?;
    check_shape("crop", "output", shape, y.shape)?;
    check_len("crop", "output", y.shape, y.data.len())?;
    let (ih, iw, c) = (x.shape.h, x.shape.w, x.shape.c);
    let row = spec.w * c;
    y.data.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
        let (n, i) = (r / spec.h, r % spec.h);
        let src = ((n * ih + spec.top + i) * iw + spec.left) * c;
        out.copy_from_slice(&x.data[src..src + row]);
    });
    Ok(())
}
