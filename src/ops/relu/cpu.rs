//! CPU ReLU. Layout-agnostic (elementwise over the flat buffer); split into
//! fixed chunks over rayon threads (memory-bound, no reduction, so the
//! split cannot change a result).

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 16;

#[inline(always)]
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// `y = relu(x)`; `y` must have `x`'s shape and is fully overwritten.
pub fn relu_forward(x: &Tensor, y: &mut Tensor) -> Result<()> {
    super::out_shape(x.shape)?;
    check_len("relu", "input", x.shape, x.data.len())?;
    check_shape("relu", "output", x.shape, y.shape)?;
    check_len("relu", "output", y.shape, y.data.len())?;
    y.data
        .par_chunks_mut(CHUNK)
        .zip(x.data.par_chunks(CHUNK))
        .for_each(|(ys, xs)| {
            for (o, &v) in ys.iter_mut().zip(xs) {
                *o = relu(v);
            }
        });
    Ok(())
}

/// `x = relu(x)` in place.
pub fn relu_forward_inplace(x: &mut Tensor) -> Result<()> {
    super::out_shape(x.shape)?;
    check_len("relu", "input", x.shape, x.data.len())?;
    x.data.par_chunks_mut(CHUNK).for_each(|xs| {
        for v in xs {
            *v = relu(*v);
        }
    });
    Ok(())
}
