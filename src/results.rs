//! Result lines and the files they make: what `dasnas score` (and the
//! Python package) writes per cell, the run stamp every line carries, and
//! merging the files of many shards into one.
//!
//! A result line is one JSON object: the cell (`arch`, its class `key`, its
//! official `index` where the space has one, the key again under the
//! space's own name such as NB101's `hash`), its scores
//! ([`CellResult::to_json`]), and `run`, the [`RunStamp`] of the settings
//! that fix the scores besides the cell. Resuming and merging refuse lines
//! whose stamps differ, so a file never mixes seeds, batches or images.

use crate::error::{Error, Result};
use crate::space::{Arch, Space, SpaceOptions};
use crate::{CellResult, Tensor, Training};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The settings that fix a cell's scores besides the cell itself, written
/// as `run` on every result line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStamp {
    /// The space's name.
    pub space: String,
    /// The space options, `key=value` joined by `,` in key order (empty:
    /// the defaults).
    pub options: String,
    /// The seed of the weights.
    pub seed: u64,
    /// Images in the scoring batch (B).
    pub batch: usize,
    /// md5 of the scoring batch's values (first 16 hex digits): the same
    /// images give the same stamp wherever their file lies.
    pub images: String,
    /// α of `das`.
    pub alpha: f64,
    /// The fast training before scoring, as `steps` and a digest of its
    /// recipe and data; absent when cells are scored at initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    /// SWAP's regularisation, `μ=…,σ=…`, when lines carry `swap_reg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_reg: Option<String>,
    /// Weight seeds averaged over (`score --repeats`), when more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<usize>,
    /// The conv algorithm when it is not the exact one (`fast`): its scores
    /// differ from exact ones by rounding, so files do not mix the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<String>,
    /// The measures lines carry beyond the scoring pass, joined by `,`
    /// (`score --measures`), when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measures: Option<String>,
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RunStamp {
    /// The stamp of scoring cells of `space` built with `opts` with weight
    /// seed `seed` on `batch` (NHWC), α `alpha`, after `training`.
    pub fn new(
        space: Space,
        opts: &SpaceOptions,
        seed: u64,
        batch: &Tensor,
        alpha: f64,
        training: Option<&Training>,
    ) -> Self {
        let options: Vec<String> = opts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let train = training.map(|t| {
            let mut h = Md5::new();
            h.update(format!("{:?} {} {:?}", t.config, t.batch, t.augment).as_bytes());
            h.update(format!("{:?}", t.images.dataset).as_bytes());
            h.update(&t.images.labels);
            for &i in &t.pool {
                h.update((i as u64).to_le_bytes());
            }
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            format!("{} steps {}", t.steps, &digest[..16])
        });
        RunStamp {
            space: space.name().to_string(),
            options: options.join(","),
            seed,
            batch: batch.shape.n,
            images: md5_hex(bytemuck::cast_slice(&batch.data))[..16].to_string(),
            alpha,
            train,
            swap_reg: None,
            repeats: None,
            conv: None,
            measures: None,
        }
    }

    /// The stamp of a run whose convs use `conv` (recorded unless exact).
    pub fn with_conv(self, conv: crate::ops::conv2d::ConvAlgo) -> Self {
        RunStamp {
            conv: (conv != crate::ops::conv2d::ConvAlgo::Exact).then(|| conv.name().to_string()),
            ..self
        }
    }

    /// The stamp of a run whose measures read the caller's `labels`:
    /// they join the images' digest, so lines scored with other labels
    /// are not taken for this run's.
    pub fn with_labels(mut self, labels: &[u32]) -> RunStamp {
        let mut bytes = self.images.clone().into_bytes();
        for l in labels {
            bytes.extend_from_slice(&l.to_le_bytes());
        }
        self.images = md5_hex(&bytes)[..16].to_string();
        self
    }

    /// The stamp of a run whose lines carry `measures` (recorded when it
    /// computes any beyond the scoring pass).
    pub fn with_measures(self, measures: &crate::measures::MeasureSet) -> Self {
        RunStamp {
            measures: measures.stamp(),
            ..self
        }
    }

    /// The stamp of a run averaging `repeats` weight seeds.
    pub fn with_repeats(self, repeats: usize) -> Self {
        RunStamp {
            repeats: (repeats > 1).then_some(repeats),
            ..self
        }
    }

    /// The stamp of a run that counts SWAP with `swap`'s settings.
    pub fn with_swap(self, swap: &crate::scorer::Swap) -> Self {
        RunStamp {
            swap_reg: swap
                .regularise
                .map(|(mu, sigma)| format!("μ={mu},σ={sigma}")),
            ..self
        }
    }

    /// The stamp as the JSON object lines carry.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The stamp of a result line (`None` when it has none or a malformed
    /// one).
    pub fn of_line(line: &Value) -> Option<RunStamp> {
        serde_json::from_value(line.get("run")?.clone()).ok()
    }

    /// The first setting in which `other` differs, as `name X, not Y`
    /// (`other`'s value first); `None` when the stamps are equal.
    pub fn difference(&self, other: &RunStamp) -> Option<String> {
        let (a, b) = (self.to_json(), other.to_json());
        let fields = [
            "space", "options", "seed", "batch", "images", "alpha", "train", "swap_reg", "repeats",
            "conv",
        ];
        fields.iter().find_map(|&f| {
            let (x, y) = (
                a.get(f).unwrap_or(&Value::Null),
                b.get(f).unwrap_or(&Value::Null),
            );
            (x != y).then(|| {
                let name = match f {
                    "images" => "scoring images (md5)",
                    "train" => "fast training",
                    other => other,
                };
                format!("{name} {y}, not {x}")
            })
        })
    }
}

