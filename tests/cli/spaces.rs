//! Whole spaces from the command line: `enumerate`, `score` by official
//! index, one cell per class (`--unique`, `--expand`), shards and `merge`,
//! and the Slurm array script.

use crate::{dasnas, fails_with, stdout_of};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const SMALL: &[&str] = &["--device", "cpu", "--batch", "8", "--threads", "1"];

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dasnas-spaces-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lines by arch, without the timing field; a cell twice is an error.
fn by_arch(path: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v.as_object_mut().unwrap().remove("ms");
        let arch = v["arch"].as_str().unwrap().to_string();
        assert!(out.insert(arch.clone(), v).is_none(), "{arch} twice");
    }
    out
}

#[test]
fn enumerate_lists_nb201_in_official_order() {
    let all = stdout_of(&dasnas(&["enumerate", "--space", "nb201"]));
    assert_eq!(all.lines().count(), 15_625);
    let unique = stdout_of(&dasnas(&["enumerate", "--unique", "--format", "json"]));
    let lines: Vec<Value> = unique
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7_093);
    let keys: HashSet<&str> = lines.iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 6_466);
    assert_eq!(lines[0]["index"], 0);
    // The shard of a list is every N-th line from K.
    let shard = stdout_of(&dasnas(&["enumerate", "--shard", "2/5"]));
    let want: Vec<&str> = all.lines().skip(2).step_by(5).collect();
    assert_eq!(shard.lines().collect::<Vec<_>>(), want);
    fails_with(&["enumerate", "--space", "darts"], "cannot be enumerated");
}

