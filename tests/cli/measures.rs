//! Repeated scoring on the command line: `--repeats` averages the seeds'
//! scores and reports their spread. (The measures themselves:
//! `tests/scoring/measures.rs`.)

use crate::{dasnas, fails_with, stdout_of};
use dasnas::testing::Rng;

#[test]
fn repeats_average_the_seeds_and_report_their_spread() {
    // A CIFAR file, so that the images do not change with --seed (the
    // Gaussian batch does).
    let data = std::env::temp_dir().join(format!("dasnas-repeats-{}.bin", std::process::id()));
    let mut rng = Rng(11);
    let bytes: Vec<u8> = (0..8 * 3073).map(|_| (rng.next() >> 56) as u8).collect();
    std::fs::write(&data, bytes).unwrap();
    let data_arg = data.to_str().unwrap().to_string();
    let args = |seed: &str, repeats: &str| -> Vec<serde_json::Value> {
        let o = dasnas(&[
            "score",
            "--indices",
            "1,7",
            "--device",
            "cpu",
            "--batch",
            "8",
            "--threads",
            "1",
            "--seed",
            seed,
            "--repeats",
            repeats,
            "--swap",
            "--data",
            &data_arg,
        ]);
        stdout_of(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let avg = args("4", "3");
    let single: Vec<Vec<serde_json::Value>> =
        ["4", "5", "6"].iter().map(|s| args(s, "1")).collect();
    for (k, line) in avg.iter().enumerate() {
        let wots: Vec<f64> = single
            .iter()
            .map(|s| s[k]["wot"].as_f64().unwrap())
            .collect();
        let mean = wots.iter().sum::<f64>() / 3.0;
        let sd = (wots.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((line["wot"].as_f64().unwrap() - mean).abs() < 1e-9 * mean.abs());
        assert!((line["wot_std"].as_f64().unwrap() - sd).abs() < 1e-9 * mean.abs());
        assert_eq!(line["repeats"], 3);
        assert_eq!(line["run"]["repeats"], 3);
        assert_eq!(line["singular_repeats"], 0);
        // What the weights do not change is written once, as is.
        assert_eq!(line["n_units"], single[0][k]["n_units"]);
        assert!(line.get("n_units_std").is_none());
        assert!(line.get("swap_std").is_some());
    }
    fails_with(&["score", "--sample", "1", "--repeats", "0"], "--repeats 0");
    std::fs::remove_file(&data).unwrap();
}
