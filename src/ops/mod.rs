//! Ops of the runtime: one folder per op, `src/ops/<op>/`, holding its spec
//! and shape rule with its [`OpSpec`] (`mod.rs`), its CPU code (`cpu.rs`)
//! and the launch functions of its CUDA kernels (`cuda.rs`, kernels in
//! `src/ops/<op>/<op>.cu`). [`Op`] is the registry: one line per op (the `ops!`
//! invocation below), from which the enum and its dispatch are generated,
//! so adding an op is its folder, its kernels and that line.
//!
//! Every op works on NHWC f32 [`Tensor`](crate::tensor::Tensor)s. A forward
//! function takes its output as `&mut Tensor`, already allocated with the
//! shape the op's shape rule gives; it checks that shape, returns
//! [`Error::Shape`] on a mismatch, and overwrites every element of the output
//! (outputs are never accumulated into, so a stale or NaN-poisoned buffer is
//! fine).

pub mod add;
pub mod axis_conv;
pub mod batchnorm;
pub mod concat;
pub mod conv2d;
pub mod crop;
pub(crate) mod cuda_launch;
pub use cuda_launch::PackDest;
pub mod global_avg_pool;
pub mod input;
pub mod linear;
pub mod pass;
pub mod pool;
pub mod relu;
pub mod softmax_ce;
pub mod spec;
#[cfg(test)]
mod tests;
pub mod zeros;

pub use pass::{
    Backward, Cpu, CpuBwd, CpuFwd, CpuGrad, Cuda, CudaBwd, CudaFwd, CudaGrad, CudaKernels,
    CudaPartials, Device, DeviceBwd, Forward,
};
pub use spec::{InPlace, OpSpec, ParamDecl, Role};

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Generates [`Op`] from one line per op: the variant and the op's spec
/// type, which implements [`OpSpec`].
macro_rules! ops {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )*) => {
        /// One op of a network: the registry of every op of the runtime.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $( $(#[$doc])* $variant($ty), )*
        }

        $(
            impl From<$ty> for Op {
                fn from(op: $ty) -> Op {
                    Op::$variant(op)
                }
            }
        )*

        impl Op {
            /// The op's device-free description (shape rule, parameters,
            /// what the planners need to know).
            pub fn spec(&self) -> &dyn OpSpec {
                match self {
                    $( Op::$variant(op) => op, )*
                }
            }

            /// The op as a JSON object: `kind` and its hyper-parameters by
            /// field name (what a reference formulation in another framework
            /// needs to rebuild it; see `Graph::to_json`).
            pub fn to_json(&self) -> serde_json::Value {
                let v = match self {
                    $( Op::$variant(op) => serde_json::to_value(op), )*
                };
                let mut v = match v {
                    Ok(v @ serde_json::Value::Object(_)) => v,
                    _ => serde_json::json!({}),
                };
                v["kind"] = self.spec().kind().into();
                v
            }

            /// The CUDA kernels of every op, in registry order (each op's
            /// [`CudaKernels`] table), then those of the ops that are not
            /// graph nodes (the loss).
            pub fn cuda_kernels() -> Vec<crate::runtime::cuda::KernelRef> {
                let mut v = Vec::new();
                $( v.extend_from_slice(<$ty as CudaKernels>::KERNELS); )*
                v.extend_from_slice(softmax_ce::cuda::KERNELS);
                v
            }
        }

        impl<B: DeviceBwd> Backward<B> for Op
        where
            $( $ty: Backward<B>, )*
        {
            fn backward(&self, a: &mut B::Bwd<'_>) -> Result<()> {
                match self {
                    $( Op::$variant(op) => op.backward(a), )*
                }
            }
        }

        impl<B: Device> Forward<B> for Op
        where
            $( $ty: Forward<B>, )*
        {
            fn forward(&self, a: &mut B::Fwd<'_>) -> Result<()> {
                match self {
                    $( Op::$variant(op) => op.forward(a), )*
                }
            }
        }
    };
}

ops! {
    /// The input batch.
    Input(input::InputOp),
    /// `x · 0` of a given shape (reads its input for liveness only).
    Zeros(zeros::ZerosOp),
    /// 2-d convolution without bias.
    Conv2d(conv2d::Conv2dSpec),
    /// BatchNorm in training mode (batch statistics).
    BatchNorm(batchnorm::BatchNormSpec),
    /// A counted ReLU.
    Relu(relu::ReluOp),
    /// Max or average pooling.
    Pool(pool::PoolSpec),
    /// Elementwise sum of all inputs, in input order.
    Add(add::AddOp),
    /// Global average pooling.
    GlobalAvgPool(global_avg_pool::GlobalAvgPoolOp),
    /// A fully connected layer with bias.
    Linear(linear::LinearSpec),
    /// Channel concatenation of all inputs, in input order.
    Concat(concat::ConcatOp),
    /// A window of rows, columns and channels.
    Crop(crop::CropSpec),
    /// 1-d convolution along one spatial axis (`k × 1` or `1 × k`), no bias.
    AxisConv(axis_conv::AxisConvSpec),
}

impl Op {
    /// A short name of the op's kind, for timings and messages.
    pub fn kind(&self) -> &'static str {
        self.spec().kind()
    }
    /// The name its time is profiled under ([`OpSpec::profile_kind`]).
    pub fn profile_kind(&self) -> &'static str {
        self.spec().profile_kind()
    }
}

/// The one input of a one-input op, or an error naming the op.
pub(crate) fn one_input(op: &str, inputs: &[Shape]) -> Result<Shape> {
    match inputs {
        [s] => Ok(*s),
        _ => Err(Error::Shape(format!(
            "{op}: takes one input, got {}",
            inputs.len()
        ))),
    }
}

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
