//! Bit-for-bit regression fixture: fixed NB201, NB101 and DARTS cells
//! scored on the CPU (N_A, a hash of the Hamming matrix, WOT, D and DAS as
//! f64 bits), trained a few steps on the CPU (loss, trained parameters,
//! scores), and scored and trained on the host emulation of the CUDA
//! backend, compared with `tests/scoring/fixtures/regression.txt`.
//!
//! The fixture was written before a refactor that must not change any
//! result; `DASNAS_BLESS=1 cargo test --release --test scoring -- regression`
//! rewrites it (only for a deliberate change of results, said in the
//! commit).

use dasnas::data::cifar::{CifarImages, Dataset};
use dasnas::exec::cuda::executor::GpuScorer;
use dasnas::net::init;
use dasnas::space::{self, Arch, Space};
use dasnas::train::batches::{Augment, LabelledBatches};
use dasnas::train::{LrSchedule, SgdConfig};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// FNV-1a over the little-endian bytes of `words`.
fn hash_u64(words: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn hash_f32(values: &[f32]) -> u64 {
    hash_u64(
        &values
            .iter()
            .map(|v| u64::from(v.to_bits()))
            .collect::<Vec<_>>(),
    )
}

fn bits(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| format!("{:016x}", x.to_bits()))
}

fn cells() -> Vec<Arch> {
    let mut archs = space::sample(Space::NB201, 12, 11).expect("nb201");
    archs.extend(space::sample(Space::NB101, 2, 12).expect("nb101"));
    archs.extend(
        space::sample(Space::DARTS, 2, 13)
            .expect("darts")
            .into_iter()
            .map(|a| {
                a.with_options(&"init_channels=8,layers=5".parse().unwrap())
                    .expect("darts size")
            }),
    );
    archs
}

/// 64 seeded synthetic CIFAR-10 records (random pixels, labels 0–9).
fn images() -> CifarImages {
    let mut bytes = Vec::with_capacity(64 * 3073);
    let mut s = 0x1234_5678u64;
    for r in 0..64 {
        bytes.push((r % 10) as u8);
        for _ in 0..3072 {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            bytes.push((s >> 56) as u8);
        }
    }
    CifarImages::from_bytes(&bytes, Dataset::Cifar10).expect("records")
}

fn sgd() -> SgdConfig {
    SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        schedule: LrSchedule::Cosine,
    }
}

/// Every result of the fixture, by key.
fn results() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let batch = dasnas::data::gaussian_batch(12, 32, 3);
    let archs = cells();
    // CPU scoring.
    for (k, arch) in archs.iter().enumerate() {
        let net = arch.network().expect("network");
        let params = init::init_params(&net, 5);
        let (codes, _) = dasnas::exec::cpu::relu_codes(&net, &params, &batch).expect("codes");
        let r = dasnas::score_arch(arch, &batch, 5, 0.5).expect("score");
        let s = r.scores;
        out.insert(
            format!("cpu.score.{k:02}"),
            format!(
                "n_units={} h={:016x} wot={} d={} das={} singular={}",
                codes.n_units,
                hash_u64(&codes.hamming),
                bits(s.wot),
                bits(s.d),
                bits(s.das),
                s.singular
            ),
        );
    }
    // CPU training: 3 SGD steps of two NB201 cells, then the scores.
    let imgs = images();
    for k in [0usize, 3] {
        let net = archs[k].network().expect("network");
        let mut params = init::init_params(&net, 7);
        let mut batches =
            LabelledBatches::new(&imgs, (0..64).collect(), 8, 9, Augment::default()).expect("b");
        let st =
            dasnas::train::train_cpu(&net, &mut params, &mut batches, &sgd(), 3, |_, _| Ok(()))
                .expect("train");
        let flat: Vec<f32> = params.iter().flatten().copied().collect();
        let r = dasnas::score_graph_with_params(&net, &params, &batch, 1.0).expect("score");
        out.insert(
            format!("cpu.train.{k:02}"),
            format!(
                "loss={} params={:016x} wot={}",
                bits(st.final_loss),
                hash_f32(&flat),
                bits(r.scores.wot)
            ),
        );
    }
    // The CUDA backend on the host emulation: scores and Hamming matrices
    // of three NB201 cells and one DARTS cell, and one cell trained.
    let dev = dasnas::testing::emulated();
    let mut scorer = GpuScorer::new(dev, &batch, 2).expect("scorer");
    let picked: Vec<&Arch> = [0usize, 1, 2, 14].iter().map(|&k| &archs[k]).collect();
    let gpu = scorer
        .score(picked.len(), |i| picked[i].network(), 5, 0.5, None, false)
        .expect("gpu scores");
    for (k, (arch, cell)) in picked.iter().zip(&gpu).enumerate() {
        let net = arch.network().expect("network");
        let codes = scorer.relu_codes(&net, 5).expect("gpu codes");
        let s = cell.scores;
        out.insert(
            format!("emu.score.{k:02}"),
            format!(
                "n_units={} h={:016x} wot={} d={} das={} singular={}",
                codes.n_units,
                hash_u64(&codes.hamming),
                bits(s.wot),
                bits(s.d),
                bits(s.das),
                s.singular
            ),
        );
    }
    let mut batches =
        LabelledBatches::new(&imgs, (0..64).collect(), 8, 9, Augment::default()).expect("b");
    let data = dasnas::train::cuda::TrainData::upload(dev, &mut batches, 2, sgd()).expect("upload");
    let trained = dasnas::train::cuda::score_trained(
        &mut scorer,
        1,
        |_| archs[0].network(),
        7,
        1.0,
        &data,
        false,
    )
    .expect("gpu training");
    let (cell, st) = &trained[0];
    out.insert(
        "emu.train.00".into(),
        format!("loss={} wot={}", bits(st.final_loss), bits(cell.scores.wot)),
    );
    out
}

#[test]
fn results_are_unchanged_bit_for_bit() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scoring/fixtures/regression.txt");
    let got = results();
    let mut text = String::new();
    for (k, v) in &got {
        writeln!(text, "{k} {v}").unwrap();
    }
    if std::env::var("DASNAS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).expect("tests/scoring/fixtures/regression.txt");
    let mut diffs = Vec::new();
    let want: BTreeMap<&str, &str> = want.lines().filter_map(|l| l.split_once(' ')).collect();
    for (k, v) in &got {
        match want.get(k.as_str()) {
            Some(w) if *w == v => {}
            Some(w) => diffs.push(format!("{k}:\n  want {w}\n  got  {v}")),
            None => diffs.push(format!("{k}: not in the fixture")),
        }
    }
    assert_eq!(want.len(), got.len(), "fixture has other keys");
    assert!(diffs.is_empty(), "results changed:\n{}", diffs.join("\n"));
}
