//! Throughput measurements: scoring on the CPU, scoring on a GPU (with a
//! per-kernel profile from CUDA events), and fast training on either. Each
//! returns a report that prints as a table (`Display`) and serialises to
//! one JSON object (`to_json`); `dasnas bench` only prints them.

use crate::data::cifar::{CifarImages, Dataset};
use crate::error::{Error, Result};
use crate::exec::cuda::executor::{GpuScorer, Profile, CHUNK};
use crate::exec::CellTiming;
use crate::scorer::{Scorer, Training};
use crate::space::Arch;
use crate::train::batches::Augment;
use crate::train::{LrSchedule, SgdConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Scoring throughput on the CPU, and where the time went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CpuBench {
    /// Label of the search space the cells come from (`nb201`, `nb101`, `darts`).
    pub space: String,
    /// Rayon worker threads the cells were scored on.
    pub threads: usize,
    /// Cells scored at once (each on threads / cells_in_flight threads).
    pub cells_in_flight: usize,
    /// The conv algorithm (`exact` or `fast`).
    pub conv: String,
    /// Images in the scoring batch (B).
    pub batch: usize,
    /// Cells timed (the warm-up cell excluded).
    pub cells: usize,
    /// Timed cells over the wall time of the timed loop.
    pub cells_per_s: f64,
    /// Wall milliseconds per timed cell, every phase included.
    pub ms_per_cell: f64,
    /// Milliseconds per cell building the network and drawing its weights.
    pub build_ms: f64,
    /// Milliseconds per cell in the network's ops (the forward pass).
    pub forward_ms: f64,
    /// Milliseconds per cell packing sign bits and accumulating Hamming distances.
    pub codes_hamming_ms: f64,
    /// Milliseconds per cell computing K_H, its Cholesky and the metrics.
    pub logdet_ms: f64,
    /// Forward time by op kind (ms per cell), largest first.
    pub forward_by_op_ms: Vec<(String, f64)>,
    /// Milliseconds per cell computing the measures beyond the scoring
    /// pass (`score --measures`): their gradient passes and reductions.
    pub measures_ms: f64,
    /// `measures_ms` by gradient pass.
    pub measures_by_pass_ms: Vec<(String, f64)>,
    /// Conv and linear GFLOP of one cell's forward pass at this batch, mean over the
    /// timed cells.
    pub gflop_per_cell: f64,
    /// Conv and linear FLOP rate over the forward time.
    pub conv_gflops: f64,
    /// Per op profile kind with FLOPs (each conv family): the FLOP rate
    /// over that kind's time, in GFLOP/s (effective: the direct
    /// convolution's FLOPs, whatever algorithm ran).
    pub gflops_by_op: Vec<(String, f64)>,
}

/// Scores `archs[1..]` with `scorer` (a CPU scorer: its threads, cells in
/// flight and conv algorithm) after `archs[0]` as a warm-up (weights from
/// `seed`), and reports cells/s and the split by phase and op. With cells
/// in flight the phase and op times are per cell, as each cell's lane
/// measured them (their sum exceeds the wall time per cell).
pub fn bench_cpu(space: &str, scorer: &mut Scorer, archs: &[Arch], seed: u64) -> Result<CpuBench> {
    if scorer.gpu().is_some() {
        return Err(Error::Arg("bench_cpu: the scorer runs on a GPU".into()));
    }
    let b = scorer.batch_size();
    let (warm, timed) = archs
        .split_first()
        .ok_or_else(|| Error::Arg("bench: no cells".into()))?;
    if timed.is_empty() {
        return Err(Error::Arg(
            "bench: at least one cell besides the warm-up".into(),
        ));
    }
    // Warm-up: page in the buffers and the code paths (on every lane).
    let warm_up = vec![warm; scorer.cells_in_flight()];
    scorer.score_archs(&warm_up, seed, 1.0)?;
    let mut sum = CellTiming::default();
    let mut flops = 0u64;
    let mut flops_by_kind: Vec<(&'static str, u64)> = Vec::new();
    for arch in timed {
        let net = arch.network()?;
        flops += net.flops(b);
        for (k, f) in net.flops_by_kind(b) {
            match flops_by_kind.iter_mut().find(|(kk, _)| *kk == k) {
                Some((_, t)) => *t += f,
                None => flops_by_kind.push((k, f)),
            }
        }
    }
    let refs: Vec<&Arch> = timed.iter().collect();
    let start = Instant::now();
    for block in refs.chunks(scorer.block_size()) {
        for r in scorer.score_archs(block, seed, 1.0)? {
            sum.build_s += r.timing.build_s;
            sum.ops_s += r.timing.ops_s;
            sum.codes_s += r.timing.codes_s;
            sum.logdet_s += r.timing.logdet_s;
            sum.measures_s += r.timing.measures_s;
            for (k, t) in r.timing.measures_by_pass {
                match sum.measures_by_pass.iter_mut().find(|(kk, _)| *kk == k) {
                    Some((_, tt)) => *tt += t,
                    None => sum.measures_by_pass.push((k, t)),
                }
            }
            for (k, t) in r.timing.by_op {
                match sum.by_op.iter_mut().find(|(kk, _)| *kk == k) {
                    Some((_, tt)) => *tt += t,
                    None => sum.by_op.push((k, t)),
                }
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let n = timed.len() as f64;
    sum.by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(CpuBench {
        space: space.to_string(),
        threads: scorer.threads(),
        cells_in_flight: scorer.cells_in_flight(),
        conv: scorer.conv().name().to_string(),
        batch: b,
        cells: timed.len(),
        cells_per_s: n / wall,
        ms_per_cell: 1e3 * wall / n,
        build_ms: 1e3 * sum.build_s / n,
        forward_ms: 1e3 * sum.ops_s / n,
        codes_hamming_ms: 1e3 * sum.codes_s / n,
        logdet_ms: 1e3 * sum.logdet_s / n,
        forward_by_op_ms: sum
            .by_op
            .iter()
            .map(|(k, t)| (k.to_string(), 1e3 * t / n))
            .collect(),
        measures_ms: 1e3 * sum.measures_s / n,
        measures_by_pass_ms: sum
            .measures_by_pass
            .iter()
            .map(|(k, t)| (k.to_string(), 1e3 * t / n))
            .collect(),
        gflop_per_cell: flops as f64 / n / 1e9,
        conv_gflops: flops as f64 / sum.ops_s.max(f64::MIN_POSITIVE) / 1e9,
        gflops_by_op: flops_by_kind
            .iter()
            .filter_map(|&(k, f)| {
                let t = sum.by_op.iter().find(|(kk, _)| *kk == k)?.1;
                Some((k.to_string(), f as f64 / t.max(f64::MIN_POSITIVE) / 1e9))
            })
            .collect(),
    })
}

impl CpuBench {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["device"] = serde_json::json!("cpu");
        v
    }
}

impl fmt::Display for CpuBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.build_ms
            + self.forward_ms
            + self.codes_hamming_ms
            + self.logdet_ms
            + self.measures_ms;
        let share = |t: f64| 100.0 * t / total.max(f64::MIN_POSITIVE);
        writeln!(f, "phase                 ms/cell   share")?;
        for (name, t) in [
            ("build+init", self.build_ms),
            ("forward ops", self.forward_ms),
            ("codes+hamming", self.codes_hamming_ms),
            ("logdet", self.logdet_ms),
            ("measures", self.measures_ms),
        ] {
            if name == "measures" && t == 0.0 {
                continue;
            }
            writeln!(f, "{name:<20} {t:>8.2} {:>6.1}%", share(t))?;
            if name == "measures" {
                for (k, t) in &self.measures_by_pass_ms {
                    writeln!(f, "  {k:<18} {t:>8.2} {:>6.1}%", share(*t))?;
                }
            }
            if name == "forward ops" {
                for (k, t) in &self.forward_by_op_ms {
                    write!(f, "  {k:<18} {t:>8.2} {:>6.1}%", share(*t))?;
                    match self.gflops_by_op.iter().find(|(kk, _)| kk == k) {
                        Some((_, g)) => writeln!(f, "  {g:>6.1} GFLOP/s")?,
                        None => writeln!(f)?,
                    }
                }
            }
        }
        writeln!(
            f,
            "cells/s {:.3}   ms/cell {:.1}   conv+linear GFLOP/s {:.1}   ({} threads, {} in flight, {} convs)",
            self.cells_per_s,
            self.ms_per_cell,
            self.conv_gflops,
            self.threads,
            self.cells_in_flight,
            self.conv
        )
    }
}

/// One op shape of a GPU profile.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OpShapeRate {
    /// The op's kind ([`crate::net::Op::kind`]).
    pub kind: String,
    /// The op itself (its spec, as `Debug` prints it).
    pub op: String,
    /// Its input's shape, batch included.
    pub input: String,
    /// Launches of this op shape over the profiled cells.
    pub launches: u64,
    /// Mean GPU time of one launch, in microseconds (CUDA events).
    pub us_per_launch: f64,
    /// Achieved rate of this shape: its FLOPs over its GPU time, in TFLOP/s.
    pub tflops: f64,
    /// `tflops` as a percentage of the device's fp32 peak.
    pub percent_of_peak: f64,
}

/// Scoring throughput on a GPU with every lane in flight, and a profile of
/// one lane with CUDA events around every step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CudaBench {
    /// Label of the search space the cells come from (`nb201`, `nb101`, `darts`).
    pub space: String,
    /// `cuda:N`, the device's ordinal.
    pub device: String,
    /// The GPU's name, as the driver reports it.
    pub gpu: String,
    /// Cell pipelines (streams) in flight at once.
    pub lanes: usize,
    /// Images in the scoring batch (B).
    pub batch: usize,
    /// Cells timed (the warm-up cells excluded).
    pub cells: usize,
    /// Timed cells over the wall time, all lanes in flight.
    pub cells_per_s: f64,
    /// Wall milliseconds per timed cell (lanes overlapping, so not one cell's latency).
    pub ms_per_cell: f64,
    /// The device's fp32 peak, in TFLOP/s (an FMA counts 2).
    pub fp32_peak_tflops: f64,
    /// Conv and linear GFLOP of one cell's forward pass at this batch, mean over the
    /// timed cells.
    pub gflop_per_cell: f64,
    /// Conv and linear FLOPs over the wall time, all lanes in flight.
    pub achieved_tflops: f64,
    /// Cells the profile covers.
    pub profiled: usize,
    /// GPU time per cell by kernel kind (µs), largest first.
    pub profile_us_per_cell: Vec<(String, f64)>,
    /// Every op shape with arithmetic, slowest first.
    pub shapes: Vec<OpShapeRate>,
    /// XOR-popcounted word pairs per second in the Hamming kernels: code words
    /// streamed × B(B−1)/2, over their profiled GPU time.
    pub hamming_word_pairs_per_s: f64,
    /// Profiled GPU time of K_H and the Cholesky per matrix factorised, in microseconds.
    pub logdet_us_per_matrix: f64,
}

