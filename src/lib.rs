//! `dasnas`: training-free scores of neural-architecture cells — NASWOT and
//! the DAS decomposition into distinguishing ability D and activation units
//! N_A — on a from-scratch conv/ReLU runtime.
//!
//! ```no_run
//! use dasnas::{data, space::{Arch, Space}};
//! let arch = Arch::parse(Space::NB201,
//!     "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")?;
//! let batch = data::gaussian_batch(128, 32, 0);
//! let cell = dasnas::score_arch(&arch, &batch, 0, 1.0)?;
//! println!("WOT {:?}  D {:?}  N_A {}", cell.scores.wot, cell.scores.d, cell.scores.n_units);
//! # Ok::<(), dasnas::Error>(())
//! ```
#![warn(missing_docs)]

#[cfg(test)]
#[macro_use]
mod testing;

pub mod bench;
pub mod data;
pub mod device;
pub mod dtb;
pub mod error;
pub mod eval;
pub mod io;
pub mod net;
pub mod ops;
pub mod results;
pub mod score;
pub mod scorer;
pub mod select;
pub mod space;
pub mod tensor;
pub mod train;

pub use error::{Context, Error, Result};
pub use score::metrics::Scores;
pub use scorer::{Scorer, Training};
pub use tensor::{Shape, Tensor};

use std::time::Instant;

/// Wall time of one cell's scoring, by phase.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CellTiming {
    /// Building the network and drawing its weights.
    pub build_s: f64,
    /// The network's ops.
    pub ops_s: f64,
    /// Sign-bit packing and Hamming accumulation.
    pub codes_s: f64,
    /// K_H, Cholesky and the metrics.
    pub logdet_s: f64,
    /// `ops_s` by op kind.
    pub by_op: Vec<(&'static str, f64)>,
}

impl CellTiming {
    /// Sum of the four phases, in seconds (`by_op` splits `ops_s`, so it is not added).
    pub fn total_s(&self) -> f64 {
        self.build_s + self.ops_s + self.codes_s + self.logdet_s
    }
}

/// The scores of one cell, where its time went, and (after fast
/// training) the training summary.
#[derive(Clone, Debug, PartialEq)]
pub struct CellResult {
    /// The cell's scores.
    pub scores: Scores,
    /// Wall time of the scoring, by phase.
    pub timing: CellTiming,
    /// Set when the cell was fast-trained before scoring.
    pub train: Option<train::TrainStats>,
}

impl CellResult {
    /// The JSON object `dasnas score` writes for this cell: `arch`, `wot`,
    /// `d`, `n_units`, `ln_n_units`, `das`, `singular`, `das@A` for each of
    /// `extra_alphas` (`batch` images), `swap`, `swap_reg`, `params` and
    /// `flops` where known, `ms`, and after training
    /// `train_steps`, `train_loss`, `train_acc`, `train_ms`. On the CPU `ms`
    /// is the scoring alone and `train_ms` the training; on a GPU both are
    /// the cell's share of its chunk's wall time, training included.
    pub fn to_json(&self, arch: &str, extra_alphas: &[f64], batch: usize) -> serde_json::Value {
        let s = &self.scores;
        let ms = |secs: f64| (secs * 1e4).round() / 10.0;
        let mut obj = serde_json::json!({
            "arch": arch,
            "wot": s.wot,
            "d": s.d,
            "n_units": s.n_units,
            "ln_n_units": s.ln_n_units,
            "das": s.das,
            "singular": s.singular,
        });
        for &al in extra_alphas {
            obj[format!("das@{al}")] = serde_json::json!(s.das_with(al, batch));
        }
        let optional = [
            ("swap", s.swap.map(serde_json::Value::from)),
            ("swap_reg", s.swap_reg.map(serde_json::Value::from)),
            ("params", s.params.map(serde_json::Value::from)),
            ("flops", s.flops.map(serde_json::Value::from)),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                obj[k] = v;
            }
        }
        if let Some(t) = &self.train {
            obj["train_steps"] = serde_json::json!(t.steps);
            obj["train_loss"] = serde_json::json!(t.final_loss);
            obj["train_acc"] = serde_json::json!(t.final_accuracy);
            obj["train_ms"] = serde_json::json!(ms(t.seconds));
        }
        obj["ms"] = serde_json::json!(ms(self.timing.total_s()));
        obj
    }
}

/// Scores a network: weights from `seed`, BatchNorm in training mode on
/// `batch` (NHWC), DAS with `alpha`.
pub fn score_graph(
    graph: &net::Graph,
    batch: &Tensor,
    seed: u64,
    alpha: f64,
) -> Result<CellResult> {
    let t0 = Instant::now();
    let params = net::init::init_params(graph, seed);
    let build_s = t0.elapsed().as_secs_f64();
    let mut r = score_graph_with_params(graph, &params, batch, alpha)?;
    r.timing.build_s = build_s;
    Ok(r)
}

/// Scores a network with the given parameters (indexed like
/// `graph.params`, e.g. after [`train::train_cpu`]): BatchNorm in training
/// mode on `batch` (NHWC), DAS with `alpha`. [`score_graph`] is this with
/// the seeded initial parameters. `timing.build_s` is 0.
pub fn score_graph_with_params(
    graph: &net::Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    alpha: f64,
) -> Result<CellResult> {
    score_graph_measuring(graph, params, batch, alpha, false)
}

/// [`score_graph_with_params`], with SWAP counted from the same pass when
/// `swap` is set ([`score::swap`]).
pub fn score_graph_measuring(
    graph: &net::Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    alpha: f64,
    swap: bool,
) -> Result<CellResult> {
    let opts = device::cpu::PassOptions {
        swap,
        ..Default::default()
    };
    score_graph_with(graph, params, batch, alpha, opts)
}

/// [`score_graph_with_params`] with the pass options `opts` (SWAP from
/// the same pass, the conv algorithm).
pub fn score_graph_with(
    graph: &net::Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    alpha: f64,
    opts: device::cpu::PassOptions,
) -> Result<CellResult> {
    let build_s = 0.0;
    let (codes, fwd) = device::cpu::relu_codes_with(graph, params, batch, opts)?;
    let t1 = Instant::now();
    let scores = score::metrics::scores(&codes, alpha);
    Ok(CellResult {
        scores,
        timing: CellTiming {
            build_s,
            ops_s: fwd.ops_s,
            codes_s: fwd.codes_s,
            logdet_s: t1.elapsed().as_secs_f64(),
            by_op: fwd.by_op,
        },
        train: None,
    })
}

/// Builds the architecture's network and scores it (see [`score_graph`]).
pub fn score_arch(arch: &space::Arch, batch: &Tensor, seed: u64, alpha: f64) -> Result<CellResult> {
    let t0 = Instant::now();
    let graph = arch.network()?;
    let build = t0.elapsed().as_secs_f64();
    let mut r = score_graph(&graph, batch, seed, alpha)?;
    r.timing.build_s += build;
    Ok(r)
}
