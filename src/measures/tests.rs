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
    let r0 = b.relu(n0, "r0");
    let c1 = b.conv(r0, ConvLayer::new(4, 3).pad(1), "c1").unwrap();
    let n1 = b.batchnorm(c1, "bn1");
    let s = b.add(&[n0, n1], "sum").unwrap();
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
    let p = passes(&set, &g, &params, &x, &labels, &GradientDevice::Cpu).unwrap();
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
        let p = passes(&set, &g, &params, &x, &labels, d).unwrap();
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
