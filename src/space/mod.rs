//! Search spaces: parse, validate, sample, enumerate, mutate, and build the
//! network.
//!
//! Each space lives in its own file and implements [`SearchSpace`] with its
//! own cell type (what an architecture string denotes) and network type (the
//! macro skeleton's hyper-parameters, set through [`SpaceOptions`]). The rest
//! of the crate sees spaces only through the [`Space`] handle and the
//! [`Arch`] value, which erase those types, so that nothing outside this
//! module matches over spaces.
//!
//! Adding a space: write `foo.rs` with a unit struct implementing
//! [`SearchSpace`], add `pub mod foo;` below and one line to `REGISTRY`.
//! `--space foo`, `--space-option KEY=VALUE` and every command then work
//! with it.

pub mod darts;
pub mod nb101;
pub mod nb201;

use crate::error::{Error, Result};
use crate::net::Graph;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Every space the crate knows, one line per space, in the order the
/// "unknown search space" error lists them. [`Space::from_str`] looks names
/// up here; the associated constants of [`Space`] are conveniences only.
///
/// [`Space::from_str`]: std::str::FromStr::from_str
const REGISTRY: &[Space] = &[
    Space(&nb201::Nb201),
    Space(&nb101::Nb101),
    Space(&darts::Darts),
];

/// A search space: its architecture strings, how to draw and change cells,
/// and the network a cell is built into.
///
/// Implemented once per space on a unit struct (see [`nb201::Nb201`]); the
/// crate uses it through [`Space`] and [`Arch`].
pub trait SearchSpace: Send + Sync + 'static {
    /// A cell of the space, as its string denotes it. `Display` prints the
    /// canonical string, which [`SearchSpace::parse`] reads back to an equal
    /// cell.
    type Cell: Clone + fmt::Debug + fmt::Display + Eq + Hash + Send + Sync + 'static;
    /// The macro network a cell is built into: the space's options resolved
    /// (see [`SearchSpace::net`]).
    type Net: Clone + fmt::Debug + Eq + Hash + Send + Sync + 'static;

    /// The name `--space` and [`Space::from_str`] take (`"nb201"`).
    ///
    /// [`Space::from_str`]: std::str::FromStr::from_str
    fn name(&self) -> &'static str;

    /// The options the space takes. Keys not listed here are rejected
    /// before [`SearchSpace::net`] sees them.
    fn options(&self) -> &'static [SpaceOption] {
        &[]
    }

    /// The network for `opts` (whose keys are all among
    /// [`SearchSpace::options`]); unset options take their defaults, and a
    /// bad value is an `Err` naming its key.
    fn net(&self, opts: &SpaceOptions) -> Result<Self::Net>;

    /// Height and width of the network's input images.
    fn image_size(&self, net: &Self::Net) -> usize;

    /// Parses a cell string strictly; errors are [`Error::Arch`] with the
    /// byte position of the offending token.
    fn parse(&self, s: &str) -> Result<Self::Cell>;

    /// Checks a cell built in code (not parsed). By default: its canonical
    /// string must parse back to the same cell, which holds exactly when the
    /// cell is one [`SearchSpace::parse`] accepts.
    fn validate(&self, cell: &Self::Cell) -> Result<()> {
        let s = cell.to_string();
        if self.parse(&s)? == *cell {
            Ok(())
        } else {
            Err(Error::Arch {
                arch: s,
                pos: 0,
                msg: format!("not a canonical {} cell", self.name()),
            })
        }
    }

    /// `n` distinct cells drawn with `seed`, the same on every machine.
    fn sample(&self, n: usize, seed: u64) -> Result<Vec<Self::Cell>>;

    /// Every cell, in a fixed order, streamed (an item fails only when a
    /// cache file cannot be read); an `Err` saying why for spaces too large
    /// to list.
    fn enumerate(&self) -> Result<Cells<Self::Cell>>;

    /// True when [`SearchSpace::enumerate`] yields one cell per class of
    /// [`Identity::key`] already (NB101's enumeration is of unique specs).
    fn enumerates_classes(&self) -> bool {
        false
    }

    /// How many cells [`SearchSpace::enumerate`] yields, and how many
    /// classes of equal scores they fall into (a progress bar's totals);
    /// `None` for a space that cannot be enumerated.
    fn cell_counts(&self) -> Option<(u64, u64)> {
        None
    }

    /// How the cell is known outside dasnas: its class key (cells with
    /// equal keys build the same network up to isomorphism) and official
    /// index. By default the key is the canonical string and there is no
    /// index.
    fn identity(&self, cell: &Self::Cell) -> Identity {
        let key = cell.to_string();
        Identity {
            score_key: key.clone(),
            key,
            index: None,
        }
    }

    /// The name the space's own tools give [`Identity::key`] (NB101:
    /// `hash`); result lines carry the key under this name too.
    fn key_name(&self) -> Option<&'static str> {
        None
    }

    /// The combination rule of D and N_A that ranks this space's cells best
    /// in network `net` (`search --metric auto`), as `dasnas fit` names it:
    /// a rule chosen by cross-validated Kendall τ on the space's ground
    /// truth where it beats WOT by more than its paired standard deviation
    /// in that network (docs/results.md, "Does DAS beat WOT?", has the measurements); WOT otherwise,
    /// and for networks not measured.
    fn default_rule(&self, net: &Self::Net) -> &'static str {
        let _ = net;
        "wot"
    }

    /// The cell with official index `index`, for spaces that number their
    /// cells (NB201); an `Err` otherwise or when out of range.
    fn at_index(&self, index: usize) -> Result<Self::Cell> {
        Err(Error::Arg(format!(
            "the {} space has no official cell index (cell {index} asked for)",
            self.name()
        )))
    }

    /// A neighbour of `cell` for evolution: one random change drawn with
    /// `below(m)` (uniform in `0..m`), always a valid cell different from
    /// `cell`.
    fn mutate(&self, cell: &Self::Cell, below: &mut dyn FnMut(u64) -> u64) -> Self::Cell;

    /// The pruned network of `cell` built with `net`.
    fn network(&self, cell: &Self::Cell, net: &Self::Net) -> Result<Graph>;
}

