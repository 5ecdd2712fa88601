//! Softmax cross-entropy over class logits, the training loss: per sample
//! `loss = −log softmax(logits)[label]`, batch loss = mean over the batch,
//! gradient `dlogits = (softmax − onehot(label)) / B`, and whether the
//! argmax (ties to the lowest index) is the label.
//!
//! Layout: logits `[B][K]` row-major (the `[B, 1, 1, K]` output of the
//! linear layer), labels one class index per sample.

pub mod cuda;
// The CPU twin (`pub mod cpu;`, src/ops/softmax_ce/cpu.rs) is declared by
// the commit that adds that file.
