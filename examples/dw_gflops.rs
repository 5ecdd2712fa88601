//! Quick release-mode timing of the CPU depthwise conv on the DARTS shapes
//! (C = 16 search network, batch 128, ReLU fused on the input as in DARTS's
//! ReLU → dw conv), with 1 and 2 rayon threads, next to a measured copy
//! bandwidth. Not a test: numbers depend on the machine and its load.
//!
//! Each case times the `Auto` kernel (AVX-512 / AVX2 when detected) and the
//! portable one in alternating repetitions, so both see the same load; the
//! portable path is the per-pixel loop the SIMD kernels replaced (same code,
//! same results), i.e. the "before".
//!
//! `cargo run --release --example dw_gflops [threads...]`
//!
//! Environment: `AUTO_ONLY=1` skips the portable kernel, `NORELU=1` times the
//! plain conv, `SHAPES=substring` filters the cases, `REPS=n` (default 7)
//! sets the repetitions (the best is reported), `BATCH=n` the batch (default
//! 128; a small batch stays in L2 and shows the compute-bound speed).
//!
//! GB/s counts the bytes a depthwise conv cannot avoid moving: its input
//! read once and its output written once (`4 · (n·h·w·c + n·oh·ow·c)`).

use std::time::Instant;

use dasnas::ops::conv2d::cpu::{conv2d_forward_with, ConvKernel};
use dasnas::ops::conv2d::Conv2dSpec;
use dasnas::{Shape, Tensor};

/// Best-of-5 bandwidth (read + written bytes per second) of copying a
/// `bytes`-sized buffer, each thread of the pool copying its own slice.
fn copy_bandwidth(bytes: usize, pool: &rayon::ThreadPool) -> f64 {
    use rayon::prelude::*;
    let n = bytes / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; n];
    let chunk = n.div_ceil(pool.current_num_threads());
    let mut best = f64::INFINITY;
    pool.install(|| {
        for _ in 0..5 {
            let t = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            best = best.min(t.elapsed().as_secs_f64());
            std::hint::black_box(&dst);
        }
    });
    2.0 * bytes as f64 / best
}

fn main() {
    let threads: Vec<usize> = {
        let a: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|s| s.parse().ok())
            .collect();
        if a.is_empty() {
            vec![1, 2]
        } else {
            a
        }
    };
    let kernels: &[ConvKernel] = if std::env::var("AUTO_ONLY").is_ok() {
        &[ConvKernel::Auto]
    } else {
        &[ConvKernel::Auto, ConvKernel::Portable]
    };
    let relu = std::env::var("NORELU").is_err();
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let filter = std::env::var("SHAPES").unwrap_or_default();
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    // (channels, input h = w, k, stride, dilation): DARTS at C = 16 has
    // 16 channels at 32², 32 at 16², 64 at 8²; the reduction cells'
    // stride-2 edges read 32 channels at 32² and 64 at 16². sep_conv pads
    // k / 2, dil_conv (dilation 2) pads k − 1.
    let mut cases = Vec::new();
    for (c, hw, stride) in [
        (16, 32, 1),
        (32, 16, 1),
        (64, 8, 1),
        (32, 32, 2),
        (64, 16, 2),
    ] {
        for (k, dil) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
            let spec = Conv2dSpec {
                cin: c,
                cout: c,
                kh: k,
                kw: k,
                stride,
                pad: if dil == 1 { k / 2 } else { k - 1 },
                dilation: dil,
                groups: c,
            };
            let name = format!("dw{k}x{k} d{dil} s{stride} {c}ch @{hw}");
            cases.push((name, spec, hw));
        }
    }
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        println!(
            "--- {t} thread(s), batch {batch}, relu_input={relu}; \
             copy bandwidth 8 MiB: {:.1} GB/s, 64 MiB: {:.1} GB/s",
            copy_bandwidth(8 << 20, &pool) / 1e9,
            copy_bandwidth(64 << 20, &pool) / 1e9
        );
        for (name, spec, hw) in &cases {
            if !name.contains(filter.as_str()) {
                continue;
            }
            let xs = Shape::new(batch, *hw, *hw, spec.cin);
            let mut x = Tensor::zeros(xs);
            // Mixed signs, so the fused ReLU does real work.
            for (i, v) in x.data.iter_mut().enumerate() {
                *v = ((i * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0;
            }
            let w: Vec<f32> = (0..spec.weight_len())
                .map(|i| 0.01 * (i % 7) as f32)
                .collect();
            let ys = spec.out_shape(xs).unwrap();
            let mut y = Tensor::zeros(ys);
            let flops = spec.flops(xs).unwrap() as f64;
            let bytes = 4.0 * (xs.len() + ys.len()) as f64;
            let mut best = vec![f64::INFINITY; kernels.len()];
            pool.install(|| {
                for _ in 0..reps {
                    for (b, &k) in best.iter_mut().zip(kernels) {
                        let t0 = Instant::now();
                        conv2d_forward_with(spec, &x, &w, &mut y, relu, k).unwrap();
                        *b = b.min(t0.elapsed().as_secs_f64());
                    }
                }
            });
            let mut line = format!("{name:<26}");
            for (b, k) in best.iter().zip(kernels) {
                line += &format!(
                    " | {k:?} {:>7.3} ms {:>6.1} GFLOP/s {:>5.1} GB/s",
                    b * 1e3,
                    flops / b / 1e9,
                    bytes / b / 1e9,
                );
            }
            if best.len() == 2 {
                line += &format!(" | x{:.2}", best[1] / best[0]);
            }
            println!("{line}");
        }
    }
}
