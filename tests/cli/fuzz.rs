//! Whole command lines with random flags and nasty values (huge, negative,
//! non-finite, empty, unicode, control characters) for every subcommand,
//! each run as a subprocess under a memory and a time limit. Every run must
//! end with exit 0, or with exit 1 (an error: one `dasnas: error: …` line)
//! or 2 (a usage error from the flag parser), never a panic, a signal, a
//! runaway or an abort in an allocation.

use proptest::prelude::*;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Values that have broken command-line tools before. Only 1 and 2 of the
/// counts are small enough to do real work: anything larger must be
/// refused, so no case runs long.
const NASTY: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "18446744073709551616",
    "99999999999",
    "nan",
    "inf",
    "-inf",
    "",
    "ü",
    "\u{1b}[31m",
    "1e3",
    "0.5",
    "x,y",
];

/// A subcommand's flags: name and the values to draw from (`None`: a
/// switch without a value).
type Flags = &'static [(&'static str, Option<&'static [&'static str]>)];

const SPACES: &[&str] = &["nb201", "darts", "nb101", "", "ü", "NB201"];
const PATHS: &[&str] = &[
    "scores.jsonl",
    "truth.csv",
    "missing.file",
    "",
    "/",
    "cells.txt",
];

const RUN: Flags = &[
    ("--space", Some(SPACES)),
    ("--data", Some(&["gaussian", "missing.bin", "", "/"])),
    ("--dataset", Some(&["cifar10", "cifar100", "", "x"])),
    ("--batch", Some(NASTY)),
    ("--seed", Some(NASTY)),
    ("--threads", Some(NASTY)),
    ("--device", Some(&["cpu", "cuda:7", "", "auto:1", "tpu"])),
    ("--lanes", Some(NASTY)),
    ("--init-channels", Some(NASTY)),
    ("--layers", Some(NASTY)),
    ("--stem-channels", Some(NASTY)),
    ("--init", Some(&["default", "naswot", "", "x"])),
    ("--count", Some(&["functional", "graph", "", "x"])),
    (
        "--space-option",
        Some(&["layers=2", "x=1", "=", "", "init_channels=99999999999"]),
    ),
    ("--conv", Some(&["exact", "fast", "", "x"])),
    ("--cells-in-flight", Some(NASTY)),
];

const SCORE: Flags = &[
    ("--sample", Some(NASTY)),
    ("--index", Some(NASTY)),
    (
        "--indices",
        Some(&[
            "0-18446744073709551615",
            "0-99999999999",
            "5-2",
            "1,2",
            "",
            "x",
        ]),
    ),
    ("--archs", Some(PATHS)),
    ("--unique", None),
    ("--expand", None),
    ("--shard", Some(&["0/1", "3/2", "0/0", "", "1/99999999999"])),
    ("--alpha", Some(NASTY)),
    ("--extra-alphas", Some(NASTY)),
    ("--out", Some(&["out.jsonl", "/", ""])),
    ("--resume", None),
    ("--repeats", Some(NASTY)),
    ("--swap", None),
    ("--swap-mu", Some(NASTY)),
    ("--swap-sigma", Some(NASTY)),
    ("--train-steps", Some(NASTY)),
    ("--train-batch", Some(NASTY)),
    ("--lr", Some(NASTY)),
    (
        "--train-records",
        Some(&["0:1", "5:2", "x", "", "0:99999999999"]),
    ),
];

const EVAL: Flags = &[
    ("--scores", Some(PATHS)),
    ("--truth", Some(PATHS)),
    ("--key", Some(&["arch_str", "", "ü"])),
    ("--target", Some(&["acc", "", "arch_str"])),
    ("--nulls", Some(&["lowest", "drop", ""])),
    ("--json", None),
    ("--plot", Some(&["p.svg", "p.png", "p.txt", ""])),
    ("--plot-fields", Some(&["wot", "", "x"])),
];

const FIT: Flags = &[
    ("--scores", Some(PATHS)),
    ("--truth", Some(PATHS)),
    ("--target", Some(&["acc", ""])),
    ("--folds", Some(NASTY)),
    ("--seed", Some(NASTY)),
    ("--json", None),
];

const SEARCH: Flags = &[
    ("--n", Some(NASTY)),
    ("--runs", Some(NASTY)),
    (
        "--metric",
        Some(&["wot", "d", "auto", "das@nan", "ranksum:2", "", "x"]),
    ),
    ("--strategy", Some(&["random", "evolution", "", "x"])),
    ("--population", Some(NASTY)),
    ("--tournament", Some(NASTY)),
    ("--scores", Some(PATHS)),
    ("--truth", Some(PATHS)),
    ("--target", Some(&["acc", ""])),
    ("--json", None),
];

