//! NB201 against the PyTorch reference scores in `../shared/data` (skipped
//! with a message when the file is absent).

use dasnas::data::gaussian_batch;
use dasnas::eval::spearman_rho;
use dasnas::space::nb201::Nb201Cell;
use dasnas::space::{Arch, Space};
use dasnas::testing::shared_data;

struct RefRow {
    arch: String,
    naswot: f64,
    n_units: u64,
}

fn reference(test: &str) -> Option<Vec<RefRow>> {
    let path = shared_data(test, "nb201_reference_naswot_gauss_b128.tsv")?;
    let text = std::fs::read_to_string(&path).expect("read the reference scores");
    let rows = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            RefRow {
                arch: f[0].to_string(),
                naswot: f[1].parse().unwrap(),
                n_units: f[2].parse().unwrap(),
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 500, "{}", path.display());
    Some(rows)
}

#[test]
fn n_units_match_the_reference_for_all_500_cells() {
    let Some(rows) = reference("n_units_match_the_reference_for_all_500_cells") else {
        return;
    };
    for r in &rows {
        let cell = Nb201Cell::parse(&r.arch).unwrap();
        let graph = cell.network(&Default::default()).unwrap();
        assert_eq!(graph.n_units(), r.n_units, "{}", r.arch);
        assert_eq!(cell.n_units_closed_form(), r.n_units, "{}", r.arch);
    }
}

/// WOT at Gaussian inputs, B = 128, ranks cells like the reference's NASWOT.
/// Two PyTorch weight seeds agree at Spearman 0.998 over the 500 cells.
#[test]
fn wot_ranks_like_the_pytorch_reference() {
    let Some(rows) = reference("wot_ranks_like_the_pytorch_reference") else {
        return;
    };
    // Every 10th cell: 50 cells, spread over the file.
    let subset: Vec<&RefRow> = rows.iter().step_by(10).collect();
    let batch = gaussian_batch(128, 32, 0);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for r in &subset {
        let arch = Arch::parse(Space::NB201, &r.arch).unwrap();
        let s = dasnas::score_arch(&arch, &batch, 0, 1.0).unwrap().scores;
        assert_eq!(s.n_units, r.n_units);
        // The reference never saw a singular cell among these.
        ours.push(s.wot.expect("non-singular"));
        theirs.push(r.naswot);
    }
    let rho = spearman_rho(&ours, &theirs).unwrap();
    eprintln!(
        "spearman(ours, reference) over {} cells = {rho:.4}",
        subset.len()
    );
    assert!(rho >= 0.97, "spearman {rho}");
}
