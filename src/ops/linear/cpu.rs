//! CPU linear layer. `x` is read as `[n][inputs]` (a sample's flat NHWC
//! values), `w` as `[inputs][outputs]`. Per sample, `outputs` accumulators
//! take `acc += x[i] * w[i][..]` for i in order (a row of `w` is contiguous,
//! so this vectorises over outputs), then `y = acc + b`. Samples run in
//! parallel; the summation order is fixed.

use rayon::prelude::*;

use super::LinearSpec;
use crate::error::Result;
use crate::ops::{check_len, check_param, check_shape};
use crate::tensor::Tensor;

/// `y[n][o] = sum_i x[n][i] * w[i][o] + b[o]`; `y` is `[n, 1, 1, outputs]`
/// and is fully overwritten.
pub fn linear_forward(
    spec: &LinearSpec,
    x: &Tensor,
    w: &[f32],
    b: &[f32],
    y: &mut Tensor,
) -> Result<()> {
    let out = spec.out_shape(x.shape)?;
    check_len("linear", "input", x.shape, x.data.len())?;
    check_param("linear", "weight", spec.weight_len(), w.len())?;
    check_param("linear", "bias", spec.outputs, b.len())?;
    check_shape("linear", "output", out, y.shape)?;
    check_len("linear", "output", y.shape, y.data.len())?;
    let no = spec.outputs;
    y.data
        .par_chunks_mut(no)
        .zip(x.data.par_chunks(spec.inputs))
        .for_each(|(ys, xs)| {
            ys.fill(0.0);
            for (&xv, wrow) in xs.iter().zip(w.chunks_exact(no)) {
                for (a, &wv) in ys.iter_mut().zip(wrow) {
                    *a += xv * wv;
                }
            }
            for (a, &bv) in ys.iter_mut().zip(b) {
                *a += bv;
            }
        });
    Ok(())
}
