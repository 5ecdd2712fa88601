//! The CUDA pool, add, ReLU, global-average-pool and linear kernels against
//! their CPU twins, on random inputs at odd sizes.
//!
//! Outputs are poisoned with NaN before each launch, so an element a kernel
//! forgets to write cannot pass by accident. ReLU, add and max-pool must
//! match bit for bit (add: a NaN result matches any NaN, since the GPU's
//! NaN payloads differ from x86's); average pooling, global average pooling
//! and linear to 1e-5 relative (their kernels are written to match bit for
//! bit, the tolerance only leaves room for it).
//!
//! Each GPU test runs twice (see `common`): `…::emulated` on the host
//! emulation of the CUDA backend, always, and `…::gpu` on a GPU, ignored
//! unless asked for (`--include-ignored`, as the GPU bundle does).

#[macro_use]
mod common;
use common::Rng;
use dasnas::ops::linear::LinearSpec;
use dasnas::ops::pool::{PoolKind, PoolSpec};
use dasnas::ops::{add, global_avg_pool, linear, pool, relu};
use dasnas::runtime::cuda::{CudaDevice, DeviceBuffer};
use dasnas::tensor::{Shape, Tensor};

/// A NaN with a recognisable payload: what every output starts as.
const POISON: f32 = f32::from_bits(0x7fc0_dead);

impl Rng {
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// `len` ordinary values in [-4, 4).
    fn plain(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit() * 4.0).collect()
    }
    /// `len` values, mostly ordinary, with the special cases a select must
    /// carry through untouched: ±0, NaN of both signs, ±inf, subnormals.
    fn special(&mut self, len: usize) -> Vec<f32> {
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

fn upload(dev: &CudaDevice, host: &[f32]) -> DeviceBuffer<f32> {
    dev.upload(host).expect("upload")
}

/// `host` uploaded one float past a 16-byte boundary when `offset`, so a
/// view of it (from [`view`]) takes the scalar kernels; else aligned.
fn upload_at(dev: &CudaDevice, host: &[f32], offset: bool) -> DeviceBuffer<f32> {
    if offset {
        let mut v = vec![POISON];
        v.extend_from_slice(host);
        upload(dev, &v)
    } else {
        upload(dev, host)
    }
}

fn view(buf: &DeviceBuffer<f32>, offset: bool) -> dasnas::runtime::cuda::DView<'_, f32> {
    buf.slice(usize::from(offset)..)
}

fn view_mut(buf: &mut DeviceBuffer<f32>, offset: bool) -> dasnas::runtime::cuda::DViewMut<'_, f32> {
    buf.slice_mut(usize::from(offset)..)
}

/// A NaN-poisoned output of `len` floats (at `offset` as in [`upload_at`]).
fn poisoned(dev: &CudaDevice, len: usize, offset: bool) -> DeviceBuffer<f32> {
    upload_at(dev, &vec![POISON; len], offset)
}

/// The output's values (the part a view at `offset` covers).
fn download(dev: &CudaDevice, buf: &DeviceBuffer<f32>, offset: bool) -> Vec<f32> {
    let mut v = dev.download(buf).expect("download");
    if offset {
        v.remove(0);
    }
    v
}

fn assert_bitwise(what: &str, got: &[f32], want: &[f32]) {
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
fn assert_bitwise_nan(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(same, "{what}: element {i}: gpu {g} cpu {w}");
    }
}

/// |got - want| <= 1e-5 * max(|want|, scale[i]); `scale` bounds the
/// magnitude of the terms that were summed (so a result that cancels to
/// near zero is not held to a tolerance below its rounding). NaN fails.
fn assert_close(what: &str, got: &[f32], want: &[f32], scale: impl Fn(usize) -> f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * w.abs().max(scale(i));
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: gpu {g} cpu {w} (tolerance {tol})"
        );
    }
}

const SIDES: [usize; 4] = [1, 3, 7, 13];
const CHANNELS: [usize; 5] = [1, 3, 5, 16, 17];

