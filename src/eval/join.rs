//! Joining a scores file with a ground-truth table, and the evaluation report
//! (rank correlation of every score field with the truth).
//!
//! * Scores: JSON Lines, one object per line with a string field `arch`; every
//!   other field that holds a number in at least one line is a score field
//!   (`wot`, `d`, `n_units`, `das_a0.5`, …). `ms` (timing) and `seed` are not
//!   scores and are skipped. A score may be `null` (a singular cell has
//!   `"wot": null`); a missing field, or a non-numeric value in a score field,
//!   counts as null for that row. Blank lines are ignored.
//! * Truth: CSV with a header, a key column (architecture string) and a
//!   numeric target column.
//!
//! Reading keeps file and line in every error so a bad line is easy to find.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{json, Value};

use super::rank::{kendall_tau_b, spearman_rho};
use crate::error::{Error, Result};

/// Default truth key column: the NAS-Bench-201 architecture string.
pub const DEFAULT_KEY: &str = "arch_str";
/// Default truth target column: NAS-Bench-201 200-epoch CIFAR-10 test accuracy.
pub const DEFAULT_TARGET: &str = "cifar10_test_acc";
/// Fields of a scores line that are never scores: the key, the timings, the
/// seed and the number of training steps (`train_loss` and `train_acc` are
/// kept: they are per-cell measurements worth correlating).
pub const NON_SCORE_FIELDS: [&str; 6] = ["arch", "index", "ms", "seed", "train_ms", "train_steps"];

/// A scores file read into memory: one row per distinct architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreTable {
    /// Score fields (numeric in at least one line), in the order in which the
    /// field name first appears in the file.
    pub fields: Vec<String>,
    /// One row per distinct `arch`, in order of first appearance, holding the
    /// values of its last occurrence (a rerun overrides an earlier line).
    pub rows: Vec<ScoreRow>,
    /// Non-blank lines read.
    pub lines: usize,
    /// Lines whose `arch` repeats an earlier line (`lines − rows.len()`).
    pub duplicates: usize,
}

/// One architecture's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The architecture string, as written in the file.
    pub arch: String,
    /// One value per [`ScoreTable::fields`] entry; `None` for null, missing or
    /// non-numeric.
    pub values: Vec<Option<f64>>,
}

impl ScoreTable {
    /// Position of `field` in [`ScoreTable::fields`].
    pub fn field_index(&self, field: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == field)
    }
}

