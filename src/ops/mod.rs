//! Ops of the runtime: one folder per op (shape rule in mod.rs, CPU code in cpu.rs).
//!
//! Every op works on NHWC f32 [`Tensor`](crate::tensor::Tensor)s. A forward
//! function takes its output as `&mut Tensor`, already allocated with the
//! shape the op's shape rule gives; it checks that shape, returns
//! [`Error::Shape`] on a mismatch, and overwrites every element of the output
//! (outputs are never accumulated into, so a stale or NaN-poisoned buffer is
//! fine).

pub mod add;
pub mod batchnorm;
pub mod concat;
pub mod conv2d;
pub mod crop;
pub(crate) mod cuda_launch;
pub use cuda_launch::PackDest;
pub mod global_avg_pool;
pub mod linear;
pub mod pool;
pub mod relu;
pub mod softmax_ce;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Whether this CPU runs AVX2 + FMA code (checked at run time; the crate is
/// compiled for baseline x86-64, so SIMD kernels are `#[target_feature]`
/// functions chosen by this test, with portable fallbacks).
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `Err(Error::Shape)` unless `got == want`; `what` names the tensor.
pub(crate) fn check_shape(op: &str, what: &str, want: Shape, got: Shape) -> Result<()> {
    if want == got {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{op}: {what} has shape {got}, expected {want}"
        )))
    }
}

/// `Err(Error::Shape)` unless a tensor's buffer holds exactly its shape's
/// elements (a shape whose element count overflows `usize` is an error, not
/// a panic). After this check `shape.len()` and `shape.per_sample()` are safe.
pub(crate) fn check_len(op: &str, what: &str, shape: Shape, len: usize) -> Result<()> {
    let want = [shape.n, shape.h, shape.w, shape.c]
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b));
    match want {
        Some(want) if want == len => Ok(()),
        Some(want) => Err(Error::Shape(format!(
            "{op}: {what} of shape {shape} holds {len} elements, expected {want}"
        ))),
        None => Err(Error::Shape(format!(
            "{op}: {what} shape {shape} has more elements than fit in usize"
        ))),
    }
}

/// `Err(Error::Shape)` unless a parameter slice has `want` elements.
pub(crate) fn check_param(op: &str, what: &str, want: usize, got: usize) -> Result<()> {
    if want == got {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{op}: {what} has {got} elements, expected {want}"
        )))
    }
}

/// `Err(Error::Shape)` if any dimension of an input tensor is zero.
pub(crate) fn check_nonempty(op: &str, what: &str, s: Shape) -> Result<()> {
    for (name, v) in [("n", s.n), ("h", s.h), ("w", s.w), ("c", s.c)] {
        if v == 0 {
            return Err(Error::Shape(format!("{op}: {what} {s} has {name} = 0")));
        }
    }
    Ok(())
}