/// A stream of cells, as [`SearchSpace::enumerate`] gives them.
pub type Cells<C> = Box<dyn Iterator<Item = Result<C>> + Send>;

/// A stream of architectures, as [`Space::cells`] gives them.
pub type Archs = Cells<Arch>;

/// How a cell is known outside dasnas (see [`SearchSpace::identity`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The isomorphism-class key: NB201's `unique_str`, NB101's module
    /// hash, DARTS's canonical genotype.
    pub key: String,
    /// Equal for cells whose scores are equal in distribution (the same
    /// network up to isomorphism and weight draws): the key, refined where
    /// the key merges cells the scores tell apart. NB201's `unique_str`
    /// treats an op fed only by zeros as zero, but its units still count
    /// in N_A (and so in K_H), so NB201's is the key and N_A.
    pub score_key: String,
    /// The official index (NB201's `arch_index`).
    pub index: Option<usize>,
}

/// One option a space takes, for error messages and help texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceOption {
    /// The key of `key=value` (`"init_channels"`).
    pub key: &'static str,
    /// The value used when the option is not given.
    pub default: &'static str,
    /// What it sets and which values it takes.
    pub help: &'static str,
}

/// `key=value` options of a space: plain strings, so that a command line or
/// a Python `**space_options` can pass them through unchanged; the space
/// parses and checks them (see [`Space::check_options`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpaceOptions(BTreeMap<String, String>);

impl SpaceOptions {
    /// No options: every option at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// These options with `key` set to `value` (replacing an earlier value).
    pub fn with(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.0.insert(key.into(), value.to_string());
        self
    }

    /// Sets `key`; an `Err` if it is already set, so that one option given
    /// two ways (a flag and `--space-option`) is not silently dropped.
    pub fn insert(&mut self, key: impl Into<String>, value: impl ToString) -> Result<()> {
        let key = key.into();
        if self.0.contains_key(&key) {
            return Err(Error::Arg(format!("space option `{key}` given twice")));
        }
        self.0.insert(key, value.to_string());
        Ok(())
    }