/// A JSON object with its fields in file order (serde_json's `Map` sorts its
/// keys unless the `preserve_order` feature is on, and the report lists
/// fields in file order).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedObject, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    fields.push(entry);
                }
                Ok(OrderedObject(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Reads a JSON Lines scores file (format in the module docs).
///
/// Errors name the file and the 1-based line: a line that is not JSON, not
/// an object, or lacks a string `arch`.
pub fn read_scores(path: impl AsRef<Path>) -> Result<ScoreTable> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    scores_from_reader(BufReader::new(file), path)
}

/// [`read_scores`] of text already open (a file, stdin, a byte slice):
/// `path` only names the source in error messages.
pub fn scores_from_reader(reader: impl BufRead, path: impl AsRef<Path>) -> Result<ScoreTable> {
    let path = path.as_ref();

    // All candidate field names in order of first appearance; which of them
    // ever held a number; per distinct arch, its values indexed like `names`.
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<String, usize> = HashMap::new();
    let mut numeric: Vec<bool> = Vec::new();
    let mut rows: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    let mut row_index: HashMap<String, usize> = HashMap::new();
    let (mut lines, mut duplicates) = (0usize, 0usize);
    // The line each row was first read from.
    let mut first_line: Vec<usize> = Vec::new();

    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| {
            Error::Data(format!(
                "{}:{line_no}: cannot read line: {e}",
                path.display()
            ))
        })?;
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        lines += 1;
        let bad = |msg: String| Error::Data(format!("{}:{line_no}: {msg}", path.display()));
        let OrderedObject(obj) = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                bad(format!("expected a JSON object: {e}"))
            } else {
                bad(format!("invalid JSON: {e}"))
            }
        })?;
        // A key repeated inside one object: the last value counts, as in
        // serde_json's own maps.
        let arch = match obj.iter().rev().find(|(k, _)| k == "arch") {
            Some((_, Value::String(s))) => s.clone(),
            Some(_) => return Err(bad("field `arch` is not a string".into())),
            None => return Err(bad("missing field `arch`".into())),
        };

        let mut values: Vec<Option<f64>> = Vec::new();
        for (name, v) in &obj {
            if NON_SCORE_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let k = match name_index.get(name) {
                Some(&k) => k,
                None => {
                    name_index.insert(name.clone(), names.len());
                    names.push(name.clone());
                    numeric.push(false);
                    names.len() - 1
                }
            };
            if values.len() <= k {
                values.resize(k + 1, None);
            }
            values[k] = v.as_f64();
        }
        for (k, v) in values.iter().enumerate() {
            numeric[k] |= v.is_some();
        }

        match row_index.get(&arch) {
            Some(&r) => {
                // A cell twice: the same scores (a file merged twice, a
                // copy) count once; different scores are two runs mixed.
                if let Some(k) = conflicting(&rows[r].1, &values) {
                    return Err(bad(format!(
                        "cell {} has a second line whose `{}` differs ({} here, {} on line {}): \
                         the file mixes runs; `dasnas merge` checks and joins result files",
                        crate::error::quote(&arch),
                        names[k],
                        number_or_null(values.get(k).copied().flatten()),
                        number_or_null(rows[r].1.get(k).copied().flatten()),
                        first_line[r]
                    )));
                }
                duplicates += 1;
                rows[r].1 = values;
            }
            None => {
                row_index.insert(arch.clone(), rows.len());
                rows.push((arch, values));
                first_line.push(line_no);
            }
        }
    }

    let keep: Vec<usize> = (0..names.len()).filter(|&k| numeric[k]).collect();
    Ok(ScoreTable {
        fields: keep.iter().map(|&k| names[k].clone()).collect(),
        rows: rows
            .into_iter()
            .map(|(arch, v)| ScoreRow {
                arch,
                values: keep.iter().map(|&k| v.get(k).copied().flatten()).collect(),
            })
            .collect(),
        lines,
        duplicates,
    })
}

/// The first field two lines of one cell disagree on (beyond a relative
/// 10⁻⁶, the rounding between devices `dasnas merge` accepts too; a null
/// against a number disagrees). Timings are not scores and are not read.
fn conflicting(a: &[Option<f64>], b: &[Option<f64>]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&k| {
        match (a.get(k).copied().flatten(), b.get(k).copied().flatten()) {
            (Some(x), Some(y)) => (x - y).abs() > 1e-6 * x.abs().max(y.abs()),
            (None, None) => false,
            // A field one line lacks entirely is not a conflict; a null
            // against a number is.
            (x, y) => {
                let present = |v: &[Option<f64>]| k < v.len();
                present(a) && present(b) && x.is_some() != y.is_some()
            }
        }
    })
}

fn number_or_null(v: Option<f64>) -> String {
    v.map_or_else(|| "null".into(), |x| x.to_string())
}

/// Reads a ground-truth CSV (with header) into `key column → target value`.
///
/// Keys are taken verbatim (no trimming); target values are trimmed, then
/// parsed as `f64`. Errors: a missing column (naming it and listing the
/// available ones), a non-numeric or NaN target (naming file, line and
/// value), a key repeated on two lines (the truth would be ambiguous), and
/// malformed CSV.
pub fn read_truth(path: impl AsRef<Path>, key: &str, target: &str) -> Result<HashMap<String, f64>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    truth_from_reader(BufReader::new(file), path, key, target)
}

