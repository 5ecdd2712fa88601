//! Choosing the DAS combination rule of D and N_A by cross-validated
//! Kendall τ against ground truth (docs/scores.md, "Combination rules of D and N_A").
//!
//! Every cell is reduced to its atoms ([`Atoms`]): D = ln det(K_H / N_A)
//! (null for a singular cell), ln N_A and the batch size B. A [`Rule`] maps
//! a set of cells to one score each. Rule families, each with one
//! parameter chosen on a grid:
//!
//! * [`Rule::Linear`] `D + α·B·ln N_A` — the paper's decomposition; α = 1 is
//!   WOT, α = 0 is D.
//! * [`Rule::Units`] `D + α·B·N_A / 10⁵` — N_A linear instead of logarithmic
//!   (rewards units more strongly at the top).
//! * [`Rule::RankSum`] `rank(D) + β·rank(ln N_A)` (average ranks within the
//!   scored set, scaled to [0, 1]) — scale-free: how much each atom counts
//!   does not depend on the spread of D in that set. Needs the whole set,
//!   so it serves pools (search, evaluation), not a single cell.
//! * [`Rule::Units`] and [`Rule::RankSum`] reach N_A alone and D alone at
//!   their extremes too; [`Rule::NUnits`] is ln N_A alone (a baseline).
//!
//! A null D (a singular cell, WOT = ln 0) scores −∞ under every rule except
//! N_A alone, the meaning of the score (NullPolicy::Lowest of the `eval`
//! command).
//!
//! [`fit`] runs k-fold cross-validation with a seeded fold assignment: in
//! each fold every family's parameter is chosen by τ on the training part
//! and scored by τ on the held-out part; the family with the best mean
//! held-out τ is chosen, and refitted on all rows. WOT, D and N_A alone are
//! reported on the same folds.

use crate::error::{Error, Result};
use crate::eval::join::{read_scores, read_truth, ScoreTable};
use crate::eval::rank::{average_ranks, kendall_tau_b, spearman_rho};
use crate::rng::{bits, name_id, stream_key};
use std::collections::HashMap;
use std::path::Path;

/// The atoms of one cell's score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Atoms {
    /// D = ln det(K_H / N_A); `None` when K_H is singular.
    pub d: Option<f64>,
    /// ln N_A.
    pub ln_na: f64,
    /// B, the scoring batch size.
    pub batch: usize,
}

/// A combination rule of D and N_A (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// `D + α·B·ln N_A`: α = 1 is WOT, α = 0 is D.
    Linear {
        /// α, the weight of `B·ln N_A`.
        alpha: f64,
    },
    /// `D + α·B·N_A / 10⁵`: N_A linear instead of logarithmic.
    Units {
        /// α, the weight of `B·N_A / 10⁵`.
        alpha: f64,
    },
    /// `rank(D) + β·rank(ln N_A)`, average ranks within the scored set
    /// scaled to [0, 1]; a set rule ([`Rule::scores`] only).
    RankSum {
        /// β, the weight of the N_A rank.
        beta: f64,
    },
    /// ln N_A alone (a baseline; a singular cell keeps its score).
    NUnits,
}

impl Rule {
    /// WOT: `Linear { alpha: 1 }`.
    pub const WOT: Rule = Rule::Linear { alpha: 1.0 };
    /// D alone: `Linear { alpha: 0 }`.
    pub const D: Rule = Rule::Linear { alpha: 0.0 };

