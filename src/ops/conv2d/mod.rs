//! 2-d convolution (cross-correlation, as in PyTorch), NHWC, no bias, zero
//! padding, square stride / padding / dilation, optional groups.
//!
//! Weight layout (ours, not PyTorch's): `[kh][kw][cin / groups][cout]`, i.e.
//! the weight of tap (ky, kx), group-local input channel ci and global output
//! channel co sits at `((ky * kw + kx) * cin_g + ci) * cout + co`. Output
//! channel co belongs to group `g = co / cout_g` and reads input channels
//! `g * cin_g .. (g + 1) * cin_g`. Output channels are innermost so that a
//! CPU kernel loads 8 or 16 consecutive output channels of one tap as SIMD
//! vectors, matching the NHWC output where a pixel's channels are contiguous.
//!
//! Output size per spatial axis:
//! `o = (i + 2 * pad - dilation * (k - 1) - 1) / stride + 1` (floor).

pub mod cpu;
pub mod cuda;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// How a conv is computed. Device-free: a backend that has no fast
/// algorithm for a conv runs it exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    /// Direct convolution: every output one multiply-add chain over the
    /// kernel window in a fixed order. The reference.
    #[default]
    Exact,
    /// Fewer multiplications where a conv allows it (on the CPU: Winograd
    /// F(4×4, 3×3) for 3×3 stride-1 convs), equal to `Exact` up to
    /// rounding; the rest as `Exact`.
    Fast,
}

impl ConvAlgo {
    /// The algorithm a name (`exact` or `fast`) stands for; an error names
    /// the bad value.
    pub fn parse(s: &str) -> Result<ConvAlgo> {
        match s {
            "exact" => Ok(ConvAlgo::Exact),
            "fast" => Ok(ConvAlgo::Fast),
            _ => Err(Error::Arg(format!(
                "conv algorithm `{s}`: expected `exact` or `fast`"
            ))),
        }
    }
    /// Its name, as [`Self::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Exact => "exact",
            ConvAlgo::Fast => "fast",
        }
    }
}

/// A 2-d convolution's hyper-parameters (plain data; the weights live elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Conv2dSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Dilation (both axes).
    pub dilation: usize,
    /// Groups; `groups == cin == cout` is a depthwise conv.
    pub groups: usize,
}

/// A convolution as a network asks for it (the input channels come from
/// its input): `ConvLayer::new(cout, k)` is a `k × k` conv with stride 1,
/// no padding, dilation 1 and one group; the builder methods change those.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvLayer {
    /// Output channels.
    pub cout: usize,
    /// Kernel size (both axes).
    pub k: usize,
    /// Stride (both axes); 1 unless set.
    pub stride: usize,
    /// Zero padding on every side; 0 unless set.
    pub pad: usize,
    /// Dilation (both axes); 1 unless set.
    pub dilation: usize,
    /// Groups (`groups == cin == cout`: depthwise); 1 unless set.
    pub groups: usize,
}

