use super::pass::{passes, GradientDevice};
use super::*;
use crate::net::GraphBuilder;
use crate::ops::conv2d::ConvLayer;
use crate::tensor::{Shape, Tensor};
use crate::testing::Rng;
use crate::train::cpu::{gradient_pass, GradientRequest, Loss};

/// A small network with a skip, BatchNorm and a classifier: conv → BN →
/// ReLU → conv → BN, + the first BN, → ReLU → GAP → linear(3).
fn graph() -> crate::net::Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(5, 6, 2).unwrap();
    let c0 = b.conv(x, ConvLayer::new(4, 3).pad(1), "c0").unwrap();
    let n0 = b.batchnorm(c0, "bn0");
    b.mark_block(n0);
    let r0 = b.relu(n0, "r0");
    let c1 = b.conv(r0, ConvLayer::new(4, 3).pad(1), "c1").unwrap();
    let n1 = b.batchnorm(c1, "bn1");
    let s = b.add(&[n0, n1], "sum").unwrap();
    b.mark_block(s);
    let r1 = b.relu(s, "r1");
    let g = b.global_avg_pool(r1, "gap");
    let l = b.linear(g, 3, "fc").unwrap();
    b.finish(l)
}

fn batch(n: usize, seed: u64) -> Tensor {
    Rng(seed).tensor(Shape::new(n, 5, 6, 2))
}

#[test]
fn names_aliases_and_all_parse_and_unknown_names_are_refused() {
    let s = MeasureSet::parse("zico,nwot,grad_norm,zico").unwrap();
    let names: Vec<&str> = s.iter().map(|m| m.name).collect();
    assert_eq!(names, ["wot", "grad_norm", "zico"]);
    assert_eq!(s.stamp().as_deref(), Some("grad_norm,zico"));
    assert!(!s.wants_swap());
    assert_eq!(MeasureSet::parse("all").unwrap(), MeasureSet::all());
    assert!(MeasureSet::parse("swap").unwrap().wants_swap());
    assert_eq!(MeasureSet::parse("wot,params").unwrap().stamp(), None);
    let e = MeasureSet::parse("snip,synflo").unwrap_err().to_string();
    assert!(e.contains("synflo") && e.contains("grad_norm"), "{e}");
    let e = MeasureSet::parse("snip,,zico").unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    for m in ALL {
        assert_eq!(by_name(m.name).map(|x| x.name), Some(m.name));
        for a in m.aliases {
            assert_eq!(by_name(a).map(|x| x.name), Some(m.name));
        }
    }
}

#[test]
fn seeded_labels_are_in_range_and_depend_on_the_seed_only() {
    let a = seeded_labels(3, 200, 10);
    assert_eq!(a, seeded_labels(3, 200, 10));
    assert_ne!(a, seeded_labels(4, 200, 10));
    assert!(a.iter().all(|&l| l < 10));
    assert!((0..10).all(|c| a.contains(&c)));
}

/// Every measure from hand-written reductions of the passes' raw outputs.
#[test]
fn measures_are_the_reductions_of_their_passes() {
    let g = graph();
    let params = crate::net::init::init_params(&g, 7);
    let x = batch(6, 1);
    let labels = seeded_labels(7, 6, 3);
    let set = MeasureSet::all();
    let p = passes(&set, &g, &params, &x, &labels, 0, &GradientDevice::Cpu).unwrap();
    let values: std::collections::HashMap<_, _> = evaluate(&set, &p).unwrap().into_iter().collect();
    let layers = weight_layers(&g);
    assert_eq!(layers.len(), 3);
    let grads = p.grads.as_ref().unwrap();
    let f = |v: f32| f64::from(v);
    let l2: f64 = layers
        .iter()
        .map(|&(_, w)| params[w].iter().map(|&v| f(v) * f(v)).sum::<f64>().sqrt())
        .sum();
    let snip: f64 = layers
        .iter()
        .flat_map(|&(_, w)| {
            params[w]
                .iter()
                .zip(&grads[w])
                .map(|(&a, &b)| f(a * b).abs())
        })
        .sum();
    let close = |name: &str, want: f64| {
        let got = values[name].unwrap();
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
    };
    close("l2_norm", l2);
    close("snip", snip);
    // The gradients are those of a training step on the same batch.
    let mut step = params
        .iter()
        .map(|p| vec![0.0; p.len()])
        .collect::<Vec<_>>();
    crate::train::cpu::forward_backward(&g, &params, &x, &labels, &mut step).unwrap();
    assert_eq!(&step, grads);
    // zico's halves are the passes of the first 3 and the last 3 images.
    let [h1, _] = p.halves().unwrap();
    let first = Tensor {
        shape: Shape::new(3, 5, 6, 2),
        data: x.data[..3 * 60].to_vec(),
    };
    crate::train::cpu::forward_backward(&g, &params, &first, &labels[..3], &mut step).unwrap();
    assert_eq!(step, h1);
    for (k, v) in &values {
        assert!(v.is_some_and(f64::is_finite), "{k}: {v:?}");
    }
}