    /// Sets the option of one `key=value` string (see [`SpaceOptions::insert`]).
    pub fn insert_pair(&mut self, pair: &str) -> Result<()> {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => self.insert(k.trim(), v.trim()),
            _ => Err(Error::Arg(format!(
                "space option `{pair}` is not of the form key=value"
            ))),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The options set, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key` parsed as a `T`, or `default` when unset; a value
    /// that does not parse is an `Err` naming the key.
    pub fn value<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| {
                Error::Arg(format!(
                    "space option `{key}` = {}: {e}",
                    crate::error::quote(v)
                ))
            }),
        }
    }

    /// The value of `key` as a count of at least 1, or `default` when unset.
    pub fn count(&self, key: &str, default: usize) -> Result<usize> {
        match self.value(key, default)? {
            0 => Err(Error::Arg(format!(
                "space option `{key}` must be at least 1"
            ))),
            n if n > MAX_COUNT => Err(Error::Arg(format!(
                "space option `{key}` {n} is too large (at most {MAX_COUNT}; the network \
                 builder refuses networks that cannot fit in memory well before that)"
            ))),
            n => Ok(n),
        }
    }
}

/// The largest count a space option takes (channels, cells): far above
/// any network that fits in memory, low enough that no size computed from
/// it overflows.
pub const MAX_COUNT: usize = 1 << 20;

/// `key=value` pairs separated by commas (`init_channels=36,layers=20`);
/// the empty string gives no options.
impl std::str::FromStr for SpaceOptions {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut opts = SpaceOptions::new();
        for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
            opts.insert_pair(pair)?;
        }
        Ok(opts)
    }
}

impl<K: Into<String>, V: ToString> FromIterator<(K, V)> for SpaceOptions {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter()
            .fold(SpaceOptions::new(), |o, (k, v)| o.with(k, v))
    }
}

/// [`SearchSpace`] with its cell and network types erased, so that one
/// handle type ([`Space`]) covers every space. Implemented for every
/// `SearchSpace`; the `&'static self` receivers let the [`Arch`] values it
/// makes point back at their space.
trait AnySpace: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn options(&self) -> &'static [SpaceOption];
    fn image_size(&self, opts: &SpaceOptions) -> Result<usize>;
    fn check_options(&self, opts: &SpaceOptions) -> Result<()>;
    fn parse(&'static self, s: &str) -> Result<Arch>;
    fn sample(&'static self, n: usize, seed: u64) -> Result<Vec<Arch>>;
    fn cells(&'static self, opts: &SpaceOptions) -> Result<Archs>;
    fn enumerates_classes(&self) -> bool;
    fn cell_counts(&self) -> Option<(u64, u64)>;
    fn key_name(&self) -> Option<&'static str>;
    fn default_rule(&self, opts: &SpaceOptions) -> Result<&'static str>;
    fn at_index(&'static self, index: usize, opts: &SpaceOptions) -> Result<Arch>;
}

/// The network of `opts` in `space`, after rejecting keys it does not take.
fn resolve<S: SearchSpace>(space: &S, opts: &SpaceOptions) -> Result<S::Net> {
    let known = space.options();
    if let Some((key, _)) = opts
        .iter()
        .find(|(k, _)| !known.iter().any(|o| o.key == *k))
    {
        let takes = if known.is_empty() {
            "it takes none".to_string()
        } else {
            let keys: Vec<&str> = known.iter().map(|o| o.key).collect();
            format!("it takes {}", keys.join(", "))
        };
        return Err(Error::Arg(format!(
            "space `{}` has no option `{key}` ({takes})",
            space.name()
        )));
    }
    space.net(opts)
}

impl<S: SearchSpace> AnySpace for S {
    fn name(&self) -> &'static str {
        SearchSpace::name(self)
    }
    fn options(&self) -> &'static [SpaceOption] {
        SearchSpace::options(self)
    }
    fn image_size(&self, opts: &SpaceOptions) -> Result<usize> {
        Ok(SearchSpace::image_size(self, &resolve(self, opts)?))
    }
    fn check_options(&self, opts: &SpaceOptions) -> Result<()> {
        resolve(self, opts).map(drop)
    }
    fn parse(&'static self, s: &str) -> Result<Arch> {
        Ok(Typed::arch(
            self,
            SearchSpace::parse(self, s)?,
            default_net(self)?,
        ))
    }
    fn sample(&'static self, n: usize, seed: u64) -> Result<Vec<Arch>> {
        let net = default_net(self)?;
        let cells = SearchSpace::sample(self, n, seed)?;
        Ok(cells
            .into_iter()
            .map(|c| Typed::arch(self, c, net.clone()))
            .collect())
    }
    fn cells(&'static self, opts: &SpaceOptions) -> Result<Archs> {
        let net = resolve(self, opts)?;
        let cells = SearchSpace::enumerate(self)?;
        Ok(Box::new(cells.map(move |c| {
            c.map(|c| Typed::arch(self, c, net.clone()))
        })))
    }
    fn enumerates_classes(&self) -> bool {
        SearchSpace::enumerates_classes(self)
    }
    fn cell_counts(&self) -> Option<(u64, u64)> {
        SearchSpace::cell_counts(self)
    }
    fn key_name(&self) -> Option<&'static str> {
        SearchSpace::key_name(self)
    }
    fn default_rule(&self, opts: &SpaceOptions) -> Result<&'static str> {
        Ok(SearchSpace::default_rule(self, &resolve(self, opts)?))
    }
    fn at_index(&'static self, index: usize, opts: &SpaceOptions) -> Result<Arch> {
        let cell = SearchSpace::at_index(self, index)?;
        Ok(Typed::arch(self, cell, resolve(self, opts)?))
    }
}

fn default_net<S: SearchSpace>(space: &S) -> Result<S::Net> {
    space.net(&SpaceOptions::new())
}

/// A search space, by name: `"nb201"`, `"nb101"` or `"darts"` (see
/// [`Space::all`]). Cheap to copy; compares and hashes by name; both
/// `Display` and `Debug` print the name.
#[derive(Clone, Copy)]
pub struct Space(&'static dyn AnySpace);

impl Space {
    /// NAS-Bench-201 ([`nb201`]).
    pub const NB201: Space = Space(&nb201::Nb201);
    /// NAS-Bench-101 ([`nb101`]).
    pub const NB101: Space = Space(&nb101::Nb101);
    /// The DARTS space ([`darts`]).
    pub const DARTS: Space = Space(&darts::Darts);

    /// Every registered space.
    pub fn all() -> &'static [Space] {
        REGISTRY
    }

    /// The space's name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The options the space takes ([`SpaceOptions`] keys).
    pub fn options(self) -> &'static [SpaceOption] {
        self.0.options()
    }

