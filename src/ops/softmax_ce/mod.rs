//! Softmax cross-entropy over class logits: the training loss.
//!
//! Logits are `[n, 1, 1, classes]` (the linear classifier's output), one
//! label per sample. `loss = (1/n) Σ_b −log softmax(logits_b)[label_b]`,
//! `dlogits = (softmax − onehot) / n`. Batch accuracy counts the samples
//! whose arg-max logit (ties to the lowest class index) is the label.

pub mod cpu;
pub mod cuda;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Loss and accuracy of one batch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CeStats {
    /// Mean cross-entropy over the batch (natural log).
    pub loss: f64,
    /// Samples whose arg-max class is the label.
    pub correct: usize,
    /// Samples in the batch.
    pub batch: usize,
}

impl CeStats {
    /// `correct / batch`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.batch as f64
    }
}

/// Checks logits against labels: `[n, 1, 1, classes]` with `h = w = 1`
/// not required (any per-sample size is read as the class vector), `n`
/// labels each below the class count.
pub fn check(logits: Shape, labels: &[u32]) -> Result<()> {
    crate::ops::check_nonempty("softmax_ce", "logits", logits)?;
    if labels.len() != logits.n {
        return Err(Error::Shape(format!(
            "softmax_ce: {} labels for a batch of {}",
            labels.len(),
            logits.n
        )));
    }
    let classes = logits.per_sample();
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(Error::Data(format!(
            "softmax_ce: label {l} of sample {i} is not below the {classes} classes"
        )));
    }
    Ok(())
}
