//! CPU ops against naive nested-loop references written straight from the
//! definitions (conv and BN references accumulate in f64). Outputs are
//! poisoned with NaN before every call, so an element an op forgets to write
//! fails the comparison.

mod common;
use common::Rng;
use dasnas::ops::add::cpu::{add_forward, add_forward_inplace};
use dasnas::ops::batchnorm::cpu::{
    batchnorm_forward, batchnorm_forward_from_sums, batchnorm_forward_inplace,
};
use dasnas::ops::batchnorm::{BatchNormSpec, ChannelSums};
use dasnas::ops::conv2d::cpu::{
    conv2d_forward, conv2d_forward_relu_input, conv2d_forward_stats, conv2d_forward_with,
    ConvKernel,
};
use dasnas::ops::conv2d::cpu::{conv2d_forward_algo, conv2d_forward_winograd};
use dasnas::ops::conv2d::{Conv2dSpec, ConvAlgo};
use dasnas::ops::global_avg_pool::cpu::global_avg_pool_forward;
use dasnas::ops::linear::cpu::linear_forward;
use dasnas::ops::linear::LinearSpec;
use dasnas::ops::pool::cpu::pool_forward;
use dasnas::ops::pool::{PoolKind, PoolSpec};
use dasnas::ops::relu::cpu::{relu_forward, relu_forward_inplace};
use dasnas::{Error, Shape, Tensor};
use proptest::prelude::*;

// ---------------------------------------------------------------- helpers

impl Rng {
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
    fn tensor(&mut self, s: Shape) -> Tensor {
        Tensor::from_vec(s, self.vec(s.len())).unwrap()
    }
}

fn poisoned(s: Shape) -> Tensor {
    Tensor::filled(s, f32::NAN)
}

/// `|got - want| <= rtol * scale + atol` elementwise, where `scale` is the
/// magnitude the rounding error of the value scales with (the sum of
/// absolute products for a dot product, or |want|).
fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= rtol * s + atol, // NaN fails this test too
            "{what}: element {i}: got {g}, want {w} (err {err:e}, scale {s:e})"
        );
    }
}

fn pool_of(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

// ------------------------------------------------------------------ conv2d

/// Naive convolution from the definition: returns (value, sum of |terms|)
/// per output element, in f64.
fn conv_ref(spec: &Conv2dSpec, x: &Tensor, w: &[f32], relu: bool) -> (Shape, Vec<f64>, Vec<f64>) {
    let xs = x.shape;
    let oh = (xs.h + 2 * spec.pad - spec.dilation * (spec.kh - 1) - 1) / spec.stride + 1;
    let ow = (xs.w + 2 * spec.pad - spec.dilation * (spec.kw - 1) - 1) / spec.stride + 1;
    let os = Shape::new(xs.n, oh, ow, spec.cout);
    let cin_g = spec.cin / spec.groups;
    let cout_g = spec.cout / spec.groups;
    let mut val = vec![0.0f64; os.len()];
    let mut mag = vec![0.0f64; os.len()];
    for n in 0..xs.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..spec.cout {
                    let g = co / cout_g;
                    let (mut s, mut a) = (0.0f64, 0.0f64);
                    for ky in 0..spec.kh {
                        for kx in 0..spec.kw {
                            let iy = (oy * spec.stride + ky * spec.dilation) as isize
                                - spec.pad as isize;
                            let ix = (ox * spec.stride + kx * spec.dilation) as isize
                                - spec.pad as isize;
                            if iy < 0 || ix < 0 || iy >= xs.h as isize || ix >= xs.w as isize {
                                continue;
                            }
                            for ci in 0..cin_g {
                                let mut xv =
                                    x.at(n, iy as usize, ix as usize, g * cin_g + ci) as f64;
                                if relu {
                                    xv = xv.max(0.0);
                                }
                                let wv =
                                    w[((ky * spec.kw + kx) * cin_g + ci) * spec.cout + co] as f64;
                                s += xv * wv;
                                a += (xv * wv).abs();
                            }
                        }
                    }
                    let i = ((n * oh + oy) * ow + ox) * spec.cout + co;
                    val[i] = s;
                    mag[i] = a;
                }
            }
        }
    }
    (os, val, mag)
}

/// Runs the op on NaN-poisoned output and compares with the reference.
fn check_conv(
    spec: Conv2dSpec,
    n: usize,
    h: usize,
    w: usize,
    seed: u64,
    relu: bool,
    k: ConvKernel,
) {
    let mut rng = Rng(seed);
    let x = rng.tensor(Shape::new(n, h, w, spec.cin));
    let wt = rng.vec(spec.weight_len());
    let (os, want, mag) = conv_ref(&spec, &x, &wt, relu);
    assert_eq!(spec.out_shape(x.shape).unwrap(), os, "{spec:?}");
    let mut y = poisoned(os);
    conv2d_forward_with(&spec, &x, &wt, &mut y, relu, k).unwrap();
    assert_close(
        &format!("conv {spec:?} on {} relu={relu} {k:?}", x.shape),
        &y.data,
        &want,
        &mag,
        1e-5,
        1e-7,
    );
}

/// Per output element of shape `os`, the largest `mag` over its aligned
/// 4×4 output tile (same sample and channel).
fn tile_scale(mag: &[f64], os: Shape) -> Vec<f64> {
    let at = |n: usize, y: usize, x: usize, c: usize| ((n * os.h + y) * os.w + x) * os.c + c;
    let mut out = vec![0.0f64; mag.len()];
    for n in 0..os.n {
        for y in 0..os.h {
            for x in 0..os.w {
                for c in 0..os.c {
                    let (ty, tx) = (y / 4 * 4, x / 4 * 4);
                    let mut m = 0.0f64;
                    for yy in ty..(ty + 4).min(os.h) {
                        for xx in tx..(tx + 4).min(os.w) {
                            m = m.max(mag[at(n, yy, xx, c)]);
                        }
                    }
                    out[at(n, y, x, c)] = m;
                }
            }
        }
    }
    out
}

