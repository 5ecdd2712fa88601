//! Tests of the linear classifier: the shape rule; the CPU forward against
//! an f64 reference; and the CUDA kernels (host emulation, or a GPU)
//! against the CPU (forward, to 1e-5) and an f64 reference (backward). (Its
//! CPU backward is tested with GAP's in `ops::tests`.)

use super::*;
use crate::ops::linear;
use crate::ops::linear::cpu::linear_forward;
use crate::ops::linear::cuda::{linear_backward, LinearGrads};
use crate::ops::tests::{
    assert_close, assert_within, check, download_at, poisoned, poisoned_at, start, CHANNELS,
};
use crate::ops::CudaGrad;
use crate::runtime::cuda::CudaDevice;
use crate::tensor::Tensor;
use crate::testing::{download, upload, Rng, POISON};

#[test]
fn shape_rule() {
    let s = LinearSpec {
        inputs: 64,
        outputs: 10,
    };
    assert_eq!(
        s.out_shape(Shape::new(3, 1, 1, 64)).unwrap(),
        Shape::new(3, 1, 1, 10)
    );
    assert_eq!(
        s.out_shape(Shape::new(3, 2, 2, 16)).unwrap(),
        Shape::new(3, 1, 1, 10)
    );
    assert_eq!(s.weight_len(), 640);
    assert_eq!(s.fan_in(), 64);
    match s.out_shape(Shape::new(3, 1, 1, 63)) {
        Err(Error::Shape(m)) => assert!(m.contains("inputs"), "{m}"),
        other => panic!("{other:?}"),
    }
    match (LinearSpec {
        inputs: 0,
        outputs: 1,
    })
    .out_shape(Shape::new(1, 1, 1, 1))
    {
        Err(Error::Shape(m)) => assert!(m.contains("inputs"), "{m}"),
        other => panic!("{other:?}"),
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

gpu_test!(linear_matches_cpu);
fn linear_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(15);
    let mut cases = Vec::new();
    for n in [1usize, 3, 7] {
        for &(h, w) in &[(1usize, 1usize), (3, 7), (13, 1)] {
            for &c in &CHANNELS {
                for outputs in [1usize, 3, 10, 17] {
                    cases.push((Shape::new(n, h, w, c), outputs));
                }
            }
        }
    }
    cases.push((Shape::new(128, 1, 1, 64), 10));
    cases.push((Shape::new(5, 1, 1, 1000), 1001));
    for (shape, outputs) in cases {
        let spec = LinearSpec {
            inputs: shape.per_sample(),
            outputs,
        };
        let x = rng.plain(shape.len());
        let wts: Vec<f32> = (0..spec.weight_len()).map(|_| rng.unit()).collect();
        let bias: Vec<f32> = (0..outputs).map(|_| rng.unit()).collect();
        let xt = Tensor::from_vec(shape, x.clone()).unwrap();
        let out = Shape::new(shape.n, 1, 1, outputs);
        let mut want = Tensor::filled(out, POISON);
        linear::cpu::linear_forward(&spec, &xt, &wts, &bias, &mut want).expect("cpu linear");

        let xd = upload(dev, &x);
        let wd = upload(dev, &wts);
        let bd = upload(dev, &bias);
        let mut yd = poisoned_at(dev, out.len(), false);
        let got_shape = linear::cuda::linear_forward(
            dev,
            &spec,
            shape,
            &xd.as_view(),
            &wd.as_view(),
            &bd.as_view(),
            &mut yd.as_view_mut(),
        )
        .expect("launch");
        assert_eq!(got_shape, out);
        let got = download_at(dev, &yd, false);
        let ni = spec.inputs;
        let scale = |i: usize| {
            let (b, o) = (i / outputs, i % outputs);
            (0..ni)
                .map(|j| (x[b * ni + j] * wts[j * outputs + o]).abs())
                .sum::<f32>()
                + bias[o].abs()
        };
        assert_within(
            &format!("linear {shape} -> {outputs}"),
            &got,
            &want.data,
            scale,
        );
    }
    // A wrong bias length is an error, not a launch.
    let spec = LinearSpec {
        inputs: 4,
        outputs: 2,
    };
    let xd = upload(dev, &[0.0; 4]);
    let wd = upload(dev, &[0.0; 8]);
    let bd = upload(dev, &[0.0; 3]);
    let mut yd = upload(dev, &[0.0; 2]);
    let r = linear::cuda::linear_forward(
        dev,
        &spec,
        Shape::new(1, 1, 1, 4),
        &xd.as_view(),
        &wd.as_view(),
        &bd.as_view(),
        &mut yd.as_view_mut(),
    );
    assert!(r.is_err());
}

gpu_test!(linear_backward_matches_reference);
fn linear_backward_matches_reference(dev: &CudaDevice) {
    let mut rng = Rng(45);
    for (xs, outputs, acc) in [
        (Shape::new(1, 1, 1, 1), 1, false),
        (Shape::new(7, 1, 1, 64), 10, true),
        (Shape::new(128, 2, 2, 17), 13, false),
    ] {
        let spec = LinearSpec {
            inputs: xs.per_sample(),
            outputs,
        };
        let (n, ni, no) = (xs.n, spec.inputs, outputs);
        let x = rng.vec(xs.len());
        let w = rng.vec(spec.weight_len());
        let dy = rng.vec(n * no);
        let dx0 = start(&mut rng, xs.len(), acc);
        let (mut rdx, mut mdx) = (vec![0f64; n * ni], vec![0f64; n * ni]);
        let (mut rdw, mut mdw) = (vec![0f64; ni * no], vec![0f64; ni * no]);
        let (mut rdb, mut mdb) = (vec![0f64; no], vec![0f64; no]);
        for b in 0..n {
            for i in 0..ni {
                for o in 0..no {
                    let g = f64::from(dy[b * no + o]);
                    let t = g * f64::from(w[i * no + o]);
                    rdx[b * ni + i] += t;
                    mdx[b * ni + i] += t.abs();
                    let u = g * f64::from(x[b * ni + i]);
                    rdw[i * no + o] += u;
                    mdw[i * no + o] += u.abs();
                }
            }
            for o in 0..no {
                rdb[o] += f64::from(dy[b * no + o]);
                mdb[o] += f64::from(dy[b * no + o]).abs();
            }
        }
        if acc {
            for i in 0..rdx.len() {
                rdx[i] += f64::from(dx0[i]);
                mdx[i] += f64::from(dx0[i]).abs();
            }
        }
        let (xd, wd, dyd) = (upload(dev, &x), upload(dev, &w), upload(dev, &dy));
        let mut dxd = upload(dev, &dx0);
        let mut dwd = upload(dev, &vec![POISON; ni * no]);
        let mut dbd = upload(dev, &vec![POISON; no]);
        linear_backward(
            dev,
            &spec,
            xs,
            &xd.slice(..),
            &wd.slice(..),
            &dyd.slice(..),
            LinearGrads {
                dx: Some(CudaGrad {
                    dx: dxd.slice_mut(..),
                    accumulate: acc,
                }),
                dw: dwd.slice_mut(..),
                db: dbd.slice_mut(..),
            },
        )
        .unwrap();
        check(
            &format!("linear dx {xs}"),
            &download(dev, &dxd),
            &rdx,
            &mdx,
            1e-6,
        );
        check(
            &format!("linear dw {xs}"),
            &download(dev, &dwd),
            &rdw,
            &mdw,
            1e-6,
        );
        check(
            &format!("linear db {xs}"),
            &download(dev, &dbd),
            &rdb,
            &mdb,
            1e-6,
        );
    }
}
