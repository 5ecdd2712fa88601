//! Tests of the 2-d convolution: the shape rule; the CPU kernels (AVX-512,
//! AVX2, portable, depthwise, Winograd) against a naive f64 reference from
//! the definition on random odd sizes (property tests, outputs poisoned
//! with NaN) and against each other bit for bit; the statistics entry point
//! and the fused conv + BatchNorm; the backward against finite
//! differences; and the CUDA kernels (host emulation, or a GPU) against the
//! CPU twins (forward, with statistics) and against f64 references
//! (backward).
//!
//! The CUDA conv outputs are compared with a tolerance of 1e-4 relative to
//! `conv(|x|, |w|)` at that element (the sum of the magnitudes of the
//! terms: fp32 reorders the sum, so cancellation can make the plain
//! relative error of a near-zero output meaningless); BatchNorm statistics
//! to 1e-4 relative.

use super::*;
use crate::ops::batchnorm::cpu::{batchnorm_forward, batchnorm_forward_from_sums};
use crate::ops::batchnorm::cuda as bn_cuda;
use crate::ops::batchnorm::BatchNormSpec;
use crate::ops::conv2d::cpu::{
    conv2d_forward, conv2d_forward_algo, conv2d_forward_relu_input, conv2d_forward_stats,
    conv2d_forward_winograd, conv2d_forward_with, ConvKernel,
};
use crate::ops::conv2d::cuda::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_backward_weight_splits, ConvInput,
};
use crate::ops::conv2d::{cpu as conv, cuda as conv_cuda};
use crate::ops::relu::cpu::relu_forward_inplace;
use crate::ops::tests::{
    assert_close, assert_near, bits, bn_ref, bn_scale, check, check_grad, check_stats,
    conv_spec as spec, dot, f64s, nan_f32, nan_f64, poisoned, proptest_config, relu64, start,
    sums_ref,
};
use crate::ops::CudaGrad;
use crate::runtime::cuda::CudaDevice;
use crate::tensor::Tensor;
use crate::testing::{download, upload, Rng, POISON};
use proptest::prelude::*;

// ------------------------------------------------------------- shape rule

