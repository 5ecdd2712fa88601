//! What the ops' tests (`src/ops/<op>/tests.rs`) share: naive f64
//! references used by several ops' tests, the checks they compare with,
//! the GPU tests' buffers at an offset, and the tests that run several ops
//! together (thread-count independence, absurd shapes, the fused kernels,
//! the backward of ReLU with global average pooling, of GAP with linear and
//! add).
//!
//! The CPU ops are compared with naive nested-loop references written
//! straight from the definitions (accumulating in f64), the backwards with
//! central finite differences of such references, the CUDA kernels with
//! their CPU twins or f64 references. Outputs are poisoned with NaN before
//! every call, so an element an op forgets to write fails the comparison.

use crate::ops::add::cpu::{add_forward, add_forward_inplace};
use crate::ops::batchnorm::cpu::{batchnorm_forward, batchnorm_forward_from_sums};
use crate::ops::batchnorm::{BatchNormSpec, BnStats, ChannelSums};
use crate::ops::conv2d::cpu::{
    conv2d_forward, conv2d_forward_relu_input, conv2d_forward_stats, ConvKernel,
};
use crate::ops::conv2d::Conv2dSpec;
use crate::ops::global_avg_pool::cpu::global_avg_pool_forward;
use crate::ops::global_avg_pool::{cpu as gap, cuda::global_avg_pool_backward};
use crate::ops::linear::cpu::linear_forward;
use crate::ops::linear::{cpu as lin, LinearSpec};
use crate::ops::relu::cpu::relu_forward;
use crate::ops::relu::cuda::relu_backward;
use crate::runtime::cuda::{CudaDevice, DView, DViewMut, DeviceBuffer};
use crate::testing::{download, upload, Rng, POISON};
use crate::{Error, Shape, Tensor};
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

// ---------------------------------------------------------------- helpers

/// A proptest configuration of `cases` cases whose failures are kept
/// beside the test's source file (`<file>.proptest-regressions`, checked
/// in), rather than under a `proptest-regressions/` folder at the root.
pub(crate) fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(cases)
    }
}

/// The draws of the CUDA-vs-CPU tests of several ops.
impl Rng {
    /// `len` ordinary values in [-4, 4).
    pub(crate) fn plain(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit() * 4.0).collect()
    }
    /// `len` values, mostly ordinary, with the special cases a select must
    /// carry through untouched: ±0, NaN of both signs, ±inf, subnormals.
    pub(crate) fn special(&mut self, len: usize) -> Vec<f32> {
        (0..len)
            .map(|_| match self.next() % 16 {
                0 => 0.0,
                1 => -0.0,
                2 => f32::NAN,
                3 => -f32::NAN,
                4 => f32::INFINITY,
                5 => f32::NEG_INFINITY,
                6 => f32::MIN_POSITIVE / 8.0,
                7 => -f32::MIN_POSITIVE / 8.0,
                _ => self.unit() * 4.0,
            })
            .collect()
    }
}

/// A tensor of shape `s` full of NaN.
pub(crate) fn poisoned(s: Shape) -> Tensor {
    Tensor::filled(s, f32::NAN)
}