    /// An `Err` naming the first key the space does not take or whose value
    /// is bad.
    pub fn check_options(self, opts: &SpaceOptions) -> Result<()> {
        self.0.check_options(opts)
    }

    /// Height and width of the input images of the space's network under
    /// `opts`.
    pub fn image_size(self, opts: &SpaceOptions) -> Result<usize> {
        self.0.image_size(opts)
    }

    /// Parses an architecture string (surrounding whitespace ignored) into
    /// an architecture with default options.
    pub fn parse(self, s: &str) -> Result<Arch> {
        self.0.parse(s.trim())
    }

    /// `n` distinct architectures sampled with `seed`, with default options.
    pub fn sample(self, n: usize, seed: u64) -> Result<Vec<Arch>> {
        self.0.sample(n, seed)
    }

    /// Every architecture of the space with default options, if it is small
    /// enough to list (collected from [`Space::cells`]).
    pub fn enumerate(self) -> Result<Vec<Arch>> {
        self.0.cells(&SpaceOptions::new())?.collect()
    }

    /// Every architecture of the space built with `opts`, streamed in the
    /// space's fixed order (NB201: official index order; NB101: one spec per
    /// module hash, in NASBench's enumeration order, from the on-disk cache
    /// it builds the first time); an `Err` for spaces too large to list.
    pub fn cells(self, opts: &SpaceOptions) -> Result<Archs> {
        self.0.cells(opts)
    }

