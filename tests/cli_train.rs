//! `dasnas score --train-steps` and `dasnas train` on a tiny CIFAR file
//! (skipped with a message when ../shared/data is absent).

mod common;

use common::dasnas;
use std::process::Output;

const CELL: &str =
    "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|";

fn data(test: &str) -> Option<String> {
    common::shared_data(test, "cifar10_test20_lossless.bin").map(|p| p.display().to_string())
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
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
