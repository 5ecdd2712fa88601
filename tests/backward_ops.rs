//! Every op's backward against central finite differences of a plain f64
//! reference forward, on small random shapes (odd sizes, strides, padding,
//! dilation, groups). The loss is `L = Σ r·y` with a random `r`, so the
//! backward is called with `dy = r`; the reference forward is also checked
//! against the crate's forward, which ties the gradients to the real op.

mod common;

use common::Rng;
use dasnas::ops::batchnorm::{cpu as bn, BatchNormSpec};
use dasnas::ops::conv2d::{cpu as conv, Conv2dSpec};
use dasnas::ops::linear::{cpu as lin, LinearSpec};
use dasnas::ops::pool::{cpu as pool, PoolKind, PoolSpec};
use dasnas::ops::{global_avg_pool::cpu as gap, relu::cpu as relu, softmax_ce::cpu as ce};
use dasnas::{Shape, Tensor};

impl Rng {
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

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn dot(a: &[f64], r: &[f32]) -> f64 {
    a.iter().zip(r).map(|(x, &y)| x * y as f64).sum()
}

/// Central differences of `loss` at `x0` (step `h`) against `analytic`.
fn check_grad(what: &str, x0: &[f32], analytic: &[f32], h: f64, loss: impl Fn(&[f64]) -> f64) {
    assert_eq!(x0.len(), analytic.len(), "{what}: length");
    let mut x = f64s(x0);
    let mut fd = vec![0.0f64; x.len()];
    for i in 0..x.len() {
        let v = x[i];
        x[i] = v + h;
        let lp = loss(&x);
        x[i] = v - h;
        let lm = loss(&x);
        x[i] = v;
        fd[i] = (lp - lm) / (2.0 * h);
    }
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (&a, &f)) in analytic.iter().zip(&fd).enumerate() {
        let err = (a as f64 - f).abs();
        assert!(
            a.is_finite() && err <= 2e-4 * scale + 1e-3 * f.abs(),
            "{what}[{i}]: analytic {a} vs finite difference {f} (scale {scale})"
        );
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

// ---------------------------------------------------------------- conv2d

fn conv_ref(spec: &Conv2dSpec, xs: Shape, x: &[f64], w: &[f64]) -> Vec<f64> {
    let o = spec.out_shape(xs).unwrap();
    let (cin_g, cout_g) = (spec.cin_g(), spec.cout_g());
    let mut y = vec![0.0f64; o.len()];
    for n in 0..o.n {
        for oy in 0..o.h {
            for ox in 0..o.w {
                for co in 0..spec.cout {
                    let g = co / cout_g;
                    let mut acc = 0.0;
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
                                acc += xv * w[((ky * spec.kw + kx) * cin_g + ci) * spec.cout + co];
                            }
                        }
                    }
                    y[((n * o.h + oy) * o.w + ox) * o.c + co] = acc;
                }
            }
        }
    }
    y
}

