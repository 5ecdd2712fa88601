//! NAS-Bench-201: the cell string, its parser, sampling, enumeration and the
//! CIFAR network of docs/spaces.md, "NAS-Bench-201".
//!
//! A cell has 4 nodes; node 0 is the cell input and node i (1..=3) is the sum
//! of `op(node j)` over j < i. The six edges, in the order of the string:
//! (0→1), (0→2), (1→2), (0→3), (1→3), (2→3).
//! `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.

use crate::error::{Error, Result};
use crate::net::{Graph, GraphBuilder, NodeId};
use crate::ops::conv2d::ConvLayer;
use crate::ops::pool::PoolKind;
use crate::rng::{bits, name_id, stream_key};
use crate::space::{SearchSpace, SpaceOptions};

pub mod official;

/// The five NB201 edge ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nb201Op {
    /// `none`: the edge contributes nothing.
    None,
    /// `skip_connect`: identity.
    SkipConnect,
    /// `nor_conv_1x1`: ReLU, 1×1 conv, BN.
    NorConv1x1,
    /// `nor_conv_3x3`: ReLU, 3×3 conv (padding 1), BN.
    NorConv3x3,
    /// `avg_pool_3x3`: 3×3 average pool, stride 1, padding 1.
    AvgPool3x3,
}

impl Nb201Op {
    /// Every op, in NB201's order (`none` first).
    pub const ALL: [Nb201Op; 5] = [
        Nb201Op::None,
        Nb201Op::SkipConnect,
        Nb201Op::NorConv1x1,
        Nb201Op::NorConv3x3,
        Nb201Op::AvgPool3x3,
    ];

    /// The op's name in NB201's cell strings (`nor_conv_3x3`, …).
    pub fn name(self) -> &'static str {
        match self {
            Nb201Op::None => "none",
            Nb201Op::SkipConnect => "skip_connect",
            Nb201Op::NorConv1x1 => "nor_conv_1x1",
            Nb201Op::NorConv3x3 => "nor_conv_3x3",
            Nb201Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == s)
    }

    fn is_conv(self) -> bool {
        matches!(self, Nb201Op::NorConv1x1 | Nb201Op::NorConv3x3)
    }
}

/// Source and target node of each of the six edges, in string order.
pub const EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)];

/// Number of distinct NB201 cells (5^6).
pub const NUM_CELLS: usize = 15_625;

/// An NB201 cell: the op of each edge, in the order of [`EDGES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nb201Cell {
    /// The op of each edge, in the order of [`EDGES`].
    pub ops: [Nb201Op; 6],
}