fn err_msg(r: Result<Shape>) -> String {
    match r {
        Err(Error::Shape(m)) => m,
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn nb201_shapes() {
    let s = Conv2dSpec::new(16, 16, 3, 1, 1);
    assert_eq!(
        s.out_shape(Shape::new(128, 32, 32, 16)).unwrap(),
        Shape::new(128, 32, 32, 16)
    );
    let s = Conv2dSpec::new(16, 32, 3, 2, 1);
    assert_eq!(
        s.out_shape(Shape::new(2, 32, 32, 16)).unwrap(),
        Shape::new(2, 16, 16, 32)
    );
    let s = Conv2dSpec {
        dilation: 2,
        pad: 2,
        ..Conv2dSpec::new(8, 8, 3, 1, 0)
    };
    assert_eq!(
        s.out_shape(Shape::new(1, 7, 5, 8)).unwrap(),
        Shape::new(1, 7, 5, 8)
    );
    assert_eq!(s.weight_len(), 3 * 3 * 8 * 8);
    assert_eq!(s.fan_in(), 72);
    assert_eq!(
        Conv2dSpec::new(3, 16, 3, 1, 1)
            .flops(Shape::new(1, 32, 32, 3))
            .unwrap(),
        2 * 32 * 32 * 16 * 27
    );
}

#[test]
fn shape_errors_name_the_dimension() {
    let s = Conv2dSpec::new(16, 16, 3, 1, 1);
    assert!(err_msg(s.out_shape(Shape::new(1, 8, 8, 15))).contains("cin"));
    let s = Conv2dSpec {
        groups: 3,
        ..Conv2dSpec::new(6, 8, 3, 1, 1)
    };
    assert!(err_msg(s.out_shape(Shape::new(1, 8, 8, 6))).contains("cout"));
    let s = Conv2dSpec {
        groups: 4,
        ..Conv2dSpec::new(6, 8, 3, 1, 1)
    };
    assert!(err_msg(s.out_shape(Shape::new(1, 8, 8, 6))).contains("cin"));
    let s = Conv2dSpec::new(4, 4, 5, 1, 0);
    assert!(err_msg(s.out_shape(Shape::new(1, 4, 9, 4))).contains("input h"));
    assert!(err_msg(s.out_shape(Shape::new(1, 9, 4, 4))).contains("input w"));
    let s = Conv2dSpec::new(4, 4, 3, 0, 1);
    assert!(err_msg(s.out_shape(Shape::new(1, 4, 4, 4))).contains("stride"));
    let s = Conv2dSpec {
        dilation: 0,
        ..Conv2dSpec::new(4, 4, 3, 1, 1)
    };
    assert!(err_msg(s.out_shape(Shape::new(1, 4, 4, 4))).contains("dilation"));
    let s = Conv2dSpec::new(4, 0, 3, 1, 1);
    assert!(err_msg(s.out_shape(Shape::new(1, 4, 4, 4))).contains("cout"));
    let s = Conv2dSpec::new(4, 4, 0, 1, 1);
    assert!(err_msg(s.out_shape(Shape::new(1, 4, 4, 4))).contains("kh"));
    let s = Conv2dSpec::new(4, 4, 3, 1, 1 << 40);
    assert!(err_msg(s.out_shape(Shape::new(1, 4, 4, 4))).contains("overflows"));
    let s = Conv2dSpec::new(4, 4, 3, 1, 1);
    assert!(err_msg(s.out_shape(Shape::new(0, 4, 4, 4))).contains("n = 0"));
    assert!(err_msg(s.out_shape(Shape::new(1, 0, 4, 4))).contains("h = 0"));
}

// ------------------------------------------------------ CPU forward

/// Naive convolution from the definition, in f64, of the NHWC input `x` of
/// shape `xs`: the output shape (from the formula, not from
/// `Conv2dSpec::out_shape`) and per output element its value and the sum of
/// the absolute values of its terms.
fn conv_ref64(spec: &Conv2dSpec, xs: Shape, x: &[f64], w: &[f64]) -> (Shape, Vec<f64>, Vec<f64>) {
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
                                let xv = x[((n * xs.h + iy as usize) * xs.w + ix as usize) * xs.c
                                    + g * cin_g
                                    + ci];
                                let wv = w[((ky * spec.kw + kx) * cin_g + ci) * spec.cout + co];
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

/// Naive convolution from the definition (ReLU applied to `x` first when
/// `relu`): the output shape, and per output element its value and the sum
/// of |terms|, in f64.
fn conv_ref(spec: &Conv2dSpec, x: &Tensor, w: &[f32], relu: bool) -> (Shape, Vec<f64>, Vec<f64>) {
    let xv: Vec<f64> = x
        .data
        .iter()
        .map(|&v| if relu { (v as f64).max(0.0) } else { v as f64 })
        .collect();
    conv_ref64(spec, x.shape, &xv, &f64s(w))
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
    #![proptest_config(proptest_config(160))]

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
        let want = if crate::ops::conv2d::cpu::winograd::applies(&s) {
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

// ------------------------------------ statistics and the fused conv + BN

proptest! {
    #![proptest_config(proptest_config(96))]

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
}

// ------------------------------------------------------ CPU backward

#[test]
fn conv2d_gradients_match_finite_differences() {
    let mut rng = Rng(11);
    let cases = [
        // (n, h, w, cin, cout, kh, kw, stride, pad, dilation, groups)
        (2, 5, 6, 3, 5, 3, 3, 1, 1, 1, 1),  // stride-1 fast path
        (2, 7, 5, 4, 6, 3, 3, 2, 1, 1, 2),  // stride 2, groups 2
        (1, 7, 8, 2, 3, 3, 3, 1, 2, 2, 1),  // dilation 2
        (2, 6, 5, 3, 17, 1, 1, 1, 0, 1, 1), // 1x1, 16-wide block + 1
        (1, 6, 7, 4, 4, 3, 3, 1, 1, 1, 4),  // depthwise
        (1, 6, 7, 5, 18, 2, 3, 2, 0, 1, 1), // non-square kernel, stride 2
        (2, 5, 5, 2, 16, 3, 3, 1, 3, 1, 1), // pad > dilation·(k − 1): general path
        (1, 8, 9, 6, 4, 3, 3, 3, 1, 2, 2),  // stride 3, dilation 2, groups
    ];
    for &(n, h, w, cin, cout, kh, kw, stride, pad, dil, groups) in &cases {
        let spec = Conv2dSpec {
            cin,
            cout,
            kh,
            kw,
            stride,
            pad,
            dilation: dil,
            groups,
        };
        let xs = Shape::new(n, h, w, cin);
        let ys = spec.out_shape(xs).unwrap();
        let x = rng.tensor(xs);
        let wt = rng.vec(spec.weight_len());
        let r = rng.vec(ys.len());
        let dy = Tensor::from_vec(ys, r.clone()).unwrap();
        // Forward agrees with the reference.
        let mut y = Tensor::filled(ys, f32::NAN);
        conv::conv2d_forward(&spec, &x, &wt, &mut y).unwrap();
        assert_near(
            "conv forward",
            &y.data,
            &conv_ref64(&spec, xs, &f64s(&x.data), &f64s(&wt)).1,
            1e-5,
        );
        let mut dx = Tensor::filled(xs, f32::NAN);
        conv::conv2d_backward_input(&spec, xs, &dy, &wt, &mut dx).unwrap();
        let mut dw = vec![f32::NAN; wt.len()];
        conv::conv2d_backward_weight(&spec, &x, &dy, &mut dw).unwrap();
        let tag = format!("{spec:?} on {xs}");
        let w64 = f64s(&wt);
        check_grad(&format!("dx {tag}"), &x.data, &dx.data, 1e-4, |xv| {
            dot(&conv_ref64(&spec, xs, xv, &w64).1, &r)
        });
        let x64 = f64s(&x.data);
        check_grad(&format!("dw {tag}"), &wt, &dw, 1e-4, |wv| {
            dot(&conv_ref64(&spec, xs, &x64, wv).1, &r)
        });
        // The ReLU-input variant: gradient of conv(relu(x), w) in w.
        let mut dwr = vec![f32::NAN; wt.len()];
        conv::conv2d_backward_weight_relu_input(&spec, &x, &dy, &mut dwr).unwrap();
        let xr = relu64(&x64);
        check_grad(&format!("dw relu-input {tag}"), &wt, &dwr, 1e-4, |wv| {
            dot(&conv_ref64(&spec, xs, &xr, wv).1, &r)
        });
    }
}

#[test]
fn conv2d_backward_rejects_bad_shapes() {
    let spec = Conv2dSpec::new(3, 4, 3, 1, 1);
    let xs = Shape::new(1, 5, 5, 3);
    let dy = Tensor::zeros(Shape::new(1, 5, 5, 5));
    let mut dx = Tensor::zeros(xs);
    let w = vec![0.0; spec.weight_len()];
    assert!(conv::conv2d_backward_input(&spec, xs, &dy, &w, &mut dx).is_err());
    let mut dw = vec![0.0; spec.weight_len() - 1];
    let dy = Tensor::zeros(Shape::new(1, 5, 5, 4));
    assert!(conv::conv2d_backward_weight(&spec, &Tensor::zeros(xs), &dy, &mut dw).is_err());
}

// ------------------------------------------ CUDA forward against the CPU

/// One conv case: (n, h, w, cin, cout, k, stride, pad, dilation, groups, relu_input).
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    bool,
);

const ODD_CASES: &[Case] = &[
    (1, 1, 1, 1, 1, 1, 1, 0, 1, 1, false),
    (2, 3, 3, 3, 5, 3, 1, 1, 1, 1, true),
    (3, 7, 7, 5, 17, 3, 2, 1, 1, 1, false),
    (2, 13, 13, 16, 16, 3, 1, 1, 1, 1, true),
    (2, 13, 7, 17, 48, 1, 1, 0, 1, 1, false),
    (1, 13, 13, 32, 32, 5, 1, 2, 1, 1, true),
    (2, 7, 13, 16, 16, 3, 1, 2, 2, 1, false),
    (2, 13, 13, 48, 48, 3, 2, 1, 1, 1, true),
    (2, 7, 7, 32, 32, 3, 1, 1, 1, 2, false),
    (2, 13, 13, 16, 16, 3, 1, 1, 1, 16, true),
    (2, 13, 13, 48, 48, 5, 2, 2, 1, 48, false),
    (2, 7, 7, 17, 17, 3, 1, 1, 2, 17, false),
    (2, 7, 7, 6, 10, 3, 2, 0, 1, 2, true),
    (1, 3, 3, 3, 16, 3, 1, 2, 1, 1, false),
    (1, 32, 32, 3, 16, 3, 1, 1, 1, 1, false),
    (2, 5, 3, 1, 3, 1, 2, 0, 1, 1, false),
    (4, 13, 13, 32, 48, 1, 2, 0, 1, 1, true),
    (2, 13, 13, 3, 96, 3, 1, 1, 1, 1, false),
    (2, 7, 7, 64, 130, 1, 1, 0, 1, 1, false),
    (2, 9, 9, 8, 8, 3, 1, 1, 1, 4, true),
    (2, 32, 32, 16, 16, 3, 1, 1, 1, 1, true),
    (3, 13, 13, 5, 5, 5, 2, 1, 2, 5, true),
    (2, 1, 1, 48, 32, 3, 1, 1, 1, 1, false),
    // DARTS: dil_conv_5x5 (pad 4, dilation 2, depthwise) at stride 1 and 2,
    // sep_conv_5x5 at stride 2, the factorized reduce's 1×1 stride-2 conv
    // on an odd (cropped) input.
    (2, 13, 13, 17, 17, 5, 1, 4, 2, 17, true),
    (2, 13, 13, 17, 17, 5, 2, 4, 2, 17, true),
    (2, 13, 11, 20, 20, 5, 2, 2, 1, 20, true),
    (2, 13, 13, 17, 8, 1, 2, 0, 1, 1, false),
];

/// The NB201 convolutions at batch 128 (stem, cell convs per stage, the
/// ResBlock's stride-2 convs and its shortcut 1×1).
const NB201_CASES: &[Case] = &[
    (128, 32, 32, 3, 16, 3, 1, 1, 1, 1, false),
    (128, 32, 32, 16, 16, 3, 1, 1, 1, 1, true),
    (128, 16, 16, 32, 32, 3, 1, 1, 1, 1, true),
    (128, 8, 8, 64, 64, 3, 1, 1, 1, 1, true),
    (128, 32, 32, 16, 16, 1, 1, 0, 1, 1, true),
    (128, 16, 16, 32, 32, 1, 1, 0, 1, 1, true),
    (128, 8, 8, 64, 64, 1, 1, 0, 1, 1, true),
    (128, 32, 32, 16, 32, 3, 2, 1, 1, 1, true),
    (128, 16, 16, 32, 64, 3, 2, 1, 1, 1, true),
    (128, 16, 16, 16, 32, 1, 1, 0, 1, 1, false),
];

fn spec_of(c: &Case) -> (Conv2dSpec, Shape, bool) {
    let &(n, h, w, cin, cout, k, stride, pad, dilation, groups, relu) = c;
    let spec = Conv2dSpec {
        cin,
        cout,
        kh: k,
        kw: k,
        stride,
        pad,
        dilation,
        groups,
    };
    (spec, Shape::new(n, h, w, cin), relu)
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|a| a.abs()).collect()
}

/// Runs one case through both conv kernels (plain and statistics) and
/// checks y, the channel sums and the BN statistics derived from them.
fn check_conv_case(dev: &CudaDevice, case: &Case, seed: u64) {
    let (spec, ishape, relu) = spec_of(case);
    let oshape = spec.out_shape(ishape).expect("valid case");
    let mut rng = Rng(seed);
    let x = Tensor::from_vec(ishape, rng.scaled(ishape.len(), 1.0)).unwrap();
    let bound_w = 1.0 / (spec.fan_in() as f32).sqrt();
    let w = rng.scaled(spec.weight_len(), bound_w);

    // CPU twin, and the per-element error scale conv(|x|, |w|).
    let mut want = Tensor::zeros(oshape);
    let sums =
        conv2d_forward_stats(&spec, &x, &w, &mut want, relu, ConvKernel::Auto).expect("cpu conv");
    let xa = Tensor::from_vec(ishape, abs(&x.data)).unwrap();
    let mut scale = Tensor::zeros(oshape);
    conv2d_forward_with(&spec, &xa, &abs(&w), &mut scale, false, ConvKernel::Auto)
        .expect("cpu |conv|");

    let xd = upload(dev, &x.data);
    let wd = upload(dev, &w);
    let mut yd = upload(dev, &nan_f32(oshape.len()));
    let xv = xd.as_view();
    let input = conv_cuda::ConvInput {
        x: &xv,
        shape: ishape,
        relu,
    };
    conv_cuda::conv2d_forward(dev, &spec, input, &wd.as_view(), &mut yd.as_view_mut())
        .expect("launch conv");
    let got = download(dev, &yd);
    let what = format!("{spec:?} on {ishape} relu {relu}");
    for (i, ((&g, &c), &s)) in got.iter().zip(&want.data).zip(&scale.data).enumerate() {
        let tol = 1e-4 * s + 1e-30;
        assert!(
            (g - c).abs() <= tol,
            "{what}: y[{i}] (pixel {}, channel {}): gpu {g} cpu {c} (|terms| {s})",
            i / spec.cout,
            i % spec.cout
        );
    }

    // Statistics variant: y bitwise equal to the plain kernel's (same
    // accumulation order), sums within tolerance of the CPU's.
    let parts = conv_cuda::conv2d_stats_parts(&spec, ishape).unwrap();
    let mut yd2 = upload(dev, &nan_f32(oshape.len()));
    let mut ps = upload(dev, &nan_f64(parts * spec.cout));
    let mut pq = upload(dev, &nan_f64(parts * spec.cout));
    let mut stats = crate::ops::CudaPartials {
        psum: ps.as_view_mut(),
        psumsq: pq.as_view_mut(),
    };
    let p = conv_cuda::conv2d_forward_stats(
        dev,
        &spec,
        input,
        &wd.as_view(),
        &mut yd2.as_view_mut(),
        &mut stats,
    )
    .expect("launch conv stats");
    assert_eq!(p, parts);
    let got2 = download(dev, &yd2);
    for (i, (a, b)) in got.iter().zip(&got2).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{what}: stats variant y[{i}]");
    }
    let (hs, hq) = (download(dev, &ps), download(dev, &pq));
    let c = spec.cout;
    // Per channel: Σ |terms| bounds the error of Σy; Σ 2|y|·|terms| (plus
    // the relative rounding of Σy² itself) bounds that of Σy².
    let mut scale_sum = vec![0.0f64; c];
    let mut scale_sq = vec![0.0f64; c];
    for (i, (&s, &y)) in scale.data.iter().zip(&want.data).enumerate() {
        scale_sum[i % c] += s as f64;
        scale_sq[i % c] += 2.0 * (y.abs() as f64) * s as f64;
    }
    for ch in 0..c {
        let s: f64 = (0..parts).map(|p| hs[p * c + ch]).sum();
        let q: f64 = (0..parts).map(|p| hq[p * c + ch]).sum();
        assert!(
            (s - sums.sum[ch]).abs() <= 1e-4 * scale_sum[ch] + 1e-30,
            "{what}: channel {ch}: Σy gpu {s} cpu {}",
            sums.sum[ch]
        );
        assert!(
            (q - sums.sumsq[ch]).abs() <= 1e-4 * (sums.sumsq[ch] + scale_sq[ch]) + 1e-30,
            "{what}: channel {ch}: Σy² gpu {q} cpu {}",
            sums.sumsq[ch]
        );
    }

    // BN statistics from the conv's partials vs the CPU's from its sums.
    let bn = BatchNormSpec::new(c);
    let (gamma, beta) = (rng.scaled(c, 1.0), rng.scaled(c, 1.0));
    let mut cpu_y = want.clone();
    let stats = batchnorm_forward_from_sums(&bn, &mut cpu_y, &gamma, &beta, &sums).expect("cpu bn");
    let mut md = upload(dev, &nan_f32(c));
    let mut sd = upload(dev, &nan_f32(c));
    bn_cuda::batchnorm_stats_from_partials(
        dev,
        &bn,
        oshape.n * oshape.h * oshape.w,
        &ps.as_view(),
        &pq.as_view(),
        &mut md.as_view_mut(),
        &mut sd.as_view_mut(),
    )
    .expect("launch bn_finalize");
    check_stats(&what, &download(dev, &md), &download(dev, &sd), &stats);
}

gpu_test!(conv2d_matches_cpu_at_odd_sizes);
fn conv2d_matches_cpu_at_odd_sizes(dev: &CudaDevice) {
    for (i, case) in ODD_CASES.iter().enumerate() {
        check_conv_case(dev, case, 1000 + i as u64);
    }
}

gpu_test!(conv2d_matches_cpu_at_nb201_shapes);
fn conv2d_matches_cpu_at_nb201_shapes(dev: &CudaDevice) {
    for (i, case) in NB201_CASES.iter().enumerate() {
        check_conv_case(dev, case, 2000 + i as u64);
    }
}

gpu_test!(conv2d_rejects_bad_buffers_without_launching);
fn conv2d_rejects_bad_buffers_without_launching(dev: &CudaDevice) {
    let spec = Conv2dSpec::new(3, 4, 3, 1, 1);
    let ishape = Shape::new(1, 5, 5, 3);
    let xd = upload(dev, &vec![0.0f32; ishape.len()]);
    let wd = upload(dev, &vec![0.0f32; spec.weight_len() - 1]);
    let mut yd = upload(dev, &vec![0.0f32; 5 * 5 * 4]);
    let xv = xd.as_view();
    let input = conv_cuda::ConvInput {
        x: &xv,
        shape: ishape,
        relu: false,
    };
    let r = conv_cuda::conv2d_forward(dev, &spec, input, &wd.as_view(), &mut yd.as_view_mut());
    assert!(matches!(r, Err(crate::Error::Shape(_))), "{r:?}");
}

// ------------------------------------ CUDA backward against f64 references

gpu_test!(conv2d_backward_matches_reference);
fn conv2d_backward_matches_reference(dev: &CudaDevice) {
    let mut rng = Rng(41);
    // n, h, w, cin, cout, k, stride, pad, dilation, groups, relu, accumulate
    let cases: &[[usize; 12]] = &[
        [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0],
        [2, 5, 5, 3, 5, 3, 1, 1, 1, 1, 1, 0],
        [3, 7, 7, 5, 17, 3, 2, 1, 1, 1, 0, 1],
        [2, 13, 11, 16, 16, 3, 1, 1, 1, 1, 1, 1],
        [2, 9, 9, 17, 48, 1, 1, 0, 1, 1, 0, 0],
        [1, 9, 9, 32, 33, 5, 1, 2, 1, 1, 1, 0],
        [2, 7, 9, 16, 16, 3, 1, 2, 2, 1, 0, 0],
        [2, 9, 9, 48, 40, 3, 2, 1, 1, 1, 1, 0],
        [2, 7, 7, 32, 32, 3, 1, 1, 1, 2, 0, 1],
        [2, 9, 9, 16, 16, 3, 1, 1, 1, 16, 1, 0],
        [2, 9, 9, 20, 20, 5, 2, 2, 1, 20, 0, 0],
        [2, 7, 7, 6, 10, 3, 2, 0, 1, 2, 1, 1],
        [2, 6, 6, 70, 5, 3, 3, 1, 1, 1, 0, 0],
        [2, 7, 7, 8, 8, 3, 1, 3, 3, 4, 1, 1],
        // Many pixels: several weight-gradient splits.
        [9, 17, 15, 16, 24, 3, 1, 1, 1, 1, 1, 0],
        [64, 16, 16, 3, 16, 3, 1, 1, 1, 1, 0, 0],
    ];
    for c in cases {
        let [n, h, w, cin, cout, k, s, p, d, g, relu, acc] = *c;
        let (relu, acc) = (relu == 1, acc == 1);
        let spec = Conv2dSpec {
            cin,
            cout,
            kh: k,
            kw: k,
            stride: s,
            pad: p,
            dilation: d,
            groups: g,
        };
        let xs = Shape::new(n, h, w, cin);
        let ys = spec.out_shape(xs).unwrap();
        let (cin_g, cout_g) = (cin / g, cout / g);
        let x = rng.vec(xs.len());
        let wt = rng.vec(spec.weight_len());
        let dy = rng.vec(ys.len());
        let dx0 = start(&mut rng, xs.len(), acc);
        // Reference by scattering every product of the forward definition.
        let (mut rdx, mut mdx) = (vec![0f64; xs.len()], vec![0f64; xs.len()]);
        let (mut rdw, mut mdw) = (vec![0f64; wt.len()], vec![0f64; wt.len()]);
        for b in 0..n {
            for oy in 0..ys.h {
                for ox in 0..ys.w {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky * d) as isize - p as isize;
                            let ix = (ox * s + kx * d) as isize - p as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            for co in 0..cout {
                                let grp = co / cout_g;
                                let dv = f64::from(dy[((b * ys.h + oy) * ys.w + ox) * cout + co]);
                                for ci in 0..cin_g {
                                    let xi = ((b * h + iy) * w + ix) * cin + grp * cin_g + ci;
                                    let wi = ((ky * k + kx) * cin_g + ci) * cout + co;
                                    let mut xv = f64::from(x[xi]);
                                    if relu && xv < 0.0 {
                                        xv = 0.0;
                                    }
                                    let t = dv * f64::from(wt[wi]);
                                    rdx[xi] += t;
                                    mdx[xi] += t.abs();
                                    rdw[wi] += xv * dv;
                                    mdw[wi] += (xv * dv).abs();
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in 0..xs.len() {
            if relu && x[i] <= 0.0 {
                rdx[i] = 0.0;
            }
            if acc {
                rdx[i] += f64::from(dx0[i]);
                mdx[i] += f64::from(dx0[i]).abs();
            }
        }
        let (xd, wd, dyd) = (upload(dev, &x), upload(dev, &wt), upload(dev, &dy));
        let mut dxd = upload(dev, &dx0);
        let mask = relu.then(|| xd.slice(..));
        let mut grad = CudaGrad {
            dx: dxd.slice_mut(..),
            accumulate: acc,
        };
        conv2d_backward_input(
            dev,
            &spec,
            xs,
            &dyd.slice(..),
            &wd.slice(..),
            &mut grad,
            mask.as_ref(),
        )
        .unwrap();
        let splits = conv2d_backward_weight_splits(&spec, xs).unwrap();
        let mut part = upload(dev, &vec![POISON; splits * spec.weight_len()]);
        let mut dwd = upload(dev, &vec![POISON; spec.weight_len()]);
        let xv = xd.slice(..);
        let input = ConvInput {
            x: &xv,
            shape: xs,
            relu,
        };
        conv2d_backward_weight(
            dev,
            &spec,
            input,
            &dyd.slice(..),
            &mut dwd.slice_mut(..),
            &mut part.slice_mut(..),
        )
        .unwrap();
        check(
            &format!("conv dx {c:?}"),
            &download(dev, &dxd),
            &rdx,
            &mdx,
            1e-5,
        );
        check(
            &format!("conv dw {c:?}"),
            &download(dev, &dwd),
            &rdw,
            &mdw,
            1e-5,
        );
        // Deterministic: a second run gives the same bits.
        let first = download(dev, &dwd);
        let xv = xd.slice(..);
        let input = ConvInput {
            x: &xv,
            shape: xs,
            relu,
        };
        conv2d_backward_weight(
            dev,
            &spec,
            input,
            &dyd.slice(..),
            &mut dwd.slice_mut(..),
            &mut part.slice_mut(..),
        )
        .unwrap();
        let again = download(dev, &dwd);
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "conv dw {c:?} differs between two runs"
        );
    }
}

gpu_test!(conv2d_backward_rejects_bad_lengths);
fn conv2d_backward_rejects_bad_lengths(dev: &CudaDevice) {
    let spec = Conv2dSpec::new(3, 5, 3, 1, 1);
    let xs = Shape::new(2, 4, 4, 3);
    let x = upload(dev, &vec![0f32; xs.len()]);
    let dy = upload(dev, &vec![0f32; 2 * 4 * 4 * 5]);
    let mut dw = upload(dev, &vec![0f32; spec.weight_len()]);
    let splits = conv2d_backward_weight_splits(&spec, xs).unwrap();
    let mut part = upload(dev, &vec![0f32; splits * spec.weight_len() + 1]);
    let xv = x.slice(..);
    let input = ConvInput {
        x: &xv,
        shape: xs,
        relu: false,
    };
    assert!(conv2d_backward_weight(
        dev,
        &spec,
        input,
        &dy.slice(..),
        &mut dw.slice_mut(..),
        &mut part.slice_mut(..),
    )
    .is_err());
    let w = upload(dev, &vec![0f32; spec.weight_len()]);
    let mut dx = upload(dev, &vec![0f32; xs.len()]);
    let short = x.slice(1..);
    let mut grad = CudaGrad {
        dx: dx.slice_mut(..),
        accumulate: false,
    };
    assert!(conv2d_backward_input(
        dev,
        &spec,
        xs,
        &dy.slice(..),
        &w.slice(..),
        &mut grad,
        Some(&short),
    )
    .is_err());
}
