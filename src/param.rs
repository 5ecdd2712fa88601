//! Parameters, below every layer that holds them: how a tensor's values
//! are drawn ([`ParamInit`], and the network-wide [`InitScheme`]), where a
//! tensor sits in a device's parameter buffer ([`ParamSlot`], which the
//! GPU's init kernel reads), and the seeded draw itself ([`init_values`]):
//! element `i` of the parameter named `name` is a pure function of (seed,
//! name, i), the same on any thread count and on the GPU.

use crate::error::{Error, Result};
use crate::rng::{normal, uniform_pm1};
use rayon::prelude::*;

/// How a parameter tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// Uniform in [-bound, bound), PyTorch's default for conv and linear.
    Uniform {
        /// Half-width of the interval (> 0).
        bound: f32,
    },
    /// Every element equal (BatchNorm gamma = 1, beta = 0).
    Const(f32),
    /// Normal with mean 0 and this standard deviation (Box–Muller on the
    /// host in f64, rounded to f32: a GPU must upload these values rather
    /// than draw them, its log/cos are not bitwise the host's).
    Normal {
        /// Standard deviation.
        std: f32,
    },
}

/// How a network's conv and linear weights are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InitScheme {
    /// PyTorch's default: uniform ±1/√fan_in for conv and linear weights
    /// and the linear bias (docs/spaces.md, "Conventions").
    #[default]
    Default,
    /// The NASWOT code's NB101 init: conv weights N(0, 2 / (k²·cout))
    /// (He normal, fan-out), linear weights N(0, 0.01²), linear bias 0.
    Naswot,
}

impl std::str::FromStr for InitScheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(InitScheme::Default),
            "naswot" => Ok(InitScheme::Naswot),
            other => Err(Error::Arg(format!(
                "unknown init `{other}` (expected default or naswot)"
            ))),
        }
    }
}

/// How one parameter tensor is initialised on the device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSlot {
    /// Elements `offset..offset + len` of the parameter buffer.
    pub offset: usize,
    /// Number of f32 values.
    pub len: usize,
    /// How the values are drawn.
    pub init: ParamInit,
    /// `name_id` of the parameter's name (its random stream).
    pub name_id: u64,
}

impl ParamSlot {
    /// Its elements of the parameter buffer.
    pub fn region(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// `len` values of rule `init` drawn from stream `key` (`stream_key(seed,
/// name_id(name))`): what [`crate::net::init::init_param`] returns for that parameter.
pub fn init_values(init: ParamInit, len: usize, key: u64) -> Vec<f32> {
    match init {
        ParamInit::Const(v) => vec![v; len],
        ParamInit::Uniform { bound } => {
            let mut out = vec![0.0f32; len];
            out.par_chunks_mut(4096)
                .enumerate()
                .for_each(|(chunk, vals)| {
                    for (k, v) in vals.iter_mut().enumerate() {
                        *v = uniform_pm1(key, (chunk * 4096 + k) as u64) * bound;
                    }
                });
            out
        }
        ParamInit::Normal { std } => {
            let mut out = vec![0.0f32; len];
            out.par_chunks_mut(4096)
                .enumerate()
                .for_each(|(chunk, vals)| {
                    for (k, v) in vals.iter_mut().enumerate() {
                        *v = (normal(key, (chunk * 4096 + k) as u64) * f64::from(std)) as f32;
                    }
                });
            out
        }
    }
}
