//! Fast training on the GPU against the CPU trainer: one step's gradients,
//! a few steps then scoring, and memorising one batch.
//!
//! Each GPU test runs twice (see `dasnas::testing`): `…::emulated` on the host
//! emulation of the CUDA backend, always, and `…::gpu` on a GPU, ignored
//! unless asked for (`--include-ignored`, as the GPU bundle does).

use dasnas::data::cifar::{CifarImages, Dataset};
use dasnas::exec::cuda::executor::GpuScorer;
use dasnas::net::{init::init_params, Graph, GraphBuilder};
use dasnas::ops::conv2d::ConvLayer;
use dasnas::ops::pool::PoolKind;
use dasnas::runtime::cuda::CudaDevice;
use dasnas::testing::Rng;
use dasnas::train::batches::{Augment, LabelledBatches};
use dasnas::train::cuda::{gradients, TrainData};
use dasnas::train::{cpu, LrSchedule, SgdConfig};
use dasnas::Tensor;
use dasnas::{gpu_only_test, gpu_test};

/// A small 32×32 network with every op and wiring case the trainer meets:
/// a ReLU read by two convs (fused) and a max pool (materialised), a
/// three-input add with `Zeros`, grouped and strided convs, GAP, linear.
fn small_net() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(32, 32, 3).unwrap();
    let c0 = b
        .conv(x, ConvLayer::new(8, 3).stride(2).pad(1), "stem.conv")
        .unwrap();
    let h = b.batchnorm(c0, "stem.bn");
    let r = b.relu(h, "a.relu");
    let a = b.conv(r, ConvLayer::new(8, 3).pad(1), "a.conv").unwrap();
    let a = b.batchnorm(a, "a.bn");
    let g = b.conv(r, ConvLayer::new(8, 1).groups(2), "g.conv").unwrap();
    let g = b.batchnorm(g, "g.bn");
    let p = b.pool(r, PoolKind::Max, 3, 1, 1, "p.pool").unwrap();
    let z = b.zeros_like(g, "z");
    let s = b.add(&[a, p, h, z, g], "sum").unwrap();
    let d = b.relu(s, "d.relu");
    let d = b
        .conv(d, ConvLayer::new(12, 3).stride(2).pad(1), "d.conv")
        .unwrap();
    let d = b.batchnorm(d, "d.bn");
    let q = b.pool(d, PoolKind::Avg, 3, 1, 1, "q.pool").unwrap();
    let e = b.relu(q, "e.relu");
    let gap = b.global_avg_pool(e, "gap");
    let l = b.linear(gap, 10, "fc").unwrap();
    b.finish(l).prune()
}

/// `n` synthetic CIFAR-10 records (label byte + 3,072 pixel bytes).
fn images(n: usize, seed: u64) -> CifarImages {
    let mut rng = Rng(seed);
    let mut bytes = Vec::with_capacity(n * 3073);
    for i in 0..n {
        bytes.push((i % 10) as u8);
        bytes.extend((0..3072).map(|_| (rng.next() >> 56) as u8));
    }
    CifarImages::from_bytes(&bytes, Dataset::Cifar10).expect("records")
}

fn close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale,
            "{what}[{k}]: GPU {a}, CPU {b} (scale {scale})"
        );
    }
}

/// Concatenation and crops (DARTS's factorized reduce, NB101's
/// truncation) between convs, BatchNorms and ReLUs.
fn concat_crop_net() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(32, 32, 3).unwrap();
    let c0 = b
        .conv(x, ConvLayer::new(6, 3).stride(2).pad(1), "stem.conv")
        .unwrap();
    let h = b.batchnorm(c0, "stem.bn");
    let r = b.relu(h, "fr.relu");
    let a = b
        .conv(r, ConvLayer::new(6, 1).stride(2), "fr.a.conv")
        .unwrap();
    let shifted = b.crop(r, 1, 1, "fr.shift").unwrap();
    let c = b
        .conv(shifted, ConvLayer::new(6, 1).stride(2), "fr.b.conv")
        .unwrap();
    let cat = b.concat(&[a, c, a], "fr.cat").unwrap();
    let f = b.first_channels(cat, 14, "trunc").unwrap();
    let f = b.batchnorm(f, "fr.bn");
    let f = b.relu(f, "last.relu");
    let f = b.global_avg_pool(f, "gap");
    let out = b.linear(f, 10, "fc").unwrap();
    b.finish(out).prune()
}

gpu_test!(one_step_gradients_match_the_cpu);
fn one_step_gradients_match_the_cpu(dev: &CudaDevice) {
    for g in [small_net(), concat_crop_net()] {
        one_step(dev, &g);
    }
}

