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
    Nb101(nb101::Nb101Cell),
    /// A genotype and the macro network it is built into (C, layers).
    Darts(darts::Genotype, darts::DartsNet),
}

impl Arch {
    pub fn parse(space: Space, s: &str) -> Result<Self> {
        match space {
            Space::Nb201 => Ok(Arch::Nb201(nb201::Nb201Cell::parse(s.trim())?)),
            Space::Nb101 => Ok(Arch::Nb101(nb101::Nb101Cell::parse(s.trim())?)),
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

    /// The pruned network of this architecture with the space's default macro skeleton.
    pub fn network(&self) -> Result<Graph> {
        match self {
            Arch::Nb201(c) => c.network(&nb201::Nb201Net::default()),
            Arch::Nb101(c) => c.network(&nb101::Nb101Net::default()),
            Arch::Darts(g, net) => g.network(net),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arch::Nb201(c) => c.fmt(f),
            Arch::Nb101(c) => c.fmt(f),
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
            .map(Arch::Nb101)
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
