//! Crop (NHWC): a window of rows, columns and channels,
//! `y[n, i, j, k] = x[n, top + i, left + j, c0 + k]` for an `h × w × c`
//! window. DARTS's factorized reduce reads `x[:, :, 1:, 1:]` (a spatial
//! crop, `top = left = 1`) for its second, shifted 1×1 stride-2 conv;
//! NAS-Bench-101 truncates a vertex's output to its first `c` channels when
//! it feeds a narrower vertex (`c0 = 0`).

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The window: its top-left corner and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CropSpec {
    /// Row of the window's top edge.
    pub top: usize,
    /// Column of the window's left edge.
    pub left: usize,
    /// Rows of the window (the output's height).
    pub h: usize,
    /// Columns of the window (the output's width).
    pub w: usize,
    /// First channel of the window.
    pub c0: usize,
    /// Channels of the window.
    pub c: usize,
}

impl CropSpec {
    /// The window from `(top, left)` to the input's bottom-right corner.
    pub fn to_end(input: Shape, top: usize, left: usize) -> Result<Self> {
        let spec = CropSpec {
            top,
            left,
            h: input.h.saturating_sub(top),
            w: input.w.saturating_sub(left),
            c0: 0,
            c: input.c,
        };
        spec.out_shape(input)?;
        Ok(spec)
    }

    /// The first `c` channels of every pixel (NB101's `truncate`).
    pub fn first_channels(input: Shape, c: usize) -> Result<Self> {
        let spec = CropSpec {
            top: 0,
            left: 0,
            h: input.h,
            w: input.w,
            c0: 0,
            c,
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
            || self.c == 0
            || !fits(self.top, self.h, input.h)
            || !fits(self.left, self.w, input.w)
            || !fits(self.c0, self.c, input.c)
        {
            return Err(Error::Shape(format!(
                "crop: window {}×{}×{} at ({}, {}, {}) does not fit in input {input}",
                self.h, self.w, self.c, self.top, self.left, self.c0
            )));
        }
        Ok(Shape::new(input.n, self.h, self.w, self.c))
    }
}

impl crate::ops::spec::OpSpec for CropSpec {
    fn kind(&self) -> &'static str {
        "crop"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.out_shape(crate::ops::one_input("crop", inputs)?)
    }
}
