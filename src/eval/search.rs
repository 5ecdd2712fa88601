//! Training-free search: NASWOT's random search ("sample N cells, keep the
//! best by the score") and a score-guided regularised evolution, repeated
//! over R seeded runs and judged by ground truth when given.
//!
//! Scores come from an [`Evaluator`]: a cache (a scores file read once, so
//! R = 500 runs cost one scoring pass) and/or on-the-fly scoring with
//! [`crate::score_arch`] on a fixed batch (memoised, so a cell is scored
//! once however often runs draw it).
//!
//! Random search with a cache draws each run's N cells from the cached
//! cells (those with a truth value when truth is given), without
//! replacement: with a 1,000-cell cache N = 1000 picks the same cell every
//! run (degenerate), and N close to the cache size barely varies between
//! runs. Without a cache it samples N distinct cells from the space.
//!
//! Evolution (Real et al. 2019, "regularised evolution", scored by the
//! training-free metric instead of trained accuracy): a population of P
//! random cells; each step draws S members uniformly (with replacement),
//! mutates the best of them ([`crate::space::mutate`]), adds the child and
//! removes the oldest member; after N evaluations (the P initial ones
//! included) the best cell seen is chosen. Its children leave any cache, so
//! it needs a scoring batch unless the cache holds the whole space.

use crate::error::{Error, Result};
use crate::eval::fit::{Atoms, Rule};
use crate::eval::join::ScoreTable;
use crate::rng::{bits, mix64, name_id, stream_key};
use crate::space::{self, Arch, Space, SpaceOptions};
use std::collections::{HashMap, VecDeque};

/// The most runs a search makes.
pub const MAX_RUNS: usize = 100_000;

/// A seeded stream of uniform integers.
pub struct Draws {
    key: u64,
    i: u64,
}

impl Draws {
    /// The stream named `stream` of `seed` (each name an independent stream).
    pub fn new(seed: u64, stream: &str) -> Self {
        Draws {
            key: stream_key(seed, name_id(stream)),
            i: 0,
        }
    }

    /// Uniform in `0..m` (`m ≥ 1`), without modulo bias.
    pub fn below(&mut self, m: u64) -> u64 {
        let limit = u64::MAX - u64::MAX % m;
        loop {
            let r = bits(self.key, self.i);
            self.i += 1;
            if r < limit {
                return r % m;
            }
        }
    }
}

/// Where the atoms of a cell come from: the cache, else the scorer.
pub struct Evaluator<'a> {
    cache: HashMap<String, Atoms>,
    scorer: Option<&'a mut crate::Scorer>,
    seed: u64,
    /// Cells scored on the fly so far.
    pub scored: usize,
    /// Called after every evaluation (a progress bar's tick).
    on_evaluation: Option<Box<dyn FnMut() + 'a>>,
}

impl<'a> Evaluator<'a> {
    /// `cache` rows keyed by architecture string; `scorer` (the CPU or a
    /// GPU, with its scoring batch, weights of `seed`) scores cells the
    /// cache lacks.
    pub fn new(
        cache: HashMap<String, Atoms>,
        scorer: Option<&'a mut crate::Scorer>,
        seed: u64,
    ) -> Self {
        Evaluator {
            cache,
            scorer,
            seed,
            scored: 0,
            on_evaluation: None,
        }
    }

    /// Calls `f` after every evaluation, cached or scored: a search of R
    /// runs of N cells makes R·N of them.
    pub fn on_evaluation(mut self, f: impl FnMut() + 'a) -> Self {
        self.on_evaluation = Some(Box::new(f));
        self
    }

    /// The cache of a scores table (see [`crate::eval::fit::table_atoms`]).
    pub fn cache_of(table: &ScoreTable) -> Result<HashMap<String, Atoms>> {
        let atoms = crate::eval::fit::table_atoms(table, None)?;
        Ok(table
            .rows
            .iter()
            .zip(atoms)
            .map(|(r, a)| (r.arch.clone(), a))
            .collect())
    }

