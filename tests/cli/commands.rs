//! The `dasnas` binary: outputs, determinism across thread counts, resume,
//! and error exits.

use crate::{dasnas, fails_with, stdout_of as stdout};
use std::path::PathBuf;
use std::process::Command;

const CELL: &str =
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|";

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("dasnas-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Drops the timing field, which is the one part allowed to differ.
fn without_ms(jsonl: &str) -> Vec<serde_json::Value> {
    jsonl
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("ms");
            v
        })
        .collect()
}

#[test]
fn same_seed_same_json_on_one_and_two_threads() {
    let args = ["score", "--sample", "3", "--batch", "24", "--seed", "5"];
    let one = stdout(&dasnas(&[&args[..], &["--threads", "1"]].concat()));
    let two = stdout(&dasnas(&[&args[..], &["--threads", "2"]].concat()));
    let (a, b) = (without_ms(&one), without_ms(&two));
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    for v in &a {
        for k in [
            "arch",
            "wot",
            "d",
            "n_units",
            "ln_n_units",
            "das",
            "singular",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {v}");
        }
    }
}

#[test]
fn out_file_is_appended_and_resume_skips_finished_cells() {
    let out = tmp("resume.jsonl");
    let archs = tmp("archs.txt");
    let cells = [
        CELL,
        "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|",
        "|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|",
    ];
    std::fs::write(
        &archs,
        format!("# three cells\n{}\n\n{}\n", cells[0], cells[1]),
    )
    .unwrap();
    let o = out.to_str().unwrap();
    let base = ["score", "--batch", "16", "--out", o];
    stdout(&dasnas(
        &[&base[..], &["--archs", archs.to_str().unwrap()]].concat(),
    ));
    // A run killed mid-write leaves a partial line; resume must drop it.
    let mut text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 2);
    text.push_str("{\"arch\": \"|nor_conv_1x1~0|+|no");
    std::fs::write(&out, &text).unwrap();
    std::fs::write(&archs, cells.join("\n")).unwrap();
    let r = dasnas(&[&base[..], &["--archs", archs.to_str().unwrap(), "--resume"]].concat());
    stdout(&r);
    let text = std::fs::read_to_string(&out).unwrap();
    let rows = without_ms(&text);
    assert_eq!(rows.len(), 3, "{text}");
    let names: Vec<&str> = rows.iter().map(|v| v["arch"].as_str().unwrap()).collect();
    assert_eq!(names, cells);
}

