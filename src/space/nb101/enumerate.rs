//! Every NB101 cell once: NASBench's `generate_graphs.py`, one spec per
//! module hash, cached on disk.
//!
//! `generate_graphs.py` walks vertex counts 2..=7, every upper-triangular
//! matrix of that size in bit order, keeps those that are full DAGs (every
//! vertex but the output has an out-edge, every vertex but the input an
//! in-edge, so nothing prunes away) with at most 9 edges, and labels the
//! interior vertices in every way (`itertools.product`, last vertex
//! fastest); the first spec of each module hash is the class's
//! representative. There are 423,624 classes, NB101's count.
//!
//! The walk hashes every labelled graph, so it takes a while (measured in
//! docs/clusters.md, "Whole spaces"); [`cells`] runs it once and keeps the result in a cache file,
//! one `hash<TAB>cell` line per class after a header, written to a temporary
//! name and renamed so a killed run leaves no half file.

use super::hash::module_hash;
use super::{Nb101Cell, Nb101Op, MAX_EDGES, MAX_VERTICES};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::HashSet;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Distinct NB101 cells (module hashes), NASBench's count.
pub const NUM_UNIQUE: usize = 423_624;

/// First line of the cache file; a file without it is rebuilt.
const HEADER: &str = "# dasnas nb101 unique specs v1: module hash, cell (generate_graphs.py order)";

/// The full DAGs of `n` vertices with at most [`MAX_EDGES`] edges, in
/// `generate_graphs.py`'s bit order (bit `y(y−1)/2 + x` is the edge x→y).
fn full_dags(n: usize) -> Vec<Vec<Vec<bool>>> {
    let pairs = n * (n - 1) / 2;
    (0u32..1 << pairs)
        .filter(|bits| bits.count_ones() as usize <= MAX_EDGES)
        .filter_map(|bits| {
            let mut m = vec![vec![false; n]; n];
            for (y, row_of_y) in (0..n).map(|y| (y, y * y.saturating_sub(1) / 2)) {
                for (x, row) in m.iter_mut().enumerate().take(y) {
                    row[y] = (bits >> (row_of_y + x)) & 1 == 1;
                }
            }
            let rows_ok = (0..n - 1).all(|i| m[i].iter().any(|&b| b));
            let cols_ok = (1..n).all(|j| (0..n).any(|i| m[i][j]));
            (rows_ok && cols_ok).then_some(m)
        })
        .collect()
}

/// The interior labelings of `n` vertices in `itertools.product` order.
fn labelings(n: usize) -> Vec<Vec<i8>> {
    let interior = n - 2;
    (0..3usize.pow(interior as u32))
        .map(|mut k| {
            let mut l = vec![0i8; n];
            l[0] = -1;
            l[n - 1] = -2;
            for v in (1..=interior).rev() {
                l[v] = (k % 3) as i8;
                k /= 3;
            }
            l
        })
        .collect()
}

fn cell_of(matrix: &[Vec<bool>], labels: &[i8]) -> Nb101Cell {
    let ops = labels
        .iter()
        .map(|&l| match l {
            -1 => Nb101Op::Input,
            -2 => Nb101Op::Output,
            k => Nb101Op::INTERIOR[k as usize],
        })
        .collect();
    Nb101Cell {
        matrix: matrix.to_vec(),
        ops,
    }
}

/// Runs the walk of `generate_graphs.py`, calling `emit(hash, cell)` for the
/// first spec of each module hash, in its order. Matrices are hashed in
/// parallel, a chunk at a time, and deduplicated in order, so the output is
/// the same on any thread count.
pub fn generate(mut emit: impl FnMut(&str, &Nb101Cell) -> Result<()>) -> Result<usize> {
    let mut seen: HashSet<[u8; 16]> = HashSet::with_capacity(NUM_UNIQUE);
    let mut count = 0usize;
    for n in 2..=MAX_VERTICES {
        let dags = full_dags(n);
        let labels = labelings(n);
        for chunk in dags.chunks(256) {
            let hashed: Vec<Vec<String>> = chunk
                .par_iter()
                .map(|m| labels.iter().map(|l| module_hash(m, l)).collect())
                .collect();
            for (m, hashes) in chunk.iter().zip(hashed) {
                for (l, h) in labels.iter().zip(hashes) {
                    if seen.insert(key16(&h)) {
                        emit(&h, &cell_of(m, l))?;
                        count += 1;
                    }
                }
            }
        }
    }
    Ok(count)
}

