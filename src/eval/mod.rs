//! Evaluation of scores against ground truth: rank correlations and joins.
//!
//! * [`rank`]: Kendall τ-b (O(n log n), tie-corrected), Spearman ρ (average
//!   ranks), Pearson r — pure functions on `f64` slices.
//! * [`join`]: read a JSON Lines scores file and a CSV truth table, join them
//!   on the architecture string, and report each score field's rank
//!   correlation with the truth ([`evaluate`], [`EvalReport`]).
//! * [`plot`]: score against truth, one scatter panel per score field with
//!   its N, τ and ρ, as SVG or PNG (`dasnas eval --plot`).

pub mod fit;
pub mod join;
pub mod plot;
pub mod rank;
pub mod search;

pub use join::{
    evaluate, evaluate_tables, read_scores, read_truth, scores_from_reader, truth_from_reader,
    EvalOptions, EvalReport, FieldReport, NullPolicy, ScoreRow, ScoreTable, DEFAULT_KEY,
    DEFAULT_TARGET, NON_SCORE_FIELDS,
};
pub use rank::{average_ranks, kendall_tau_b, pearson_r, spearman_rho};
