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

/// Backward of the linear layer. Given `x`, `w` and `dy` (`[n, 1, 1,
/// outputs]`), writes `dw[i][o] = Σ_n x[n][i]·dy[n][o]`, `db[o] = Σ_n
/// dy[n][o]` (f64 sums in sample order) and, when `dx` is given,
/// `dx[n][i] = Σ_o w[i][o]·dy[n][o]` (f64 sum in output order). Every
/// output is fully overwritten.
pub fn linear_backward(
    spec: &LinearSpec,
    x: &Tensor,
    w: &[f32],
    dy: &Tensor,
    dx: Option<&mut Tensor>,
    dw: &mut [f32],
    db: &mut [f32],
) -> Result<()> {
    let op = "linear backward";
    let out = spec.out_shape(x.shape)?;
    check_len(op, "input", x.shape, x.data.len())?;
    check_param(op, "weight", spec.weight_len(), w.len())?;
    check_param(op, "dw", spec.weight_len(), dw.len())?;
    check_param(op, "db", spec.outputs, db.len())?;
    check_shape(op, "dy", out, dy.shape)?;
    check_len(op, "dy", dy.shape, dy.data.len())?;
    let (ni, no) = (spec.inputs, spec.outputs);
    // dw by input row: rows are independent, so they run in parallel.
    dw.par_chunks_mut(no).enumerate().for_each(|(i, row)| {
        let mut acc = vec![0.0f64; no];
        for (xs, ds) in x.data.chunks_exact(ni).zip(dy.data.chunks_exact(no)) {
            let xv = xs[i] as f64;
            for (a, &d) in acc.iter_mut().zip(ds) {
                *a += xv * d as f64;
            }
        }
        for (o, a) in row.iter_mut().zip(&acc) {
            *o = *a as f32;
        }
    });
    let mut acc = vec![0.0f64; no];
    for ds in dy.data.chunks_exact(no) {
        for (a, &d) in acc.iter_mut().zip(ds) {
            *a += d as f64;
        }
    }
    for (o, a) in db.iter_mut().zip(&acc) {
        *o = *a as f32;
    }
    if let Some(dx) = dx {
        check_shape(op, "dx", x.shape, dx.shape)?;
        check_len(op, "dx", dx.shape, dx.data.len())?;
        dx.data
            .par_chunks_mut(ni)
            .zip(dy.data.par_chunks(no))
            .for_each(|(xs, ds)| {
                for (o, wrow) in xs.iter_mut().zip(w.chunks_exact(no)) {
                    let mut a = 0.0f64;
                    for (&wv, &d) in wrow.iter().zip(ds) {
                        a += wv as f64 * d as f64;
                    }
                    *o = a as f32;
                }
            });
    }
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for LinearSpec {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        let x = a.input("linear", 0)?;
        let (w, b) = (a.param("linear", 0)?, a.param("linear", 1)?);
        linear_forward(self, x, w, b, a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for LinearSpec {
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let x = a.input("linear", 0)?;
        let w = a.param("linear", 0)?;
        let dy = a.dy;
        let mut dw = vec![0.0f32; w.len()];
        let mut db = vec![0.0f32; self.outputs];
        match a.dx.get_mut(0).and_then(Option::as_mut) {
            Some(g) => g.write(|dx| linear_backward(self, x, w, dy, Some(dx), &mut dw, &mut db))?,
            None => linear_backward(self, x, w, dy, None, &mut dw, &mut db)?,
        }
        a.add_param_grad("linear", 0, &dw)?;
        a.add_param_grad("linear", 1, &db)
    }
}
