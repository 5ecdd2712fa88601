//! The numbered usage examples of `examples/`, run as a user runs them
//! (`cargo run --release --example …`): cargo builds them with the tests,
//! beside this test binary. The Python example runs in the Python tests,
//! the C example in the C library's tests.

use std::path::PathBuf;
use std::process::Command;

/// The example `name` cargo built for this profile (`target/<profile>/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    profile.join("examples").join(name)
}

fn run(name: &str) -> String {
    let path = example(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds the examples)",
        path.display()
    );
    let o = Command::new(&path).output().expect("run the example");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{name}: {}: {err}", o.status);
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

#[test]
fn score_one_cell_prints_its_scores_and_line() {
    let out = run("01_score_one_cell");
    assert!(
        out.contains("WOT   Some(") && out.contains("N_A   "),
        "{out}"
    );
    let line = out.lines().last().expect("a result line");
    let v: serde_json::Value = serde_json::from_str(line).expect("the line is JSON");
    assert_eq!(v["run"]["batch"], 64);
    assert_eq!(v["index"], 1);
}

#[test]
fn search_prints_its_report() {
    let out = run("04_search");
    assert!(
        out.contains("random search, metric wot, N = 10, 5 runs"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 6, "{out}");
}
