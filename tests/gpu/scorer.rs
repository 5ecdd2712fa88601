//! The GPU scorer end to end against the CPU backend, and the kernels it
//! added (strided packing, K_H from H, table initialisation) against their
//! CPU twins.
//!
//! Agreement asked of the whole pipeline (same seed, so the same weights
//! bit for bit): K_H entries within a tiny fraction of N_A (the GPU's conv
//! sums in another order, so a pre-activation within rounding of zero may
//! flip its sign bit), WOT within 1e-3 relative, and the ranking of 50
//! cells at Spearman ≥ 0.999 (fewer cells and a smaller batch under the
//! host emulation, which runs them too; see `dasnas::testing`).

use dasnas::eval::rank::spearman_rho;
use dasnas::exec::cuda::executor::{GpuScorer, Profile};
use dasnas::exec::plan::Plan;
use dasnas::gpu_test;
use dasnas::net::{init, Graph, GraphBuilder};
use dasnas::ops::conv2d::ConvLayer;
use dasnas::ops::pool::PoolKind;
use dasnas::runtime::cuda::kernels;
use dasnas::runtime::cuda::CudaDevice;
use dasnas::score::codes::pack_signs;
use dasnas::score::hamming::kernel_from_hamming;
use dasnas::score::metrics::singular_verdict_is_clear;
use dasnas::space::{self, Space};
use dasnas::testing::Rng;
use dasnas::{Shape, Tensor};

fn sub_batch(n: usize, h: usize, w: usize, c: usize, seed: u64) -> Tensor {
    let g = dasnas::data::gaussian_batch(n, h.max(w).max(c), seed);
    let per = g.shape.per_sample();
    let s = Shape::new(n, h, w, c);
    let mut data = Vec::with_capacity(s.len());
    for i in 0..n {
        data.extend_from_slice(&g.data[i * per..i * per + s.per_sample()]);
    }
    Tensor::from_vec(s, data).expect("shape")
}

/// Every step kind and fusion of a plan: fused ReLU→conv, conv→BN with
/// statistics, a conv with two readers, in-place and out-of-place adds,
/// twin ReLUs (multiplicity 2), a ReLU of the input, zeros, pools, GAP,
/// linear.
fn all_paths_graph() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input(9, 7, 3).unwrap();
    let r_in = b.relu(x, "r_in");
    let c0 = b.conv(r_in, ConvLayer::new(16, 3).pad(1), "c0").unwrap();
    let n0 = b.batchnorm(c0, "bn0");
    let r0 = b.relu(n0, "r0");
    let c1 = b
        .conv(r0, ConvLayer::new(20, 3).pad(2).dilation(2), "c1")
        .unwrap();
    let n1 = b.batchnorm(c1, "bn1");
    let c2 = b.conv(n0, ConvLayer::new(20, 1), "c2").unwrap();
    let n2 = b.batchnorm(c2, "bn2");
    let a0 = b.add(&[n1, c2, n2], "a0").unwrap();
    let r1 = b.relu(a0, "r1");
    let r1b = b.relu(a0, "r1b");
    let p = b.pool(a0, PoolKind::Max, 3, 1, 1, "p").unwrap();
    let a1 = b.add(&[p, a0, a0], "a1").unwrap();
    let c3 = b
        .conv(r1, ConvLayer::new(24, 3).stride(2).pad(1).groups(4), "c3")
        .unwrap();
    let c4 = b
        .conv(r1b, ConvLayer::new(24, 3).stride(2).pad(1), "c4")
        .unwrap();
    let r3 = b.relu(c4, "r3");
    let z = b.zeros_like(r3, "z");
    let c5 = b
        .conv(a1, ConvLayer::new(24, 3).stride(2).pad(1), "c5")
        .unwrap();
    let n5 = b.batchnorm(c5, "bn5");
    let a2 = b.add(&[c3, r3, n5, z], "a2").unwrap();
    let r4 = b.relu(a2, "r4");
    let g = b.global_avg_pool(r4, "gap");
    let l = b.linear(g, 10, "fc").unwrap();
    b.finish(l).prune()
}