/// [`read_truth`] of CSV text already open (a file, a byte slice): `path`
/// only names the source in error messages.
pub fn truth_from_reader(
    reader: impl std::io::Read,
    path: impl AsRef<Path>,
    key: &str,
    target: &str,
) -> Result<HashMap<String, f64>> {
    let path = path.as_ref();
    let mut reader = reader;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    // Line numbers from byte offsets: the csv reader's own line count is
    // one short on CRLF files.
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i)
        .collect();
    // A record's position may point at the end of the line before it (the
    // `\n` of a CRLF pair): skip line ends to the record's first byte.
    let line_at = |byte: u64| {
        let mut b = byte as usize;
        while matches!(bytes.get(b), Some(b'\r' | b'\n')) {
            b += 1;
        }
        newlines.partition_point(|&n| n < b) + 1
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&bytes[..]);
    let csv_err = |e: csv::Error| {
        let what = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("a row of {len} fields, where the header has {expected_len}"),
            csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8 text ({err})"),
            _ => {
                return Error::Csv {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        };
        let line = e.position().map_or(0, |p| line_at(p.byte()));
        Error::Data(format!("{}:{line}: {what}", path.display()))
    };

    let headers = reader.headers().map_err(csv_err)?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            let available: Vec<&str> = headers.iter().collect();
            Error::Data(format!(
                "{}: no column `{name}`; available columns: {}",
                path.display(),
                available.join(", ")
            ))
        })
    };
    let (key_col, target_col) = (column(key)?, column(target)?);

    let mut truth = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        // Column count is checked by the csv reader (records are not flexible).
        let (Some(k), Some(t)) = (record.get(key_col), record.get(target_col)) else {
            return Err(Error::Data(format!(
                "{}:{line}: too few fields",
                path.display()
            )));
        };
        let value = t.trim().parse::<f64>().ok().filter(|v| !v.is_nan());
        let Some(value) = value else {
            return Err(Error::Data(format!(
                "{}:{line}: column `{target}` holds {}, not a number",
                path.display(),
                crate::error::quote(t)
            )));
        };
        if truth.insert(k.to_string(), value).is_some() {
            return Err(Error::Data(format!(
                "{}:{line}: key {} in column `{key}` appears twice",
                path.display(),
                crate::error::quote(k)
            )));
        }
    }
    if truth.is_empty() {
        return Err(Error::Data(format!(
            "{}: no rows under the header: there is no truth to rank against",
            path.display()
        )));
    }
    Ok(truth)
}

/// What [`evaluate`] reads: the two files and which truth columns to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// JSON Lines scores file.
    pub scores: PathBuf,
    /// CSV ground-truth file.
    pub truth: PathBuf,
    /// Truth column holding the architecture string (default `arch_str`).
    pub key: String,
    /// Truth column holding the value to rank against (default
    /// `cifar10_test_acc`).
    pub target: String,
    /// What a null score (a singular cell) counts as.
    pub nulls: NullPolicy,
}

/// How [`evaluate_tables`] treats a joined row whose field is null.
///
/// A singular cell's WOT is ln 0 = −∞, written as `null`: ranking it below
/// every finite score ([`NullPolicy::Lowest`], the default) is what the score
/// means, and what a search that picks the best score does with it.
/// [`NullPolicy::Drop`] leaves such rows out of that field's correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NullPolicy {
    /// Ranked below every finite score (the default): what the score means.
    #[default]
    Lowest,
    /// Left out of that field's correlation.
    Drop,
}

impl std::str::FromStr for NullPolicy {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lowest" => Ok(NullPolicy::Lowest),
            "drop" => Ok(NullPolicy::Drop),
            other => Err(crate::error::Error::Arg(format!(
                "unknown null policy `{other}` (expected lowest or drop)"
            ))),
        }
    }
}

impl EvalOptions {
    /// Options with the default key and target columns.
    pub fn new(scores: impl Into<PathBuf>, truth: impl Into<PathBuf>) -> Self {
        EvalOptions {
            scores: scores.into(),
            truth: truth.into(),
            key: DEFAULT_KEY.to_string(),
            target: DEFAULT_TARGET.to_string(),
            nulls: NullPolicy::default(),
        }
    }
}

