//! CPU axis convolution: forward, input gradient and weight gradient, the
//! twins of the kernels of `axis_conv.cu`, bit for bit (same f32
//! operations in the same order; see [`super`]).
//!
//! Plain loops over the line view `[n][rows][len][inner][c]` of
//! [`super::Lines`]. The innermost loop runs over channels whose values
//! are independent sums (output channels of the forward and of the weight
//! gradient, input channels of the input gradient), so the compiler
//! vectorises it without reordering any one sum. Work is split over rayon
//! threads by whole lines (forward, input gradient) or samples (weight
//! gradient), never inside a sum, so the thread count cannot change a
//! result.

use rayon::prelude::*;

use super::AxisConvSpec;
use crate::error::Result;
use crate::ops::{check_len, check_param, check_shape};
use crate::tensor::Tensor;

/// The ReLU the op applies to its input when it fuses one: `v > 0 ? v :
/// +0` (NaN gives 0), as `ops::relu` and the kernels compute it.
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// The input position tap `t` of output position `o` reads, or `None` for
/// a padding tap: `o * stride + t - pad` when inside `0..len`.
#[inline(always)]
fn tap_source(spec: &AxisConvSpec, len: usize, o: usize, t: usize) -> Option<usize> {
    let q = o * spec.stride + t;
    (q >= spec.pad && q - spec.pad < len).then(|| q - spec.pad)
}

/// The output position whose tap `t` reads input position `i`, if any:
/// `o` with `o * stride + t = i + pad` and `o < out_len`.
#[inline(always)]
fn tap_reader(spec: &AxisConvSpec, out_len: usize, i: usize, t: usize) -> Option<usize> {
    let q = i + spec.pad;
    if q < t || !(q - t).is_multiple_of(spec.stride) {
        return None;
    }
    let o = (q - t) / spec.stride;
    (o < out_len).then_some(o)
}

/// `y = axis_conv(relu_input ? relu(x) : x, w)`. `x` is `[n, h, w, cin]`,
/// `w` has [`AxisConvSpec::weight_len`] values in the `[k][cin][cout]`
/// layout, `y` must have the shape [`AxisConvSpec::out_shape`] gives;
/// every element of `y` is overwritten. `x` is not modified.
pub fn axis_conv_forward(
    spec: &AxisConvSpec,
    x: &Tensor,
    w: &[f32],
    y: &mut Tensor,
    relu_input: bool,
) -> Result<()> {
    let out = spec.out_shape(x.shape)?;
    check_len("axis_conv", "input", x.shape, x.data.len())?;
    check_param("axis_conv", "weight", spec.weight_len(), w.len())?;
    check_shape("axis_conv", "output", out, y.shape)?;
    check_len("axis_conv", "output", y.shape, y.data.len())?;
    let li = spec.lines(x.shape);
    let out_len = spec.lines(out).len;
    let (cin, cout, inner) = (spec.cin, spec.cout, li.inner);
    y.data
        .par_chunks_mut(out_len * inner * cout)
        .zip(x.data.par_chunks(li.len * inner * cin))
        .for_each(|(yline, xline)| {
            for o in 0..out_len {
                for j in 0..inner {
                    let acc = &mut yline[(o * inner + j) * cout..][..cout];
                    acc.fill(0.0);
                    for t in 0..spec.k {
                        let Some(i) = tap_source(spec, li.len, o, t) else {
                            continue;
                        };
                        let xp = &xline[(i * inner + j) * cin..][..cin];
                        for (ci, &v) in xp.iter().enumerate() {
                            let xv = if relu_input { relu(v) } else { v };
                            let wrow = &w[(t * cin + ci) * cout..][..cout];
                            for (a, &wv) in acc.iter_mut().zip(wrow) {
                                *a += xv * wv;
                            }
                        }
                    }
                }
            }
        });
    Ok(())
}

