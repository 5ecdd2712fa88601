//! The CUDA kernels that are not ops (weight init, sign packing, Hamming
//! accumulation, the Cholesky log-determinant) against their CPU twins, on
//! random inputs at odd sizes, and the SGD update against PyTorch's rule.
//!
//! Outputs are poisoned before each launch (NaN payloads, 0xDEAD… words), so
//! an element the kernel forgets to write cannot pass by accident. Integer
//! and bit results must match exactly; the log-determinant to 1e-9 relative.
//!
//! Each GPU test runs twice (see `dasnas::testing`): `…::emulated` on the host
//! emulation of the CUDA backend, always, and `…::gpu` on a GPU, ignored
//! unless asked for (`--include-ignored`, as the GPU bundle does).

use dasnas::gpu_test;
use dasnas::net::init::init_param;
use dasnas::net::Param;
use dasnas::param::ParamInit;
use dasnas::rng::{name_id, stream_key};
use dasnas::runtime::cuda::kernels::{sgd_update, SgdStep};
use dasnas::runtime::cuda::{kernels, CudaDevice};
use dasnas::score::codes::{pack_signs, Codes};
use dasnas::score::hamming::{hamming_accumulate, kernel_from_hamming};
use dasnas::score::logdet::cholesky_logdet;
use dasnas::testing::{download, upload, Rng, POISON};

/// The activations these tests draw.
trait Activation {
    /// Mostly ordinary values, with every special case the sign test must
    /// get right: ±0, NaN of both signs, ±inf, subnormals of both signs.
    fn activation(&mut self) -> f32;
}

impl Activation for Rng {
    fn activation(&mut self) -> f32 {
        match self.next() % 16 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::NAN,
            3 => -f32::NAN,
            4 => f32::INFINITY,
            5 => f32::NEG_INFINITY,
            6 => f32::MIN_POSITIVE / 8.0,
            7 => -f32::MIN_POSITIVE / 8.0,
            _ => (self.unit_f64() * 4.0) as f32,
        }
    }
}

/// Floats of `batch` samples of `n` units, every sample distinct in sign
/// pattern with overwhelming probability.
fn activations(batch: usize, n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..batch * n).map(|_| rng.activation()).collect()
}

gpu_test!(init_uniform_is_bit_identical);
fn init_uniform_is_bit_identical(dev: &CudaDevice) {
    // Odd lengths, plus one past the grid-stride wrap (2^16 blocks × 256).
    let lens = [1usize, 7, 33, 128, 1000, 70_001, (1 << 24) + 77];
    let cases = [
        ("stem.conv.weight", 0u64, 0.19245009f32),
        ("x.w", 7, 1.0),
        ("fc.bias", 123, 0.0625),
    ];
    for &len in &lens {
        for &(name, seed, bound) in &cases {
            let param = Param {
                name: name.to_string(),
                len,
                init: ParamInit::Uniform { bound },
            };
            let want = init_param(&param, seed);
            let mut buf = upload(dev, &vec![f32::from_bits(0x7fc0_dead); len]);
            let key = stream_key(seed, name_id(name));
            kernels::init_uniform(dev, &mut buf.as_view_mut(), key, bound).expect("launch");
            let got = download(dev, &buf);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{name} seed {seed} len {len}: element {i}: gpu {g} cpu {w}"
                );
            }
        }
    }
}

gpu_test!(pack_signs_is_bit_identical);
fn pack_signs_is_bit_identical(dev: &CudaDevice) {
    let mut rng = Rng(1);
    // Units per sample giving 1, 3, 37 and 300 words, mostly with a partial
    // last word (padding bits must come out 0).
    let units = [1usize, 63, 64, 65, 64 * 3 - 5, 64 * 37 - 63, 64 * 300];
    let mut cases: Vec<(usize, usize)> = Vec::new();
    for &b in &[1usize, 7, 33, 128] {
        for &n in &units {
            cases.push((b, n));
        }
    }
    // Past the grid-stride wrap: more than 2^16 blocks × 8 words.
    cases.push((128, 64 * 4100 + 9));
    for (batch, n) in cases {
        let x = activations(batch, n, &mut rng);
        let want = pack_signs(&x, batch).expect("cpu pack");
        let xd = upload(dev, &x);
        let mut out = upload(dev, &vec![0xdead_beef_dead_beef_u64; want.words.len()]);
        let wps =
            kernels::pack_signs(dev, &xd.as_view(), batch, &mut out.as_view_mut()).expect("launch");
        assert_eq!(wps, want.words_per_sample);
        let got = download(dev, &out);
        if got != want.words {
            let i = got.iter().zip(&want.words).position(|(g, w)| g != w);
            panic!("batch {batch} n {n}: first differing word {i:?}");
        }
    }
}