/// Scores `archs` on `g` (after `g.lanes() × CHUNK` warm-up cells taken
/// from their front), then profiles up to 64 of them on one lane.
pub fn bench_cuda(space: &str, g: &mut GpuScorer, archs: &[Arch], seed: u64) -> Result<CudaBench> {
    let warm = (g.lanes() * CHUNK).min(archs.len().saturating_sub(1));
    let (warm_archs, timed) = archs.split_at(warm);
    if timed.is_empty() {
        return Err(Error::Arg("bench: no cells to time".into()));
    }
    let build = |list: &[Arch]| {
        let list = list.to_vec();
        move |i: usize| list[i].network()
    };
    if warm > 0 {
        g.score(warm, build(warm_archs), seed, 1.0, None, false)?;
    }
    let start = Instant::now();
    g.score(timed.len(), build(timed), seed, 1.0, None, false)?;
    let wall = start.elapsed().as_secs_f64();
    let b = g.batch_size();
    let mut flops = 0u64;
    for arch in timed {
        flops += arch.network()?.flops(b);
    }
    let n = timed.len() as f64;
    let profiled = timed.len().min(64);
    let mut prof = Profile::default();
    g.score(
        profiled,
        build(&timed[..profiled]),
        seed,
        1.0,
        Some(&mut prof),
        false,
    )?;
    let pn = profiled as f64;
    let info = g.device().info().clone();
    let peak = info.fp32_peak_flops();
    prof.by_kind.sort_by(|x, y| y.1.total_cmp(&x.1));
    prof.shapes.sort_by(|x, y| y.seconds.total_cmp(&x.seconds));
    let t_of = |k: &str| {
        prof.by_kind
            .iter()
            .find(|(kk, _)| *kk == k)
            .map_or(0.0, |(_, t)| *t)
    };
    let bf = b as f64;
    // Word pairs XOR-popcounted: B(B-1)/2 pairs per code word of a row.
    let pairs = prof.hamming_words as f64 * bf * (bf - 1.0) / 2.0;
    Ok(CudaBench {
        space: space.to_string(),
        device: format!("cuda:{}", info.ordinal),
        gpu: info.name.clone(),
        lanes: g.lanes(),
        batch: b,
        cells: timed.len(),
        cells_per_s: n / wall,
        ms_per_cell: 1e3 * wall / n,
        fp32_peak_tflops: peak / 1e12,
        gflop_per_cell: flops as f64 / n / 1e9,
        achieved_tflops: flops as f64 / wall / 1e12,
        profiled,
        profile_us_per_cell: prof
            .by_kind
            .iter()
            .map(|(k, t)| (k.to_string(), 1e6 * t / pn))
            .collect(),
        shapes: prof
            .shapes
            .iter()
            .map(|c| {
                let tf = c.flops as f64 / c.seconds.max(f64::MIN_POSITIVE);
                OpShapeRate {
                    kind: c.kind.to_string(),
                    op: c.op.clone(),
                    input: c.input.to_string(),
                    launches: c.launches,
                    us_per_launch: 1e6 * c.seconds / c.launches.max(1) as f64,
                    tflops: tf / 1e12,
                    percent_of_peak: 100.0 * tf / peak.max(f64::MIN_POSITIVE),
                }
            })
            .collect(),
        hamming_word_pairs_per_s: pairs / t_of("hamming").max(f64::MIN_POSITIVE),
        logdet_us_per_matrix: 1e6 * t_of("logdet") / prof.logdets.max(1) as f64,
    })
}

