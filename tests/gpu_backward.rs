//! The CUDA backward and training kernels against naive f64 references
//! written here from the layout definitions (not the CPU code): conv2d
//! dx / dw, BatchNorm, ReLU, pooling, global average pooling, linear,
//! softmax cross-entropy and the SGD update, on random inputs at odd sizes.
//!
//! Outputs are poisoned with NaN before each launch (or filled with random
//! values where the launch accumulates), so an element a kernel forgets to
//! write cannot pass.
//!
//! Each GPU test runs twice (see `common`): `…::emulated` on the host
//! emulation of the CUDA backend, always, and `…::gpu` on a GPU, ignored
//! unless asked for (`--include-ignored`, as the GPU bundle does).

#[macro_use]
mod common;
use common::Rng;
use dasnas::ops::batchnorm::cuda::{batchnorm_backward, batchnorm_parts, BnGrads, BnSaved};
use dasnas::ops::batchnorm::BatchNormSpec;
use dasnas::ops::conv2d::cuda::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_backward_weight_splits, ConvInput,
};
use dasnas::ops::conv2d::Conv2dSpec;
use dasnas::ops::global_avg_pool::cuda::global_avg_pool_backward;
use dasnas::ops::linear::cuda::{linear_backward, LinearGrads};
use dasnas::ops::linear::LinearSpec;
use dasnas::ops::pool::cuda::pool_backward;
use dasnas::ops::pool::{PoolKind, PoolSpec};
use dasnas::ops::relu::cuda::relu_backward;
use dasnas::ops::softmax_ce::cuda::{softmax_ce, SoftmaxCeOut};
use dasnas::ops::CudaGrad;
use dasnas::runtime::cuda::kernels::{sgd_update, SgdStep};
use dasnas::runtime::cuda::{CudaDevice, DeviceBuffer};
use dasnas::tensor::Shape;

const POISON: f32 = f32::from_bits(0x7fc0_dead);

impl Rng {
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit()).collect()
    }
}

fn up<T: bytemuck::Pod>(dev: &CudaDevice, host: &[T]) -> DeviceBuffer<T> {
    dev.upload(host).expect("upload")
}

fn down<T: bytemuck::Pod>(dev: &CudaDevice, buf: &DeviceBuffer<T>) -> Vec<T> {
    dev.download(buf).expect("download")
}

/// |got − want| <= rel · (mag[i] + |want|) + 1e-30 elementwise; NaN fails.
fn check(what: &str, got: &[f32], want: &[f64], mag: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..got.len() {
        let tol = rel * (mag[i] + want[i].abs()) + 1e-30;
        assert!(
            (f64::from(got[i]) - want[i]).abs() <= tol,
            "{what}: element {i}: gpu {} want {} (tolerance {tol})",
            got[i],
            want[i]
        );
    }
}

/// `initial` values (random when accumulating) or poison.
fn start(rng: &mut Rng, len: usize, accumulate: bool) -> Vec<f32> {
    if accumulate {
        rng.vec(len)
    } else {
        vec![POISON; len]
    }
}

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
        let (xd, wd, dyd) = (up(dev, &x), up(dev, &wt), up(dev, &dy));
        let mut dxd = up(dev, &dx0);
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
        let mut part = up(dev, &vec![POISON; splits * spec.weight_len()]);
        let mut dwd = up(dev, &vec![POISON; spec.weight_len()]);
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
            &down(dev, &dxd),
            &rdx,
            &mdx,
            1e-5,
        );
        check(
            &format!("conv dw {c:?}"),
            &down(dev, &dwd),
            &rdw,
            &mdw,
            1e-5,
        );
        // Deterministic: a second run gives the same bits.
        let first = down(dev, &dwd);
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
        let again = down(dev, &dwd);
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
    let x = up(dev, &vec![0f32; xs.len()]);
    let dy = up(dev, &vec![0f32; 2 * 4 * 4 * 5]);
    let mut dw = up(dev, &vec![0f32; spec.weight_len()]);
    let splits = conv2d_backward_weight_splits(&spec, xs).unwrap();
    let mut part = up(dev, &vec![0f32; splits * spec.weight_len() + 1]);
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
    let w = up(dev, &vec![0f32; spec.weight_len()]);
    let mut dx = up(dev, &vec![0f32; xs.len()]);
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
            up(dev, &x),
            up(dev, &dy),
            up(dev, &mean),
            up(dev, &istd),
            up(dev, &gamma),
        );
        let mut dxd = up(dev, &dx0);
        let mut dg = up(dev, &vec![POISON; c]);
        let mut db = up(dev, &vec![POISON; c]);
        let mut p1 = up(dev, &vec![f64::NAN; parts * c]);
        let mut p2 = up(dev, &vec![f64::NAN; parts * c]);
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
            &down(dev, &db),
            &rdb,
            &mg,
            1e-6,
        );
        check(
            &format!("bn dgamma {shape}"),
            &down(dev, &dg),
            &rdg,
            &mg,
            1e-6,
        );
        check(
            &format!("bn dx {shape}"),
            &down(dev, &dxd),
            &rdx,
            &mdx,
            1e-5,
        );
    }
}