/// |H_gpu − H_cpu| per entry, at most `frac` of N_A.
fn assert_close_hamming(gpu: &[u64], cpu: &[u64], n_units: u64, frac: f64, label: &str) {
    assert_eq!(gpu.len(), cpu.len());
    let worst = gpu
        .iter()
        .zip(cpu)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(
        worst as f64 <= frac * n_units as f64,
        "{label}: H differs by up to {worst} of N_A = {n_units}"
    );
}

gpu_test!(every_plan_step_matches_the_cpu_executor);
fn every_plan_step_matches_the_cpu_executor(dev: &CudaDevice) {
    let g = all_paths_graph();
    let input = sub_batch(13, 9, 7, 3, 4);
    let mut scorer = GpuScorer::new(dev, &input, 2).expect("scorer");
    for seed in [0, 7] {
        let params = init::init_params(&g, seed);
        let (want, _) = dasnas::exec::cpu::relu_codes(&g, &params, &input).expect("cpu");
        let got = scorer.relu_codes(&g, seed).expect("gpu");
        assert_eq!(got.n_units, want.n_units);
        assert_close_hamming(&got.hamming, &want.hamming, want.n_units, 2e-3, "all paths");
        // The diagonal is never written by the Hamming kernel: zero.
        assert!((0..13).all(|i| got.hamming[i * 13 + i] == 0));
    }
}

gpu_test!(nb201_scores_agree_with_the_cpu);
fn nb201_scores_agree_with_the_cpu(dev: &CudaDevice) {
    // The emulation runs a cell about 60x slower than the CPU: fewer cells
    // and a smaller batch there, the full check on a GPU.
    let (b, cells, exact_h) = if dev.is_emulated() {
        (16, 6, 6)
    } else {
        (128, 50, 5)
    };
    let batch = dasnas::data::gaussian_batch(b, 32, 0);
    let archs = space::sample(Space::NB201, cells, 3).expect("sample");
    let mut scorer = GpuScorer::new(dev, &batch, 4).expect("scorer");
    let gpu_cells = scorer
        .score(archs.len(), |i| archs[i].network(), 0, 1.0, None, false)
        .expect("gpu scores");
    let mut cpu_wot = Vec::new();
    let mut gpu_wot = Vec::new();
    let mut near_threshold = Vec::new();
    for (k, (arch, g)) in archs.iter().zip(&gpu_cells).enumerate() {
        let c = dasnas::score_arch(arch, &batch, 0, 1.0).expect("cpu");
        assert_eq!(g.scores.n_units, c.scores.n_units, "{arch}");
        let net = arch.network().expect("net");
        let params = init::init_params(&net, 0);
        let (want, _) = dasnas::exec::cpu::relu_codes(&net, &params, &batch).expect("cpu");
        if singular_verdict_is_clear(&want.hamming, want.n_units, b) {
            assert_eq!(g.scores.singular, c.scores.singular, "{arch}");
        } else if g.scores.singular != c.scores.singular {
            near_threshold.push(arch.to_string());
        }
        if k < exact_h {
            // K_H itself, entry by entry, on a few cells.
            let got = scorer.relu_codes(&net, 0).expect("gpu codes");
            assert_close_hamming(
                &got.hamming,
                &want.hamming,
                want.n_units,
                1e-4,
                &arch.to_string(),
            );
        }
        if let (Some(a), Some(b)) = (g.scores.wot, c.scores.wot) {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                "{arch}: WOT {a} on the GPU, {b} on the CPU"
            );
            gpu_wot.push(a);
            cpu_wot.push(b);
        }
    }
    if !near_threshold.is_empty() {
        println!(
            "{} cells near the singularity threshold differ in `singular` (allowed): {near_threshold:?}",
            near_threshold.len()
        );
    }
    assert!(gpu_wot.len() >= cells * 4 / 5, "too many singular cells");
    let rho = spearman_rho(&gpu_wot, &cpu_wot).expect("rho");
    assert!(rho >= 0.999, "Spearman {rho}");
}

