//! Quick release-mode timing of the CPU conv on the NB201 shapes (batch 128),
//! with 1 and 2 rayon threads, next to a measured AVX2 FMA peak per core.
//! Not a test: numbers depend on the machine and its load.
//!
//! `cargo run --release --example conv_gflops [threads...]`
//!
//! Environment: `PORTABLE=1` times the portable kernel, `AVX2=1` the AVX2
//! tiles where the CPU has AVX-512 too; `STATS=1` the conv that also
//! returns the BatchNorm channel sums (as scoring runs it); `NORELU=1` the
//! plain conv; `SHAPES=substring` filters the cases; `REPS=n` (default 5)
//! sets the repetitions (the best is reported); `NOPEAK=1` skips the FMA
//! peak.

use std::time::Instant;

use dasnas::ops::conv2d::cpu::{conv2d_forward_stats, conv2d_forward_with, ConvKernel};
use dasnas::ops::conv2d::Conv2dSpec;
use dasnas::{Shape, Tensor};

/// FLOP/s of a loop of independent FMA chains on one core (12 ymm chains,
/// 2 FMA pipes × 8 lanes × 2 FLOP per cycle when the core sustains them).
#[cfg(target_arch = "x86_64")]
fn fma_peak() -> Option<f64> {
    use std::arch::x86_64::*;
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return None;
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chains(iters: u64) -> f32 {
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-7));
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(*r, a, b);
            }
        }
        // Every chain feeds the result, so none can be optimised away.
        let mut total = _mm256_setzero_ps();
        for r in acc {
            total = _mm256_add_ps(total, r);
        }
        let mut s = [0.0f32; 8];
        _mm256_storeu_ps(s.as_mut_ptr(), total);
        s.iter().sum()
    }
    let iters = 100_000_000u64;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        // SAFETY: AVX2 and FMA were detected above.
        let r = unsafe { chains(std::hint::black_box(iters)) };
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(r);
        best = best.max(iters as f64 * 12.0 * 16.0 / dt);
    }
    Some(best)
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak() -> Option<f64> {
    None
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
    let kernel = if std::env::var("PORTABLE").is_ok() {
        ConvKernel::Portable
    } else if std::env::var("AVX2").is_ok() {
        ConvKernel::Avx2
    } else {
        ConvKernel::Auto
    };
    let stats = std::env::var("STATS").is_ok();
    if std::env::var("NOPEAK").is_err() {
        if let Some(p) = fma_peak() {
            println!("measured AVX2 FMA peak, 1 core: {:.1} GFLOP/s", p / 1e9);
        }
        // Both cores at once (vCPUs may share a physical core or be throttled).
        let both: Vec<Option<f64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2).map(|_| s.spawn(fma_peak)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        if let [Some(a), Some(b)] = both[..] {
            println!(
                "measured AVX2 FMA peak, 2 threads at once: {:.1} + {:.1} GFLOP/s",
                a / 1e9,
                b / 1e9
            );
        }
    }
    let s = |cin, cout, k, stride| Conv2dSpec::new(cin, cout, k, stride, k / 2);
    let cases = [
        ("stem 3x3 3->16 @32", s(3, 16, 3, 1), 32),
        ("3x3 16->16 @32", s(16, 16, 3, 1), 32),
        ("3x3 32->32 @16", s(32, 32, 3, 1), 16),
        ("3x3 64->64 @8", s(64, 64, 3, 1), 8),
        ("1x1 16->16 @32", s(16, 16, 1, 1), 32),
        ("1x1 32->32 @16", s(32, 32, 1, 1), 16),
        ("1x1 64->64 @8", s(64, 64, 1, 1), 8),
        ("3x3 s2 16->32 @32", s(16, 32, 3, 2), 32),
        ("3x3 s2 32->64 @16", s(32, 64, 3, 2), 16),
        ("1x1 16->32 @16", s(16, 32, 1, 1), 16),
        ("1x1 32->64 @8", s(32, 64, 1, 1), 8),
        // NB101's first stage.
        ("3x3 128->128 @32", s(128, 128, 3, 1), 32),
    ];
    // The NB201 op is ReLU -> conv -> BN, so the fused-ReLU entry is timed
    // unless NORELU is set.
    let relu = std::env::var("NORELU").is_err();
    let filter = std::env::var("SHAPES").unwrap_or_default();
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        println!("--- {t} thread(s), batch 128, {kernel:?}, relu_input={relu}, stats={stats}");
        for (name, spec, hw) in cases {
            if !name.contains(filter.as_str()) {
                continue;
            }
            let xs = Shape::new(128, hw, hw, spec.cin);
            let x = Tensor::filled(xs, 0.5);
            let w = vec![0.01f32; spec.weight_len()];
            let mut y = Tensor::zeros(spec.out_shape(xs).unwrap());
            let flops = spec.flops(xs).unwrap() as f64;
            let mut best = f64::INFINITY;
            pool.install(|| {
                for _ in 0..reps {
                    let t0 = Instant::now();
                    if stats {
                        conv2d_forward_stats(&spec, &x, &w, &mut y, relu, kernel).unwrap();
                    } else {
                        conv2d_forward_with(&spec, &x, &w, &mut y, relu, kernel).unwrap();
                    }
                    best = best.min(t0.elapsed().as_secs_f64());
                }
            });
            println!(
                "{name:<20} {:>7.3} ms  {:>6.1} GFLOP/s  ({:.1} per thread)",
                best * 1e3,
                flops / best / 1e9,
                flops / best / 1e9 / t as f64
            );
        }
    }
}