/// The input's gradient against central differences of the loss, and
/// one tap per layer, sample and channel.
#[test]
fn the_input_gradient_matches_finite_differences() {
    let g = graph();
    let params = crate::net::init::init_params(&g, 3);
    let x = batch(4, 2);
    let labels = vec![0u32, 2, 1, 2];
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let r = gradient_pass(
        &g,
        &params,
        &x,
        &labels,
        &mut grads,
        GradientRequest {
            loss: Loss::CrossEntropy,
            input_grad: true,
            layer_taps: true,
        },
    )
    .unwrap();
    let jac = r.input_grad.unwrap();
    assert_eq!(jac.shape, x.shape);
    let taps: Vec<usize> = r.layer_taps.iter().map(|(_, t)| t.len()).collect();
    assert_eq!(taps, [4 * 4, 4 * 4, 4 * 3]);
    let loss = |x: &Tensor| {
        crate::train::cpu::loss(&g, &params, x, &labels)
            .unwrap()
            .loss
    };
    let mut worst = 0f64;
    for i in (0..x.data.len()).step_by(5) {
        let h = 1e-2f32;
        let mut up = x.clone();
        up.data[i] += h;
        let mut down = x.clone();
        down.data[i] -= h;
        let fd = (loss(&up) - loss(&down)) / (2.0 * f64::from(h));
        let err = (fd - f64::from(jac.data[i])).abs() / fd.abs().max(1e-2);
        worst = worst.max(err);
    }
    assert!(worst < 5e-2, "worst relative difference {worst}");
}

/// The CUDA passes (the emulation here) give the CPU's measures: the
/// gradients are summed in another order, so up to rounding; zico's ratios
/// of nearly equal gradients amplify that rounding (docs/measures.md).
#[test]
fn cuda_passes_match_the_cpu_under_the_emulation() {
    let dev = crate::testing::emulated();
    let g = graph();
    let params = crate::net::init::init_params(&g, 5);
    let x = batch(8, 4);
    let labels = seeded_labels(5, 8, 3);
    let set = MeasureSet::all();
    let on = |d: &GradientDevice<'_>| -> Vec<(&str, Option<f64>)> {
        let p = passes(&set, &g, &params, &x, &labels, 0, d).unwrap();
        evaluate(&set, &p).unwrap()
    };
    let cpu = on(&GradientDevice::Cpu);
    let cuda = on(&GradientDevice::Cuda(dev));
    for ((name, a), (_, b)) in cpu.iter().zip(&cuda) {
        let (a, b) = (a.unwrap(), b.unwrap());
        let tol = match *name {
            "zico" => 1e-2,
            "epe_nas" => 1e-3,
            _ => 1e-4,
        };
        assert!(
            (a - b).abs() <= tol * a.abs().max(1e-3),
            "{name}: cpu {a} cuda {b}"
        );
    }
}

