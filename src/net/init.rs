//! Seeded parameter initialisation: element `i` of the parameter named `name`
//! is `uniform_pm1(stream_key(seed, name_id(name)), i) * bound`, a pure
//! function of (seed, name, i) — the same on any thread count and on the GPU.

use super::rng::{name_id, stream_key, uniform_pm1};
use super::{Graph, Param, ParamInit};
use rayon::prelude::*;

/// Values of one parameter tensor.
pub fn init_param(param: &Param, seed: u64) -> Vec<f32> {
    match param.init {
        ParamInit::Const(v) => vec![v; param.len],
        ParamInit::Uniform { bound } => {
            let key = stream_key(seed, name_id(&param.name));
            let mut out = vec![0.0f32; param.len];
            out.par_chunks_mut(4096)
                .enumerate()
                .for_each(|(chunk, vals)| {
                    for (k, v) in vals.iter_mut().enumerate() {
                        *v = uniform_pm1(key, (chunk * 4096 + k) as u64) * bound;
                    }
                });
            out
        }
    }
}

/// Values of every parameter of `graph`, indexed like `graph.params`.
pub fn init_params(graph: &Graph, seed: u64) -> Vec<Vec<f32>> {
    graph.params.iter().map(|p| init_param(p, seed)).collect()
}
