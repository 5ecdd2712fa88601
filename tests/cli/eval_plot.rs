//! `dasnas eval --plot`: the SVG and PNG files, panel titles that carry the
//! numbers the table prints, `--plot-fields`, and the error exits.

use crate::{dasnas, fails_with, stdout_of};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Five cells; `a3` is singular (`wot` null); `a6` is not in the truth.
const SCORES: &str = r#"{"arch":"a1","wot":1.5,"d":-3.0,"n_units":100,"ln_n_units":4.6,"das":1.5,"singular":false}
{"arch":"a2","wot":2.5,"d":-2.0,"n_units":200,"ln_n_units":5.3,"das":2.1,"singular":false}
{"arch":"a3","wot":null,"d":-1.0,"n_units":50,"ln_n_units":3.9,"das":0.4,"singular":true}
{"arch":"a4","wot":3.1,"d":-2.5,"n_units":400,"ln_n_units":6.0,"das":3.0,"singular":false}
{"arch":"a5","wot":0.7,"d":-4.0,"n_units":80,"ln_n_units":4.4,"das":0.9,"singular":false}
{"arch":"a6","wot":9.9,"d":-9.0,"n_units":900,"ln_n_units":6.8,"das":9.9,"singular":false}
"#;
const TRUTH: &str = "arch,acc\na1,80.5\na2,85.0\na3,60.0\na4,91.2\na5,70.1\n";

/// A fresh folder holding `s.jsonl` and `t.csv`.
fn inputs(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dasnas-plot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.jsonl"), SCORES).unwrap();
    std::fs::write(dir.join("t.csv"), TRUTH).unwrap();
    dir
}

/// The `eval` arguments of the folder's inputs.
fn eval_args(dir: &Path) -> Vec<String> {
    let (s, t) = (dir.join("s.jsonl"), dir.join("t.csv"));
    [
        "eval",
        "--scores",
        s.to_str().unwrap(),
        "--truth",
        t.to_str().unwrap(),
        "--key",
        "arch",
        "--target",
        "acc",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// `eval` of the folder's inputs with `extra` arguments.
fn eval(dir: &Path, extra: &[&str]) -> std::process::Output {
    let args = eval_args(dir);
    let base: Vec<&str> = args.iter().map(String::as_str).collect();
    dasnas(&[&base[..], extra].concat())
}

/// The printed table: field → its N, null, τ and ρ cells, as printed.
fn table(stdout: &str) -> HashMap<String, [String; 4]> {
    stdout
        .lines()
        .skip(2)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 5, "{l}");
            (c[0].to_string(), [c[1], c[2], c[3], c[4]].map(String::from))
        })
        .collect()
}

/// The title the panel of `field` must have: the table's numbers and the
/// count of joined rows it leaves out.
fn title(table: &HashMap<String, [String; 4]>, field: &str, left_out: usize) -> String {
    let [n, _, tau, rho] = &table[field];
    format!("{field}: N={n}, τ={tau}, ρ={rho}, {left_out} left out")
}

#[test]
fn svg_panels_carry_the_numbers_of_the_table() {
    let dir = inputs("svg");
    let out = dir.join("out.svg");
    let stdout = stdout_of(&eval(&dir, &["--plot", out.to_str().unwrap()]));
    // The table is printed as without --plot.
    assert!(stdout.contains("kendall_tau_b"), "{stdout}");
    let table = table(&stdout);
    assert_eq!(table["wot"][1], "1", "a3 is null in wot");

    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    // Four panels (n_units left out beside ln_n_units), three columns.
    assert!(svg.contains(r#"width="1440" height="800""#), "2×3 grid");
    for (field, left_out) in [("wot", 1), ("d", 0), ("ln_n_units", 0), ("das", 0)] {
        let want = title(&table, field, left_out);
        assert!(svg.contains(&want), "no title `{want}`");
    }
    assert!(
        !svg.contains("\nn_units: N="),
        "n_units is not drawn by default"
    );
    assert!(svg.contains("\nacc\n</text>"), "the y axis is the target");
    // One dot per joined row with a number: a3 is left out of wot, a6
    // (not in the truth) of every panel.
    assert_eq!(svg.matches("<circle").count(), 4 + 5 + 5 + 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn png_is_a_png_of_the_grid() {
    let dir = inputs("png");
    let out = dir.join("out.png");
    stdout_of(&eval(&dir, &["--plot", out.to_str().unwrap()]));
    let png = std::fs::read(&out).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!((be(&png[16..20]), be(&png[20..24])), (1440, 800));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plot_fields_choose_the_panels_and_their_order() {
    let dir = inputs("fields");
    let out = dir.join("out.svg");
    let o = eval(
        &dir,
        &[
            "--plot",
            out.to_str().unwrap(),
            "--plot-fields",
            "n_units,wot",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&o)).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(
        svg.contains(r#"width="960" height="400""#),
        "one row of two"
    );
    let n_units = svg.find("\nn_units: N=5,").expect("n_units panel");
    let wot = svg.find("\nwot: N=5,").expect("wot panel");
    assert!(n_units < wot, "panels in the order asked for");
    assert!(!svg.contains("\ndas: N=") && !svg.contains("\nd: N="));
    let tau = report["fields"][0]["kendall_tau_b"].as_f64().unwrap();
    assert!(svg.contains(&format!("τ={tau:.4}, ")), "wot's τ");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_plot_arguments_fail_with_a_message() {
    let dir = inputs("bad");
    let args = eval_args(&dir);
    let base: Vec<&str> = args.iter().map(String::as_str).collect();
    let txt = dir.join("out.txt");
    fails_with(
        &[&base[..], &["--plot", txt.to_str().unwrap()]].concat(),
        "must be .svg or .png",
    );
    assert!(!txt.exists(), "nothing written");
    let svg = dir.join("out.svg");
    fails_with(
        &[
            &base[..],
            &[
                "--plot",
                svg.to_str().unwrap(),
                "--plot-fields",
                "wot,bogus",
            ],
        ]
        .concat(),
        "no score field `bogus`",
    );
    assert!(!svg.exists(), "nothing written");
    fails_with(&[&base[..], &["--plot-fields", "wot"]].concat(), "--plot");
    let missing = dir.join("no-such-dir").join("out.svg");
    fails_with(
        &[&base[..], &["--plot", missing.to_str().unwrap()]].concat(),
        "no-such-dir",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
