//! What a user (or an attacker) does wrong: oversized ranges and networks,
//! a reader that goes away, runaway thread counts, files of another run,
//! conflicting lines, odd encodings. Each ends in a clean error (exit 1,
//! one `dasnas: error:` line) or quietly, never in a panic, an abort or a
//! silent mix-up.

use super::{dasnas, fails_with, stdout_of};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CELL: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
const OTHER: &str = "|none~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("misuse")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn huge_index_ranges_are_refused_before_any_cell_is_made() {
    for spec in ["0-18446744073709551615", "0-99999999999", "0-300000000"] {
        let t0 = std::time::Instant::now();
        fails_with(
            &["score", "--device", "cpu", "--indices", spec],
            "out of range",
        );
        assert!(t0.elapsed().as_secs() < 10, "{spec}: {:?}", t0.elapsed());
    }
}

#[test]
fn networks_that_cannot_fit_are_refused_with_an_estimate() {
    fails_with(
        &[
            "score",
            "--device",
            "cpu",
            "--space",
            "darts",
            "--init-channels",
            "100000000",
            "--sample",
            "1",
        ],
        "too large (at most 1048576",
    );
    fails_with(
        &[
            "score",
            "--device",
            "cpu",
            "--space",
            "darts",
            "--init-channels",
            "100000",
            "--sample",
            "1",
            "--batch",
            "8",
        ],
        "this network is too large",
    );
}

/// Runs `dasnas args` with a stdout whose reader is gone before anything
/// is written: the run must end quietly (SIGPIPE's default action, or exit
/// 0), never with a panic or an error message.
fn closed_stdout(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let quiet = status.success() || status.signal() == Some(libc::SIGPIPE);
    assert!(quiet, "{args:?}: {status}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{args:?}: {err}"
    );
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let d = dir("pipe");
    let scores = d.join("s.jsonl");
    let truth = d.join("t.csv");
    stdout_of(&dasnas(&[
        "score",
        "--device",
        "cpu",
        "--sample",
        "12",
        "--batch",
        "8",
        "--out",
        s(&scores),
    ]));
    let lines = std::fs::read_to_string(&scores).unwrap();
    let mut csv = String::from("arch_str,acc\n");
    for (i, l) in lines.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        csv.push_str(&format!("{},{}\n", v["arch"].as_str().unwrap(), i));
    }
    std::fs::write(&truth, csv).unwrap();
    let (sc, tr) = (s(&scores), s(&truth));
    for args in [
        vec!["eval", "--scores", sc, "--truth", tr, "--target", "acc"],
        vec![
            "eval", "--scores", sc, "--truth", tr, "--target", "acc", "--json",
        ],
        vec![
            "fit", "--scores", sc, "--truth", tr, "--target", "acc", "--folds", "2",
        ],
        vec![
            "search", "--scores", sc, "--n", "3", "--runs", "2", "--batch", "8",
        ],
        vec!["bench", "--device", "cpu", "--cells", "1", "--batch", "8"],
        vec!["devices"],
        vec!["merge", sc, "--out", s(&d.join("m.jsonl")), "--json"],
        vec!["enumerate"],
        vec!["score", "--device", "cpu", "--sample", "2", "--batch", "8"],
    ] {
        closed_stdout(&args);
    }
}

#[test]
fn thread_counts_are_bounded_by_the_machine() {
    for flag in ["--threads", "--cells-in-flight"] {
        fails_with(
            &["score", "--device", "cpu", "--sample", "1", flag, "100000"],
            "more than this machine can use",
        );
    }
    fails_with(
        &[
            "score", "--device", "cpu", "--sample", "1", "--lanes", "100000",
        ],
        "at most 64",
    );
}

