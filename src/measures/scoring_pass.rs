//! The measures of the scoring pass: every result line carries them
//! already (docs/scores.md), so they are listed here for `--measures` and
//! the documentation, and computed nowhere else. Asking for `swap` or
//! `swap_reg` turns SWAP's count on in the scoring pass.

use super::{Measure, Need};

const fn from_pass(
    name: &'static str,
    aliases: &'static [&'static str],
    summary: &'static str,
    reference: &'static str,
) -> Measure {
    Measure {
        name,
        aliases,
        summary,
        reference,
        need: Need::ScoringPass,
        compute: None,
    }
}

/// NASWOT: ln det of the ReLU sign-code kernel.
pub const WOT: Measure = from_pass(
    "wot",
    &["nwot", "naswot"],
    "NASWOT: ln det K_H of the counted ReLUs' sign codes",
    "BayesWatch/nas-without-training; NASLib nwot.py",
);
/// Distinguishing ability D = ln det(K_H / N_A).
pub const D: Measure = from_pass(
    "d",
    &[],
    "distinguishing ability: ln det(K_H / N_A)",
    "the DAS paper (docs/scores.md)",
);
/// N_A, the counted ReLU units per sample.
pub const N_UNITS: Measure = from_pass(
    "n_units",
    &["n_a"],
    "N_A: counted ReLU units per sample (with ln_n_units)",
    "the DAS paper (docs/scores.md)",
);
/// DAS_α = D + α·B·ln N_A.
pub const DAS: Measure = from_pass(
    "das",
    &[],
    "DAS: D + α·B·ln N_A",
    "the DAS paper (docs/scores.md)",
);
/// SWAP: distinct per-unit sign patterns.
pub const SWAP: Measure = from_pass(
    "swap",
    &[],
    "SWAP: distinct per-unit sign patterns over the batch",
    "SWAP (ICLR 2024), its public code",
);
/// SWAP regularised by the parameter count.
pub const SWAP_REG: Measure = from_pass(
    "swap_reg",
    &[],
    "SWAP regularised by the parameter count (with --swap-mu, --swap-sigma)",
    "SWAP (ICLR 2024), its public code",
);
/// The parameter count.
pub const PARAMS: Measure = from_pass(
    "params",
    &[],
    "parameters of the network",
    "NASLib model_stats.py (counted, not in millions)",
);
/// Multiply-adds per sample.
pub const FLOPS: Measure = from_pass(
    "flops",
    &[],
    "multiply-adds per sample of the convolutions and linear layers",
    "thop / fvcore counting (counted, not in millions)",
);