/// Blocks that read an earlier value besides their input (as a DARTS cell
/// reads the cell before last): stem → A → B with B = conv(A) + stem, and
/// a downsampling block C = pool(B) → conv.
fn two_input_graph() -> crate::net::Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(6, 6, 2).unwrap();
    let c0 = b.conv(x, ConvLayer::new(3, 3).pad(1), "c0").unwrap();
    let stem = b.batchnorm(c0, "bn0");
    b.mark_block(stem);
    let r = b.relu(stem, "ra");
    let ca = b.conv(r, ConvLayer::new(3, 3).pad(1), "ca").unwrap();
    let a = b.batchnorm(ca, "bna");
    b.mark_block(a);
    let r = b.relu(a, "rb");
    let cb = b.conv(r, ConvLayer::new(3, 1), "cb").unwrap();
    let nb = b.batchnorm(cb, "bnb");
    let bb = b.add(&[nb, stem], "b").unwrap();
    b.mark_block(bb);
    let p = b
        .pool(bb, crate::ops::pool::PoolKind::Avg, 2, 2, 0, "down")
        .unwrap();
    let cc = b.conv(p, ConvLayer::new(5, 1), "cc").unwrap();
    b.mark_block(cc);
    let r = b.relu(cc, "rc");
    let g = b.global_avg_pool(r, "gap");
    let l = b.linear(g, 3, "fc").unwrap();
    b.finish(l)
}

/// The forward visit sees every node but the input once, in order, a
/// fused ReLU as the ReLU of its source.
#[test]
fn the_forward_visit_sees_every_node_once() {
    let g = two_input_graph();
    let params = crate::net::init::init_params(&g, 2);
    let x = Rng(3).tensor(Shape::new(3, 6, 6, 2));
    let mut seen: Vec<(usize, Tensor)> = Vec::new();
    crate::train::cpu::forward_visit(&g, &params, &x, &mut |i, v| {
        seen.push((i, v.clone()));
        Ok(())
    })
    .unwrap();
    let mut ids: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..g.nodes.len()).collect::<Vec<_>>());
    let value = |j: usize| &seen.iter().find(|(i, _)| *i == j).unwrap().1;
    for (i, node) in g.nodes.iter().enumerate() {
        if node.op.spec().role() == crate::ops::Role::CountedRelu {
            let src = value(node.inputs[0]);
            let want: Vec<f32> = src.data.iter().map(|v| v.max(0.0)).collect();
            assert_eq!(value(i).data, want, "{}", node.name);
        }
    }
}

/// The part of a network between two blocks recomputes the later block
/// bit for bit from the earlier one (another input held), and its
/// vector-Jacobian product matches central differences.
#[test]
fn a_block_part_recomputes_its_block_and_differentiates_it() {
    let g = two_input_graph();
    let params = crate::net::init::init_params(&g, 4);
    let x = Rng(5).tensor(Shape::new(4, 6, 6, 2));
    let mut values = std::collections::HashMap::new();
    crate::train::cpu::forward_visit(&g, &params, &x, &mut |i, v| {
        values.insert(i, v.clone());
        Ok(())
    })
    .unwrap();
    let (a, b) = (g.blocks[1], g.blocks[2]);
    let (part, held) = g.between(a, b).unwrap();
    assert_eq!(held.len(), 1, "the stem is held");
    assert_eq!(held[0].1, g.blocks[0]);
    let constants: Vec<(usize, &Tensor)> = held.iter().map(|&(id, j)| (id, &values[&j])).collect();
    let seed = Rng(6).tensor(values[&b].shape);
    let gin =
        crate::train::cpu::vector_jacobian_product(&part, &params, &values[&a], &constants, &seed)
            .unwrap();
    assert_eq!(gin.shape, values[&a].shape);
    // The part's output, and Σ seed · output in f64.
    let run = |input: &Tensor| -> Tensor {
        let mut got = None;
        crate::train::cpu::forward_visit_with(&part, &params, input, &constants, &mut |i, v| {
            if i == part.output {
                got = Some(v.clone());
            }
            Ok(())
        })
        .unwrap();
        got.unwrap()
    };
    let f = |input: &Tensor| -> f64 {
        run(input)
            .data
            .iter()
            .zip(&seed.data)
            .map(|(&p, &q)| f64::from(p) * f64::from(q))
            .sum()
    };
    assert_eq!(run(&values[&a]).data, values[&b].data);
    let base = &values[&a];
    let mut worst = 0f64;
    for i in (0..base.data.len()).step_by(7) {
        let h = 1e-2f32;
        let mut up = base.clone();
        up.data[i] += h;
        let mut down = base.clone();
        down.data[i] -= h;
        let fd = (f(&up) - f(&down)) / (2.0 * f64::from(h));
        worst = worst.max((fd - f64::from(gin.data[i])).abs() / fd.abs().max(1e-1));
    }
    assert!(worst < 5e-2, "worst relative difference {worst}");
}