impl CudaBench {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl fmt::Display for CudaBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cells/s {:.1}   ms/cell {:.3}   conv+linear TFLOP/s {:.2} (fp32 peak {:.1})",
            self.cells_per_s, self.ms_per_cell, self.achieved_tflops, self.fp32_peak_tflops
        )?;
        writeln!(
            f,
            "GPU time by kernel, one lane, {} cells (CUDA events):",
            self.profiled
        )?;
        writeln!(f, "kernel            us/cell   share")?;
        let total: f64 = self.profile_us_per_cell.iter().map(|(_, t)| t).sum();
        for (k, t) in &self.profile_us_per_cell {
            writeln!(
                f,
                "{k:<16} {t:>8.1} {:>6.1}%",
                100.0 * t / total.max(f64::MIN_POSITIVE)
            )?;
        }
        writeln!(f, "ops with arithmetic, by shape (NHWC input):")?;
        writeln!(
            f,
            "{:<43} {:<16} {:>9} {:>10} {:>8} {:>9}",
            "op", "input", "launches", "us/launch", "TFLOP/s", "% of peak"
        )?;
        for c in &self.shapes {
            let op: String = c.op.chars().take(43).collect();
            writeln!(
                f,
                "{op:<43} {:<16} {:>9} {:>10.1} {:>8.2} {:>8.1}%",
                c.input, c.launches, c.us_per_launch, c.tflops, c.percent_of_peak
            )?;
        }
        writeln!(
            f,
            "hamming: {:.3e} word pairs/s   logdet (K_H + Cholesky): {:.1} us per {}x{} matrix",
            self.hamming_word_pairs_per_s, self.logdet_us_per_matrix, self.batch, self.batch
        )
    }
}