    /// The family's name (without parameter).
    pub fn family(&self) -> &'static str {
        match self {
            Rule::Linear { .. } => "linear",
            Rule::Units { .. } => "units",
            Rule::RankSum { .. } => "ranksum",
            Rule::NUnits => "n_units",
        }
    }

    /// Whether a cell's score depends on the other cells of the set.
    pub fn needs_set(&self) -> bool {
        matches!(self, Rule::RankSum { .. })
    }

    /// The score of one cell (`None` for set rules: use [`Rule::scores`]).
    pub fn score_one(&self, a: &Atoms) -> Option<f64> {
        let b = a.batch as f64;
        match *self {
            Rule::Linear { alpha } => {
                Some(a.d.map_or(f64::NEG_INFINITY, |d| d + alpha * b * a.ln_na))
            }
            Rule::Units { alpha } => {
                Some(a.d.map_or(f64::NEG_INFINITY, |d| d + alpha * b * a.ln_na.exp() / 1e5))
            }
            Rule::NUnits => Some(a.ln_na),
            Rule::RankSum { .. } => None,
        }
    }

    /// The scores of a set of cells (higher is better).
    pub fn scores(&self, set: &[Atoms]) -> Vec<f64> {
        match *self {
            Rule::RankSum { beta } => {
                let n = set.len().max(2) as f64 - 1.0;
                let d: Vec<f64> = set
                    .iter()
                    .map(|a| a.d.unwrap_or(f64::NEG_INFINITY))
                    .collect();
                let na: Vec<f64> = set.iter().map(|a| a.ln_na).collect();
                let (rd, rn) = (average_ranks(&d), average_ranks(&na));
                set.iter()
                    .enumerate()
                    .map(|(i, a)| {
                        if a.d.is_none() {
                            f64::NEG_INFINITY
                        } else {
                            (rd[i] - 1.0) / n + beta * (rn[i] - 1.0) / n
                        }
                    })
                    .collect()
            }
            _ => set
                .iter()
                .map(|a| self.score_one(a).expect("per-cell rule"))
                .collect(),
        }
    }

    /// The parameter grid of each family searched by [`fit`].
    pub fn grid() -> Vec<Vec<Rule>> {
        // k / per_unit rather than k · step: 201 / 100 is the double
        // nearest 2.01 (and prints so), 201 · 0.01 is not.
        let fine = |hi: f64, step: f64| -> Vec<f64> {
            let per_unit = (1.0 / step).round();
            let n = (hi * per_unit).round() as usize;
            (0..=n).map(|k| k as f64 / per_unit).collect()
        };
        let coarse = [4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 50.0, 100.0, 1000.0];
        let mut lin = fine(3.0, 0.01);
        lin.extend(coarse);
        let mut rank = fine(5.0, 0.02);
        rank.extend(coarse);
        vec![
            lin.iter().map(|&alpha| Rule::Linear { alpha }).collect(),
            lin.iter().map(|&alpha| Rule::Units { alpha }).collect(),
            rank.iter().map(|&beta| Rule::RankSum { beta }).collect(),
        ]
    }

    /// [`Rule::parse`], and `auto`: the rule documented as `space`'s
    /// default in the network of `opts`
    /// ([`crate::space::Space::default_rule`], chosen by cross-validated
    /// `fit` on its ground truth).
    pub fn parse_for(
        space: crate::space::Space,
        opts: &crate::space::SpaceOptions,
        s: &str,
    ) -> Result<Rule> {
        match s {
            "auto" => Rule::parse(space.default_rule(opts)?),
            other => Rule::parse(other),
        }
    }

    /// Parses `wot`, `d`, `n_units`, `das@A` / `linear:A`, `units:A`,
    /// `ranksum:B`.
    pub fn parse(s: &str) -> Result<Rule> {
        let num = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| Error::Arg(format!("metric `{s}`: `{v}` is not a number")))
        };
        Ok(match s {
            "wot" => Rule::WOT,
            "d" => Rule::D,
            "n_units" | "ln_n_units" | "na" => Rule::NUnits,
            _ => {
                if let Some(v) = s.strip_prefix("das@").or_else(|| s.strip_prefix("linear:")) {
                    Rule::Linear { alpha: num(v)? }
                } else if let Some(v) = s.strip_prefix("units:") {
                    Rule::Units { alpha: num(v)? }
                } else if let Some(v) = s.strip_prefix("ranksum:") {
                    Rule::RankSum { beta: num(v)? }
                } else {
                    return Err(Error::Arg(format!(
                        "unknown metric `{s}` (expected auto, wot, d, n_units, das@ALPHA, \
                         linear:ALPHA, units:ALPHA or ranksum:BETA)"
                    )));
                }
            }
        })
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // WOT and D by their names (they parse back to the same rule).
            Rule::Linear { alpha } if *alpha == 1.0 => f.write_str("wot"),
            Rule::Linear { alpha } if *alpha == 0.0 => f.write_str("d"),
            Rule::Linear { alpha } => write!(f, "linear:{alpha}"),
            Rule::Units { alpha } => write!(f, "units:{alpha}"),
            Rule::RankSum { beta } => write!(f, "ranksum:{beta}"),
            Rule::NUnits => write!(f, "n_units"),
        }
    }
}