/// Rank agreement of one score field with the truth, over the joined rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldReport {
    /// Field name in the scores file.
    pub field: String,
    /// Joined rows in this field's correlation (with [`NullPolicy::Lowest`],
    /// the null rows too).
    pub n: usize,
    /// Joined rows with null (or missing / non-numeric) in this field.
    pub null: usize,
    /// Kendall τ-b with the target; `None` when undefined (n < 2, constant).
    pub kendall_tau_b: Option<f64>,
    /// Spearman ρ with the target; `None` when undefined.
    pub spearman_rho: Option<f64>,
}

/// Result of joining a scores file with a truth table.
///
/// Counts: `score_rows = duplicates + joined + not_joined` (duplicates are
/// collapsed to the last occurrence before joining).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Truth column the scores were ranked against.
    pub target: String,
    /// Rows (keys) in the truth table.
    pub truth_rows: usize,
    /// Non-blank lines in the scores file.
    pub score_rows: usize,
    /// Score lines whose arch repeats an earlier line (last one used).
    pub duplicates: usize,
    /// Distinct score archs found in the truth.
    pub joined: usize,
    /// Distinct score archs absent from the truth.
    pub not_joined: usize,
    /// One entry per score field, in file order.
    pub fields: Vec<FieldReport>,
}

/// Reads both files and reports each score field's rank correlation with the
/// truth target (see [`evaluate_tables`]).
pub fn evaluate(opts: &EvalOptions) -> Result<EvalReport> {
    let scores = read_scores(&opts.scores)?;
    let truth = read_truth(&opts.truth, &opts.key, &opts.target)?;
    Ok(evaluate_tables(&scores, &truth, &opts.target, opts.nulls))
}

/// Joins `scores` with `truth` on the architecture string and computes, for
/// each score field, Kendall τ-b and Spearman ρ against the truth over the
/// joined rows that have a number in that field, plus, with
/// [`NullPolicy::Lowest`], the rows where it is null, ranked as −∞. A field
/// that is never null is unaffected. `target` only labels the report.
pub fn evaluate_tables(
    scores: &ScoreTable,
    truth: &HashMap<String, f64>,
    target: &str,
    nulls: NullPolicy,
) -> EvalReport {
    let joined: Vec<(&ScoreRow, f64)> = scores
        .rows
        .iter()
        .filter_map(|r| truth.get(&r.arch).map(|&t| (r, t)))
        .collect();
    let fields = scores
        .fields
        .iter()
        .enumerate()
        .map(|(k, field)| {
            let null = joined.iter().filter(|(r, _)| r.values[k].is_none()).count();
            let (xs, ys): (Vec<f64>, Vec<f64>) = joined
                .iter()
                .filter_map(|(r, t)| match (r.values[k], nulls) {
                    (Some(x), _) => Some((x, *t)),
                    (None, NullPolicy::Lowest) => Some((f64::NEG_INFINITY, *t)),
                    (None, NullPolicy::Drop) => None,
                })
                .unzip();
            FieldReport {
                field: field.clone(),
                n: xs.len(),
                null,
                kendall_tau_b: kendall_tau_b(&xs, &ys),
                spearman_rho: spearman_rho(&xs, &ys),
            }
        })
        .collect();
    EvalReport {
        target: target.to_string(),
        truth_rows: truth.len(),
        score_rows: scores.lines,
        duplicates: scores.duplicates,
        joined: joined.len(),
        not_joined: scores.rows.len() - joined.len(),
        fields,
    }
}

