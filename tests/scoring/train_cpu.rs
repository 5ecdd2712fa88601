//! The CPU training executor and SGD loop: whole-graph gradients against
//! finite differences, memorising one batch, determinism across thread
//! counts, and scoring with given parameters.

use dasnas::net::{init::init_params, Graph, GraphBuilder};
use dasnas::ops::conv2d::ConvLayer;
use dasnas::ops::pool::PoolKind;
use dasnas::testing::Rng;
use dasnas::train::{cpu, LrSchedule, Sgd, SgdConfig};
use dasnas::{Shape, Tensor};

/// The inputs' distribution here: a sum of four uniforms, roughly normal.
trait Normalish {
    fn normalish(&mut self) -> f32;
}

impl Normalish for Rng {
    fn normalish(&mut self) -> f32 {
        (0..4)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
            .sum::<f32>()
            * 1.7
    }
}

/// A small graph with every op kind and every wiring case of the executor:
/// a ReLU read by two convs (fused) and by a pool (materialised), a node
/// read by several ops, an add of three inputs, `Zeros`, stride-2 convs,
/// max and average pools, GAP and a linear classifier.
fn tiny_graph(classes: usize) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(6, 6, 3).unwrap();
    let c0 = b.conv(x, ConvLayer::new(4, 3).pad(1), "stem.conv").unwrap();
    let h = b.batchnorm(c0, "stem.bn");
    let r = b.relu(h, "a.relu");
    let a = b.conv(r, ConvLayer::new(4, 3).pad(1), "a.conv").unwrap();
    let a = b.batchnorm(a, "a.bn");
    let g = b.conv(r, ConvLayer::new(4, 1).groups(2), "g.conv").unwrap();
    let g = b.batchnorm(g, "g.bn");
    let p = b.pool(r, PoolKind::Avg, 3, 1, 1, "p.pool").unwrap();
    let z = b.zeros_like(g, "z");
    let s = b.add(&[a, p, h, z], "sum").unwrap();
    let d = b.relu(s, "d.relu");
    let d = b
        .conv(d, ConvLayer::new(6, 3).stride(2).pad(1), "d.conv")
        .unwrap();
    let d = b.batchnorm(d, "d.bn");
    let sc = b.pool(s, PoolKind::Avg, 2, 2, 0, "sc.pool").unwrap();
    let sc = b.conv(sc, ConvLayer::new(6, 1), "sc.conv").unwrap();
    let gd = g_down(&mut b, g);
    let y = b.add(&[sc, d, gd], "res").unwrap();
    let y = b.relu(y, "last.relu");
    let y = b.pool(y, PoolKind::Max, 3, 1, 1, "mp").unwrap();
    let y = b.global_avg_pool(y, "gap");
    let out = b.linear(y, classes, "fc").unwrap();
    b.finish(out).prune()
}

fn g_down(b: &mut GraphBuilder, g: usize) -> usize {
    let r = b.relu(g, "gd.relu");
    let c = b
        .conv(r, ConvLayer::new(6, 3).stride(2).pad(1), "gd.conv")
        .unwrap();
    b.batchnorm(c, "gd.bn")
}

fn batch(rng: &mut Rng, n: usize, h: usize, w: usize, classes: u32) -> (Tensor, Vec<u32>) {
    let s = Shape::new(n, h, w, 3);
    let x = Tensor::from_vec(s, (0..s.len()).map(|_| rng.normalish()).collect()).unwrap();
    let labels = (0..n)
        .map(|_| (rng.next() % classes as u64) as u32)
        .collect();
    (x, labels)
}

/// Perturbs non-trivial BN parameters so γ/β gradients are generic.
fn perturbed_params(g: &Graph, rng: &mut Rng) -> Vec<Vec<f32>> {
    let mut p = init_params(g, 3);
    for (meta, v) in g.params.iter().zip(p.iter_mut()) {
        if meta.name.ends_with(".gamma") || meta.name.ends_with(".beta") {
            for e in v.iter_mut() {
                *e += 0.3 * rng.normalish();
            }
        }
    }
    p
}

/// Concatenation, spatial and channel crops (DARTS's factorized reduce,
/// NB101's truncation) between convs, BatchNorms and ReLUs.
fn concat_crop_graph(classes: usize) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(6, 6, 3).unwrap();
    let c0 = b.conv(x, ConvLayer::new(4, 3).pad(1), "stem.conv").unwrap();
    let h = b.batchnorm(c0, "stem.bn");
    let r = b.relu(h, "fr.relu");
    let a = b
        .conv(r, ConvLayer::new(4, 1).stride(2), "fr.a.conv")
        .unwrap();
    let shifted = b.crop(r, 1, 1, "fr.shift").unwrap();
    let c = b
        .conv(shifted, ConvLayer::new(4, 1).stride(2), "fr.b.conv")
        .unwrap();
    let cat = b.concat(&[a, c, a], "fr.cat").unwrap();
    let f = b.first_channels(cat, 10, "trunc").unwrap();
    let f = b.batchnorm(f, "fr.bn");
    let f = b.relu(f, "last.relu");
    let f = b.global_avg_pool(f, "gap");
    let out = b.linear(f, classes, "fc").unwrap();
    b.finish(out).prune()
}