gpu_test!(swap_matches_the_cpu);
fn swap_matches_the_cpu(dev: &CudaDevice) {
    // SWAP from the GPU's code buffer (copied back, read per unit through
    // the plan's pack placements) against the CPU's: the same sign bits,
    // up to the conv's summation order flipping a sign near zero.
    let input = sub_batch(13, 9, 7, 3, 4);
    let g = all_paths_graph();
    let mut scorer = GpuScorer::new(dev, &input, 2).expect("scorer");
    let gpu = scorer
        .score(2, |_| Ok(g.clone()), 3, 1.0, None, true)
        .expect("gpu");
    let params = init::init_params(&g, 3);
    let (cpu, _) = dasnas::exec::cpu::relu_codes_with_swap(&g, &params, &input).expect("cpu");
    let want = cpu.swap.expect("cpu swap") as f64;
    for c in &gpu {
        let got = c.scores.swap.expect("gpu swap") as f64;
        assert!((got - want).abs() <= 0.01 * want, "gpu {got} cpu {want}");
    }
    // Without --swap the GPU reads nothing back.
    let plain = scorer
        .score(1, |_| Ok(g.clone()), 3, 1.0, None, false)
        .expect("gpu");
    assert_eq!(plain[0].scores.swap, None);
}

gpu_test!(scores_do_not_depend_on_lanes_or_profiling);
fn scores_do_not_depend_on_lanes_or_profiling(dev: &CudaDevice) {
    // Past two chunks of 8 cells, so lanes share the work (smaller under
    // the emulation).
    let (b, cells) = if dev.is_emulated() { (8, 17) } else { (64, 21) };
    let batch = dasnas::data::gaussian_batch(b, 32, 1);
    let archs = space::sample(Space::NB201, cells, 5).expect("sample");
    let build = |i: usize| archs[i].network();
    let mut one = GpuScorer::new(dev, &batch, 1).expect("scorer");
    let mut four = GpuScorer::new(dev, &batch, 4).expect("scorer");
    let a = one
        .score(archs.len(), build, 2, 0.5, None, false)
        .expect("1 lane");
    let b = four
        .score(archs.len(), build, 2, 0.5, None, false)
        .expect("4 lanes");
    let mut prof = Profile::default();
    let c = four
        .score(archs.len(), build, 2, 0.5, Some(&mut prof), false)
        .expect("profiled");
    let scores = |v: &[dasnas::exec::cuda::executor::GpuCell]| {
        v.iter().map(|c| c.scores).collect::<Vec<_>>()
    };
    assert_eq!(scores(&a), scores(&b));
    assert_eq!(scores(&a), scores(&c));
    assert_eq!(prof.cells, archs.len());
    assert!(prof.by_kind.iter().any(|(k, t)| *k == "conv2d" && *t > 0.0));
    assert!(prof.shapes.iter().any(|s| s.kind == "conv2d") && prof.hamming_words > 0);
}

gpu_test!(errors_name_the_problem_and_leave_the_scorer_usable);
fn errors_name_the_problem_and_leave_the_scorer_usable(dev: &CudaDevice) {
    let batch = sub_batch(6, 9, 7, 3, 0);
    assert!(GpuScorer::new(dev, &sub_batch(1, 9, 7, 3, 0), 1).is_err());
    assert!(GpuScorer::new(dev, &batch, 0).is_err());
    let mut scorer = GpuScorer::new(dev, &batch, 2).expect("scorer");
    // An NB201 network wants 32x32x3 images: a shape error, not a crash.
    let nb = space::sample(Space::NB201, 1, 0).expect("sample")[0]
        .network()
        .expect("net");
    let e = scorer.relu_codes(&nb, 0).expect_err("shape mismatch");
    assert!(e.to_string().contains("does not fit"), "{e}");
    let e = scorer
        .score(
            3,
            |i| {
                if i == 1 {
                    Err(dasnas::Error::Data("cell 1 is bad".into()))
                } else {
                    Ok(all_paths_graph())
                }
            },
            0,
            1.0,
            None,
            false,
        )
        .expect_err("build error");
    assert!(e.to_string().contains("cell 1 is bad"), "{e}");
    let ok = scorer
        .score(3, |_| Ok(all_paths_graph()), 0, 1.0, None, false)
        .expect("usable after an error");
    assert_eq!(ok.len(), 3);
}

