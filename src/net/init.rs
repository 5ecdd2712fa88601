//! Seeded parameter initialisation: element `i` of the parameter named `name`
//! is `uniform_pm1(stream_key(seed, name_id(name)), i) * bound`, a pure
//! function of (seed, name, i) — the same on any thread count and on the GPU.
//! ([`ParamInit::Normal`], the NASWOT NB101 init, is drawn on the host.)

use super::rng::{name_id, normal, stream_key, uniform_pm1};
use super::{Graph, Param, ParamInit};
use rayon::prelude::*;

/// Values of one parameter tensor.
pub fn init_param(param: &Param, seed: u64) -> Vec<f32> {
    init_values(
        param.init,
        param.len,
        stream_key(seed, name_id(&param.name)),
    )
}

/// `len` values of rule `init` drawn from stream `key` (`stream_key(seed,
/// name_id(name))`): what [`init_param`] returns for that parameter.
pub fn init_values(init: ParamInit, len: usize, key: u64) -> Vec<f32> {
    let param = Param {
        name: String::new(),
        len,
        init,
    };
    match param.init {
        ParamInit::Const(v) => vec![v; param.len],
        ParamInit::Uniform { bound } => {
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
        ParamInit::Normal { std } => {
            let mut out = vec![0.0f32; param.len];
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

/// Values of every parameter of `graph`, indexed like `graph.params`.
pub fn init_params(graph: &Graph, seed: u64) -> Vec<Vec<f32>> {
    graph.params.iter().map(|p| init_param(p, seed)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_init_has_its_std_and_is_seeded() {
        let p = Param {
            name: "w".into(),
            len: 20_000,
            init: ParamInit::Normal { std: 0.5 },
        };
        let v = init_param(&p, 1);
        assert_eq!(v, init_param(&p, 1));
        assert_ne!(v, init_param(&p, 2));
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "{}", var.sqrt());
    }
}
