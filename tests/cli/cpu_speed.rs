//! The CPU throughput options on the command line: the fast conv
//! algorithm is recorded in the run stamp, a file of one algorithm is not
//! resumed with the other, and bad values are refused. (What they do to
//! the scores: `tests/scoring/cpu_speed.rs`.)

use crate::{dasnas, fails_with, stdout_of};

#[test]
fn the_cli_stamps_fast_convs_and_refuses_to_mix() {
    let dir = std::env::temp_dir().join(format!("dasnas-cpu-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("fast.jsonl");
    let o = out.to_str().unwrap();
    let args = |conv: &'static str| {
        vec![
            "score",
            "--space",
            "nb201",
            "--sample",
            "3",
            "--batch",
            "6",
            "--device",
            "cpu",
            "--conv",
            conv,
            "--cells-in-flight",
            "2",
            "--out",
            o,
        ]
    };
    stdout_of(&dasnas(&args("fast")));
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["run"]["conv"], "fast", "{line}");
    }
    // Resuming the fast file with exact convs is refused, naming the conv.
    let mut resume = args("exact");
    resume.push("--resume");
    fails_with(&resume, "conv");
    // Exact runs carry no conv field (files from before it resume).
    let exact = dir.join("exact.jsonl");
    let e = exact.to_str().unwrap();
    stdout_of(&dasnas(&[
        "score", "--space", "nb201", "--sample", "2", "--batch", "6", "--device", "cpu", "--out", e,
    ]));
    let line = std::fs::read_to_string(&exact).unwrap();
    assert!(!line.contains("\"conv\""), "{line}");
    fails_with(
        &[
            "score", "--space", "nb201", "--sample", "1", "--conv", "quick",
        ],
        "conv algorithm `quick`",
    );
    fails_with(
        &[
            "score",
            "--space",
            "nb201",
            "--sample",
            "1",
            "--cells-in-flight",
            "0",
        ],
        "--cells-in-flight must be at least 1",
    );
    std::fs::remove_dir_all(&dir).ok();
}
