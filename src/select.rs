//! Which cells a run scores: one per isomorphism class, a shard's share,
//! cells by official index — all on streams, so that memory does not grow
//! with the number of cells.

use crate::error::{Error, Result};
use crate::space::{Arch, Archs, Space, SpaceOptions};
use std::collections::{HashMap, HashSet};

/// A share of a cell list: the cells at positions `k`, `k + n`, `k + 2n`, …
/// (0 ≤ k < n), so Slurm's 0-based array ids map onto `k` directly and the
/// n shards of a list are disjoint and cover it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub k: usize,
    /// The number of shards.
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    /// Parses `K/N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Arg(format!("--shard `{s}`: {why}"));
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected K/N, e.g. 0/8 (shard K of N, 0 ≤ K < N)"))?;
        let k: usize = k
            .trim()
            .parse()
            .map_err(|_| bad("K is not a whole number"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if n == 0 {
            return Err(bad("N must be at least 1"));
        }
        if k >= n {
            return Err(bad(&format!(
                "K must be below N (shards are numbered 0..{n}, as Slurm array ids)"
            )));
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// How many of a list of `len` items are this shard's (positions
    /// `k, k + n, …`).
    pub fn share(self, len: u64) -> u64 {
        let (k, n) = (self.k as u64, self.n as u64);
        if len > k {
            (len - k).div_ceil(n)
        } else {
            0
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// The items of `items` at this shard's positions (all of them without a
/// shard).
pub fn shard<T: Send + 'static>(
    items: Box<dyn Iterator<Item = Result<T>> + Send>,
    shard: Option<Shard>,
) -> Box<dyn Iterator<Item = Result<T>> + Send> {
    match shard {
        None => items,
        Some(Shard { k, n }) => Box::new(
            items
                .enumerate()
                .filter(move |(i, item)| item.is_err() || i % n == k)
                .map(|(_, item)| item),
        ),
    }
}

/// The first cell of each class of `archs` (equal
/// [`crate::space::Identity::score_key`]) in stream order. Remembers the keys seen (one per class); a stream that
/// is one cell per class already (`already_unique`) passes through.
pub fn unique(archs: Archs, already_unique: bool) -> Archs {
    if already_unique {
        return archs;
    }
    let mut seen: HashSet<String> = HashSet::new();
    Box::new(archs.filter(move |a| match a {
        Ok(a) => seen.insert(a.identity().score_key),
        Err(_) => true,
    }))
}

/// A class of cells scored once: `rep` is scored, and every one of
/// `members` (rep first) gets a line with its scores.
#[derive(Clone, Debug)]
pub struct Class {
    /// The cell that is scored: the class's first cell in the list.
    pub rep: Arch,
    /// Every cell of the class in the list, in list order, `rep` first.
    pub members: Vec<Arch>,
}

/// The classes of `archs`, in order of their first cell. Holds the whole
/// list (it must see every member before the first class is complete).
pub fn classes(archs: Archs) -> Result<Vec<Class>> {
    let mut out: Vec<Class> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for a in archs {
        let a = a?;
        let key = a.identity().score_key;
        match by_key.get(&key) {
            Some(&i) => out[i].members.push(a),
            None => {
                by_key.insert(key, out.len());
                out.push(Class {
                    rep: a.clone(),
                    members: vec![a],
                });
            }
        }
    }
    Ok(out)
}

/// Official indices from `spec`: comma-separated numbers and inclusive
/// ranges `A-B`, e.g. `0,7,100-199`, as inclusive ranges in the order
/// given (never expanded: a range is checked against the space by
/// [`by_indices`] before any of its cells is made).
pub fn parse_indices(spec: &str) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let shown = crate::error::quote(part);
        let num = |s: &str| {
            s.trim().parse::<usize>().map_err(|_| {
                Error::Arg(format!(
                    "--indices: {shown} is not an index or a range A-B of indices"
                ))
            })
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(Error::Arg(format!(
                        "--indices: range {shown} ends before it starts"
                    )));
                }
                out.push((a, b));
            }
            None => {
                let i = num(part)?;
                out.push((i, i));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Arg(format!(
            "--indices {} names no index",
            crate::error::quote(spec)
        )));
    }
    Ok(out)
}

/// The cells of official indices `indices` in `space`, built with `opts`;
/// the first index out of range (or a space without indices) is an error.
pub fn by_index(space: Space, indices: &[usize], opts: &SpaceOptions) -> Result<Vec<Arch>> {
    indices.iter().map(|&i| space.at_index(i, opts)).collect()
}

/// The cells of the inclusive index ranges `ranges` in `space`, built
/// with `opts`, streamed in order. Every range's ends are checked against
/// the space first, so a range past the space is an error before any cell
/// is made, and no range is held in memory.
pub fn by_indices(space: Space, ranges: &[(usize, usize)], opts: &SpaceOptions) -> Result<Archs> {
    for &(a, b) in ranges {
        space.at_index(a, opts)?;
        space.at_index(b, opts)?;
    }
    let opts = opts.clone();
    let ranges = ranges.to_vec();
    Ok(Box::new(
        ranges
            .into_iter()
            .flat_map(|(a, b)| a..=b)
            .map(move |i| space.at_index(i, &opts)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs() {
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard { k: 2, n: 5 });
        for (bad, why) in [
            ("3/2", "K must be below N"),
            ("0/0", "N must be at least 1"),
            ("1", "expected K/N"),
            ("a/2", "K is not"),
            ("-1/2", "K is not"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn shards_partition_a_list() {
        let n = 3;
        let mut all: Vec<usize> = Vec::new();
        for k in 0..n {
            let items: Box<dyn Iterator<Item = Result<usize>> + Send> = Box::new((0..10).map(Ok));
            all.extend(shard(items, Some(Shard { k, n })).map(|r| r.unwrap()));
        }
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn nb201_scores_7093_classes_and_unique_keeps_the_first() {
        // NATS-Bench's 6,466 classes, 523 of them split by N_A (score_key).
        let opts = SpaceOptions::new();
        let classes = classes(Space::NB201.cells(&opts).unwrap()).unwrap();
        assert_eq!(classes.len(), 7_093);
        let keys: HashSet<String> = classes.iter().map(|c| c.rep.identity().key).collect();
        assert_eq!(keys.len(), 6_466);
        assert_eq!(
            classes.iter().map(|c| c.members.len()).sum::<usize>(),
            15_625
        );
        let reps: Vec<Arch> = unique(Space::NB201.cells(&opts).unwrap(), false)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(reps.len(), 7_093);
        assert!(reps.iter().zip(&classes).all(|(a, c)| *a == c.rep));
    }

    #[test]
    fn indices() {
        assert_eq!(parse_indices("3, 5-7").unwrap(), vec![(3, 3), (5, 7)]);
        assert!(parse_indices("7-5").is_err());
        assert!(parse_indices("x").is_err());
        let opts = SpaceOptions::new();
        let cells: Vec<Arch> = by_indices(Space::NB201, &[(3, 3), (5, 7)], &opts)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(cells.len(), 4);
        assert_eq!(cells[1], Space::NB201.at_index(5, &opts).unwrap());
        // Huge ranges are refused from their ends, before any cell is made.
        for spec in ["0-18446744073709551615", "0-99999999999", "0-300000000"] {
            let r = parse_indices(spec).unwrap();
            let e = by_indices(Space::NB201, &r, &opts)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("out of range"), "{spec}: {e}");
        }
        let e = by_index(Space::NB201, &[0, 15_625], &SpaceOptions::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("15625 out of range"), "{e}");
    }
}