/// `|got - want| <= rtol * scale + atol` elementwise, where `scale` is the
/// magnitude the rounding error of the value scales with (the sum of
/// absolute products for a dot product, or |want|).
pub(crate) fn assert_close(
    what: &str,
    got: &[f32],
    want: &[f64],
    scale: &[f64],
    rtol: f64,
    atol: f64,
) {
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

/// A square `k`×`k` conv spec.
pub(crate) fn conv_spec(
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

// ------------------------------------------- finite differences (backward)

pub(crate) fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub(crate) fn dot(a: &[f64], r: &[f32]) -> f64 {
    a.iter().zip(r).map(|(x, &y)| x * y as f64).sum()
}

/// Central differences of `loss` at `x0` (step `h`) against `analytic`.
pub(crate) fn check_grad(
    what: &str,
    x0: &[f32],
    analytic: &[f32],
    h: f64,
    loss: impl Fn(&[f64]) -> f64,
) {
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

/// `|got - want| <= tol * (1 + |want|)` elementwise.
pub(crate) fn assert_near(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

pub(crate) fn relu64(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| if x > 0.0 { x } else { 0.0 }).collect()
}

// ------------------------------------------------------ batchnorm references

/// Two-pass BatchNorm from the definition, in f64: (y, mean, var).
pub(crate) fn bn_ref(
    x: &Tensor,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
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

/// Channel sums of an NHWC tensor in the documented order: per sample,
/// pixels in order, in f64; samples combined in order.
pub(crate) fn sums_ref(y: &Tensor) -> ChannelSums {
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

/// The f64 values' bits.
pub(crate) fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Rounding-error scale of a BN output (see `batchnorm_matches_reference`).
pub(crate) fn bn_scale(
    x: &Tensor,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f64],
    var: &[f64],
) -> Vec<f64> {
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

// ------------------------------------------------------------ GPU helpers

/// |got − want| <= rel · (mag[i] + |want|) + 1e-30 elementwise; NaN fails.
pub(crate) fn check(what: &str, got: &[f32], want: &[f64], mag: &[f64], rel: f64) {
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
pub(crate) fn start(rng: &mut Rng, len: usize, accumulate: bool) -> Vec<f32> {
    if accumulate {
        rng.vec(len)
    } else {
        vec![POISON; len]
    }
}

/// `len` NaNs (the payload of [`POISON`]).
pub(crate) fn nan_f32(len: usize) -> Vec<f32> {
    vec![POISON; len]
}

/// `len` f64 NaNs with a recognisable payload.
pub(crate) fn nan_f64(len: usize) -> Vec<f64> {
    vec![f64::from_bits(0x7ff8_0000_dead_beef); len]
}

/// Mean to 1e-4 of the channel's standard deviation (plus |mean|),
/// inv_std to 1e-4 relative.
pub(crate) fn check_stats(what: &str, mean: &[f32], inv_std: &[f32], want: &BnStats) {
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

/// `host` uploaded one float past a 16-byte boundary when `offset`, so a
/// view of it (from [`view`]) takes the scalar kernels; else aligned.
pub(crate) fn upload_at(dev: &CudaDevice, host: &[f32], offset: bool) -> DeviceBuffer<f32> {
    if offset {
        let mut v = vec![POISON];
        v.extend_from_slice(host);
        upload(dev, &v)
    } else {
        upload(dev, host)
    }
}

/// The view of `buf` a kernel reads (past the offset float when `offset`).
pub(crate) fn view(buf: &DeviceBuffer<f32>, offset: bool) -> DView<'_, f32> {
    buf.slice(usize::from(offset)..)
}

/// The view of `buf` a kernel writes (past the offset float when `offset`).
pub(crate) fn view_mut(buf: &mut DeviceBuffer<f32>, offset: bool) -> DViewMut<'_, f32> {
    buf.slice_mut(usize::from(offset)..)
}

/// A NaN-poisoned output of `len` floats (at `offset` as in [`upload_at`]).
pub(crate) fn poisoned_at(dev: &CudaDevice, len: usize, offset: bool) -> DeviceBuffer<f32> {
    upload_at(dev, &vec![POISON; len], offset)
}

/// The output's values (the part a view at `offset` covers).
pub(crate) fn download_at(dev: &CudaDevice, buf: &DeviceBuffer<f32>, offset: bool) -> Vec<f32> {
    let mut v = dev.download(buf).expect("download");
    if offset {
        v.remove(0);
    }
    v
}

/// Bit-for-bit equality, reporting the element, both values and their bits.
pub(crate) fn assert_bitwise(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{what}: element {i}: gpu {g} ({:#010x}) cpu {w} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// Bitwise, except that a NaN matches any NaN.
pub(crate) fn assert_bitwise_nan(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(same, "{what}: element {i}: gpu {g} cpu {w}");
    }
}

/// |got - want| <= 1e-5 * max(|want|, scale[i]); `scale` bounds the
/// magnitude of the terms that were summed (so a result that cancels to
/// near zero is not held to a tolerance below its rounding). NaN fails.
pub(crate) fn assert_within(what: &str, got: &[f32], want: &[f32], scale: impl Fn(usize) -> f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * w.abs().max(scale(i));
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: gpu {g} cpu {w} (tolerance {tol})"
        );
    }
}

/// The image sides and channel counts of the CUDA-vs-CPU tests.
pub(crate) const SIDES: [usize; 4] = [1, 3, 7, 13];
pub(crate) const CHANNELS: [usize; 5] = [1, 3, 5, 16, 17];

// ------------------------------------------------------ several ops at once

/// Same bits with 1 and 2 rayon threads, for every op with a reduction.
#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = Rng(11);
    let x = rng.tensor(Shape::new(5, 13, 11, 32));
    let run = |threads: usize| {
        pool_of(threads).install(|| {
            let mut out = Vec::new();
            for s in [
                conv_spec(32, 48, 3, 1, 1, 1, 1),
                conv_spec(32, 32, 3, 2, 1, 1, 32),
                conv_spec(32, 34, 3, 1, 1, 1, 2),
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
    let s = conv_spec(1, 1, 3, 1, 1 << 40, 1, 1);
    let x = Tensor::zeros(Shape::new(1, 3, 3, 1));
    let mut cy = poisoned(Shape::new(1, 3, 3, 1));
    assert!(conv2d_forward(&s, &x, &[0.0; 9], &mut cy).is_err());
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
                (conv_spec(32, 48, 3, 1, 1, 1, 1), true),
                (conv_spec(32, 32, 1, 1, 0, 1, 1), false),
                (conv_spec(32, 32, 3, 2, 1, 1, 32), true),
                (conv_spec(32, 34, 3, 1, 1, 1, 2), false),
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
    assert_near("linear forward", &y.data, &lin_ref(&x64, &w64, &b64), 1e-5);
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
    crate::ops::add::cpu::add_backward_accumulate(&d, &mut acc).unwrap();
    assert_eq!(acc.data, vec![1.5, 1.0, 3.0, 6.0]);
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
            let (xd, dyd) = (upload(dev, &x), upload(dev, &dy));
            let mut dxd = upload(dev, &dx0);
            relu_backward(
                dev,
                &xd.slice(..),
                &dyd.slice(..),
                &mut dxd.slice_mut(..),
                acc,
            )
            .unwrap();
            let got = download(dev, &dxd);
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
        let dyd = upload(dev, &dy);
        let mut dxd = upload(dev, &dx0);
        global_avg_pool_backward(dev, shape, &dyd.slice(..), &mut dxd.slice_mut(..), acc).unwrap();
        let got = download(dev, &dxd);
        for i in 0..shape.len() {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "gap dx[{i}] {shape}");
        }
    }
}