gpu_test!(strided_packing_writes_only_its_words);
fn strided_packing_writes_only_its_words(dev: &CudaDevice) {
    let mut rng = Rng(17);
    for (batch, n, stride, offset) in [(5, 1, 3, 2), (7, 129, 9, 4), (3, 200, 4, 0), (33, 65, 2, 0)]
    {
        let x: Vec<f32> = (0..batch * n)
            .map(|_| ((rng.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0)
            .collect();
        let want = pack_signs(&x, batch).expect("cpu");
        let sentinel = 0xdead_beef_dead_beefu64;
        let xd = dev.upload(&x).expect("upload");
        let mut out = dev.upload(&vec![sentinel; batch * stride]).expect("upload");
        let wps = kernels::pack_signs_into(
            dev,
            &xd.as_view(),
            batch,
            &mut out.as_view_mut(),
            stride,
            offset,
        )
        .expect("launch");
        let got = dev.download(&out).expect("download");
        for b in 0..batch {
            for w in 0..stride {
                let v = got[b * stride + w];
                if w >= offset && w < offset + wps {
                    assert_eq!(v, want.words[b * wps + w - offset], "b {b} w {w}");
                } else {
                    assert_eq!(v, sentinel, "b {b} w {w} was written");
                }
            }
        }
    }
    // Rows that do not fit are an error, not a write past the buffer.
    let xd = dev.upload(&vec![1.0f32; 4 * 70]).expect("upload");
    let mut out = dev.alloc_zeros::<u64>(4 * 3).expect("alloc");
    assert!(kernels::pack_signs_into(dev, &xd.as_view(), 4, &mut out.as_view_mut(), 3, 2).is_err());
    assert!(kernels::pack_signs_into(dev, &xd.as_view(), 5, &mut out.as_view_mut(), 3, 0).is_err());
}

gpu_test!(kernel_matrix_and_duplicate_flags_match_the_cpu);
fn kernel_matrix_and_duplicate_flags_match_the_cpu(dev: &CudaDevice) {
    let mut rng = Rng(3);
    let (b, count, n_units) = (11usize, 3usize, 5000u64);
    let mut h = vec![0u64; count * b * b];
    for m in 0..count {
        for i in 0..b {
            for j in i + 1..b {
                let v = 1 + rng.next() % n_units;
                h[m * b * b + i * b + j] = v;
                h[m * b * b + j * b + i] = v;
            }
        }
    }
    // Matrix 1 has two equal codes.
    h[b * b + 2 * b + 5] = 0;
    h[b * b + 5 * b + 2] = 0;
    let hd = dev.upload(&h).expect("upload");
    let mut k = dev.upload(&vec![f64::NAN; count * b * b]).expect("upload");
    let mut dup = dev.alloc_zeros::<i32>(count).expect("alloc");
    kernels::kernel_from_hamming(
        dev,
        &hd.as_view(),
        b,
        count,
        n_units,
        &mut k.as_view_mut(),
        &mut dup.as_view_mut(),
    )
    .expect("launch");
    let k = dev.download(&k).expect("download");
    let dup = dev.download(&dup).expect("download");
    assert_eq!(dup, [0, 1, 0]);
    for m in 0..count {
        let want = kernel_from_hamming(&h[m * b * b..(m + 1) * b * b], n_units, b);
        let got: Vec<u64> = k[m * b * b..(m + 1) * b * b]
            .iter()
            .map(|&v| v as u64)
            .collect();
        assert_eq!(got, want, "matrix {m}");
    }
}

gpu_test!(table_initialisation_is_bit_identical);
fn table_initialisation_is_bit_identical(dev: &CudaDevice) {
    let g = all_paths_graph();
    let plan = Plan::new(&g, 2).expect("plan");
    for seed in [0u64, 12345] {
        let want = init::init_params(&g, seed);
        let table = kernels::param_table(&plan.params, seed);
        let mut out = dev
            .upload(&vec![f32::NAN; plan.params_len])
            .expect("upload");
        let mut td = dev.alloc_zeros::<u64>(table.len()).expect("alloc");
        kernels::init_params_table(dev, &mut out.as_view_mut(), &mut td.as_view_mut(), &table)
            .expect("launch");
        let got = dev.download(&out).expect("download");
        for (p, slot) in plan.params.iter().enumerate() {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got[slot.offset..slot.offset + slot.len]),
                bits(&want[p]),
                "parameter {}",
                g.params[p].name
            );
        }
    }
    // An entry past the buffer is refused before anything is launched.
    let mut out = dev.alloc_zeros::<f32>(10).expect("alloc");
    let mut td = dev.alloc_zeros::<u64>(4).expect("alloc");
    assert!(kernels::init_params_table(
        dev,
        &mut out.as_view_mut(),
        &mut td.as_view_mut(),
        &[8, 3, 0, 0]
    )
    .is_err());
}