fn relu64(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| if x > 0.0 { x } else { 0.0 }).collect()
}

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
        assert_close(
            "conv forward",
            &y.data,
            &conv_ref(&spec, xs, &f64s(&x.data), &f64s(&wt)),
            1e-5,
        );
        let mut dx = Tensor::filled(xs, f32::NAN);
        conv::conv2d_backward_input(&spec, xs, &dy, &wt, &mut dx).unwrap();
        let mut dw = vec![f32::NAN; wt.len()];
        conv::conv2d_backward_weight(&spec, &x, &dy, &mut dw).unwrap();
        let tag = format!("{spec:?} on {xs}");
        let w64 = f64s(&wt);
        check_grad(&format!("dx {tag}"), &x.data, &dx.data, 1e-4, |xv| {
            dot(&conv_ref(&spec, xs, xv, &w64), &r)
        });
        let x64 = f64s(&x.data);
        check_grad(&format!("dw {tag}"), &wt, &dw, 1e-4, |wv| {
            dot(&conv_ref(&spec, xs, &x64, wv), &r)
        });
        // The ReLU-input variant: gradient of conv(relu(x), w) in w.
        let mut dwr = vec![f32::NAN; wt.len()];
        conv::conv2d_backward_weight_relu_input(&spec, &x, &dy, &mut dwr).unwrap();
        let xr = relu64(&x64);
        check_grad(&format!("dw relu-input {tag}"), &wt, &dwr, 1e-4, |wv| {
            dot(&conv_ref(&spec, xs, &xr, wv), &r)
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

// ------------------------------------------------------------- batchnorm

fn bn_ref(xs: Shape, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    let c = xs.c;
    let m = (xs.len() / c) as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for (i, &v) in x.iter().enumerate() {
        mean[i % c] += v / m;
    }
    for (i, &v) in x.iter().enumerate() {
        var[i % c] += (v - mean[i % c]).powi(2) / m;
    }
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            (v - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect()
}

#[test]
fn batchnorm_gradients_match_finite_differences() {
    let mut rng = Rng(12);
    for xs in [
        Shape::new(3, 2, 3, 5),
        Shape::new(2, 3, 1, 17),
        Shape::new(4, 1, 1, 3),
    ] {
        let c = xs.c;
        let spec = BatchNormSpec::new(c);
        let eps = spec.eps as f64;
        let x = rng.tensor(xs);
        let gamma: Vec<f32> = rng.vec(c).iter().map(|v| 1.0 + 0.5 * v).collect();
        let beta = rng.vec(c);
        let r = rng.vec(xs.len());
        let mut y = Tensor::filled(xs, f32::NAN);
        let st = bn::batchnorm_forward(&spec, &x, &gamma, &beta, &mut y).unwrap();
        let (x64, g64, b64) = (f64s(&x.data), f64s(&gamma), f64s(&beta));
        assert_close(
            "bn forward",
            &y.data,
            &bn_ref(xs, &x64, &g64, &b64, eps),
            1e-5,
        );
        let dy = Tensor::from_vec(xs, r.clone()).unwrap();
        let mut dx = Tensor::filled(xs, f32::NAN);
        let (mut dg, mut db) = (vec![f32::NAN; c], vec![f32::NAN; c]);
        let grads = bn::BnParamGrads {
            dgamma: &mut dg,
            dbeta: &mut db,
        };
        bn::batchnorm_backward(&spec, &x, &gamma, &st, &dy, &mut dx, grads).unwrap();
        check_grad(&format!("bn dx {xs}"), &x.data, &dx.data, 1e-5, |xv| {
            dot(&bn_ref(xs, xv, &g64, &b64, eps), &r)
        });
        check_grad(&format!("bn dgamma {xs}"), &gamma, &dg, 1e-5, |gv| {
            dot(&bn_ref(xs, &x64, gv, &b64, eps), &r)
        });
        check_grad(&format!("bn dbeta {xs}"), &beta, &db, 1e-5, |bv| {
            dot(&bn_ref(xs, &x64, &g64, bv, eps), &r)
        });
    }
}

// ------------------------------------------------------------------ relu

#[test]
fn relu_gradient_matches_finite_differences() {
    let mut rng = Rng(13);
    let xs = Shape::new(2, 3, 5, 7);
    // Keep inputs away from the kink at 0.
    let data: Vec<f32> = rng
        .vec(xs.len())
        .iter()
        .map(|&v| if v.abs() < 0.05 { v + 0.1 } else { v })
        .collect();
    let x = Tensor::from_vec(xs, data).unwrap();
    let r = rng.vec(xs.len());
    let dy = Tensor::from_vec(xs, r.clone()).unwrap();
    let mut dx = Tensor::filled(xs, f32::NAN);
    relu::relu_backward(&x, &dy, &mut dx).unwrap();
    check_grad("relu dx", &x.data, &dx.data, 1e-4, |xv| {
        dot(&relu64(xv), &r)
    });
    let mut g = dy.clone();
    relu::relu_backward_inplace(&x, &mut g).unwrap();
    assert_eq!(g, dx);
    // x = 0 (and -0) gives gradient 0, like the code bit x > 0.
    let z = Tensor::from_vec(Shape::new(1, 1, 1, 2), vec![0.0, -0.0]).unwrap();
    let d = Tensor::from_vec(z.shape, vec![1.0, 1.0]).unwrap();
    let mut o = Tensor::filled(z.shape, f32::NAN);
    relu::relu_backward(&z, &d, &mut o).unwrap();
    assert_eq!(o.data, vec![0.0, 0.0]);
}

// ------------------------------------------------------------------ pool

fn pool_ref(spec: &PoolSpec, xs: Shape, x: &[f64]) -> Vec<f64> {
    let o = spec.out_shape(xs).unwrap();
    let mut y = vec![0.0; o.len()];
    for n in 0..o.n {
        for oy in 0..o.h {
            for ox in 0..o.w {
                for c in 0..o.c {
                    let (mut acc, mut cnt) = (
                        if spec.kind == PoolKind::Max {
                            f64::NEG_INFINITY
                        } else {
                            0.0
                        },
                        0usize,
                    );
                    for ky in 0..spec.k {
                        for kx in 0..spec.k {
                            let iy = (oy * spec.stride + ky) as isize - spec.pad as isize;
                            let ix = (ox * spec.stride + kx) as isize - spec.pad as isize;
                            if iy < 0 || ix < 0 || iy >= xs.h as isize || ix >= xs.w as isize {
                                continue;
                            }
                            let v = x[((n * xs.h + iy as usize) * xs.w + ix as usize) * xs.c + c];
                            cnt += 1;
                            acc = if spec.kind == PoolKind::Max {
                                acc.max(v)
                            } else {
                                acc + v
                            };
                        }
                    }
                    if spec.kind == PoolKind::Avg {
                        let div = if spec.count_include_pad {
                            spec.k * spec.k
                        } else {
                            cnt
                        };
                        acc /= div as f64;
                    }
                    y[((n * o.h + oy) * o.w + ox) * o.c + c] = acc;
                }
            }
        }
    }
    y
}

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
        pool::pool_forward(&spec, &x, &mut y).unwrap();
        assert_close(
            "pool forward",
            &y.data,
            &pool_ref(&spec, xs, &f64s(&x.data)),
            1e-6,
        );
        let r = rng.vec(ys.len());
        let dy = Tensor::from_vec(ys, r.clone()).unwrap();
        let mut dx = Tensor::filled(xs, f32::NAN);
        pool::pool_backward(&spec, Some(&x), &dy, &mut dx).unwrap();
        // Random values are distinct, so max windows have one arg-max and
        // a small step does not change it.
        check_grad(
            &format!("pool dx {spec:?}"),
            &x.data,
            &dx.data,
            1e-6,
            |xv| dot(&pool_ref(&spec, xs, xv), &r),
        );
        if kind == PoolKind::Avg {
            let mut dx2 = Tensor::filled(xs, f32::NAN);
            pool::pool_backward(&spec, None, &dy, &mut dx2).unwrap();
            assert_eq!(dx2, dx);
        } else {
            assert!(pool::pool_backward(&spec, None, &dy, &mut dx).is_err());
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
    pool::pool_backward(&spec, Some(&x), &dy, &mut dx).unwrap();
    let mut want = vec![0.0; 16];
    want[0] = 1.0;
    want[2] = 2.0;
    want[8] = 3.0;
    want[10] = 4.0;
    assert_eq!(dx.data, want);
}

// ------------------------------------------------------ gap, linear, add

#[test]
fn global_avg_pool_and_linear_gradients_match_finite_differences() {
    let mut rng = Rng(15);
    let xs = Shape::new(3, 3, 5, 4);
    let x = rng.tensor(xs);
    let r = rng.vec(3 * 4);
    let dy = Tensor::from_vec(Shape::new(3, 1, 1, 4), r.clone()).unwrap();
    let mut dx = Tensor::filled(xs, f32::NAN);
    gap::global_avg_pool_backward(&dy, &mut dx).unwrap();
    let gap_ref = |xv: &[f64]| -> Vec<f64> {
        let mut y = vec![0.0; 12];
        for (i, &v) in xv.iter().enumerate() {
            y[(i / xs.per_sample()) * 4 + i % 4] += v / 15.0;
        }
        y
    };
    check_grad("gap dx", &x.data, &dx.data, 1e-4, |xv| {
        dot(&gap_ref(xv), &r)
    });

    let spec = LinearSpec {
        inputs: 2 * 3 * 5,
        outputs: 7,
    };
    let xs = Shape::new(4, 2, 3, 5);
    let x = rng.tensor(xs);
    let w = rng.vec(spec.weight_len());
    let b = rng.vec(7);
    let lin_ref = |xv: &[f64], wv: &[f64], bv: &[f64]| -> Vec<f64> {
        let mut y = vec![0.0; 4 * 7];
        for n in 0..4 {
            for o in 0..7 {
                y[n * 7 + o] = bv[o] + (0..30).map(|i| xv[n * 30 + i] * wv[i * 7 + o]).sum::<f64>();
            }
        }
        y
    };
    let mut y = Tensor::filled(Shape::new(4, 1, 1, 7), f32::NAN);
    lin::linear_forward(&spec, &x, &w, &b, &mut y).unwrap();
    let (x64, w64, b64) = (f64s(&x.data), f64s(&w), f64s(&b));
    assert_close("linear forward", &y.data, &lin_ref(&x64, &w64, &b64), 1e-5);
    let r = rng.vec(28);
    let dy = Tensor::from_vec(y.shape, r.clone()).unwrap();
    let mut dx = Tensor::filled(xs, f32::NAN);
    let (mut dw, mut db) = (vec![f32::NAN; w.len()], vec![f32::NAN; 7]);
    lin::linear_backward(&spec, &x, &w, &dy, Some(&mut dx), &mut dw, &mut db).unwrap();
    check_grad("linear dx", &x.data, &dx.data, 1e-4, |v| {
        dot(&lin_ref(v, &w64, &b64), &r)
    });
    check_grad("linear dw", &w, &dw, 1e-4, |v| {
        dot(&lin_ref(&x64, v, &b64), &r)
    });
    check_grad("linear db", &b, &db, 1e-4, |v| {
        dot(&lin_ref(&x64, &w64, v), &r)
    });

    // Add: every input's gradient is dy; accumulation adds.
    let mut acc = Tensor::from_vec(Shape::new(1, 1, 2, 2), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let d = Tensor::from_vec(acc.shape, vec![0.5, -1.0, 0.0, 2.0]).unwrap();
    dasnas::ops::add::cpu::add_backward_accumulate(&d, &mut acc).unwrap();
    assert_eq!(acc.data, vec![1.5, 1.0, 3.0, 6.0]);
}

// ------------------------------------------------------- softmax + CE

#[test]
fn softmax_ce_gradient_loss_and_accuracy() {
    let mut rng = Rng(16);
    let (n, k) = (5, 7);
    let s = Shape::new(n, 1, 1, k);
    let z = Tensor::from_vec(s, rng.vec(n * k).iter().map(|v| 3.0 * v).collect()).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % k as u32).collect();
    let ce_ref = |zv: &[f64]| -> f64 {
        (0..n)
            .map(|b| {
                let row = &zv[b * k..(b + 1) * k];
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                lse - row[labels[b] as usize]
            })
            .sum::<f64>()
            / n as f64
    };
    let mut g = Tensor::filled(s, f32::NAN);
    let st = ce::softmax_ce_forward_backward(&z, &labels, &mut g).unwrap();
    let z64 = f64s(&z.data);
    assert!(
        (st.loss - ce_ref(&z64)).abs() < 1e-6,
        "{} vs {}",
        st.loss,
        ce_ref(&z64)
    );
    check_grad("softmax_ce dlogits", &z.data, &g.data, 1e-5, ce_ref);
    assert_eq!(ce::softmax_ce_loss(&z, &labels).unwrap(), st);
    // Accuracy: argmax with ties to the lowest index.
    let z = Tensor::from_vec(
        Shape::new(3, 1, 1, 3),
        vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0, 5.0, 0.0, 1.0],
    )
    .unwrap();
    let st = ce::softmax_ce_loss(&z, &[1, 1, 0]).unwrap();
    assert_eq!((st.correct, st.batch), (2, 3));
    assert!((st.accuracy() - 2.0 / 3.0).abs() < 1e-12);
    // Bad labels are errors that name them.
    let e = ce::softmax_ce_loss(&z, &[1, 3, 0]).unwrap_err().to_string();
    assert!(e.contains("label 3"), "{e}");
    assert!(ce::softmax_ce_loss(&z, &[1, 1]).is_err());
}
