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

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Average or max.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Mean over the window's taps (see `count_include_pad`).
    Avg,
    /// Maximum over the window's in-bounds taps.
    Max,
}

/// Pooling hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    /// Average or max.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rule() {
        let avg = PoolSpec {
            kind: PoolKind::Avg,
            k: 3,
            stride: 1,
            pad: 1,
            count_include_pad: false,
        };
        let x = Shape::new(2, 7, 5, 3);
        assert_eq!(avg.out_shape(x).unwrap(), x);
        let p2 = PoolSpec {
            k: 2,
            stride: 2,
            pad: 0,
            ..avg
        };
        assert_eq!(p2.out_shape(x).unwrap(), Shape::new(2, 3, 2, 3));
        for (spec, shape, needle) in [
            (PoolSpec { pad: 2, ..avg }, x, "pad"),
            (PoolSpec { k: 0, ..avg }, x, "k"),
            (PoolSpec { stride: 0, ..avg }, x, "stride"),
            (
                PoolSpec {
                    k: 5,
                    pad: 0,
                    ..avg
                },
                Shape::new(1, 4, 9, 1),
                "input h",
            ),
            (
                PoolSpec {
                    k: 5,
                    pad: 0,
                    ..avg
                },
                Shape::new(1, 9, 4, 1),
                "input w",
            ),
            (avg, Shape::new(1, 3, 3, 0), "c = 0"),
        ] {
            match spec.out_shape(shape) {
                Err(Error::Shape(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("expected an error for {spec:?} {shape}, got {other:?}"),
            }
        }
    }
}