gpu_test!(relu_and_global_avg_pool_backward_match_reference);
fn relu_and_global_avg_pool_backward_match_reference(dev: &CudaDevice) {
    let mut rng = Rng(43);
    for len in [1usize, 5, 1023, 70_001] {
        for acc in [false, true] {
            let mut x = rng.vec(len);
            if len > 3 {
                x[1] = 0.0;
                x[2] = -0.0;
                x[3] = f32::NAN;
            }
            let dy = rng.vec(len);
            let dx0 = start(&mut rng, len, acc);
            let want: Vec<f32> = (0..len)
                .map(|i| {
                    let v = if x[i] > 0.0 { dy[i] } else { 0.0 };
                    if acc {
                        dx0[i] + v
                    } else {
                        v
                    }
                })
                .collect();
            let (xd, dyd) = (up(dev, &x), up(dev, &dy));
            let mut dxd = up(dev, &dx0);
            relu_backward(
                dev,
                &xd.slice(..),
                &dyd.slice(..),
                &mut dxd.slice_mut(..),
                acc,
            )
            .unwrap();
            let got = down(dev, &dxd);
            for i in 0..len {
                assert_eq!(
                    got[i].to_bits(),
                    want[i].to_bits(),
                    "relu dx[{i}] len {len}"
                );
            }
        }
    }
    for (shape, acc) in [
        (Shape::new(1, 1, 1, 1), false),
        (Shape::new(3, 7, 5, 17), true),
        (Shape::new(2, 8, 8, 64), false),
    ] {
        let dy = rng.vec(shape.n * shape.c);
        let dx0 = start(&mut rng, shape.len(), acc);
        // The CPU twin's arithmetic: an f32 division, then (accumulating)
        // an f32 sum; the kernel must match it bit for bit.
        let hw = (shape.h * shape.w) as f32;
        let want: Vec<f32> = (0..shape.len())
            .map(|i| {
                let (b, ch) = (i / shape.per_sample(), i % shape.c);
                let v = dy[b * shape.c + ch] / hw;
                if acc {
                    dx0[i] + v
                } else {
                    v
                }
            })
            .collect();
        let dyd = up(dev, &dy);
        let mut dxd = up(dev, &dx0);
        global_avg_pool_backward(dev, shape, &dyd.slice(..), &mut dxd.slice_mut(..), acc).unwrap();
        let got = down(dev, &dxd);
        for i in 0..shape.len() {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "gap dx[{i}] {shape}");
        }
    }
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
        let (xd, dyd) = (up(dev, &x), up(dev, &dy));
        let mut dxd = up(dev, &dx0);
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
            &down(dev, &dxd),
            &want,
            &ones,
            1e-6,
        );
    }
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
        let (xd, wd, dyd) = (up(dev, &x), up(dev, &w), up(dev, &dy));
        let mut dxd = up(dev, &dx0);
        let mut dwd = up(dev, &vec![POISON; ni * no]);
        let mut dbd = up(dev, &vec![POISON; no]);
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
            &down(dev, &dxd),
            &rdx,
            &mdx,
            1e-6,
        );
        check(
            &format!("linear dw {xs}"),
            &down(dev, &dwd),
            &rdw,
            &mdw,
            1e-6,
        );
        check(
            &format!("linear db {xs}"),
            &down(dev, &dbd),
            &rdb,
            &mdb,
            1e-6,
        );
    }
}

