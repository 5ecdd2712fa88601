//! The CPU throughput options change no more than they say: cells in
//! flight and thread counts leave every score bit as it was; the fast conv
//! algorithm moves scores by rounding only. (Its run stamp and the refusal
//! to resume a file of the other algorithm: `tests/cli/cpu_speed.rs`.)

use dasnas::ops::conv2d::ConvAlgo;
use dasnas::runtime::DeviceKind;
use dasnas::space::{Arch, Space, SpaceOptions};
use dasnas::{CellResult, Scorer};

/// A few cells of every space, small networks (NB101 at 16 stem channels,
/// DARTS at C = 8, 5 layers) so the test stays quick.
fn cells() -> Vec<Arch> {
    let mut out = dasnas::space::sample(Space::NB201, 4, 3).unwrap();
    let nb101: SpaceOptions = "stem_channels=16".parse().unwrap();
    let darts: SpaceOptions = "init_channels=8,layers=5".parse().unwrap();
    for a in dasnas::space::sample(Space::NB101, 2, 3).unwrap() {
        out.push(a.with_options(&nb101).unwrap());
    }
    for a in dasnas::space::sample(Space::DARTS, 2, 3).unwrap() {
        out.push(a.with_options(&darts).unwrap());
    }
    out
}

fn score(
    archs: &[Arch],
    threads: usize,
    in_flight: Option<usize>,
    conv: ConvAlgo,
) -> Vec<CellResult> {
    let batch = dasnas::data::gaussian_batch(10, 32, 0);
    let (mut scorer, _) = Scorer::open(DeviceKind::Cpu, batch, 1).unwrap();
    scorer.set_threads(Some(threads)).unwrap();
    scorer.set_cells_in_flight(in_flight).unwrap();
    assert_eq!(scorer.set_conv(conv), None, "no notice on the CPU");
    let refs: Vec<&Arch> = archs.iter().collect();
    let mut out = Vec::new();
    for block in refs.chunks(scorer.block_size()) {
        out.extend(scorer.score_archs(block, 0, 1.0).unwrap());
    }
    out
}

fn bits(r: &[CellResult]) -> Vec<(Option<u64>, u64, bool)> {
    r.iter()
        .map(|c| {
            (
                c.scores.wot.map(f64::to_bits),
                c.scores.n_units,
                c.scores.singular,
            )
        })
        .collect()
}

#[test]
fn cells_in_flight_and_threads_change_no_score() {
    let archs = cells();
    for conv in [ConvAlgo::Exact, ConvAlgo::Fast] {
        let want = bits(&score(&archs, 1, Some(1), conv));
        for (threads, k) in [
            (2, Some(1)),
            (2, Some(2)),
            (3, Some(3)),
            (2, Some(5)),
            (2, None),
        ] {
            let got = bits(&score(&archs, threads, k, conv));
            assert_eq!(got, want, "{conv:?}, {threads} threads, {k:?} in flight");
        }
    }
}

#[test]
fn cells_in_flight_zero_is_an_error() {
    let batch = dasnas::data::gaussian_batch(4, 32, 0);
    let (mut scorer, _) = Scorer::open(DeviceKind::Cpu, batch, 1).unwrap();
    assert!(scorer.set_cells_in_flight(Some(0)).is_err());
    scorer.set_threads(Some(2)).unwrap();
    // More cells in flight than threads: each lane gets one thread.
    scorer.set_cells_in_flight(Some(8)).unwrap();
    assert_eq!(scorer.cells_in_flight(), 2);
    assert_eq!(dasnas::exec::cpu_lanes::default_cells_in_flight(2), 1);
    assert_eq!(dasnas::exec::cpu_lanes::default_cells_in_flight(64), 8);
}

#[test]
fn fast_convs_move_scores_by_rounding_only() {
    let archs = cells();
    let exact = score(&archs, 2, None, ConvAlgo::Exact);
    let fast = score(&archs, 2, None, ConvAlgo::Fast);
    let mut moved = 0;
    for ((a, e), f) in archs.iter().zip(&exact).zip(&fast) {
        assert_eq!(e.scores.n_units, f.scores.n_units, "{a}");
        let (e, f) = (e.scores.wot.unwrap(), f.scores.wot.unwrap());
        assert!(((e - f) / e).abs() < 1e-5, "{a}: exact {e}, fast {f}");
        moved += usize::from(e != f);
    }
    // NB201 and NB101 cells have 3x3 convs of 32+ channels: the fast path
    // ran (and rounding moved some K_H entry) in at least one.
    assert!(moved > 0, "the fast algorithm changed nothing");
}
