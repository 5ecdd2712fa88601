//! How far the fast conv algorithm (`--conv fast`: Winograd F(4×4, 3×3))
//! moves the scores from the exact one, on sampled cells of a space: for
//! each cell both passes on the same weights and images, then
//!
//! * the K_H entries that changed (off-diagonal pairs whose Hamming
//!   distance differs; a unit's sign flips when rounding moves a value
//!   across zero), and the mean and largest change of those entries,
//! * the relative difference of WOT (ln det K_H), mean and largest,
//! * Spearman's ρ and Kendall's τ of WOT over the cells (fast against exact),
//! * the wall time of each pass, summed.
//!
//! `cargo run --release --example conv_agreement -- SPACE CELLS DATA [key=value ...]`
//! (DATA: a CIFAR-10 binary such as `../shared/data/cifar10_test1000_q75.bin`,
//! or `gaussian`; key=value: space options such as `stem_channels=16`).
//! Prints one JSON object. B = 128, seed 0; cells sampled with seed 0 as
//! `dasnas score --sample CELLS` samples them.

use dasnas::data::{checked_scoring_batch, BatchSource};
use dasnas::eval::rank::{kendall_tau_b, spearman_rho};
use dasnas::exec::cpu::{relu_codes_with, PassOptions};
use dasnas::ops::conv2d::ConvAlgo;
use dasnas::runtime::DeviceKind;
use dasnas::score::metrics::scores;
use dasnas::space::{self, Space};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [space_name, cells, data, rest @ ..] = &args[..] else {
        return Err("usage: conv_agreement SPACE CELLS DATA [key=value ...]".into());
    };
    let space: Space = space_name.parse()?;
    let n: usize = cells.parse()?;
    let (batch_size, seed) = (128usize, 0u64);
    let mut archs = space::sample(space, n, seed)?;
    let options: space::SpaceOptions = rest.join(",").parse()?;
    for a in &mut archs {
        *a = a.with_options(&options)?;
    }
    let size = space.image_size(&options)?;
    let source = BatchSource::parse(data, dasnas::data::cifar::Dataset::Cifar10);
    let batch = checked_scoring_batch(&source, batch_size, size, seed, DeviceKind::Cpu)?;

    let (mut wot_exact, mut wot_fast) = (Vec::new(), Vec::new());
    let (mut changed, mut pairs, mut max_change, mut sum_change) = (0u64, 0u64, 0u64, 0u64);
    let (mut rel_sum, mut rel_max, mut singular) = (0.0f64, 0.0f64, 0usize);
    let (mut t_exact, mut t_fast) = (0.0f64, 0.0f64);
    for arch in &archs {
        let graph = arch.network()?;
        let params = dasnas::net::init::init_params(&graph, seed);
        let pass = |conv| PassOptions {
            conv,
            ..Default::default()
        };
        let t0 = Instant::now();
        let (exact, _) = relu_codes_with(&graph, &params, &batch, pass(ConvAlgo::Exact))?;
        t_exact += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let (fast, _) = relu_codes_with(&graph, &params, &batch, pass(ConvAlgo::Fast))?;
        t_fast += t0.elapsed().as_secs_f64();
        for i in 0..batch_size {
            for j in i + 1..batch_size {
                let (a, b) = (
                    exact.hamming[i * batch_size + j],
                    fast.hamming[i * batch_size + j],
                );
                pairs += 1;
                if a != b {
                    changed += 1;
                    let d = a.abs_diff(b);
                    sum_change += d;
                    max_change = max_change.max(d);
                }
            }
        }
        match (scores(&exact, 1.0).wot, scores(&fast, 1.0).wot) {
            (Some(e), Some(f)) => {
                let rel = ((f - e) / e).abs();
                rel_sum += rel;
                rel_max = rel_max.max(rel);
                wot_exact.push(e);
                wot_fast.push(f);
            }
            _ => singular += 1,
        }
    }
    let m = wot_exact.len().max(1) as f64;
    let report = serde_json::json!({
        "space": space_name,
        "options": rest,
        "cells": n,
        "batch": batch_size,
        "data": data,
        "singular_cells": singular,
        "kh_pairs": pairs,
        "kh_entries_changed": changed,
        "kh_fraction_changed": changed as f64 / pairs.max(1) as f64,
        "kh_mean_change_of_changed": sum_change as f64 / changed.max(1) as f64,
        "kh_max_change": max_change,
        "wot_rel_diff_mean": rel_sum / m,
        "wot_rel_diff_max": rel_max,
        "wot_spearman": spearman_rho(&wot_exact, &wot_fast),
        "wot_kendall": kendall_tau_b(&wot_exact, &wot_fast),
        "seconds_exact": t_exact,
        "seconds_fast": t_fast,
        "threads": rayon::current_num_threads(),
    });
    println!("{report}");
    Ok(())
}
