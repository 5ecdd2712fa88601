//! 1-d convolution along one spatial axis of an NHWC tensor (cross-
//! correlation, as in PyTorch), no bias, one group: a `k × 1` kernel along
//! H or a `1 × k` kernel along W, with stride `stride` and zero padding
//! `pad` on that axis only; the other axis is untouched. NDS's
//! `conv_7x1_1x7` (NASNet / Amoeba op sets) is `ReLU → AxisConv(W, 7, s, 3)
//! → AxisConv(H, 7, s, 3) → BN`.
//!
//! Output length along the axis, as PyTorch (floor):
//! `out_len = (len + 2 * pad - k) / stride + 1`, which must be at least 1.
//! Any `pad` is allowed; a window that lies entirely in the padding gives 0.
//!
//! # Layouts
//!
//! * Input `x`: f32 NHWC `[n][h][w][cin]`; output `y`: f32 NHWC
//!   `[n][oh][ow][cout]`, where `(oh, ow) = (out_len, w)` along H and
//!   `(h, out_len)` along W.
//! * Weight: f32 `[k][cin][cout]`: tap `t`, input channel `ci`, output
//!   channel `co` at `(t * cin + ci) * cout + co`. This is the conv2d's
//!   `[kh][kw][cin][cout]` layout for a `k × 1` or `1 × k` kernel, so the
//!   same values mean the same taps in both ops; output channels are
//!   innermost so the CPU loops vectorise over them.
//!
//! # One code path for both axes
//!
//! Both the CPU code and the kernels see a tensor as *lines*:
//! `[n][rows][len][inner][c]` ([`Lines`]), where the convolution runs
//! along `len`. Along H: `rows = 1, len = h, inner = w`; along W:
//! `rows = h, len = w, inner = 1`. Output position `o` of a line reads
//! input positions `o * stride + t - pad` for taps `t = 0..k` (those inside
//! `0..len`; padding taps are skipped, not added as zeros).
//!
//! # Determinism (CPU and CUDA agree bit for bit)
//!
//! Every sum is f32, separate multiply and add (no FMA: the kernels are
//! compiled with `--fmad=false`, Rust never contracts), in one fixed order
//! on both backends:
//! * forward `y`: taps `t` ascending, then `ci` ascending;
//! * input gradient `dx`: taps `t` ascending, then `co` ascending (a
//!   gather over the outputs that read the element; no atomics);
//! * weight gradient `dw`: per sample, the output pixels in memory order
//!   (`oy`, then `ox`) in f32; then the per-sample partials added in sample
//!   order in f64 and rounded to f32 once.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// The spatial axis an [`AxisConvSpec`] convolves along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Axis {
    /// Along the height: a `k × 1` kernel.
    H,
    /// Along the width: a `1 × k` kernel.
    W,
}

/// A 1-d convolution's hyper-parameters (plain data; the weight lives
/// elsewhere, `[k][cin][cout]`, see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AxisConvSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// The axis the kernel runs along.
    pub axis: Axis,
    /// Kernel length along `axis`.
    pub k: usize,
    /// Stride along `axis` (the other axis has stride 1).
    pub stride: usize,
    /// Zero padding on both ends of `axis` (none on the other axis).
    pub pad: usize,
}

/// An NHWC tensor seen as `[n][rows][len][inner][c]`, the convolution
/// running along `len` (see the module docs). Built by
/// [`AxisConvSpec::lines`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lines {
    /// Samples.
    pub n: usize,
    /// Lines per sample: 1 along H, `h` along W.
    pub rows: usize,
    /// Positions along the convolved axis: `h` along H, `w` along W.
    pub len: usize,
    /// Pixels between two positions of a line: `w` along H, 1 along W.
    pub inner: usize,
}

impl AxisConvSpec {
    /// Number of weights: `k * cin * cout` (saturating; [`Self::out_shape`]
    /// rejects specs where it overflows).
    pub const fn weight_len(&self) -> usize {
        self.fan_in().saturating_mul(self.cout)
    }

    /// Fan-in of one output unit: `k * cin` (saturating).
    pub const fn fan_in(&self) -> usize {
        self.k.saturating_mul(self.cin)
    }

    /// The lines of a tensor of shape `s` along this spec's axis.
    pub const fn lines(&self, s: Shape) -> Lines {
        match self.axis {
            Axis::H => Lines {
                n: s.n,
                rows: 1,
                len: s.h,
                inner: s.w,
            },
            Axis::W => Lines {
                n: s.n,
                rows: s.h,
                len: s.w,
                inner: 1,
            },
        }
    }

