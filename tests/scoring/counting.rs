//! `count=graph` (the NASWOT code's rule: `none` as x·0) against the
//! default functional counting: where they differ, and that graph mode
//! only ever adds units.

use dasnas::testing::shared_data;

use dasnas::space::{Arch, Space, SpaceOptions};

fn units(arch: &Arch, count: &str) -> u64 {
    let opts = SpaceOptions::new().with("count", count);
    arch.with_options(&opts)
        .unwrap()
        .network()
        .unwrap()
        .n_units()
}

#[test]
fn nb201_graph_counting_differs_on_2290_cells() {
    // The PyTorch formulation of both rules (the side-by-side run)
    // found the two N_A different on 2,290 of the 15,625 cells.
    let mut differ = 0;
    for a in Space::NB201.enumerate().unwrap() {
        let (f, g) = (units(&a, "functional"), units(&a, "graph"));
        assert!(g >= f, "{a}: graph {g} < functional {f}");
        differ += usize::from(g != f);
    }
    assert_eq!(differ, 2_290);
}

#[test]
fn darts_graph_counting_differs_on_27_of_the_shared_genotypes() {
    let Some(path) = shared_data(
        "darts_graph_counting_differs_on_27_of_the_shared_genotypes",
        "darts_val_acc_500.csv",
    ) else {
        return;
    };
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let (mut differ, mut ratios) = (0, Vec::new());
    for rec in rdr.records() {
        let a = Arch::parse(Space::DARTS, &rec.unwrap()[0]).unwrap();
        let (f, g) = (units(&a, "functional"), units(&a, "graph"));
        assert!(g >= f);
        if g != f {
            differ += 1;
            ratios.push(g as f64 / f as f64);
        }
    }
    eprintln!("DARTS: {differ} genotypes differ, graph/functional N_A {ratios:?}");
    assert_eq!(differ, 27);
}

#[test]
fn bad_counting_is_an_error_naming_it() {
    let a = Space::NB201.enumerate().unwrap().remove(0);
    let e = a
        .with_options(&SpaceOptions::new().with("count", "all"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown counting `all`"), "{e}");
    let nb101 = Arch::parse(Space::NB101, "0100/input|output").unwrap();
    assert!(nb101
        .with_options(&SpaceOptions::new().with("count", "graph"))
        .is_err());
}