fn spec(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
) -> Conv2dSpec {
    Conv2dSpec {
        cin,
        cout,
        kh: k,
        kw: k,
        stride,
        pad,
        dilation: dil,
        groups,
    }
}

/// Random conv problems over odd sizes: (spec, n, h, w).
fn conv_case() -> impl Strategy<Value = (Conv2dSpec, usize, usize, usize)> {
    let dims = prop::sample::select(vec![1usize, 3, 5, 7, 13]);
    let chans = prop::sample::select(vec![1usize, 3, 5, 16, 17, 24, 32, 48]);
    (
        1usize..=3,
        dims.clone(),
        dims,
        chans.clone(),
        chans,
        0usize..4, // 0: groups 1, 1: groups 2, 2: depthwise, 3: depthwise ×2
        prop::sample::select(vec![1usize, 3, 5]),
        1usize..=3,
        0usize..=2,
        1usize..=2,
    )
        .prop_map(|(n, h, w, a, b, gk, k, stride, pad, dil)| {
            let s = match gk {
                0 => spec(a, b, k, stride, pad, dil, 1),
                1 => spec(2 * a, 2 * b, k, stride, pad, dil, 2),
                2 => spec(a, a, k, stride, pad, dil, a),
                _ => spec(a, 2 * a, k, stride, pad, dil, a),
            };
            (s, n, h, w)
        })
        .prop_filter("output must be at least 1x1", |(s, n, h, w)| {
            s.out_shape(Shape::new(*n, *h, *w, s.cin)).is_ok()
        })
}