    /// The atoms of `arch`: from the cache, else scored on the fly (and cached);
    /// an error when the cache lacks it and there is no scorer.
    pub fn atoms(&mut self, arch: &Arch) -> Result<Atoms> {
        if let Some(f) = self.on_evaluation.as_mut() {
            f();
        }
        let name = arch.to_string();
        if let Some(a) = self.cache.get(&name) {
            return Ok(*a);
        }
        let seed = self.seed;
        let scorer = self.scorer.as_deref_mut().ok_or_else(|| {
            Error::Arg(format!(
                "cell {name} is not in the scores cache and no scoring batch was given"
            ))
        })?;
        let batch = scorer.batch_size();
        let r = scorer
            .score_archs(&[arch], seed, 1.0)?
            .pop()
            .ok_or_else(|| Error::Internal(format!("{name} was not scored")))?;
        let a = Atoms {
            d: r.scores.d,
            ln_na: r.scores.ln_n_units,
            batch,
        };
        self.scored += 1;
        self.cache.insert(name, a);
        Ok(a)
    }
}

/// Refuses a scores cache whose lines were scored with other settings
/// than the run that scores the cells it lacks (`stamp`): a search would
/// rank the two sets of scores together. The error names both stamps.
pub fn check_cache_stamp(path: &std::path::Path, stamp: &crate::results::RunStamp) -> Result<()> {
    match crate::results::other_run(path, stamp)? {
        None => Ok(()),
        Some(o) => Err(Error::Arg(format!(
            "the scores cache {} was scored with {} (line {}), but the cells it lacks would be \
             scored with this run's settings; the search would rank the two together. The \
             cache's run: {}; this run: {}. Score with the cache's settings (--data, --batch, \
             --seed, space options, ...) or use a cache of this run",
            path.display(),
            o.difference,
            o.line,
            o.stamp.to_json(),
            stamp.to_json()
        ))),
    }
}

/// The cache and the pool of a scores file for [`search`]: every row's
/// atoms keyed by architecture string, and its cells (those `truth` holds,
/// when given) parsed in `space` and built with `options`.
pub fn cache_and_pool(
    path: &std::path::Path,
    space: Space,
    options: &SpaceOptions,
    truth: Option<&HashMap<String, f64>>,
) -> Result<(HashMap<String, Atoms>, Vec<Arch>)> {
    let table = crate::eval::read_scores(path)?;
    let cache = Evaluator::cache_of(&table)?;
    let mut pool = Vec::new();
    for r in &table.rows {
        if truth.is_some_and(|t| !t.contains_key(&r.arch)) {
            continue;
        }
        let arch =
            Arch::parse(space, &r.arch).map_err(|e| e.context(path.display().to_string()))?;
        pool.push(arch.with_options(options)?);
    }
    Ok((cache, pool))
}

/// Which search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// NASWOT: N random cells, the best by the metric.
    Random,
    /// Regularised evolution with population P and tournament size S.
    Evolution {
        /// P, members of the population (capped at the cells evaluated per run).
        population: usize,
        /// S, members drawn (with replacement) for each tournament.
        tournament: usize,
    },
}

impl Strategy {
    /// `random`, or `evolution` with `population` and `tournament`.
    pub fn parse(name: &str, population: usize, tournament: usize) -> Result<Strategy> {
        match name {
            "random" => Ok(Strategy::Random),
            "evolution" => Ok(Strategy::Evolution {
                population,
                tournament,
            }),
            other => Err(Error::Arg(format!(
                "unknown strategy `{other}` (expected random or evolution)"
            ))),
        }
    }
}

/// What to search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// The space cells are sampled (or mutated) from.
    pub space: Space,
    /// Cells evaluated per run.
    pub n: usize,
    /// R, the independent seeded runs.
    pub runs: usize,
    /// The score cells are ranked by.
    pub rule: Rule,
    /// Seed of the runs (each run's seed is derived from it and the run index).
    pub seed: u64,
    /// Random search or evolution.
    pub strategy: Strategy,
    /// Random search: draw from the cache's cells instead of the space.
    pub from_cache: bool,
    /// Options of the space's network (DARTS size, NB101 init, …) for
    /// every sampled cell.
    pub space_options: SpaceOptions,
}

