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

/// The in-place sum: `acc` holds input `pos` of the list `others` with
/// `acc` inserted at `pos`, and is overwritten with the sum of that list
/// in list order, bitwise equal to [`add_forward`] (float addition is
/// commutative, so `partial + acc` equals `acc + partial`). Saves the
/// executor an output buffer and a pass whenever it owns one input.
pub fn add_forward_inplace(acc: &mut Tensor, pos: usize, others: &[&Tensor]) -> Result<()> {
    if pos > others.len() {
        return Err(crate::error::Error::Arg(format!(
            "add: in-place position {pos} beyond {} inputs",
            others.len() + 1
        )));
    }
    let mut shapes: Vec<_> = others.iter().map(|t| t.shape).collect();
    shapes.insert(pos, acc.shape);
    super::out_shape(&shapes)?;
    check_len("add", "accumulator", acc.shape, acc.data.len())?;
    for (i, t) in others.iter().enumerate() {
        check_len("add", &format!("input {i}"), t.shape, t.data.len())?;
    }
    let avx2 = crate::ops::has_avx2_fma();
    acc.data
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, ys)| {
            let lo = ci * CHUNK;
            let hi = lo + ys.len();
            let srcs: Vec<&[f32]> = others.iter().map(|t| &t.data[lo..hi]).collect();
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 and FMA were detected at run time.
                unsafe { accumulate_avx2(ys, pos, &srcs) };
                return;
            }
            let _ = avx2;
            accumulate_body(ys, pos, &srcs);
        });
    Ok(())
}

/// [`accumulate_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(ys: &mut [f32], pos: usize, srcs: &[&[f32]]) {
    accumulate_body(ys, pos, srcs)
}

/// Elements per block of the in-place sum: the partial sum of the inputs
/// before `pos` lives in a stack buffer of this many values (L1-resident).
const BLOCK: usize = 512;

/// `ys = srcs[0] + ... + srcs[pos-1] + ys + srcs[pos] + ...`, elementwise
/// in that order; every `srcs[i]` has `ys.len()` values.
#[inline(always)]
fn accumulate_body(ys: &mut [f32], pos: usize, srcs: &[&[f32]]) {
    let (before, after) = srcs.split_at(pos);
    let mut tmp = [0.0f32; BLOCK];
    for (bi, yb) in ys.chunks_mut(BLOCK).enumerate() {
        let r = bi * BLOCK..bi * BLOCK + yb.len();
        if let Some((first, rest)) = before.split_first() {
            let t = &mut tmp[..yb.len()];
            t.copy_from_slice(&first[r.clone()]);
            for s in rest {
                for (a, &v) in t.iter_mut().zip(&s[r.clone()]) {
                    *a += v;
                }
            }
            for (y, &a) in yb.iter_mut().zip(t.iter()) {
                *y += a;
            }
        }
        for s in after {
            for (y, &v) in yb.iter_mut().zip(&s[r.clone()]) {
                *y += v;
            }
        }
    }
}

/// Backward of the n-ary add: every input's gradient is `dy`. The training
/// executor sums the gradients a tensor receives from its readers with
/// this: `acc += dy`, elementwise.
pub fn add_backward_accumulate(dy: &Tensor, acc: &mut Tensor) -> Result<()> {
    check_len("add backward", "dy", dy.shape, dy.data.len())?;
    check_shape("add backward", "accumulator", dy.shape, acc.shape)?;
    check_len("add backward", "accumulator", acc.shape, acc.data.len())?;
    acc.data
        .par_chunks_mut(CHUNK)
        .zip(dy.data.par_chunks(CHUNK))
        .for_each(|(os, ds)| {
            for (o, &d) in os.iter_mut().zip(ds) {
                *o += d;
            }
        });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for super::AddOp {
    /// The sum in input order, accumulated in place into the input the plan
    /// gave the output's buffer to, if any.
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        match a.in_place {
            Some(pos) => add_forward_inplace(a.out, pos, &a.inputs),
            None => add_forward(&a.inputs, a.out),
        }
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for super::AddOp {
    /// Every input's gradient is `dy`.
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let dy = a.dy;
        for g in a.dx.iter_mut().flatten() {
            g.write(|dx| {
                check_shape("add backward", "dx", dy.shape, dx.shape)?;
                dx.data
                    .par_chunks_mut(CHUNK)
                    .zip(dy.data.par_chunks(CHUNK))
                    .for_each(|(o, d)| o.copy_from_slice(d));
                Ok(())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable and AVX2 builds of the in-place accumulation agree bit
    /// for bit with a plain in-order sum, at every position and at lengths
    /// that leave partial blocks.
    #[test]
    fn accumulate_paths_agree_bitwise() {
        let mut state = 0x5151_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for len in [1usize, 7, BLOCK, BLOCK + 3, 3 * BLOCK - 1] {
            let ins: Vec<Vec<f32>> = (0..4).map(|_| (0..len).map(|_| next()).collect()).collect();
            for k in 1..=4 {
                let want: Vec<f32> = (0..len)
                    .map(|e| ins[1..k].iter().fold(ins[0][e], |a, v| a + v[e]))
                    .collect();
                for pos in 0..k {
                    let srcs: Vec<&[f32]> = (0..k)
                        .filter(|&j| j != pos)
                        .map(|j| ins[j].as_slice())
                        .collect();
                    let mut p = ins[pos].clone();
                    accumulate_body(&mut p, pos, &srcs);
                    assert_eq!(p, want, "portable len={len} k={k} pos={pos}");
                    #[cfg(target_arch = "x86_64")]
                    if crate::ops::has_avx2_fma() {
                        let mut v = ins[pos].clone();
                        // SAFETY: AVX2 and FMA detected.
                        unsafe { accumulate_avx2(&mut v, pos, &srcs) };
                        assert_eq!(v, want, "avx2 len={len} k={k} pos={pos}");
                    }
                }
            }
        }
    }
}