/// The DARTS convs the proptests' ranges miss: dil_conv_5x5 (pad 4,
/// dilation 2, depthwise) and dil_conv_3x3 (pad 2) at stride 1 and 2, on
/// odd and even sizes, ReLU fused or not, both kernels.
#[test]
fn darts_dilated_convs_match_reference() {
    let mut seed = 1u64;
    for &(k, pad) in &[(5usize, 4usize), (3, 2)] {
        for stride in 1..=2 {
            for &(h, w, c) in &[(13usize, 11usize, 17usize), (8, 8, 16), (3, 5, 3)] {
                for kernel in [ConvKernel::Auto, ConvKernel::Portable] {
                    seed += 1;
                    let s = spec(c, c, k, stride, pad, 2, c);
                    check_conv(s, 2, h, w, seed, seed.is_multiple_of(2), kernel);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn conv_matches_reference((s, n, h, w) in conv_case(), seed in any::<u64>(), relu in any::<bool>()) {
        check_conv(s, n, h, w, seed, relu, ConvKernel::Auto);
    }

    #[test]
    fn conv_portable_matches_reference((s, n, h, w) in conv_case(), seed in any::<u64>()) {
        check_conv(s, n, h, w, seed, false, ConvKernel::Portable);
    }

    /// Shapes on the SIMD path: cout_g a multiple of 8 or 16, pixel counts
    /// that leave every tile remainder.
    #[test]
    fn conv_simd_shapes_match_reference(
        cin in prop::sample::select(vec![1usize, 3, 16, 17, 32]),
        cout_g in prop::sample::select(vec![8usize, 16, 24, 32, 48, 64]),
        groups in 1usize..=2,
        k in prop::sample::select(vec![1usize, 3]),
        stride in 1usize..=2,
        h in 1usize..=9,
        w in 1usize..=9,
        seed in any::<u64>(),
    ) {
        let s = spec(cin * groups, cout_g * groups, k, stride, k / 2, 1, groups);
        check_conv(s, 2, h, w, seed, seed % 2 == 0, ConvKernel::Auto);
    }

    /// The AVX-512 tiles (Auto, where the CPU has AVX-512F) and the AVX2
    /// tiles compute the same FMA chains and the same BatchNorm sums: the
    /// same bits, values and statistics (on a CPU without AVX-512 both
    /// run AVX2 and this holds trivially).
    #[test]
    fn avx512_and_avx2_give_the_same_bits(
        cin in prop::sample::select(vec![1usize, 3, 16, 17, 32, 64]),
        cout_g in prop::sample::select(vec![1usize, 5, 8, 16, 17, 24, 32, 40, 43, 48, 64, 80, 128, 171]),
        groups in 1usize..=2,
        k in prop::sample::select(vec![1usize, 3, 5]),
        stride in 1usize..=2,
        h in 1usize..=17,
        w in 1usize..=17,
        seed in any::<u64>(),
    ) {
        let s = spec(cin * groups, cout_g * groups, k, stride, k / 2, 1, groups);
        let mut rng = Rng(seed);
        let x = rng.tensor(Shape::new(2, h, w, s.cin));
        let wt = rng.vec(s.weight_len());
        let os = s.out_shape(x.shape).unwrap();
        let relu = seed % 2 == 0;
        let mut a = poisoned(os);
        let mut b = poisoned(os);
        let sa = conv2d_forward_stats(&s, &x, &wt, &mut a, relu, ConvKernel::Auto).unwrap();
        let sb = conv2d_forward_stats(&s, &x, &wt, &mut b, relu, ConvKernel::Avx2).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&a.data), bits(&b.data));
        prop_assert_eq!(&sa.sum, &sb.sum);
        prop_assert_eq!(&sa.sumsq, &sb.sumsq);
    }

    /// Winograd F(4×4, 3×3) (forced, whatever the channels) against the definition at
    /// odd sizes and channel counts, every padding, ReLU on load or not,
    /// every kernel, output poisoned; its channel sums are the plain sums
    /// of the output it wrote. The bound is a few times the direct conv's:
    /// the transforms scale values by up to 16 before rounding.
    #[test]
    fn winograd_matches_reference(
        cin in prop::sample::select(vec![1usize, 3, 16, 17, 33]),
        cout in prop::sample::select(vec![1usize, 5, 8, 16, 24, 32, 40, 64]),
        pad in 0usize..=2,
        n in 1usize..=3,
        h in 1usize..=19,
        w in 1usize..=19,
        seed in any::<u64>(),
        kernel in prop::sample::select(vec![ConvKernel::Auto, ConvKernel::Avx2, ConvKernel::Portable]),
    ) {
        let s = spec(cin, cout, 3, 1, pad, 1, 1);
        prop_assume!(s.out_shape(Shape::new(n, h, w, cin)).is_ok());
        let mut rng = Rng(seed);
        let x = rng.tensor(Shape::new(n, h, w, cin));
        let wt = rng.vec(s.weight_len());
        let relu = seed % 3 == 0;
        let (os, want, mag) = conv_ref(&s, &x, &wt, relu);
        let mut y = poisoned(os);
        let sums = conv2d_forward_winograd(&s, &x, &wt, &mut y, relu, kernel, true)
            .unwrap()
            .unwrap();
        // Winograd's rounding error scales with the whole 6×6 input tile,
        // i.e. with the union of the windows of the tile's 4×4 outputs:
        // the bound uses the largest |x|·|w| sum over the output's tile (an
        // all-zero window next to large values is ±1e-6, not 0).
        let tile_mag = tile_scale(&mag, os);
        assert_close(&format!("winograd {s:?} on {}", x.shape), &y.data, &want, &tile_mag, 2e-5, 1e-7);
        let mut plain = vec![0.0f64; cout];
        for px in y.data.chunks_exact(cout) {
            for (a, &v) in plain.iter_mut().zip(px) {
                *a += v as f64;
            }
        }
        for (a, b) in plain.iter().zip(&sums.sum) {
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "sum {a} vs {b}");
        }
    }

    /// `ConvAlgo::Fast` is Winograd exactly where `winograd::applies`
    /// says so and the direct conv's bits everywhere else.
    #[test]
    fn fast_algo_picks_winograd_where_it_applies(
        cin in prop::sample::select(vec![3usize, 16, 32, 64]),
        cout in prop::sample::select(vec![16usize, 32]),
        k in prop::sample::select(vec![1usize, 3]),
        stride in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let s = spec(cin, cout, k, stride, k / 2, 1, 1);
        let mut rng = Rng(seed);
        let x = rng.tensor(Shape::new(2, 9, 7, cin));
        let wt = rng.vec(s.weight_len());
        let os = s.out_shape(x.shape).unwrap();
        let run = |f: &dyn Fn(&mut Tensor)| {
            let mut y = poisoned(os);
            f(&mut y);
            y.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let fast = run(&|y| {
            conv2d_forward_algo(&s, &x, &wt, y, false, ConvKernel::Auto, ConvAlgo::Fast, false).unwrap();
        });
        let want = if dasnas::ops::conv2d::cpu::winograd::applies(&s) {
            run(&|y| {
                conv2d_forward_winograd(&s, &x, &wt, y, false, ConvKernel::Auto, false).unwrap();
            })
        } else {
            run(&|y| conv2d_forward_with(&s, &x, &wt, y, false, ConvKernel::Auto).unwrap())
        };
        prop_assert_eq!(fast, want);
    }

    #[test]
    fn simd_and_portable_agree((s, n, h, w) in conv_case(), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.tensor(Shape::new(n, h, w, s.cin));
        let wt = rng.vec(s.weight_len());
        let os = s.out_shape(x.shape).unwrap();
        let (_, _, mag) = conv_ref(&s, &x, &wt, false);
        let mut a = poisoned(os);
        let mut b = poisoned(os);
        conv2d_forward_with(&s, &x, &wt, &mut a, false, ConvKernel::Auto).unwrap();
        conv2d_forward_with(&s, &x, &wt, &mut b, false, ConvKernel::Portable).unwrap();
        let bd: Vec<f64> = b.data.iter().map(|&v| v as f64).collect();
        assert_close(&format!("simd vs portable {s:?}"), &a.data, &bd, &mag, 2e-6, 1e-7);
    }
}

#[test]
fn winograd_refuses_convs_it_cannot_compute() {
    let mut rng = Rng(3);
    for s in [
        spec(4, 4, 3, 2, 1, 1, 1),
        spec(4, 4, 1, 1, 0, 1, 1),
        spec(4, 4, 3, 1, 2, 2, 1),
        spec(4, 4, 3, 1, 1, 1, 2),
    ] {
        let x = rng.tensor(Shape::new(1, 6, 6, 4));
        let wt = rng.vec(s.weight_len());
        let mut y = poisoned(s.out_shape(x.shape).unwrap());
        let e = conv2d_forward_winograd(&s, &x, &wt, &mut y, false, ConvKernel::Auto, false)
            .unwrap_err();
        assert!(e.to_string().contains("Winograd"), "{e}");
    }
}

/// Every NB201 conv shape (batch 2), both kernels, with and without the
/// fused ReLU.
#[test]
fn conv_nb201_shapes() {
    let cases = [
        (spec(3, 16, 3, 1, 1, 1, 1), 32),
        (spec(16, 16, 3, 1, 1, 1, 1), 32),
        (spec(32, 32, 3, 1, 1, 1, 1), 16),
        (spec(64, 64, 3, 1, 1, 1, 1), 8),
        (spec(16, 16, 1, 1, 0, 1, 1), 32),
        (spec(32, 32, 1, 1, 0, 1, 1), 16),
        (spec(64, 64, 1, 1, 0, 1, 1), 8),
        (spec(16, 32, 3, 2, 1, 1, 1), 32),
        (spec(32, 64, 3, 2, 1, 1, 1), 16),
        (spec(16, 32, 1, 1, 0, 1, 1), 16),
        (spec(32, 64, 1, 1, 0, 1, 1), 8),
    ];
    for (i, (s, hw)) in cases.into_iter().enumerate() {
        for k in [ConvKernel::Auto, ConvKernel::Portable] {
            check_conv(s, 2, hw, hw, 100 + i as u64, false, k);
            check_conv(s, 2, hw, hw, 200 + i as u64, true, k);
        }
    }
}

#[test]
fn conv_relu_input_entry_point_applies_relu() {
    let s = spec(16, 16, 3, 1, 0, 1, 1);
    let mut rng = Rng(7);
    let x = rng.tensor(Shape::new(2, 5, 7, 16));
    let w = rng.vec(s.weight_len());
    let os = s.out_shape(x.shape).unwrap();
    let mut relu_x = x.clone();
    relu_forward_inplace(&mut relu_x).unwrap();
    let mut a = poisoned(os);
    let mut b = poisoned(os);
    conv2d_forward_relu_input(&s, &x, &w, &mut a).unwrap();
    conv2d_forward(&s, &relu_x, &w, &mut b).unwrap();
    assert_eq!(a.data, b.data);
}

#[test]
fn conv_argument_errors() {
    let s = spec(16, 16, 3, 1, 1, 1, 1);
    let x = Tensor::zeros(Shape::new(2, 8, 8, 16));
    let w = vec![0.0; s.weight_len()];
    let mut y = Tensor::zeros(Shape::new(2, 8, 8, 16));
    assert!(conv2d_forward(&s, &x, &w, &mut y).is_ok());
    let mut bad_y = Tensor::zeros(Shape::new(2, 8, 7, 16));
    assert!(matches!(
        conv2d_forward(&s, &x, &w, &mut bad_y),
        Err(Error::Shape(m)) if m.contains("output")
    ));
    assert!(matches!(
        conv2d_forward(&s, &x, &w[1..], &mut y),
        Err(Error::Shape(m)) if m.contains("weight")
    ));
    let bad_x = Tensor::zeros(Shape::new(2, 8, 8, 15));
    assert!(matches!(
        conv2d_forward(&s, &bad_x, &w, &mut y),
        Err(Error::Shape(m)) if m.contains("cin")
    ));
    let torn = Tensor {
        shape: Shape::new(2, 8, 8, 16),
        data: vec![0.0; 10],
    };
    assert!(matches!(
        conv2d_forward(&s, &torn, &w, &mut y),
        Err(Error::Shape(m)) if m.contains("input")
    ));
}

/// Same bits with 1 and 2 rayon threads, for every op with a reduction.
#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = Rng(11);
    let x = rng.tensor(Shape::new(5, 13, 11, 32));
    let run = |threads: usize| {
        pool_of(threads).install(|| {
            let mut out = Vec::new();
            for s in [
                spec(32, 48, 3, 1, 1, 1, 1),
                spec(32, 32, 3, 2, 1, 1, 32),
                spec(32, 34, 3, 1, 1, 1, 2),
            ] {
                let w = Rng(3).vec(s.weight_len());
                let mut y = poisoned(s.out_shape(x.shape).unwrap());
                conv2d_forward_relu_input(&s, &x, &w, &mut y).unwrap();
                out.push(y.data);
            }
            let bn = BatchNormSpec::new(32);
            let mut y = poisoned(x.shape);
            let st = batchnorm_forward(&bn, &x, &[1.0; 32], &[0.0; 32], &mut y).unwrap();
            out.push(y.data);
            out.push(st.mean);
            out.push(st.inv_std);
            let mut g = poisoned(Shape::new(5, 1, 1, 32));
            global_avg_pool_forward(&x, &mut g).unwrap();
            out.push(g.data);
            out
        })
    };
    let one = run(1);
    let two = run(2);
    for (a, b) in one.iter().zip(&two) {
        let same = a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "1-thread and 2-thread results differ");
    }
}