    /// True when [`Space::cells`] yields one cell per class already.
    pub fn enumerates_classes(self) -> bool {
        self.0.enumerates_classes()
    }

    /// How many cells [`Space::cells`] yields, and how many classes of
    /// equal scores they fall into (`None`: the space cannot be listed).
    pub fn cell_counts(self) -> Option<(u64, u64)> {
        self.0.cell_counts()
    }

    /// The name the space's own tools give the class key (NB101: `hash`).
    pub fn key_name(self) -> Option<&'static str> {
        self.0.key_name()
    }

    /// The space's documented default combination rule in the network of
    /// `opts` ([`SearchSpace::default_rule`]).
    pub fn default_rule(self, opts: &SpaceOptions) -> Result<&'static str> {
        self.0.default_rule(opts)
    }

    /// The architecture with official index `index`, built with `opts`
    /// (NB201; an `Err` for spaces without an index or out of range).
    pub fn at_index(self, index: usize, opts: &SpaceOptions) -> Result<Arch> {
        self.0.at_index(index, opts)
    }
}

impl std::str::FromStr for Space {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        REGISTRY
            .iter()
            .copied()
            .find(|sp| sp.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = REGISTRY.iter().map(|sp| sp.name()).collect();
                Error::Arg(format!(
                    "unknown search space `{s}` (available: {})",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bare name, as reports have always spelled the space
/// (`format!("{:?}", space).to_lowercase()`).
impl fmt::Debug for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for Space {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Space {}

impl Hash for Space {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

/// What [`Arch`] needs of a cell with its types erased.
trait AnyArch: Send + Sync {
    fn space(&self) -> Space;
    fn as_any(&self) -> &dyn Any;
    fn cell(&self) -> &dyn Any;
    fn net(&self) -> &dyn Any;
    fn same(&self, other: &dyn AnyArch) -> bool;
    fn hash_into(&self, state: &mut dyn Hasher);
    fn display(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn network(&self) -> Result<Graph>;
    fn mutate(&self, below: &mut dyn FnMut(u64) -> u64) -> Arch;
    fn with_options(&self, opts: &SpaceOptions) -> Result<Arch>;
    fn identity(&self) -> Identity;
}

/// A cell of space `S` and the network it is built into.
struct Typed<S: SearchSpace> {
    space: &'static S,
    cell: S::Cell,
    net: S::Net,
}

impl<S: SearchSpace> Typed<S> {
    fn arch(space: &'static S, cell: S::Cell, net: S::Net) -> Arch {
        Arch(Arc::new(Typed { space, cell, net }))
    }
}

impl<S: SearchSpace> AnyArch for Typed<S> {
    fn space(&self) -> Space {
        Space(self.space)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn cell(&self) -> &dyn Any {
        &self.cell
    }
    fn net(&self) -> &dyn Any {
        &self.net
    }
    fn same(&self, other: &dyn AnyArch) -> bool {
        other
            .as_any()
            .downcast_ref::<Typed<S>>()
            .is_some_and(|o| o.cell == self.cell && o.net == self.net)
    }
    fn hash_into(&self, mut state: &mut dyn Hasher) {
        SearchSpace::name(self.space).hash(&mut state);
        self.cell.hash(&mut state);
        self.net.hash(&mut state);
    }
    fn display(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cell, f)
    }
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arch")
            .field("space", &SearchSpace::name(self.space))
            .field("cell", &self.cell)
            .field("net", &self.net)
            .finish()
    }
    fn network(&self) -> Result<Graph> {
        self.space.network(&self.cell, &self.net)
    }
    fn mutate(&self, below: &mut dyn FnMut(u64) -> u64) -> Arch {
        let cell = self.space.mutate(&self.cell, below);
        Typed::arch(self.space, cell, self.net.clone())
    }
    fn with_options(&self, opts: &SpaceOptions) -> Result<Arch> {
        let net = resolve(self.space, opts)?;
        Ok(Typed::arch(self.space, self.cell.clone(), net))
    }
    fn identity(&self) -> Identity {
        self.space.identity(&self.cell)
    }
}

/// A validated architecture of some space and the network it is built
/// into. `Display` prints the canonical string (without the options);
/// equality and hashing take the space, the cell and the network, so the
/// same cell at two network sizes is two architectures. Cheap to clone.
#[derive(Clone)]
pub struct Arch(Arc<dyn AnyArch>);

impl Arch {
    /// Parses an architecture string of `space` (see [`Space::parse`]).
    pub fn parse(space: Space, s: &str) -> Result<Self> {
        space.parse(s)
    }

    /// A cell of space `S` built in code, checked with
    /// [`SearchSpace::validate`], with default options.
    pub fn new<S: SearchSpace>(space: &'static S, cell: S::Cell) -> Result<Self> {
        space.validate(&cell)?;
        Ok(Typed::arch(space, cell, default_net(space)?))
    }

    /// The space of this architecture.
    pub fn space(&self) -> Space {
        self.0.space()
    }

    /// The cell as its space's type (`Nb201Cell`, `Nb101Cell`,
    /// `Genotype`); `None` if it is another space's.
    pub fn cell<C: 'static>(&self) -> Option<&C> {
        self.0.cell().downcast_ref()
    }

    /// The network hyper-parameters as its space's type (`Nb201Net`,
    /// `Nb101Net`, `DartsNet`); `None` if it is another space's.
    pub fn net<N: 'static>(&self) -> Option<&N> {
        self.0.net().downcast_ref()
    }

    /// The same cell built into the network of `opts` (unset options at
    /// their defaults, whatever this architecture had); an `Err` names a
    /// key the space does not take or a bad value.
    pub fn with_options(&self, opts: &SpaceOptions) -> Result<Self> {
        self.0.with_options(opts)
    }

    /// How the cell is known outside dasnas: class key and official index
    /// (see [`SearchSpace::identity`]).
    pub fn identity(&self) -> Identity {
        self.0.identity()
    }

    /// The pruned network of this architecture.
    pub fn network(&self) -> Result<Graph> {
        self.0.network()
    }

    /// A neighbour for evolution (see [`mutate`]).
    pub fn mutate(&self, below: &mut dyn FnMut(u64) -> u64) -> Self {
        self.0.mutate(below)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display(f)
    }
}

impl fmt::Debug for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug(f)
    }
}

impl PartialEq for Arch {
    fn eq(&self, other: &Self) -> bool {
        self.0.same(other.0.as_ref())
    }
}

impl Eq for Arch {}

impl Hash for Arch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_into(state);
    }
}