fn one_step(dev: &dasnas::runtime::cuda::CudaDevice, g: &Graph) {
    let g = g.clone();
    let imgs = images(13, 1);
    let x: Tensor = imgs.first(13).expect("batch");
    let labels: Vec<u32> = (0..13).map(|i| (i * 7 % 10) as u32).collect();
    for seed in [0, 3] {
        let params = init_params(&g, seed);
        let mut want = params
            .iter()
            .map(|p| vec![0.0; p.len()])
            .collect::<Vec<_>>();
        let (ce, _) = cpu::forward_backward(&g, &params, &x, &labels, &mut want).expect("cpu");
        let (loss, got) = gradients(dev, &g, &params, &x, &labels).expect("gpu");
        assert!(
            (loss - ce.loss).abs() <= 1e-4 * ce.loss.abs().max(1.0),
            "{loss} vs {}",
            ce.loss
        );
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            close(a, b, 2e-3, &g.params[k].name);
        }
    }
}

fn config() -> SgdConfig {
    SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        schedule: LrSchedule::Cosine,
    }
}

gpu_test!(trained_scores_follow_the_cpu_trainer);
fn trained_scores_follow_the_cpu_trainer(dev: &CudaDevice) {
    let g = small_net();
    let imgs = images(96, 2);
    let scoring = imgs.first(24).expect("scoring batch");
    let pool: Vec<usize> = (24..96).collect();
    let steps = 8;
    let aug = Augment {
        crop: true,
        flip: true,
    };
    // CPU: train, then score with the trained weights.
    let mut params = init_params(&g, 5);
    let mut batches = LabelledBatches::new(&imgs, pool.clone(), 16, 5, aug).expect("batches");
    let st = dasnas::train::train_cpu(&g, &mut params, &mut batches, &config(), steps, |_, _| {
        Ok(())
    })
    .expect("cpu training");
    let cpu = dasnas::score_graph_with(
        &g,
        &params,
        &scoring,
        1.0,
        dasnas::exec::cpu::PassOptions {
            swap: true,
            ..Default::default()
        },
    )
    .expect("cpu score");
    // GPU, the same batches (same seed) and the same initial weights.
    let mut batches = LabelledBatches::new(&imgs, pool, 16, 5, aug).expect("batches");
    let data = TrainData::upload(dev, &mut batches, steps, config()).expect("upload");
    let mut scorer = GpuScorer::new(dev, &scoring, 2).expect("scorer");
    let out =
        dasnas::train::cuda::score_trained(&mut scorer, 3, |_| Ok(g.clone()), 5, 1.0, &data, true)
            .expect("gpu training");
    for (cell, gst) in &out {
        assert_eq!(gst.steps, steps);
        let (a, b) = (gst.final_loss.unwrap(), st.final_loss.unwrap());
        assert!((a - b).abs() <= 1e-2 * b.abs().max(1.0), "loss {a} vs {b}");
        assert_eq!(cell.scores.n_units, cpu.scores.n_units);
        let (a, b) = (cell.scores.wot.unwrap(), cpu.scores.wot.unwrap());
        assert!((a - b).abs() <= 1e-2 * b.abs(), "WOT {a} vs {b}");
        // SWAP of the trained network, from the same pass on both.
        let (a, b) = (
            cell.scores.swap.unwrap() as f64,
            cpu.scores.swap.unwrap() as f64,
        );
        assert!((a - b).abs() <= 0.02 * b, "SWAP {a} vs {b}");
    }
    // Three lanes' copies of one cell: bit-identical.
    assert!(out.iter().all(|(c, _)| c.scores == out[0].0.scores));
}

// 300 SGD steps take minutes under the emulation, which checks the same
// kernels against the CPU trainer step by step above.
gpu_only_test!(memorises_one_batch);
fn memorises_one_batch(dev: &CudaDevice) {
    let g = small_net();
    let imgs = images(16, 4);
    // A pool of exactly one batch: every step sees the same 16 images (in
    // another order, which batch statistics and a mean loss ignore).
    let mut batches =
        LabelledBatches::new(&imgs, (0..16).collect(), 16, 0, Augment::default()).expect("batches");
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        schedule: LrSchedule::Constant,
    };
    let data = TrainData::upload(dev, &mut batches, 300, cfg).expect("upload");
    let mut scorer = GpuScorer::new(dev, &imgs.first(16).expect("batch"), 1).expect("scorer");
    let out =
        dasnas::train::cuda::score_trained(&mut scorer, 1, |_| Ok(g.clone()), 0, 1.0, &data, false)
            .expect("training");
    let st = out[0].1;
    assert!(st.final_loss.unwrap() < 0.05, "loss {:?}", st.final_loss);
    assert_eq!(st.final_accuracy, Some(1.0));
}
