//! Quick release-mode timing of the Hamming-matrix accumulation (every
//! popcount kernel this CPU runs) at a realistic size: B = 128 samples of
//! 2,000 to 20,000 u64 words (128 K to 1.3 M ReLU units), 1 and 2 rayon
//! threads. Not a test: numbers depend on the machine and its load.
//!
//! `cargo run --release --example hamming_speed [threads...]`
//!
//! The kernels are timed in alternating repetitions (best of `REPS`,
//! default 5), so all of them see the same load. "Gpair-words/s" is
//! `B (B − 1) / 2 · words` XOR-popcounts of a 64-bit word per second.

use std::time::Instant;

use dasnas::score::codes::Codes;
use dasnas::score::hamming::{hamming_accumulate_with, PopcountKernel};

const BATCH: usize = 128;

/// Random codes (xorshift64*), every bit a real unit.
fn random_codes(words_per_sample: usize, seed: u64) -> Codes {
    let mut s = seed | 1;
    let words = (0..BATCH * words_per_sample)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
        .collect();
    Codes {
        batch: BATCH,
        bits: words_per_sample * 64,
        words_per_sample,
        words,
    }
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
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let kernels = PopcountKernel::available();
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        println!("--- {t} thread(s), B = {BATCH}");
        for wps in [2_000, 6_000, 20_000] {
            let codes = random_codes(wps, wps as u64);
            let pair_words = (BATCH * (BATCH - 1) / 2 * wps) as f64;
            let mut best = vec![f64::INFINITY; kernels.len()];
            let mut results = Vec::new();
            pool.install(|| {
                for _ in 0..reps {
                    results.clear();
                    for (b, &k) in best.iter_mut().zip(&kernels) {
                        let mut h = vec![0u64; BATCH * BATCH];
                        let t0 = Instant::now();
                        hamming_accumulate_with(k, &codes, 1, &mut h).unwrap();
                        *b = b.min(t0.elapsed().as_secs_f64());
                        results.push(h);
                    }
                }
            });
            assert!(results.windows(2).all(|w| w[0] == w[1]), "kernels disagree");
            let mut line = format!("{wps:>6} words:");
            for (b, k) in best.iter().zip(&kernels) {
                line += &format!(
                    " | {:<8} {:>8.2} ms {:>5.2} Gpair-words/s",
                    k.name(),
                    b * 1e3,
                    pair_words / b / 1e9
                );
            }
            println!("{line}");
        }
    }
}