/// Atoms of every row of a scores table (fields `d` and `n_units` or
/// `ln_n_units`), in row order. B is `batch` when given, else inferred
/// from a row with both `wot` and `d` (B = (WOT − D) / ln N_A).
pub fn table_atoms(table: &ScoreTable, batch: Option<usize>) -> Result<Vec<Atoms>> {
    let field = |name: &str| table.field_index(name);
    let d = field("d").ok_or_else(|| Error::Data("scores have no `d` field".into()))?;
    let (ln, na) = (field("ln_n_units"), field("n_units"));
    if ln.is_none() && na.is_none() {
        return Err(Error::Data(
            "scores have neither `ln_n_units` nor `n_units`".into(),
        ));
    }
    let ln_na = |vals: &[Option<f64>]| -> Option<f64> {
        ln.and_then(|k| vals[k])
            .or_else(|| na.and_then(|k| vals[k]).map(f64::ln))
    };
    let batch = match batch {
        Some(b) => b,
        None => {
            let wot = field("wot").ok_or_else(|| {
                Error::Data("scores have no `wot` field to infer B from: give the batch".into())
            })?;
            table
                .rows
                .iter()
                .find_map(|r| {
                    let (w, dd, l) = (r.values[wot]?, r.values[d]?, ln_na(&r.values)?);
                    (l > 0.0).then(|| ((w - dd) / l).round() as usize)
                })
                .ok_or_else(|| {
                    Error::Data("no row has both `wot` and `d` to infer B from".into())
                })?
        }
    };
    table
        .rows
        .iter()
        .map(|r| {
            Ok(Atoms {
                d: r.values[d],
                ln_na: ln_na(&r.values)
                    .ok_or_else(|| Error::Data(format!("row `{}` has no unit count", r.arch)))?,
                batch,
            })
        })
        .collect()
}

/// τ of `rule`'s scores of `idx` against the truth.
fn tau(rule: &Rule, atoms: &[Atoms], truth: &[f64], idx: &[usize]) -> f64 {
    let set: Vec<Atoms> = idx.iter().map(|&i| atoms[i]).collect();
    let y: Vec<f64> = idx.iter().map(|&i| truth[i]).collect();
    kendall_tau_b(&rule.scores(&set), &y).unwrap_or(f64::NAN)
}

/// The rule of `family` with the best τ on `idx` (first on ties).
fn best_of(family: &[Rule], atoms: &[Atoms], truth: &[f64], idx: &[usize]) -> (Rule, f64) {
    let mut best = (family[0], f64::NEG_INFINITY);
    for r in family {
        let t = tau(r, atoms, truth, idx);
        if t > best.1 {
            best = (*r, t);
        }
    }
    best
}

/// One family's (or baseline's) cross-validated figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FamilyReport {
    /// The family's name (`linear`, `units`, `ranksum`) or the baseline's (`wot`,
    /// `d`, `n_units`).
    pub family: String,
    /// The rule fitted on each fold's training rows (a baseline: itself).
    pub fold_rules: Vec<String>,
    /// Held-out τ per fold.
    pub fold_tau: Vec<f64>,
    /// Mean of `fold_tau`.
    pub mean_tau: f64,
    /// Sample standard deviation of `fold_tau` (n − 1 in the denominator).
    pub std_tau: f64,
    /// The rule fitted on all rows.
    pub full_rule: String,
    /// τ and Spearman ρ of `full_rule` on all rows (in-sample for fitted families).
    pub full_tau: f64,
    /// Spearman ρ of `full_rule` on all rows.
    pub full_rho: f64,
    /// Held-out τ minus WOT's on the same fold: mean and std over folds (a
    /// paired comparison, much tighter than comparing the two means).
    pub vs_wot_mean: f64,
    /// Standard deviation over folds of the held-out τ minus WOT's (see `vs_wot_mean`).
    pub vs_wot_std: f64,
}

/// What [`fit`] found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FitReport {
    /// Rows scored and with truth.
    pub rows: usize,
    /// Number of cross-validation folds.
    pub folds: usize,
    /// B, the scoring batch size (from the atoms).
    pub batch: usize,
    /// The fitted families, then the baselines wot, d, n_units.
    pub families: Vec<FamilyReport>,
    /// The family with the best mean held-out τ, and its rule fitted on all rows.
    pub chosen: String,
    /// The chosen family's rule fitted on all rows (e.g. `linear:0.35`).
    pub chosen_rule: String,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// Cross-validated choice of the rule (module docs): `atoms[i]` scored
