//! Scoring: sign-bit codes, Hamming matrix, log-det, metrics.