const BENCH: Flags = &[
    ("--cells", Some(NASTY)),
    ("--train-steps", Some(NASTY)),
    ("--train-batch", Some(NASTY)),
];

const TRAIN: Flags = &[
    (
        "--arch",
        Some(&["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "", "x"]),
    ),
    ("--archs", Some(PATHS)),
    ("--steps", Some(NASTY)),
    ("--record", Some(&["rec.jsonl", "/", ""])),
    ("--every", Some(NASTY)),
    ("--train-data", Some(PATHS)),
    ("--resume", None),
];

const ENUMERATE: Flags = &[
    ("--space", Some(&["nb201", "darts", "", "ü"])),
    ("--unique", None),
    ("--shard", Some(&["0/1", "3/2", "0/0", "1/99999999999"])),
    ("--format", Some(&["text", "json", ""])),
    ("--out", Some(&["list.txt", "/", ""])),
];

const MERGE: Flags = &[
    ("--out", Some(&["merged.jsonl", "/", ""])),
    ("--expect", Some(PATHS)),
    ("--missing", Some(&["missing.txt", "/"])),
    ("--complete", None),
    ("--tolerance", Some(NASTY)),
    ("--json", None),
];

/// Every subcommand, its own flags and whether it takes the run flags.
const COMMANDS: &[(&str, Flags, bool)] = &[
    ("score", SCORE, true),
    ("eval", EVAL, false),
    ("fit", FIT, false),
    ("search", SEARCH, true),
    ("bench", BENCH, true),
    ("train", TRAIN, true),
    ("enumerate", ENUMERATE, false),
    ("merge", MERGE, false),
    ("devices", &[], false),
];

/// A scratch folder with small valid inputs for the file flags.
fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-fuzz");
    std::fs::create_dir_all(&dir).unwrap();
    let cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    std::fs::write(dir.join("cells.txt"), format!("{cell}\n")).unwrap();
    std::fs::write(
        dir.join("truth.csv"),
        format!("arch_str,acc\n{cell},93.1\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("scores.jsonl"),
        format!(
            "{{\"arch\":\"{cell}\",\"wot\":1.5,\"d\":-2.0,\"n_units\":10,\"ln_n_units\":2.3}}\n"
        ),
    )
    .unwrap();
    dir
}

/// Runs `args` in `dir` under the limits; the exit code, or a description
/// of how the run went wrong.
fn run_limited(dir: &Path, args: &[String]) -> Result<(i32, String), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dasnas"));
    cmd.args(args)
        .current_dir(dir)
        .env("DASNAS_CACHE", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) run between fork and
    // exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 8 << 30,
                rlim_max: 8 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("still running after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap_or_default();
    match status.code() {
        Some(c) => Ok((c, err)),
        None => Err(format!("killed by a signal ({status}); stderr: {err}")),
    }
}

fn command_line() -> impl Strategy<Value = Vec<String>> {
    (0..COMMANDS.len()).prop_flat_map(|c| {
        let (name, own, run) = COMMANDS[c];
        let mut flags: Vec<(&'static str, Option<&'static [&'static str]>)> = own.to_vec();
        if run {
            flags.extend_from_slice(RUN);
        }
        let n = flags.len().max(1);
        prop::collection::vec((0..n, any::<prop::sample::Index>()), 0..6).prop_map(move |picks| {
            let mut args = vec![name.to_string()];
            if name == "merge" {
                args.push("scores.jsonl".into());
            }
            for (i, v) in picks {
                let Some(&(flag, values)) = flags.get(i) else {
                    continue;
                };
                args.push(flag.to_string());
                if let Some(values) = values {
                    args.push(v.get(values).to_string());
                }
            }
            // Bounded work when the line is valid: at most two cells on
            // the CPU, whatever else was drawn.
            if matches!(name, "score" | "search" | "bench" | "train") {
                args.extend(["--device".into(), "cpu".into()]);
            }
            if name == "score"
                && !args.iter().any(|a| {
                    a.starts_with("--sample")
                        || a == "--archs"
                        || a == "--index"
                        || a == "--indices"
                })
            {
                args.extend(["--sample".into(), "2".into()]);
            }
            args
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_command_line_ends_cleanly(args in command_line()) {
        let dir = scratch();
        match run_limited(&dir, &args) {
            Err(why) => prop_assert!(false, "{args:?}: {why}"),
            Ok((code, err)) => {
                prop_assert!(matches!(code, 0..=2), "{args:?}: exit {code}; stderr: {err}");
                prop_assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
                prop_assert!(!err.contains("memory allocation"), "{args:?}: {err}");
                if code == 1 {
                    prop_assert!(err.contains("dasnas: error: "), "{args:?}: {err}");
                }
            }
        }
    }
}