/// Sets the fields that name `arch` on a line (`obj`, a JSON object):
/// `arch`, its class `key`, its official `index` where the space has one,
/// and the key again under the space's own name (NB101's `hash`).
pub fn put_identity(obj: &mut Value, arch: &Arch) {
    put_identity_fields(obj, arch)
}

/// The cell's identity alone, as `dasnas enumerate --format json` lists
/// it: `arch`, `key`, and NB201's `index` / NB101's `hash`.
pub fn identity_json(arch: &Arch) -> Value {
    let mut obj = serde_json::json!({});
    put_identity_fields(&mut obj, arch);
    obj
}

fn put_identity_fields(obj: &mut Value, arch: &Arch) {
    let id = arch.identity();
    obj["arch"] = arch.to_string().into();
    if let Some(i) = id.index {
        obj["index"] = i.into();
    }
    if let Some(name) = arch.space().key_name() {
        obj[name] = id.key.clone().into();
    }
    obj["key"] = id.key.into();
}

/// The line `dasnas score` writes for `arch`: the cell's identity, the
/// scores of `result` (with `das@A` for each of `extra_alphas`), the run
/// stamp, and `scored_as` when the scores are those of another member of
/// the cell's class (`score --expand`).
pub fn result_line(
    arch: &Arch,
    result: &CellResult,
    extra_alphas: &[f64],
    stamp: &RunStamp,
    scored_as: Option<&Arch>,
) -> Value {
    let mut obj = result.to_json(&arch.to_string(), extra_alphas, stamp.batch);
    put_identity(&mut obj, arch);
    if let Some(rep) = scored_as {
        obj["scored_as"] = rep.to_string().into();
    }
    obj["run"] = stamp.to_json();
    obj
}

