//! Every parser of user text, fed random bytes and near-valid strings
//! (valid inputs with characters deleted, duplicated, swapped or replaced,
//! truncated, digits changed, separators removed, huge numbers and unicode
//! inserted): each gives an `Err` whose message names the input, or a valid
//! value — never a panic. Valid architectures round-trip (parse → print →
//! parse gives the same value).
//!
//! Spaces are named through `Space::from_str` and architectures used through
//! `Arch::parse`, `Display` and `space::sample` only, so the tests do not
//! depend on how the spaces are implemented.

use dasnas::data::cifar::{CifarImages, Dataset};
use dasnas::eval::fit::{table_atoms, Rule};
use dasnas::eval::search::Evaluator;
use dasnas::eval::{evaluate_tables, scores_from_reader, truth_from_reader, NullPolicy};
use dasnas::param::InitScheme;
use dasnas::runtime::budget::meminfo_available;
use dasnas::runtime::DeviceKind;
use dasnas::space::{self, Arch, Space};
use dasnas::train::LrSchedule;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `cases` cases, with failures kept beside this file
/// (`parsers.proptest-regressions`, checked in) rather than under a
/// `proptest-regressions/` folder.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}
use proptest::test_runner::TestCaseError;
use std::collections::HashMap;
use std::sync::OnceLock;

const SPACES: [&str; 3] = ["nb201", "nb101", "darts"];

fn space(name: &str) -> Space {
    name.parse().expect("a known space")
}

/// DARTS-V2 as DARTS's `genotypes.py` prints it (Python 3: `range(2, 6)`).
const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), \
    ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), \
    ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), \
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), \
    ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), \
    ('max_pool_3x3', 1)], reduce_concat=range(2, 6))";

/// Valid architecture strings of a space: sampled cells in their printed
/// form, plus the other forms users write.
fn valid(name: &str) -> &'static [String] {
    static POOLS: OnceLock<HashMap<&'static str, Vec<String>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        SPACES
            .iter()
            .map(|&n| {
                let mut v: Vec<String> = space::sample(space(n), 12, 3)
                    .expect("sample")
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                match n {
                    "nb201" => v.push("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|".into()),
                    "nb101" => v.extend([
                        "0100/input|output".to_string(),
                        "011001000/input|maxpool3x3|output".to_string(),
                        "0110000100010000/input|conv1x1-bn-relu|conv3x3-bn-relu|output".to_string(),
                    ]),
                    _ => {
                        let printed = v[0].clone();
                        v.extend([
                            DARTS_V2.to_string(),
                            DARTS_V2.replace('\'', "\""),
                            printed.replace(' ', ""),
                            printed.replace(", ", " ,\n\t"),
                        ]);
                    }
                }
                (n, v)
            })
            .collect()
    });
    &pools[name]
}

