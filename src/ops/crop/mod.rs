//! Spatial crop (NHWC): `y[n, i, j, c] = x[n, top + i, left + j, c]` for an
//! `h × w` window. DARTS's factorized reduce reads `x[:, :, 1:, 1:]` (a crop
//! with `top = left = 1`) for its second, shifted 1×1 stride-2 conv.

pub mod cpu;
pub mod cuda;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The window: its top-left corner and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropSpec {
    pub top: usize,
    pub left: usize,
    pub h: usize,
    pub w: usize,
}

impl CropSpec {
    /// The window from `(top, left)` to the input's bottom-right corner.
    pub fn to_end(input: Shape, top: usize, left: usize) -> Result<Self> {
        let spec = CropSpec {
            top,
            left,
            h: input.h.saturating_sub(top),
            w: input.w.saturating_sub(left),
        };
        spec.out_shape(input)?;
        Ok(spec)
    }

    /// The output shape; errors when the window is empty or leaves the input.
    pub fn out_shape(&self, input: Shape) -> Result<Shape> {
        crate::ops::check_nonempty("crop", "input", input)?;
        let fits = |o: usize, s: usize, i: usize| o.checked_add(s).is_some_and(|e| e <= i);
        if self.h == 0
            || self.w == 0
            || !fits(self.top, self.h, input.h)
            || !fits(self.left, self.w, input.w)
        {
            return Err(Error::Shape(format!(
                "crop: window {}×{} at ({}, {}) does not fit in input {input}",
                self.h, self.w, self.top, self.left
            )));
        }
        Ok(Shape::new(input.n, self.h, self.w, input.c))
    }
}