/// The line of `arch` scored with several weight seeds (`score --repeats
/// R`, `results[r]` with seed S + r): each numeric field is the mean over
/// the repeats where it is not null (null when it is null in all), with its
/// standard deviation (n − 1 in the denominator; 0 for one value) as
/// `<field>_std`; `singular` is true when every repeat is, and
/// `singular_repeats` counts those that are; `ms` is the total; `repeats`
/// is R. One result gives [`result_line`]'s line.
pub fn repeated_line(
    arch: &Arch,
    results: &[CellResult],
    extra_alphas: &[f64],
    stamp: &RunStamp,
    scored_as: Option<&Arch>,
) -> Value {
    let lines: Vec<Value> = results
        .iter()
        .map(|r| result_line(arch, r, extra_alphas, stamp, scored_as))
        .collect();
    let Some(first) = lines.first() else {
        return Value::Null;
    };
    if lines.len() == 1 {
        return first.clone();
    }
    let mut obj = first.clone();
    // Timings are summed; the identity and the network's own measures do
    // not depend on the weights.
    let not_averaged = [
        "ms",
        "train_ms",
        "train_steps",
        "index",
        "n_units",
        "ln_n_units",
        "params",
        "flops",
    ];
    let numeric: Vec<String> = lines
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.iter())
        .filter(|(k, v)| v.is_number() && !not_averaged.contains(&k.as_str()))
        .map(|(k, _)| k.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for field in numeric {
        let v: Vec<f64> = lines
            .iter()
            .filter_map(|l| l.get(&field).and_then(Value::as_f64))
            .collect();
        let (mean, std) = mean_std(&v);
        obj[&field] = mean.map_or(Value::Null, Value::from);
        obj[format!("{field}_std")] = std.map_or(Value::Null, Value::from);
    }
    let singular = lines
        .iter()
        .filter(|l| l.get("singular").and_then(Value::as_bool) == Some(true))
        .count();
    obj["singular"] = (singular == lines.len()).into();
    obj["singular_repeats"] = singular.into();
    let ms: f64 = lines
        .iter()
        .filter_map(|l| l.get("ms").and_then(Value::as_f64))
        .sum();
    obj["ms"] = ((ms * 10.0).round() / 10.0).into();
    obj["repeats"] = lines.len().into();
    obj
}

/// Mean and sample standard deviation (0 for one value; `None` for none).
fn mean_std(v: &[f64]) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (Some(mean), Some(var.sqrt()))
}

/// The line of `arch` made from `source`, the line of another cell of its
/// class (same run): the scores and stamp of `source`, the identity of
/// `arch`, and `scored_as` naming the cell that was scored.
pub fn copied_line(source: &Value, arch: &Arch) -> Value {
    let mut obj = source.clone();
    let scored = source
        .get("scored_as")
        .or_else(|| source.get("arch"))
        .cloned()
        .unwrap_or(Value::Null);
    put_identity(&mut obj, arch);
    if scored.as_str() == Some(&arch.to_string()) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("scored_as");
        }
    } else {
        obj["scored_as"] = scored;
    }
    obj
}

/// The score fields two lines of one cell must agree on (the timings and
/// identity fields may differ).
const COMPARED: [&str; 5] = ["wot", "d", "n_units", "ln_n_units", "das"];

/// Two lines of one cell whose scores differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conflict {
    /// The cell.
    pub arch: String,
    /// The field that differs.
    pub field: String,
    /// Where the first value came from (`file:line`) and the value.
    pub first: (String, Option<f64>),
    /// Where the second came from and the value.
    pub second: (String, Option<f64>),
}

/// What [`merge`] found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MergeReport {
    /// Input files.
    pub files: usize,
    /// Complete lines read.
    pub lines: usize,
    /// Distinct cells written.
    pub cells: usize,
    /// Lines of a cell already written, with equal scores, dropped.
    pub duplicates: usize,
    /// Unfinished last lines (a shard killed mid-write) skipped.
    pub partial_lines: usize,
    /// Cells of the expected list without a line (all of them listed).
    pub missing: Vec<String>,
    /// Expected cells (when a list was given).
    pub expected: Option<usize>,
    /// Cells with lines but not in the expected list.
    pub unexpected: usize,
}

impl std::fmt::Display for MergeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "merged {} file(s): {} lines, {} cells written, {} duplicate lines dropped, \
             {} unfinished lines skipped",
            self.files, self.lines, self.cells, self.duplicates, self.partial_lines
        )?;
        if let Some(n) = self.expected {
            write!(
                f,
                "; {} of {n} expected cells missing, {} not expected",
                self.missing.len(),
                self.unexpected
            )?;
        }
        Ok(())
    }
}

