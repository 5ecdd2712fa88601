//! Memory budget of fast training: how many bytes one training step needs
//! at a training batch size, and the checks that refuse a batch that cannot
//! fit before anything big is allocated (as `crate::runtime::budget` does
//! for scoring, whose helpers this uses).
//!
//! Training ([`TrainMemory`]) is estimated like scoring, from the
//! [`TrainPlan`] of the training batch B_t (`--train-batch`), and refused
//! before the first batch is drawn. Everything grows linearly in B_t (no
//! B×B matrices). One step holds:
//! * the labelled batch: f32 images `[B_t, 32, 32, 3]`, u32 labels and the
//!   record indices it was gathered from;
//! * values: the plan's `values` arena, f32 `[values_len]` (what the
//!   forward pass keeps for the backward pass, and what is live);
//! * gradients: the plan's `grads` arena, f32 `[grads_len]` (output
//!   gradients live during the backward pass, scratch contributions);
//! * scratch: on the CPU the per-sample partial parameter gradients of the
//!   backward (a conv sums one weight gradient per image, in a fixed order:
//!   f32 `[B_t][largest parameter count of one node]`); on a GPU the
//!   plan's backward scratch (f32 `[scratch32_len]`, f64
//!   `[scratch64_len]`) and BatchNorm partial sums (f64 `[stats_len]`);
//! * other: parameters, their gradients and momentum buffers (f32
//!   `[params_len]` each; on a GPU the parameters are the scoring lane's and
//!   are not counted again), the saved BatchNorm statistics (f32
//!   `[saved_len]`), and on a GPU the per-step losses (f32 `[CHUNK][K]`)
//!   and the last step's per-sample hits and losses (`[CHUNK][B_t]`, `[B_t]`).
//!
//! The CPU estimate is the sum of the parts (the values' and gradients'
//! peaks do not coincide, so it bounds what the trainer's buffers hold;
//! transient op buffers, such as a strided conv's padded input gradient,
//! fit in that slack). Measured on two NB201 cells (`dasnas train`, 2
//! threads) at B_t = 64, 256 and 512, the process's peak RSS, its ~20–40 MB
//! baseline included, was 0.95–1.03× of the estimate. On a GPU each lane's training buffers ([`TrainMemory::gpu`])
//! and the batches of all K steps, uploaded once ([`train_data_bytes`]),
//! are checked against the device's free memory as they are allocated.

use super::TRAIN_BATCH;
use crate::error::{Error, Result};
use crate::runtime::budget::{bytes, fits, host_available, Refusal};
use crate::train::plan::TrainPlan;

/// The estimated bytes of one training step at the plan's batch, by part
/// (see the module docs). Sizes saturate at `u64::MAX` rather than wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainMemory {
    /// B_t, the training batch.
    pub batch: usize,
    /// The labelled batch on the host (0 on a GPU: see [`train_data_bytes`]).
    pub input: u64,
    /// The forward values: the plan's `values` arena.
    pub values: u64,
    /// The output gradients: the plan's `grads` arena.
    pub grads: u64,
    /// Backward scratch: the CPU's per-sample parameter-gradient partials,
    /// a GPU's split gradients and BatchNorm partial sums.
    pub scratch: u64,
    /// Parameters, their gradients and momentum, saved statistics, losses.
    pub other: u64,
    /// The estimate: their sum.
    pub total: u64,
}

/// Bytes of one labelled batch of `batch` samples of `per_sample` values on
/// the host: f32 images, u32 labels and the `usize` record indices they
/// were gathered from.
pub fn labelled_batch_bytes(batch: usize, per_sample: usize) -> u64 {
    bytes(batch, 4)
        .saturating_mul(per_sample as u64)
        .saturating_add(bytes(batch, 4))
        .saturating_add(bytes(batch, std::mem::size_of::<usize>() as u64))
}

/// Bytes on a GPU of the batches of `steps` training steps of `batch`
/// samples of `per_sample` values (`crate::train::cuda::TrainData`): f32
/// images, i32 labels and one f32 learning rate per step.
pub fn train_data_bytes(batch: usize, per_sample: usize, steps: usize) -> u64 {
    bytes(batch, 4)
        .saturating_mul(per_sample as u64)
        .saturating_add(bytes(batch, 4))
        .saturating_add(4)
        .saturating_mul(steps as u64)
}

impl TrainMemory {
    /// What the CPU trainer (`crate::train::cpu`) holds during one step of
    /// `plan`, with the labelled batch it trains on.
    pub fn cpu(plan: &TrainPlan) -> TrainMemory {
        let b = plan.batch;
        let input = labelled_batch_bytes(b, plan.input.per_sample());
        let values = bytes(plan.values_len, 4);
        let grads = bytes(plan.grads_len, 4);
        let scratch = bytes(b, 4).saturating_mul(plan.max_node_params as u64);
        let other = bytes(plan.params_len, 4 * 3).saturating_add(bytes(plan.saved_len, 4));
        TrainMemory::sum(b, input, values, grads, scratch, other)
    }