/// against `truth[i]`, `folds` folds assigned by `seed`.
pub fn fit(atoms: &[Atoms], truth: &[f64], folds: usize, seed: u64) -> Result<FitReport> {
    let n = atoms.len();
    if n != truth.len() {
        return Err(Error::Arg(format!(
            "{n} score rows but {} truth values",
            truth.len()
        )));
    }
    if folds < 2 || n < 2 * folds {
        return Err(Error::Arg(format!(
            "{folds} folds over {n} rows: need at least 2 folds and 2 rows per fold"
        )));
    }
    // Seeded fold assignment: sort rows by a random key, deal them round-robin.
    let key = stream_key(seed, name_id("fit.folds"));
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| bits(key, i as u64));
    let mut fold_of = vec![0usize; n];
    for (k, &i) in order.iter().enumerate() {
        fold_of[i] = k % folds;
    }
    let split = |f: usize| -> (Vec<usize>, Vec<usize>) { (0..n).partition(|&i| fold_of[i] != f) };
    let all: Vec<usize> = (0..n).collect();
    let mut families = Vec::new();
    let report = |family: &str, rules: Vec<Rule>, taus: Vec<f64>, full: Rule| {
        let (mean_tau, std_tau) = mean_std(&taus);
        let set: Vec<Atoms> = atoms.to_vec();
        let s = full.scores(&set);
        FamilyReport {
            family: family.to_string(),
            fold_rules: rules.iter().map(|r| r.to_string()).collect(),
            fold_tau: taus,
            mean_tau,
            std_tau,
            full_rule: full.to_string(),
            full_tau: kendall_tau_b(&s, truth).unwrap_or(f64::NAN),
            full_rho: spearman_rho(&s, truth).unwrap_or(f64::NAN),
            vs_wot_mean: f64::NAN,
            vs_wot_std: f64::NAN,
        }
    };
    for family in Rule::grid() {
        let mut rules = Vec::new();
        let mut taus = Vec::new();
        for f in 0..folds {
            let (train, test) = split(f);
            let (r, _) = best_of(&family, atoms, truth, &train);
            rules.push(r);
            taus.push(tau(&r, atoms, truth, &test));
        }
        let (full, _) = best_of(&family, atoms, truth, &all);
        families.push(report(family[0].family(), rules, taus, full));
    }
    let chosen_idx = (0..families.len())
        .max_by(|&a, &b| families[a].mean_tau.total_cmp(&families[b].mean_tau))
        .expect("families");
    let chosen = families[chosen_idx].family.clone();
    let chosen_rule = families[chosen_idx].full_rule.clone();
    for (name, rule) in [
        ("wot", Rule::WOT),
        ("d", Rule::D),
        ("n_units", Rule::NUnits),
    ] {
        let taus = (0..folds)
            .map(|f| tau(&rule, atoms, truth, &split(f).1))
            .collect();
        families.push(report(name, vec![rule; folds], taus, rule));
    }
    let wot_taus = families[families.len() - 3].fold_tau.clone();
    for fam in &mut families {
        let diff: Vec<f64> = fam
            .fold_tau
            .iter()
            .zip(&wot_taus)
            .map(|(a, b)| a - b)
            .collect();
        (fam.vs_wot_mean, fam.vs_wot_std) = mean_std(&diff);
    }
    Ok(FitReport {
        rows: n,
        folds,
        batch: atoms.first().map_or(0, |a| a.batch),
        families,
        chosen,
        chosen_rule,
    })
}

/// Reads a scores file and a truth table, joins them on the architecture
/// (rows without truth are left out) and runs [`fit`].
pub fn fit_files(
    scores: &Path,
    truth: &Path,
    key: &str,
    target: &str,
    folds: usize,
    seed: u64,
) -> Result<FitReport> {
    let table = read_scores(scores)?;
    let truth_map: HashMap<String, f64> = read_truth(truth, key, target)?;
    let atoms = table_atoms(&table, None)?;
    let (a, t): (Vec<Atoms>, Vec<f64>) = table
        .rows
        .iter()
        .zip(&atoms)
        .filter_map(|(r, a)| truth_map.get(&r.arch).map(|&t| (*a, t)))
        .unzip();
    if a.is_empty() {
        return Err(Error::Data(format!(
            "no architecture of {} is in column `{key}` of {}",
            scores.display(),
            truth.display()
        )));
    }
    fit(&a, &t, folds, seed)
}