gpu_test!(relu_is_bit_identical);
fn relu_is_bit_identical(dev: &CudaDevice) {
    let mut rng = Rng(11);
    for len in [1usize, 3, 4, 5, 7, 16, 17, 1023, 4096 + 3, 70_001] {
        for offset in [false, true] {
            let x = rng.special(len);
            let xt = Tensor::from_vec(Shape::new(1, 1, 1, len), x.clone()).unwrap();
            let mut want = Tensor::filled(xt.shape, POISON);
            relu::cpu::relu_forward(&xt, &mut want).expect("cpu relu");

            let xd = upload_at(dev, &x, offset);
            let mut yd = poisoned(dev, len, offset);
            relu::cuda::relu_forward(dev, &view(&xd, offset), &mut view_mut(&mut yd, offset))
                .expect("launch");
            let got = download(dev, &yd, offset);
            assert_bitwise(&format!("relu len {len} offset {offset}"), &got, &want.data);

            let mut xd = upload_at(dev, &x, offset);
            relu::cuda::relu_forward_inplace(dev, &mut view_mut(&mut xd, offset)).expect("launch");
            let got = download(dev, &xd, offset);
            assert_bitwise(
                &format!("relu in place len {len} offset {offset}"),
                &got,
                &want.data,
            );
        }
    }
    // Mismatched lengths are an error, not a launch.
    let xd = upload(dev, &[1.0; 5]);
    let mut yd = upload(dev, &[0.0; 4]);
    assert!(relu::cuda::relu_forward(dev, &xd.as_view(), &mut yd.as_view_mut()).is_err());
}

gpu_test!(add_is_bit_identical);
fn add_is_bit_identical(dev: &CudaDevice) {
    let mut rng = Rng(12);
    for len in [1usize, 3, 4, 5, 7, 16, 17, 1023, 4096 + 3, 70_001] {
        let shape = Shape::new(1, 1, 1, len);
        for k in 1..=5usize {
            for offset in [false, true] {
                let hosts: Vec<Vec<f32>> = (0..k).map(|_| rng.special(len)).collect();
                let ts: Vec<Tensor> = hosts
                    .iter()
                    .map(|h| Tensor::from_vec(shape, h.clone()).unwrap())
                    .collect();
                let refs: Vec<&Tensor> = ts.iter().collect();
                let mut want = Tensor::filled(shape, POISON);
                add::cpu::add_forward(&refs, &mut want).expect("cpu add");

                // Only input 0 at the offset when `offset`: mixed alignment
                // must fall back to the scalar kernels too.
                let bufs: Vec<DeviceBuffer<f32>> = hosts
                    .iter()
                    .enumerate()
                    .map(|(i, h)| upload_at(dev, h, offset && i == 0))
                    .collect();
                let views: Vec<_> = bufs
                    .iter()
                    .enumerate()
                    .map(|(i, b)| view(b, offset && i == 0))
                    .collect();
                let vrefs: Vec<_> = views.iter().collect();
                let mut yd = poisoned(dev, len, offset);
                add::cuda::add_forward(dev, &vrefs, &mut view_mut(&mut yd, offset))
                    .expect("launch");
                let got = download(dev, &yd, offset);
                let what = format!("add len {len} k {k} offset {offset}");
                assert_bitwise_nan(&what, &got, &want.data);

                // In place at every position.
                for (pos, host) in hosts.iter().enumerate() {
                    let others: Vec<_> = (0..k).filter(|&j| j != pos).map(|j| &views[j]).collect();
                    let mut acc = upload_at(dev, host, offset);
                    add::cuda::add_forward_inplace(
                        dev,
                        &mut view_mut(&mut acc, offset),
                        pos,
                        &others,
                    )
                    .expect("launch");
                    let got = download(dev, &acc, offset);
                    assert_bitwise_nan(&format!("{what} in place pos {pos}"), &got, &want.data);
                }
            }
        }
    }
    // Errors, not launches: no inputs, differing lengths, a bad position.
    let a = upload(dev, &[1.0; 5]);
    let b = upload(dev, &[1.0; 4]);
    let mut y = upload(dev, &[0.0; 5]);
    assert!(add::cuda::add_forward(dev, &[], &mut y.as_view_mut()).is_err());
    assert!(
        add::cuda::add_forward(dev, &[&a.as_view(), &b.as_view()], &mut y.as_view_mut()).is_err()
    );
    assert!(add::cuda::add_forward_inplace(dev, &mut y.as_view_mut(), 2, &[&a.as_view()]).is_err());
}

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
        pool::cpu::pool_forward(&spec, &xt, &mut want).expect("cpu pool");

        let xd = upload_at(dev, &x, offset);
        let mut yd = poisoned(dev, out.len(), offset);
        let got_shape = pool::cuda::pool_forward(
            dev,
            &spec,
            shape,
            &view(&xd, offset),
            &mut view_mut(&mut yd, offset),
        )
        .expect("launch");
        assert_eq!(got_shape, out);
        let got = download(dev, &yd, offset);
        let what = format!("{spec:?} on {shape} offset {offset}");
        if max {
            assert_bitwise(&what, &got, &want.data);
        } else {
            let big = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_close(&what, &got, &want.data, |_| big);
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
    let r = pool::cuda::pool_forward(
        dev,
        &spec,
        Shape::new(1, 4, 4, 1),
        &xd.as_view(),
        &mut yd.as_view_mut(),
    );
    assert!(r.is_err());
}

