//! Fully connected layer `y = x · W + b` on the flattened per-sample input.
//!
//! Weight layout `[inputs][outputs]` (row i holds the weights from input i
//! to every output, contiguous over outputs so the CPU loop vectorises over
//! outputs); bias `[outputs]`. The flattening of an NHWC sample is its
//! memory order (h, w, c).

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Linear-layer sizes (plain data; weights and bias live elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct LinearSpec {
    /// Values per input sample (its flattened `h·w·c`).
    pub inputs: usize,
    /// Output features (the output is `[n, 1, 1, outputs]`).
    pub outputs: usize,
}

impl LinearSpec {
    /// Number of weights: `inputs * outputs` (saturating).
    pub const fn weight_len(&self) -> usize {
        self.inputs.saturating_mul(self.outputs)
    }

    /// Fan-in of one output: `inputs`.
    pub const fn fan_in(&self) -> usize {
        self.inputs
    }

    /// The output shape `[n, 1, 1, outputs]` for an input whose per-sample
    /// size is `inputs`, or an error naming the bad dimension.
    pub fn out_shape(&self, input: Shape) -> Result<Shape> {
        if self.inputs == 0 || self.outputs == 0 {
            return Err(Error::Shape(format!(
                "linear: inputs = {} and outputs = {} must be at least 1",
                self.inputs, self.outputs
            )));
        }
        crate::ops::check_nonempty("linear", "input", input)?;
        let per_sample = input
            .h
            .checked_mul(input.w)
            .and_then(|v| v.checked_mul(input.c));
        if per_sample != Some(self.inputs) {
            return Err(Error::Shape(format!(
                "linear: input {input} has h * w * c = {} values per sample, the spec has inputs = {}",
                per_sample.map_or("more than usize".to_string(), |v| v.to_string()),
                self.inputs
            )));
        }
        Ok(Shape::new(input.n, 1, 1, self.outputs))
    }
}

impl crate::ops::spec::OpSpec for LinearSpec {
    fn is_weight_layer(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn out_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.out_shape(crate::ops::one_input("linear", inputs)?)
    }
    /// Weight and bias: PyTorch's default uniform ±1/√inputs, or (NASWOT's
    /// NB101 init) weight N(0, 0.01²) and bias 0.
    fn params(&self, scheme: crate::param::InitScheme) -> Vec<crate::ops::spec::ParamDecl> {
        use crate::ops::spec::ParamDecl;
        use crate::param::{InitScheme, ParamInit};
        let bound = (1.0 / (self.fan_in() as f64).sqrt()) as f32;
        let (w, b) = match scheme {
            InitScheme::Default => (ParamInit::Uniform { bound }, ParamInit::Uniform { bound }),
            InitScheme::Naswot => (ParamInit::Normal { std: 0.01 }, ParamInit::Const(0.0)),
        };
        vec![
            ParamDecl {
                suffix: "weight",
                len: self.weight_len(),
                init: w,
            },
            ParamDecl {
                suffix: "bias",
                len: self.outputs,
                init: b,
            },
        ]
    }
    fn flops(&self, _inputs: &[Shape], _out: Shape) -> u64 {
        2 * (self.inputs * self.outputs) as u64
    }
    fn backward_reads_inputs(&self) -> bool {
        true
    }
}