gpu_test!(softmax_ce_matches_reference);
fn softmax_ce_matches_reference(dev: &CudaDevice) {
    let mut rng = Rng(46);
    for (batch, classes) in [(1usize, 1usize), (5, 10), (128, 10), (300, 7), (3, 1000)] {
        // Multiples of 1.5 in [-6, 6]: ties for the argmax rule.
        let logits: Vec<f32> = (0..batch * classes)
            .map(|_| (rng.unit() * 4.0).trunc() * 1.5)
            .collect();
        let labels: Vec<i32> = (0..batch)
            .map(|_| (rng.next() % classes as u64) as i32)
            .collect();
        let (ld, lbd) = (up(dev, &logits), up(dev, &labels));
        let mut loss = up(dev, &vec![POISON; batch]);
        let mut correct = up(dev, &vec![-1i32; batch]);
        let mut dl = up(dev, &vec![POISON; batch * classes]);
        let mut mean = up(dev, &[POISON]);
        softmax_ce(
            dev,
            batch,
            classes,
            &ld.slice(..),
            &lbd.slice(..),
            SoftmaxCeOut {
                loss: loss.slice_mut(..),
                correct: correct.slice_mut(..),
                dlogits: dl.slice_mut(..),
                mean_loss: mean.slice_mut(..),
            },
        )
        .unwrap();
        let (mut rloss, mut rdl) = (vec![0f64; batch], vec![0f64; batch * classes]);
        let mut rcorrect = vec![0i32; batch];
        for b in 0..batch {
            let row = &logits[b * classes..(b + 1) * classes];
            let (mut mx, mut arg) = (row[0], 0);
            for (k, &v) in row.iter().enumerate() {
                if v > mx {
                    mx = v;
                    arg = k;
                }
            }
            let s: f64 = row
                .iter()
                .map(|&v| (f64::from(v) - f64::from(mx)).exp())
                .sum();
            let label = labels[b] as usize;
            rloss[b] = f64::from(mx) + s.ln() - f64::from(row[label]);
            rcorrect[b] = i32::from(arg == label);
            for (k, &v) in row.iter().enumerate() {
                let p = (f64::from(v) - f64::from(mx)).exp() / s;
                rdl[b * classes + k] = (p - if k == label { 1.0 } else { 0.0 }) / batch as f64;
            }
        }
        let rmean = rloss.iter().sum::<f64>() / batch as f64;
        let tiny = vec![1e-3f64; batch * classes];
        check("ce loss", &down(dev, &loss), &rloss, &tiny, 1e-6);
        check(
            "ce dlogits",
            &down(dev, &dl),
            &rdl,
            &vec![1e-9; batch * classes],
            1e-6,
        );
        check("ce mean", &down(dev, &mean), &[rmean], &[1e-3], 1e-6);
        assert_eq!(
            down(dev, &correct),
            rcorrect,
            "correct flags {batch}x{classes}"
        );
    }
}

gpu_test!(sgd_update_matches_torch_rule);
fn sgd_update_matches_torch_rule(dev: &CudaDevice) {
    let mut rng = Rng(47);
    let lr = [0.1f32, 0.05, 0.025, 0.0125];
    for (momentum, weight_decay, nesterov) in [
        (0.9f32, 5e-4f32, false),
        (0.9, 5e-4, true),
        (0.0, 0.0, false),
        (0.0, 1e-3, false),
        (0.5, 0.0, true),
    ] {
        let len = 70_001;
        let mut p = rng.vec(len);
        let mut buf = vec![0f32; len];
        let mut pd = up(dev, &p);
        let mut bd = up(dev, &vec![POISON; len]);
        let lrd = up(dev, &lr);
        for (step, &rate) in lr.iter().enumerate() {
            let g = rng.vec(len);
            let gd = up(dev, &g);
            sgd_update(
                dev,
                &mut pd.slice_mut(..),
                &gd.slice(..),
                &mut bd.slice_mut(..),
                &lrd.slice(..),
                SgdStep {
                    momentum,
                    weight_decay,
                    nesterov,
                    step,
                    first: step == 0,
                },
            )
            .unwrap();
            // torch.optim.SGD, written out in f32 (each op rounded).
            for i in 0..len {
                let mut d = g[i];
                if weight_decay != 0.0 {
                    d += weight_decay * p[i];
                }
                if momentum != 0.0 {
                    buf[i] = if step == 0 { d } else { momentum * buf[i] + d };
                    d = if nesterov {
                        d + momentum * buf[i]
                    } else {
                        buf[i]
                    };
                }
                p[i] -= rate * d;
            }
        }
        let got = down(dev, &pd);
        for i in 0..len {
            assert_eq!(
                got[i].to_bits(),
                p[i].to_bits(),
                "sgd p[{i}] momentum {momentum} wd {weight_decay} nesterov {nesterov}: gpu {} want {}",
                got[i],
                p[i]
            );
        }
    }
    // A step beyond the schedule is an error, not an out-of-bounds read.
    let mut pd = up(dev, &[0f32; 4]);
    let mut bd = up(dev, &[0f32; 4]);
    let gd = up(dev, &[0f32; 4]);
    let lrd = up(dev, &lr);
    let step = SgdStep {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
        step: lr.len(),
        first: true,
    };
    assert!(sgd_update(
        dev,
        &mut pd.slice_mut(..),
        &gd.slice(..),
        &mut bd.slice_mut(..),
        &lrd.slice(..),
        step
    )
    .is_err());
}
