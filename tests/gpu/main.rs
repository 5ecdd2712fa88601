//! The CUDA backend beyond single ops (whose tests sit in their folders,
//! `src/ops/<op>/tests.rs`): the kernels that are not ops, the GPU scorer
//! and trainer end to end against the CPU, and the NVRTC compilation of
//! every kernel family (one test binary; each file a theme).
//!
//! Each GPU test is written once and runs twice (`dasnas::gpu_test!`):
//! `…::emulated` on the host emulation of the CUDA backend, always (so CI
//! runs every kernel without a GPU), and `…::gpu` on a GPU, ignored unless
//! asked for (`--include-ignored`, as the GPU bundle does).

mod kernels;
mod nvrtc;
mod scorer;
mod train;
