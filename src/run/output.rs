//! Writing a run's cells as result lines: to a JSON Lines file that a
//! stopped run resumes ([`ResultFile`]) or to any writer ([`WriterLines`]),
//! block by block, each block written and flushed before the next starts,
//! so a killed run loses at most one block and a resumed run scores only
//! what is missing. The cells can be one per isomorphism class (`unique`),
//! or every cell with its class's scores (`expand`), and a shard of the
//! list.

use super::Run;
use crate::error::{Error, Result};
use crate::io::Resume;
use crate::results::{check_stamps, copied_line, repeated_line, RunStamp};
use crate::select::{Class, Shard};
use crate::space::{Arch, Archs};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where result lines go, a block at a time.
pub trait LineSink {
    /// Writes `lines`, one JSON object per line, and flushes them.
    fn write_block(&mut self, lines: &[Value]) -> Result<()>;
}

/// Result lines on any writer (stdout, a buffer), flushed per block.
pub struct WriterLines<W: Write> {
    writer: W,
    name: String,
}

impl<W: Write> WriterLines<W> {
    /// Lines on `writer`, called `name` in messages (`stdout`).
    pub fn new(writer: W, name: impl Into<String>) -> Self {
        WriterLines {
            writer,
            name: name.into(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

impl<W: Write> LineSink for WriterLines<W> {
    fn write_block(&mut self, lines: &[Value]) -> Result<()> {
        write_lines(&mut self.writer, lines).map_err(|e| Error::io(&self.name, e))
    }
}

fn write_lines(w: &mut impl Write, lines: &[Value]) -> std::io::Result<()> {
    for line in lines {
        writeln!(w, "{line}")?;
    }
    w.flush()
}

/// Appends `lines` to the result file `path` (creating it) and flushes
/// them: one block of a caller that keeps its own loop (the Python
/// package's `score_many(out=…)`), written as `dasnas score` writes it.
pub fn append_lines(path: &Path, lines: &[Value]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    write_lines(&mut file, lines).map_err(|e| Error::io(path, e))
}

/// How a result file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resuming {
    /// Append to the file as it is (refused when it holds another run's
    /// lines).
    No,
    /// Check its run stamps against this run's, cut a half-written last
    /// line, and skip the cells it already has.
    Yes,
    /// As `Yes`, keeping its lines too (an `expand` run copies a class's
    /// lines from a member already scored).
    KeepingLines,
}

/// A JSON Lines result file a run appends to.
pub struct ResultFile {
    path: PathBuf,
    file: std::fs::File,
    resumed: Resume,
}

impl ResultFile {
    /// Opens `path` for appending (creating it), resuming as `resuming`
    /// says against `stamp`.
    pub fn open(path: &Path, stamp: &RunStamp, resuming: Resuming) -> Result<ResultFile> {
        let resumed = match resuming {
            Resuming::No => {
                crate::results::check_append(path, stamp)?;
                Resume::default()
            }
            Resuming::Yes => {
                check_stamps(path, stamp)?;
                crate::io::resume(path)?
            }
            Resuming::KeepingLines => {
                check_stamps(path, stamp)?;
                crate::io::resume_keeping_lines(path)?
            }
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(ResultFile {
            path: path.to_path_buf(),
            file,
            resumed,
        })
    }

    /// What the file held when it was opened (empty without resuming).
    pub fn resumed(&self) -> &Resume {
        &self.resumed
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LineSink for ResultFile {
    fn write_block(&mut self, lines: &[Value]) -> Result<()> {
        write_lines(&mut self.file, lines).map_err(|e| Error::io(&self.path, e))
    }
}

/// Which cells of a list a run scores and how many lines each gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// One cell per isomorphism class (the first in list order).
    pub unique: bool,
    /// Every cell, each with its class's scores (the class scored once,
    /// `scored_as` naming the member scored); holds the list in memory.
    pub expand: bool,
    /// Only this shard of the list (after grouping).
    pub shard: Option<Shard>,
}

/// What a run wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Cells scored.
    pub scored: usize,
    /// Lines written (a class's members each get one with `expand`).
    pub lines: usize,
    /// Lines copied from a class member already in the file.
    pub copied: usize,
}

/// Scores the cells of `cells` that `done` does not hold (as `selection`
/// groups them) and writes their lines (`das@A` for each of
/// `extra_alphas`) to `sink`, a block of [`Scorer::block_size`] cells at
/// a time; `lines` are the lines already in the output (an `expand` run
/// copies a class's lines from a member there instead of scoring it
/// again). `on_block` hears how many cells each block scored. An error in
/// the cell stream stops the run after the blocks before it.
///
/// [`Scorer::block_size`]: crate::Scorer::block_size
pub fn score_cells(
    run: &mut Run,
    cells: Archs,
    selection: Selection,
    extra_alphas: &[f64],
    resumed: &Resume,
    sink: &mut dyn LineSink,
    mut on_block: impl FnMut(usize),
) -> Result<Written> {
    let done = &resumed.done;
    let mut written = Written::default();
    let is_done = |c: &Arch| done.contains(&c.to_string());
    // Units of work: a class (scored once, a line per member) with
    // `expand`, else single cells (one per class with `unique`).
    let units: Box<dyn Iterator<Item = Result<Class>> + Send> = if selection.expand {
        let all = Box::new(crate::select::classes(cells)?.into_iter().map(Ok));
        let mut classes: Vec<Class> =
            crate::select::shard(all, selection.shard).collect::<Result<_>>()?;
        // A class with a member already written (a `unique` run being
        // expanded, or a killed `expand` run) is not scored again: its
        // other members' lines are copied from that member's.
        let mut copies = Vec::new();
        classes.retain(|c| {
            let Some(source) = c
                .members
                .iter()
                .find_map(|m| resumed.lines.get(&m.to_string()))
            else {
                return true;
            };
            for m in c.members.iter().filter(|m| !is_done(m)) {
                copies.push(copied_line(source, m));
            }
            false
        });
        sink.write_block(&copies)?;
        written.copied = copies.len();
        written.lines = copies.len();
        Box::new(classes.into_iter().map(Ok))
    } else {
        let space_classes = run.space().enumerates_classes();
        let cells = if selection.unique {
            crate::select::unique(cells, space_classes)
        } else {
            cells
        };
        Box::new(crate::select::shard(cells, selection.shard).map(|c| {
            c.map(|rep| Class {
                rep,
                members: Vec::new(),
            })
        }))
    };
    let mut units = units.filter(|u| match u {
        Ok(u) if u.members.is_empty() => !is_done(&u.rep),
        Ok(u) => !u.members.iter().all(is_done),
        Err(_) => true,
    });
    loop {
        let size = run.scorer_ref().block_size();
        let mut block = Vec::with_capacity(size);
        for u in units.by_ref().take(size) {
            block.push(u?);
        }
        if block.is_empty() {
            break;
        }
        let reps: Vec<&Arch> = block.iter().map(|u| &u.rep).collect();
        let results = run.score_repeats(&reps)?;
        let mut lines = Vec::new();
        for (unit, r) in block.iter().zip(results) {
            let members: Vec<(&Arch, Option<&Arch>)> = if unit.members.is_empty() {
                vec![(&unit.rep, None)]
            } else {
                unit.members
                    .iter()
                    .filter(|m| !is_done(m))
                    .map(|m| (m, (*m != unit.rep).then_some(&unit.rep)))
                    .collect()
            };
            for (arch, scored_as) in members {
                lines.push(repeated_line(
                    arch,
                    &r,
                    extra_alphas,
                    run.stamp(),
                    scored_as,
                ));
            }
        }
        sink.write_block(&lines)?;
        written.scored += block.len();
        written.lines += lines.len();
        on_block(block.len());
    }
    Ok(written)
}