#[test]
fn a_scores_cache_of_another_run_is_refused_by_a_search_that_scores() {
    let d = dir("cache");
    let cache = d.join("cache.jsonl");
    stdout_of(&dasnas(&[
        "score",
        "--device",
        "cpu",
        "--sample",
        "4",
        "--batch",
        "16",
        "--out",
        s(&cache),
    ]));
    let o = dasnas(&[
        "search",
        "--device",
        "cpu",
        "--strategy",
        "evolution",
        "--scores",
        s(&cache),
        "--batch",
        "8",
        "--n",
        "4",
        "--population",
        "2",
        "--tournament",
        "2",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("batch 16, not 8") && err.contains("\"batch\":16"),
        "{err}"
    );
    // The same settings are fine.
    stdout_of(&dasnas(&[
        "search",
        "--device",
        "cpu",
        "--strategy",
        "evolution",
        "--scores",
        s(&cache),
        "--batch",
        "16",
        "--n",
        "3",
        "--population",
        "2",
        "--tournament",
        "2",
    ]));
}

#[test]
fn out_refuses_a_file_of_another_run_and_says_how_to_go_on() {
    let d = dir("out");
    let out = d.join("o.jsonl");
    let run = |seed: &str| {
        dasnas(&[
            "score",
            "--device",
            "cpu",
            "--arch",
            CELL,
            "--batch",
            "8",
            "--seed",
            seed,
            "--out",
            s(&out),
        ])
    };
    stdout_of(&run("0"));
    let before = std::fs::read(&out).unwrap();
    let o = run("7");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("seed 0, not 7") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), before, "the file was changed");
    // The same run appends.
    stdout_of(&run("0"));
}

#[test]
fn eval_refuses_conflicting_lines_and_a_truth_without_rows() {
    let d = dir("eval");
    let scores = d.join("s.jsonl");
    std::fs::write(
        &scores,
        format!("{{\"arch\":\"{CELL}\",\"wot\":5}}\n{{\"arch\":\"{OTHER}\",\"wot\":1}}\n{{\"arch\":\"{CELL}\",\"wot\":6}}\n"),
    )
    .unwrap();
    let truth = d.join("t.csv");
    std::fs::write(&truth, format!("arch_str,acc\n{CELL},1\n{OTHER},2\n")).unwrap();
    fails_with(
        &[
            "eval",
            "--scores",
            s(&scores),
            "--truth",
            s(&truth),
            "--target",
            "acc",
        ],
        "differs",
    );
    let empty = d.join("empty.csv");
    std::fs::write(&empty, "arch_str,acc\n").unwrap();
    std::fs::write(&scores, format!("{{\"arch\":\"{CELL}\",\"wot\":5}}\n")).unwrap();
    fails_with(
        &[
            "eval",
            "--scores",
            s(&scores),
            "--truth",
            s(&empty),
            "--target",
            "acc",
        ],
        "no rows",
    );
}

#[test]
fn words_a_user_reads() {
    let help = stdout_of(&dasnas(&["enumerate", "--help"]));
    assert!(help.contains("7,093") && help.contains("6,466"), "{help}");
    let d = dir("words");
    let scores = d.join("s.jsonl");
    stdout_of(&dasnas(&[
        "score",
        "--device",
        "cpu",
        "--sample",
        "3",
        "--batch",
        "8",
        "--out",
        s(&scores),
    ]));
    let report = stdout_of(&dasnas(&[
        "search",
        "--scores",
        s(&scores),
        "--n",
        "2",
        "--batch",
        "8",
    ]));
    assert!(
        report.contains("metric wot") && !report.contains("linear:1"),
        "{report}"
    );
    // A 3 MB line is quoted as a short excerpt, control characters escaped.
    let archs = d.join("huge.txt");
    let mut line = "|nor_conv_3x3~0|+|bogus\u{1b}~0|".to_string();
    line.push_str(&"x".repeat(3_000_000));
    std::fs::write(&archs, format!("{line}\n")).unwrap();
    let o = dasnas(&["score", "--device", "cpu", "--archs", s(&archs)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.len() < 1000 && err.contains("\\u{1b}") && !err.contains('\u{1b}'),
        "{}",
        &err[..err.len().min(2000)]
    );
    // A UTF-8 byte-order mark before the first cell is not part of it.
    let bom = d.join("bom.txt");
    std::fs::write(&bom, format!("\u{feff}{CELL}\n")).unwrap();
    stdout_of(&dasnas(&[
        "score",
        "--device",
        "cpu",
        "--archs",
        s(&bom),
        "--batch",
        "8",
    ]));
}

#[test]
fn progress_stays_out_of_pipes() {
    let o = dasnas(&["score", "--device", "cpu", "--sample", "3", "--batch", "8"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("cells,") && !err.contains("ETA"), "{err}");
}
