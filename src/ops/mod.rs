//! Ops of the runtime: one folder per op (shape rule in mod.rs, CPU code in cpu.rs).