// --------------------------------------------------------------- batchnorm

fn bn_ref(x: &Tensor, gamma: &[f32], beta: &[f32], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let s = x.shape;
    let count = (s.n * s.h * s.w) as f64;
    let mut mean = vec![0.0f64; s.c];
    let mut var = vec![0.0f64; s.c];
    for c in 0..s.c {
        for n in 0..s.n {
            for yy in 0..s.h {
                for xx in 0..s.w {
                    mean[c] += x.at(n, yy, xx, c) as f64;
                }
            }
        }
        mean[c] /= count;
        for n in 0..s.n {
            for yy in 0..s.h {
                for xx in 0..s.w {
                    let d = x.at(n, yy, xx, c) as f64 - mean[c];
                    var[c] += d * d;
                }
            }
        }
        var[c] /= count;
    }
    let mut y = vec![0.0f64; s.len()];
    for (i, v) in y.iter_mut().enumerate() {
        let c = i % s.c;
        *v =
            (x.data[i] as f64 - mean[c]) / (var[c] + eps).sqrt() * gamma[c] as f64 + beta[c] as f64;
    }
    (y, mean, var)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batchnorm_matches_reference(
        n in 1usize..=4,
        h in prop::sample::select(vec![1usize, 3, 5, 7, 13]),
        w in prop::sample::select(vec![1usize, 3, 5, 7, 13]),
        c in prop::sample::select(vec![1usize, 3, 5, 16, 17, 24]),
        offset in -10.0f32..10.0,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut x = rng.tensor(Shape::new(n, h, w, c));
        for v in &mut x.data {
            *v += offset;
        }
        let gamma = rng.vec(c);
        let beta = rng.vec(c);
        let spec = BatchNormSpec::new(c);
        let (want, mean, var) = bn_ref(&x, &gamma, &beta, 1e-5);
        let mut y = poisoned(x.shape);
        let st = batchnorm_forward(&spec, &x, &gamma, &beta, &mut y).unwrap();
        // Scale of the rounding error: |x - mean| * inv_std * |gamma| + |beta|,
        // plus |mean| * inv_std * |gamma| for the f32 subtraction.
        let scale: Vec<f64> = (0..x.data.len()).map(|i| {
            let ch = i % c;
            let inv = 1.0 / (var[ch] + 1e-5).sqrt();
            ((x.data[i] as f64).abs() + mean[ch].abs()) * inv * (gamma[ch] as f64).abs()
                + (beta[ch] as f64).abs()
        }).collect();
        assert_close("batchnorm", &y.data, &want, &scale, 1e-5, 1e-6);
        for ch in 0..c {
            prop_assert!((st.mean[ch] as f64 - mean[ch]).abs() <= 1e-6 * (1.0 + mean[ch].abs()));
            let inv = 1.0 / (var[ch] + 1e-5).sqrt();
            prop_assert!((st.inv_std[ch] as f64 - inv).abs() <= 1e-6 * inv);
        }
        let mut xi = x.clone();
        let st2 = batchnorm_forward_inplace(&spec, &mut xi, &gamma, &beta).unwrap();
        prop_assert_eq!(&xi.data, &y.data);
        prop_assert_eq!(st2, st);
    }
}

