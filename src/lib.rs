//! `dasnas`: training-free scores of neural-architecture cells — NASWOT and
//! the DAS decomposition into distinguishing ability D and activation units
//! N_A — on a from-scratch conv/ReLU runtime.
//!
//! ```no_run
//! use dasnas::{data, space::{Arch, Space}};
//! let arch = Arch::parse(Space::Nb201,
//!     "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")?;
//! let batch = data::gaussian_batch(128, 32, 0);
//! let cell = dasnas::score_arch(&arch, &batch, 0, 1.0)?;
//! println!("WOT {:?}  D {:?}  N_A {}", cell.scores.wot, cell.scores.d, cell.scores.n_units);
//! # Ok::<(), dasnas::Error>(())
//! ```

pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod net;
pub mod ops;
pub mod score;
pub mod space;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use score::metrics::Scores;
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
    pub fn total_s(&self) -> f64 {
        self.build_s + self.ops_s + self.codes_s + self.logdet_s
    }
}

/// The scores of one cell and where its time went.
#[derive(Clone, Debug, PartialEq)]
pub struct CellResult {
    pub scores: Scores,
    pub timing: CellTiming,
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
    let build_s = 0.0;
    let (codes, fwd) = device::cpu::relu_codes(graph, params, batch)?;
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
