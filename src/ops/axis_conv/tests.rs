//! Tests of the axis conv: the shape rule; the CPU passes against a naive
//! f64 reference from the definition (random odd sizes, outputs poisoned
//! with NaN) and against finite differences; the CUDA kernels (host
//! emulation, or a GPU) against the CPU twins bit for bit; and NDS's
//! `conv_7x1_1x7` block end to end through the scorers and trainers of
//! both backends, with the agreement rules of `tests/gpu/scorer.rs` and
//! `tests/gpu/train.rs`.

use super::cpu::{axis_conv_backward_input, axis_conv_backward_weight, axis_conv_forward};
use super::*;
use crate::net::{init::init_params, Graph, GraphBuilder};
use crate::ops::conv2d::Conv2dSpec;
use crate::ops::pool::PoolKind;
use crate::ops::{Backward, Cpu, CpuBwd, CpuFwd, CpuGrad, Cuda, CudaBwd, CudaFwd, CudaGrad};
use crate::ops::{Forward, OpSpec};
use crate::param::{InitScheme, ParamInit};
use crate::runtime::cuda::CudaDevice;
use crate::tensor::Tensor;
use crate::testing::Rng;
use proptest::prelude::*;

// ------------------------------------------------------------------ helpers

fn poisoned(s: Shape) -> Tensor {
    Tensor::filled(s, f32::NAN)
}

fn spec(axis: Axis, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> AxisConvSpec {
    AxisConvSpec {
        cin,
        cout,
        axis,
        k,
        stride,
        pad,
    }
}

/// `|got - want| <= rtol * scale + atol` elementwise, `scale` the sum of
/// the absolute values of the terms (what a sum's rounding error scales
/// with). NaN fails.
fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= rtol * s + 1e-30,
            "{what}: element {i}: got {g}, want {w} (err {err:e}, scale {s:e})"
        );
    }
}

/// Bit-for-bit equality, reporting the first difference.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} of {}: got {} ({:#x}), want {} ({:#x})",
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// The input pixel (y, x) tap `t` of output pixel (oy, ox) reads, or
/// `None` for padding: straight from the definition, on NHWC coordinates.
fn source(s: &AxisConvSpec, xs: Shape, oy: usize, ox: usize, t: usize) -> Option<(usize, usize)> {
    let along = |o: usize, len: usize| {
        let q = (o * s.stride + t) as isize - s.pad as isize;
        (q >= 0 && (q as usize) < len).then_some(q as usize)
    };
    match s.axis {
        Axis::H => along(oy, xs.h).map(|y| (y, ox)),
        Axis::W => along(ox, xs.w).map(|x| (oy, x)),
    }
}

/// The naive passes in f64: forward (value, Σ|terms|) per output element;
/// for `dy`, the input gradient (masked by the ReLU when `relu`) and the
/// weight gradient, each with its Σ|terms|.
struct Reference {
    y: Vec<f64>,
    y_mag: Vec<f64>,
    dx: Vec<f64>,
    dx_mag: Vec<f64>,
    dw: Vec<f64>,
    dw_mag: Vec<f64>,
}

fn reference(s: &AxisConvSpec, x: &Tensor, w: &[f32], dy: &[f32], relu: bool) -> Reference {
    let xs = x.shape;
    let os = s.out_shape(xs).unwrap();
    let mut r = Reference {
        y: vec![0.0; os.len()],
        y_mag: vec![0.0; os.len()],
        dx: vec![0.0; xs.len()],
        dx_mag: vec![0.0; xs.len()],
        dw: vec![0.0; w.len()],
        dw_mag: vec![0.0; w.len()],
    };
    let xi = |n: usize, y: usize, xx: usize, c: usize| ((n * xs.h + y) * xs.w + xx) * xs.c + c;
    for n in 0..os.n {
        for oy in 0..os.h {
            for ox in 0..os.w {
                for co in 0..s.cout {
                    let oi = ((n * os.h + oy) * os.w + ox) * os.c + co;
                    let d = f64::from(dy[oi]);
                    for t in 0..s.k {
                        let Some((y, xx)) = source(s, xs, oy, ox, t) else {
                            continue;
                        };
                        for ci in 0..s.cin {
                            let raw = f64::from(x.data[xi(n, y, xx, ci)]);
                            let xv = if relu { raw.max(0.0) } else { raw };
                            let wi = (t * s.cin + ci) * s.cout + co;
                            let wv = f64::from(w[wi]);
                            r.y[oi] += xv * wv;
                            r.y_mag[oi] += (xv * wv).abs();
                            r.dx[xi(n, y, xx, ci)] += d * wv;
                            r.dx_mag[xi(n, y, xx, ci)] += (d * wv).abs();
                            r.dw[wi] += xv * d;
                            r.dw_mag[wi] += (xv * d).abs();
                        }
                    }
                }
            }
        }
    }
    if relu {
        for (g, &v) in r.dx.iter_mut().zip(&x.data) {
            if v <= 0.0 {
                *g = 0.0;
            }
        }
    }
    r
}

