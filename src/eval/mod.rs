//! Evaluation of scores against ground truth: rank correlations and joins.