/// Joins the result files `inputs` (shards of one run) into `out`: every
/// cell once, in order of first appearance. A cell on several lines with
/// equal scores (relative difference at most `tolerance`, as between a GPU
/// and the CPU) is written once; with different scores it is an error
/// naming both lines, as is a line whose run stamp differs from the first
/// line's, or one without a stamp. An unfinished last line of a file (a
/// shard killed mid-write) is skipped and counted. With `expected` (a file
/// of arch strings, one per line, as `dasnas enumerate` writes them; parsed
/// in the space of the lines' stamp, so any spelling of a cell counts), the
/// report lists the cells no file has. `out` is written to a temporary file renamed into place only
/// when the merge succeeds, so an error leaves no half output and the
/// inputs are never touched.
pub fn merge(
    inputs: &[PathBuf],
    expected: Option<&Path>,
    out: &Path,
    tolerance: f64,
) -> Result<MergeReport> {
    if inputs.is_empty() {
        return Err(Error::Arg("merge needs at least one input file".into()));
    }
    if !(tolerance >= 0.0 && tolerance.is_finite()) {
        return Err(Error::Arg(format!(
            "--tolerance {tolerance} must be a finite number ≥ 0"
        )));
    }
    if let Some(p) = inputs.iter().find(|p| same_file(p, out)) {
        return Err(Error::Arg(format!(
            "--out {} is also an input ({}); write the merge elsewhere",
            out.display(),
            p.display()
        )));
    }
    let tmp = out.with_extension(format!("merging.{}", std::process::id()));
    let result = merge_into(inputs, expected, &tmp, tolerance);
    match result {
        Ok(report) => {
            std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn merge_into(
    inputs: &[PathBuf],
    expected: Option<&Path>,
    tmp: &Path,
    tolerance: f64,
) -> Result<MergeReport> {
    let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut report = MergeReport {
        files: inputs.len(),
        ..Default::default()
    };
    // Per cell: where its line came from and the compared scores; the lines
    // themselves go straight to the output.
    let mut seen: HashMap<String, (String, [Option<f64>; COMPARED.len()])> = HashMap::new();
    let mut reference: Option<(String, RunStamp)> = None;
    for path in inputs {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |k| k + 1);
        if text[complete..].iter().any(|b| !b.is_ascii_whitespace()) {
            report.partial_lines += 1;
        }
        for (i, line) in text[..complete].lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", path.display(), i + 1);
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| Error::Data(format!("{at}: not a JSON result line ({e})")))?;
            let arch = v
                .get("arch")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Data(format!("{at}: no `arch` field")))?
                .to_string();
            let stamp = RunStamp::of_line(&v).ok_or_else(|| {
                Error::Data(format!(
                    "{at}: no `run` stamp (seed, batch, images), so it cannot be checked \
                     against the other lines; rescore it with this version of dasnas"
                ))
            })?;
            match &reference {
                None => reference = Some((at.clone(), stamp)),
                Some((first_at, first)) => {
                    if let Some(d) = first.difference(&stamp) {
                        return Err(Error::Data(format!(
                            "{at} was scored with {d} (the setting of {first_at}): \
                             files of different runs cannot be merged"
                        )));
                    }
                }
            }
            report.lines += 1;
            let values = COMPARED.map(|f| v.get(f).and_then(Value::as_f64));
            match seen.get(&arch) {
                Some((first_at, first)) => {
                    for (k, field) in COMPARED.iter().enumerate() {
                        if !close(first[k], values[k], tolerance) {
                            return Err(Error::Data(format!(
                                "conflicting scores for {arch}: {field} {} at {first_at}, {} \
                                 at {at}",
                                show(first[k]),
                                show(values[k])
                            )));
                        }
                    }
                    report.duplicates += 1;
                }
                None => {
                    writeln!(w, "{line}").map_err(|e| Error::io(tmp, e))?;
                    seen.insert(arch, (at, values));
                    report.cells += 1;
                }
            }
        }
    }
    w.flush().map_err(|e| Error::io(tmp, e))?;
    if let Some(list) = expected {
        let space: Space = match &reference {
            Some((_, stamp)) => stamp.space.parse()?,
            None => return Err(Error::Data("the inputs hold no result line".into())),
        };
        let mut want: HashSet<String> = HashSet::new();
        for arch in crate::io::read_archs(space, list)? {
            let arch = arch.to_string();
            if !seen.contains_key(&arch) {
                report.missing.push(arch.clone());
            }
            want.insert(arch);
        }
        report.expected = Some(want.len());
        report.unexpected = seen.keys().filter(|a| !want.contains(*a)).count();
    }
    Ok(report)
}

fn show(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| x.to_string())
}

/// Equal within relative `tol` (both null counts as equal).
fn close(a: Option<f64>, b: Option<f64>, tol: f64) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || (x - y).abs() <= tol * x.abs().max(y.abs()),
        _ => false,
    }
}