#[test]
fn stdin_archs_and_extra_alphas() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .args([
            "score",
            "--archs",
            "-",
            "--batch",
            "16",
            "--extra-alphas",
            "0,0.5",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(CELL.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let rows = without_ms(&stdout(&o));
    assert_eq!(rows.len(), 1);
    let v = &rows[0];
    let d = v["d"].as_f64().unwrap();
    assert_eq!(v["das@0"].as_f64().unwrap(), d);
    let want = d + 0.5 * 16.0 * v["ln_n_units"].as_f64().unwrap();
    assert!((v["das@0.5"].as_f64().unwrap() - want).abs() < 1e-9);
}

#[test]
fn bad_inputs_exit_non_zero_with_a_message() {
    fails_with(
        &[
            "score",
            "--arch",
            "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        ],
        "unknown op `nor_conv_9x9`",
    );
    fails_with(&["score", "--sample", "20000"], "15625");
    fails_with(
        &["score", "--sample", "1", "--space", "nb301"],
        "unknown search space",
    );
    fails_with(&["score", "--sample", "1", "--batch", "1"], "--batch 1");
    // Space options: a key the space does not take, a bad value.
    fails_with(
        &["score", "--sample", "1", "--layers", "5"],
        "space `nb201` has no option `layers`",
    );
    fails_with(
        &[
            "score",
            "--sample",
            "1",
            "--space",
            "darts",
            "--space-option",
            "init_channels=0",
        ],
        "`init_channels` must be at least 1",
    );
    let short = tmp("short.bin");
    std::fs::write(&short, vec![0u8; 3073 * 3]).unwrap();
    fails_with(
        &["score", "--sample", "1", "--data", short.to_str().unwrap()],
        "only 3",
    );
    std::fs::write(&short, vec![0u8; 3073 * 3 + 5]).unwrap();
    fails_with(
        &["score", "--sample", "1", "--data", short.to_str().unwrap()],
        "not a whole number",
    );
    fails_with(
        &["score", "--sample", "1", "--data", "/nonexistent/cifar.bin"],
        "/nonexistent/cifar.bin",
    );
    let archs = tmp("bad-archs.txt");
    std::fs::write(&archs, format!("{CELL}\n|none~0|+oops\n")).unwrap();
    fails_with(&["score", "--archs", archs.to_str().unwrap()], "line 2");
    fails_with(
        &[
            "eval",
            "--scores",
            "/nonexistent/s.jsonl",
            "--truth",
            "/nonexistent/t.csv",
        ],
        "/nonexistent/",
    );
}

#[test]
fn bench_prints_a_json_last_line() {
    let o = dasnas(&["bench", "--cells", "1", "--batch", "8"]);
    let text = stdout(&o);
    let last = text.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(v["cells_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_times_fast_training() {
    let o = dasnas(&[
        "bench",
        "--device",
        "cpu",
        "--cells",
        "1",
        "--batch",
        "8",
        "--train-steps",
        "2",
        "--train-batch",
        "5",
    ]);
    let out = stdout(&o);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["train_steps"], 2);
    assert_eq!(last["train_batch"], 5);
    assert!(last["steps_per_s"].as_f64().unwrap() > 0.0);
    let o = dasnas(&[
        "bench",
        "--device",
        "cpu",
        "--train-steps",
        "2",
        "--train-batch",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--train-batch must be at least 1"));
    // An unbounded run is refused, naming the flag.
    let o = dasnas(&["bench", "--device", "cpu", "--train-steps", "99999999999"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--train-steps 99999999999"));
}

#[test]
fn batch_too_large_for_memory_is_refused_before_allocating() {
    // B = 100,000: its B×B matrices alone take 320 GB; the batch itself
    // would take seconds to draw. Refused at once, with status 1.
    // Where the available memory is unknown (not Linux) nothing is refused,
    // and a machine with that much would score the cell for hours.
    match dasnas::runtime::budget::host_available() {
        Some(a) if a < 300_000_000_000 => {}
        other => {
            eprintln!("SKIPPED batch_too_large_for_memory_is_refused_before_allocating: {other:?} bytes available");
            return;
        }
    }
    let t0 = std::time::Instant::now();
    let o = dasnas(&[
        "score", "--space", "nb201", "--sample", "1", "--batch", "100000", "--device", "cpu",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("dasnas: error:"), "{err}");
    assert!(err.contains("batch 100000 needs at least"), "{err}");
    assert!(err.contains("use a smaller --batch"), "{err}");
    assert!(!err.contains("memory allocation"), "{err}");
    assert!(o.stdout.is_empty());
    let secs = t0.elapsed().as_secs_f64();
    assert!(secs < 10.0, "took {secs:.1} s");
}

#[test]
fn training_batch_too_large_for_memory_is_refused_before_allocating() {
    // 10^9 training images: 12 TB of labelled images alone (the process
    // used to abort allocating them). Refused at once with status 1 by
    // `score`, `train` and `bench`, before the training file is read.
    // Where the available memory is unknown (not Linux) only the
    // impossible is refused, and a machine with that much would train.
    match dasnas::runtime::budget::host_available() {
        Some(a) if a < 12_000_000_000_000 => {}
        other => {
            eprintln!("SKIPPED training_batch_too_large_for_memory_is_refused_before_allocating: {other:?} bytes available");
            return;
        }
    }
    // A tiny labelled file: 4 CIFAR-10 records.
    let data = tmp("train4.bin");
    std::fs::write(&data, vec![1u8; 4 * 3073]).unwrap();
    let d = data.to_str().unwrap();
    let record = tmp("huge-train.jsonl");
    let huge = ["--train-batch", "1000000000"];
    let runs: [Vec<&str>; 3] = [
        vec![
            "score",
            "--space",
            "nb201",
            "--sample",
            "2",
            "--data",
            "gaussian",
            "--batch",
            "8",
            "--device",
            "cpu",
            "--train-steps",
            "1",
            "--train-data",
            d,
        ],
        vec![
            "train",
            "--arch",
            CELL,
            "--steps",
            "1",
            "--record",
            record.to_str().unwrap(),
            "--data",
            d,
            "--batch",
            "2",
            "--device",
            "cpu",
        ],
        vec![
            "bench",
            "--device",
            "cpu",
            "--cells",
            "1",
            "--batch",
            "8",
            "--train-steps",
            "1",
        ],
    ];
    for args in runs {
        let t0 = std::time::Instant::now();
        let o = dasnas(&[&args[..], &huge[..]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("dasnas: error:"), "{err}");
        assert!(
            err.contains("--train-batch 1000000000 needs at least 12 TB for one training step"),
            "{err}"
        );
        assert!(err.contains("use a smaller --train-batch"), "{err}");
        assert!(!err.contains("memory allocation"), "{err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        let secs = t0.elapsed().as_secs_f64();
        assert!(secs < 10.0, "{args:?} took {secs:.1} s");
    }
    assert!(!record.exists());
}

#[test]
fn training_step_too_large_for_memory_is_refused_before_training() {
    // 10^5 training images fit (1.2 GB) but one NB201 training step does
    // not (hundreds of GB): refused, with the cell's plan, before the
    // first batch is drawn.
    match dasnas::runtime::budget::host_available() {
        Some(a) if a > 2_000_000_000 && a < 100_000_000_000 => {}
        other => {
            eprintln!("SKIPPED training_step_too_large_for_memory_is_refused_before_training: {other:?} bytes available");
            return;
        }
    }
    let data = tmp("train4b.bin");
    std::fs::write(&data, vec![1u8; 4 * 3073]).unwrap();
    let t0 = std::time::Instant::now();
    let o = dasnas(&[
        "score",
        "--arch",
        CELL,
        "--batch",
        "8",
        "--device",
        "cpu",
        "--train-steps",
        "1",
        "--train-batch",
        "100000",
        "--train-data",
        data.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("dasnas: error:"), "{err}");
    assert!(err.contains("training batch 100000 needs about"), "{err}");
    assert!(err.contains("(its values and gradients: "), "{err}");
    assert!(err.contains("use a smaller --train-batch"), "{err}");
    assert!(o.stdout.is_empty());
    let secs = t0.elapsed().as_secs_f64();
    assert!(secs < 10.0, "took {secs:.1} s");
}
