//! Search spaces: parse, validate, sample, enumerate, and build the network.

pub mod darts;
pub mod nb101;
pub mod nb201;

use crate::error::{Error, Result};
use crate::net::Graph;

/// A search space the crate can build networks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    Nb201,
    Nb101,
    Darts,
}

impl std::str::FromStr for Space {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nb201" => Ok(Space::Nb201),
            "nb101" => Ok(Space::Nb101),
            "darts" => Ok(Space::Darts),
            other => Err(Error::Arg(format!(
                "unknown search space `{other}` (available: nb201, nb101, darts)"
            ))),
        }
    }
}

/// A validated architecture of some space, printable in its canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Nb201(nb201::Nb201Cell),
    /// A cell and the macro network it is built into (its init).
    Nb101(nb101::Nb101Cell, nb101::Nb101Net),
    /// A genotype and the macro network it is built into (C, layers).
    Darts(darts::Genotype, darts::DartsNet),
}

impl Arch {
    pub fn parse(space: Space, s: &str) -> Result<Self> {
        match space {
            Space::Nb201 => Ok(Arch::Nb201(nb201::Nb201Cell::parse(s.trim())?)),
            Space::Nb101 => Ok(Arch::Nb101(
                nb101::Nb101Cell::parse(s.trim())?,
                nb101::Nb101Net::default(),
            )),
            Space::Darts => Ok(Arch::Darts(
                darts::Genotype::parse(s.trim())?,
                darts::DartsNet::default(),
            )),
        }
    }

    /// The same architecture built into a DARTS network with `init_channels`
    /// and `layers` (other spaces are returned unchanged).
    pub fn with_darts_size(self, init_channels: usize, layers: usize) -> Self {
        match self {
            Arch::Darts(g, net) => Arch::Darts(
                g,
                darts::DartsNet {
                    init_channels,
                    layers,
                    ..net
                },
            ),
            other => other,
        }
    }

    /// The same architecture with NB101 weights drawn by `init` (other
    /// spaces are returned unchanged).
    pub fn with_nb101_init(self, init: crate::net::InitScheme) -> Self {
        match self {
            Arch::Nb101(c, net) => Arch::Nb101(c, nb101::Nb101Net { init, ..net }),
            other => other,
        }
    }

    /// The pruned network of this architecture with the space's default macro skeleton.
    pub fn network(&self) -> Result<Graph> {
        match self {
            Arch::Nb201(c) => c.network(&nb201::Nb201Net::default()),
            Arch::Nb101(c, net) => c.network(net),
            Arch::Darts(g, net) => g.network(net),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arch::Nb201(c) => c.fmt(f),
            Arch::Nb101(c, _) => c.fmt(f),
            Arch::Darts(g, _) => g.fmt(f),
        }
    }
}

/// `n` distinct architectures sampled with `seed`.
pub fn sample(space: Space, n: usize, seed: u64) -> Result<Vec<Arch>> {
    match space {
        Space::Nb201 => Ok(nb201::Nb201Cell::sample(n, seed)?
            .into_iter()
            .map(Arch::Nb201)
            .collect()),
        Space::Nb101 => Ok(nb101::Nb101Cell::sample(n, seed)?
            .into_iter()
            .map(|c| Arch::Nb101(c, nb101::Nb101Net::default()))
            .collect()),
        Space::Darts => Ok(darts::Genotype::sample(n, seed)?
            .into_iter()
            .map(|g| Arch::Darts(g, darts::DartsNet::default()))
            .collect()),
    }
}

/// Every architecture of the space, if it is small enough to list.
pub fn enumerate(space: Space) -> Result<Vec<Arch>> {
    match space {
        Space::Nb201 => Ok(nb201::Nb201Cell::enumerate().map(Arch::Nb201).collect()),
        Space::Nb101 => Err(Error::Arg(
            "the NB101 space is not enumerated here (423,624 cells up to isomorphism);              sample it"
                .into(),
        )),
        Space::Darts => Err(Error::Arg(
            "the DARTS space (~10^18 genotypes) cannot be enumerated; sample it".into(),
        )),
    }
}

