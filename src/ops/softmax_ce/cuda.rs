//! CUDA softmax cross-entropy, forward and backward in one launch of
//! `softmax_ce_fwd_bwd` (`src/ops/softmax_ce/softmax_ce.cu`); CPU twin in
//! `super::cpu`.
//!
//! Layouts: `logits` f32 `[batch][classes]`, `labels` i32 `[batch]`,
//! `loss` f32 `[batch]` (per sample), `correct` i32 `[batch]` (1 when the
//! argmax, ties to the lowest index, is the label), `dlogits` f32
//! `[batch][classes]`, `mean_loss` f32 `[1]`.

use crate::runtime::cuda::{DView, DViewMut, LaunchConfig};

use crate::error::{Error, Result};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;

/// `softmax_ce_fwd_bwd` of `softmax_ce.cu`.
pub const SOFTMAX_CE_FWD_BWD: KernelRef = KernelRef::backward("softmax_ce", "softmax_ce_fwd_bwd");

/// The loss's kernels, for the kernel table (the loss is not a graph node).
pub const KERNELS: &[KernelRef] = &[SOFTMAX_CE_FWD_BWD];

/// What [`softmax_ce`] writes: per-sample `loss` (f32 `[batch]`) and
/// `correct` flags (i32 `[batch]`), `dlogits` (f32 `[batch][classes]`) and
/// the batch's `mean_loss` (one f32).
pub struct SoftmaxCeOut<'a> {
    /// Per-sample loss, f32 `[batch]`.
    pub loss: DViewMut<'a, f32>,
    /// Per-sample flags, i32 `[batch]`: 1 when the argmax (ties to the lowest
    /// index) is the label.
    pub correct: DViewMut<'a, i32>,
    /// Gradient of the mean loss, f32 `[batch][classes]`.
    pub dlogits: DViewMut<'a, f32>,
    /// The batch's mean loss, one f32.
    pub mean_loss: DViewMut<'a, f32>,
}

/// Per-sample loss `lse(logits[b]) − logits[b][label]`, its batch mean,
/// the correct flags, and `dlogits = (softmax − onehot) / batch` (the
/// gradient of the mean loss), all computed in f64 and rounded once; the
/// mean is a fixed-order reduction (deterministic). One block: meant for
/// training mini-batches.
///
/// The labels are on the device, so they cannot be checked here: a label
/// outside `0..classes` gives a NaN loss (and NaN mean and gradient row)
/// rather than an error; check them on the host before uploading. Errors
/// (before the launch) on zero sizes or buffer lengths that do not match.
pub fn softmax_ce(
    dev: &CudaDevice,
    batch: usize,
    classes: usize,
    logits: &DView<'_, f32>,
    labels: &DView<'_, i32>,
    out: SoftmaxCeOut<'_>,
) -> Result<()> {
    let SoftmaxCeOut {
        loss,
        correct,
        dlogits,
        mean_loss,
    } = out;
    let bad = |msg: String| Err(Error::Shape(format!("softmax_ce (CUDA): {msg}")));
    if batch == 0 || classes == 0 {
        return bad(format!("batch {batch} x classes {classes} is empty"));
    }
    let n = batch.checked_mul(classes);
    if n != Some(logits.len()) || n != Some(dlogits.len()) {
        return bad(format!(
            "logits of {} and dlogits of {} values, {batch} x {classes} needed",
            logits.len(),
            dlogits.len()
        ));
    }
    if labels.len() != batch || loss.len() != batch || correct.len() != batch {
        return bad(format!(
            "labels / loss / correct of {} / {} / {} values, batch {batch} needed",
            labels.len(),
            loss.len(),
            correct.len()
        ));
    }
    if mean_loss.len() != 1 {
        return bad(format!(
            "mean_loss has {} values, 1 needed",
            mean_loss.len()
        ));
    }
    // The kernel indexes samples with int (offsets in 64 bits).
    let (b_i, k_i) = match (i32::try_from(batch), i32::try_from(classes)) {
        (Ok(b), Ok(k)) if b < i32::MAX - 256 => (b, k),
        _ => return bad(format!("batch {batch} or classes {classes} exceed 32 bits")),
    };
    let f = dev.kernel(SOFTMAX_CE_FWD_BWD)?;
    let mut b = dev.launch_builder(&f);
    b.arg(logits)
        .arg(labels)
        .arg(&loss)
        .arg(&correct)
        .arg(&dlogits)
        .arg(&mean_loss)
        .arg(&b_i)
        .arg(&k_i);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments match `softmax_ce_fwd_bwd(const float* logits,
    // const int* labels, float* loss, int* correct, float* dlogits, float*
    // mean_loss, int B, int K)`; sample b < batch reads logits[b·K..(b+1)·K)
    // and labels[b] and writes loss[b], correct[b], dlogits[b·K..(b+1)·K)
    // (a label is compared with K before it indexes), thread 0 writes
    // mean_loss[0]: all inside the views (checked above); one block of 256
    // threads, the power of two its tree reduction assumes; the outputs are
    // exclusive borrows, distinct from the inputs.
    unsafe { b.launch(cfg) }?;
    Ok(())
}
