//! A DARTS training bench (DTB): the training states of many architectures
//! under one recipe, in one resumable JSON Lines file (`dasnas train
//! --archs`); and the records of one recorded training run (`dasnas train
//! --arch`).
//!
//! A record is one JSON object ([`record_json`]): `step` (0 before
//! training, then the step just taken), `loss`, `acc` (of that step's
//! batch, before its update; `null` at step 0), `lr` (`null` at step 0),
//! `ms` (the step's wall time, scoring excluded; absent at step 0), and at
//! step 0, every `every` steps and the last step the scores `wot`, `d`,
//! `das` (numbers, `null` when singular), `n_units` and `singular`.
//! (`train --arch` names the cell and stamps the run on its step-0 record
//! only.)
//!
//! In a bench file ([`run_bench`]) every record also names its cell —
//! `arch`, `key` and the space's identity fields (NB201's `index`, NB101's
//! `hash`; [`crate::results::put_identity`]) — and carries `run`, the
//! [`RunStamp`] of the recipe (space, options, seed, scoring images, α, and
//! the training's steps and a digest of its settings and data). A cell's
//! records are written in step order, one cell after another, flushed per
//! record, by one process per file (shards write files of their own). A
//! cell is complete when its record of the last step (`step == steps`) is
//! in the file; a reader takes each cell's records from its last `step: 0`
//! record onward (a cell interrupted before the file's end is trained again
//! from step 0 by a resumed run, its earlier records left in place).

use crate::error::{Error, Result};
use crate::results::RunStamp;
use crate::space::Arch;
use crate::train::{ScoreEvery, StepRecord, TrainStats};
use crate::Training;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The JSON object of one record (without the cell's identity or the run
/// stamp): `step`, `loss`, `acc`, `lr`, `ms` (absent at step 0) and, when
/// the record was scored, `wot`, `d`, `n_units`, `das`, `singular`.
pub fn record_json(r: &StepRecord) -> Value {
    let mut obj = serde_json::json!({
        "step": r.step,
        "loss": r.loss,
        "acc": r.accuracy,
        "lr": r.lr,
    });
    if let Some(s) = r.seconds {
        obj["ms"] = serde_json::json!((s * 1e4).round() / 10.0);
    }
    if let Some(s) = r.scores {
        obj["wot"] = serde_json::json!(s.wot);
        obj["d"] = serde_json::json!(s.d);
        obj["n_units"] = serde_json::json!(s.n_units);
        obj["das"] = serde_json::json!(s.das);
        obj["singular"] = serde_json::json!(s.singular);
    }
    obj
}

/// How every cell is trained and scored.
#[derive(Clone, Copy, Debug)]
pub struct Recipe<'a> {
    /// The training images, batch size, SGD settings and augmentation.
    pub training: &'a Training,
    /// SGD steps per cell.
    pub steps: usize,
    /// The seed of the weights and of the batch order.
    pub seed: u64,
    /// When and on what the network is scored.
    pub score_every: ScoreEvery<'a>,
}

/// Trains `arch` from `recipe.seed`'s weights on the CPU as
/// [`crate::train::train_recorded`] does, handing every record to
/// `on_record`; returns the summary and the wall time of every step.
pub fn train_cell(
    arch: &Arch,
    recipe: &Recipe<'_>,
    on_record: impl FnMut(StepRecord) -> Result<()>,
) -> Result<(TrainStats, Vec<f64>)> {
    let graph = arch.network()?;
    let mut params = crate::net::init::init_params(&graph, recipe.seed);
    let mut batches = recipe.training.batches(recipe.seed)?;
    crate::train::train_recorded(
        &graph,
        &mut params,
        &mut batches,
        &recipe.training.config,
        recipe.steps,
        recipe.score_every,
        on_record,
    )
}

/// Trains one cell as [`train_cell`] does and writes its records to
/// `path` (replaced), one JSON object per line, flushed per record: the
/// step-0 record names the cell (its identity) and carries `run`, the run
/// stamp (`dasnas train --arch`). Returns the summary and the wall time
/// of every step.
pub fn train_cell_to_file(
    arch: &Arch,
    recipe: &Recipe<'_>,
    stamp: &RunStamp,
    path: &std::path::Path,
) -> Result<(TrainStats, Vec<f64>)> {
    use std::io::Write;
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(f);
    train_cell(arch, recipe, |r| {
        let mut obj = record_json(&r);
        if r.step == 0 {
            crate::results::put_identity(&mut obj, arch);
            obj["run"] = stamp.to_json();
        }
        writeln!(out, "{obj}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::io(path, e))
    })
}

/// Steps per second of a cell's step times (scoring excluded), without
/// the first step (warm-up) when there are several.
pub fn steps_per_second(step_s: &[f64]) -> f64 {
    let timed = if step_s.len() > 1 {
        &step_s[1..]
    } else {
        step_s
    };
    let secs: f64 = timed.iter().sum();
    timed.len() as f64 / secs.max(1e-9)
}

/// What a bench file already holds ([`resume_bench`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchResume {
    /// The cells whose last-step record is in the file.
    pub done: HashSet<String>,
    /// Cells with records but no last-step record, left in the file and
    /// to be trained again (not counting the one cut off, `cut`).
    pub partial: HashSet<String>,
    /// The cell whose records ended the file without its last step (a
    /// killed run), and how many of its records were cut off.
    pub cut: Option<(String, usize)>,
    /// A half-written last line was cut off.
    pub dropped_partial_line: bool,
}