    /// What one lane of the GPU trainer (`crate::train::cuda::TrainBufs`)
    /// holds to train chunks of `chunk` cells like `plan` for `steps` steps
    /// (the batches themselves, shared by the lanes, are
    /// [`train_data_bytes`]).
    pub fn gpu(plan: &TrainPlan, steps: usize, chunk: usize) -> TrainMemory {
        let b = plan.batch;
        let values = bytes(plan.values_len, 4);
        let grads = bytes(plan.grads_len, 4);
        let scratch = bytes(plan.scratch32_len, 4)
            .saturating_add(bytes(plan.scratch64_len, 8))
            .saturating_add(bytes(plan.stats_len, 8));
        let other = bytes(plan.params_len, 4 * 2)
            .saturating_add(bytes(plan.saved_len, 4))
            .saturating_add(bytes(chunk, 4).saturating_mul(steps as u64))
            .saturating_add(bytes(chunk, 4).saturating_mul(b as u64))
            .saturating_add(bytes(b, 4));
        TrainMemory::sum(b, 0, values, grads, scratch, other)
    }

    fn sum(batch: usize, input: u64, values: u64, grads: u64, scratch: u64, other: u64) -> Self {
        TrainMemory {
            batch,
            input,
            values,
            grads,
            scratch,
            other,
            total: [input, values, grads, scratch, other]
                .into_iter()
                .fold(0u64, u64::saturating_add),
        }
    }

    /// Refuses (an [`Error::Arg`] naming the training batch, the estimate
    /// and what is available) when the estimate exceeds `available` bytes
    /// of host memory. With `available` unknown (`None`), only an estimate
    /// no allocation could ever satisfy (beyond `isize::MAX`) is refused.
    pub fn check(&self, available: Option<u64>) -> Result<()> {
        self.check_as(available, "are available")
    }

    /// [`Self::check`] with `verb` saying how `available` is available
    /// ("are available on the GPU").
    pub fn check_as(&self, available: Option<u64>, verb: &str) -> Result<()> {
        if fits(self.total, available) {
            return Ok(());
        }
        Err(train_too_big(
            TRAIN_BATCH,
            self.batch,
            "about",
            self.total,
            Some((
                "values and gradients",
                self.values.saturating_add(self.grads),
            )),
            available,
            verb,
        ))
    }
}

/// The error of a training batch (called `name`: [`TRAIN_BATCH`], or a
/// flag) of `batch` samples that needs `need` bytes for one step (`part`:
/// a named part of them) where `available` are (`None`: beyond what the
/// machine can address); `verb` says how they are available.
pub fn train_too_big(
    name: &str,
    batch: usize,
    qualifier: &str,
    need: u64,
    part: Option<(&str, u64)>,
    available: Option<u64>,
    verb: &str,
) -> Error {
    Refusal {
        name,
        batch,
        qualifier,
        need,
        unit: "one training step",
        part,
        available,
        verb,
        flag: "--train-batch",
    }
    .error()
}

/// Refuses a training batch (called `name`) of `batch` samples of
/// `per_sample` values whose labelled images alone cannot fit in host
/// memory ([`labelled_batch_bytes`] against [`host_available`]): the check
/// that needs no network, made before any file is read or batch drawn (a
/// lower bound of [`TrainMemory::cpu`]; each cell is checked again with its
/// plan).
pub fn check_train_batch(name: &str, batch: usize, per_sample: usize) -> Result<()> {
    check_train_host(name, batch, labelled_batch_bytes(batch, per_sample), None)
}