impl ConvLayer {
    /// A `k × k` conv to `cout` channels, stride 1, no padding.
    pub const fn new(cout: usize, k: usize) -> Self {
        ConvLayer {
            cout,
            k,
            stride: 1,
            pad: 0,
            dilation: 1,
            groups: 1,
        }
    }
    /// With this stride (both axes).
    pub const fn stride(self, stride: usize) -> Self {
        ConvLayer { stride, ..self }
    }
    /// With this zero padding on every side.
    pub const fn pad(self, pad: usize) -> Self {
        ConvLayer { pad, ..self }
    }
    /// With this dilation (both axes).
    pub const fn dilation(self, dilation: usize) -> Self {
        ConvLayer { dilation, ..self }
    }
    /// With this many groups (`groups == cin == cout`: depthwise).
    pub const fn groups(self, groups: usize) -> Self {
        ConvLayer { groups, ..self }
    }
    /// The spec of this layer on an input of `cin` channels.
    pub const fn spec(&self, cin: usize) -> Conv2dSpec {
        Conv2dSpec {
            cin,
            cout: self.cout,
            kh: self.k,
            kw: self.k,
            stride: self.stride,
            pad: self.pad,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

impl Conv2dSpec {
    /// A square `k × k` conv with `groups = 1`, `dilation = 1`.
    pub const fn new(cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Self {
        Conv2dSpec {
            cin,
            cout,
            kh: k,
            kw: k,
            stride,
            pad,
            dilation: 1,
            groups: 1,
        }
    }

    /// Input channels per group (0 when `groups == 0`, which
    /// [`Self::validate`] rejects).
    pub const fn cin_g(&self) -> usize {
        match self.cin.checked_div(self.groups) {
            Some(v) => v,
            None => 0,
        }
    }

    /// Output channels per group (0 when `groups == 0`).
    pub const fn cout_g(&self) -> usize {
        match self.cout.checked_div(self.groups) {
            Some(v) => v,
            None => 0,
        }
    }

    /// Checks the hyper-parameters alone (no input shape).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Shape(format!("conv2d {self:?}: {msg}")));
        for (name, v) in [
            ("cin", self.cin),
            ("cout", self.cout),
            ("kh", self.kh),
            ("kw", self.kw),
            ("stride", self.stride),
            ("dilation", self.dilation),
            ("groups", self.groups),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !self.cin.is_multiple_of(self.groups) {
            return bad(format!(
                "groups = {} does not divide cin = {}",
                self.groups, self.cin
            ));
        }
        if !self.cout.is_multiple_of(self.groups) {
            return bad(format!(
                "groups = {} does not divide cout = {}",
                self.groups, self.cout
            ));
        }
        Ok(())
    }

    /// Output size along one axis of input size `i` and kernel size `k`.
    fn out_dim(&self, axis: &str, i: usize, k: usize) -> Result<usize> {
        let span = self
            .dilation
            .checked_mul(k - 1)
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| Error::Shape(format!("conv2d: kernel {axis} span overflows")))?;
        let padded = self
            .pad
            .checked_mul(2)
            .and_then(|p| p.checked_add(i))
            .ok_or_else(|| Error::Shape(format!("conv2d: padded input {axis} overflows")))?;
        if padded < span {
            return Err(Error::Shape(format!(
                "conv2d: input {axis} = {i} with pad {} is {padded}, smaller than the \
                 dilated kernel {axis} span {span}; output {axis} would be < 1",
                self.pad
            )));
        }
        Ok((padded - span) / self.stride + 1)
    }

    /// The output shape for an input of shape `input`, or an error naming the
    /// bad dimension.
    pub fn out_shape(&self, input: Shape) -> Result<Shape> {
        self.validate()?;
        super::check_nonempty("conv2d", "input", input)?;
        if input.c != self.cin {
            return Err(Error::Shape(format!(
                "conv2d: input channels c = {} but the spec has cin = {}",
                input.c, self.cin
            )));
        }
        let oh = self.out_dim("h", input.h, self.kh)?;
        let ow = self.out_dim("w", input.w, self.kw)?;
        // Element counts the forward pass allocates or indexes must fit usize.
        let prod = |v: &[usize]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        let padded = [input.h + 2 * self.pad, input.w + 2 * self.pad, self.cin];
        for (what, dims) in [
            ("output", &[input.n, oh, ow, self.cout][..]),
            ("padded input image", &padded[..]),
            ("weight", &[self.kh, self.kw, self.cin_g(), self.cout][..]),
        ] {
            if prod(dims).is_none() {
                return Err(Error::Shape(format!(
                    "conv2d: {what} size {dims:?} overflows usize"
                )));
            }
        }
        Ok(Shape::new(input.n, oh, ow, self.cout))
    }

    /// Number of weights: `kh * kw * cin / groups * cout` (saturating;
    /// [`Self::out_shape`] rejects specs where it overflows).
    pub const fn weight_len(&self) -> usize {
        self.fan_in().saturating_mul(self.cout)
    }

    /// Fan-in of one output unit: `cin / groups * kh * kw` (saturating).
    pub const fn fan_in(&self) -> usize {
        self.cin_g().saturating_mul(self.kh).saturating_mul(self.kw)
    }

    /// Floating-point operations (a multiply-add counts 2) of one forward
    /// pass on `input`.
    pub fn flops(&self, input: Shape) -> Result<u64> {
        let o = self.out_shape(input)?;
        Ok((2 * o.len() as u64).saturating_mul(self.fan_in() as u64))
    }
}

impl crate::ops::spec::OpSpec for Conv2dSpec {
    fn is_weight_layer(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "conv2d"
    }
    /// By kernel family: depthwise, pointwise (1×1), 3×3 (stride 1 or 2),
    /// and every other shape.
    fn profile_kind(&self) -> &'static str {
        let depthwise = self.groups == self.cin && self.groups == self.cout && self.groups > 1;
        match (depthwise, self.kh, self.kw, self.stride, self.dilation) {
            (true, _, _, _, 1) => "conv2d dw",
            (true, _, _, _, _) => "conv2d dw dilated",
            (false, 1, 1, 1, _) if self.groups == 1 => "conv2d 1x1",
            (false, 1, 1, _, _) if self.groups == 1 => "conv2d 1x1 strided",
            (false, 3, 3, 1, 1) if self.groups == 1 => "conv2d 3x3",
            (false, 3, 3, _, 1) if self.groups == 1 => "conv2d 3x3 strided",
            _ => "conv2d other",
        }
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.out_shape(crate::ops::one_input("conv2d", inputs)?)
    }
    /// The weight: PyTorch's default uniform ±1/√fan_in, or (NASWOT's
    /// NB101 init) He normal with fan-out, std √(2 / (kh·kw·cout)).
    fn params(&self, scheme: crate::param::InitScheme) -> Vec<crate::ops::spec::ParamDecl> {
        use crate::param::{InitScheme, ParamInit};
        let init = match scheme {
            InitScheme::Default => ParamInit::Uniform {
                bound: (1.0 / (self.fan_in() as f64).sqrt()) as f32,
            },
            InitScheme::Naswot => ParamInit::Normal {
                std: (2.0 / (self.kh * self.kw * self.cout) as f64).sqrt() as f32,
            },
        };
        vec![crate::ops::spec::ParamDecl {
            suffix: "weight",
            len: self.weight_len(),
            init,
        }]
    }
    fn flops(&self, _inputs: &[Shape], out: Shape) -> u64 {
        2 * (out.h * out.w * out.c * self.fan_in()) as u64
    }
    fn fuses_relu_input(&self) -> bool {
        true
    }
    fn partials_out(&self, input: Shape) -> Result<Option<usize>> {
        cuda::conv2d_stats_parts(self, input).map(Some)
    }
    fn backward_reads_inputs(&self) -> bool {
        true
    }
    /// The split-K partial weight gradients of the CUDA backward.
    fn backward_scratch(&self, input: Shape) -> Result<(usize, usize)> {
        Ok((
            cuda::conv2d_backward_weight_splits(self, input)? * self.weight_len(),
            0,
        ))
    }
}