impl Nb201Cell {
    /// Parses `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` strictly; the error names
    /// the offending token and its byte position.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |pos: usize, msg: String| Error::Arch {
            arch: s.to_string(),
            pos,
            msg,
        };
        let groups: Vec<&str> = s.split('+').collect();
        if groups.len() != 3 {
            return Err(err(
                0,
                format!(
                    "expected 3 node groups separated by '+', found {}",
                    groups.len()
                ),
            ));
        }
        let mut ops = [Nb201Op::None; 6];
        let mut pos = 0usize;
        let mut edge = 0usize;
        for (g, group) in groups.iter().enumerate() {
            let target = g + 1;
            let inner = group
                .strip_prefix('|')
                .and_then(|x| x.strip_suffix('|'))
                .ok_or_else(|| {
                    err(
                        pos,
                        format!("node {target}: group `{group}` must start and end with '|'"),
                    )
                })?;
            let tokens: Vec<&str> = inner.split('|').collect();
            if tokens.len() != target {
                return Err(err(
                    pos,
                    format!(
                        "node {target} needs {target} edge(s) `op~j`, found {} in `{group}`",
                        tokens.len()
                    ),
                ));
            }
            let mut tpos = pos + 1;
            for (j, tok) in tokens.iter().enumerate() {
                let (op_name, src) = tok
                    .split_once('~')
                    .ok_or_else(|| err(tpos, format!("token `{tok}` is not of the form `op~j`")))?;
                let op = Nb201Op::from_name(op_name).ok_or_else(|| {
                    err(
                        tpos,
                        format!(
                            "unknown op `{op_name}` (expected one of none, skip_connect, \
                             nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)"
                        ),
                    )
                })?;
                if src != j.to_string() {
                    return Err(err(
                        tpos + op_name.len() + 1,
                        format!(
                            "token `{tok}`: edge {j} into node {target} must come from node {j}"
                        ),
                    ));
                }
                ops[edge] = op;
                edge += 1;
                tpos += tok.len() + 1;
            }
            pos += group.len() + 1;
        }
        Ok(Nb201Cell { ops })
    }

    /// The cell's position in the base-5 order of AutoDL's `gen_all`
    /// (each edge's op a digit, edge (0→1) most significant, ops in
    /// [`Nb201Op::ALL`] order). Not the official index: see
    /// [`Nb201Cell::index`].
    pub fn code(&self) -> usize {
        self.ops.iter().fold(0, |acc, op| {
            acc * 5 + Nb201Op::ALL.iter().position(|o| o == op).unwrap_or(0)
        })
    }

    /// The cell with base-5 `code` (0 ≤ code < 15,625; see [`Nb201Cell::code`]).
    pub fn from_code(code: usize) -> Result<Self> {
        if code >= NUM_CELLS {
            return Err(Error::Arg(format!(
                "NB201 cell code {code} out of range 0..{NUM_CELLS}"
            )));
        }
        let mut ops = [Nb201Op::None; 6];
        let mut rest = code;
        for e in (0..6).rev() {
            ops[e] = Nb201Op::ALL[rest % 5];
            rest /= 5;
        }
        Ok(Nb201Cell { ops })
    }

    /// The official NAS-Bench-201 / NATS-Bench (topology) index of the
    /// cell, the `arch_index` of their tables and APIs.
    pub fn index(&self) -> usize {
        official::index_of_code(self.code())
    }

    /// The cell with official index `index` (0 ≤ index < 15,625).
    pub fn from_index(index: usize) -> Result<Self> {
        if index >= NUM_CELLS {
            return Err(Error::Arg(format!(
                "NB201 index {index} out of range: the space's indices are 0..={}",
                NUM_CELLS - 1
            )));
        }
        Self::from_code(official::code_of_index(index))
    }

    /// NATS-Bench's isomorphism key `to_unique_str(consider_zero=True)`:
    /// cells with equal keys build the same network up to the order of
    /// summed inputs. The 15,625 cells fall into 6,466 classes.
    pub fn unique_str(&self) -> String {
        official::unique_str(self)
    }

    /// All 15,625 cells in official index order.
    pub fn enumerate() -> impl Iterator<Item = Nb201Cell> {
        (0..NUM_CELLS).map(|i| Nb201Cell::from_index(i).expect("index in range"))
    }

    /// `n` distinct cells drawn uniformly without replacement from the counter
    /// generator (an error if `n` exceeds the 15,625 cells of the space).
    pub fn sample(n: usize, seed: u64) -> Result<Vec<Nb201Cell>> {
        if n > NUM_CELLS {
            return Err(Error::Arg(format!(
                "cannot sample {n} distinct NB201 cells: the space has {NUM_CELLS}"
            )));
        }
        let key = stream_key(seed, name_id("nb201.sample"));
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        let mut draw = 0u64;
        while out.len() < n {
            let index = (bits(key, draw) % NUM_CELLS as u64) as usize;
            draw += 1;
            if seen.insert(index) {
                out.push(Nb201Cell::from_code(index)?);
            }
        }
        Ok(out)
    }

    /// Edges whose result reaches node 3 through non-`none` edges, and are not
    /// `none` themselves. (A source node with no live inputs holds zeros, and
    /// its ops still count; the reference file's N_A of all 500 cells agrees.)
    pub fn live_edges(&self) -> [bool; 6] {
        let mut reaches = [false, false, false, true];
        for (e, &(j, i)) in EDGES.iter().enumerate().rev() {
            if self.ops[e] != Nb201Op::None && reaches[i] {
                reaches[j] = true;
            }
        }
        let mut live = [false; 6];
        for (e, &(_, i)) in EDGES.iter().enumerate() {
            live[e] = self.ops[e] != Nb201Op::None && reaches[i];
        }
        live
    }

    /// N_A per sample at 32×32 inputs, in closed form (docs/spaces.md, "NAS-Bench-201").
    pub fn n_units_closed_form(&self) -> u64 {
        let live = self.live_edges();
        let convs = (0..6).filter(|&e| live[e] && self.ops[e].is_conv()).count() as u64;
        143_360 * convs + 40_960
    }

    /// Adds one cell at `x` (stage channels = x's channels) to `b`.
    fn build(
        &self,
        b: &mut GraphBuilder,
        x: NodeId,
        prefix: &str,
        count: crate::net::Counting,
    ) -> Result<NodeId> {
        let c = b.shape(x).c;
        let mut nodes: Vec<NodeId> = vec![x];
        for target in 1..=3 {
            let mut terms = Vec::new();
            for (e, &(j, i)) in EDGES.iter().enumerate() {
                if i != target {
                    continue;
                }
                let src = nodes[j];
                let name = format!("{prefix}.e{j}{i}.{}", self.ops[e].name());
                match self.ops[e] {
                    // x·0 keeps its source's graph path to the output.
                    Nb201Op::None if count == crate::net::Counting::Graph => {
                        terms.push(b.zeros_like(src, &name))
                    }
                    Nb201Op::None => {}
                    Nb201Op::SkipConnect => terms.push(src),
                    Nb201Op::AvgPool3x3 => {
                        terms.push(b.pool(src, PoolKind::Avg, 3, 1, 1, &name)?)
                    }
                    Nb201Op::NorConv1x1 | Nb201Op::NorConv3x3 => {
                        let k = if self.ops[e] == Nb201Op::NorConv1x1 {
                            1
                        } else {
                            3
                        };
                        let r = b.relu(src, &format!("{name}.relu"));
                        let y =
                            b.conv(r, ConvLayer::new(c, k).pad(k / 2), &format!("{name}.conv"))?;
                        terms.push(b.batchnorm(y, &format!("{name}.bn")));
                    }
                }
            }
            let node = if terms.is_empty() {
                // Every incoming edge is `none`: the node is x·0 (see Op::Zeros).
                b.zeros_like(x, &format!("{prefix}.node{target}.zeros"))
            } else {
                b.add(&terms, &format!("{prefix}.node{target}"))?
            };
            nodes.push(node);
        }
        Ok(nodes[3])
    }

    /// The NB201 CIFAR network for this cell, pruned (docs/spaces.md, "NAS-Bench-201"):
    /// stem conv3×3(3→C)+BN; N cells(C); ResBlock(C→2C); N cells(2C);
    /// ResBlock(2C→4C); N cells(4C); BN+ReLU; global average pool; linear.
    pub fn network(&self, spec: &Nb201Net) -> Result<Graph> {
        let mut b = GraphBuilder::new();
        let x = b.input(spec.image_size, spec.image_size, 3)?;
        let c = spec.channels;
        let stem = b.conv(x, ConvLayer::new(c, 3).pad(1), "stem.conv")?;
        let mut h = b.batchnorm(stem, "stem.bn");
        b.mark_block(h);
        for stage in 0..3 {
            let cs = c << stage;
            if stage > 0 {
                h = resblock(&mut b, h, cs, &format!("res{stage}"))?;
                b.mark_block(h);
            }
            for cell in 0..spec.cells_per_stage {
                h = self.build(&mut b, h, &format!("s{stage}.c{cell}"), spec.count)?;
                b.mark_block(h);
            }
        }
        let bn = b.batchnorm(h, "lastact.bn");
        let r = b.relu(bn, "lastact.relu");
        let gap = b.global_avg_pool(r, "gap");
        let logits = b.linear(gap, spec.classes, "classifier")?;
        Ok(b.finish(logits).prune())
    }
}