impl EvalReport {
    /// The report as JSON for machine use: the counts, and `fields` as an
    /// array of `{field, n, null, kendall_tau_b, spearman_rho}` (undefined
    /// correlations are `null`).
    pub fn to_json(&self) -> Value {
        json!({
            "target": self.target,
            "truth_rows": self.truth_rows,
            "score_rows": self.score_rows,
            "duplicates": self.duplicates,
            "joined": self.joined,
            "not_joined": self.not_joined,
            "fields": self.fields.iter().map(|f| json!({
                "field": f.field,
                "n": f.n,
                "null": f.null,
                "kendall_tau_b": f.kendall_tau_b,
                "spearman_rho": f.spearman_rho,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A correlation as the report table prints it: four decimals, `-` when
/// undefined (the plot titles use it too, so that both agree).
pub(crate) fn format_correlation(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"))
}

impl fmt::Display for EvalReport {
    /// A join-count line, then an aligned table, one row per score field;
    /// undefined correlations print as `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scores: {} rows ({} duplicate), joined {}, not joined {}; truth: {} rows, target {}",
            self.score_rows,
            self.duplicates,
            self.joined,
            self.not_joined,
            self.truth_rows,
            self.target
        )?;
        let cells: Vec<[String; 5]> = self
            .fields
            .iter()
            .map(|r| {
                [
                    r.field.clone(),
                    r.n.to_string(),
                    r.null.to_string(),
                    format_correlation(r.kendall_tau_b),
                    format_correlation(r.spearman_rho),
                ]
            })
            .collect();
        let header = ["field", "N", "null", "kendall_tau_b", "spearman_rho"];
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: [&str; 5]| {
            // Field name left-aligned, numbers right-aligned.
            write!(f, "{:<w$}", row[0], w = width[0])?;
            for (c, w) in row.iter().zip(width).skip(1) {
                write!(f, "  {c:>w$}")?;
            }
            writeln!(f)
        };
        line(f, header)?;
        for row in &cells {
            line(f, [&row[0], &row[1], &row[2], &row[3], &row[4]])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file in the temp directory, unique per process and call, removed on
    /// drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("dasnas-eval-{}-{n}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const TRUTH: &str = "arch_index,arch_str,cifar10_test_acc,other\n\
        0,a,90.0,1\n1,b,80.0,2\n2,c,70.0,3\n3,d,60.0,4\n4,e,50.0,5\n";

    fn near(v: Option<f64>, want: f64) -> bool {
        v.is_some_and(|v| (v - want).abs() < 1e-12)
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn conflicting_duplicates_and_empty_truth_are_errors() {
        // Two lines of one cell with different scores: two runs mixed.
        let scores = TempFile::new(
            "conflict.jsonl",
            "{\"arch\":\"a\",\"wot\":5}\n{\"arch\":\"b\",\"wot\":1}\n{\"arch\":\"a\",\"wot\":6}\n",
        );
        let e = read_scores(&scores.0).unwrap_err().to_string();
        assert!(
            e.contains(":3:") && e.contains("`wot` differs") && e.contains("line 1"),
            "{e}"
        );
        // Equal within the rounding between devices: one cell.
        let scores = TempFile::new(
            "rounding.jsonl",
            "{\"arch\":\"a\",\"wot\":5.0}\n{\"arch\":\"a\",\"wot\":5.000000001}\n",
        );
        assert_eq!(read_scores(&scores.0).unwrap().duplicates, 1);
        // A truth file with only its header ranks nothing.
        let truth = TempFile::new("empty.csv", "arch_str,cifar10_test_acc\n");
        let e = read_truth(&truth.0, "arch_str", "cifar10_test_acc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no rows"), "{e}");
    }

    #[test]
    fn csv_errors_name_the_right_line_on_crlf_files() {
        for (name, text) in [
            ("lf.csv", "arch_str,acc\na,1\nb,x\n"),
            ("crlf.csv", "arch_str,acc\r\na,1\r\nb,x\r\n"),
        ] {
            let truth = TempFile::new(name, text);
            let e = read_truth(&truth.0, "arch_str", "acc")
                .unwrap_err()
                .to_string();
            assert!(e.contains(":3: column `acc` holds `x`"), "{name}: {e}");
        }
        let truth = TempFile::new("fields.csv", "arch_str,acc\r\na,1\r\nb,2,3\r\n");
        let e = read_truth(&truth.0, "arch_str", "acc")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3: a row of 3 fields"), "{e}");
    }

    #[test]
    fn join_with_unjoined_nulls_and_duplicates() {
        // wot agrees with the truth order, `neg` is reversed, `d` is null for
        // one joined row, `x` is an arch missing from the truth, `b` appears
        // twice with the same scores (counted once; only its timing differs).
        let scores = TempFile::new(
            "s.jsonl",
            r#"{"arch":"a","wot":5,"neg":1,"d":1.0,"ms":12.5,"seed":0,"ok":true,"name":"x"}
{"arch":"b","wot":4,"neg":2,"d":3.0,"ms":7.5}

{"arch":"c","wot":3,"neg":3,"d":null}
{"arch":"x","wot":9,"neg":9,"d":9}
{"arch":"b","wot":4,"neg":2,"d":3.0}
{"arch":"d","wot":2,"neg":4,"d":4.0}
{"arch":"e","wot":1,"neg":5,"d":5.0}
"#,
        );
        let truth = TempFile::new("t.csv", TRUTH);
        let opts = EvalOptions {
            nulls: NullPolicy::Drop,
            ..EvalOptions::new(&scores.0, &truth.0)
        };
        let report = evaluate(&opts).unwrap();
        assert_eq!(report.score_rows, 7);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.joined, 5);
        assert_eq!(report.not_joined, 1);
        assert_eq!(report.truth_rows, 5);
        let names: Vec<&str> = report.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["wot", "neg", "d"], "ms, seed, bool, string skipped");
        let wot = &report.fields[0];
        assert_eq!((wot.n, wot.null), (5, 0));
        assert!(near(wot.kendall_tau_b, 1.0) && near(wot.spearman_rho, 1.0));
        let neg = &report.fields[1];
        assert!(near(neg.kendall_tau_b, -1.0) && near(neg.spearman_rho, -1.0));
        let d = &report.fields[2];
        assert_eq!((d.n, d.null), (4, 1));
        // d over (a,b,d,e) = (1,3,4,5) vs truth (90,80,60,50): reversed.
        assert!(near(d.kendall_tau_b, -1.0) && near(d.spearman_rho, -1.0));

        let text = report.to_string();
        assert!(text.contains("joined 5, not joined 1"), "{text}");
        assert!(text.contains("kendall_tau_b"), "{text}");
        let widths: Vec<usize> = text.lines().skip(1).map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "aligned: {text}");

        let j = report.to_json();
        assert_eq!(j["joined"], 5);
        assert_eq!(j["fields"][2]["field"], "d");
        assert_eq!(j["fields"][2]["null"], 1);
        assert!((j["fields"][0]["kendall_tau_b"].as_f64().unwrap() - 1.0).abs() < 1e-12);

        // By default a null ranks lowest: c (truth 70) becomes the minimum of
        // d, one discordance with each of the 4 others out of 10 pairs.
        let report = evaluate(&EvalOptions::new(&scores.0, &truth.0)).unwrap();
        let d = &report.fields[2];
        assert_eq!((d.n, d.null), (5, 1));
        let want = kendall_tau_b(
            &[1.0, 3.0, f64::NEG_INFINITY, 4.0, 5.0],
            &[90.0, 80.0, 70.0, 60.0, 50.0],
        );
        assert_eq!(d.kendall_tau_b, want);
        assert!(d.kendall_tau_b.unwrap() > -1.0);
        assert_eq!(
            report.fields[0],
            {
                let r = evaluate(&opts).unwrap();
                r.fields[0].clone()
            },
            "a field without nulls is unaffected"
        );
    }

    #[test]
    fn undefined_correlation_is_none_and_dash() {
        let scores = TempFile::new(
            "s.jsonl",
            "{\"arch\":\"a\",\"c\":1,\"one\":null}\n{\"arch\":\"b\",\"c\":1,\"one\":7}\n",
        );
        let truth = TempFile::new("t.csv", TRUTH);
        let opts = EvalOptions {
            nulls: NullPolicy::Drop,
            ..EvalOptions::new(&scores.0, &truth.0)
        };
        let report = evaluate(&opts).unwrap();
        assert_eq!(report.fields[0].kendall_tau_b, None, "constant field");
        assert_eq!(report.fields[1].n, 1);
        assert_eq!(report.fields[1].spearman_rho, None, "single value");
        assert!(report.to_string().contains(" -"));
        assert!(report.to_json()["fields"][0]["kendall_tau_b"].is_null());
    }

    #[test]
    fn field_order_is_first_appearance_including_nulls() {
        let scores = TempFile::new(
            "s.jsonl",
            "{\"wot\":null,\"arch\":\"a\",\"z\":1,\"b\":\"s\"}\n\
             {\"arch\":\"b\",\"y\":2,\"wot\":3,\"b\":4,\"b\":null}\n",
        );
        let table = read_scores(&scores.0).unwrap();
        // File order, not sorted; `b` is numeric in no line (the repeated
        // key's last value, null, counts).
        assert_eq!(table.fields, ["wot", "z", "y"]);
        assert_eq!(table.rows[0].values, [None, Some(1.0), None]);
        assert_eq!(table.rows[1].values, [Some(3.0), None, Some(2.0)]);
        assert_eq!(table.field_index("y"), Some(2));
    }

    #[test]
    fn bad_scores_lines_name_file_and_line() {
        for (body, what) in [
            (
                "{\"arch\":\"a\",\"wot\":1}\n\n{\"arch\":\"b\",\"wot\":\n",
                "invalid JSON",
            ),
            ("{\"arch\":\"a\"}\n\n[1,2]\n", "expected a JSON object"),
            ("{\"arch\":\"a\"}\n\n{\"wot\":1}\n", "missing field `arch`"),
            ("{\"arch\":\"a\"}\n\n{\"arch\":3}\n", "not a string"),
        ] {
            let f = TempFile::new("bad.jsonl", body);
            let msg = err_text(read_scores(&f.0));
            let want = format!("{}:3: ", f.0.display());
            assert!(msg.contains(&want), "{msg}");
            assert!(msg.contains(what), "{msg}");
        }
    }

    #[test]
    fn missing_files_are_io_errors() {
        let missing = std::env::temp_dir().join("dasnas-eval-does-not-exist.jsonl");
        assert!(matches!(read_scores(&missing), Err(Error::Io { .. })));
        assert!(matches!(
            read_truth(&missing, "arch_str", "x"),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn truth_missing_column_lists_available() {
        let truth = TempFile::new("t.csv", TRUTH);
        let msg = err_text(read_truth(&truth.0, "arch_str", "cifar100_test_acc"));
        assert!(msg.contains("`cifar100_test_acc`"), "{msg}");
        assert!(
            msg.contains("arch_index, arch_str, cifar10_test_acc, other"),
            "{msg}"
        );
        let msg = err_text(read_truth(&truth.0, "arch", "cifar10_test_acc"));
        assert!(msg.contains("`arch`"), "{msg}");
    }

    #[test]
    fn truth_non_numeric_target_names_line_and_value() {
        let truth = TempFile::new("t.csv", "arch_str,acc\na,1.5\nb, 2 \nc,n/a\n");
        let msg = err_text(read_truth(&truth.0, "arch_str", "acc"));
        assert!(msg.contains(&format!("{}:4:", truth.0.display())), "{msg}");
        assert!(msg.contains("`n/a`"), "{msg}");
        let nan = TempFile::new("t.csv", "arch_str,acc\na,NaN\n");
        assert!(err_text(read_truth(&nan.0, "arch_str", "acc")).contains(":2:"));
    }

    #[test]
    fn truth_reads_values_and_rejects_duplicate_keys() {
        let truth = TempFile::new("t.csv", TRUTH);
        let t = read_truth(&truth.0, "arch_str", "other").unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t["c"], 3.0);
        let dup = TempFile::new("t.csv", "k,v\na,1\nb,2\na,3\n");
        let msg = err_text(read_truth(&dup.0, "k", "v"));
        assert!(msg.contains(":4:") && msg.contains("`a`"), "{msg}");
        let ragged = TempFile::new("t.csv", "k,v\na,1\nb\n");
        assert!(read_truth(&ragged.0, "k", "v").is_err());
    }

    #[test]
    fn nb201_truth_file() {
        let Some(path) = crate::testing::shared_data("nb201_truth_file", "nb201_acc_200ep.csv")
        else {
            return;
        };
        let truth = read_truth(&path, DEFAULT_KEY, DEFAULT_TARGET).unwrap();
        assert_eq!(truth.len(), 15_625);
        let max = truth.values().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!((max - 94.37).abs() < 0.01, "max {max}");
    }
}
