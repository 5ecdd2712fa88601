//! `dasnas train`: train one cell, or many under one recipe (a DARTS
//! training bench), with SGD and record their training states (JSON
//! Lines; runs on the CPU).

use super::flags::{RunFlags, TrainFlags};
use clap::Args;
use dasnas::error::{Error, Result};
use dasnas::space::Arch;
use std::path::PathBuf;

/// The flags of `dasnas train`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("cells").required(true).args(["arch", "archs"])))]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunFlags,
    /// The architecture string (one cell; --record is overwritten).
    #[arg(long)]
    arch: Option<String>,
    /// Train every cell of this file with the same recipe: a DARTS training
    /// bench (DTB). Architecture strings, one per line (`-` reads stdin;
    /// blank and `#` lines skipped); all records go to --record, appended.
    #[arg(long)]
    archs: Option<PathBuf>,
    /// Train only shard K of N of the --archs list: positions K, K+N, …;
    /// 0 ≤ K < N. Give each shard its own --record file.
    #[arg(long, conflicts_with = "arch")]
    shard: Option<dasnas::select::Shard>,
    /// Complete the --record file of an --archs run that stopped: after
    /// checking its run stamps, skip the cells whose last-step record is in
    /// it and train the others from step 0 (a half-written last line, and
    /// the records of an unfinished cell at the file's end, are cut off).
    /// Without --resume an --archs run refuses a --record file that is not
    /// empty.
    #[arg(long, conflicts_with = "arch")]
    resume: bool,
    /// SGD steps.
    #[arg(long)]
    steps: usize,
    /// JSON Lines file of the training records, one JSON object per line:
    /// `step` (integer; 0 before training, then the step just taken),
    /// `loss` and `acc` (numbers: cross-entropy and accuracy of that step's
    /// batch, before its update; null at step 0), `lr` (number; null at
    /// step 0), `ms` (number: the step's wall time, scoring excluded;
    /// absent at step 0). Step 0, every --every steps and the last step
    /// also carry the scores on the scoring batch: `wot`, `d`, `das`
    /// (numbers, null when singular), `n_units` (integer), `singular`
    /// (boolean). With --arch the file is overwritten and its step-0 record
    /// names the cell (`arch`, `key`, NB201's `index` / NB101's `hash`) and
    /// carries `run`, the run stamp (as on `score` lines). With --archs
    /// every record carries those fields; cells follow one another, each
    /// in step order; a cell is complete when its record with `step` equal
    /// to --steps is in the file, and a reader takes each cell's records
    /// (grouped by `arch`) from its last `step` 0 record onward.
    #[arg(long)]
    record: PathBuf,
    /// Score every M steps (0: only at step 0 and after the last step).
    #[arg(long, default_value_t = 10)]
    every: usize,
    /// α of DAS_α = D + α·B·ln N_A.
    #[arg(long, default_value_t = dasnas::score::metrics::DEFAULT_ALPHA)]
    alpha: f64,
    #[command(flatten)]
    train: TrainFlags,
}

/// Runs `dasnas train`.
pub fn run(a: TrainArgs) -> Result<()> {
    if let dasnas::runtime::DeviceKind::Cuda(_) = a.run.device {
        return Err(Error::Arg(
            "`train` (per-step records) runs on the CPU; for GPU training use \
             `score --train-steps K --device cuda`"
                .into(),
        ));
    }
    let space = a.run.space;
    // The cells first, so that a bad line is reported before any work.
    let cells = match (&a.arch, &a.archs) {
        (Some(s), _) => a.run.sized_all(vec![Arch::parse(space, s)?])?,
        (None, Some(p)) => {
            if a.steps == 0 {
                return Err(Error::Arg(
                    "--steps 0 with --archs: a bench needs training steps (for scores at \
                     initialisation use `score --archs`)"
                        .into(),
                ));
            }
            let all = a.run.sized_all(dasnas::io::read_archs(space, p)?)?;
            dasnas::select::shard(Box::new(all.into_iter().map(Ok)), a.shard)
                .collect::<Result<Vec<_>>>()?
        }
        (None, None) => return Err(Error::Arg("give --arch or --archs".into())),
    };
    let mut opts = a.run.options()?;
    opts.alpha = a.alpha;
    opts.training = Some(a.train.options(a.steps.max(1))?);
    opts.check()?;
    let batch = opts.scoring_batch()?;
    let setup = opts
        .fast_training(batch.shape.n)?
        .ok_or_else(|| Error::Internal("training options without a training".into()))?;
    let stamp = opts.stamp(&batch, Some(&setup));
    let recipe = dasnas::dtb::Recipe {
        training: &setup,
        steps: a.steps,
        seed: a.run.seed,
        score_every: dasnas::train::ScoreEvery {
            every: a.every,
            scoring: &batch,
            alpha: a.alpha,
        },
    };
    if a.archs.is_some() {
        let t0 = std::time::Instant::now();
        let bench = dasnas::dtb::Bench {
            path: a.record.clone(),
            recipe,
            stamp: &stamp,
            resume: a.resume,
        };
        let plan = dasnas::dtb::plan_bench(&bench, &cells)?;
        if plan.report.dropped_partial_line {
            eprintln!(
                "dasnas: {}: dropped an unfinished last line",
                a.record.display()
            );
        }
        if plan.report.cut_records > 0 {
            eprintln!(
                "dasnas: {}: cut {} record(s) of an unfinished cell off its end",
                a.record.display(),
                plan.report.cut_records
            );
        }
        let report = dasnas::dtb::run_bench(&bench, plan, |c| {
            eprintln!(
                "dasnas train: cell {}/{} {}: {} steps in {:.1} s, final loss {}",
                c.trained,
                c.to_train,
                c.arch,
                c.stats.steps,
                c.seconds,
                number(c.stats.final_loss)
            );
        })?;
        eprintln!(
            "dasnas train: {} cells listed, {} already complete in {}, {} listed twice, {} \
             trained ({} of them again after a stopped run) in {:.1} s",
            report.cells,
            report.already_done,
            a.record.display(),
            report.duplicates,
            report.trained,
            report.restarted,
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let (st, step_s) = dasnas::dtb::train_cell_to_file(&cells[0], &recipe, &stamp, &a.record)?;
    eprintln!(
        "dasnas train: {} steps, {:.3} steps/s (batch {}, {} thread(s), first step excluded), \
         final loss {}, batch accuracy {}",
        st.steps,
        dasnas::dtb::steps_per_second(&step_s),
        setup.batch,
        rayon::current_num_threads(),
        number(st.final_loss),
        number(st.final_accuracy)
    );
    Ok(())
}

/// A statistic for a message: its value, or `none` (no step was taken).
fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_string(), |x| format!("{x:.4}"))
}
