//! Tests of BatchNorm: the shape rule; the CPU forward (two-pass, in
//! place, from conv channel sums) against an f64 reference from the
//! definition, on odd sizes with large offsets and constant channels; the
//! backward against finite differences; and the CUDA kernels (host
//! emulation, or a GPU) against the CPU twins (forward: to 1e-4 relative,
//! bit for bit between runs and in place) and an f64 reference (backward).

use super::*;
use crate::ops::batchnorm::cpu as bn;
use crate::ops::batchnorm::cpu::{
    batchnorm_forward, batchnorm_forward_from_sums, batchnorm_forward_inplace,
};
use crate::ops::batchnorm::cuda as bn_cuda;
use crate::ops::batchnorm::cuda::{batchnorm_backward, batchnorm_parts, BnGrads, BnSaved};
use crate::ops::tests::{
    assert_close, assert_near, bn_ref, bn_scale, check, check_grad, check_stats, dot, f64s,
    nan_f32, nan_f64, poisoned, proptest_config, start, sums_ref,
};
use crate::ops::CudaGrad;
use crate::runtime::cuda::CudaDevice;
use crate::tensor::Tensor;
use crate::testing::{download, upload, Rng, POISON};
use proptest::prelude::*;

#[test]
fn shape_rule() {
    let s = BatchNormSpec::new(16);
    let x = Shape::new(2, 4, 4, 16);
    assert_eq!(s.out_shape(x).unwrap(), x);
    for (spec, shape, needle) in [
        (s, Shape::new(2, 4, 4, 8), "channels"),
        (BatchNormSpec::new(0), x, "channels"),
        (BatchNormSpec { eps: 0.0, ..s }, x, "eps"),
        (BatchNormSpec { eps: f32::NAN, ..s }, x, "eps"),
        (s, Shape::new(0, 4, 4, 16), "n = 0"),
    ] {
        match spec.out_shape(shape) {
            Err(Error::Shape(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected an error for {spec:?} {shape}, got {other:?}"),
        }
    }
}

// ------------------------------------------------------------ CPU forward

proptest! {
    #![proptest_config(proptest_config(64))]

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

proptest! {
    #![proptest_config(proptest_config(96))]

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

// ----------------------------------------------------------- CPU backward

/// BatchNorm from the definition on f64 values (mean and variance
/// accumulated term by term, each divided by the count).
fn bn_ref64(xs: Shape, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
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
        assert_near(
            "bn forward",
            &y.data,
            &bn_ref64(xs, &x64, &g64, &b64, eps),
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
            dot(&bn_ref64(xs, xv, &g64, &b64, eps), &r)
        });
        check_grad(&format!("bn dgamma {xs}"), &gamma, &dg, 1e-5, |gv| {
            dot(&bn_ref64(xs, &x64, gv, &b64, eps), &r)
        });
        check_grad(&format!("bn dbeta {xs}"), &beta, &db, 1e-5, |bv| {
            dot(&bn_ref64(xs, &x64, &g64, bv, eps), &r)
        });
    }
}

// ---------------------------------------------------------------- CUDA

gpu_test!(batchnorm_matches_cpu_and_is_deterministic);
fn batchnorm_matches_cpu_and_is_deterministic(dev: &CudaDevice) {
    let shapes = [
        Shape::new(1, 1, 1, 1),
        Shape::new(2, 3, 3, 3),
        Shape::new(3, 7, 7, 5),
        Shape::new(2, 13, 13, 16),
        Shape::new(5, 13, 7, 17),
        Shape::new(4, 7, 13, 32),
        Shape::new(2, 32, 32, 48),
        Shape::new(128, 32, 32, 16),
        Shape::new(128, 8, 8, 64),
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        let c = shape.c;
        let mut rng = Rng(3000 + i as u64);
        // Per-channel offsets and spreads, so the statistics differ by channel;
        // channel 0 is constant when there are several (var = 0: y = beta).
        let offs = rng.scaled(c, 2.0);
        let spread: Vec<f32> = (0..c)
            .map(|ch| {
                if ch == 0 && c > 1 {
                    0.0
                } else {
                    0.1 + (rng.unit_f64() as f32).abs() * 3.0
                }
            })
            .collect();
        let data: Vec<f32> = (0..shape.len())
            .map(|j| offs[j % c] + spread[j % c] * (rng.unit_f64() as f32))
            .collect();
        let x = Tensor::from_vec(shape, data).unwrap();
        let (gamma, beta) = (rng.scaled(c, 1.0), rng.scaled(c, 1.0));
        let bn = BatchNormSpec::new(c);
        let mut want = Tensor::zeros(shape);
        let stats = batchnorm_forward(&bn, &x, &gamma, &beta, &mut want).expect("cpu bn");
        let what = format!("batchnorm on {shape}");

        let xd = upload(dev, &x.data);
        let (gd, bd) = (upload(dev, &gamma), upload(dev, &beta));
        let parts = bn_cuda::batchnorm_parts(shape);
        let run = || {
            let mut yd = upload(dev, &nan_f32(shape.len()));
            let mut md = upload(dev, &nan_f32(c));
            let mut sd = upload(dev, &nan_f32(c));
            let mut ps = upload(dev, &nan_f64(parts * c));
            let mut pq = upload(dev, &nan_f64(parts * c));
            let stats = bn_cuda::BnStatsOut {
                mean: md.as_view_mut(),
                inv_std: sd.as_view_mut(),
                psum: ps.as_view_mut(),
                psumsq: pq.as_view_mut(),
            };
            bn_cuda::batchnorm_forward(
                dev,
                &bn,
                shape,
                &xd.as_view(),
                [&gd.as_view(), &bd.as_view()],
                &mut yd.as_view_mut(),
                stats,
            )
            .expect("launch bn");
            (download(dev, &yd), download(dev, &md), download(dev, &sd))
        };
        let (y, m, s) = run();
        check_stats(&what, &m, &s, &stats);
        for (j, (&g, &w)) in y.iter().zip(&want.data).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{what}: y[{j}] (channel {}): gpu {g} cpu {w}",
                j % c
            );
        }
        if c > 1 {
            for (j, &g) in y.iter().enumerate().step_by(c) {
                assert_eq!(g, beta[0], "{what}: constant channel, y[{j}]");
            }
        }
        let (y2, m2, s2) = run();
        let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&y2), "{what}: y differs between runs");
        assert_eq!(bits(&m), bits(&m2), "{what}: mean differs between runs");
        assert_eq!(bits(&s), bits(&s2), "{what}: inv_std differs between runs");

        // In place, with the statistics of the first run: the same bits as
        // the out-of-place normalisation, and as the CPU's in-place op
        // up to the statistics' rounding.
        let mut xi = upload(dev, &x.data);
        let (md, sd) = (upload(dev, &m), upload(dev, &s));
        let (mv, sv, gv, bv) = (md.as_view(), sd.as_view(), gd.as_view(), bd.as_view());
        let ch = bn_cuda::BnChannels {
            mean: &mv,
            inv_std: &sv,
            gamma: &gv,
            beta: &bv,
        };
        bn_cuda::batchnorm_normalize_inplace(dev, &bn, shape, &mut xi.as_view_mut(), ch)
            .expect("launch bn in place");
        assert_eq!(bits(&download(dev, &xi)), bits(&y), "{what}: in place");
        let mut cpu_in_place = x.clone();
        batchnorm_forward_inplace(&bn, &mut cpu_in_place, &gamma, &beta).expect("cpu in place");
        assert_eq!(cpu_in_place.data, want.data, "{what}: CPU in place");
    }
}