#[test]
fn score_by_index_carries_index_and_key() {
    let out = stdout_of(&dasnas(&[&["score", "--indices", "1,5-6"], SMALL].concat()));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let idx: Vec<u64> = lines.iter().map(|v| v["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, vec![1, 5, 6]);
    assert_eq!(
        lines[0]["arch"],
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    );
    assert_eq!(lines[0]["run"]["batch"], 8);
    fails_with(
        &[&["score", "--index", "15625"], SMALL].concat(),
        "index 15625 out of range",
    );
    fails_with(
        &[&["score", "--space", "nb101", "--index", "0"], SMALL].concat(),
        "no official cell index",
    );
    fails_with(&["score", "--all", "--shard", "3/2"], "K must be below N");
    fails_with(
        &["score", "--all", "--shard", "0/0"],
        "N must be at least 1",
    );
}

#[test]
fn unique_scores_each_class_once_and_expand_writes_every_member() {
    let d = dir("unique");
    // Indices 0-199 hold classes with several members.
    let list = d.join("cells.txt");
    std::fs::write(
        &list,
        stdout_of(&dasnas(&["enumerate", "--shard", "0/80"])), // 196 cells
    )
    .unwrap();
    let cells = std::fs::read_to_string(&list).unwrap();
    let (unique, expand, plain) = (d.join("u.jsonl"), d.join("e.jsonl"), d.join("p.jsonl"));
    let args = |extra: &[&str], out: &Path| {
        let mut a: Vec<String> = ["score", "--archs", s(&list), "--out", s(out)]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend(SMALL.iter().chain(extra).map(|x| x.to_string()));
        a
    };
    let run = |extra: &[&str], out: &Path| {
        let a = args(extra, out);
        stdout_of(&dasnas(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    };
    run(&["--unique"], &unique);
    run(&["--expand"], &expand);
    run(&[], &plain);
    let (u, e, p) = (by_arch(&unique), by_arch(&expand), by_arch(&plain));
    assert!(
        u.len() < e.len(),
        "{} classes of {} cells",
        u.len(),
        e.len()
    );
    assert_eq!(e.len(), cells.lines().count());
    // A class's representative has the plain run's line; every member
    // carries its own index and its class's key and scores.
    for (arch, line) in &e {
        let rep = line
            .get("scored_as")
            .and_then(Value::as_str)
            .unwrap_or(arch);
        assert_eq!(line["wot"], u[rep]["wot"], "{arch}");
        assert_eq!(line["key"], u[rep]["key"], "{arch}");
        assert_eq!(line["index"], p[arch]["index"], "{arch}");
        assert_eq!(line["n_units"], p[arch]["n_units"], "{arch}");
    }
    for (arch, line) in &u {
        assert_eq!(line, &p[arch]);
    }
    // Expanding the unique run's file scores nothing again: every missing
    // member is copied from its class's line.
    let expanded = d.join("u2.jsonl");
    std::fs::copy(&unique, &expanded).unwrap();
    run(&["--expand", "--resume"], &expanded);
    assert_eq!(by_arch(&expanded), e);
    // Copied, not scored again: a member's line has its class line's `ms`.
    let raw = |p: &Path| -> BTreeMap<String, Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["arch"].as_str().unwrap().to_string(), v["ms"].clone())
            })
            .collect()
    };
    let (ms_unique, ms_expanded) = (raw(&unique), raw(&expanded));
    for (arch, line) in &e {
        let rep = line
            .get("scored_as")
            .and_then(Value::as_str)
            .unwrap_or(arch);
        assert_eq!(ms_expanded[arch], ms_unique[rep], "{arch}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn shards_merge_into_the_single_run_and_missing_cells_are_listed() {
    let d = dir("shards");
    let list = d.join("cells.txt");
    std::fs::write(
        &list,
        stdout_of(&dasnas(&["enumerate", "--shard", "0/1500"])),
    )
    .unwrap();
    let n_cells = std::fs::read_to_string(&list).unwrap().lines().count();
    let single = d.join("single.jsonl");
    stdout_of(&dasnas(
        &[&["score", "--archs", s(&list), "--out", s(&single)], SMALL].concat(),
    ));
    // The Slurm script, as array tasks 0..3 of 3.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-array.sh");
    let shard_dir = d.join("shards");
    let task = |k: usize| {
        let o = Command::new("bash")
            .arg(&script)
            .args(["--archs", s(&list)])
            .args(SMALL)
            .env("SLURM_ARRAY_TASK_ID", k.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("DASNAS_SHARD_DIR", &shard_dir)
            .env("DASNAS_BIN", env!("CARGO_BIN_EXE_dasnas"))
            .output()
            .unwrap();
        stdout_of(&o);
    };
    for k in 0..3 {
        task(k);
    }
    let shard = |k: usize| shard_dir.join(format!("shard-{k}-of-3.jsonl"));
    let merged = d.join("merged.jsonl");
    let missing = d.join("missing.txt");
    // Two of three shards: the third's cells are listed as missing, and
    // --complete turns that into a failure (the merged file is written).
    let o = dasnas(&[
        "merge",
        s(&shard(0)),
        s(&shard(1)),
        "--out",
        s(&merged),
        "--expect",
        s(&list),
        "--missing",
        s(&missing),
        "--complete",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected cells have no line"));
    let listed = std::fs::read_to_string(&missing).unwrap();
    assert_eq!(listed.lines().count(), n_cells / 3);
    // A killed task: its file ends in half a line; re-running the task
    // resumes it, and a shard given twice only adds duplicates.
    let text = std::fs::read_to_string(shard(2)).unwrap();
    let keep: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(shard(2), format!("{keep}{{\"arch\":\"|nor_conv")).unwrap();
    let o = dasnas(&[
        "merge",
        s(&shard(0)),
        s(&shard(1)),
        s(&shard(2)),
        "--out",
        s(&merged),
        "--json",
    ]);
    let report: Value = serde_json::from_str(&stdout_of(&o)).unwrap();
    assert_eq!(report["partial_lines"], 1);
    task(2);
    stdout_of(&dasnas(&[
        "merge",
        s(&shard(0)),
        s(&shard(1)),
        s(&shard(2)),
        s(&shard(1)),
        "--out",
        s(&merged),
        "--expect",
        s(&list),
        "--complete",
    ]));
    assert_eq!(by_arch(&merged), by_arch(&single));
    // Another seed's file is refused, naming the difference; the merged
    // file stays as it was.
    let other = d.join("other.jsonl");
    stdout_of(&dasnas(
        &[
            &[
                "score",
                "--archs",
                s(&list),
                "--seed",
                "1",
                "--out",
                s(&other),
            ],
            SMALL,
        ]
        .concat(),
    ));
    let before = std::fs::read_to_string(&merged).unwrap();
    let o = dasnas(&["merge", s(&single), s(&other), "--out", s(&merged)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("seed 1, not 0"));
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), before);
    // Resuming into another seed's file is refused too.
    let o = dasnas(
        &[
            &[
                "score",
                "--archs",
                s(&list),
                "--seed",
                "1",
                "--resume",
                "--out",
                s(&single),
            ],
            SMALL,
        ]
        .concat(),
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("scored with seed 0, not 1"));
    // The script refuses to run outside an array job.
    let o = Command::new("bash")
        .arg(&script)
        .arg("--all")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}
