//! The official identities of cells against the benchmarks' own tables:
//! NB201's index and unique_str against the shared NB201 table (all 15,625
//! cells), NB101's hash against the NASBench test vector, DARTS's canonical
//! key on the shared DARTS table.

use dasnas::testing::shared_data;

use dasnas::space::nb201::Nb201Cell;
use dasnas::space::{Arch, Space};
use std::collections::{HashMap, HashSet};

#[test]
fn nb201_index_and_unique_str_match_the_official_table() {
    let Some(path) = shared_data(
        "nb201_index_and_unique_str_match_the_official_table",
        "nb201_acc_200ep.csv",
    ) else {
        return;
    };
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (i_index, i_arch, i_unique) = (col("arch_index"), col("arch_str"), col("unique_str"));
    let mut rows = 0;
    let mut classes = HashSet::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let index: usize = rec[i_index].parse().unwrap();
        let cell = Nb201Cell::parse(&rec[i_arch]).unwrap();
        assert_eq!(cell.index(), index, "{}", &rec[i_arch]);
        assert_eq!(Nb201Cell::from_index(index).unwrap(), cell);
        assert_eq!(cell.unique_str(), &rec[i_unique], "{}", &rec[i_arch]);
        classes.insert(cell.unique_str());
        rows += 1;
    }
    assert_eq!(rows, 15_625);
    assert_eq!(classes.len(), 6_466);
}

#[test]
fn nb201_enumeration_is_in_official_order() {
    for (i, arch) in Space::NB201.enumerate().unwrap().iter().enumerate() {
        assert_eq!(arch.identity().index, Some(i));
    }
}

#[test]
fn nb101_hash_of_the_nasbench_test_vector_and_isomorphic_specs() {
    let spec = "0100110001000000010010000010000001000000010000000/\
                input|conv3x3-bn-relu|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|output";
    let arch = Arch::parse(Space::NB101, spec).unwrap();
    let want = "00005c142e6f48ac74fdcf73e3439874";
    assert_eq!(arch.identity().key, want);
    // Vertices 3 and 4 (both conv3x3, both 0→v→5) swapped: same module.
    let swapped = "0101010001000000001010000010000001000000010000000/\
                   input|conv3x3-bn-relu|maxpool3x3|conv3x3-bn-relu|conv3x3-bn-relu|conv1x1-bn-relu|output"
        .to_string();
    assert_eq!(
        Arch::parse(Space::NB101, &swapped).unwrap().identity().key,
        want
    );
    // A vertex that reaches nothing is pruned before hashing.
    let dangling = Arch::parse(Space::NB101, "011000000/input|conv3x3-bn-relu|output").unwrap();
    let bare = Arch::parse(Space::NB101, "0100/input|output").unwrap();
    assert_eq!(dangling.identity().key, bare.identity().key);
}

#[test]
fn darts_keys_merge_only_equal_genotypes() {
    let Some(path) = shared_data(
        "darts_keys_merge_only_equal_genotypes",
        "darts_val_acc_500.csv",
    ) else {
        return;
    };
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let arch = Arch::parse(Space::DARTS, &rec[0]).unwrap();
        let key = arch.identity().key;
        // The key is a genotype of the same class.
        let again = Arch::parse(Space::DARTS, &key).unwrap();
        assert_eq!(again.identity().key, key);
        by_key.entry(key).or_default().push(rec[0].to_string());
    }
    let merged: usize = by_key.values().map(|v| v.len() - 1).sum();
    eprintln!(
        "DARTS table: {} genotypes, {} classes",
        by_key.values().map(Vec::len).sum::<usize>(),
        by_key.len()
    );
    assert!(merged < 500);
}

#[test]
fn nb101_enumeration_has_nasbenchs_count_and_the_shared_cells() {
    // Builds the enumeration into a fresh folder (≈ 13 s on 2 cores): the
    // count is checked inside (423,624, NASBench's), and every cell of the
    // shared NB101 table must have its hash among the classes.
    let dir = std::env::temp_dir().join(format!("dasnas-nb101-enum-{}", std::process::id()));
    let (path, built) = dasnas::space::nb101::enumerate::ensure_cache(&dir).unwrap();
    assert!(built);
    let hashes: HashSet<String> = dasnas::space::nb101::enumerate::cells(&dir)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(hashes.len(), 423_624);
    // A second call reuses the file.
    assert!(
        !dasnas::space::nb101::enumerate::ensure_cache(&dir)
            .unwrap()
            .1
    );
    // The representatives' own hashes are their keys.
    let (h, cell) = dasnas::space::nb101::enumerate::cells(&dir)
        .unwrap()
        .nth(1000)
        .unwrap()
        .unwrap();
    assert_eq!(cell.hash(), h);
    if let Some(table) = shared_data(
        "nb101_enumeration_has_nasbenchs_count_and_the_shared_cells",
        "nb101_val_acc_250.csv",
    ) {
        let mut rdr = csv::Reader::from_path(table).unwrap();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            let arch = Arch::parse(Space::NB101, &rec[0]).unwrap();
            assert!(hashes.contains(&arch.identity().key), "{}", &rec[0]);
        }
    }
    // A cache file cut short is an error naming it, not a short list.
    let text = std::fs::read_to_string(&path).unwrap();
    let cut: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).unwrap();
    let e = dasnas::space::nb101::enumerate::cells(&dir)
        .unwrap()
        .find_map(|r| r.err())
        .unwrap()
        .to_string();
    assert!(e.contains("9 cells, expected 423624"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
