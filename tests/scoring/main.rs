//! The library as a whole, through its public API: spaces, identities and
//! counting rules against the benchmarks' own tables, the PyTorch
//! reference scores, the measures, the bit-for-bit regression fixture
//! (`fixtures/regression.txt`), training on the CPU, the throughput options'
//! effect on scores, and every parser fed random input (one test binary;
//! each file a theme). Tests that need `../shared/data` print `SKIPPED …`
//! without it.

mod counting;
mod cpu_speed;
mod identities;
mod measures;
mod nb201_reference;
mod parsers;
mod regression;
mod spaces;
mod train_cpu;