/// `n` distinct architectures sampled with `seed` (see [`Space::sample`]).
pub fn sample(space: Space, n: usize, seed: u64) -> Result<Vec<Arch>> {
    space.sample(n, seed)
}

/// Every architecture of the space, if it is small enough to list (see
/// [`Space::enumerate`]).
pub fn enumerate(space: Space) -> Result<Vec<Arch>> {
    space.enumerate()
}

/// A neighbour of `arch` for evolution: one random change, drawn with
/// `below(m)` (uniform in `0..m`), always a valid architecture different
/// from `arch`, built into the same network. Each space's
/// [`SearchSpace::mutate`] says which changes it draws.
pub fn mutate(arch: &Arch, below: &mut dyn FnMut(u64) -> u64) -> Arch {
    arch.mutate(below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_valid_and_different() {
        let mut state = 0u64;
        let mut below = move |m: u64| {
            state += 1;
            crate::rng::bits(77, state) % m
        };
        for &space in Space::all() {
            for a in sample(space, 30, 1).unwrap() {
                let m = mutate(&a, &mut below);
                assert_ne!(m, a);
                // Valid: the printed form parses back to the same thing.
                assert_eq!(Arch::parse(space, &m.to_string()).unwrap(), m, "{space:?}");
            }
        }
    }

    #[test]
    fn every_registered_space_round_trips_its_name() {
        let names: Vec<&str> = Space::all().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["nb201", "nb101", "darts"]);
        for &space in Space::all() {
            let back: Space = space.to_string().parse().unwrap();
            assert_eq!(back, space);
            assert_eq!(back.name(), space.name());
            assert_eq!(format!("{space:?}"), space.name());
        }
        let e = "nb301".parse::<Space>().unwrap_err().to_string();
        assert!(
            e.contains("unknown search space `nb301` (available: nb201, nb101, darts)"),
            "{e}"
        );
    }

    #[test]
    fn space_options_are_validated() {
        let opts = |s: &str| s.parse::<SpaceOptions>().unwrap();
        // Unknown keys name the key and the space's options.
        let e = Space::NB201
            .check_options(&opts("layers=5"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`nb201` has no option `layers` (it takes count)"),
            "{e}"
        );
        let e = Space::DARTS
            .check_options(&opts("init=naswot"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no option `init` (it takes init_channels, layers, count)"),
            "{e}"
        );
        // Bad values name the key.
        for (space, s, key) in [
            (Space::DARTS, "layers=0", "`layers`"),
            (Space::DARTS, "init_channels=x", "`init_channels`"),
            (Space::NB101, "init=he", "`init`"),
            (Space::NB101, "stem_channels=0", "`stem_channels`"),
            (Space::NB201, "count=all", "counting `all`"),
        ] {
            let e = space.check_options(&opts(s)).unwrap_err().to_string();
            assert!(e.contains(key), "{s}: {e}");
        }
        // Malformed and repeated pairs.
        assert!("layers".parse::<SpaceOptions>().is_err());
        let e = "layers=3,layers=4".parse::<SpaceOptions>().unwrap_err();
        assert!(e.to_string().contains("`layers` given twice"), "{e}");
        // Good options reach the network and enter equality, not the string.
        let a = &sample(Space::DARTS, 1, 0).unwrap()[0];
        let small = a.with_options(&opts("init_channels=8, layers=5")).unwrap();
        let net: &darts::DartsNet = small.net().unwrap();
        assert_eq!((net.init_channels, net.layers), (8, 5));
        assert_eq!(small.to_string(), a.to_string());
        assert_ne!(&small, a);
        assert_eq!(small.with_options(&SpaceOptions::new()).unwrap(), *a);
        let nb101 = &sample(Space::NB101, 1, 0).unwrap()[0];
        let he = nb101.with_options(&opts("init=naswot")).unwrap();
        let net: &nb101::Nb101Net = he.net().unwrap();
        assert_eq!(net.init, crate::param::InitScheme::Naswot);
        for &space in Space::all() {
            assert_eq!(space.image_size(&SpaceOptions::new()).unwrap(), 32);
        }
    }

    #[test]
    fn arch_values_downcast_and_validate() {
        let a = &enumerate(Space::NB201).unwrap()[7];
        let cell: &nb201::Nb201Cell = a.cell().unwrap();
        assert_eq!(cell.index(), 7);
        assert!(a.cell::<darts::Genotype>().is_none());
        assert_eq!(Arch::new(&nb201::Nb201, *cell).unwrap(), *a);
        // A cell built in code is checked like a parsed one.
        let mut bad = nb101::Nb101Cell::parse("0100/input|output").unwrap();
        bad.matrix[1][0] = true;
        assert!(Arch::new(&nb101::Nb101, bad).is_err());
        let e = enumerate(Space::DARTS).unwrap_err().to_string();
        assert!(e.contains("sample it"), "{e}");
        // Identities: NB201's official index and unique_str, NB101's hash.
        let id = a.identity();
        assert_eq!(id.index, Some(7));
        assert_eq!(id.key, cell.unique_str());
        assert!(Space::NB201.at_index(15_625, &SpaceOptions::new()).is_err());
        let e = Space::NB101
            .at_index(0, &SpaceOptions::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no official cell index"), "{e}");
        assert_eq!(Space::NB101.key_name(), Some("hash"));
    }
}
