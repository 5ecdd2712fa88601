//! `dasnas enumerate`: stream every cell of a space.

use clap::Args;
use dasnas::error::{Error, Result};
use dasnas::space::{Space, SpaceOptions};
use std::io::Write;
use std::path::PathBuf;

/// What `enumerate` prints per cell.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ListFormat {
    /// The arch string, one per line (what `score --archs` reads).
    Text,
    /// A JSON object per line: `arch`, `key`, and `index` (NB201) or `hash`
    /// (NB101).
    Json,
}

/// The flags of `dasnas enumerate`.
#[derive(Args)]
pub struct EnumerateArgs {
    /// Search space (nb201 or nb101; DARTS is too large to list).
    #[arg(long, default_value = "nb201")]
    space: Space,
    /// One cell per class of equal scores, the first in the space's order
    /// (NB201: 7,093 of 15,625: NATS's 6,466 isomorphism classes, split
    /// where cells differ in N_A; see docs/spaces.md). NB101's
    /// enumeration is one per class already.
    #[arg(long)]
    unique: bool,
    /// Only shard K of N (positions K, K+N, … of the list), 0 ≤ K < N.
    #[arg(long)]
    shard: Option<dasnas::select::Shard>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ListFormat,
    /// Write to this file (replaced) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `dasnas enumerate`.
pub fn run(a: EnumerateArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    if a.space == Space::NB101 {
        let dir = dasnas::space::nb101::enumerate::cache_dir();
        if !dasnas::space::nb101::enumerate::cache_file(&dir).exists() {
            eprintln!(
                "dasnas: listing NB101's 423,624 cells for the first time (about 15 s on 2 \
                 cores); they are cached in {} for the next runs",
                dir.display()
            );
        }
    }
    let total = a.space.cell_counts().map(|(cells, classes)| {
        let n = if a.unique { classes } else { cells };
        a.shard.map_or(n, |s| s.share(n))
    });
    let bar = super::progress::bar(total, "cells");
    let cells = a.space.cells(&SpaceOptions::new())?;
    let cells = if a.unique {
        dasnas::select::unique(cells, a.space.enumerates_classes())
    } else {
        cells
    };
    let cells = dasnas::select::shard(cells, a.shard);
    let (mut out, out_name): (Box<dyn Write>, String) = match &a.out {
        Some(p) => (
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
            )),
            p.display().to_string(),
        ),
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            "stdout".into(),
        ),
    };
    let mut n = 0usize;
    for c in cells {
        let c = c?;
        let line = match a.format {
            ListFormat::Text => c.to_string(),
            ListFormat::Json => dasnas::results::identity_json(&c).to_string(),
        };
        writeln!(out, "{line}").map_err(|e| Error::io(&out_name, e))?;
        n += 1;
        if n.is_multiple_of(1024) {
            bar.set_position(n as u64);
        }
    }
    bar.finish_and_clear();
    out.flush().map_err(|e| Error::io(&out_name, e))?;
    eprintln!(
        "dasnas: {n} {} cells in {:.1} s",
        a.space,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