    /// Checks the hyper-parameters alone (no input shape).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("cin", self.cin),
            ("cout", self.cout),
            ("k", self.k),
            ("stride", self.stride),
        ] {
            if v == 0 {
                return Err(Error::Shape(format!(
                    "axis_conv {self:?}: {name} must be at least 1"
                )));
            }
        }
        Ok(())
    }

    /// Output length along the axis for an input of length `len`, or an
    /// error naming the values that leave no output.
    fn out_len(&self, len: usize) -> Result<usize> {
        let axis = self.axis_name();
        let padded = self
            .pad
            .checked_mul(2)
            .and_then(|p| p.checked_add(len))
            .ok_or_else(|| {
                Error::Shape(format!(
                    "axis_conv: padded input {axis} (pad = {}) overflows",
                    self.pad
                ))
            })?;
        if padded < self.k {
            return Err(Error::Shape(format!(
                "axis_conv: input {axis} = {len} with pad = {} is {padded}, smaller than the \
                 kernel k = {}; output {axis} would be < 1",
                self.pad, self.k
            )));
        }
        Ok((padded - self.k) / self.stride + 1)
    }

    /// `"h"` or `"w"`, for messages.
    const fn axis_name(&self) -> &'static str {
        match self.axis {
            Axis::H => "h",
            Axis::W => "w",
        }
    }

    /// The output shape for an input of shape `input`, or an error naming
    /// the bad value (a zero size, a channel mismatch, an output shorter
    /// than 1, a size that overflows).
    pub fn out_shape(&self, input: Shape) -> Result<Shape> {
        self.validate()?;
        super::check_nonempty("axis_conv", "input", input)?;
        if input.c != self.cin {
            return Err(Error::Shape(format!(
                "axis_conv: input channels c = {} but the spec has cin = {}",
                input.c, self.cin
            )));
        }
        let out = match self.axis {
            Axis::H => Shape::new(input.n, self.out_len(input.h)?, input.w, self.cout),
            Axis::W => Shape::new(input.n, input.h, self.out_len(input.w)?, self.cout),
        };
        // Element counts the passes allocate or index must fit usize (and
        // so the kernels' u64 indices).
        let prod = |v: &[usize]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        for (what, dims) in [
            ("input", &[input.n, input.h, input.w, input.c][..]),
            ("output", &[out.n, out.h, out.w, out.c][..]),
            ("weight", &[self.k, self.cin, self.cout][..]),
            (
                "per-sample weight gradients",
                &[input.n, self.k, self.cin, self.cout][..],
            ),
        ] {
            if prod(dims).is_none() {
                return Err(Error::Shape(format!(
                    "axis_conv: {what} size {dims:?} overflows usize"
                )));
            }
        }
        Ok(out)
    }
}

impl crate::ops::spec::OpSpec for AxisConvSpec {
    fn is_weight_layer(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "axis_conv"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.out_shape(crate::ops::one_input("axis_conv", inputs)?)
    }
    /// The weight, drawn as the conv2d's for a `k × 1` / `1 × k` kernel:
    /// PyTorch's default uniform ±1/√fan_in (`fan_in = k · cin`), or
    /// (NASWOT's NB101 init) He normal with fan-out, std √(2 / (k·cout)).
    fn params(&self, scheme: crate::param::InitScheme) -> Vec<crate::ops::spec::ParamDecl> {
        use crate::param::{InitScheme, ParamInit};
        let init = match scheme {
            InitScheme::Default => ParamInit::Uniform {
                bound: (1.0 / (self.fan_in() as f64).sqrt()) as f32,
            },
            InitScheme::Naswot => ParamInit::Normal {
                std: (2.0 / self.k.saturating_mul(self.cout) as f64).sqrt() as f32,
            },
        };
        vec![crate::ops::spec::ParamDecl {
            suffix: "weight",
            len: self.weight_len(),
            init,
        }]
    }
    fn flops(&self, _inputs: &[Shape], out: Shape) -> u64 {
        (out.per_sample() as u64)
            .saturating_mul(self.fan_in() as u64)
            .saturating_mul(2)
    }
    /// NDS's op is ReLU → conv: the ReLU is applied as the input is loaded.
    fn fuses_relu_input(&self) -> bool {
        true
    }
    /// The weight gradient reads the input (and the fused ReLU's mask).
    fn backward_reads_inputs(&self) -> bool {
        true
    }
    /// The per-sample partial weight gradients of the CUDA backward: f32
    /// `[n][k][cin][cout]`.
    fn backward_scratch(&self, input: Shape) -> Result<(usize, usize)> {
        self.out_shape(input)?;
        let len = input.n.checked_mul(self.weight_len()).ok_or_else(|| {
            Error::Shape(format!(
                "axis conv: backward scratch of {} samples x {} weights overflows",
                input.n,
                self.weight_len()
            ))
        })?;
        Ok((len, 0))
    }
}
