//! Module functions: spaces (sample, parse, enumerate), ranking statistics,
//! rule fitting and search, over the core crate's code.

use crate::convert::{guarded, report_to_py};
use crate::scorer::{space_options as checked_options, PyScorer};
use dasnas::eval::fit::{self, Atoms, Rule};
use dasnas::eval::search::{self, Evaluator, SearchOptions, Strategy};
use dasnas::space::Space;
use dasnas::Error;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Registers the functions of this file.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(space_names, m)?)?;
    m.add_function(wrap_pyfunction!(measure_list, m)?)?;
    m.add_function(wrap_pyfunction!(space_options_of, m)?)?;
    m.add_function(wrap_pyfunction!(parse_arch, m)?)?;
    m.add_function(wrap_pyfunction!(sample_archs, m)?)?;
    m.add_function(wrap_pyfunction!(enumerate_archs, m)?)?;
    m.add_function(wrap_pyfunction!(kendall_tau, m)?)?;
    m.add_function(wrap_pyfunction!(spearman, m)?)?;
    m.add_function(wrap_pyfunction!(fit_rules, m)?)?;
    m.add_function(wrap_pyfunction!(fit_files, m)?)?;
    m.add_function(wrap_pyfunction!(run_search, m)?)?;
    m.add_function(wrap_pyfunction!(identities, m)?)?;
    m.add_function(wrap_pyfunction!(unique_archs, m)?)?;
    m.add_function(wrap_pyfunction!(archs_by_index, m)?)?;
    m.add_function(wrap_pyfunction!(resume_file, m)?)?;
    m.add_function(wrap_pyfunction!(merge_files, m)?)?;
    Ok(())
}

/// `(name, aliases, summary, reference)` of every measure.
#[pyfunction]
fn measure_list() -> Vec<(&'static str, Vec<&'static str>, &'static str, &'static str)> {
    dasnas::measures::ALL
        .iter()
        .map(|m| (m.name, m.aliases.to_vec(), m.summary, m.reference))
        .collect()
}

/// Names of the registered spaces.
#[pyfunction]
fn space_names() -> Vec<&'static str> {
    Space::all().iter().map(|s| s.name()).collect()
}

/// `(key, default, help)` of every option a space takes.
#[pyfunction]
fn space_options_of(space: &str) -> PyResult<Vec<(&'static str, &'static str, &'static str)>> {
    let sp: Space = guarded(|| space.parse())?;
    Ok(sp
        .options()
        .iter()
        .map(|o| (o.key, o.default, o.help))
        .collect())
}

/// The canonical string of `arch` in `space`; `ValueError` with the byte
/// position of what is wrong.
#[pyfunction]
fn parse_arch(space: &str, arch: &str) -> PyResult<String> {
    guarded(|| {
        let sp: Space = space.parse()?;
        Ok(sp.parse(arch)?.to_string())
    })
}

/// `n` distinct cells of `space` drawn with `seed`.
#[pyfunction]
fn sample_archs(py: Python<'_>, space: &str, n: usize, seed: u64) -> PyResult<Vec<String>> {
    py.detach(|| {
        guarded(|| {
            let sp: Space = space.parse()?;
            Ok(sp.sample(n, seed)?.iter().map(|a| a.to_string()).collect())
        })
    })
}

/// Every cell of `space` (where it is small enough to list).
#[pyfunction]
fn enumerate_archs(py: Python<'_>, space: &str) -> PyResult<Vec<String>> {
    py.detach(|| {
        guarded(|| {
            let sp: Space = space.parse()?;
            Ok(sp.enumerate()?.iter().map(|a| a.to_string()).collect())
        })
    })
}

