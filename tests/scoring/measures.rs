//! The network measures written beside the scores: the parameter count
//! against NB101's own (all 250 cells of the shared table) and the
//! multiply-adds against the table's FLOPs, and SWAP through the scorer.
//! (`--repeats` on the command line: `tests/cli/measures.rs`.)

use dasnas::space::{Arch, Space};
use dasnas::testing::shared_data;

#[test]
fn nb101_params_equal_nasbenchs_and_macs_track_its_flops() {
    let Some(path) = shared_data(
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