/// Reads bench file `path` (nothing when it does not exist) for a run of
/// `steps` steps per cell: the cells complete, and those with only some
/// records. Cuts off a half-written last line, and the records of the
/// file's last cell when they stop before its last step (that cell is
/// trained again from step 0); records of other unfinished cells stay.
/// Every line must be a record with `arch`, `step` and `run`.
pub fn resume_bench(path: &Path, steps: usize) -> Result<BenchResume> {
    let mut r = BenchResume::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
        Err(e) => return Err(Error::io(path, e)),
    };
    let complete = text.rfind('\n').map_or(0, |k| k + 1);
    r.dropped_partial_line = !text[complete..].trim().is_empty();
    // The cells with records, and the last run of lines of one cell: its
    // cell, where it starts and how many records it holds.
    let mut seen: HashSet<String> = HashSet::new();
    let mut last: Option<(String, usize, usize)> = None;
    let mut offset = 0;
    for (i, line) in text[..complete].split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::Data(format!("{}: not a JSON record ({e})", at())))?;
        let arch = v.get("arch").and_then(Value::as_str).ok_or_else(|| {
            Error::Data(format!(
                "{}: no `arch`: not a training-bench record (only `train --archs` writes \
                 the cell on every record)",
                at()
            ))
        })?;
        let step = v
            .get("step")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::Data(format!("{}: no whole-number `step`", at())))?;
        if v.get("run").is_none() {
            return Err(Error::Data(format!(
                "{}: no `run` stamp, so it cannot be checked against this run",
                at()
            )));
        }
        if step as usize == steps {
            r.done.insert(arch.to_string());
        }
        seen.insert(arch.to_string());
        match &mut last {
            Some((a, _, n)) if a == arch => *n += 1,
            _ => last = Some((arch.to_string(), start, 1)),
        }
    }
    let mut keep = complete;
    if let Some((arch, start, n)) = last {
        if !r.done.contains(&arch) {
            keep = start;
            r.cut = Some((arch, n));
        }
    }
    if keep < text.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(keep as u64).map_err(|e| Error::io(path, e))?;
    }
    let cut = r.cut.as_ref().map(|c| c.0.as_str());
    r.partial = seen
        .into_iter()
        .filter(|a| !r.done.contains(a) && Some(a.as_str()) != cut)
        .collect();
    Ok(r)
}

/// A bench run ([`plan_bench`], [`run_bench`]).
#[derive(Clone, Debug)]
pub struct Bench<'a> {
    /// The file the records are appended to.
    pub path: PathBuf,
    /// The recipe every cell is trained with.
    pub recipe: Recipe<'a>,
    /// The stamp of the recipe, written as `run` on every record and
    /// checked against the file's records before anything is appended.
    pub stamp: &'a RunStamp,
    /// Complete the file ([`resume_bench`]); without it the file must be
    /// absent or empty.
    pub resume: bool,
}

/// One cell trained by [`run_bench`].
#[derive(Clone, Debug)]
pub struct CellDone<'a> {
    /// The cell.
    pub arch: &'a Arch,
    /// Cells trained so far in this run, this one included.
    pub trained: usize,
    /// Cells this run trains.
    pub to_train: usize,
    /// The training summary.
    pub stats: TrainStats,
    /// Wall seconds of the cell (training, scoring and writing).
    pub seconds: f64,
}

/// What [`run_bench`] did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// Cells in the list given.
    pub cells: usize,
    /// Cells already complete in the file, skipped.
    pub already_done: usize,
    /// Cells listed more than once, trained once.
    pub duplicates: usize,
    /// Cells trained.
    pub trained: usize,
    /// Cells trained again from step 0 after a killed run (their records
    /// cut off the end of the file, or left in place before it).
    pub restarted: usize,
    /// Records cut off the end of the file (the killed run's last cell).
    pub cut_records: usize,
    /// A half-written last line was cut off.
    pub dropped_partial_line: bool,
}

/// The cells a bench run is to train, and what the file held
/// ([`plan_bench`]).
#[derive(Clone, Debug)]
pub struct BenchPlan<'c> {
    /// The cells to train, in list order.
    pub todo: Vec<&'c Arch>,
    /// The counts so far (`trained` is 0 until [`run_bench`]).
    pub report: BenchReport,
}

