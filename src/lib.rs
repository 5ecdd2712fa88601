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

/// A scoring backend chosen by `--device`: the CPU executor, or the GPU
/// scorer (several cells in flight, only the scores copied back).
#[derive(Debug)]
pub enum Scorer {
    Cpu { batch: Tensor },
    Cuda(Box<device::cuda::executor::GpuScorer>),
}

impl Scorer {
    /// Opens device `kind` to score `batch` (`lanes` concurrent cell
    /// pipelines on a GPU). With [`device::DeviceKind::Auto`] a GPU that
    /// cannot be used (no driver, no GPU, no NVRTC, a kernel that does not
    /// compile) makes it fall back to the CPU, and the second value is the
    /// one-line reason to tell the user; an explicit `cuda` fails instead.
    /// On a GPU the second value carries what the user should know about
    /// how the kernels were loaded (PTX instead of CUBIN for a GPU newer
    /// than NVRTC), if anything.
    pub fn open(
        kind: device::DeviceKind,
        batch: Tensor,
        lanes: usize,
    ) -> Result<(Scorer, Option<String>)> {
        use device::DeviceKind;
        // A CPU batch whose B×B matrices cannot fit is refused here, before
        // the first cell (each cell is checked again with its plan).
        let cpu_fits =
            |b: &Tensor| device::budget::check_host_batch(b.shape.n, b.shape.per_sample(), true);
        match kind {
            DeviceKind::Cpu => {
                cpu_fits(&batch)?;
                Ok((Scorer::Cpu { batch }, None))
            }
            DeviceKind::Cuda(n) => {
                let s = Self::open_cuda(n, &batch, lanes)?;
                let notes = s.device_notes();
                Ok((s, notes))
            }
            DeviceKind::Auto => match Self::open_cuda(0, &batch, lanes) {
                Ok(s) => {
                    let notes = s.device_notes();
                    Ok((s, notes))
                }
                Err(e) => {
                    cpu_fits(&batch)?;
                    Ok((
                        Scorer::Cpu { batch },
                        Some(format!("no usable GPU ({e}); running on the CPU")),
                    ))
                }
            },
        }
    }

    fn open_cuda(ordinal: usize, batch: &Tensor, lanes: usize) -> Result<Scorer> {
        let dev = device::cuda::CudaDevice::open(ordinal)?;
        let scorer = device::cuda::executor::GpuScorer::new(&dev, batch, lanes)?;
        Ok(Scorer::Cuda(Box::new(scorer)))
    }

    /// The GPU's notes on how its kernels were loaded, joined; `None` when
    /// there are none (or on the CPU).
    fn device_notes(&self) -> Option<String> {
        match self {
            Scorer::Cpu { .. } => None,
            Scorer::Cuda(g) => {
                let notes = g.device().notes();
                (!notes.is_empty()).then(|| notes.join("; "))
            }
        }
    }

    /// Images in the scoring batch (B).
    pub fn batch_size(&self) -> usize {
        match self {
            Scorer::Cpu { batch } => batch.shape.n,
            Scorer::Cuda(g) => g.batch_size(),
        }
    }

    /// `cpu` or `cuda:N (name)`, for messages and bench reports.
    pub fn describe(&self) -> String {
        match self {
            Scorer::Cpu { .. } => "cpu".into(),
            Scorer::Cuda(g) => {
                let i = g.device().info();
                format!("cuda:{} ({})", i.ordinal, i.name)
            }
        }
    }

    /// Scores `archs` (weights from `seed`, DAS with `alpha`), in order. An
    /// error names the cell it happened in.
    pub fn score_archs(
        &mut self,
        archs: &[&space::Arch],
        seed: u64,
        alpha: f64,
    ) -> Result<Vec<CellResult>> {
        let named = |a: &space::Arch, e: Error| Error::Data(format!("scoring {a}: {e}"));
        match self {
            Scorer::Cpu { batch } => archs
                .iter()
                .map(|a| score_arch(a, batch, seed, alpha).map_err(|e| named(a, e)))
                .collect(),
            Scorer::Cuda(g) => {
                let cells = g.score(
                    archs.len(),
                    |i| archs[i].network().map_err(|e| named(archs[i], e)),
                    seed,
                    alpha,
                    None,
                )?;
                Ok(cells
                    .into_iter()
                    .map(|c| CellResult {
                        scores: c.scores,
                        timing: CellTiming {
                            ops_s: c.seconds,
                            ..Default::default()
                        },
                    })
                    .collect())
            }
        }
    }
}

/// `../shared/data/<file>` for a unit test, or `None` after telling the
/// terminal (past the harness's output capture) that `test` did not run.
#[cfg(test)]
pub(crate) fn test_data(test: &str, file: &str) -> Option<std::path::PathBuf> {
    use std::io::Write;
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(file);
    if p.exists() {
        return Some(p);
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs ../shared/data/{file}, which is absent (it did not run)"
    );
    None
}