#[test]
fn batchnorm_constant_channel_gives_beta_not_nan() {
    let s = Shape::new(3, 5, 7, 4);
    let mut rng = Rng(5);
    let mut x = rng.tensor(s);
    // Channel 1 constant 0.3, channel 2 constant 0, channel 3 constant -1e4.
    for (i, v) in x.data.iter_mut().enumerate() {
        match i % 4 {
            1 => *v = 0.3,
            2 => *v = 0.0,
            3 => *v = -1e4,
            _ => {}
        }
    }
    let spec = BatchNormSpec::new(4);
    let gamma = [1.0, 2.0, 1.0, 1.0];
    let beta = [0.0, 0.0, 0.0, 0.5];
    let mut y = poisoned(s);
    batchnorm_forward(&spec, &x, &gamma, &beta, &mut y).unwrap();
    for (i, &v) in y.data.iter().enumerate() {
        match i % 4 {
            1 | 2 => assert_eq!(v, 0.0, "element {i}"),
            3 => assert_eq!(v, 0.5, "element {i}"),
            _ => assert!(v.is_finite()),
        }
    }
}

#[test]
fn batchnorm_argument_errors() {
    let spec = BatchNormSpec::new(4);
    let x = Tensor::zeros(Shape::new(2, 3, 3, 4));
    let mut y = Tensor::zeros(Shape::new(2, 3, 3, 4));
    assert!(matches!(
        batchnorm_forward(&spec, &x, &[1.0; 3], &[0.0; 4], &mut y),
        Err(Error::Shape(m)) if m.contains("gamma")
    ));
    assert!(matches!(
        batchnorm_forward(&spec, &x, &[1.0; 4], &[0.0; 5], &mut y),
        Err(Error::Shape(m)) if m.contains("beta")
    ));
    let mut bad = Tensor::zeros(Shape::new(2, 3, 3, 5));
    assert!(matches!(
        batchnorm_forward(&spec, &x, &[1.0; 4], &[0.0; 4], &mut bad),
        Err(Error::Shape(m)) if m.contains("output")
    ));
}

// -------------------------------------------------------------- relu, add

#[test]
fn relu_matches_definition() {
    let mut rng = Rng(9);
    let mut x = rng.tensor(Shape::new(3, 7, 5, 17));
    x.data[0] = -0.0;
    x.data[1] = f32::NAN;
    let mut y = poisoned(x.shape);
    relu_forward(&x, &mut y).unwrap();
    for (&a, &b) in x.data.iter().zip(&y.data) {
        let want = if a > 0.0 { a } else { 0.0 };
        assert_eq!(b.to_bits(), want.to_bits());
    }
    let mut xi = x.clone();
    relu_forward_inplace(&mut xi).unwrap();
    assert_eq!(xi.data, y.data);
    let mut bad = Tensor::zeros(Shape::new(3, 7, 5, 16));
    assert!(matches!(relu_forward(&x, &mut bad), Err(Error::Shape(_))));
}

#[test]
fn add_sums_in_input_order() {
    let mut rng = Rng(13);
    let s = Shape::new(2, 5, 3, 7);
    let ts: Vec<Tensor> = (0..4).map(|_| rng.tensor(s)).collect();
    for k in 1..=4 {
        let refs: Vec<&Tensor> = ts[..k].iter().collect();
        let mut y = poisoned(s);
        add_forward(&refs, &mut y).unwrap();
        for i in 0..s.len() {
            let mut want = ts[0].data[i];
            for t in &ts[1..k] {
                want += t.data[i];
            }
            assert_eq!(y.data[i].to_bits(), want.to_bits(), "k={k} i={i}");
        }
    }
    let mut y = poisoned(s);
    assert!(matches!(add_forward(&[], &mut y), Err(Error::Shape(m)) if m.contains("no inputs")));
    let other = Tensor::zeros(Shape::new(2, 5, 3, 6));
    assert!(matches!(
        add_forward(&[&ts[0], &other], &mut y),
        Err(Error::Shape(m)) if m.contains("input 1")
    ));
    let mut bad = poisoned(Shape::new(2, 5, 3, 6));
    assert!(matches!(
        add_forward(&[&ts[0]], &mut bad),
        Err(Error::Shape(_))
    ));
}

// -------------------------------------------------------------------- pool

fn pool_ref(spec: &PoolSpec, x: &Tensor) -> (Shape, Vec<f64>) {
    let s = x.shape;
    let oh = (s.h + 2 * spec.pad - spec.k) / spec.stride + 1;
    let ow = (s.w + 2 * spec.pad - spec.k) / spec.stride + 1;
    let os = Shape::new(s.n, oh, ow, s.c);
    let mut out = Vec::with_capacity(os.len());
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..s.c {
                    let mut sum = 0.0f64;
                    let mut max = f64::NEG_INFINITY;
                    let mut inb = 0usize;
                    for ky in 0..spec.k {
                        for kx in 0..spec.k {
                            let iy = (oy * spec.stride + ky) as isize - spec.pad as isize;
                            let ix = (ox * spec.stride + kx) as isize - spec.pad as isize;
                            if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                continue;
                            }
                            let v = x.at(n, iy as usize, ix as usize, c) as f64;
                            sum += v;
                            max = max.max(v);
                            inb += 1;
                        }
                    }
                    out.push(match spec.kind {
                        PoolKind::Max => max,
                        PoolKind::Avg if spec.count_include_pad => sum / (spec.k * spec.k) as f64,
                        PoolKind::Avg => sum / inb as f64,
                    });
                }
            }
        }
    }
    (os, out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pool_matches_reference(
        n in 1usize..=3,
        h in prop::sample::select(vec![1usize, 2, 3, 5, 7, 13]),
        w in prop::sample::select(vec![1usize, 2, 3, 5, 7, 13]),
        c in prop::sample::select(vec![1usize, 3, 5, 16, 17]),
        k in 1usize..=5,
        stride in 1usize..=3,
        pad in 0usize..=2,
        max in any::<bool>(),
        incl in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let spec = PoolSpec {
            kind: if max { PoolKind::Max } else { PoolKind::Avg },
            k, stride, pad, count_include_pad: incl,
        };
        let xs = Shape::new(n, h, w, c);
        prop_assume!(spec.out_shape(xs).is_ok());
        let x = Rng(seed).tensor(xs);
        let (os, want) = pool_ref(&spec, &x);
        prop_assert_eq!(spec.out_shape(xs).unwrap(), os);
        let mut y = poisoned(os);
        pool_forward(&spec, &x, &mut y).unwrap();
        let scale = vec![1.0f64; want.len()];
        assert_close(&format!("{spec:?} on {xs}"), &y.data, &want, &scale, 1e-6, 0.0);
    }
}

