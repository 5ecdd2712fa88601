//! NB101 and DARTS networks run end to end on the CPU executor (concat,
//! crop, depthwise and dilated convs, zeros): the scores are finite, N_A is
//! the network's counted units, and a rerun gives the same bits.

use dasnas::space::{self, Arch, Space, SpaceOptions};

fn check(arch: &Arch) {
    let batch = dasnas::data::gaussian_batch(8, 32, 1);
    let g = arch.network().unwrap();
    let a = dasnas::score_arch(arch, &batch, 3, 1.0).unwrap();
    assert_eq!(a.scores.n_units, g.n_units(), "{arch}");
    assert!(
        a.scores.wot.is_some_and(f64::is_finite),
        "{arch}: {:?}",
        a.scores
    );
    let b = dasnas::score_arch(arch, &batch, 3, 1.0).unwrap();
    assert_eq!(a.scores, b.scores);
}

#[test]
fn nb101_cells_score() {
    for arch in space::sample(Space::NB101, 2, 5).unwrap() {
        check(&arch);
        // The NASWOT He-normal init: other weights, other scores, same units.
        let he = arch
            .with_options(&SpaceOptions::new().with("init", "naswot"))
            .unwrap();
        check(&he);
        let batch = dasnas::data::gaussian_batch(8, 32, 1);
        let a = dasnas::score_arch(&arch, &batch, 3, 1.0).unwrap().scores;
        let b = dasnas::score_arch(&he, &batch, 3, 1.0).unwrap().scores;
        assert_eq!(a.n_units, b.n_units);
        assert_ne!(a.wot, b.wot);
    }
}

#[test]
fn darts_cells_score() {
    // A small network (C = 8, 5 cells) keeps the test fast; every op of the
    // space appears in these two genotypes or in DARTS-V2's reduction cell.
    let v2 = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('dil_conv_5x5', 0), \
              ('avg_pool_3x3', 1), ('none', 1), ('skip_connect', 0), ('skip_connect', 0), \
              ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), \
              ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('none', 0), \
              ('none', 1), ('skip_connect', 2), ('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])";
    let mut archs = vec![Arch::parse(Space::DARTS, v2).unwrap()];
    archs.extend(space::sample(Space::DARTS, 1, 7).unwrap());
    let small: SpaceOptions = "init_channels=8,layers=5".parse().unwrap();
    for arch in archs {
        check(&arch.with_options(&small).unwrap());
    }
}