impl std::fmt::Display for FitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} rows, {} folds, B = {}; Kendall τ-b on held-out folds",
            self.rows, self.folds, self.batch
        )?;
        writeln!(
            f,
            "{:<9} {:>7} {:>6}  {:<40} {:>15}  {:<16} {:>7} {:>7}",
            "rule", "mean τ", "std", "per fold", "vs WOT ± std", "fit on all", "τ all", "ρ all"
        )?;
        for r in &self.families {
            let folds: Vec<String> = r.fold_tau.iter().map(|t| format!("{t:.4}")).collect();
            writeln!(
                f,
                "{:<9} {:>7.4} {:>6.4}  {:<40} {:>+7.4} ± {:.4}  {:<16} {:>7.4} {:>7.4}",
                r.family,
                r.mean_tau,
                r.std_tau,
                folds.join(" "),
                r.vs_wot_mean,
                r.vs_wot_std,
                r.full_rule,
                r.full_tau,
                r.full_rho
            )?;
        }
        writeln!(
            f,
            "chosen: {} (best mean held-out τ), fitted on all rows: {}",
            self.chosen, self.chosen_rule
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic cells whose truth is exactly `D + 0.4·B·ln N_A`: the linear
    /// family must win, with α near 0.4 in every fold and τ near 1, and beat
    /// WOT, D and N_A alone.
    #[test]
    fn fit_finds_the_generating_rule() {
        let key = stream_key(9, 1);
        let u = |i: u64| (bits(key, i) >> 11) as f64 / (1u64 << 53) as f64;
        let atoms: Vec<Atoms> = (0..400u64)
            .map(|i| Atoms {
                d: Some(-300.0 * u(2 * i)),
                ln_na: 12.0 + u(2 * i + 1),
                batch: 128,
            })
            .collect();
        let truth: Vec<f64> = atoms
            .iter()
            .map(|a| a.d.unwrap() + 0.4 * 128.0 * a.ln_na)
            .collect();
        let r = fit(&atoms, &truth, 5, 0).unwrap();
        assert_eq!(r.chosen, "linear");
        let lin = &r.families[0];
        for rule in &lin.fold_rules {
            let alpha: f64 = rule.strip_prefix("linear:").unwrap().parse().unwrap();
            assert!((alpha - 0.4).abs() <= 0.02, "{rule}");
        }
        assert!(lin.mean_tau > 0.99, "{lin:?}");
        for base in &r.families[3..] {
            assert!(base.mean_tau < lin.mean_tau - 0.05, "{base:?}");
        }
        // Singular cells rank lowest.
        let mut a2 = atoms.clone();
        a2[0].d = None;
        let s = Rule::Linear { alpha: 0.4 }.scores(&a2);
        assert_eq!(s[0], f64::NEG_INFINITY);
        let s = Rule::RankSum { beta: 1.0 }.scores(&a2);
        assert_eq!(s[0], f64::NEG_INFINITY);
    }

    #[test]
    fn rank_sum_wins_when_the_truth_is_a_rank_sum() {
        // Truth = rank(D) + rank(N_A) with D on a wildly varying scale: no
        // single α of the linear family can match it everywhere.
        let key = stream_key(4, 2);
        let u = |i: u64| (bits(key, i) >> 11) as f64 / (1u64 << 53) as f64;
        let atoms: Vec<Atoms> = (0..300u64)
            .map(|i| Atoms {
                d: Some(-(10f64).powf(4.0 * u(2 * i))),
                ln_na: 12.0 + u(2 * i + 1),
                batch: 128,
            })
            .collect();
        let truth = Rule::RankSum { beta: 1.0 }.scores(&atoms);
        let r = fit(&atoms, &truth, 4, 1).unwrap();
        assert_eq!(r.chosen, "ranksum", "{r}");
    }

    #[test]
    fn rules_parse() {
        assert_eq!(Rule::parse("wot").unwrap(), Rule::WOT);
        assert_eq!(Rule::parse("das@0.5").unwrap(), Rule::Linear { alpha: 0.5 });
        assert_eq!(
            Rule::parse("ranksum:2").unwrap(),
            Rule::RankSum { beta: 2.0 }
        );
        assert_eq!(
            Rule::parse("units:0.3").unwrap(),
            Rule::Units { alpha: 0.3 }
        );
        assert!(Rule::parse("linear:x").is_err());
        assert!(Rule::parse("bogus").is_err());
        use crate::space::{Space, SpaceOptions};
        let none = SpaceOptions::new();
        assert_eq!(
            Rule::parse_for(Space::NB201, &none, "auto").unwrap(),
            Rule::WOT
        );
        assert_eq!(
            Rule::parse_for(Space::NB101, &none, "auto").unwrap(),
            Rule::RankSum { beta: 2.6 }
        );
        let narrow = SpaceOptions::new().with("stem_channels", 16);
        assert_eq!(
            Rule::parse_for(Space::NB101, &narrow, "auto").unwrap(),
            Rule::Linear { alpha: 0.12 }
        );
        let tiny = SpaceOptions::new()
            .with("init_channels", 3)
            .with("layers", 1);
        assert_eq!(
            Rule::parse_for(Space::DARTS, &tiny, "auto").unwrap(),
            Rule::RankSum { beta: 0.24 }
        );
        assert_eq!(
            Rule::parse_for(Space::DARTS, &none, "auto").unwrap(),
            Rule::WOT
        );
        assert!(fit(&[], &[], 5, 0).is_err());
    }
}
