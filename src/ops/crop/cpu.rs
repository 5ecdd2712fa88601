//! CPU crop (NHWC): each output pixel is one contiguous run of `c` floats
//! of an input pixel (a whole output row is one run when the window keeps
//! every channel). Parallel over output rows; a copy, bit-exact.

use rayon::prelude::*;

use super::CropSpec;
use crate::error::Result;
use crate::ops::{check_len, check_shape};
use crate::tensor::Shape;
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

/// The backward of [`crop_forward`]: `dx` (shape `input`) gets `dy` inside
/// the window and 0 everywhere else; fully overwritten.
pub fn crop_backward(spec: &CropSpec, input: Shape, dy: &Tensor, dx: &mut Tensor) -> Result<()> {
    let out = spec.out_shape(input)?;
    check_shape("crop backward", "output gradient", out, dy.shape)?;
    check_len("crop backward", "output gradient", dy.shape, dy.data.len())?;
    check_shape("crop backward", "input gradient", input, dx.shape)?;
    check_len("crop backward", "input gradient", dx.shape, dx.data.len())?;
    let (iw, ic) = (input.w, input.c);
    let in_row = iw * ic;
    dx.data
        .par_chunks_mut(in_row)
        .enumerate()
        .for_each(|(r, row)| {
            row.fill(0.0);
            let (n, y) = (r / input.h, r % input.h);
            if y < spec.top || y >= spec.top + spec.h {
                return;
            }
            let i = y - spec.top;
            for j in 0..spec.w {
                let src = ((n * spec.h + i) * spec.w + j) * spec.c;
                let dst = (spec.left + j) * ic + spec.c0;
                row[dst..dst + spec.c].copy_from_slice(&dy.data[src..src + spec.c]);
            }
        });
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cpu> for CropSpec {
    fn forward(&self, a: &mut crate::ops::CpuFwd<'_>) -> Result<()> {
        crop_forward(self, a.input("crop", 0)?, a.out)
    }
}

impl crate::ops::Backward<crate::ops::Cpu> for CropSpec {
    fn backward(&self, a: &mut crate::ops::CpuBwd<'_>) -> Result<()> {
        let dy = a.dy;
        let xs = a.in_shapes[0];
        if let Some(g) = a.dx.get_mut(0).and_then(Option::as_mut) {
            g.write(|dx| crop_backward(self, xs, dy, dx))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod backward_tests {
    use super::*;

    #[test]
    fn crop_backward_scatters_into_zeros() {
        let input = Shape::new(2, 5, 4, 3);
        let spec = CropSpec {
            top: 1,
            left: 2,
            h: 3,
            w: 2,
            c0: 1,
            c: 2,
        };
        let out = spec.out_shape(input).unwrap();
        let dy = Tensor::from_vec(out, (0..out.len()).map(|v| v as f32 + 1.0).collect()).unwrap();
        let mut dx = Tensor::from_vec(input, vec![f32::NAN; input.len()]).unwrap();
        crop_backward(&spec, input, &dy, &mut dx).unwrap();
        for n in 0..2 {
            for y in 0..5 {
                for x in 0..4 {
                    for k in 0..3 {
                        let got = dx.data[((n * 5 + y) * 4 + x) * 3 + k];
                        let inside =
                            (1..4).contains(&y) && (2..4).contains(&x) && (1..3).contains(&k);
                        let want = if inside {
                            dy.data[((n * 3 + y - 1) * 2 + x - 2) * 2 + k - 1]
                        } else {
                            0.0
                        };
                        assert_eq!(got, want, "n{n} y{y} x{x} k{k}");
                    }
                }
            }
        }
        // Cropping the scattered gradient gives dy back.
        let mut back = Tensor::from_vec(out, vec![f32::NAN; out.len()]).unwrap();
        crop_forward(&spec, &dx, &mut back).unwrap();
        assert_eq!(back.data, dy.data);
    }
}