/// Runs the three CPU passes on NaN-poisoned outputs and checks them
/// against the reference.
fn check_cpu(s: AxisConvSpec, xs: Shape, seed: u64, relu: bool) {
    let mut rng = Rng(seed);
    let x = rng.tensor(xs);
    let w = rng.vec(s.weight_len());
    let os = s.out_shape(xs).unwrap();
    let dy = rng.vec(os.len());
    let r = reference(&s, &x, &w, &dy, relu);
    let what = format!("{s:?} on {xs} relu={relu}");

    let mut y = poisoned(os);
    axis_conv_forward(&s, &x, &w, &mut y, relu).unwrap();
    assert_close(&format!("forward {what}"), &y.data, &r.y, &r.y_mag, 1e-5);

    let dyt = Tensor::from_vec(os, dy).unwrap();
    let mut dx = poisoned(xs);
    axis_conv_backward_input(&s, &dyt, &w, &mut dx, relu.then_some(&x)).unwrap();
    assert_close(&format!("dx {what}"), &dx.data, &r.dx, &r.dx_mag, 1e-5);

    let mut dw = vec![f32::NAN; w.len()];
    axis_conv_backward_weight(&s, &x, &dyt, &mut dw, relu).unwrap();
    assert_close(&format!("dw {what}"), &dw, &r.dw, &r.dw_mag, 2e-5);
}

/// A spec and an input shape with at least one output position.
fn case() -> impl Strategy<Value = (AxisConvSpec, Shape)> {
    (
        prop::bool::ANY,
        1usize..=5,
        1usize..=5,
        1usize..=7,
        1usize..=3,
        0usize..=8,
        (1usize..=3, 1usize..=9, 1usize..=9),
    )
        .prop_filter_map(
            "output shorter than 1",
            |(along_h, cin, cout, k, stride, pad, (n, h, w))| {
                let axis = if along_h { Axis::H } else { Axis::W };
                let s = spec(axis, cin, cout, k, stride, pad.min(k + 1));
                let xs = Shape::new(n, h, w, cin);
                s.out_shape(xs).ok().map(|_| (s, xs))
            },
        )
}

// --------------------------------------------------------------- shape rule