/// `(key, index or None, score_key)` of each of `archs` (see
/// `dasnas::space::Identity`).
#[pyfunction]
fn identities(
    py: Python<'_>,
    space: &str,
    archs: Vec<String>,
) -> PyResult<Vec<(String, Option<usize>, String)>> {
    py.detach(|| {
        guarded(|| {
            let sp: Space = space.parse()?;
            archs
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let id = sp
                        .parse(a)
                        .map_err(|e| e.context(format!("archs[{i}]")))?
                        .identity();
                    Ok((id.key, id.index, id.score_key))
                })
                .collect()
        })
    })
}

/// The first of `archs` in each class of equal scores (canonical strings).
#[pyfunction]
fn unique_archs(py: Python<'_>, space: &str, archs: Vec<String>) -> PyResult<Vec<String>> {
    py.detach(|| {
        guarded(|| {
            let sp: Space = space.parse()?;
            let parsed: Vec<dasnas::Result<dasnas::space::Arch>> = archs
                .iter()
                .enumerate()
                .map(|(i, a)| sp.parse(a).map_err(|e| e.context(format!("archs[{i}]"))))
                .collect();
            dasnas::select::unique(Box::new(parsed.into_iter()), false)
                .map(|a| Ok(a?.to_string()))
                .collect()
        })
    })
}

/// The cells of official `indices` in `space` (NB201).
#[pyfunction]
fn archs_by_index(space: &str, indices: Vec<usize>) -> PyResult<Vec<String>> {
    guarded(|| {
        let sp: Space = space.parse()?;
        let archs = dasnas::select::by_index(sp, &indices, &dasnas::space::SpaceOptions::new())?;
        Ok(archs.iter().map(|a| a.to_string()).collect())
    })
}

/// The archs already in result file `path` (none when it does not exist),
/// after checking its lines' run stamps against `run` (JSON text, a
/// scorer's `run`): `ValueError` naming the first line of another run. A
/// partial last line is cut off.
#[pyfunction]
fn resume_file(py: Python<'_>, path: std::path::PathBuf, run: &str) -> PyResult<Vec<String>> {
    py.detach(|| {
        guarded(|| {
            let stamp: dasnas::results::RunStamp = serde_json::from_str(run)
                .map_err(|e| Error::Arg(format!("run is not a run stamp: {e}")))?;
            dasnas::results::check_stamps(&path, &stamp)?;
            Ok(dasnas::io::resume(&path)?.done.into_iter().collect())
        })
    })
}

/// `dasnas merge`: joins result files into `out`; the report as a dict.
#[pyfunction]
#[pyo3(signature = (inputs, out, expect=None, tolerance=1e-6))]
fn merge_files<'py>(
    py: Python<'py>,
    inputs: Vec<std::path::PathBuf>,
    out: std::path::PathBuf,
    expect: Option<std::path::PathBuf>,
    tolerance: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let report = py.detach(|| {
        guarded(|| dasnas::results::merge(&inputs, expect.as_deref(), &out, tolerance))
    })?;
    report_to_py(py, &report)
}

fn same_length(x: &[f64], y: &[f64]) -> dasnas::Result<()> {
    if x.len() != y.len() {
        return Err(Error::Arg(format!(
            "x has {} values and y {}; they must pair up",
            x.len(),
            y.len()
        )));
    }
    Ok(())
}

/// Kendall τ-b (ties handled); NaN when undefined (fewer than 2 pairs, a constant side).
#[pyfunction]
fn kendall_tau(x: Vec<f64>, y: Vec<f64>) -> PyResult<f64> {
    guarded(|| {
        same_length(&x, &y)?;
        Ok(dasnas::eval::rank::kendall_tau_b(&x, &y).unwrap_or(f64::NAN))
    })
}

/// Spearman ρ (average ranks for ties); NaN when undefined.
#[pyfunction]
fn spearman(x: Vec<f64>, y: Vec<f64>) -> PyResult<f64> {
    guarded(|| {
        same_length(&x, &y)?;
        Ok(dasnas::eval::rank::spearman_rho(&x, &y).unwrap_or(f64::NAN))
    })
}

