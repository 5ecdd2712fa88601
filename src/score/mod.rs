//! The scores from a pass's ReLU codes: sign-bit codes, the exact Hamming
//! matrix, the Cholesky log-det, the metrics (WOT, D, N_A, DAS) and SWAP.
//! Plain math on codes and matrices: it depends on nothing but the error
//! type, so every layer that produces codes (the CPU runner, the GPU
//! executor) can use it.

pub mod codes;
pub mod hamming;
pub mod logdet;
pub mod metrics;
pub mod swap;

pub use metrics::{ReluCodes, Scores};