/// NB201's ResNet basic block with stride 2:
/// ReLU→conv3×3 s2→BN → ReLU→conv3×3→BN, plus avgpool2×2 s2 → conv1×1.
fn resblock(b: &mut GraphBuilder, x: NodeId, cout: usize, name: &str) -> Result<NodeId> {
    let r = b.relu(x, &format!("{name}.a.relu"));
    let a = b.conv(
        r,
        ConvLayer::new(cout, 3).stride(2).pad(1),
        &format!("{name}.a.conv"),
    )?;
    let a = b.batchnorm(a, &format!("{name}.a.bn"));
    let r = b.relu(a, &format!("{name}.b.relu"));
    let y = b.conv(r, ConvLayer::new(cout, 3).pad(1), &format!("{name}.b.conv"))?;
    let y = b.batchnorm(y, &format!("{name}.b.bn"));
    let p = b.pool(x, PoolKind::Avg, 2, 2, 0, &format!("{name}.down.pool"))?;
    let s = b.conv(p, ConvLayer::new(cout, 1), &format!("{name}.down.conv"))?;
    b.add(&[s, y], &format!("{name}.sum"))
}

impl std::fmt::Display for Nb201Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut e = 0;
        for target in 1..=3 {
            if target > 1 {
                write!(f, "+")?;
            }
            write!(f, "|")?;
            for j in 0..target {
                write!(f, "{}~{}|", self.ops[e].name(), j)?;
                e += 1;
            }
        }
        Ok(())
    }
}