/// Fast-training throughput.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainBench {
    /// `cpu` or `cuda:N (name)` ([`Scorer::describe`]).
    pub device: String,
    /// Cells trained and scored in the timed loop (every cell given; the untimed
    /// warm-up trained the first one 2 steps before it).
    pub cells: usize,
    /// SGD steps per cell.
    pub train_steps: usize,
    /// Images per training step.
    pub train_batch: usize,
    /// Wall seconds of the timed loop, training and scoring.
    pub seconds: f64,
    /// Training steps (cells × steps) over `seconds`; scoring time is in the
    /// denominator too.
    pub steps_per_s: f64,
}

impl TrainBench {
    /// The report as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl fmt::Display for TrainBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} cells x {} steps at batch {} (+ scoring each): {:.2} s, {:.1} training steps/s",
            self.device,
            self.cells,
            self.train_steps,
            self.train_batch,
            self.seconds,
            self.steps_per_s
        )
    }
}

/// `records` seeded synthetic CIFAR-10 records: labels 0–9 in turn, random
/// pixels (the data do not change the work of a training step).
pub fn synthetic_images(records: usize, seed: u64) -> Result<CifarImages> {
    // Reserved fallibly: a count too large for memory is an error.
    let mut bytes = Vec::new();
    records
        .checked_mul(3073)
        .filter(|&n| n <= isize::MAX as usize)
        .and_then(|n| bytes.try_reserve_exact(n).ok())
        .ok_or_else(|| {
            Error::Arg(format!(
                "{records} synthetic CIFAR records cannot be allocated"
            ))
        })?;
    let key = crate::rng::stream_key(seed, 0x7261_696e);
    for r in 0..records {
        bytes.push((r % 10) as u8);
        bytes.extend(
            (0..3072u64).map(|i| (crate::rng::bits(key, (r as u64) * 3072 + i) >> 56) as u8),
        );
    }
    CifarImages::from_bytes(&bytes, Dataset::Cifar10)
}