fn err_msg(r: Result<Shape>) -> String {
    match r {
        Err(Error::Shape(m)) => m,
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn shape_rule_of_nds_conv_7x1_1x7() {
    let x = Shape::new(4, 32, 32, 16);
    for stride in [1, 2] {
        let w = spec(Axis::W, 16, 16, 7, stride, 3);
        let h = spec(Axis::H, 16, 16, 7, stride, 3);
        let mid = w.out_shape(x).unwrap();
        let o = 32 / stride;
        assert_eq!(mid, Shape::new(4, 32, o, 16), "1x7 stride {stride}");
        assert_eq!(h.out_shape(mid).unwrap(), Shape::new(4, o, o, 16));
    }
    // Odd sizes, floor as PyTorch: (9 + 2·1 − 4) / 2 + 1 = 4.
    let s = spec(Axis::H, 3, 5, 4, 2, 1);
    assert_eq!(
        s.out_shape(Shape::new(2, 9, 7, 3)).unwrap(),
        Shape::new(2, 4, 7, 5)
    );
    // A window entirely in the padding is allowed (PyTorch allows it).
    let s = spec(Axis::W, 1, 1, 2, 1, 3);
    assert_eq!(
        s.out_shape(Shape::new(1, 1, 1, 1)).unwrap(),
        Shape::new(1, 1, 6, 1)
    );
    assert_eq!(s.weight_len(), 2);
    let s = spec(Axis::W, 6, 8, 7, 1, 3);
    assert_eq!(s.weight_len(), 7 * 6 * 8);
    assert_eq!(s.fan_in(), 42);
    assert_eq!(
        OpSpec::flops(&s, &[Shape::new(1, 5, 5, 6)], Shape::new(1, 5, 5, 8)),
        2 * 5 * 5 * 8 * 42
    );
}

#[test]
fn shape_errors_name_the_bad_value() {
    let ok = spec(Axis::W, 4, 4, 7, 1, 3);
    let x = Shape::new(2, 5, 5, 4);
    for (s, shape, needle) in [
        (AxisConvSpec { k: 0, ..ok }, x, "k must"),
        (AxisConvSpec { stride: 0, ..ok }, x, "stride"),
        (AxisConvSpec { cin: 0, ..ok }, x, "cin"),
        (AxisConvSpec { cout: 0, ..ok }, x, "cout"),
        (ok, Shape::new(2, 5, 5, 3), "cin = 4"),
        (ok, Shape::new(0, 5, 5, 4), "n = 0"),
        (ok, Shape::new(2, 0, 5, 4), "h = 0"),
        // 1 + 2·0 < 7: along W the error names w, along H h.
        (
            AxisConvSpec { pad: 0, ..ok },
            Shape::new(2, 9, 1, 4),
            "input w = 1",
        ),
        (
            AxisConvSpec {
                pad: 0,
                axis: Axis::H,
                ..ok
            },
            Shape::new(2, 1, 9, 4),
            "input h = 1",
        ),
        (
            AxisConvSpec {
                pad: usize::MAX / 2,
                ..ok
            },
            x,
            "overflows",
        ),
        (
            AxisConvSpec {
                cin: 1 << 40,
                cout: 1 << 40,
                ..ok
            },
            Shape::new(1, 1, 1, 1 << 40),
            "overflows",
        ),
    ] {
        let m = err_msg(s.out_shape(shape));
        assert!(
            m.contains(needle),
            "{s:?} on {shape}: `{m}` lacks `{needle}`"
        );
        // Through the op interface too.
        assert!(OpSpec::out_shape(&s, &[shape]).is_err());
    }
    assert!(err_msg(OpSpec::out_shape(&ok, &[x, x])).contains("one input"));
}

#[test]
fn params_are_drawn_like_the_conv2d() {
    let s = spec(Axis::H, 6, 8, 7, 1, 3);
    let conv = Conv2dSpec {
        kh: 7,
        kw: 1,
        ..Conv2dSpec::new(6, 8, 1, 1, 3)
    };
    for scheme in [InitScheme::Default, InitScheme::Naswot] {
        let p = OpSpec::params(&s, scheme);
        let c = OpSpec::params(&conv, scheme);
        assert_eq!(p, c, "{scheme:?}");
    }
    assert!(matches!(
        OpSpec::params(&s, InitScheme::Default)[0].init,
        ParamInit::Uniform { bound } if (bound - (1.0 / 42f32.sqrt())).abs() < 1e-7
    ));
    // The builder adds it like any op, its weight named after the node.
    let mut b = GraphBuilder::new();
    let x = b.input(5, 5, 6).unwrap();
    let y = b.op(s, &[x], "c7x1").unwrap();
    assert_eq!(b.shape(y), Shape::new(1, 5, 5, 8));
    let e = b.op(spec(Axis::W, 5, 8, 7, 1, 3), &[x], "bad").unwrap_err();
    assert!(matches!(e.root(), Error::Shape(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("`bad`") && m.contains("cin = 5"), "{m}");
    let g = b.finish(y);
    assert_eq!(g.params[0].name, "c7x1.weight");
    assert_eq!(g.params[0].len, 7 * 6 * 8);
}

// ----------------------------------------------------------- CPU correctness

proptest! {
    #![proptest_config(crate::ops::tests::proptest_config(48))]

    #[test]
    fn cpu_passes_match_the_reference((s, xs) in case(), seed in any::<u64>(), relu in any::<bool>()) {
        check_cpu(s, xs, seed, relu);
    }
}

/// The NDS shapes the proptest's ranges reach only by chance: k = 7, pad
/// 3, both axes, stride 1 and 2, odd and even sizes, with and without ReLU.
#[test]
fn nds_shapes_match_the_reference() {
    let mut seed = 11;
    for axis in [Axis::H, Axis::W] {
        for stride in [1, 2] {
            for (n, h, w, c) in [(2, 8, 8, 4), (1, 9, 7, 3), (3, 3, 5, 6)] {
                seed += 1;
                let s = spec(axis, c, c + 1, 7, stride, 3);
                check_cpu(s, Shape::new(n, h, w, c), seed, seed % 2 == 0);
            }
        }
    }
}

/// With stride 1 and no padding the op is the conv2d with a `1 × k` (or
/// `k × 1`) kernel on the same weights: the layouts agree.
#[test]
fn unpadded_unit_stride_equals_the_conv2d() {
    let mut rng = Rng(5);
    for (axis, kh, kw) in [(Axis::H, 3, 1), (Axis::W, 1, 3)] {
        let s = spec(axis, 5, 7, 3, 1, 0);
        let conv = Conv2dSpec {
            kh,
            kw,
            ..Conv2dSpec::new(5, 7, 1, 1, 0)
        };
        let x = rng.tensor(Shape::new(2, 6, 5, 5));
        let w = rng.vec(s.weight_len());
        let os = s.out_shape(x.shape).unwrap();
        assert_eq!(conv.out_shape(x.shape).unwrap(), os);
        let mut a = poisoned(os);
        let mut b = poisoned(os);
        axis_conv_forward(&s, &x, &w, &mut a, false).unwrap();
        crate::ops::conv2d::cpu::conv2d_forward(&conv, &x, &w, &mut b).unwrap();
        for (i, (p, q)) in a.data.iter().zip(&b.data).enumerate() {
            // The conv2d may use FMAs: a few ulps of 15 terms of size ≤ 1.
            assert!((p - q).abs() <= 1e-5, "{axis:?} element {i}: {p} vs {q}");
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let s = spec(Axis::W, 6, 5, 7, 2, 3);
    let mut rng = Rng(9);
    let x = rng.tensor(Shape::new(5, 7, 9, 6));
    let w = rng.vec(s.weight_len());
    let os = s.out_shape(x.shape).unwrap();
    let dy = Tensor::from_vec(os, rng.vec(os.len())).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut y = poisoned(os);
            axis_conv_forward(&s, &x, &w, &mut y, true).unwrap();
            let mut dx = poisoned(x.shape);
            axis_conv_backward_input(&s, &dy, &w, &mut dx, Some(&x)).unwrap();
            let mut dw = vec![f32::NAN; w.len()];
            axis_conv_backward_weight(&s, &x, &dy, &mut dw, true).unwrap();
            (y.data, dx.data, dw)
        })
    };
    let (a, b) = (run(1), run(3));
    assert_bits("forward", &a.0, &b.0);
    assert_bits("dx", &a.1, &b.1);
    assert_bits("dw", &a.2, &b.2);
}

/// Central differences of `L = Σ y · r` (r random) against the analytic
/// gradients, in a tiny case with inputs away from the ReLU's kink.
#[test]
fn gradients_match_finite_differences() {
    for (s, relu) in [
        (spec(Axis::W, 2, 3, 3, 2, 1), true),
        (spec(Axis::H, 3, 2, 4, 1, 2), false),
    ] {
        let xs = Shape::new(2, 5, 4, s.cin);
        let mut rng = Rng(21);
        let mut x = rng.tensor(xs);
        for v in &mut x.data {
            // |v| in [0.2, 1): a step of 1e-2 never crosses 0.
            *v = v.signum() * (0.2 + 0.8 * v.abs());
        }
        let w = rng.vec(s.weight_len());
        let os = s.out_shape(xs).unwrap();
        let r = rng.vec(os.len());
        let loss = |x: &Tensor, w: &[f32]| {
            let mut y = poisoned(os);
            axis_conv_forward(&s, x, w, &mut y, relu).unwrap();
            y.data
                .iter()
                .zip(&r)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum::<f64>()
        };
        let dy = Tensor::from_vec(os, r.clone()).unwrap();
        let mut dx = poisoned(xs);
        axis_conv_backward_input(&s, &dy, &w, &mut dx, relu.then_some(&x)).unwrap();
        let mut dw = vec![f32::NAN; w.len()];
        axis_conv_backward_weight(&s, &x, &dy, &mut dw, relu).unwrap();
        let eps = 1e-2f32;
        let check = |what: &str, i: usize, analytic: f32, plus: f64, minus: f64| {
            let numeric = (plus - minus) / (2.0 * f64::from(eps));
            assert!(
                (numeric - f64::from(analytic)).abs() <= 1e-3 * (1.0 + numeric.abs()),
                "{s:?} {what}[{i}]: numeric {numeric}, analytic {analytic}"
            );
        };
        for i in 0..x.data.len() {
            let mut xp = x.clone();
            xp.data[i] += eps;
            let mut xm = x.clone();
            xm.data[i] -= eps;
            check("dx", i, dx.data[i], loss(&xp, &w), loss(&xm, &w));
        }
        for i in 0..w.len() {
            let mut wp = w.clone();
            wp[i] += eps;
            let mut wm = w.clone();
            wm[i] -= eps;
            check("dw", i, dw[i], loss(&x, &wp), loss(&x, &wm));
        }
    }
}

/// The `Backward<Cpu>` impl: the input gradient is written, or added to
/// what is there (`acc + g` in f32), masked by the fused ReLU; the weight
/// gradient is added to the zeroed parameter gradient.
#[test]
fn cpu_backward_impl_accumulates_and_masks() {
    let s = spec(Axis::H, 3, 4, 3, 2, 1);
    let mut rng = Rng(33);
    let x = rng.tensor(Shape::new(2, 7, 3, 3));
    let w = rng.vec(s.weight_len());
    let os = s.out_shape(x.shape).unwrap();
    let dy = Tensor::from_vec(os, rng.vec(os.len())).unwrap();
    let mut g = poisoned(x.shape);
    axis_conv_backward_input(&s, &dy, &w, &mut g, Some(&x)).unwrap();
    let mut dw = vec![f32::NAN; w.len()];
    axis_conv_backward_weight(&s, &x, &dy, &mut dw, true).unwrap();
    for accumulate in [false, true] {
        let prior = rng.tensor(x.shape);
        let mut target = if accumulate {
            prior.clone()
        } else {
            poisoned(x.shape)
        };
        let mut dparam = vec![0.0f32; w.len()];
        let mut a = CpuBwd {
            inputs: vec![Some(&x)],
            in_shapes: vec![x.shape],
            params: vec![&w],
            saved: None,
            dy: &dy,
            dx: vec![Some(CpuGrad {
                t: &mut target,
                accumulate,
            })],
            dparams: vec![&mut dparam],
            relu_input: true,
        };
        Backward::<Cpu>::backward(&s, &mut a).unwrap();
        let want: Vec<f32> = if accumulate {
            prior.data.iter().zip(&g.data).map(|(p, v)| p + v).collect()
        } else {
            g.data.clone()
        };
        assert_bits(&format!("dx accumulate={accumulate}"), &target.data, &want);
        assert_bits("dw", &dparam, &dw);
    }
}

// ------------------------------------------------------- CUDA = CPU, bitwise

/// One case of the bitwise comparison.
#[derive(Clone, Copy, Debug)]
struct GpuCase {
    spec: AxisConvSpec,
    input: Shape,
    relu: bool,
    accumulate: bool,
}

/// Both backends through the op interface (`Forward` / `Backward` impls,
/// hence the launch functions): forward output, input gradient (written or
/// accumulated onto `prior`, masked when `relu`) and weight gradient.
/// Every device output is poisoned first.
fn compare_backends(dev: &CudaDevice, c: GpuCase, seed: u64) {
    let s = c.spec;
    let what = format!("{c:?}");
    let mut rng = Rng(seed);
    let x = rng.tensor(c.input);
    let w = rng.vec(s.weight_len());
    let os = s.out_shape(c.input).unwrap();
    let dy = Tensor::from_vec(os, rng.vec(os.len())).unwrap();
    let prior = rng.tensor(c.input);

    // CPU.
    let mut y = poisoned(os);
    {
        let mut a = CpuFwd {
            inputs: vec![&x],
            out: &mut y,
            params: vec![&w],
            relu_input: c.relu,
            in_place: None,
            partials_out: None,
            partials_in: None,
            saved: None,
            conv: Default::default(),
        };
        Forward::<Cpu>::forward(&s, &mut a).unwrap();
    }
    let mut dx = if c.accumulate {
        prior.clone()
    } else {
        poisoned(c.input)
    };
    let mut dw = vec![0.0f32; w.len()];
    {
        let mut a = CpuBwd {
            inputs: vec![Some(&x)],
            in_shapes: vec![c.input],
            params: vec![&w],
            saved: None,
            dy: &dy,
            dx: vec![Some(CpuGrad {
                t: &mut dx,
                accumulate: c.accumulate,
            })],
            dparams: vec![&mut dw],
            relu_input: c.relu,
        };
        Backward::<Cpu>::backward(&s, &mut a).unwrap();
    }

    // CUDA.
    let xd = dev.upload(&x.data).unwrap();
    let wd = dev.upload(&w).unwrap();
    let dyd = dev.upload(&dy.data).unwrap();
    let mut yd = dev.upload(&vec![f32::NAN; os.len()]).unwrap();
    {
        let mut a = CudaFwd {
            dev,
            inputs: vec![(xd.as_view(), c.input)],
            out: yd.as_view_mut(),
            out_shape: os,
            params: vec![wd.as_view()],
            relu_input: c.relu,
            in_place: None,
            partials_out: None,
            partials_in: None,
            saved: None,
            pack: None,
        };
        Forward::<Cuda>::forward(&s, &mut a).unwrap();
    }
    let dx_init = if c.accumulate {
        prior.data.clone()
    } else {
        vec![f32::NAN; c.input.len()]
    };
    let mut dxd = dev.upload(&dx_init).unwrap();
    let mut dwd = dev.upload(&vec![f32::NAN; w.len()]).unwrap();
    // More scratch than needed (the plan sizes it for its largest node),
    // poisoned.
    let (need, _) = OpSpec::backward_scratch(&s, c.input).unwrap();
    assert_eq!(need, c.input.n * s.weight_len());
    let mut scratch = dev.upload(&vec![f32::NAN; need + 5]).unwrap();
    {
        let mut a = CudaBwd {
            dev,
            inputs: vec![Some(xd.as_view())],
            in_shapes: vec![c.input],
            params: vec![wd.as_view()],
            saved: None,
            dy: dyd.as_view(),
            dx: vec![Some(CudaGrad {
                dx: dxd.as_view_mut(),
                accumulate: c.accumulate,
            })],
            dparams: vec![dwd.as_view_mut()],
            relu_input: c.relu,
            scratch32: Some(scratch.as_view_mut()),
            scratch64: None,
        };
        Backward::<Cuda>::backward(&s, &mut a).unwrap();
    }
    assert_bits(
        &format!("forward {what}"),
        &dev.download(&yd).unwrap(),
        &y.data,
    );
    assert_bits(
        &format!("dx {what}"),
        &dev.download(&dxd).unwrap(),
        &dx.data,
    );
    assert_bits(&format!("dw {what}"), &dev.download(&dwd).unwrap(), &dw);
}

gpu_test!(cuda_matches_the_cpu_bit_for_bit);
fn cuda_matches_the_cpu_bit_for_bit(dev: &CudaDevice) {
    let mut seed = 100;
    for axis in [Axis::H, Axis::W] {
        for stride in [1, 2] {
            for (n, h, w, cin, cout, k, pad) in [
                (3, 7, 5, 3, 5, 7, 3),
                (2, 9, 9, 4, 4, 3, 1),
                (1, 5, 6, 1, 7, 4, 0),
                (2, 3, 3, 5, 2, 2, 3), // windows entirely in the padding
            ] {
                seed += 1;
                let case = GpuCase {
                    spec: spec(axis, cin, cout, k, stride, pad),
                    input: Shape::new(n, h, w, cin),
                    relu: seed % 2 == 0,
                    accumulate: seed % 3 != 0,
                };
                compare_backends(dev, case, seed);
            }
        }
    }
    // Every combination of ReLU and accumulation once more on one shape.
    for relu in [false, true] {
        for accumulate in [false, true] {
            let case = GpuCase {
                spec: spec(Axis::W, 3, 3, 7, 2, 3),
                input: Shape::new(2, 5, 11, 3),
                relu,
                accumulate,
            };
            compare_backends(dev, case, 7);
        }
    }
}

gpu_test!(cuda_rejects_bad_lengths_before_launching);
fn cuda_rejects_bad_lengths_before_launching(dev: &CudaDevice) {
    use super::cuda::{
        axis_conv_backward_input as bwd_input, axis_conv_backward_weight as bwd_weight,
        axis_conv_forward as fwd, AxisConvInput,
    };
    let s = spec(Axis::H, 3, 4, 3, 1, 1);
    let xs = Shape::new(2, 5, 4, 3);
    let os = s.out_shape(xs).unwrap();
    let (xl, wl, yl) = (xs.len(), s.weight_len(), os.len());
    let buf = |len: usize| dev.upload(&vec![f32::NAN; len]).unwrap();
    // Each output still holds its poison after an error: nothing ran.
    let untouched = |b: &crate::runtime::cuda::DeviceBuffer<f32>| {
        dev.download(b).unwrap().iter().all(|v| v.is_nan())
    };

    // Forward: wrong x, w or y length, or an input shape the spec rejects.
    for (x_len, w_len, y_len, shape) in [
        (xl + 1, wl, yl, xs),
        (xl, wl - 1, yl, xs),
        (xl, wl, yl + 4, xs),
        (xl, wl, yl, Shape::new(2, 5, 4, 2)),
    ] {
        let (x, w, mut y) = (buf(x_len), buf(w_len), buf(y_len));
        let xv = x.as_view();
        let input = AxisConvInput {
            x: &xv,
            shape,
            relu: false,
        };
        let r = fwd(dev, &s, input, &w.as_view(), &mut y.as_view_mut());
        assert!(
            matches!(r, Err(Error::Shape(_))),
            "{x_len} {w_len} {y_len}: {r:?}"
        );
        assert!(untouched(&y));
    }
    // Input gradient: wrong dy, w, dx or mask length.
    for (dy_len, w_len, dx_len, mask_len) in [
        (yl - 1, wl, xl, xl),
        (yl, wl + 1, xl, xl),
        (yl, wl, xl - 3, xl),
        (yl, wl, xl, xl + 1),
    ] {
        let (dy, w, mut dx, mask) = (buf(dy_len), buf(w_len), buf(dx_len), buf(mask_len));
        let mv = mask.as_view();
        let r = bwd_input(
            dev,
            &s,
            xs,
            &dy.as_view(),
            &w.as_view(),
            &mut CudaGrad {
                dx: dx.as_view_mut(),
                accumulate: true,
            },
            Some(&mv),
        );
        assert!(matches!(r, Err(Error::Shape(_))), "{r:?}");
        assert!(untouched(&dx));
    }
    // Weight gradient: wrong x, dy, dw or scratch length.
    for (x_len, dy_len, dw_len, part_len) in [
        (xl - 1, yl, wl, 2 * wl),
        (xl, yl + 1, wl, 2 * wl),
        (xl, yl, wl + 1, 2 * wl),
        (xl, yl, wl, 2 * wl - 1),
        (xl, yl, wl, 2 * wl + 1),
    ] {
        let (x, dy, mut dw, mut part) = (buf(x_len), buf(dy_len), buf(dw_len), buf(part_len));
        let xv = x.as_view();
        let input = AxisConvInput {
            x: &xv,
            shape: xs,
            relu: true,
        };
        let r = bwd_weight(
            dev,
            &s,
            input,
            &dy.as_view(),
            &mut dw.as_view_mut(),
            &mut part.as_view_mut(),
        );
        assert!(matches!(r, Err(Error::Shape(_))), "{r:?}");
        assert!(untouched(&dw) && untouched(&part));
    }
}

// ------------------------------------------------------------- end to end

/// A small network with NDS's `conv_7x1_1x7` at stride 1 and 2: an
/// average pool to 8×8, an axis-conv stem and BN, then
/// * block a: ReLU (read only by the axis conv: fused) → AxisConv(W, 7, 1,
///   3) → AxisConv(H, 7, 1, 3) → BN, added to the stem;
/// * block b: ReLU (also read by a max pool, so stored for it; the axis
///   conv still applies it as it loads the ReLU's input) → AxisConv(W, 7,
///   2, 3) to 8 channels → AxisConv(H, 7, 2, 3) back to 6 → BN, added to
///   the pooled ReLU;
/// * ReLU → global average pool → linear to 10 classes.
fn nds_net() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(32, 32, 3).unwrap();
    let p = b.pool(x, PoolKind::Avg, 4, 4, 0, "down").unwrap();
    let stem = b
        .op(spec(Axis::H, 3, 6, 3, 1, 1), &[p], "stem.conv")
        .unwrap();
    let stem = b.batchnorm(stem, "stem.bn");
    let r = b.relu(stem, "a.relu");
    let a = b
        .op(spec(Axis::W, 6, 6, 7, 1, 3), &[r], "a.conv_1x7")
        .unwrap();
    let a = b
        .op(spec(Axis::H, 6, 6, 7, 1, 3), &[a], "a.conv_7x1")
        .unwrap();
    let a = b.batchnorm(a, "a.bn");
    let s1 = b.add(&[a, stem], "a.sum").unwrap();
    let r = b.relu(s1, "b.relu");
    let c = b
        .op(spec(Axis::W, 6, 8, 7, 2, 3), &[r], "b.conv_1x7")
        .unwrap();
    let c = b
        .op(spec(Axis::H, 8, 6, 7, 2, 3), &[c], "b.conv_7x1")
        .unwrap();
    let c = b.batchnorm(c, "b.bn");
    let m = b.pool(r, PoolKind::Max, 3, 2, 1, "b.pool").unwrap();
    let s2 = b.add(&[c, m], "b.sum").unwrap();
    let r = b.relu(s2, "out.relu");
    let g = b.global_avg_pool(r, "gap");
    let l = b.linear(g, 10, "fc").unwrap();
    b.finish(l).prune()
}

#[test]
fn nds_net_plans_fuse_the_relu_into_the_axis_conv() {
    let g = nds_net();
    let plan = crate::exec::plan::Plan::new(&g, 4).unwrap();
    let fused: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            crate::exec::plan::Step::Node(n) if n.relu_input => Some(g.nodes[n.node].name.as_str()),
            _ => None,
        })
        .collect();
    // Both blocks' first axis convs apply their ReLU on load (block b's
    // ReLU is also stored, for the max pool); the stem reads a pool.
    assert_eq!(fused, ["a.conv_1x7", "b.conv_1x7"]);
    assert_eq!(
        g.n_units(),
        (8 * 8 * 6 * 2 + 4 * 4 * 6) as u64,
        "three counted ReLUs"
    );
}