/// One run's outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunResult {
    /// The chosen cell's architecture string.
    pub chosen: String,
    /// Its score by the search's rule.
    pub score: f64,
    /// Truth of the chosen cell.
    pub truth: Option<f64>,
    /// Best truth among the cells the run evaluated (an oracle's pick).
    pub best_truth: Option<f64>,
    /// Mean truth of the cells the run evaluated (a random pick, in expectation).
    pub mean_truth: Option<f64>,
}

/// Mean and sample standard deviation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (n − 1 in the denominator; 0 for one value).
    pub std: f64,
    /// Values summarised.
    pub n: usize,
}

impl MeanStd {
    /// Mean and standard deviation of `v`; `None` when it is empty.
    pub fn of(v: &[f64]) -> Option<MeanStd> {
        if v.is_empty() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Some(MeanStd {
            mean,
            std: var.sqrt(),
            n: v.len(),
        })
    }
}

/// The runs and their summary.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SearchReport {
    /// `random` or `evolution(P=…, S=…)`.
    pub strategy: String,
    /// The rule cells were ranked by (as [`Rule`] prints it).
    pub metric: String,
    /// N, cells evaluated per run.
    pub n: usize,
    /// R, the runs.
    pub runs: usize,
    /// Cells the pool held (random search from a cache), else 0.
    pub pool: usize,
    /// Over runs with truth: truth of the chosen cell.
    pub chosen_truth: Option<MeanStd>,
    /// Over runs with truth: best truth among the evaluated cells (the oracle).
    pub best_truth: Option<MeanStd>,
    /// Over runs with truth: mean truth of the evaluated cells (a random pick).
    pub mean_truth: Option<MeanStd>,
    /// Cells scored on the fly (not from the cache).
    pub scored: usize,
    /// Each run's outcome, in run order.
    pub results: Vec<RunResult>,
}

/// Index of the first maximum.
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn summarise(
    cells: &[Arch],
    scores: &[f64],
    chosen: usize,
    truth: Option<&HashMap<String, f64>>,
) -> RunResult {
    let names: Vec<String> = cells.iter().map(|a| a.to_string()).collect();
    let truths: Option<Vec<f64>> =
        truth.map(|t| names.iter().filter_map(|n| t.get(n).copied()).collect());
    RunResult {
        chosen: names[chosen].clone(),
        score: scores[chosen],
        truth: truth.and_then(|t| t.get(&names[chosen]).copied()),
        best_truth: truths
            .as_ref()
            .and_then(|v| v.iter().copied().max_by(f64::total_cmp)),
        mean_truth: truths.and_then(|v| MeanStd::of(&v).map(|m| m.mean)),
    }
}

