//! 2-d average / max pooling over a square `k × k` window, NHWC, like
//! PyTorch's `AvgPool2d` / `MaxPool2d` in floor mode:
//! `o = (i + 2 * pad - k) / stride + 1`, with `pad <= k / 2`.
//!
//! * Max: padding taps are ignored (treated as -inf).
//! * Avg: `count_include_pad = true` divides by `k * k`; `false` divides by
//!   the number of in-bounds taps of the window (the NB201 `avg_pool_3x3`).
//!
//! With `pad <= k / 2` every window holds at least one in-bounds tap.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Average or max.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PoolKind {
    /// Mean over the window's taps (see `count_include_pad`).
    Avg,
    /// Maximum over the window's in-bounds taps.
    Max,
}

/// Pooling hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PoolSpec {
    /// Average or max.
    #[serde(rename = "pool")]
    pub kind: PoolKind,
    /// Window size (square).
    pub k: usize,
    /// Step between windows, in pixels, on both axes (at least 1).
    pub stride: usize,
    /// Implicit padding on every side, at most `k / 2`.
    pub pad: usize,
    /// Avg only: whether padding taps count in the divisor.
    pub count_include_pad: bool,
}

impl PoolSpec {
    /// The output shape (channels unchanged), or an error naming the bad
    /// dimension.
    pub fn out_shape(&self, input: Shape) -> Result<Shape> {
        if self.k == 0 {
            return Err(Error::Shape(
                "pool: kernel size k must be at least 1".into(),
            ));
        }
        if self.stride == 0 {
            return Err(Error::Shape("pool: stride must be at least 1".into()));
        }
        if self.pad > self.k / 2 {
            return Err(Error::Shape(format!(
                "pool: pad = {} exceeds half the kernel size k = {}",
                self.pad, self.k
            )));
        }
        crate::ops::check_nonempty("pool", "input", input)?;
        let dim = |axis: &str, i: usize| -> Result<usize> {
            // pad <= k / 2 was checked, so k + i bounds i + 2 * pad.
            let padded = self
                .k
                .checked_add(i)
                .map(|_| i + 2 * self.pad)
                .ok_or_else(|| Error::Shape(format!("pool: padded input {axis} overflows")))?;
            if padded < self.k {
                return Err(Error::Shape(format!(
                    "pool: input {axis} = {i} with pad {} is smaller than the window k = {}",
                    self.pad, self.k
                )));
            }
            Ok((padded - self.k) / self.stride + 1)
        };
        Ok(Shape::new(
            input.n,
            dim("h", input.h)?,
            dim("w", input.w)?,
            input.c,
        ))
    }
}

impl crate::ops::spec::OpSpec for PoolSpec {
    fn kind(&self) -> &'static str {
        "pool"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.out_shape(crate::ops::one_input("pool", inputs)?)
    }
    /// A max pool's backward finds the arg-max in its input.
    fn backward_reads_inputs(&self) -> bool {
        self.kind == PoolKind::Max
    }
}