/// Trains and scores `archs` on `scorer`'s device, `steps` SGD steps each
/// at `train_batch` images (seeded synthetic data; lr 0.1, momentum 0.9,
/// weight decay 5e-4, cosine), after one cell trained 2 steps untimed.
/// A `train_batch` whose synthetic records and labelled batch, or (on the
/// CPU) a cell's training step, cannot fit in the host's available memory
/// is refused before the records are made.
pub fn bench_training(
    scorer: &mut Scorer,
    archs: &[Arch],
    seed: u64,
    steps: usize,
    train_batch: usize,
) -> Result<TrainBench> {
    if train_batch == 0 {
        return Err(Error::Arg(
            "the training batch must have at least 1 image".into(),
        ));
    }
    let first = archs
        .first()
        .ok_or_else(|| Error::Arg("bench: no cells".into()))?;
    // On the CPU, each cell's training step with its plan (checked again
    // when it trains), before seconds are spent making the records.
    if scorer.gpu().is_none() {
        for arch in archs {
            let plan = crate::train::plan::TrainPlan::new(&arch.network()?, train_batch)?;
            crate::train::budget::TrainMemory::cpu(&plan)
                .check(crate::runtime::budget::host_available())?;
        }
    }
    let records = train_batch.saturating_mul(4).max(256);
    // At the peak the file's bytes and their parsed copy (records of 3,073
    // bytes, twice), and one labelled batch.
    let per_sample = crate::train::batches::batch_shape(1).per_sample();
    let synthetic = (records as u64).saturating_mul(2 * 3073);
    crate::train::budget::check_train_host(
        crate::train::TRAIN_BATCH,
        train_batch,
        synthetic.saturating_add(crate::train::budget::labelled_batch_bytes(
            train_batch,
            per_sample,
        )),
        Some(("synthetic records alone", synthetic)),
    )?;
    let images = Arc::new(synthetic_images(records, seed)?);
    let config = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        schedule: LrSchedule::Cosine,
    };
    let training = |steps| {
        Training::new(
            images.clone(),
            None,
            steps,
            train_batch,
            config,
            Augment::default(),
        )
    };
    scorer.set_training(Some(training(2)?))?;
    scorer.score_archs(&[first], seed, 1.0)?;
    scorer.set_training(Some(training(steps)?))?;
    let refs: Vec<&Arch> = archs.iter().collect();
    let t = Instant::now();
    for block in refs.chunks(scorer.block_size()) {
        scorer.score_archs(block, seed, 1.0)?;
    }
    let wall = t.elapsed().as_secs_f64();
    scorer.set_training(None)?;
    let total_steps = (steps * archs.len()) as f64;
    Ok(TrainBench {
        device: scorer.describe(),
        cells: archs.len(),
        train_steps: steps,
        train_batch,
        seconds: wall,
        steps_per_s: total_steps / wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_records_too_many_for_memory_are_errors() {
        let e = synthetic_images(usize::MAX / 2, 0).unwrap_err().to_string();
        assert!(
            e.contains("synthetic CIFAR records cannot be allocated"),
            "{e}"
        );
        assert_eq!(synthetic_images(3, 0).unwrap().len(), 3);
    }
}