#[test]
fn avg_pool_border_divisor() {
    let x = Tensor::filled(Shape::new(1, 4, 5, 2), 1.0);
    let excl = PoolSpec {
        kind: PoolKind::Avg,
        k: 3,
        stride: 1,
        pad: 1,
        count_include_pad: false,
    };
    let mut y = poisoned(x.shape);
    pool_forward(&excl, &x, &mut y).unwrap();
    assert!(y.data.iter().all(|&v| v == 1.0), "{:?}", y.data);
    let incl = PoolSpec {
        count_include_pad: true,
        ..excl
    };
    pool_forward(&incl, &x, &mut y).unwrap();
    assert_eq!(y.at(0, 0, 0, 0), 4.0 / 9.0); // corner: 4 taps in bounds
    assert_eq!(y.at(0, 0, 2, 1), 6.0 / 9.0); // edge: 6 taps
    assert_eq!(y.at(0, 1, 1, 0), 1.0); // interior: 9 taps
                                       // Max pooling ignores padding even when every value is negative.
    let neg = Tensor::filled(Shape::new(1, 3, 3, 1), -2.0);
    let mut ym = poisoned(neg.shape);
    let max = PoolSpec {
        kind: PoolKind::Max,
        ..excl
    };
    pool_forward(&max, &neg, &mut ym).unwrap();
    assert!(ym.data.iter().all(|&v| v == -2.0));
}

// ------------------------------------------------- global pool and linear

#[test]
fn global_avg_pool_matches_reference() {
    for (n, h, w, c) in [(1, 1, 1, 1), (3, 7, 5, 17), (2, 8, 8, 64)] {
        let x = Rng(17).tensor(Shape::new(n, h, w, c));
        let mut y = poisoned(Shape::new(n, 1, 1, c));
        global_avg_pool_forward(&x, &mut y).unwrap();
        let mut want = Vec::new();
        for b in 0..n {
            for ch in 0..c {
                let mut s = 0.0f64;
                for yy in 0..h {
                    for xx in 0..w {
                        s += x.at(b, yy, xx, ch) as f64;
                    }
                }
                want.push(s / (h * w) as f64);
            }
        }
        let scale = vec![1.0; want.len()];
        assert_close("gap", &y.data, &want, &scale, 1e-6, 0.0);
        let mut bad = poisoned(Shape::new(n, 1, 2, c));
        assert!(global_avg_pool_forward(&x, &mut bad).is_err());
    }
}

#[test]
fn linear_matches_reference() {
    for (n, h, w, c, outputs) in [(1, 1, 1, 1, 1), (3, 1, 1, 64, 10), (2, 3, 5, 7, 17)] {
        let mut rng = Rng(19);
        let x = rng.tensor(Shape::new(n, h, w, c));
        let spec = LinearSpec {
            inputs: h * w * c,
            outputs,
        };
        let wt = rng.vec(spec.weight_len());
        let b = rng.vec(outputs);
        let mut y = poisoned(Shape::new(n, 1, 1, outputs));
        linear_forward(&spec, &x, &wt, &b, &mut y).unwrap();
        let mut want = Vec::new();
        let mut mag = Vec::new();
        for s in 0..n {
            for o in 0..outputs {
                let mut v = b[o] as f64;
                let mut m = (b[o] as f64).abs();
                for i in 0..spec.inputs {
                    let t = x.data[s * spec.inputs + i] as f64 * wt[i * outputs + o] as f64;
                    v += t;
                    m += t.abs();
                }
                want.push(v);
                mag.push(m);
            }
        }
        assert_close("linear", &y.data, &want, &mag, 1e-5, 1e-7);
        assert!(linear_forward(&spec, &x, &wt[1..], &b, &mut y).is_err());
        assert!(linear_forward(&spec, &x, &wt, &b[1..], &mut y).is_err());
    }
}

/// Shapes whose element count overflows usize, or buffers that disagree
/// with their shape, are errors, never panics.
#[test]
fn absurd_shapes_are_errors_not_panics() {
    let huge = Shape::new(1 << 40, 1 << 40, 1, 1);
    let torn = Tensor {
        shape: huge,
        data: vec![],
    };
    let mut y = Tensor {
        shape: huge,
        data: vec![],
    };
    assert!(matches!(relu_forward(&torn, &mut y), Err(Error::Shape(_))));
    assert!(matches!(
        add_forward(&[&torn], &mut y),
        Err(Error::Shape(_))
    ));
    let lin = LinearSpec {
        inputs: 4,
        outputs: 2,
    };
    let mut ly = poisoned(Shape::new(1, 1, 1, 2));
    let wide = Tensor {
        shape: Shape::new(1, 1 << 40, 1 << 40, 1 << 40),
        data: vec![],
    };
    assert!(linear_forward(&lin, &wide, &[0.0; 8], &[0.0; 2], &mut ly).is_err());
    let s = spec(1, 1, 3, 1, 1 << 40, 1, 1);
    let x = Tensor::zeros(Shape::new(1, 3, 3, 1));
    let mut cy = poisoned(Shape::new(1, 3, 3, 1));
    assert!(conv2d_forward(&s, &x, &[0.0; 9], &mut cy).is_err());
}