/// A neighbour of `arch` for evolution: one random change, drawn with
/// `below(m)` (uniform in `0..m`), always a valid architecture different
/// from `arch`.
/// * NB201: one edge gets one of the 4 other ops.
/// * NB101: one upper-triangle bit is flipped or one interior op replaced
///   by another (uniformly among those changes), redrawn until the cell is
///   valid and its pruned spec differs.
/// * DARTS: in the normal or the reduction cell, one edge gets another
///   non-`none` op, or another input state (not its sibling edge's), half
///   and half.
pub fn mutate(arch: &Arch, below: &mut dyn FnMut(u64) -> u64) -> Arch {
    match arch {
        Arch::Nb201(c) => {
            let mut c = *c;
            let e = below(6) as usize;
            let cur = nb201::Nb201Op::ALL
                .iter()
                .position(|&o| o == c.ops[e])
                .unwrap_or(0);
            let k = (cur + 1 + below(4) as usize) % 5;
            c.ops[e] = nb201::Nb201Op::ALL[k];
            Arch::Nb201(c)
        }
        Arch::Nb101(c, net) => {
            let n = c.ops.len();
            let edges = n * (n - 1) / 2;
            let old = c.pruned().ok();
            loop {
                let mut m = c.clone();
                let k = below((edges + n - 2) as u64) as usize;
                if k < edges {
                    // The k-th upper-triangle entry, row-major.
                    let (mut i, mut rest) = (0, k);
                    while rest >= n - 1 - i {
                        rest -= n - 1 - i;
                        i += 1;
                    }
                    let j = i + 1 + rest;
                    m.matrix[i][j] = !m.matrix[i][j];
                } else {
                    let v = 1 + k - edges;
                    let cur = nb101::Nb101Op::INTERIOR
                        .iter()
                        .position(|&o| o == m.ops[v])
                        .unwrap_or(0);
                    m.ops[v] = nb101::Nb101Op::INTERIOR[(cur + 1 + below(2) as usize) % 3];
                }
                if let Ok(p) = m.pruned() {
                    if Some(&p) != old.as_ref() {
                        return Arch::Nb101(m, *net);
                    }
                }
            }
        }
        Arch::Darts(g, net) => {
            let mut g = g.clone();
            let cell = if below(2) == 0 {
                &mut g.normal
            } else {
                &mut g.reduce
            };
            let e = below(cell.edges.len() as u64) as usize;
            let node = e / 2;
            let sibling = cell.edges[e ^ 1].1;
            // Inputs other than the current one and the sibling's.
            let others: Vec<usize> = (0..node + 2)
                .filter(|&j| j != cell.edges[e].1 && j != sibling)
                .collect();
            if below(2) == 0 || others.is_empty() {
                let ops = &darts::DartsOp::ALL[1..];
                let choices: Vec<darts::DartsOp> = ops
                    .iter()
                    .copied()
                    .filter(|&o| o != cell.edges[e].0)
                    .collect();
                cell.edges[e].0 = choices[below(choices.len() as u64) as usize];
            } else {
                cell.edges[e].1 = others[below(others.len() as u64) as usize];
            }
            Arch::Darts(g, *net)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_valid_and_different() {
        let mut state = 0u64;
        let mut below = move |m: u64| {
            state += 1;
            crate::net::rng::bits(77, state) % m
        };
        for space in [Space::Nb201, Space::Nb101, Space::Darts] {
            for a in sample(space, 30, 1).unwrap() {
                let m = mutate(&a, &mut below);
                assert_ne!(m, a);
                // Valid: the printed form parses back to the same thing.
                assert_eq!(Arch::parse(space, &m.to_string()).unwrap(), m, "{space:?}");
            }
        }
    }
}