/// Codes of `batch` random samples of `n` units, with sample `dup` (if any)
/// a copy of sample 0.
fn random_codes(batch: usize, n: usize, dup: Option<usize>, rng: &mut Rng) -> Codes {
    let mut x = activations(batch, n, rng);
    if let Some(d) = dup {
        let first = x[..n].to_vec();
        x[d * n..(d + 1) * n].copy_from_slice(&first);
    }
    pack_signs(&x, batch).expect("cpu pack")
}

gpu_test!(hamming_accumulate_is_exact);
fn hamming_accumulate_is_exact(dev: &CudaDevice) {
    let mut rng = Rng(2);
    let mut cases: Vec<(usize, usize)> = Vec::new();
    for &b in &[1usize, 2, 7, 17, 33, 128] {
        for &wps in &[1usize, 3, 37, 300] {
            cases.push((b, wps));
        }
    }
    // Many words per split, and a batch that is not a multiple of the tile.
    cases.push((7, 20_000));
    cases.push((200, 1_000));
    for (batch, wps) in cases {
        let n = 64 * wps - (rng.next() % 64) as usize;
        let codes = random_codes(batch, n, (batch > 3).then_some(batch - 1), &mut rng);
        assert_eq!(codes.words_per_sample, wps);
        for multiplicity in [1u64, 3] {
            // H is accumulated into: start from arbitrary entries (the
            // diagonal must keep its value).
            let start: Vec<u64> = (0..batch * batch).map(|_| rng.next() >> 20).collect();
            let mut want = start.clone();
            hamming_accumulate(&codes, multiplicity, &mut want).expect("cpu hamming");
            let cd = upload(dev, &codes.words);
            let mut h = upload(dev, &start);
            kernels::hamming_accumulate(
                dev,
                &cd.as_view(),
                batch,
                wps,
                multiplicity,
                &mut h.as_view_mut(),
            )
            .expect("launch");
            let got = download(dev, &h);
            if got != want {
                let i = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(0);
                panic!(
                    "batch {batch} wps {wps} mult {multiplicity}: h[{}][{}] gpu {} cpu {}",
                    i / batch,
                    i % batch,
                    got[i],
                    want[i]
                );
            }
        }
    }
}

/// K_H = N_A − H of random codes, as f64 (the matrix the scores factor).
fn kernel_matrix(batch: usize, n: usize, dup: Option<usize>, rng: &mut Rng) -> Vec<f64> {
    let codes = random_codes(batch, n, dup, rng);
    let mut h = vec![0u64; batch * batch];
    hamming_accumulate(&codes, 1, &mut h).expect("cpu hamming");
    kernel_from_hamming(&h, n as u64, batch)
        .into_iter()
        .map(|v| v as f64)
        .collect()
}

/// A = M Mᵀ + n I, M uniform in [-1, 1).
fn random_spd(n: usize, rng: &mut Rng) -> Vec<f64> {
    let m: Vec<f64> = (0..n * n).map(|_| rng.unit_f64()).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum();
            let v = s + if i == j { n as f64 } else { 0.0 };
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    a
}

/// Runs the GPU kernel on `mats` (all n×n) and checks each against the CPU.
fn check_logdet(dev: &CudaDevice, n: usize, mats: &[Vec<f64>], label: &str) {
    let count = mats.len();
    let flat: Vec<f64> = mats.iter().flatten().copied().collect();
    let mut a = upload(dev, &flat);
    let mut ld = upload(dev, &vec![f64::from_bits(0x7ff8_0000_dead_beef); count]);
    let mut ok = upload(dev, &vec![-7i32; count]);
    kernels::cholesky_logdet(
        dev,
        &mut a.as_view_mut(),
        n,
        count,
        &mut ld.as_view_mut(),
        &mut ok.as_view_mut(),
    )
    .expect("launch");
    let (ld, ok, after) = (download(dev, &ld), download(dev, &ok), download(dev, &a));
    for (m, mat) in mats.iter().enumerate() {
        let want = cholesky_logdet(mat, n);
        match want {
            Some(w) => {
                assert_eq!(
                    ok[m], 1,
                    "{label} n {n} matrix {m}: gpu says singular, cpu {w}"
                );
                let g = ld[m];
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "{label} n {n} matrix {m}: gpu {g} cpu {w}"
                );
            }
            None => {
                assert_eq!(ok[m], 0, "{label} n {n} matrix {m}: cpu says singular");
                assert_eq!(ld[m], f64::NEG_INFINITY, "{label} n {n} matrix {m}");
            }
        }
        // The strict lower triangle (the input) is left as it was.
        for i in 0..n {
            for j in 0..i {
                let k = m * n * n + i * n + j;
                assert_eq!(
                    after[k].to_bits(),
                    flat[k].to_bits(),
                    "{label}: a[{i}][{j}] changed"
                );
            }
        }
    }
}

