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

#[doc(hidden)]
#[macro_use]
pub mod testing;

pub mod bench;
pub mod data;
pub mod dtb;
pub mod error;
pub mod eval;
pub mod exec;
pub mod io;
pub mod measures;
pub mod net;
pub mod ops;
pub mod param;
pub mod results;
pub mod rng;
pub mod run;
pub mod runtime;
pub mod score;
pub mod scorer;
pub mod select;
pub mod space;
pub mod tensor;
pub mod train;

pub use error::{Context, Error, Result};
pub use score::Scores;
pub use scorer::{score_arch, score_graph, score_graph_with, score_graph_with_params};
pub use scorer::{CellResult, Scorer, Training};
pub use tensor::{Shape, Tensor};

/// The examples of `docs/rust.md`, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/rust.md")]
pub struct RustDocs;
