//! The network measures written beside the scores: the parameter count
//! against NB101's own (all 250 cells of the shared table) and the
//! multiply-adds against the table's FLOPs, and SWAP through the scorer.

mod common;

use dasnas::space::{Arch, Space};

#[test]
fn nb101_params_equal_nasbenchs_and_macs_track_its_flops() {
    let Some(path) = common::shared_data(
        "nb101_params_equal_nasbenchs_and_macs_track_its_flops",
        "nb101_val_acc_250.csv",
    ) else {
        return;
    };
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (i_arch, i_params, i_flops) = (col("arch"), col("params_M"), col("flops_M"));
    let mut worst = 0.0f64;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let g = Arch::parse(Space::NB101, &rec[i_arch])
            .unwrap()
            .network()
            .unwrap();
        let want: f64 = rec[i_params].parse().unwrap();
        assert_eq!(
            g.param_count(),
            (want * 1e6).round() as u64,
            "{}",
            &rec[i_arch]
        );
        // The table's FLOPs also count some pooling and additions; the
        // convolutions and the classifier are the rest (measured: within
        // 10.0 % on every cell, the largest gaps on pool-heavy cells).
        let flops: f64 = rec[i_flops].parse().unwrap();
        let rel = (g.macs() as f64 / 1e6 - flops).abs() / flops;
        worst = worst.max(rel);
    }
    assert!(
        worst < 0.105,
        "multiply-adds differ from the table's FLOPs by {worst}"
    );
}

#[test]
fn the_scorer_writes_swap_params_and_flops() {
    let batch = dasnas::data::gaussian_batch(12, 32, 0);
    let (mut scorer, _) = dasnas::Scorer::open(dasnas::runtime::DeviceKind::Cpu, batch, 1).unwrap();
    let archs = dasnas::space::sample(Space::NB201, 3, 1).unwrap();
    let refs: Vec<&Arch> = archs.iter().collect();
    let plain = scorer.score_archs(&refs, 0, 1.0).unwrap();
    scorer.set_swap(Some(dasnas::scorer::Swap::new(Some((100.0, 1e4))).unwrap()));
    let with = scorer.score_archs(&refs, 0, 1.0).unwrap();
    for ((a, p), w) in archs.iter().zip(&plain).zip(&with) {
        let g = a.network().unwrap();
        assert_eq!(p.scores.swap, None);
        assert_eq!(p.scores.params, Some(g.param_count()));
        assert_eq!(p.scores.flops, Some(g.macs()));
        // SWAP leaves every other score as it was.
        assert_eq!(w.scores.wot, p.scores.wot);
        let swap = w.scores.swap.unwrap();
        assert!(swap > 0 && swap <= g.n_units(), "{swap}");
        let want = dasnas::score::swap::regularised(swap, g.param_count(), 100.0, 1e4);
        assert_eq!(w.scores.swap_reg, Some(want));
    }
    assert!(dasnas::scorer::Swap::new(Some((f64::NAN, 1.0))).is_err());
    assert!(dasnas::scorer::Swap::new(Some((1.0, -1.0))).is_err());
}

#[test]
fn repeats_average_the_seeds_and_report_their_spread() {
    // A CIFAR file, so that the images do not change with --seed (the
    // Gaussian batch does).
    let data = std::env::temp_dir().join(format!("dasnas-repeats-{}.bin", std::process::id()));
    let mut rng = common::Rng(11);
    let bytes: Vec<u8> = (0..8 * 3073).map(|_| (rng.next() >> 56) as u8).collect();
    std::fs::write(&data, bytes).unwrap();
    let data_arg = data.to_str().unwrap().to_string();
    let args = |seed: &str, repeats: &str| -> Vec<serde_json::Value> {
        let o = common::dasnas(&[
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
        common::stdout_of(&o)
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
    common::fails_with(&["score", "--sample", "1", "--repeats", "0"], "--repeats 0");
    std::fs::remove_file(&data).unwrap();
}

#[test]
fn nb101_stem_channels_sets_the_width() {
    use dasnas::space::SpaceOptions;
    let cell = "0100/input|output";
    let wide = Arch::parse(Space::NB101, cell).unwrap().network().unwrap();
    let opts = SpaceOptions::new().with("stem_channels", 16);
    let narrow = Arch::parse(Space::NB101, cell)
        .unwrap()
        .with_options(&opts)
        .unwrap()
        .network()
        .unwrap();
    // Every layer's width scales with the stem's: 128 / 16 = 8 times the units.
    assert_eq!(wide.n_units(), 8 * narrow.n_units());
    assert!(narrow.param_count() < wide.param_count());
    let zero = SpaceOptions::new().with("stem_channels", 0);
    let e = Arch::parse(Space::NB101, cell)
        .unwrap()
        .with_options(&zero)
        .unwrap_err()
        .to_string();
    assert!(e.contains("stem_channels"), "{e}");
}
