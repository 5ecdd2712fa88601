//! `dasnas fit`, `dasnas search` and the NB101 / DARTS spaces on the command
//! line, on small synthetic files.

use crate::{dasnas, stdout_of as ok};
use std::io::Write;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dasnas-cli-search-{}-{name}", std::process::id()))
}

/// 200 NB201 cells with D and N_A, and a truth that is exactly
/// D + 0.5·B·ln N_A: the fit must pick the linear family near α = 0.5,
/// and a search by that metric must pick its sample's best cell.
fn files() -> (PathBuf, PathBuf) {
    let (s, t) = (tmp("scores.jsonl"), tmp("truth.csv"));
    let mut sf = std::fs::File::create(&s).unwrap();
    let mut tf = std::fs::File::create(&t).unwrap();
    writeln!(tf, "arch_str,acc").unwrap();
    let ops = [
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
    ];
    for i in 0..200usize {
        let o = |k: usize| ops[(i / 5usize.pow(k as u32)) % 5];
        let arch = format!(
            "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|",
            o(0),
            o(1),
            o(2),
            o(3),
            o(4),
            o(5)
        );
        let x = ((i * 7919) % 200) as f64 / 200.0;
        let y = ((i * 104_729) % 199) as f64 / 199.0;
        let d = -300.0 * x;
        let ln = 12.0 + y;
        let wot = d + 128.0 * ln;
        writeln!(
            sf,
            "{{\"arch\":\"{arch}\",\"wot\":{wot},\"d\":{d},\"n_units\":{},\"ln_n_units\":{ln}}}",
            ln.exp().round()
        )
        .unwrap();
        writeln!(tf, "{arch},{}", d + 0.5 * 128.0 * ln).unwrap();
    }
    (s, t)
}

#[test]
fn fit_and_search_from_files() {
    let (s, t) = files();
    let (s, t) = (s.to_str().unwrap(), t.to_str().unwrap());
    let out = ok(&dasnas(&[
        "fit", "--scores", s, "--truth", t, "--target", "acc", "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chosen"], "linear", "{out}");
    let alpha: f64 = v["chosen_rule"].as_str().unwrap()["linear:".len()..]
        .parse()
        .unwrap();
    assert!((alpha - 0.5).abs() < 0.03, "{out}");
    let text = ok(&dasnas(&[
        "fit", "--scores", s, "--truth", t, "--target", "acc",
    ]));
    assert!(text.contains("chosen: linear"), "{text}");

    let out = ok(&dasnas(&[
        "search", "--space", "nb201", "--n", "20", "--runs", "30", "--metric", "das@0.5",
        "--scores", s, "--truth", t, "--target", "acc", "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = v["results"].as_array().unwrap();
    assert_eq!(runs.len(), 30);
    for r in runs {
        assert_eq!(r["truth"], r["best_truth"], "{r}");
    }
    // Errors: a metric that does not exist, N above the cache.
    let e = dasnas(&["search", "--n", "5", "--metric", "magic", "--scores", s]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("unknown metric `magic`"));
    let e = dasnas(&["search", "--n", "500", "--scores", s]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("exceeds the 200 cells"));
}

#[test]
fn new_spaces_on_the_command_line() {
    let out = ok(&dasnas(&[
        "score",
        "--space",
        "darts",
        "--sample",
        "1",
        "--batch",
        "4",
        "--init-channels",
        "4",
        "--layers",
        "3",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["arch"]
        .as_str()
        .unwrap()
        .starts_with("Genotype(normal=[("));
    let e = dasnas(&["score", "--space", "nb101", "--arch", "0110/input|output"]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        msg.contains("at byte 2") && msg.contains("upper triangular"),
        "{msg}"
    );
}
