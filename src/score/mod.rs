//! Scoring: sign-bit codes, Hamming matrix, log-det, metrics.

pub mod codes;
pub mod hamming;
pub mod logdet;
pub mod metrics;
pub mod swap;