/// The 32 hex digits as 16 bytes (a set of 423,624 of these stays small).
fn key16(hex: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (k, pair) in hex.as_bytes().chunks(2).enumerate().take(16) {
        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        out[k] = d(pair[0]) << 4 | d(pair[1]);
    }
    out
}

/// Where the enumeration is cached: `$DASNAS_CACHE`, else
/// `$XDG_CACHE_HOME/dasnas`, else `~/.cache/dasnas`, else the system's
/// temporary folder.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("DASNAS_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("dasnas");
    }
    if let Some(h) = env("HOME") {
        return PathBuf::from(h).join(".cache").join("dasnas");
    }
    std::env::temp_dir().join("dasnas")
}

/// The cache file of the enumeration in `dir`.
pub fn cache_file(dir: &Path) -> PathBuf {
    dir.join("nb101-unique-v1.tsv")
}

/// Builds the cache file in `dir` unless it is already there; returns its
/// path and whether it was built now.
pub fn ensure_cache(dir: &Path) -> Result<(PathBuf, bool)> {
    let path = cache_file(dir);
    if let Ok(f) = std::fs::File::open(&path) {
        let mut first = String::new();
        std::io::BufReader::new(f)
            .read_line(&mut first)
            .map_err(|e| Error::io(&path, e))?;
        if first.trim_end() == HEADER {
            return Ok((path, false));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!("nb101-unique-v1.tsv.{}.tmp", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = BufWriter::new(file);
    writeln!(w, "{HEADER}").map_err(|e| Error::io(&tmp, e))?;
    let count = generate(|h, c| writeln!(w, "{h}\t{c}").map_err(|e| Error::io(&tmp, e)))?;
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(w);
    if count != NUM_UNIQUE {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Internal(format!(
            "NB101 enumeration found {count} classes, expected {NUM_UNIQUE}"
        )));
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok((path, true))
}

/// Streams the cached enumeration of `dir` (building it first if needed):
/// every class's representative cell with its module hash.
pub fn cells(dir: &Path) -> Result<impl Iterator<Item = Result<(String, Nb101Cell)>> + Send> {
    let (path, _) = ensure_cache(dir)?;
    let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut count = 0usize;
    let mut lines = std::io::BufReader::new(f).lines().enumerate().skip(1);
    let mut finished = false;
    Ok(std::iter::from_fn(move || {
        if finished {
            return None;
        }
        let at = |i: usize| format!("{} line {}", path.display(), i + 1);
        match lines.next() {
            None => {
                finished = true;
                (count != NUM_UNIQUE).then(|| {
                    Err(Error::Data(format!(
                        "{}: {count} cells, expected {NUM_UNIQUE}; delete it to rebuild it",
                        path.display()
                    )))
                })
            }
            Some((i, Err(e))) => {
                finished = true;
                Some(Err(Error::io(at(i), e)))
            }
            Some((i, Ok(line))) => {
                count += 1;
                let parsed = line
                    .split_once('\t')
                    .ok_or_else(|| Error::Data("expected `hash<TAB>cell`".into()))
                    .and_then(|(h, c)| Ok((h.to_string(), Nb101Cell::parse(c)?)));
                if parsed.is_err() {
                    finished = true;
                }
                Some(parsed.map_err(|e| e.context(at(i))))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_vertex_counts_match_generate_graphs() {
        // Full DAGs of 2 and 3 vertices: 0→1; and 0→1→2 with or without 0→2.
        assert_eq!(full_dags(2).len(), 1);
        assert_eq!(full_dags(3).len(), 2);
        assert_eq!(labelings(4).len(), 9);
        assert_eq!(labelings(4)[1], vec![-1, 0, 1, -2]);
    }

    #[test]
    fn hex_keys_round_trip() {
        assert_eq!(
            key16("00005c142e6f48ac74fdcf73e3439874")[..3],
            [0x00, 0x00, 0x5c]
        );
    }
}