#[test]
fn graph_gradients_match_finite_differences() {
    check_finite_differences(&tiny_graph(5), 21);
}

#[test]
fn concat_and_crop_gradients_match_finite_differences() {
    check_finite_differences(&concat_crop_graph(5), 23);
}

fn check_finite_differences(g: &Graph, seed: u64) {
    let g = g.clone();
    let mut rng = Rng(seed);
    let params = perturbed_params(&g, &mut rng);
    let (x, labels) = batch(&mut rng, 6, 6, 6, 5);
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![f32::NAN; p.len()]).collect();
    let (ce, _) = cpu::forward_backward(&g, &params, &x, &labels, &mut grads).unwrap();
    assert_eq!(ce, cpu::loss(&g, &params, &x, &labels).unwrap());
    let h = 1e-3f32;
    let mut checked = 0;
    for (k, meta) in g.params.iter().enumerate() {
        // A few entries of every tensor.
        let idx: Vec<usize> = (0..4)
            .map(|_| (rng.next() % meta.len as u64) as usize)
            .collect();
        for &i in &idx {
            let mut p = params.clone();
            p[k][i] += h;
            let lp = cpu::loss(&g, &p, &x, &labels).unwrap().loss;
            p[k][i] -= 2.0 * h;
            let lm = cpu::loss(&g, &p, &x, &labels).unwrap().loss;
            let fd = (lp - lm) / (2.0 * h as f64);
            let a = grads[k][i] as f64;
            assert!(
                (a - fd).abs() <= 2e-3 + 3e-2 * fd.abs(),
                "{}[{i}]: backward {a} vs finite difference {fd}",
                meta.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 4 * g.params.len());
    // The Zeros node passes no gradient: the g.* parameters only get the
    // gradient of their other path (nothing to check separately, but all
    // gradients must be finite).
    assert!(grads.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn sgd_memorises_one_batch() {
    let g = tiny_graph(4);
    let mut rng = Rng(22);
    let (x, labels) = batch(&mut rng, 16, 6, 6, 4);
    let mut params = init_params(&g, 1);
    let cfg = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.0,
        schedule: LrSchedule::Constant,
    };
    let mut sgd = Sgd::new(cfg, &params).unwrap();
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let first = cpu::loss(&g, &params, &x, &labels).unwrap().loss;
    let mut last = None;
    for _ in 0..300 {
        let (ce, _) = cpu::forward_backward(&g, &params, &x, &labels, &mut grads).unwrap();
        last = Some(ce);
        sgd.step(&mut params, &grads, cfg.lr).unwrap();
    }
    let end = cpu::loss(&g, &params, &x, &labels).unwrap();
    assert!(first > 1.0, "initial loss {first}");
    assert!(
        end.loss < 0.05,
        "loss after 300 steps {} (first {first}, last step {last:?})",
        end.loss
    );
    assert_eq!(end.correct, 16);
}

#[test]
fn nb201_gradients_are_the_same_on_one_and_two_threads() {
    let arch = dasnas::space::Arch::parse(
        dasnas::space::Space::NB201,
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
    )
    .unwrap();
    let g = arch.network().unwrap();
    let params = init_params(&g, 0);
    let mut rng = Rng(23);
    let (x, labels) = batch(&mut rng, 3, 32, 32, 10);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
            let (ce, _) = cpu::forward_backward(&g, &params, &x, &labels, &mut grads).unwrap();
            (ce, grads)
        })
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.0, b.0);
    assert!(a.1 == b.1, "gradients differ between 1 and 2 threads");
    assert!(a.0.loss.is_finite() && a.1.iter().flatten().any(|&v| v != 0.0));
    // Every parameter of the network lies on a path to the loss.
    for (meta, gr) in g.params.iter().zip(&a.1) {
        assert!(
            gr.iter().any(|&v| v != 0.0),
            "{} has a zero gradient",
            meta.name
        );
    }
}

#[test]
fn scoring_with_initial_params_equals_score_graph() {
    let arch = dasnas::space::Arch::parse(
        dasnas::space::Space::NB201,
        "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    )
    .unwrap();
    let g = arch.network().unwrap();
    let x = dasnas::data::gaussian_batch(8, 32, 4);
    let a = dasnas::score_graph(&g, &x, 4, 1.0).unwrap();
    let b = dasnas::score_graph_with_params(&g, &init_params(&g, 4), &x, 1.0).unwrap();
    assert_eq!(a.scores, b.scores);
    // Changed parameters change the scores.
    let mut p = init_params(&g, 4);
    for v in p.iter_mut().flatten() {
        *v *= -1.0;
    }
    let c = dasnas::score_graph_with_params(&g, &p, &x, 1.0).unwrap();
    assert_ne!(a.scores, c.scores);
}
