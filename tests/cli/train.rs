//! `dasnas score --train-steps` and `dasnas train` on a tiny CIFAR file
//! (skipped with a message when ../shared/data is absent).

use crate::{dasnas, fails_with};
use dasnas::testing::shared_data;
use std::process::Output;

const CELL: &str =
    "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|";

fn data(test: &str) -> Option<String> {
    shared_data(test, "cifar10_test20_lossless.bin").map(|p| p.display().to_string())
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn strip(mut v: serde_json::Value, keys: &[&str]) -> serde_json::Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

#[test]
fn score_with_training_steps() {
    let Some(d) = data("score_with_training_steps") else {
        return;
    };
    let base = ["score", "--arch", CELL, "--data", &d, "--batch", "8"];
    // K = 0 is the plain scorer.
    let plain = json_lines(&dasnas(&base));
    let k0 = json_lines(&dasnas(&[&base[..], &["--train-steps", "0"]].concat()));
    assert_eq!(
        strip(plain[0].clone(), &["ms"]),
        strip(k0[0].clone(), &["ms"])
    );
    assert!(plain[0].get("train_loss").is_none());
    // K = 3 on records 8..20 of the same file, on 1 and 2 threads.
    let train = [
        "--train-steps",
        "3",
        "--train-batch",
        "4",
        "--augment",
        "--nesterov",
    ];
    let run = |threads: &str| {
        json_lines(&dasnas(
            &[&base[..], &train[..], &["--threads", threads]].concat(),
        ))
    };
    let (a, b) = (run("1"), run("2"));
    let drop = ["ms", "train_ms"];
    assert_eq!(strip(a[0].clone(), &drop), strip(b[0].clone(), &drop));
    let v = &a[0];
    assert_eq!(v["train_steps"], 3);
    let loss = v["train_loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{v}");
    let acc = v["train_acc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(v["n_units"], plain[0]["n_units"]);
    assert_ne!(v["wot"], plain[0]["wot"], "training changed nothing");
}

#[test]
fn score_training_errors() {
    let Some(d) = data("score_training_errors") else {
        return;
    };
    // Gaussian scoring data and no --train-data: nothing to train on.
    let o = dasnas(&[
        "score",
        "--arch",
        CELL,
        "--batch",
        "8",
        "--train-steps",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--train-data"));
    // The scoring batch takes the whole file.
    let o = dasnas(&[
        "score",
        "--arch",
        CELL,
        "--data",
        &d,
        "--batch",
        "20",
        "--train-steps",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no training records"));
    for (flag, val, needle) in [
        ("--train-records", "5:3", "--train-records"),
        ("--train-records", "0:99", "--train-records"),
        ("--lr", "-1", "learning rate"),
        ("--momentum", "0", "Nesterov"),
    ] {
        let opt = format!("{flag}={val}");
        let mut args = vec![
            "score",
            "--arch",
            CELL,
            "--batch",
            "8",
            "--train-steps",
            "1",
            "--train-data",
            &d,
            &opt,
        ];
        if flag == "--momentum" {
            args.push("--nesterov");
        }
        let o = dasnas(&args);
        assert!(!o.status.success(), "{flag} {val} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{flag} {val}: {err}");
    }
}

#[test]
fn train_writes_records() {
    let Some(d) = data("train_writes_records") else {
        return;
    };
    let rec = std::env::temp_dir().join(format!("dasnas-train-{}.jsonl", std::process::id()));
    let o = dasnas(&[
        "train",
        "--arch",
        CELL,
        "--steps",
        "5",
        "--every",
        "2",
        "--record",
        rec.to_str().unwrap(),
        "--data",
        &d,
        "--batch",
        "8",
        "--train-data",
        &d,
        "--train-records",
        "0:20",
        "--train-batch",
        "4",
        "--lr-schedule",
        "constant",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Numbers a user reads, not Rust's debug form of an option.
    assert!(
        err.contains("final loss ") && !err.contains("Some("),
        "{err}"
    );
    let text = std::fs::read_to_string(&rec).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_file(&rec);
    assert_eq!(lines.len(), 6);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["step"], i);
        // Scores at step 0, every 2 steps and at the last step.
        let scored = i == 0 || i % 2 == 0 || i == 5;
        assert_eq!(v.get("n_units").is_some(), scored, "{v}");
        if i > 0 {
            assert!(v["loss"].as_f64().unwrap().is_finite());
            assert_eq!(v["lr"], 0.1);
        }
    }
}

/// Three NB201 cells (one per line, with a comment and a blank line).
const CELLS: [&str; 3] = [
    CELL,
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
];

/// A fresh temporary folder for one test.
fn tmp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dasnas-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cells file of [`CELLS`] in `dir`.
fn cells_file(dir: &std::path::Path) -> String {
    let p = dir.join("cells.txt");
    let text = format!(
        "# three cells\n{}\n\n{}\n{}\n",
        CELLS[0], CELLS[1], CELLS[2]
    );
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The tiny recipe of the bench tests: 3 steps, scored every 2 (so at
/// steps 0, 2 and 3).
fn recipe(d: &str) -> Vec<String> {
    [
        "--steps",
        "3",
        "--every",
        "2",
        "--data",
        d,
        "--batch",
        "8",
        "--train-batch",
        "4",
        "--threads",
        "1",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `dasnas train ARGS RECIPE`, which must succeed.
fn train_ok(args: &[&str], recipe: &[String]) {
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(recipe.iter().map(String::as_str))
        .collect();
    let o = dasnas(&all);
    assert!(
        o.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn read_records(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each cell's records as a reader takes them: grouped by `arch`, from the
/// cell's last `step` 0 record onward; cells in order of first appearance.
fn by_cell(records: &[serde_json::Value]) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut cells: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for r in records {
        let arch = r["arch"].as_str().expect("every record names its cell");
        let k = match cells.iter().position(|c| c.0 == arch) {
            Some(k) => k,
            None => {
                cells.push((arch.to_string(), Vec::new()));
                cells.len() - 1
            }
        };
        if r["step"] == 0 {
            cells[k].1.clear();
        }
        cells[k].1.push(r.clone());
    }
    cells
}

/// The records without the fields that name the cell, the run stamp and
/// the timing.
fn bare(records: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let drop = ["arch", "key", "index", "run", "ms"];
    records.iter().map(|r| strip(r.clone(), &drop)).collect()
}

#[test]
fn train_bench_records_every_cell() {
    let Some(d) = data("train_bench_records_every_cell") else {
        return;
    };
    let dir = tmp_dir("bench-records");
    let cells = cells_file(&dir);
    let rec = dir.join("bench.jsonl");
    let recipe = recipe(&d);
    train_ok(
        &[
            "train",
            "--archs",
            &cells,
            "--record",
            rec.to_str().unwrap(),
        ],
        &recipe,
    );
    let records = read_records(&rec);
    assert_eq!(records.len(), 3 * 4);
    let grouped = by_cell(&records);
    let names: Vec<&str> = grouped.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, CELLS);
    let stamp = records[0]["run"].clone();
    assert_eq!(stamp["seed"], 0);
    assert_eq!(stamp["batch"], 8);
    assert_eq!(
        stamp["train"].as_str().unwrap().split(' ').next(),
        Some("3")
    );
    for (arch, recs) in &grouped {
        assert_eq!(recs.len(), 4, "{arch}");
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r["step"], i, "{r}");
            assert_eq!(r["run"], stamp, "{r}");
            assert!(r["key"].is_string() && r["index"].is_u64(), "{r}");
            assert_eq!(r.get("ms").is_some(), i > 0, "{r}");
            assert_eq!(r["loss"].is_f64(), i > 0, "{r}");
            // Scores at step 0, every 2 steps and the last step.
            let scored = i == 0 || i == 2 || i == 3;
            for f in ["wot", "d", "n_units", "das", "singular"] {
                assert_eq!(r.get(f).is_some(), scored, "{f}: {r}");
            }
        }
        // The records of `train --arch` for the cell, but for the timing
        // and the cell's fields on every record.
        let one = dir.join("one.jsonl");
        train_ok(
            &["train", "--arch", arch, "--record", one.to_str().unwrap()],
            &recipe,
        );
        let single = read_records(&one);
        assert_eq!(bare(&single), bare(recs), "{arch}");
        for f in ["arch", "key", "index", "run"] {
            assert_eq!(single[0][f], recs[0][f], "{f}");
            assert!(single[1].get(f).is_none(), "{f}");
        }
    }
    // The file holds records: without --resume it is refused, untouched.
    let before = std::fs::read_to_string(&rec).unwrap();
    let mut args = vec![
        "train",
        "--archs",
        &cells,
        "--record",
        rec.to_str().unwrap(),
    ];
    args.extend(recipe.iter().map(String::as_str));
    fails_with(&args, "--resume");
    assert_eq!(std::fs::read_to_string(&rec).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_bench_shards_and_resume() {
    let Some(d) = data("train_bench_shards_and_resume") else {
        return;
    };
    let dir = tmp_dir("bench-resume");
    let cells = cells_file(&dir);
    let recipe = recipe(&d);
    let path = |name: &str| dir.join(name).display().to_string();
    let run = |record: &str, more: &[&str]| {
        let args = [&["train", "--archs", &cells, "--record", record][..], more].concat();
        train_ok(&args, &recipe);
    };
    let full = path("full.jsonl");
    run(&full, &[]);
    let full_cells = by_cell(&read_records(full.as_ref()));
    let bare_cells =
        |c: &[(String, Vec<serde_json::Value>)]| -> Vec<(String, Vec<serde_json::Value>)> {
            c.iter().map(|(a, r)| (a.clone(), bare(r))).collect()
        };
    // Two shards cover the list: positions 0, 2 and position 1.
    let (s0, s1) = (path("s0.jsonl"), path("s1.jsonl"));
    run(&s0, &["--shard", "0/2"]);
    run(&s1, &["--shard", "1/2"]);
    let (c0, c1) = (
        by_cell(&read_records(s0.as_ref())),
        by_cell(&read_records(s1.as_ref())),
    );
    assert_eq!(
        bare_cells(&c0),
        bare_cells(&[full_cells[0].clone(), full_cells[2].clone()])
    );
    assert_eq!(bare_cells(&c1), bare_cells(&full_cells[1..2]));
    // A run killed mid-cell: the first cell complete, 2 records of the
    // second, half of the next line. --resume cuts the second cell's
    // records off and trains it and the third, once each.
    let text = std::fs::read_to_string(&full).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let killed = path("killed.jsonl");
    std::fs::write(
        &killed,
        format!("{}\n{}", lines[..6].join("\n"), &lines[6][..20]),
    )
    .unwrap();
    // Another seed is refused, naming it, and changes nothing.
    let mut args = vec!["train", "--archs", &cells, "--record", &killed, "--resume"];
    args.extend(recipe.iter().map(String::as_str));
    fails_with(&[&args[..], &["--seed", "1"]].concat(), "seed");
    assert!(std::fs::read_to_string(&killed)
        .unwrap()
        .ends_with(&lines[6][..20]));
    run(&killed, &["--resume"]);
    let resumed = read_records(killed.as_ref());
    assert_eq!(resumed.len(), 12, "a cell's records written twice");
    assert_eq!(
        bare_cells(&by_cell(&resumed)),
        bare_cells(&full_cells),
        "resumed file differs"
    );
    // Resuming a complete file trains nothing.
    run(&killed, &["--resume"]);
    assert_eq!(read_records(killed.as_ref()).len(), 12);
    // An unfinished cell before the file's end (its records stay) is
    // trained again and appended; readers take its last set.
    let gap = path("gap.jsonl");
    let kept: Vec<&str> = lines[..6].iter().chain(&lines[8..]).copied().collect();
    std::fs::write(&gap, kept.join("\n") + "\n").unwrap();
    run(&gap, &["--resume"]);
    let records = read_records(gap.as_ref());
    assert_eq!(records.len(), 10 + 4);
    let mut got = bare_cells(&by_cell(&records));
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = bare_cells(&full_cells);
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn joined<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    [a, b].concat()
}

#[test]
fn train_bench_errors() {
    let Some(d) = data("train_bench_errors") else {
        return;
    };
    let dir = tmp_dir("bench-errors");
    let cells = cells_file(&dir);
    let rec = dir.join("r.jsonl").display().to_string();
    let base = [
        "train", "--steps", "1", "--record", &rec, "--data", &d, "--batch", "8",
    ];
    fails_with(
        &joined(&base, &["--archs", &cells, "--shard", "3/2"]),
        "K must be below N",
    );
    fails_with(
        &joined(&base, &["--arch", CELL, "--shard", "0/2"]),
        "cannot be used with",
    );
    fails_with(
        &joined(&base, &["--arch", CELL, "--resume"]),
        "cannot be used with",
    );
    fails_with(
        &joined(&base, &["--arch", CELL, "--archs", &cells]),
        "cannot be used",
    );
    fails_with(&joined(&base, &[]), "--arch");
    fails_with(
        &joined(&base, &["--archs", &cells, "--device", "cuda"]),
        "runs on the CPU",
    );
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, format!("{CELL}\n# next\n|nor_conv_9x9~0|\n")).unwrap();
    let bad_name = bad.display().to_string();
    fails_with(
        &joined(&base, &["--archs", &bad_name]),
        &format!("{bad_name} line 3"),
    );
    fails_with(
        &[
            "train", "--archs", &cells, "--steps", "0", "--record", &rec, "--data", &d,
        ],
        "--steps 0",
    );
    let absent = dir.join("absent.txt").display().to_string();
    fails_with(&joined(&base, &["--archs", &absent]), "absent.txt");
    assert!(!std::path::Path::new(&rec).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