/// Refuses a training batch (called `name`) of `batch` samples that needs
/// at least `need` bytes of host memory (`part`: a named part of them).
pub fn check_train_host(
    name: &str,
    batch: usize,
    need: u64,
    part: Option<(&str, u64)>,
) -> Result<()> {
    let available = host_available();
    if fits(need, available) {
        return Ok(());
    }
    Err(train_too_big(
        name,
        batch,
        "at least",
        need,
        part,
        available,
        "are available",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Arch, Space};

    /// The NB201 cell of six 3×3 convs measured in the module docs.
    fn nb201_train_plan(batch: usize) -> TrainPlan {
        let arch = Arch::parse(
            "nb201".parse::<Space>().unwrap(),
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        )
        .unwrap();
        TrainPlan::new(&arch.network().unwrap(), batch).unwrap()
    }

    #[test]
    fn training_estimate_is_linear_in_the_batch_and_of_the_measured_size() {
        let m = TrainMemory::cpu(&nb201_train_plan(64));
        assert_eq!(m.batch, 64);
        assert_eq!(m.input, 64 * (3072 * 4 + 4 + 8));
        assert_eq!(m.total, m.input + m.values + m.grads + m.scratch + m.other);
        // The largest NB201 activation is B × 32 × 32 × 16 floats (4.2 MB
        // at B = 64); the forward pass keeps dozens of them for the
        // backward pass. The widest conv (64 → 64, 3×3) has 36,864
        // weights: one partial gradient of them per image.
        let largest = 64 * 32 * 32 * 16 * 4;
        assert!(m.values > 20 * largest && m.values < 200 * largest, "{m:?}");
        assert_eq!(m.scratch, 64 * 36_864 * 4);
        // Measured (`dasnas train --train-batch 64`, 2-core machine): a
        // peak RSS of 411 MB, against an estimate of 408 MB.
        assert!(
            (300e6..600e6).contains(&(m.total as f64)),
            "{}",
            crate::runtime::budget::human(m.total)
        );
        // Linear in B_t: each batch-sized part doubles (up to the plan's
        // alignment), the parameters do not grow.
        let m2 = TrainMemory::cpu(&nb201_train_plan(128));
        let near = |a: u64, b: u64| a.abs_diff(b) <= 64 * 1024;
        assert_eq!(m2.input, 2 * m.input);
        assert!(near(m2.values, 2 * m.values), "{m:?} {m2:?}");
        assert!(near(m2.grads, 2 * m.grads), "{m:?} {m2:?}");
        assert_eq!(m2.scratch, 2 * m.scratch);
        assert_eq!(m2.other, m.other);
        let m8 = TrainMemory::cpu(&nb201_train_plan(512));
        let per_image = (m8.total - m.total) as f64 / (512.0 - 64.0);
        assert!((per_image - (m2.total - m.total) as f64 / 64.0).abs() < 0.01 * per_image);
        // About 6 MB per image: 10^5 images take hundreds of GB.
        assert!((4e6..8e6).contains(&per_image), "{per_image}");

        // A GPU lane: no host batch, its own scratch, losses of K steps.
        let p = nb201_train_plan(64);
        let g = TrainMemory::gpu(&p, 10, 8);
        assert_eq!(g.input, 0);
        assert_eq!((g.values, g.grads), (m.values, m.grads));
        assert_eq!(g.total, g.values + g.grads + g.scratch + g.other);
        assert_eq!(TrainMemory::gpu(&p, 20, 8).other - g.other, 8 * 10 * 4);
        assert_eq!(
            train_data_bytes(64, 3072, 10),
            10 * (64 * 3072 * 4 + 64 * 4 + 4)
        );
        assert_eq!(train_data_bytes(usize::MAX, 3072, 2), u64::MAX);
    }

    #[test]
    fn training_check_names_the_training_batch() {
        let m = TrainMemory::cpu(&nb201_train_plan(32));
        assert!(m.check(Some(m.total)).is_ok());
        assert!(m.check(None).is_ok());
        let e = m.check(Some(m.total - 1)).unwrap_err();
        assert!(matches!(e, Error::Arg(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("training batch 32 needs about"), "{e}");
        assert!(
            e.contains("for one training step (its values and gradients: "),
            "{e}"
        );
        assert!(
            e.contains("are available; use a smaller --train-batch"),
            "{e}"
        );
        let e = m
            .check_as(Some(1000), "are available on the GPU")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1.0 kB are available on the GPU"), "{e}");
        // Beyond any address space, refused wherever it runs, by the name
        // it is given.
        let e = check_train_batch("--train-batch", usize::MAX, 3072)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("--train-batch {} needs at least", usize::MAX)),
            "{e}"
        );
        check_train_batch(TRAIN_BATCH, 64, 3072).unwrap();
        // 10^9 CIFAR images (12 TB), where the available memory is known.
        if host_available().is_some_and(|a| a < 12_000_000_000_000) {
            let e = check_train_batch(TRAIN_BATCH, 1_000_000_000, 3072)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("training batch 1000000000 needs at least 12 TB for one training step,"),
                "{e}"
            );
        }
        // A batch whose tensors overflow is an error of the plan.
        let arch = Arch::parse(
            "nb201".parse::<Space>().unwrap(),
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        )
        .unwrap();
        let graph = arch.network().unwrap();
        for b in [usize::MAX, usize::MAX / 3072, 1 << 50] {
            let e = TrainPlan::new(&graph, b).unwrap_err().to_string();
            assert!(e.contains(&format!("training batch {b}")), "{e}");
        }
    }
}
