//! The CUDA conv2d and BatchNorm kernels against their CPU twins, on random
//! inputs at odd sizes (1, 3, 7, 13, 32 pixels; 1 … 130 channels; groups 1,
//! 2, 4, depthwise; stride 1, 2; pad 0, 1, 2; dilation 1, 2; k 1, 3, 5) and
//! at the NB201 shapes with batch 128.
//!
//! Outputs are poisoned with NaN before each launch, so an element a kernel
//! forgets to write cannot pass. Conv outputs are compared with a tolerance
//! of 1e-4 relative to `conv(|x|, |w|)` at that element (the sum of the
//! magnitudes of the terms: fp32 reorders the sum, so cancellation can make
//! the plain relative error of a near-zero output meaningless); BatchNorm
//! statistics and outputs to 1e-4 relative.
//!
//! Each GPU test runs twice (see `common`): `…::emulated` on the host
//! emulation of the CUDA backend, always, and `…::gpu` on a GPU, ignored
//! unless asked for (`--include-ignored`, as the GPU bundle does).

#[macro_use]
mod common;
use common::Rng;
use dasnas::ops::batchnorm::cpu::{
    batchnorm_forward, batchnorm_forward_from_sums, batchnorm_forward_inplace,
};
use dasnas::ops::batchnorm::{cuda as bn_cuda, BatchNormSpec};
use dasnas::ops::conv2d::cpu::{conv2d_forward_stats, conv2d_forward_with, ConvKernel};
use dasnas::ops::conv2d::{cuda as conv_cuda, Conv2dSpec};
use dasnas::runtime::cuda::{CudaDevice, DeviceBuffer};
use dasnas::tensor::{Shape, Tensor};

impl Rng {
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0) as f32
    }
    fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.unit() * scale).collect()
    }
}

fn upload<T: bytemuck::Pod>(dev: &CudaDevice, host: &[T]) -> DeviceBuffer<T> {
    dev.upload(host).expect("upload")
}

fn download<T: bytemuck::Pod>(dev: &CudaDevice, buf: &DeviceBuffer<T>) -> Vec<T> {
    dev.download(buf).expect("download")
}

fn nan_f32(len: usize) -> Vec<f32> {
    vec![f32::from_bits(0x7fc0_dead); len]
}

fn nan_f64(len: usize) -> Vec<f64> {
    vec![f64::from_bits(0x7ff8_0000_dead_beef); len]
}

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
    let x = Tensor::from_vec(ishape, rng.vec(ishape.len(), 1.0)).unwrap();
    let bound_w = 1.0 / (spec.fan_in() as f32).sqrt();
    let w = rng.vec(spec.weight_len(), bound_w);

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
    let mut stats = dasnas::ops::CudaPartials {
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
    let (gamma, beta) = (rng.vec(c, 1.0), rng.vec(c, 1.0));
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

/// Mean to 1e-4 of the channel's standard deviation (plus |mean|),
/// inv_std to 1e-4 relative.
fn check_stats(what: &str, mean: &[f32], inv_std: &[f32], want: &dasnas::ops::batchnorm::BnStats) {
    for ch in 0..mean.len() {
        let (m, s) = (mean[ch], inv_std[ch]);
        let (wm, ws) = (want.mean[ch], want.inv_std[ch]);
        assert!(
            (m - wm).abs() <= 1e-4 * (wm.abs() + 1.0 / ws),
            "{what}: channel {ch}: mean gpu {m} cpu {wm}"
        );
        assert!(
            (s - ws).abs() <= 1e-4 * ws,
            "{what}: channel {ch}: inv_std gpu {s} cpu {ws}"
        );
    }
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
    assert!(matches!(r, Err(dasnas::Error::Shape(_))), "{r:?}");
}

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
        let offs = rng.vec(c, 2.0);
        let spread: Vec<f32> = (0..c)
            .map(|ch| {
                if ch == 0 && c > 1 {
                    0.0
                } else {
                    0.1 + rng.unit().abs() * 3.0
                }
            })
            .collect();
        let data: Vec<f32> = (0..shape.len())
            .map(|j| offs[j % c] + spread[j % c] * rng.unit())
            .collect();
        let x = Tensor::from_vec(shape, data).unwrap();
        let (gamma, beta) = (rng.vec(c, 1.0), rng.vec(c, 1.0));
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