/// The covariance, the folded gradient product and the top singular value
/// against plain formulations.
#[test]
fn block_reductions_match_plain_formulations() {
    let x = Rng(8).tensor(Shape::new(3, 4, 2, 5));
    let cov = forward::channel_covariance(&x);
    let rows: Vec<&[f32]> = x.data.chunks(5).collect();
    let n = rows.len() as f64;
    for i in 0..5 {
        for j in 0..5 {
            let mi = rows.iter().map(|r| f64::from(r[i])).sum::<f64>() / n;
            let mj = rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n;
            let want = rows
                .iter()
                .map(|r| (f64::from(r[i]) - mi) * (f64::from(r[j]) - mj))
                .sum::<f64>()
                / n;
            assert!((cov[i * 5 + j] - want).abs() < 1e-12, "{i},{j}");
        }
    }
    // A 2×2 block at (y, x) of g_in, channel c, folds to channel
    // c·4 + i·2 + j (PixelUnshuffle's order).
    let g_in = Rng(9).tensor(Shape::new(2, 4, 6, 3));
    let g_out = Rng(10).tensor(Shape::new(2, 2, 3, 4));
    let (rows, cols, m) = forward::gradient_product(&g_in, &g_out).unwrap();
    assert_eq!((rows, cols), (12, 4));
    for c in 0..3 {
        for i in 0..2 {
            for j in 0..2 {
                for o in 0..4 {
                    let mut want = 0f64;
                    for b in 0..2 {
                        for y in 0..2 {
                            for xx in 0..3 {
                                let gi = g_in.data[((b * 4 + y * 2 + i) * 6 + xx * 2 + j) * 3 + c];
                                let go = g_out.data[((b * 2 + y) * 3 + xx) * 4 + o];
                                want += f64::from(gi) * f64::from(go);
                            }
                        }
                    }
                    want /= 12.0;
                    let got = m[(c * 4 + i * 2 + j) * cols + o];
                    assert!((got - want).abs() < 1e-12);
                }
            }
        }
    }
    // diag(3, 2) rotated: singular values 3 and 2.
    let (c, s) = (0.6f64, 0.8f64);
    let m = [3.0 * c, -2.0 * s, 3.0 * s, 2.0 * c, 0.0, 0.0];
    assert!((az_nas::top_singular_value(3, 2, &m) - 3.0).abs() < 1e-12);
    // MeCo: two identical channels and an independent one have
    // correlation eigenvalues {0, 1, 2}; a constant channel adds a 0 row.
    let map: Vec<f32> = (0..6)
        .flat_map(|p| {
            let a = [1.0f32, -1.0, 2.0, 0.5, -2.0, -0.5][p];
            let b = [1.0f32, 1.0, -1.0, -1.0, 0.0, 0.0][p];
            [a, a, 7.0, b]
        })
        .collect();
    let v = meco::min_eigenvalue(&map, 4, &[0, 1, 3]);
    assert!(v.abs() < 1e-12, "{v}");
    let v = meco::min_eigenvalue(&map, 4, &[2, 3]);
    assert!(v.abs() < 1e-12, "{v}");
}
