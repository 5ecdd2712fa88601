//! BatchNorm2d in training mode: per channel, statistics over (n, h, w) of
//! the batch itself (biased variance), then `y = (x - mean) * inv_std *
//! gamma + beta` with `inv_std = 1 / sqrt(var + eps)`.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// BatchNorm hyper-parameters (plain data; gamma and beta live elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct BatchNormSpec {
    /// Channels (the `c` of the NHWC input).
    pub channels: usize,
    /// Added to the variance; must be positive and finite (the crate uses 1e-5).
    pub eps: f32,
}

impl BatchNormSpec {
    /// `channels` channels with PyTorch's default `eps = 1e-5`.
    pub const fn new(channels: usize) -> Self {
        BatchNormSpec {
            channels,
            eps: 1e-5,
        }
    }

    /// The output shape (the input's), or an error naming the bad dimension.
    pub fn out_shape(&self, input: Shape) -> Result<Shape> {
        if self.channels == 0 {
            return Err(Error::Shape(
                "batchnorm: channels must be at least 1".into(),
            ));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::Shape(format!(
                "batchnorm: eps = {} must be positive and finite",
                self.eps
            )));
        }
        crate::ops::check_nonempty("batchnorm", "input", input)?;
        if input.c != self.channels {
            return Err(Error::Shape(format!(
                "batchnorm: input channels c = {} but the spec has channels = {}",
                input.c, self.channels
            )));
        }
        Ok(input)
    }
}

/// Batch statistics of one forward pass, kept for the backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats {
    /// Per-channel batch mean.
    pub mean: Vec<f32>,
    /// Per-channel `1 / sqrt(var + eps)` (biased variance).
    pub inv_std: Vec<f32>,
}

/// Per-channel sums of a tensor over (n, h, w), in f64: what a conv with
/// fused statistics ([`crate::ops::conv2d::cpu::conv2d_forward_stats`])
/// hands to [`cpu::batchnorm_forward_from_sums`], so that BatchNorm needs no
/// statistics pass of its own.
///
/// Each sample's sums are accumulated pixel by pixel in f64 and the samples
/// are combined in sample order, so the values do not depend on the thread
/// count.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSums {
    /// Values summed per channel: `n * h * w`.
    pub count: usize,
    /// Per channel: `Σ x`.
    pub sum: Vec<f64>,
    /// Per channel: `Σ x²` (each square of an f32 value is exact in f64).
    pub sumsq: Vec<f64>,
}

impl crate::ops::spec::OpSpec for BatchNormSpec {
    fn normalises_batch(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "batchnorm"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.out_shape(crate::ops::one_input("batchnorm", inputs)?)
    }
    /// γ = 1 and β = 0, as PyTorch initialises them.
    fn params(&self, _scheme: crate::param::InitScheme) -> Vec<crate::ops::spec::ParamDecl> {
        use crate::ops::spec::ParamDecl;
        use crate::param::ParamInit;
        vec![
            ParamDecl {
                suffix: "gamma",
                len: self.channels,
                init: ParamInit::Const(1.0),
            },
            ParamDecl {
                suffix: "beta",
                len: self.channels,
                init: ParamInit::Const(0.0),
            },
        ]
    }
    fn partials_in(&self, input: Shape) -> Option<(usize, usize)> {
        Some((cuda::batchnorm_parts(input), self.channels))
    }
    fn in_place(&self) -> crate::ops::spec::InPlace {
        crate::ops::spec::InPlace::WithInputPartials
    }
    fn packs_on_store(&self) -> bool {
        true
    }
    fn backward_reads_inputs(&self) -> bool {
        true
    }
    fn saved_len(&self, _out: Shape) -> usize {
        2 * self.channels
    }
    /// The f64 partial sums of `dy` and `dy·x̂` of the CUDA backward.
    fn backward_scratch(&self, input: Shape) -> Result<(usize, usize)> {
        Ok((0, 2 * cuda::batchnorm_parts(input) * self.channels))
    }
}
