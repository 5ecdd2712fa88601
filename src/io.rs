//! Files of architectures and of results: reading architecture lists, and
//! resuming a JSON Lines results file that a killed run left behind.

use crate::error::{Error, Result};
use crate::space::{Arch, Space};
use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

/// The architectures of `path` (`-`: standard input), one per line; blank
/// lines and `#` comments are skipped, and so is a UTF-8 byte-order mark
/// at the start (editors on Windows write one). A line that does not parse
/// is an error naming the file and line.
pub fn read_archs(space: Space, path: &Path) -> Result<Vec<Arch>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(&line)
        } else {
            &line
        };
        let s = line.trim();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        out.push(
            Arch::parse(space, s)
                .map_err(|e| e.context(format!("{} line {}", path.display(), i + 1)))?,
        );
    }
    Ok(out)
}

/// What a results file already holds.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// The `arch` of every complete line.
    pub done: HashSet<String>,
    /// A partial last line (a run killed mid-write) was cut off, so the
    /// file stays valid JSON Lines.
    pub dropped_partial_line: bool,
    /// Every complete line by its `arch`, when asked for
    /// ([`resume_keeping_lines`]).
    pub lines: std::collections::HashMap<String, serde_json::Value>,
}

/// The architectures already in JSON Lines results file `path` (none when
/// it does not exist); cuts off a partial last line.
pub fn resume(path: &Path) -> Result<Resume> {
    resume_inner(path, false)
}

/// [`resume`], keeping every line too (`score --expand --resume` writes the
/// lines of a class's other members from one already scored).
pub fn resume_keeping_lines(path: &Path) -> Result<Resume> {
    resume_inner(path, true)
}

fn resume_inner(path: &Path, keep: bool) -> Result<Resume> {
    let mut r = Resume::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
        Err(e) => return Err(Error::io(path, e)),
    };
    let complete = match text.rfind('\n') {
        Some(k) => k + 1,
        None => 0,
    };
    if complete < text.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(complete as u64).map_err(|e| Error::io(path, e))?;
        r.dropped_partial_line = true;
    }
    for (i, line) in text[..complete].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            Error::Data(format!("not a JSON score line ({e})")).context(format!(
                "{} line {}",
                path.display(),
                i + 1
            ))
        })?;
        if let Some(a) = v.get("arch").and_then(|a| a.as_str()) {
            r.done.insert(a.to_string());
            if keep {
                r.lines.insert(a.to_string(), v);
            }
        }
    }
    Ok(r)
}