gpu_test!(fused_add_and_batchnorm_packing_match_the_cpu);
fn fused_add_and_batchnorm_packing_match_the_cpu(dev: &CudaDevice) {
    use dasnas::ops::PackDest;
    let mut rng = Rng(29);
    let mut rand = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| ((rng.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0)
            .collect()
    };
    // Sums of 1 to 11 inputs (more than one launch past 8), out of place and
    // in place at every position, with and without packing, odd sizes.
    for (batch, per) in [(3usize, 65usize), (7, 130)] {
        let len = batch * per;
        for k in 1..=11usize {
            let xs: Vec<Vec<f32>> = (0..k).map(|_| rand(len)).collect();
            let ts: Vec<Tensor> = xs
                .iter()
                .map(|v| Tensor::from_vec(Shape::new(batch, 1, 1, per), v.clone()).unwrap())
                .collect();
            let refs: Vec<&Tensor> = ts.iter().collect();
            let mut want = Tensor::from_vec(Shape::new(batch, 1, 1, per), vec![0.0; len]).unwrap();
            dasnas::ops::add::cpu::add_forward(&refs, &mut want).unwrap();
            let want_codes = pack_signs(&want.data, batch).unwrap();
            let wps = per.div_ceil(64);
            let stride = wps + 3;
            let ds: Vec<_> = xs.iter().map(|v| dev.upload(v).unwrap()).collect();
            for pos in [None].into_iter().chain((0..k).map(Some)) {
                for pack in [false, true] {
                    let mut codes = dev.upload(&vec![u64::MAX; batch * stride]).unwrap();
                    let mut cv = codes.as_view_mut();
                    let dest = pack.then_some(PackDest {
                        codes: &mut cv,
                        row_stride: stride,
                        word_offset: 2,
                    });
                    let got = match pos {
                        None => {
                            let mut y = dev.upload(&vec![f32::NAN; len]).unwrap();
                            let views: Vec<_> = ds.iter().map(|d| d.as_view()).collect();
                            let vr: Vec<_> = views.iter().collect();
                            dasnas::ops::add::cuda::add_n(
                                dev,
                                &vr,
                                &mut y.as_view_mut(),
                                batch,
                                dest,
                            )
                            .unwrap();
                            dev.download(&y).unwrap()
                        }
                        Some(p) => {
                            let mut acc = dev.upload(&xs[p]).unwrap();
                            let views: Vec<_> = ds
                                .iter()
                                .enumerate()
                                .filter(|&(i, _)| i != p)
                                .map(|(_, d)| d.as_view())
                                .collect();
                            let vr: Vec<_> = views.iter().collect();
                            let r = dasnas::ops::add::cuda::add_n_inplace(
                                dev,
                                &mut acc.as_view_mut(),
                                p,
                                &vr,
                                batch,
                                dest,
                            );
                            if p >= 8 {
                                assert!(r.is_err(), "in place past the 8th input");
                                continue;
                            }
                            r.unwrap();
                            dev.download(&acc).unwrap()
                        }
                    };
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want.data), "k {k} pos {pos:?}");
                    let codes = dev.download(&codes).unwrap();
                    for b in 0..batch {
                        for w in 0..stride {
                            let v = codes[b * stride + w];
                            if pack && (2..2 + wps).contains(&w) {
                                assert_eq!(v, want_codes.words[b * wps + w - 2]);
                            } else {
                                assert_eq!(v, u64::MAX, "word {w} written");
                            }
                        }
                    }
                }
            }
        }
    }
    // BatchNorm normalisation with packing, in place and not, against the
    // plain kernel (same statistics, same bits) and the CPU packing.
    let (batch, h, w, c) = (5usize, 3usize, 7usize, 11usize);
    let shape = Shape::new(batch, h, w, c);
    let spec = dasnas::ops::batchnorm::BatchNormSpec::new(c);
    let x = rand(shape.len());
    let (mean, inv, gam, bet) = (rand(c), rand(c), rand(c), rand(c));
    let d = |v: &Vec<f32>| dev.upload(v).unwrap();
    let (xd, md, id, gd, bd) = (d(&x), d(&mean), d(&inv), d(&gam), d(&bet));
    let mut plain = d(&vec![f32::NAN; shape.len()]);
    let (mv, iv, gv, bv) = (md.as_view(), id.as_view(), gd.as_view(), bd.as_view());
    let ch = dasnas::ops::batchnorm::cuda::BnChannels {
        mean: &mv,
        inv_std: &iv,
        gamma: &gv,
        beta: &bv,
    };
    dasnas::ops::batchnorm::cuda::batchnorm_normalize(
        dev,
        &spec,
        shape,
        &xd.as_view(),
        ch,
        &mut plain.as_view_mut(),
    )
    .unwrap();
    let plain = dev.download(&plain).unwrap();
    let want_codes = pack_signs(&plain, batch).unwrap();
    let per = h * w * c;
    let wps = per.div_ceil(64);
    for in_place in [false, true] {
        let mut codes = dev.upload(&vec![0u64; batch * wps]).unwrap();
        let mut y = if in_place {
            d(&x)
        } else {
            d(&vec![f32::NAN; shape.len()])
        };
        let xv = xd.as_view();
        dasnas::ops::batchnorm::cuda::batchnorm_normalize_pack(
            dev,
            &spec,
            shape,
            (!in_place).then_some(&xv),
            &mut y.as_view_mut(),
            ch,
            PackDest {
                codes: &mut codes.as_view_mut(),
                row_stride: wps,
                word_offset: 0,
            },
        )
        .unwrap();
        let got = dev.download(&y).unwrap();
        assert!(got
            .iter()
            .zip(&plain)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(dev.download(&codes).unwrap(), want_codes.words);
    }
}