/// The NB201 macro network's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nb201Net {
    /// C: channels of the first stage (2C and 4C after the two residual blocks).
    pub channels: usize,
    /// N: cells per stage (three stages).
    pub cells_per_stage: usize,
    /// Outputs of the linear classifier.
    pub classes: usize,
    /// Height and width of the input images, in pixels.
    pub image_size: usize,
    /// Which ReLUs are units: `none` edges as no edge, or as `x · 0`.
    pub count: crate::net::Counting,
}

impl Default for Nb201Net {
    /// The NB201 CIFAR network: C = 16, N = 5, 10 classes, 32×32.
    fn default() -> Self {
        Nb201Net {
            channels: 16,
            cells_per_stage: 5,
            classes: 10,
            image_size: 32,
            count: crate::net::Counting::Functional,
        }
    }
}

/// The `count` option of the spaces with `none` edges.
pub(crate) const COUNT_OPTION: crate::space::SpaceOption = crate::space::SpaceOption {
    key: "count",
    default: "functional",
    help: "which ReLUs are units: `functional` (those whose value can reach the output; \
           `none` is no edge) or `graph` (the NASWOT code's: `none` is x·0, so every ReLU \
           with a graph path to the output)",
};

/// The NB201 space, registered as `nb201`: [`Nb201Cell`]s in the CIFAR
/// network of [`Nb201Net::default`]. It takes no options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nb201;

impl SearchSpace for Nb201 {
    type Cell = Nb201Cell;
    type Net = Nb201Net;