/// One edit of a string (positions are taken modulo its length).
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize),
    Truncate(usize),
    /// Digit `k` (of all the digits) becomes `d`.
    Digit(usize, char),
    /// Run of digits `k` becomes this number.
    Number(usize, &'static str),
    /// Every occurrence of this separator removed.
    DropAll(char),
    /// The next occurrence of this separator at or after the position removed.
    DropOne(usize, char),
    Insert(usize, char),
    InsertStr(usize, &'static str),
    Replace(usize, char),
    /// Word `k` (a run of letters, digits, `_`, `-`) becomes this one.
    Word(usize, &'static str),
}

const SEPARATORS: &[char] = &[
    '|', '~', '+', '/', ',', '(', ')', '[', ']', '\'', '"', '=', ' ', ':', '\n', '{', '}',
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "7",
    "00",
    "-1",
    "+3",
    "1e9",
    "0x10",
    "4294967296",
    "1000000000000",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "999999999999999999999999999999",
    "1e400",
    "NaN",
    "inf",
];

const WORDS: &[&str] = &[
    "",
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "input",
    "output",
    "conv3x3-bn-relu",
    "conv1x1-bn-relu",
    "maxpool3x3",
    "Genotype",
    "normal",
    "reduce",
    "normal_concat",
    "reduce_concat",
    "range",
    "arch",
    "wot",
    "null",
    "true",
    "arch_str",
    "cifar10_test_acc",
    "MemAvailable",
    "kB",
    "cuda",
    "é",
    "\u{0}",
    "\u{feff}",
];

fn edit() -> impl Strategy<Value = Edit> {
    let pos = any::<usize>();
    prop_oneof![
        pos.prop_map(Edit::Delete),
        pos.prop_map(Edit::Duplicate),
        pos.prop_map(Edit::Swap),
        pos.prop_map(Edit::Truncate),
        (pos, prop::char::range('0', '9')).prop_map(|(k, d)| Edit::Digit(k, d)),
        (pos, prop::sample::select(NUMBERS)).prop_map(|(k, n)| Edit::Number(k, n)),
        prop::sample::select(SEPARATORS).prop_map(Edit::DropAll),
        (pos, prop::sample::select(SEPARATORS)).prop_map(|(k, c)| Edit::DropOne(k, c)),
        (pos, any::<char>()).prop_map(|(k, c)| Edit::Insert(k, c)),
        (pos, prop::sample::select(SEPARATORS)).prop_map(|(k, c)| Edit::Insert(k, c)),
        (pos, prop::sample::select(NUMBERS)).prop_map(|(k, n)| Edit::InsertStr(k, n)),
        (pos, prop::sample::select(WORDS)).prop_map(|(k, w)| Edit::InsertStr(k, w)),
        (pos, any::<char>()).prop_map(|(k, c)| Edit::Replace(k, c)),
        (pos, prop::sample::select(WORDS)).prop_map(|(k, w)| Edit::Word(k, w)),
    ]
}

/// Runs of chars satisfying `f`, as (start, end) char indices.
fn runs(s: &[char], f: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if f(s[i]) {
            let start = i;
            while i < s.len() && f(s[i]) {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

fn apply(s: &str, edits: &[Edit]) -> String {
    let mut c: Vec<char> = s.chars().collect();
    for e in edits {
        let at = |k: usize, n: usize| if n == 0 { 0 } else { k % n };
        let n = c.len();
        match *e {
            Edit::Delete(k) if n > 0 => {
                c.remove(at(k, n));
            }
            Edit::Duplicate(k) if n > 0 => {
                let i = at(k, n);
                c.insert(i, c[i]);
            }
            Edit::Swap(k) if n > 1 => c.swap(at(k, n - 1), at(k, n - 1) + 1),
            Edit::Truncate(k) => c.truncate(at(k, n + 1)),
            Edit::Digit(k, d) => {
                let digits: Vec<usize> = (0..n).filter(|&i| c[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    c[digits[at(k, digits.len())]] = d;
                }
            }
            Edit::Number(k, num) => {
                let r = runs(&c, |ch| ch.is_ascii_digit());
                if !r.is_empty() {
                    let (a, b) = r[at(k, r.len())];
                    c.splice(a..b, num.chars());
                }
            }
            Edit::DropAll(sep) => c.retain(|&ch| ch != sep),
            Edit::DropOne(k, sep) => {
                let start = at(k, n + 1);
                if let Some(i) = (start..n).chain(0..start).find(|&i| c[i] == sep) {
                    c.remove(i);
                }
            }
            Edit::Insert(k, ch) => c.insert(at(k, n + 1), ch),
            Edit::InsertStr(k, w) => {
                let i = at(k, n + 1);
                c.splice(i..i, w.chars());
            }
            Edit::Replace(k, ch) if n > 0 => c[at(k, n)] = ch,
            Edit::Word(k, w) => {
                let r = runs(&c, |ch| ch.is_alphanumeric() || ch == '_' || ch == '-');
                if !r.is_empty() {
                    let (a, b) = r[at(k, r.len())];
                    c.splice(a..b, w.chars());
                }
            }
            _ => {}
        }
    }
    c.into_iter().collect()
}

/// A valid string of `pool` with 1 to 4 edits.
fn near(pool: &'static [String]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(pool),
        prop::collection::vec(edit(), 1..5),
    )
        .prop_map(|(s, e)| apply(&s, &e))
}

/// Random bytes as text (invalid UTF-8 replaced).
fn bytes_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..300)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Random strings of the characters architecture strings are made of.
fn grammar_text() -> impl Strategy<Value = String> {
    "[a-z0-9_|~+/()\\[\\],'\" =-]{0,200}"
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// `Arch::parse` of `s` is an error naming `s`, or an architecture that
/// prints to a string parsing back to itself, and builds a network.
fn check_arch(name: &str, s: &str) -> Result<(), TestCaseError> {
    let sp = space(name);
    match Arch::parse(sp, s) {
        Ok(a) => {
            let printed = a.to_string();
            let again = Arch::parse(sp, &printed)
                .map_err(|e| fail(format!("{name}: `{s}` parsed, its print did not: {e}")))?;
            prop_assert_eq!(&again, &a, "{}: `{}` printed as `{}`", name, s, printed);
            prop_assert_eq!(again.to_string(), printed);
            if let Err(e) = a.network() {
                return Err(fail(format!(
                    "{name}: `{s}` parsed but builds no network: {e}"
                )));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            if let dasnas::Error::Arch { arch, pos, .. } = &e {
                prop_assert!(
                    *pos <= arch.len(),
                    "{}: position {} past the end of `{}`",
                    name,
                    pos,
                    arch
                );
                prop_assert!(
                    s.contains(arch.as_str()),
                    "{}: `{}` not named in {}",
                    name,
                    s,
                    msg
                );
            } else {
                return Err(fail(format!(
                    "{name}: `{s}`: not an architecture error: {msg}"
                )));
            }
        }
    }
    Ok(())
}

#[test]
fn valid_architectures_round_trip() {
    for name in SPACES {
        for s in valid(name) {
            let a = Arch::parse(space(name), s).unwrap_or_else(|e| panic!("{name}: {e}"));
            let printed = a.to_string();
            assert_eq!(Arch::parse(space(name), &printed).unwrap(), a, "{s}");
            // Printing is canonical: the printed form prints to itself.
            assert_eq!(
                Arch::parse(space(name), &printed).unwrap().to_string(),
                printed
            );
        }
    }
}

/// Found by `darts_near_valid`: a reduction cell concatenating one of its
/// inputs (state 0 or 1, at twice the resolution of its nodes) parsed, and
/// its network then failed to build with a shape error.
#[test]
fn darts_reduce_concat_of_an_input_is_an_error() {
    for concat in ["[0, 3, 4, 5]", "[2, 3, 4, 5, 1]", "range(1, 6)"] {
        let s = DARTS_V2.replacen(
            "reduce_concat=range(2, 6)",
            &format!("reduce_concat={concat}"),
            1,
        );
        assert_ne!(s, DARTS_V2);
        let e = Arch::parse(space("darts"), &s).unwrap_err().to_string();
        assert!(e.contains("reduce_concat names input state"), "{e}");
    }
    // In a normal cell the inputs have the nodes' shape: allowed.
    let s = DARTS_V2.replacen(
        "normal_concat=range(2, 6)",
        "normal_concat=[0, 1, 2, 3, 4, 5]",
        1,
    );
    let a = Arch::parse(space("darts"), &s).unwrap();
    a.network().unwrap();
}

/// Found reading the parser for these tests: `range(a, b)` with a huge `b` was expanded
/// into a list before the states were checked, so `range(2, 10^12)` asked
/// for terabytes and aborted the process.
#[test]
fn darts_huge_range_is_an_error() {
    for r in [
        "range(2, 1000000000000)",
        "range(0, 18446744073709551615)",
        "range(9223372036854775807, 18446744073709551615)",
    ] {
        let s = DARTS_V2.replacen("range(2, 6)", r, 1);
        let e = Arch::parse(space("darts"), &s).unwrap_err().to_string();
        assert!(e.contains("normal_concat names state"), "{e}");
        // The error quotes a bounded excerpt around the place it names.
        assert!(e.contains(&r[..r.len().min(24)]), "{e}");
    }
    // The error names the first state out of range, as for a written list.
    let e = Arch::parse(
        space("darts"),
        &DARTS_V2.replacen("range(2, 6)", "range(2, 1000000000000)", 1),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("names state 6; the cell has states 0..6"), "{e}");
    // A range within the cell still parses, as the list it stands for.
    let a = Arch::parse(
        space("darts"),
        &DARTS_V2.replace("range(2, 6)", "range(3, 6)"),
    )
    .unwrap();
    assert!(a.to_string().contains("normal_concat=[3, 4, 5]"), "{a}");
}

/// Found reading the tokenizer for these tests (a wrong message, not a
/// panic): a non-ASCII character was reported as the
/// Latin-1 reading of its first byte (`Ã` for `é`).
#[test]
fn darts_unexpected_unicode_is_named_as_written() {
    let s = DARTS_V2.replacen("Genotype(", "Genotype(é", 1);
    let e = Arch::parse(space("darts"), &s).unwrap_err().to_string();
    assert!(e.contains("unexpected character `é`"), "{e}");
}

// Parsing takes microseconds: these many cases run in well under a second.
proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn nb201_near_valid(s in near(valid("nb201"))) {
        check_arch("nb201", &s)?;
    }

    #[test]
    fn nb101_near_valid(s in near(valid("nb101"))) {
        check_arch("nb101", &s)?;
    }

    #[test]
    fn darts_near_valid(s in near(valid("darts"))) {
        check_arch("darts", &s)?;
    }

    #[test]
    fn architectures_from_random_bytes(s in bytes_text()) {
        for name in SPACES {
            check_arch(name, &s)?;
        }
    }

    #[test]
    fn architectures_from_random_grammar_text(s in grammar_text()) {
        for name in SPACES {
            check_arch(name, &s)?;
        }
    }
}

/// Pseudo-random bytes from `seed` (a test needs thousands per case; drawing
/// them one by one through proptest would be slow to generate and shrink).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// CIFAR files: whole records of 1 or 2 label bytes, give or take a few
/// bytes, or short random data.
fn cifar_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..4, 1usize..3, -3i64..=3, any::<u64>()).prop_map(|(n, lb, delta, seed)| {
            let len = (n as i64 * (lb as i64 + 3072) + delta).max(0) as usize;
            noise(seed, len)
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn check_cifar(bytes: &[u8], dataset: Dataset) -> Result<(), TestCaseError> {
    match CifarImages::from_bytes(bytes, dataset) {
        Ok(imgs) => {
            let n = imgs.len();
            let sizes: &[usize] = match dataset {
                Dataset::Cifar10 => &[1 + 3072],
                Dataset::Cifar100 => &[2 + 3072, 1 + 3072],
            };
            prop_assert!(n > 0);
            prop_assert!(sizes.iter().any(|r| n * r == bytes.len()));
            prop_assert_eq!(imgs.labels.len(), n);
            let t = imgs.first(n).map_err(|e| fail(e.to_string()))?;
            prop_assert_eq!(t.shape, dasnas::Shape::new(n, 32, 32, 3));
            prop_assert!(t.data.iter().all(|v| v.is_finite()));
            prop_assert!(imgs.first(n + 1).is_err());
            prop_assert!(imgs.batch(&[n]).is_err());
            prop_assert!(imgs.batch(&[usize::MAX]).is_err());
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains(&bytes.len().to_string()), "{}", msg);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn cifar_bytes_parse_or_fail(bytes in cifar_bytes()) {
        check_cifar(&bytes, Dataset::Cifar10)?;
        check_cifar(&bytes, Dataset::Cifar100)?;
    }
}

/// A scores file as `dasnas score` writes it (some cells singular), and a
/// truth CSV over the same cells.
fn score_lines() -> impl Strategy<Value = (String, String)> {
    let pool = valid("nb201");
    prop::collection::vec(
        (
            prop::sample::select(pool),
            any::<bool>(),
            -1e4f64..1e4,
            1u64..10_000_000,
            0.0f64..100.0,
        ),
        0..6,
    )
    .prop_map(|rows| {
        let mut scores = String::new();
        let mut truth = String::from("arch_str,cifar10_test_acc,extra\n");
        let mut in_truth = std::collections::HashSet::new();
        // A rerun of a cell writes the same scores: the first draw of each
        // cell holds for all its lines.
        let mut first = std::collections::HashMap::new();
        for row in rows {
            let (arch, singular, wot, n_units, acc) =
                first.entry(row.0.clone()).or_insert(row).clone();
            let ln = (n_units as f64).ln();
            let (w, d) = if singular {
                (None, None)
            } else {
                (Some(wot), Some(wot - 128.0 * ln))
            };
            let obj = serde_json::json!({
                "arch": arch, "wot": w, "d": d, "n_units": n_units, "ln_n_units": ln,
                "das": d.map(|d| d + 128.0 * ln), "singular": singular, "das@0.5": d,
                "ms": 12.5,
            });
            scores.push_str(&format!("{obj}\n"));
            // The truth has each cell once.
            if in_truth.insert(arch.clone()) {
                truth.push_str(&format!("{arch},{acc},x\n"));
            }
        }
        (scores, truth)
    })
}

fn check_scores(text: &str) -> Result<(), TestCaseError> {
    match scores_from_reader(text.as_bytes(), "scores.jsonl") {
        Ok(table) => {
            prop_assert_eq!(table.lines, table.rows.len() + table.duplicates);
            for r in &table.rows {
                prop_assert_eq!(r.values.len(), table.fields.len());
            }
            // Everything downstream of a table read from a file.
            for batch in [None, Some(128), Some(0), Some(usize::MAX)] {
                if let Ok(atoms) = table_atoms(&table, batch) {
                    prop_assert_eq!(atoms.len(), table.rows.len());
                }
            }
            let _ = Evaluator::cache_of(&table);
            let truth: HashMap<String, f64> = table
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.arch.clone(), i as f64))
                .collect();
            for nulls in [NullPolicy::Lowest, NullPolicy::Drop] {
                let report = evaluate_tables(&table, &truth, "t", nulls);
                let _ = (report.to_string(), report.to_json());
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains("scores.jsonl"), "{}", msg);
        }
    }
    Ok(())
}

fn check_truth(text: &str) -> Result<(), TestCaseError> {
    match truth_from_reader(text.as_bytes(), "truth.csv", "arch_str", "cifar10_test_acc") {
        Ok(map) => prop_assert!(map.values().all(|v| !v.is_nan())),
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains("truth.csv"), "{}", msg);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn valid_score_files_and_truth_read((scores, truth) in score_lines()) {
        let table = scores_from_reader(scores.as_bytes(), "scores.jsonl")
            .map_err(|e| fail(e.to_string()))?;
        prop_assert!(table.fields.contains(&"n_units".to_string()) || table.rows.is_empty());
        let read = truth_from_reader(truth.as_bytes(), "truth.csv", "arch_str", "cifar10_test_acc");
        if table.rows.is_empty() {
            // A truth file with only its header ranks nothing: an error.
            let e = read.err().map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(e.contains("no rows"), "{}", e);
        } else {
            let map = read.map_err(|e| fail(e.to_string()))?;
            prop_assert_eq!(map.len(), table.rows.len());
        }
        check_scores(&scores)?;
    }

    #[test]
    fn score_files_near_valid(
        (scores, _) in score_lines(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        check_scores(&apply(&scores, &edits))?;
    }

    #[test]
    fn truth_files_near_valid(
        (_, truth) in score_lines(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        check_truth(&apply(&truth, &edits))?;
    }

    #[test]
    fn score_and_truth_files_from_random_bytes(s in bytes_text()) {
        check_scores(&s)?;
        check_truth(&s)?;
    }
}

/// The names the small `FromStr` parsers accept, for near-valid inputs.
const NAMES: &[&str] = &[
    "nb201",
    "nb101",
    "darts",
    "auto",
    "cpu",
    "cuda",
    "cuda:0",
    "cuda:12",
    "default",
    "naswot",
    "constant",
    "cosine",
    "cifar10",
    "cifar100",
    "lowest",
    "drop",
    "wot",
    "d",
    "n_units",
    "das@0.5",
    "linear:1.25",
    "units:3",
    "ranksum:0.02",
    "MemAvailable:   23000000 kB",
    "MemTotal: 1 kB\nMemAvailable: 42 kB\n",
];

/// Every small parser on `s`: an error naming `s`, or a value that (where it
/// prints) prints back to one equal to it.
fn check_names(s: &str) -> Result<(), TestCaseError> {
    fn named<T>(s: &str, r: dasnas::Result<T>) -> Result<Option<T>, TestCaseError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains(s), "`{}` not named in {}", s, msg);
                Ok(None)
            }
        }
    }
    named(s, s.parse::<Space>())?;
    if let Some(d) = named(s, s.parse::<DeviceKind>())? {
        prop_assert_eq!(d.to_string().parse::<DeviceKind>().ok(), Some(d));
    }
    named(s, s.parse::<InitScheme>())?;
    named(s, s.parse::<LrSchedule>())?;
    named(s, s.parse::<Dataset>())?;
    named(s, s.parse::<NullPolicy>())?;
    if let Some(r) = named(s, Rule::parse(s))? {
        prop_assert_eq!(Rule::parse(&r.to_string()).ok(), Some(r));
    }
    let _ = meminfo_available(s);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn names_near_valid(
        s in prop::sample::select(NAMES),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        check_names(&apply(s, &edits))?;
    }

    #[test]
    fn names_from_random_text(s in prop_oneof![bytes_text(), "\\PC{0,16}"]) {
        check_names(&s)?;
    }
}

#[test]
fn valid_names_parse() {
    for s in ["nb201", "nb101", "darts"] {
        s.parse::<Space>().unwrap();
    }
    assert_eq!("cuda:3".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(3));
    assert!("cuda:18446744073709551616".parse::<DeviceKind>().is_err());
    assert_eq!(
        Rule::parse("das@0.5").unwrap(),
        Rule::parse("linear:0.5").unwrap()
    );
    assert!(Rule::parse("das@NaN").is_err() && Rule::parse("units:inf").is_err());
    assert_eq!(
        meminfo_available("MemTotal: 1 kB\nMemAvailable: 42 kB\n"),
        Some(42 * 1024)
    );
}