/// |H_gpu − H_cpu| per entry, at most `frac` of N_A (`tests/gpu/scorer.rs`).
fn assert_close_hamming(gpu: &[u64], cpu: &[u64], n_units: u64, frac: f64, label: &str) {
    assert_eq!(gpu.len(), cpu.len());
    let worst = gpu
        .iter()
        .zip(cpu)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(
        worst as f64 <= frac * n_units as f64,
        "{label}: H differs by up to {worst} of N_A = {n_units}"
    );
}

gpu_test!(nds_block_scores_agree_with_the_cpu);
fn nds_block_scores_agree_with_the_cpu(dev: &CudaDevice) {
    use crate::exec::cuda::executor::GpuScorer;
    let g = nds_net();
    let b = 8;
    let batch = crate::data::gaussian_batch(b, 32, 3);
    let mut scorer = GpuScorer::new(dev, &batch, 2).unwrap();
    for seed in [0u64, 5] {
        // K_H entry by entry (the rule of the all-paths graph).
        let params = init_params(&g, seed);
        let (want, _) = crate::exec::cpu::relu_codes(&g, &params, &batch).unwrap();
        let got = scorer.relu_codes(&g, seed).unwrap();
        assert_eq!(got.n_units, want.n_units);
        assert_eq!(got.n_units, g.n_units());
        assert_close_hamming(&got.hamming, &want.hamming, want.n_units, 2e-3, "nds");
        // The scores, through both scorers' public entries.
        let cpu = crate::score_graph(&g, &batch, seed, 1.0).unwrap();
        let gpu = scorer
            .score(3, |_| Ok(g.clone()), seed, 1.0, None, false)
            .unwrap();
        // Three lanes' copies of one cell: bit-identical.
        assert!(gpu.iter().all(|c| c.scores == gpu[0].scores));
        let gs = gpu[0].scores;
        assert_eq!(gs.n_units, cpu.scores.n_units);
        if crate::score::metrics::singular_verdict_is_clear(&want.hamming, want.n_units, b) {
            assert_eq!(gs.singular, cpu.scores.singular, "seed {seed}");
        }
        let (a, c) = (gs.wot.unwrap(), cpu.scores.wot.unwrap());
        assert!(
            (a - c).abs() <= 1e-3 * c.abs().max(1.0),
            "seed {seed}: WOT {a} on the GPU, {c} on the CPU"
        );
    }
}