    fn name(&self) -> &'static str {
        "nb201"
    }

    fn options(&self) -> &'static [crate::space::SpaceOption] {
        &[COUNT_OPTION]
    }

    fn net(&self, opts: &SpaceOptions) -> Result<Nb201Net> {
        let d = Nb201Net::default();
        Ok(Nb201Net {
            count: opts.value("count", d.count)?,
            ..d
        })
    }

    fn image_size(&self, net: &Nb201Net) -> usize {
        net.image_size
    }

    fn parse(&self, s: &str) -> Result<Nb201Cell> {
        Nb201Cell::parse(s)
    }

    /// Every assignment of ops to the six edges is a cell.
    fn validate(&self, _cell: &Nb201Cell) -> Result<()> {
        Ok(())
    }

    fn sample(&self, n: usize, seed: u64) -> Result<Vec<Nb201Cell>> {
        Nb201Cell::sample(n, seed)
    }

    /// All 15,625 cells in official index order ([`Nb201Cell::index`]).
    fn enumerate(&self) -> Result<crate::space::Cells<Nb201Cell>> {
        Ok(Box::new(Nb201Cell::enumerate().map(Ok)))
    }

    /// Key: NATS-Bench's `unique_str`; index: the official one. The score
    /// key adds N_A: 523 of NATS's 6,466 classes hold cells that differ
    /// only in ops fed by zeros, whose units N_A counts, so the 15,625
    /// cells score as 7,093 classes.
    fn identity(&self, cell: &Nb201Cell) -> crate::space::Identity {
        let key = cell.unique_str();
        crate::space::Identity {
            score_key: format!("{key} N_A={}", cell.n_units_closed_form()),
            key,
            index: Some(cell.index()),
        }
    }

    /// 15,625 cells in 7,093 classes of equal scores (NATS-Bench's 6,466
    /// isomorphism classes, 523 of them split where their cells differ in
    /// N_A; see `select::classes`).
    fn cell_counts(&self) -> Option<(u64, u64)> {
        Some((15_625, 7_093))
    }

    fn at_index(&self, index: usize) -> Result<Nb201Cell> {
        Nb201Cell::from_index(index)
    }

    /// One edge gets one of the 4 other ops.
    fn mutate(&self, cell: &Nb201Cell, below: &mut dyn FnMut(u64) -> u64) -> Nb201Cell {
        let mut c = *cell;
        let e = below(6) as usize;
        let cur = Nb201Op::ALL
            .iter()
            .position(|&o| o == c.ops[e])
            .unwrap_or(0);
        let k = (cur + 1 + below(4) as usize) % 5;
        c.ops[e] = Nb201Op::ALL[k];
        c
    }

    fn network(&self, cell: &Nb201Cell, net: &Nb201Net) -> Result<Graph> {
        cell.network(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parse_print_round_trip_on_all_cells() {
        let mut seen = HashSet::new();
        for (i, cell) in Nb201Cell::enumerate().enumerate() {
            let s = cell.to_string();
            let back = Nb201Cell::parse(&s).unwrap();
            assert_eq!(back, cell);
            assert_eq!(back.index(), i);
            assert!(seen.insert(s));
        }
        assert_eq!(seen.len(), NUM_CELLS);
    }

    #[test]
    fn bad_strings_are_rejected_with_position() {
        let good = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|";
        assert!(Nb201Cell::parse(good).is_ok());
        let cases: &[(&str, &str)] = &[
            ("", "3 node groups"),
            (
                "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "unknown op `conv`",
            ),
            (
                "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                "must come from node 0",
            ),
            ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2"),
            (
                "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "must start and end",
            ),
            (
                "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "not of the form",
            ),
            (
                "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+",
                "found 4",
            ),
        ];
        for (s, want) in cases {
            let e = Nb201Cell::parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
        // The position points at the bad token.
        let s = "|none~0|+|none~0|none~1|+|none~0|bogus~1|none~2|";
        match Nb201Cell::parse(s) {
            Err(Error::Arch { pos, .. }) => assert_eq!(&s[pos..pos + 5], "bogus"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn network_counts_the_closed_form_units_for_every_cell() {
        // Includes cells whose output ignores their input (all edges into
        // node 3 come from zero nodes): the layers before them still count.
        let net = Nb201Net::default();
        for cell in Nb201Cell::enumerate() {
            let g = cell.network(&net).unwrap();
            assert_eq!(g.n_units(), cell.n_units_closed_form(), "{cell}");
        }
    }

    #[test]
    fn sampling_is_seeded() {
        assert_eq!(
            Nb201Cell::sample(20, 5).unwrap(),
            Nb201Cell::sample(20, 5).unwrap()
        );
        assert_ne!(
            Nb201Cell::sample(20, 5).unwrap(),
            Nb201Cell::sample(20, 6).unwrap()
        );
        let all = Nb201Cell::sample(NUM_CELLS, 2).unwrap();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), NUM_CELLS);
        assert!(Nb201Cell::sample(NUM_CELLS + 1, 2).is_err());
    }
}