gpu_test!(global_avg_pool_matches_cpu);
fn global_avg_pool_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(14);
    let mut shapes = Vec::new();
    for n in [1usize, 3] {
        for &h in &SIDES {
            for &w in &SIDES {
                for &c in &CHANNELS {
                    shapes.push(Shape::new(n, h, w, c));
                }
            }
        }
    }
    // NB201's classifier input, and one with more outputs than a grid holds
    // threads in one pass (2^16 blocks × 256).
    shapes.push(Shape::new(128, 8, 8, 64));
    shapes.push(Shape::new(1100, 2, 2, 16_001));
    for shape in shapes {
        let x = rng.plain(shape.len());
        let xt = Tensor::from_vec(shape, x.clone()).unwrap();
        let out = Shape::new(shape.n, 1, 1, shape.c);
        let mut want = Tensor::filled(out, POISON);
        global_avg_pool::cpu::global_avg_pool_forward(&xt, &mut want).expect("cpu gap");

        let xd = upload(dev, &x);
        let mut yd = poisoned(dev, out.len(), false);
        let got_shape = global_avg_pool::cuda::global_avg_pool_forward(
            dev,
            shape,
            &xd.as_view(),
            &mut yd.as_view_mut(),
        )
        .expect("launch");
        assert_eq!(got_shape, out);
        let got = download(dev, &yd, false);
        // Scale: the mean of |x| over the pixels of (n, c).
        let hw = shape.h * shape.w;
        let scale = |i: usize| {
            let (b, ch) = (i / shape.c, i % shape.c);
            (0..hw)
                .map(|p| x[(b * hw + p) * shape.c + ch].abs())
                .sum::<f32>()
                / hw as f32
        };
        assert_close(
            &format!("global_avg_pool on {shape}"),
            &got,
            &want.data,
            scale,
        );
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
        let mut yd = poisoned(dev, out.len(), false);
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
        let got = download(dev, &yd, false);
        let ni = spec.inputs;
        let scale = |i: usize| {
            let (b, o) = (i / outputs, i % outputs);
            (0..ni)
                .map(|j| (x[b * ni + j] * wts[j * outputs + o]).abs())
                .sum::<f32>()
                + bias[o].abs()
        };
        assert_close(
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

/// The kernels match their CPU twins bit for bit only if NVRTC keeps every
/// f32 multiply and add separately rounded and divides exactly: with
/// `--fmad=false` (nvrtc::OPTIONS) the PTX of every family but the convs
/// has no f32 fused multiply-add and no approximate division. (f64 FMAs
/// are allowed: the linear backward sums in f64 and is compared with a
/// tolerance.) Needs only NVRTC (skips without it unless
/// `REQUIRE_NVRTC=1`), so it runs in CI.
#[test]
fn bitwise_kernels_have_no_fma_or_approximate_division() {
    use dasnas::runtime::cuda::nvrtc;
    if !nvrtc::available() {
        let why = "libnvrtc cannot be loaded";
        if std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("REQUIRE_NVRTC=1 but {why}");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED bitwise_kernels_have_no_fma_or_approximate_division: {why}"
        );
        return;
    }
    // Every family but the convs, whose FMAs are explicit `fmaf` calls.
    for (family, _) in dasnas::runtime::cuda_sources::CUDA_SOURCES
        .iter()
        .filter(|(f, _)| !f.starts_with("conv2d"))
    {
        let src = nvrtc::source(family).expect("family embedded");
        let ptx = nvrtc::compile_ptx(family, src, 90).expect("compiles");
        // f32 contractions, approximate f32 division / square root, and
        // flushing f32 subnormals; f64 math functions (log, exp) may use
        // approximate instructions inside their correctly-iterated
        // implementations, and are compared with tolerances.
        for bad in [
            "fma.rn.f32",
            "fma.rn.ftz.f32",
            "mad.f32",
            "div.approx.f32",
            "div.approx.ftz.f32",
            "div.full.f32",
            "sqrt.approx.f32",
            "rcp.approx.f32",
            ".ftz.f32",
        ] {
            assert!(
                !ptx.contains(bad),
                "{family}.cu: PTX contains `{bad}`, so it cannot match the CPU bit for bit"
            );
        }
    }
}