/// `n` synthetic CIFAR-10 records (label byte + 3,072 pixel bytes).
fn images(n: usize, seed: u64) -> crate::data::cifar::CifarImages {
    let mut rng = Rng(seed);
    let mut bytes = Vec::with_capacity(n * 3073);
    for i in 0..n {
        bytes.push((i % 10) as u8);
        bytes.extend((0..3072).map(|_| (rng.next() >> 56) as u8));
    }
    crate::data::cifar::CifarImages::from_bytes(&bytes, crate::data::cifar::Dataset::Cifar10)
        .unwrap()
}

/// Elementwise within `rel` of the CPU's largest magnitude
/// (`tests/gpu/train.rs`).
fn close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale,
            "{what}[{k}]: GPU {a}, CPU {b} (scale {scale})"
        );
    }
}

gpu_test!(nds_block_training_follows_the_cpu);
fn nds_block_training_follows_the_cpu(dev: &CudaDevice) {
    use crate::exec::cuda::executor::GpuScorer;
    use crate::train::batches::{Augment, LabelledBatches};
    use crate::train::{LrSchedule, SgdConfig};
    let g = nds_net();
    // One step's gradients (the rule of `one_step_gradients_match_the_cpu`).
    let imgs = images(40, 1);
    let x = imgs.first(8).unwrap();
    let labels: Vec<u32> = (0..8).map(|i| (i * 7 % 10) as u32).collect();
    for seed in [0, 3] {
        let params = init_params(&g, seed);
        let mut want: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let (ce, _) =
            crate::train::cpu::forward_backward(&g, &params, &x, &labels, &mut want).unwrap();
        let (loss, got) = crate::train::cuda::gradients(dev, &g, &params, &x, &labels).unwrap();
        assert!(
            (loss - ce.loss).abs() <= 1e-4 * ce.loss.abs().max(1.0),
            "{loss} vs {}",
            ce.loss
        );
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            close(a, b, 2e-3, &g.params[k].name);
        }
    }
    // Two SGD steps, then scoring with the trained weights (the rule of
    // `trained_scores_follow_the_cpu_trainer`).
    let config = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        schedule: LrSchedule::Cosine,
    };
    let steps = 2;
    let aug = Augment {
        crop: true,
        flip: true,
    };
    let scoring = imgs.first(8).unwrap();
    let pool: Vec<usize> = (8..40).collect();
    let mut params = init_params(&g, 5);
    let mut batches = LabelledBatches::new(&imgs, pool.clone(), 8, 5, aug).unwrap();
    let st = crate::train::train_cpu(&g, &mut params, &mut batches, &config, steps, |_, _| Ok(()))
        .unwrap();
    let cpu = crate::score_graph_with_params(&g, &params, &scoring, 1.0).unwrap();
    let mut batches = LabelledBatches::new(&imgs, pool, 8, 5, aug).unwrap();
    let data = crate::train::cuda::TrainData::upload(dev, &mut batches, steps, config).unwrap();
    let mut scorer = GpuScorer::new(dev, &scoring, 2).unwrap();
    let out =
        crate::train::cuda::score_trained(&mut scorer, 3, |_| Ok(g.clone()), 5, 1.0, &data, false)
            .unwrap();
    for (cell, gst) in &out {
        assert_eq!(gst.steps, steps);
        let (a, b) = (gst.final_loss.unwrap(), st.final_loss.unwrap());
        assert!((a - b).abs() <= 1e-2 * b.abs().max(1.0), "loss {a} vs {b}");
        assert_eq!(cell.scores.n_units, cpu.scores.n_units);
        let (a, b) = (cell.scores.wot.unwrap(), cpu.scores.wot.unwrap());
        assert!((a - b).abs() <= 1e-2 * b.abs(), "WOT {a} vs {b}");
    }
    assert!(out.iter().all(|(c, _)| c.scores == out[0].0.scores));
}