/// `dasnas fit` on columns: D (None for singular cells), ln N_A, the truth,
/// the batch size B; the report as a dict.
#[pyfunction]
#[pyo3(signature = (d, ln_n_units, truth, batch, folds, seed))]
fn fit_rules<'py>(
    py: Python<'py>,
    d: Vec<Option<f64>>,
    ln_n_units: Vec<f64>,
    truth: Vec<f64>,
    batch: usize,
    folds: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let report = py.detach(|| {
        guarded(|| {
            if d.len() != ln_n_units.len() || d.len() != truth.len() {
                return Err(Error::Arg(format!(
                    "d, ln_n_units and truth have {}, {} and {} values; they must pair up",
                    d.len(),
                    ln_n_units.len(),
                    truth.len()
                )));
            }
            let atoms: Vec<Atoms> = d
                .iter()
                .zip(&ln_n_units)
                .map(|(&d, &ln_na)| Atoms { d, ln_na, batch })
                .collect();
            fit::fit(&atoms, &truth, folds, seed)
        })
    })?;
    report_to_py(py, &report)
}

/// `dasnas fit` on files: a scores file and a truth CSV.
#[pyfunction]
fn fit_files<'py>(
    py: Python<'py>,
    scores: String,
    truth: String,
    key: String,
    target: String,
    folds: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let report = py.detach(|| {
        guarded(|| {
            fit::fit_files(
                Path::new(&scores),
                Path::new(&truth),
                &key,
                &target,
                folds,
                seed,
            )
        })
    })?;
    report_to_py(py, &report)
}

/// `dasnas search`: cells scored by `scorer` (or drawn from the `scores`
/// file), the report as a dict.
#[pyfunction]
#[pyo3(signature = (scorer, space, space_options, seed, n, runs, metric, strategy, population, tournament, scores, truth, key, target))]
#[allow(clippy::too_many_arguments)] // one Python keyword each
fn run_search<'py>(
    py: Python<'py>,
    scorer: Option<&PyScorer>,
    space: &str,
    space_options: HashMap<String, String>,
    seed: u64,
    n: usize,
    runs: usize,
    metric: &str,
    strategy: &str,
    population: usize,
    tournament: usize,
    scores: Option<String>,
    truth: Option<String>,
    key: String,
    target: String,
) -> PyResult<Bound<'py, PyAny>> {
    let report = py.detach(|| {
        guarded(|| {
            let strategy = Strategy::parse(strategy, population, tournament)?;
            let (space, options, seed) = match scorer {
                Some(s) => {
                    let (sp, o, seed) = s.setting();
                    (sp, o.clone(), seed)
                }
                None => {
                    let sp: Space = space.parse()?;
                    (sp, checked_options(sp, space_options)?, seed)
                }
            };
            let rule = Rule::parse_for(space, &options, metric)?;
            let truth = truth
                .map(|p| dasnas::eval::read_truth(&p, &key, &target))
                .transpose()?;
            let (cache, pool) = match &scores {
                Some(p) => search::cache_and_pool(Path::new(p), space, &options, truth.as_ref())?,
                None => Default::default(),
            };
            let from_cache = scores.is_some() && strategy == Strategy::Random;
            let mut guard = match scorer {
                Some(s) if !from_cache => Some(s.lock()?),
                _ => None,
            };
            if let (Some(g), Some(p)) = (&guard, &scores) {
                search::check_cache_stamp(Path::new(p), g.stamp())?;
            }
            if guard.is_none() && !from_cache {
                return Err(Error::Arg(
                    "this search scores cells: pass a Scorer (or a scores file for random search)"
                        .into(),
                ));
            }
            let mut eval = Evaluator::new(cache, guard.as_deref_mut().map(|r| r.scorer()), seed);
            let opts = SearchOptions {
                space,
                n,
                runs,
                rule,
                seed,
                strategy,
                from_cache,
                space_options: options,
            };
            search::search(&opts, &mut eval, &pool, truth.as_ref())
        })
    })?;
    report_to_py(py, &report)
}
