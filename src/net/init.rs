//! Seeded parameter initialisation: element `i` of the parameter named `name`
//! is `uniform_pm1(stream_key(seed, name_id(name)), i) * bound`, a pure
//! function of (seed, name, i) — the same on any thread count and on the GPU.
//! ([`ParamInit::Normal`](crate::param::ParamInit::Normal), the NASWOT NB101 init, is drawn on the host.)

use super::{Graph, Param};
use crate::param::init_values;
use crate::rng::{name_id, stream_key};

/// Values of one parameter tensor.
pub fn init_param(param: &Param, seed: u64) -> Vec<f32> {
    init_values(
        param.init,
        param.len,
        stream_key(seed, name_id(&param.name)),
    )
}

/// Values of every parameter of `graph`, indexed like `graph.params`.
pub fn init_params(graph: &Graph, seed: u64) -> Vec<Vec<f32>> {
    graph.params.iter().map(|p| init_param(p, seed)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::ParamInit;

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