/// Prepares a bench run of `cells` on `bench.path`: with `bench.resume`
/// the file's run stamps must equal `bench.stamp` (checked before anything
/// is changed), then [`resume_bench`] cuts what a killed run left
/// unfinished at the end, and the cells complete in the file are left out;
/// without `bench.resume` a file that is not empty is refused. Cells listed
/// twice are trained once.
pub fn plan_bench<'c>(bench: &Bench<'_>, cells: &'c [Arch]) -> Result<BenchPlan<'c>> {
    let path = &bench.path;
    let mut report = BenchReport {
        cells: cells.len(),
        ..Default::default()
    };
    let holds_records = match std::fs::metadata(path) {
        Ok(m) => m.len() > 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(path, e)),
    };
    let resumed = if bench.resume {
        crate::results::check_stamps(path, bench.stamp)?;
        resume_bench(path, bench.recipe.steps)?
    } else if holds_records {
        return Err(Error::Arg(format!(
            "{} is not empty: pass --resume to complete it, or write to another file",
            path.display()
        )));
    } else {
        BenchResume::default()
    };
    report.cut_records = resumed.cut.as_ref().map_or(0, |c| c.1);
    report.dropped_partial_line = resumed.dropped_partial_line;
    let mut todo: Vec<&Arch> = Vec::new();
    let mut listed: HashSet<String> = HashSet::new();
    for a in cells {
        let name = a.to_string();
        if !listed.insert(name.clone()) {
            report.duplicates += 1;
        } else if resumed.done.contains(&name) {
            report.already_done += 1;
        } else {
            if resumed.partial.contains(&name) || resumed.cut.as_ref().is_some_and(|c| c.0 == name)
            {
                report.restarted += 1;
            }
            todo.push(a);
        }
    }
    Ok(BenchPlan { todo, report })
}

/// Trains every cell of `plan` with `bench.recipe` and appends each one's
/// records to `bench.path`, keyed by the cell (see the module docs),
/// flushing every record. `on_cell` is called after each cell. An error
/// (a training that diverges, a write that fails) stops the run, naming
/// the cell; the cells before it are complete in the file.
pub fn run_bench(
    bench: &Bench<'_>,
    plan: BenchPlan<'_>,
    mut on_cell: impl FnMut(&CellDone<'_>),
) -> Result<BenchReport> {
    let path = &bench.path;
    let BenchPlan { todo, mut report } = plan;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let run = bench.stamp.to_json();
    for (k, arch) in todo.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let mut tag = serde_json::json!({});
        crate::results::put_identity(&mut tag, arch);
        tag["run"] = run.clone();
        let (stats, _) = train_cell(arch, &bench.recipe, |r| {
            let mut obj = record_json(&r);
            if let (Some(o), Some(t)) = (obj.as_object_mut(), tag.as_object()) {
                o.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            writeln!(out, "{obj}")
                .and_then(|_| out.flush())
                .map_err(|e| Error::io(path, e))
        })
        .map_err(|e| e.context(format!("cell {arch}")))?;
        report.trained += 1;
        on_cell(&CellDone {
            arch,
            trained: k + 1,
            to_train: todo.len(),
            stats,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(arch: &str, step: usize) -> String {
        format!("{{\"arch\":\"{arch}\",\"step\":{step},\"run\":{{}}}}\n")
    }

    #[test]
    fn resume_cuts_the_unfinished_last_cell_only() {
        let dir = std::env::temp_dir().join(format!("dasnas-dtb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bench.jsonl");
        // a complete (steps 0..=2), b unfinished, c complete, d unfinished
        // at the end with a half-written line.
        let mut text = String::new();
        for (arch, n) in [("a", 3), ("b", 2), ("c", 3), ("d", 2)] {
            for s in 0..n {
                text.push_str(&line(arch, s));
            }
        }
        let kept = text.find("\"d\"").unwrap() - "{\"arch\":".len();
        text.push_str("{\"arch\":\"d\",\"st");
        std::fs::write(&p, &text).unwrap();
        let r = resume_bench(&p, 2).unwrap();
        assert_eq!(r.done, ["a", "c"].map(String::from).into());
        assert_eq!(r.partial, ["b"].map(String::from).into());
        assert_eq!(r.cut, Some(("d".to_string(), 2)));
        assert!(r.dropped_partial_line);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text[..kept]);
        // Again: nothing more to cut (b stays, as it is not last).
        let r = resume_bench(&p, 2).unwrap();
        assert_eq!((r.cut, r.dropped_partial_line), (None, false));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text[..kept]);
        // A line that is not a bench record is an error naming it.
        std::fs::write(&p, "{\"step\":0}\n").unwrap();
        let e = resume_bench(&p, 2).unwrap_err().to_string();
        assert!(e.contains("line 1: no `arch`"), "{e}");
        assert!(resume_bench(&dir.join("absent"), 2).unwrap() == BenchResume::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