/// Runs the search (module docs). `pool` is the cache's cells (random
/// search from a cache draws from it); `truth` maps architecture strings to
/// the target.
pub fn search(
    opts: &SearchOptions,
    eval: &mut Evaluator<'_>,
    pool: &[Arch],
    truth: Option<&HashMap<String, f64>>,
) -> Result<SearchReport> {
    if opts.n == 0 || opts.runs == 0 {
        return Err(Error::Arg("--n and --runs must be at least 1".into()));
    }
    if opts.runs > MAX_RUNS {
        return Err(Error::Arg(format!(
            "--runs {}: at most {MAX_RUNS} runs (the spread over runs is known well long \
             before)",
            opts.runs
        )));
    }
    opts.space.check_options(&opts.space_options)?;
    let size = |a: Arch| a.with_options(&opts.space_options);
    let mut results = Vec::with_capacity(opts.runs);
    for run in 0..opts.runs {
        let run_seed = mix64(opts.seed ^ mix64(run as u64 + 1));
        let r = match opts.strategy {
            Strategy::Random => {
                let cells: Vec<Arch> = if opts.from_cache {
                    if opts.n > pool.len() {
                        return Err(Error::Arg(format!(
                            "--n {} exceeds the {} cells of the cache",
                            opts.n,
                            pool.len()
                        )));
                    }
                    // Partial Fisher–Yates: the first n of a seeded shuffle.
                    let mut idx: Vec<usize> = (0..pool.len()).collect();
                    let mut d = Draws::new(run_seed, "search.random");
                    for i in 0..opts.n {
                        let j = i + d.below((pool.len() - i) as u64) as usize;
                        idx.swap(i, j);
                    }
                    idx[..opts.n].iter().map(|&i| pool[i].clone()).collect()
                } else {
                    space::sample(opts.space, opts.n, run_seed)?
                        .into_iter()
                        .map(size)
                        .collect::<Result<_>>()?
                };
                let atoms = cells
                    .iter()
                    .map(|a| eval.atoms(a))
                    .collect::<Result<Vec<_>>>()?;
                let scores = opts.rule.scores(&atoms);
                summarise(&cells, &scores, argmax(&scores), truth)
            }
            Strategy::Evolution {
                population,
                tournament,
            } => {
                if opts.rule.needs_set() {
                    return Err(Error::Arg(format!(
                        "metric {} ranks within a set; evolution needs a per-cell score",
                        opts.rule
                    )));
                }
                if population == 0 || tournament == 0 {
                    return Err(Error::Arg(
                        "--population and --tournament must be at least 1".into(),
                    ));
                }
                let p = population.min(opts.n);
                let mut d = Draws::new(run_seed, "search.evolution");
                let mut history: Vec<Arch> = Vec::with_capacity(opts.n);
                let mut hist_scores: Vec<f64> = Vec::with_capacity(opts.n);
                let mut popl: VecDeque<(Arch, f64)> = VecDeque::with_capacity(p);
                for a in space::sample(opts.space, p, run_seed)? {
                    let a = size(a)?;
                    let s = opts.rule.score_one(&eval.atoms(&a)?).expect("per-cell");
                    popl.push_back((a.clone(), s));
                    history.push(a);
                    hist_scores.push(s);
                }
                while history.len() < opts.n {
                    let mut parent = d.below(popl.len() as u64) as usize;
                    for _ in 1..tournament {
                        let k = d.below(popl.len() as u64) as usize;
                        if popl[k].1 > popl[parent].1 {
                            parent = k;
                        }
                    }
                    let child = space::mutate(&popl[parent].0, &mut |m| d.below(m));
                    let s = opts.rule.score_one(&eval.atoms(&child)?).expect("per-cell");
                    popl.push_back((child.clone(), s));
                    popl.pop_front();
                    history.push(child);
                    hist_scores.push(s);
                }
                summarise(&history, &hist_scores, argmax(&hist_scores), truth)
            }
        };
        results.push(r);
    }
    let collect = |f: fn(&RunResult) -> Option<f64>| -> Option<MeanStd> {
        let v: Vec<f64> = results.iter().filter_map(f).collect();
        MeanStd::of(&v)
    };
    Ok(SearchReport {
        strategy: match opts.strategy {
            Strategy::Random => "random".into(),
            Strategy::Evolution {
                population,
                tournament,
            } => format!("evolution(P={population}, S={tournament})"),
        },
        metric: opts.rule.to_string(),
        n: opts.n,
        runs: opts.runs,
        pool: if opts.from_cache { pool.len() } else { 0 },
        chosen_truth: collect(|r| r.truth),
        best_truth: collect(|r| r.best_truth),
        mean_truth: collect(|r| r.mean_truth),
        scored: eval.scored,
        results,
    })
}

