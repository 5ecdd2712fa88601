//! `dasnas bench`: time the scoring (or the fast training) of sampled
//! cells and print where the time goes.

use super::flags::{print_notices, RunFlags};
use clap::Args;
use dasnas::error::{Error, Result};
use dasnas::space::{self, Arch};

/// The flags of `dasnas bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    run: RunFlags,
    /// Cells to time (after one warm-up cell).
    #[arg(long, default_value_t = 10)]
    cells: usize,
    /// Time fast training instead: each cell trains this many SGD steps
    /// (batch --train-batch, seeded synthetic labelled images: the data do
    /// not change the work) and is then scored; reports training steps/s.
    /// At most 10000.
    #[arg(long, default_value_t = 0)]
    train_steps: usize,
    /// Images per training step of `--train-steps`.
    #[arg(long, default_value_t = 64)]
    train_batch: usize,
    /// Also compute these training-free measures (as `score --measures`)
    /// and report their time by pass (CPU).
    #[arg(long, value_name = "LIST")]
    measures: Option<String>,
}

/// The most SGD steps per cell `bench --train-steps` times.
const MAX_TRAIN_STEPS: usize = 10_000;

/// Runs `dasnas bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    if a.cells == 0 {
        return Err(Error::Arg("--cells must be at least 1".into()));
    }
    if a.train_steps > MAX_TRAIN_STEPS {
        return Err(Error::Arg(format!(
            "--train-steps {}: bench times at most {MAX_TRAIN_STEPS} steps per cell (steps/s \
             is measured well within that)",
            a.train_steps
        )));
    }
    if a.train_steps > 0 && a.train_batch == 0 {
        return Err(Error::Arg("--train-batch must be at least 1".into()));
    }
    if a.train_steps > 0 {
        dasnas::train::budget::check_train_batch("--train-batch", a.train_batch, 3 * 32 * 32)?;
    }
    let mut opts = a.run.options()?;
    if let Some(list) = &a.measures {
        opts.measures =
            dasnas::measures::MeasureSet::parse(list).map_err(|e| e.context("--measures"))?;
    }
    let mut run = opts.open()?;
    print_notices(run.notices());
    let scorer = run.scorer();
    let space_name = a.run.space.name();
    let sample = |n: usize| -> Result<Vec<Arch>> {
        a.run.sized_all(space::sample(a.run.space, n, a.run.seed)?)
    };
    if a.train_steps > 0 {
        let archs = sample(a.cells)?;
        let r = dasnas::bench::bench_training(
            scorer,
            &archs,
            a.run.seed,
            a.train_steps,
            a.train_batch,
        )?;
        print!("{r}");
        println!("{}", r.to_json());
        return Ok(());
    }
    if let Some(g) = scorer.gpu() {
        let warm = g.lanes() * dasnas::exec::cuda::executor::CHUNK;
        let info = g.device().info().clone();
        eprintln!(
            "dasnas bench: {space_name}, {} cells + {warm} warm-up, batch {}, device cuda:{} ({}, sm_{}), {} lanes",
            a.cells,
            a.run.batch,
            info.ordinal,
            info.name,
            info.arch(),
            g.lanes()
        );
        let archs = sample(a.cells + warm)?;
        let r = dasnas::bench::bench_cuda(space_name, g, &archs, a.run.seed)?;
        print!("{r}");
        println!("{}", r.to_json());
        return Ok(());
    }
    eprintln!(
        "dasnas bench: {space_name}, {} cells + warm-up, batch {}, {} thread(s), {} cell(s) in flight, {} convs, device cpu",
        a.cells,
        a.run.batch,
        scorer.threads(),
        scorer.cells_in_flight(),
        scorer.conv().name(),
    );
    let archs = sample(a.cells + 1)?;
    let r = dasnas::bench::bench_cpu(space_name, scorer, &archs, a.run.seed)?;
    print!("{r}");
    println!("{}", r.to_json());
    Ok(())
}