/// `dx = ∂L/∂x` of `y = axis_conv(relu?(x), w)` given `dy = ∂L/∂y`,
/// fully overwritten: `dx[i][ci] = mask · Σ_t Σ_co dy[o(i, t)][co] ·
/// w[t][ci][co]` over the taps `t` that some output `o` reads `i` with
/// (taps ascending, then `co` ascending), where `mask` is 0 where
/// `relu_mask` (the input of the ReLU the op fused) is not > 0 and 1
/// otherwise (or without `relu_mask`). `dx` has the input's shape, `dy`
/// the output's.
pub fn axis_conv_backward_input(
    spec: &AxisConvSpec,
    dy: &Tensor,
    w: &[f32],
    dx: &mut Tensor,
    relu_mask: Option<&Tensor>,
) -> Result<()> {
    let out = spec.out_shape(dx.shape)?;
    check_len("axis_conv backward", "dx", dx.shape, dx.data.len())?;
    check_shape("axis_conv backward", "dy", out, dy.shape)?;
    check_len("axis_conv backward", "dy", dy.shape, dy.data.len())?;
    check_param("axis_conv backward", "weight", spec.weight_len(), w.len())?;
    if let Some(m) = relu_mask {
        check_shape("axis_conv backward", "ReLU mask", dx.shape, m.shape)?;
        check_len("axis_conv backward", "ReLU mask", m.shape, m.data.len())?;
    }
    let (cin, cout, k) = (spec.cin, spec.cout, spec.k);
    // `[k][cout][cin]`: for one (tap, co) the weights of consecutive input
    // channels are contiguous, so the loop over ci vectorises.
    let mut wt = vec![0.0f32; w.len()];
    for t in 0..k {
        for ci in 0..cin {
            for co in 0..cout {
                wt[(t * cout + co) * cin + ci] = w[(t * cin + ci) * cout + co];
            }
        }
    }
    let li = spec.lines(dx.shape);
    let out_len = spec.lines(out).len;
    let inner = li.inner;
    let line_in = li.len * inner * cin;
    let mask = relu_mask.map(|m| m.data.as_slice());
    dx.data
        .par_chunks_mut(line_in)
        .zip(dy.data.par_chunks(out_len * inner * cout))
        .enumerate()
        .for_each(|(l, (dxline, dyline))| {
            let mline = mask.map(|m| &m[l * line_in..][..line_in]);
            for i in 0..li.len {
                for j in 0..inner {
                    let px = (i * inner + j) * cin;
                    let acc = &mut dxline[px..][..cin];
                    acc.fill(0.0);
                    for t in 0..k {
                        let Some(o) = tap_reader(spec, out_len, i, t) else {
                            continue;
                        };
                        let dyp = &dyline[(o * inner + j) * cout..][..cout];
                        for (co, &d) in dyp.iter().enumerate() {
                            let wrow = &wt[(t * cout + co) * cin..][..cin];
                            for (a, &wv) in acc.iter_mut().zip(wrow) {
                                *a += d * wv;
                            }
                        }
                    }
                    if let Some(m) = mline {
                        for (a, &mv) in acc.iter_mut().zip(&m[px..][..cin]) {
                            if mv <= 0.0 || mv.is_nan() {
                                *a = 0.0;
                            }
                        }
                    }
                }
            }
        });
    Ok(())
}

/// `dw = ∂L/∂w` of `y = axis_conv(relu_input ? relu(x) : x, w)` given
/// `dy`, fully overwritten (layout `[k][cin][cout]`):
/// `dw[t][ci][co] = Σ_b Σ_{output pixels p} x̂[b][src(p, t)][ci] ·
/// dy[b][p][co]`, `x̂` the input as the forward read it. Each sample's sum
/// is f32 over its output pixels in memory order; the per-sample partials
/// are then added in sample order in f64 and rounded once (the CUDA
/// kernels' split and order).
pub fn axis_conv_backward_weight(
    spec: &AxisConvSpec,
    x: &Tensor,
    dy: &Tensor,
    dw: &mut [f32],
    relu_input: bool,
) -> Result<()> {
    let out = spec.out_shape(x.shape)?;
    check_len("axis_conv backward", "input", x.shape, x.data.len())?;
    check_shape("axis_conv backward", "dy", out, dy.shape)?;
    check_len("axis_conv backward", "dy", dy.shape, dy.data.len())?;
    check_param(
        "axis_conv backward",
        "weight gradient",
        spec.weight_len(),
        dw.len(),
    )?;
    let wlen = spec.weight_len();
    let li = spec.lines(x.shape);
    let out_len = spec.lines(out).len;
    let (cin, cout, inner) = (spec.cin, spec.cout, li.inner);
    // Per sample `[k][cin][cout]` f32 partials.
    let mut part = vec![0.0f32; li.n * wlen];
    part.par_chunks_mut(wlen)
        .zip(x.data.par_chunks(x.shape.per_sample()))
        .zip(dy.data.par_chunks(out.per_sample()))
        .for_each(|((p, ximg), dyimg)| {
            for r in 0..li.rows {
                let xline = &ximg[r * li.len * inner * cin..][..li.len * inner * cin];
                let dyline = &dyimg[r * out_len * inner * cout..][..out_len * inner * cout];
                for o in 0..out_len {
                    for j in 0..inner {
                        let dyp = &dyline[(o * inner + j) * cout..][..cout];
                        for t in 0..spec.k {
                            let Some(i) = tap_source(spec, li.len, o, t) else {
                                continue;
                            };
                            let xp = &xline[(i * inner + j) * cin..][..cin];
                            for (ci, &v) in xp.iter().enumerate() {
                                let xv = if relu_input { relu(v) } else { v };
                                let prow = &mut p[(t * cin + ci) * cout..][..cout];
                                for (a, &d) in prow.iter_mut().zip(dyp) {
                                    *a += xv * d;
                                }
                            }
                        }
                    }
                }
            }
        });
    dw.par_iter_mut().enumerate().for_each(|(e, d)| {
        let mut s = 0.0f64;
        for b in 0..li.n {
            s += f64::from(part[b * wlen + e]);
        }
        *d = s as f32;
    });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for AxisConvSpec {
    /// The conv of the input, or of its ReLU when the plan fused the ReLU
    /// that feeds it.
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        let x = a.input("axis_conv", 0)?;
        let w = a.param("axis_conv", 0)?;
        axis_conv_forward(self, x, w, a.out, a.relu_input)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for AxisConvSpec {
    /// The weight gradient (of the ReLU'd input, when the op applied the
    /// ReLU), then the input gradient, masked by that ReLU.
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let x = a.input("axis_conv", 0)?;
        let w = a.param("axis_conv", 0)?;
        let (dy, relu) = (a.dy, a.relu_input);
        let mut dw = vec![0.0f32; w.len()];
        axis_conv_backward_weight(self, x, dy, &mut dw, relu)?;
        a.add_param_grad("axis_conv", 0, &dw)?;
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            g.write(|dx| axis_conv_backward_input(self, dy, w, dx, relu.then_some(x)))?;
        }
        Ok(())
    }
}