impl std::fmt::Display for SearchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pool = if self.pool > 0 {
            format!(", drawn from a cache of {} cells", self.pool)
        } else {
            String::new()
        };
        writeln!(
            f,
            "{} search, metric {}, N = {}, {} runs{pool}; {} cells scored on the fly",
            self.strategy, self.metric, self.n, self.runs, self.scored
        )?;
        let line = |f: &mut std::fmt::Formatter<'_>, what: &str, m: &Option<MeanStd>| match m {
            Some(m) => writeln!(f, "{what:<34} {:.2} ± {:.2}  ({} runs)", m.mean, m.std, m.n),
            None => Ok(()),
        };
        line(f, "chosen cell's truth", &self.chosen_truth)?;
        line(f, "best truth among evaluated (oracle)", &self.best_truth)?;
        line(f, "mean truth of evaluated (random)", &self.mean_truth)?;
        if self.chosen_truth.is_none() {
            for r in self.results.iter().take(10) {
                writeln!(f, "{:.4}  {}", r.score, r.chosen)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic cache over all NB201 cells: D is a function of the cell
    /// index, truth increases with D. Random search with the D metric must
    /// pick the best of its sample (its truth equals the oracle's), WOT with
    /// a misleading N_A must not always; evolution must beat random picks.
    #[test]
    fn search_on_a_synthetic_cache() {
        let cells: Vec<Arch> = space::enumerate(Space::NB201).unwrap();
        let mut cache = HashMap::new();
        let mut truth = HashMap::new();
        for (i, a) in cells.iter().enumerate() {
            let x = (mix64(i as u64) >> 11) as f64 / (1u64 << 53) as f64;
            cache.insert(
                a.to_string(),
                Atoms {
                    d: Some(-100.0 * (1.0 - x)),
                    // N_A anti-correlated with the truth.
                    ln_na: 13.0 - x,
                    batch: 128,
                },
            );
            truth.insert(a.to_string(), 80.0 + 10.0 * x);
        }
        let pool: Vec<Arch> = cells[..1000].to_vec();
        let mut opts = SearchOptions {
            space: Space::NB201,
            n: 10,
            runs: 50,
            rule: Rule::D,
            seed: 3,
            strategy: Strategy::Random,
            from_cache: true,
            space_options: SpaceOptions::new(),
        };
        let mut ev = Evaluator::new(cache.clone(), None, 0);
        let r = search(&opts, &mut ev, &pool, Some(&truth)).unwrap();
        for run in &r.results {
            assert_eq!(run.truth, run.best_truth);
        }
        assert_eq!(r.scored, 0);
        // Same seed, same runs.
        let again = search(&opts, &mut ev, &pool, Some(&truth)).unwrap();
        assert_eq!(again, r);
        // N = pool size: every run picks the same cell (degenerate).
        opts.n = 1000;
        opts.runs = 3;
        let r = search(&opts, &mut ev, &pool, Some(&truth)).unwrap();
        assert!(r.results.iter().all(|x| x.chosen == r.results[0].chosen));
        assert!(r.chosen_truth.unwrap().std < 1e-9);
        opts.n = 1001;
        assert!(search(&opts, &mut ev, &pool, Some(&truth)).is_err());
        // N_A alone is misleading here: below the random pick.
        opts.n = 10;
        opts.runs = 50;
        opts.rule = Rule::NUnits;
        let r = search(&opts, &mut ev, &pool, Some(&truth)).unwrap();
        assert!(r.chosen_truth.unwrap().mean < r.mean_truth.unwrap().mean);
        // Evolution over the whole space (the cache holds it all).
        opts.rule = Rule::D;
        opts.n = 100;
        opts.runs = 10;
        opts.strategy = Strategy::Evolution {
            population: 20,
            tournament: 5,
        };
        opts.from_cache = false;
        let r = search(&opts, &mut ev, &pool, Some(&truth)).unwrap();
        assert!(r.chosen_truth.unwrap().mean > r.mean_truth.unwrap().mean + 2.0);
        // A rank rule cannot guide evolution.
        opts.rule = Rule::RankSum { beta: 1.0 };
        assert!(search(&opts, &mut ev, &pool, Some(&truth)).is_err());
    }
}