gpu_test!(nb101_and_darts_cells_agree_with_the_cpu);
fn nb101_and_darts_cells_agree_with_the_cpu(dev: &CudaDevice) {
    let (b, darts, nb101) = if dev.is_emulated() {
        (4, 2, 1)
    } else {
        (32, 4, 3)
    };
    let batch = dasnas::data::gaussian_batch(b, 32, 2);
    let mut archs: Vec<space::Arch> = space::sample(Space::DARTS, darts, 1)
        .expect("sample")
        .into_iter()
        .map(|a| {
            a.with_options(&"init_channels=16,layers=8".parse().unwrap())
                .expect("darts size")
        })
        .collect();
    archs.extend(space::sample(Space::NB101, nb101, 1).expect("sample"));
    let mut scorer = GpuScorer::new(dev, &batch, 2).expect("scorer");
    for arch in &archs {
        let net = arch.network().expect("net");
        let params = init::init_params(&net, 0);
        let (want, _) = dasnas::exec::cpu::relu_codes(&net, &params, &batch).expect("cpu");
        let got = scorer.relu_codes(&net, 0).expect("gpu");
        assert_eq!(got.n_units, want.n_units, "{arch}");
        assert_close_hamming(
            &got.hamming,
            &want.hamming,
            want.n_units,
            1e-4,
            &arch.to_string(),
        );
    }
}