// ------------------------------ fused conv + BN statistics, in-place BN, add

/// Channel sums of an NHWC tensor in the documented order: per sample,
/// pixels in order, in f64; samples combined in order.
fn sums_ref(y: &Tensor) -> ChannelSums {
    let c = y.shape.c;
    let mut sum = vec![0.0f64; c];
    let mut sumsq = vec![0.0f64; c];
    for img in y.data.chunks_exact(y.shape.per_sample()) {
        let mut s = vec![0.0f64; c];
        let mut q = vec![0.0f64; c];
        for px in img.chunks_exact(c) {
            for ch in 0..c {
                let v = px[ch] as f64;
                s[ch] += v;
                q[ch] += v * v;
            }
        }
        for ch in 0..c {
            sum[ch] += s[ch];
            sumsq[ch] += q[ch];
        }
    }
    ChannelSums {
        count: y.shape.n * y.shape.h * y.shape.w,
        sum,
        sumsq,
    }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Rounding-error scale of a BN output (see `batchnorm_matches_reference`).
fn bn_scale(x: &Tensor, gamma: &[f32], beta: &[f32], mean: &[f64], var: &[f64]) -> Vec<f64> {
    let c = x.shape.c;
    (0..x.data.len())
        .map(|i| {
            let ch = i % c;
            let inv = 1.0 / (var[ch] + 1e-5).sqrt();
            ((x.data[i] as f64).abs() + mean[ch].abs()) * inv * (gamma[ch] as f64).abs()
                + (beta[ch] as f64).abs()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The stats entry point writes exactly the plain conv's output, and
    /// its sums equal a plain loop in the documented order bit for bit
    /// (every path: AVX2 tiles, portable, depthwise, scalar channels).
    #[test]
    fn conv_stats_match_plain_conv_and_sums(
        (s, n, h, w) in conv_case(),
        seed in any::<u64>(),
        relu in any::<bool>(),
        portable in any::<bool>(),
    ) {
        let k = if portable { ConvKernel::Portable } else { ConvKernel::Auto };
        let mut rng = Rng(seed);
        let x = rng.tensor(Shape::new(n, h, w, s.cin));
        let wt = rng.vec(s.weight_len());
        let os = s.out_shape(x.shape).unwrap();
        let mut a = poisoned(os);
        conv2d_forward_with(&s, &x, &wt, &mut a, relu, k).unwrap();
        let mut b = poisoned(os);
        let sums = conv2d_forward_stats(&s, &x, &wt, &mut b, relu, k).unwrap();
        prop_assert!(a.data.iter().zip(&b.data).all(|(p, q)| p.to_bits() == q.to_bits()));
        let want = sums_ref(&a);
        prop_assert_eq!(sums.count, want.count);
        prop_assert_eq!(bits(&sums.sum), bits(&want.sum));
        prop_assert_eq!(bits(&sums.sumsq), bits(&want.sumsq));
    }

    /// Fused conv (stats) + in-place BN from the sums vs conv then the plain
    /// two-pass BatchNorm.
    #[test]
    fn fused_conv_bn_matches_conv_then_batchnorm(
        (s, n, h, w) in conv_case(),
        seed in any::<u64>(),
        relu in any::<bool>(),
    ) {
        let mut rng = Rng(seed);
        let x = rng.tensor(Shape::new(n, h, w, s.cin));
        let wt = rng.vec(s.weight_len());
        let gamma = rng.vec(s.cout);
        let beta = rng.vec(s.cout);
        let os = s.out_shape(x.shape).unwrap();
        let bn = BatchNormSpec::new(s.cout);
        let mut c = poisoned(os);
        conv2d_forward_with(&s, &x, &wt, &mut c, relu, ConvKernel::Auto).unwrap();
        let mut want = poisoned(os);
        let st_want = batchnorm_forward(&bn, &c, &gamma, &beta, &mut want).unwrap();
        let (_, mean, var) = bn_ref(&c, &gamma, &beta, 1e-5);
        let mut got = poisoned(os);
        let sums = conv2d_forward_stats(&s, &x, &wt, &mut got, relu, ConvKernel::Auto).unwrap();
        let st = batchnorm_forward_from_sums(&bn, &mut got, &gamma, &beta, &sums).unwrap();
        let wd: Vec<f64> = want.data.iter().map(|&v| v as f64).collect();
        let scale = bn_scale(&c, &gamma, &beta, &mean, &var);
        assert_close(&format!("fused conv+bn {s:?}"), &got.data, &wd, &scale, 1e-5, 1e-6);
        for ch in 0..s.cout {
            let (m, i) = (st.mean[ch] as f64, st.inv_std[ch] as f64);
            prop_assert!((m - st_want.mean[ch] as f64).abs() <= 1e-6 * (1.0 + m.abs()));
            prop_assert!((i - st_want.inv_std[ch] as f64).abs() <= 1e-5 * i);
        }
    }

    /// BN from sums vs the two-pass reference on data with a large offset
    /// (the one-pass variance's worst case) at odd channel counts (the
    /// periodic parameter runs).
    #[test]
    fn batchnorm_from_sums_matches_reference(
        n in 1usize..=4,
        h in prop::sample::select(vec![1usize, 3, 5, 7, 13]),
        w in prop::sample::select(vec![1usize, 3, 5, 7, 13]),
        c in prop::sample::select(vec![1usize, 3, 5, 7, 16, 17, 24, 64, 65]),
        offset in -10.0f32..10.0,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut x = rng.tensor(Shape::new(n, h, w, c));
        for v in &mut x.data {
            *v += offset;
        }
        let gamma = rng.vec(c);
        let beta = rng.vec(c);
        let spec = BatchNormSpec::new(c);
        let (want, mean, var) = bn_ref(&x, &gamma, &beta, 1e-5);
        let scale = bn_scale(&x, &gamma, &beta, &mean, &var);
        let mut y = x.clone();
        let st = batchnorm_forward_from_sums(&spec, &mut y, &gamma, &beta, &sums_ref(&x)).unwrap();
        assert_close("batchnorm from sums", &y.data, &want, &scale, 1e-5, 1e-6);
        for ch in 0..c {
            prop_assert!((st.mean[ch] as f64 - mean[ch]).abs() <= 1e-6 * (1.0 + mean[ch].abs()));
            let inv = 1.0 / (var[ch] + 1e-5).sqrt();
            prop_assert!((st.inv_std[ch] as f64 - inv).abs() <= 1e-5 * inv);
        }
        // With the reference's own statistics the normalisation is the same
        // expression as `batchnorm_forward`'s: equal stats, equal bits.
        let mut plain = poisoned(x.shape);
        let st_plain = batchnorm_forward(&spec, &x, &gamma, &beta, &mut plain).unwrap();
        if st_plain == st {
            prop_assert!(plain.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }
}

#[test]
fn batchnorm_from_sums_constant_channel_gives_beta() {
    let s = Shape::new(3, 5, 7, 4);
    let mut x = Rng(5).tensor(s);
    for (i, v) in x.data.iter_mut().enumerate() {
        match i % 4 {
            1 => *v = 0.3,
            2 => *v = 0.0,
            3 => *v = -1e4,
            _ => {}
        }
    }
    let sums = sums_ref(&x);
    let gamma = [1.0, 2.0, 1.0, 1.0];
    let beta = [0.0, 0.0, 0.0, 0.5];
    batchnorm_forward_from_sums(&BatchNormSpec::new(4), &mut x, &gamma, &beta, &sums).unwrap();
    for (i, &v) in x.data.iter().enumerate() {
        match i % 4 {
            1 | 2 => assert_eq!(v, 0.0, "element {i}"),
            3 => assert_eq!(v, 0.5, "element {i}"),
            _ => assert!(v.is_finite()),
        }
    }
}

#[test]
fn batchnorm_from_sums_argument_errors() {
    let spec = BatchNormSpec::new(4);
    let mut x = Tensor::zeros(Shape::new(2, 3, 3, 4));
    let good = sums_ref(&x);
    for bad in [
        ChannelSums {
            count: 17,
            ..good.clone()
        },
        ChannelSums {
            sum: vec![0.0; 3],
            ..good.clone()
        },
        ChannelSums {
            sumsq: vec![0.0; 5],
            ..good.clone()
        },
    ] {
        assert!(matches!(
            batchnorm_forward_from_sums(&spec, &mut x, &[1.0; 4], &[0.0; 4], &bad),
            Err(Error::Shape(m)) if m.contains("channel sums")
        ));
    }
    assert!(matches!(
        batchnorm_forward_from_sums(&spec, &mut x, &[1.0; 3], &[0.0; 4], &good),
        Err(Error::Shape(m)) if m.contains("gamma")
    ));
}

/// In-place add at every position equals the out-of-place add bit for bit,
/// on a size that crosses the parallel-chunk and block boundaries.
#[test]
fn add_inplace_matches_add_forward() {
    let mut rng = Rng(17);
    let s = Shape::new(3, 37, 29, 23); // 74,037 values: > one 65,536 chunk
    let ts: Vec<Tensor> = (0..4).map(|_| rng.tensor(s)).collect();
    for k in 1..=4 {
        let refs: Vec<&Tensor> = ts[..k].iter().collect();
        let mut want = poisoned(s);
        add_forward(&refs, &mut want).unwrap();
        for pos in 0..k {
            let mut acc = ts[pos].clone();
            let others: Vec<&Tensor> = (0..k).filter(|&j| j != pos).map(|j| &ts[j]).collect();
            add_forward_inplace(&mut acc, pos, &others).unwrap();
            let same = acc
                .data
                .iter()
                .zip(&want.data)
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "k={k} pos={pos}");
        }
    }
    let mut acc = ts[0].clone();
    assert!(matches!(
        add_forward_inplace(&mut acc, 2, &[&ts[1]]),
        Err(Error::Arg(_))
    ));
    let other = Tensor::zeros(Shape::new(3, 37, 29, 22));
    assert!(matches!(
        add_forward_inplace(&mut acc, 0, &[&other]),
        Err(Error::Shape(_))
    ));
}

/// The fused kernels give bitwise the same results on 1 and 2 threads.
#[test]
fn fused_results_do_not_depend_on_thread_count() {
    let mut rng = Rng(23);
    let x = rng.tensor(Shape::new(5, 13, 11, 32));
    let others: Vec<Tensor> = (0..2).map(|_| rng.tensor(x.shape)).collect();
    let run = |threads: usize| {
        pool_of(threads).install(|| {
            let mut out: Vec<Vec<u64>> = Vec::new();
            for (s, relu) in [
                (spec(32, 48, 3, 1, 1, 1, 1), true),
                (spec(32, 32, 1, 1, 0, 1, 1), false),
                (spec(32, 32, 3, 2, 1, 1, 32), true),
                (spec(32, 34, 3, 1, 1, 1, 2), false),
            ] {
                let w = Rng(3).vec(s.weight_len());
                let mut y = poisoned(s.out_shape(x.shape).unwrap());
                let sums =
                    conv2d_forward_stats(&s, &x, &w, &mut y, relu, ConvKernel::Auto).unwrap();
                out.push(bits(&sums.sum));
                out.push(bits(&sums.sumsq));
                let bn = BatchNormSpec::new(s.cout);
                let g = vec![1.0; s.cout];
                let b = vec![0.0; s.cout];
                batchnorm_forward_from_sums(&bn, &mut y, &g, &b, &sums).unwrap();
                out.push(y.data.iter().map(|v| v.to_bits() as u64).collect());
            }
            let mut acc = x.clone();
            add_forward_inplace(&mut acc, 1, &[&others[0], &others[1]]).unwrap();
            out.push(acc.data.iter().map(|v| v.to_bits() as u64).collect());
            out
        })
    };
    assert_eq!(run(1), run(2), "1-thread and 2-thread results differ");
}
