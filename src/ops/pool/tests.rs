//! Tests of max and average pooling: the shape rule; the CPU forward
//! against an f64 reference from the definition (property tests, border
//! divisors, padding never the max); the backward against finite
//! differences and with ties; and the CUDA kernels (host emulation, or a
//! GPU) against the CPU (max bit for bit on special values, average to
//! 1e-5) and an f64 reference (backward, with ties and NaN).

use super::*;
use crate::ops::pool::cpu::pool_forward;
use crate::ops::pool::cuda::pool_backward;
use crate::ops::pool::{cpu as pool_cpu, cuda as pool_cuda};
use crate::ops::tests::{
    assert_bitwise, assert_close, assert_near, assert_within, check, check_grad, dot, download_at,
    f64s, poisoned, poisoned_at, proptest_config, start, upload_at, view, view_mut, CHANNELS,
    SIDES,
};
use crate::runtime::cuda::CudaDevice;
use crate::tensor::Tensor;
use crate::testing::{download, upload, Rng, POISON};
use proptest::prelude::*;

#[test]
fn shape_rule() {
    let avg = PoolSpec {
        kind: PoolKind::Avg,
        k: 3,
        stride: 1,
        pad: 1,
        count_include_pad: false,
    };
    let x = Shape::new(2, 7, 5, 3);
    assert_eq!(avg.out_shape(x).unwrap(), x);
    let p2 = PoolSpec {
        k: 2,
        stride: 2,
        pad: 0,
        ..avg
    };
    assert_eq!(p2.out_shape(x).unwrap(), Shape::new(2, 3, 2, 3));
    for (spec, shape, needle) in [
        (PoolSpec { pad: 2, ..avg }, x, "pad"),
        (PoolSpec { k: 0, ..avg }, x, "k"),
        (PoolSpec { stride: 0, ..avg }, x, "stride"),
        (
            PoolSpec {
                k: 5,
                pad: 0,
                ..avg
            },
            Shape::new(1, 4, 9, 1),
            "input h",
        ),
        (
            PoolSpec {
                k: 5,
                pad: 0,
                ..avg
            },
            Shape::new(1, 9, 4, 1),
            "input w",
        ),
        (avg, Shape::new(1, 3, 3, 0), "c = 0"),
    ] {
        match spec.out_shape(shape) {
            Err(Error::Shape(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected an error for {spec:?} {shape}, got {other:?}"),
        }
    }
}

// ------------------------------------------------------------ CPU forward

/// Pooling from the definition, in f64, of the NHWC input `x` of shape
/// `xs`: the output shape (from the formula, not from `PoolSpec::out_shape`)
/// and the values.
fn pool_ref64(spec: &PoolSpec, xs: Shape, x: &[f64]) -> (Shape, Vec<f64>) {
    let s = xs;
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
                            let v = x[((n * s.h + iy as usize) * s.w + ix as usize) * s.c + c];
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

/// [`pool_ref64`] of a tensor.
fn pool_ref(spec: &PoolSpec, x: &Tensor) -> (Shape, Vec<f64>) {
    pool_ref64(spec, x.shape, &f64s(&x.data))
}

proptest! {
    #![proptest_config(proptest_config(128))]

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

// ----------------------------------------------------------- CPU backward

#[test]
fn pool_gradients_match_finite_differences() {
    let mut rng = Rng(14);
    for (kind, k, stride, pad, incl) in [
        (PoolKind::Avg, 3, 1, 1, false),
        (PoolKind::Avg, 3, 2, 1, true),
        (PoolKind::Avg, 2, 2, 0, false),
        (PoolKind::Max, 3, 2, 1, false),
        (PoolKind::Max, 3, 1, 1, false),
        (PoolKind::Max, 2, 2, 0, false),
    ] {
        let spec = PoolSpec {
            kind,
            k,
            stride,
            pad,
            count_include_pad: incl,
        };
        let xs = Shape::new(2, 5, 7, 3);
        let x = rng.tensor(xs);
        let ys = spec.out_shape(xs).unwrap();
        let mut y = Tensor::filled(ys, f32::NAN);
        pool_cpu::pool_forward(&spec, &x, &mut y).unwrap();
        assert_near(
            "pool forward",
            &y.data,
            &pool_ref64(&spec, xs, &f64s(&x.data)).1,
            1e-6,
        );
        let r = rng.vec(ys.len());
        let dy = Tensor::from_vec(ys, r.clone()).unwrap();
        let mut dx = Tensor::filled(xs, f32::NAN);
        pool_cpu::pool_backward(&spec, Some(&x), &dy, &mut dx).unwrap();
        // Random values are distinct, so max windows have one arg-max and
        // a small step does not change it.
        check_grad(
            &format!("pool dx {spec:?}"),
            &x.data,
            &dx.data,
            1e-6,
            |xv| dot(&pool_ref64(&spec, xs, xv).1, &r),
        );
        if kind == PoolKind::Avg {
            let mut dx2 = Tensor::filled(xs, f32::NAN);
            pool_cpu::pool_backward(&spec, None, &dy, &mut dx2).unwrap();
            assert_eq!(dx2, dx);
        } else {
            assert!(pool_cpu::pool_backward(&spec, None, &dy, &mut dx).is_err());
        }
    }
}

#[test]
fn max_pool_ties_go_to_the_first_tap() {
    // A constant image: every window's maximum is tied; the forward keeps
    // the first tap in scan order, so all gradient goes there.
    let spec = PoolSpec {
        kind: PoolKind::Max,
        k: 2,
        stride: 2,
        pad: 0,
        count_include_pad: false,
    };
    let xs = Shape::new(1, 4, 4, 1);
    let x = Tensor::filled(xs, 3.0);
    let dy = Tensor::from_vec(Shape::new(1, 2, 2, 1), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let mut dx = Tensor::filled(xs, f32::NAN);
    pool_cpu::pool_backward(&spec, Some(&x), &dy, &mut dx).unwrap();
    let mut want = vec![0.0; 16];
    want[0] = 1.0;
    want[2] = 2.0;
    want[8] = 3.0;
    want[10] = 4.0;
    assert_eq!(dx.data, want);
}

// ---------------------------------------------------------------- CUDA

/// Every pool geometry of the sizes above that the shape rule accepts.
fn pool_cases() -> Vec<(PoolSpec, Shape)> {
    let mut cases = Vec::new();
    for (kind, incl) in [
        (PoolKind::Max, false),
        (PoolKind::Avg, false),
        (PoolKind::Avg, true),
    ] {
        for k in [2usize, 3] {
            for stride in [1usize, 2] {
                for pad in [0usize, 1] {
                    let spec = PoolSpec {
                        kind,
                        k,
                        stride,
                        pad,
                        count_include_pad: incl,
                    };
                    for &h in &SIDES {
                        for &w in &SIDES {
                            for &c in &CHANNELS {
                                let shape = Shape::new(2, h, w, c);
                                if spec.out_shape(shape).is_ok() {
                                    cases.push((spec, shape));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    cases
}

gpu_test!(pool_matches_cpu);
fn pool_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(13);
    let cases = pool_cases();
    assert!(cases.len() > 500, "only {} pool cases", cases.len());
    for (i, (spec, shape)) in cases.into_iter().enumerate() {
        // Every 4th case with buffers off the 16-byte boundary (scalar
        // kernel even when c % 4 == 0).
        let offset = i % 4 == 3;
        let max = spec.kind == PoolKind::Max;
        let x = if max {
            rng.special(shape.len())
        } else {
            rng.plain(shape.len())
        };
        let xt = Tensor::from_vec(shape, x.clone()).unwrap();
        let out = spec.out_shape(shape).unwrap();
        let mut want = Tensor::filled(out, POISON);
        pool_cpu::pool_forward(&spec, &xt, &mut want).expect("cpu pool");

        let xd = upload_at(dev, &x, offset);
        let mut yd = poisoned_at(dev, out.len(), offset);
        let got_shape = pool_cuda::pool_forward(
            dev,
            &spec,
            shape,
            &view(&xd, offset),
            &mut view_mut(&mut yd, offset),
        )
        .expect("launch");
        assert_eq!(got_shape, out);
        let got = download_at(dev, &yd, offset);
        let what = format!("{spec:?} on {shape} offset {offset}");
        if max {
            assert_bitwise(&what, &got, &want.data);
        } else {
            let big = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_within(&what, &got, &want.data, |_| big);
        }
    }
    // A wrong output length is an error, not a launch.
    let spec = PoolSpec {
        kind: PoolKind::Max,
        k: 2,
        stride: 2,
        pad: 0,
        count_include_pad: false,
    };
    let xd = upload(dev, &[0.0; 16]);
    let mut yd = upload(dev, &[0.0; 5]);
    let r = pool_cuda::pool_forward(
        dev,
        &spec,
        Shape::new(1, 4, 4, 1),
        &xd.as_view(),
        &mut yd.as_view_mut(),
    );
    assert!(r.is_err());
}

gpu_test!(pool_backward_matches_reference);
fn pool_backward_matches_reference(dev: &CudaDevice) {
    let mut rng = Rng(44);
    // n, h, w, c, k, stride, pad, kind (0 max, 1 avg, 2 avg incl. pad), accumulate
    let cases: &[[usize; 9]] = &[
        [2, 7, 7, 3, 3, 1, 1, 0, 0],
        [2, 7, 7, 3, 3, 1, 1, 1, 1],
        [2, 7, 5, 5, 3, 1, 1, 2, 0],
        [1, 8, 8, 4, 2, 2, 0, 0, 1],
        [2, 9, 7, 3, 3, 2, 1, 0, 0],
        [2, 9, 7, 17, 3, 2, 1, 1, 0],
        [1, 6, 6, 2, 2, 3, 0, 0, 0],
        [1, 13, 11, 3, 5, 2, 2, 1, 0],
        [1, 13, 11, 3, 5, 3, 2, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 0, 0],
        [3, 32, 32, 16, 3, 1, 1, 1, 0],
    ];
    for cs in cases {
        let [n, h, w, c, k, s, p, kind, acc] = *cs;
        let acc = acc == 1;
        let spec = PoolSpec {
            kind: if kind == 0 {
                PoolKind::Max
            } else {
                PoolKind::Avg
            },
            k,
            stride: s,
            pad: p,
            count_include_pad: kind == 2,
        };
        let xs = Shape::new(n, h, w, c);
        let ys = spec.out_shape(xs).unwrap();
        // Values from {-2, ..., 2} so windows hold ties; one NaN.
        let mut x: Vec<f32> = (0..xs.len()).map(|_| (rng.unit() * 3.0).trunc()).collect();
        if x.len() > 5 {
            let m = x.len() / 2;
            x[m] = f32::NAN;
        }
        let dy = rng.vec(ys.len());
        let dx0 = start(&mut rng, xs.len(), acc);
        let mut want = vec![0f64; xs.len()];
        for b in 0..n {
            for oy in 0..ys.h {
                for ox in 0..ys.w {
                    let (y0, y1) = ((oy * s).max(p) - p, (oy * s + k).min(p + h) - p);
                    let (x0, x1) = ((ox * s).max(p) - p, (ox * s + k).min(p + w) - p);
                    for ch in 0..c {
                        let at = |yy: usize, xx: usize| ((b * h + yy) * w + xx) * c + ch;
                        let g = f64::from(dy[((b * ys.h + oy) * ys.w + ox) * c + ch]);
                        if kind == 0 {
                            let (mut best, mut arg) = (f32::NEG_INFINITY, at(y0, x0));
                            for yy in y0..y1 {
                                for xx in x0..x1 {
                                    let v = x[at(yy, xx)];
                                    if v > best || v.is_nan() {
                                        best = v;
                                        arg = at(yy, xx);
                                    }
                                }
                            }
                            want[arg] += g;
                        } else {
                            let count = if kind == 2 {
                                k * k
                            } else {
                                (y1 - y0) * (x1 - x0)
                            };
                            for yy in y0..y1 {
                                for xx in x0..x1 {
                                    want[at(yy, xx)] += g / count as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        if acc {
            for (v, a) in want.iter_mut().zip(&dx0) {
                *v += f64::from(*a);
            }
        }
        let (xd, dyd) = (upload(dev, &x), upload(dev, &dy));
        let mut dxd = upload(dev, &dx0);
        pool_backward(
            dev,
            &spec,
            xs,
            Some(&xd.slice(..)),
            &dyd.slice(..),
            &mut dxd.slice_mut(..),
            acc,
        )
        .unwrap();
        let ones = vec![1f64; xs.len()];
        check(
            &format!("pool dx {cs:?}"),
            &download(dev, &dxd),
            &want,
            &ones,
            1e-6,
        );
    }
}
