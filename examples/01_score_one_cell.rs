//! Scores one NAS-Bench-201 cell on the CPU and prints its scores.
//!
//! ```sh
//! cargo run --release --example 01_score_one_cell
//! ```
//!
//! The scoring batch is 64 seeded Gaussian images; pass a CIFAR binary file
//! as the first argument to score on its first 64 images instead.

use dasnas::run::{Images, RunOptions};
use dasnas::runtime::DeviceKind;
use dasnas::space::Space;

fn main() -> dasnas::Result<()> {
    let mut options = RunOptions::new(Space::NB201);
    options.device = DeviceKind::Cpu;
    options.batch = Some(64);
    if let Some(file) = std::env::args().nth(1) {
        options.images = Images::parse(&file);
    }
    let mut run = options.open()?;
    let cell = run.arch(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    )?;
    let results = run.score_repeats(&[&cell])?;
    let s = &results[0][0].scores;
    println!("cell  {cell}");
    println!("WOT   {:?}", s.wot);
    println!("D     {:?}", s.d);
    println!("N_A   {}", s.n_units);
    println!("DAS   {:?}", s.das);
    // The line `dasnas score` writes for it (JSON, with the run stamp).
    println!("{}", run.score_lines(&[&cell], &[])?[0]);
    Ok(())
}