gpu_test!(cholesky_logdet_matches_cpu);
fn cholesky_logdet_matches_cpu(dev: &CudaDevice) {
    let mut rng = Rng(3);
    for &b in &[1usize, 2, 7, 33, 128, 1024] {
        // Kernel matrices of distinct codes (positive definite: random codes
        // with more units than samples are linearly independent), of codes
        // with a duplicate (singular: the CPU rule says None), and random SPD.
        let n_units = 64 * 37 - 11;
        let few_units = if b <= 128 { 64 * 3 + 1 } else { 64 * 20 + 3 };
        let mut mats = vec![
            kernel_matrix(b, n_units, None, &mut rng),
            kernel_matrix(b, few_units, None, &mut rng),
        ];
        if b >= 2 {
            mats.push(kernel_matrix(b, n_units, Some(b - 1), &mut rng));
        }
        if b <= 128 {
            mats.push(random_spd(b, &mut rng));
        }
        check_logdet(dev, b, &mats, "mixed");
    }
    // Inputs the rule rejects before factorising.
    let n = 7;
    let mut rng = Rng(4);
    let good = random_spd(n, &mut rng);
    let mut with_nan = good.clone();
    with_nan[5 * n + 2] = f64::NAN;
    let mut with_inf = good.clone();
    with_inf[6 * n + 6] = f64::INFINITY;
    let mut negative = good.clone();
    for i in 0..n {
        negative[i * n + i] = -1.0;
    }
    // NaN in the upper triangle is not read: still positive definite.
    let mut upper_nan = good.clone();
    upper_nan[2 * n + 5] = f64::NAN;
    check_logdet(
        dev,
        n,
        &[good, with_nan, with_inf, negative, upper_nan],
        "special",
    );
}

gpu_test!(launch_functions_reject_bad_sizes);
fn launch_functions_reject_bad_sizes(dev: &CudaDevice) {
    let x = upload(dev, &[1.0f32; 10]);
    let mut out = upload(dev, &[0u64; 3]);
    assert!(kernels::pack_signs(dev, &x.as_view(), 0, &mut out.as_view_mut()).is_err());
    assert!(kernels::pack_signs(dev, &x.as_view(), 3, &mut out.as_view_mut()).is_err());
    assert!(kernels::pack_signs(dev, &x.as_view(), 2, &mut out.as_view_mut()).is_err());
    let mut h = upload(dev, &[0u64; 8]);
    assert!(
        kernels::hamming_accumulate(dev, &out.as_view(), 3, 1, 1, &mut h.as_view_mut()).is_err()
    );
    let mut a = upload(dev, &[1.0f64; 4]);
    let mut ld = upload(dev, &[0.0f64; 1]);
    let mut ok = upload(dev, &[0i32; 2]);
    assert!(kernels::cholesky_logdet(
        dev,
        &mut a.as_view_mut(),
        2,
        1,
        &mut ld.as_view_mut(),
        &mut ok.as_view_mut()
    )
    .is_err());
    let mut big = upload(dev, &[0.0f64; 1]);
    assert!(kernels::cholesky_logdet(
        dev,
        &mut big.as_view_mut(),
        1025,
        0,
        &mut ld.as_view_mut(),
        &mut ok.as_view_mut()
    )
    .is_err());
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
        let mut pd = upload(dev, &p);
        let mut bd = upload(dev, &vec![POISON; len]);
        let lrd = upload(dev, &lr);
        for (step, &rate) in lr.iter().enumerate() {
            let g = rng.vec(len);
            let gd = upload(dev, &g);
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
        let got = download(dev, &pd);
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
    let mut pd = upload(dev, &[0f32; 4]);
    let mut bd = upload(dev, &[0f32; 4]);
    let gd = upload(dev, &[0f32; 4]);
    let lrd = upload(dev, &lr);
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
