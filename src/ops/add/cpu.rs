//! CPU n-ary add. Elementwise over the flat buffers (layout-agnostic), in
//! fixed chunks over rayon threads; each element is summed in input order
//! `((x0 + x1) + x2) + ...`, so the result is deterministic.

use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Tensor;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 16;

/// `y = inputs[0] + inputs[1] + ...`; errors on an empty list or a shape
/// mismatch; `y` is fully overwritten.
pub fn add_forward(inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape).collect();
    let shape = super::out_shape(&shapes)?;
    for (i, t) in inputs.iter().enumerate() {
        check_len("add", &format!("input {i}"), t.shape, t.data.len())?;
    }
    check_shape("add", "output", shape, y.shape)?;
    check_len("add", "output", y.shape, y.data.len())?;
    y.data
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, ys)| {
            let lo = ci * CHUNK;
            let hi = lo + ys.len();
            ys.copy_from_slice(&inputs[0].data[lo..hi]);
            for t in &inputs[1..] {
                for (o, &v) in ys.iter_mut().zip(&t.data[lo..hi]) {
                    *o += v;
                }
            }
        });
    Ok(())
}