/// A line of a result file whose run stamp differs from a run's.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherRun {
    /// Its line number (from 1).
    pub line: usize,
    /// The first setting that differs, as [`RunStamp::difference`] says it.
    pub difference: String,
    /// The line's stamp.
    pub stamp: RunStamp,
}

/// The first line of JSON Lines file `path` whose run stamp differs from
/// `stamp` (`None` when every stamped line agrees, or the file does not
/// exist). Lines that are not JSON or carry no stamp are skipped.
pub fn other_run(path: &Path, stamp: &RunStamp) -> Result<Option<OtherRun>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(theirs) = RunStamp::of_line(&v) {
            if let Some(d) = stamp.difference(&theirs) {
                return Ok(Some(OtherRun {
                    line: i + 1,
                    difference: d,
                    stamp: theirs,
                }));
            }
        }
    }
    Ok(None)
}

/// Refuses to resume into `path` when a line of it carries another run's
/// stamp than `stamp` (the error names the line and the setting).
pub fn check_stamps(path: &Path, stamp: &RunStamp) -> Result<()> {
    match other_run(path, stamp)? {
        None => Ok(()),
        Some(o) => Err(Error::Arg(format!(
            "{} line {} was scored with {} (this run's setting): resuming would mix two runs \
             in one file; write to another file",
            path.display(),
            o.line,
            o.difference
        ))),
    }
}

/// Refuses to append to `path` without resuming when it holds lines of
/// another run: a file holds one run's lines.
pub fn check_append(path: &Path, stamp: &RunStamp) -> Result<()> {
    match other_run(path, stamp)? {
        None => Ok(()),
        Some(o) => Err(Error::Arg(format!(
            "{} holds lines of another run (line {}: {}, this run's setting); appending would \
             mix two runs in one file: write to another file, remove it to replace it, or \
             complete it with --resume and the settings of its run ({})",
            path.display(),
            o.line,
            o.difference,
            o.stamp.to_json()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seed: u64) -> RunStamp {
        RunStamp {
            space: "nb201".into(),
            options: String::new(),
            seed,
            batch: 8,
            images: "0123456789abcdef".into(),
            alpha: 1.0,
            train: None,
            swap_reg: None,
            repeats: None,
            conv: None,
            measures: None,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn line(arch: &str, wot: f64, seed: u64) -> String {
        let mut v = serde_json::json!({"arch": arch, "wot": wot, "d": 1.0, "n_units": 5,
                                       "ln_n_units": 1.6, "das": 2.0});
        v["run"] = stamp(seed).to_json();
        v.to_string()
    }

    #[test]
    fn stamps_name_their_difference() {
        assert_eq!(stamp(0).difference(&stamp(0)), None);
        assert_eq!(
            stamp(0).difference(&stamp(3)).unwrap(),
            "seed 3, not 0".to_string()
        );
    }

    #[test]
    fn merge_drops_duplicates_reports_missing_and_refuses_conflicts() {
        let dir = std::env::temp_dir().join(format!("dasnas-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = write(
            &dir,
            "a",
            &format!("{}\n{}\n", line("x", 1.0, 0), line("y", 2.0, 0)),
        );
        // A duplicate of y, then a line cut off mid-write.
        let b = write(&dir, "b", &format!("{}\n{{\"arch\":\"z", line("y", 2.0, 0)));
        let out = dir.join("out");
        let r = merge(&[a.clone(), b], None, &out, 0.0).unwrap();
        assert_eq!((r.cells, r.duplicates, r.partial_lines), (2, 1, 1));
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
        // Different scores for one cell: an error, and the old output stays.
        let c = write(&dir, "c", &format!("{}\n", line("x", 1.5, 0)));
        let e = merge(&[a.clone(), c], None, &out, 1e-9)
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicting scores for x: wot 1"), "{e}");
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
        // Another seed: refused.
        let d = write(&dir, "d", &format!("{}\n", line("q", 1.0, 7)));
        let e = merge(&[a.clone(), d], None, &out, 0.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed 7, not 0"), "{e}");
        // The output cannot be one of the inputs.
        assert!(merge(std::slice::from_ref(&a), None, &a, 0.0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