gpu_test!(batchnorm_backward_matches_reference);
fn batchnorm_backward_matches_reference(dev: &CudaDevice) {
    let mut rng = Rng(42);
    for (shape, acc) in [
        (Shape::new(1, 1, 1, 1), false),
        (Shape::new(3, 3, 7, 3), false),
        (Shape::new(2, 5, 13, 17), true),
        (Shape::new(5, 13, 13, 33), false),
        (Shape::new(128, 8, 8, 16), true),
    ] {
        let spec = BatchNormSpec::new(shape.c);
        let (rows, c) = (shape.n * shape.h * shape.w, shape.c);
        let mut x = vec![0f32; shape.len()];
        for ch in 0..c {
            let (off, sc) = (3.0 * rng.unit(), 0.5 + rng.unit().abs());
            for r in 0..rows {
                x[r * c + ch] = off + sc * rng.unit();
            }
        }
        let dy = rng.vec(shape.len());
        let gamma = rng.vec(c);
        let dx0 = start(&mut rng, shape.len(), acc);
        let (mut mean, mut istd) = (vec![0f32; c], vec![0f32; c]);
        for ch in 0..c {
            let m = (0..rows).map(|r| f64::from(x[r * c + ch])).sum::<f64>() / rows as f64;
            let v = (0..rows)
                .map(|r| (f64::from(x[r * c + ch]) - m).powi(2))
                .sum::<f64>()
                / rows as f64;
            mean[ch] = m as f32;
            istd[ch] = (1.0 / (v + 1e-5).sqrt()) as f32;
        }
        let (mut rdx, mut mdx) = (vec![0f64; shape.len()], vec![0f64; shape.len()]);
        let (mut rdg, mut rdb, mut mg) = (vec![0f64; c], vec![0f64; c], vec![0f64; c]);
        for ch in 0..c {
            let xh =
                |r: usize| (f64::from(x[r * c + ch]) - f64::from(mean[ch])) * f64::from(istd[ch]);
            for r in 0..rows {
                let g = f64::from(dy[r * c + ch]);
                rdb[ch] += g;
                rdg[ch] += g * xh(r);
                mg[ch] += g.abs() * (1.0 + xh(r).abs());
            }
            let k = f64::from(gamma[ch]) * f64::from(istd[ch]);
            for r in 0..rows {
                let i = r * c + ch;
                let m = rows as f64;
                rdx[i] = k / m * (m * f64::from(dy[i]) - rdb[ch] - xh(r) * rdg[ch]);
                mdx[i] = k.abs() * (f64::from(dy[i]).abs() + mg[ch] / m * (1.0 + xh(r).abs()));
                if acc {
                    rdx[i] += f64::from(dx0[i]);
                    mdx[i] += f64::from(dx0[i]).abs();
                }
            }
        }
        let parts = batchnorm_parts(shape);
        let (xd, dyd, md, sd, gd) = (
            upload(dev, &x),
            upload(dev, &dy),
            upload(dev, &mean),
            upload(dev, &istd),
            upload(dev, &gamma),
        );
        let mut dxd = upload(dev, &dx0);
        let mut dg = upload(dev, &vec![POISON; c]);
        let mut db = upload(dev, &vec![POISON; c]);
        let mut p1 = upload(dev, &vec![f64::NAN; parts * c]);
        let mut p2 = upload(dev, &vec![f64::NAN; parts * c]);
        let (xv, mv, sv, gv) = (xd.slice(..), md.slice(..), sd.slice(..), gd.slice(..));
        let saved = BnSaved {
            x: &xv,
            mean: &mv,
            inv_std: &sv,
            gamma: &gv,
        };
        let grads = BnGrads {
            dx: Some(CudaGrad {
                dx: dxd.slice_mut(..),
                accumulate: acc,
            }),
            dgamma: dg.slice_mut(..),
            dbeta: db.slice_mut(..),
            pdy: p1.slice_mut(..),
            pdyx: p2.slice_mut(..),
        };
        batchnorm_backward(dev, &spec, shape, saved, &dyd.slice(..), grads).unwrap();
        check(
            &format!("bn dbeta {shape}"),
            &download(dev, &db),
            &rdb,
            &mg,
            1e-6,
        );
        check(
            &format!("bn dgamma {shape}"),
            &download(dev, &dg),
            &rdg,
            &mg,
            1e-6,
        );
        check(
            &format!("bn dx {shape}"),
            &download(dev, &dxd),
            &rdx,
            &mdx,
            1e-5,
        );
    }
}
