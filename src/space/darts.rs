//! The DARTS search space: genotypes as DARTS prints them and the DARTS
//! CIFAR network (`model.py`, `NetworkCIFAR`, without the auxiliary head).
//!
//! A genotype: `Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), …],
//! normal_concat=[2, 3, 4, 5], reduce=[…], reduce_concat=[…])`. Each cell has
//! two inputs (states 0 and 1, the outputs of the two previous cells) and
//! `steps = len(ops) / 2` intermediate nodes (4 in DARTS); node `i` (state
//! `i + 2`) is the sum of its two edges `op(state[index])`, index < i + 2.
//! The cell output is the channel concatenation of the `concat` states.
//! `range(2, 6)` is accepted for a concat list, and either quote style. A
//! reduction cell's concat list may not name its inputs (states 0 and 1):
//! they have twice the resolution of its nodes.
//!
//! Network (C = `init_channels`, L = `layers`): stem conv3×3 (3→3C) + BN;
//! s0 = s1 = stem; L cells, the cells at L/3 and 2L/3 are reduction cells
//! (channels ×2, the edges from the cell inputs have stride 2); a cell's
//! preprocessing is ReLU-conv1×1-BN for each input, or a factorized reduce
//! for input 0 when the previous cell reduced; then global average pool
//! and a linear classifier.
//!
//! Ops (DARTS `operations.py`, affine BN):
//! * `sep_conv_k×k`: ReLU, depthwise k×k (stride s), 1×1, BN, ReLU,
//!   depthwise k×k, 1×1, BN;
//! * `dil_conv_k×k`: ReLU, depthwise k×k dilation 2 (stride s), 1×1, BN;
//! * `max_pool_3x3`, `avg_pool_3x3` (padding 1, not counted in the average);
//! * `skip_connect`: identity, or at stride 2 a factorized reduce:
//!   ReLU, concat(conv1×1 s2(x), conv1×1 s2(x[:, 1:, 1:])), BN;
//! * `none`: contributes nothing. Like NB201's rule, a node whose two edges
//!   are both `none` holds zeros (of the stride-2 shape in a reduction cell)
//!   that keep their first edge's source live. With the option
//!   `count=graph` every `none` edge is DARTS's `Zero` (`x·0`) instead,
//!   keeping its own source live, as the NASWOT code counts.

use crate::error::{Error, Result};
use crate::net::{Graph, GraphBuilder, NodeId};
use crate::ops::conv2d::ConvLayer;
use crate::ops::pool::PoolKind;
use crate::rng::{bits, name_id, stream_key};
use crate::space::{SearchSpace, SpaceOption, SpaceOptions};
use crate::tensor::Shape;

pub mod canonical;

/// A DARTS edge op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DartsOp {
    /// `none`: the edge contributes nothing.
    None,
    /// `max_pool_3x3`: 3×3 max pool, padding 1.
    MaxPool3x3,
    /// `avg_pool_3x3`: 3×3 average pool, padding 1 (not counted in the average).
    AvgPool3x3,
    /// `skip_connect`: identity, or a factorized reduce at stride 2.
    SkipConnect,
    /// `sep_conv_3x3`: (ReLU, depthwise 3×3, 1×1, BN) twice, the stride on
    /// the first depthwise conv.
    SepConv3x3,
    /// `sep_conv_5x5`: (ReLU, depthwise 5×5, 1×1, BN) twice, the stride on
    /// the first depthwise conv.
    SepConv5x5,
    /// `dil_conv_3x3`: ReLU, depthwise 3×3 with dilation 2, 1×1, BN.
    DilConv3x3,
    /// `dil_conv_5x5`: ReLU, depthwise 5×5 with dilation 2, 1×1, BN.
    DilConv5x5,
}

impl DartsOp {
    /// Every op, `none` first (DARTS's PRIMITIVES order).
    pub const ALL: [DartsOp; 8] = [
        DartsOp::None,
        DartsOp::MaxPool3x3,
        DartsOp::AvgPool3x3,
        DartsOp::SkipConnect,
        DartsOp::SepConv3x3,
        DartsOp::SepConv5x5,
        DartsOp::DilConv3x3,
        DartsOp::DilConv5x5,
    ];

    /// The op's name in DARTS's genotypes (`sep_conv_3x3`, …).
    pub fn name(self) -> &'static str {
        match self {
            DartsOp::None => "none",
            DartsOp::MaxPool3x3 => "max_pool_3x3",
            DartsOp::AvgPool3x3 => "avg_pool_3x3",
            DartsOp::SkipConnect => "skip_connect",
            DartsOp::SepConv3x3 => "sep_conv_3x3",
            DartsOp::SepConv5x5 => "sep_conv_5x5",
            DartsOp::DilConv3x3 => "dil_conv_3x3",
            DartsOp::DilConv5x5 => "dil_conv_5x5",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == s)
    }
}

/// One cell type: its edges `(op, input state)` (two per node) and the
/// states concatenated into its output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DartsCell {
    /// `(op, input state)` of each edge, two per intermediate node in node order;
    /// states 0 and 1 are the cell's inputs, node `i` is state `i + 2`.
    pub edges: Vec<(DartsOp, usize)>,
    /// The states concatenated (over channels, in this order) into the cell's output.
    pub concat: Vec<usize>,
}

impl DartsCell {
    /// Intermediate nodes.
    pub fn steps(&self) -> usize {
        self.edges.len() / 2
    }
}

/// A DARTS genotype: the normal and the reduction cell.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Genotype {
    /// The normal cell (stride 1).
    pub normal: DartsCell,
    /// The reduction cell (stride 2 on the edges from its inputs, channels ×2).
    pub reduce: DartsCell,
}

/// A token of the genotype string and its byte position.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(usize),
    Punct(char),
}

fn tokenize(s: &str) -> std::result::Result<Vec<(Tok, usize)>, (usize, String)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if "()[],=".contains(c) {
            out.push((Tok::Punct(c), i));
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = s[i + 1..]
                .find(c)
                .ok_or((i, "unterminated string".to_string()))?;
            out.push((Tok::Str(s[i + 1..i + 1 + end].to_string()), i));
            i += end + 2;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let v = s[start..i]
                .parse()
                .map_err(|_| (start, format!("number `{}` too large", &s[start..i])))?;
            out.push((Tok::Int(v), start));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(s[start..i].to_string()), start));
        } else {
            // `i` is on a character boundary (only ASCII has been skipped),
            // so the message shows the character as written, not its first
            // byte read as Latin-1.
            let ch = s[i..].chars().next().unwrap_or(c);
            return Err((i, format!("unexpected character `{ch}`")));
        }
    }
    Ok(out)
}

/// A recursive-descent reader over the tokens.
struct Reader<'a> {
    toks: &'a [(Tok, usize)],
    i: usize,
    end: usize,
}

type PResult<T> = std::result::Result<T, (usize, String)>;

impl Reader<'_> {
    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.1)
    }
    fn next(&mut self, what: &str) -> PResult<(Tok, usize)> {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .ok_or((self.end, format!("unexpected end, expected {what}")))?;
        self.i += 1;
        Ok(t)
    }
    fn punct(&mut self, c: char) -> PResult<()> {
        match self.next(&format!("`{c}`"))? {
            (Tok::Punct(p), _) if p == c => Ok(()),
            (t, pos) => Err((pos, format!("expected `{c}`, found {}", show(&t)))),
        }
    }
    fn peek_punct(&self, c: char) -> bool {
        matches!(self.toks.get(self.i), Some((Tok::Punct(p), _)) if *p == c)
    }
    fn int(&mut self) -> PResult<(usize, usize)> {
        match self.next("a number")? {
            (Tok::Int(v), pos) => Ok((v, pos)),
            (t, pos) => Err((pos, format!("expected a number, found {}", show(&t)))),
        }
    }
    /// `[(op, j), …]`
    fn edges(&mut self) -> PResult<Vec<(DartsOp, usize, usize)>> {
        self.punct('[')?;
        let mut out = Vec::new();
        while !self.peek_punct(']') {
            self.punct('(')?;
            let (name, pos) = match self.next("an op name in quotes")? {
                (Tok::Str(s), pos) => (s, pos),
                (t, pos) => {
                    return Err((
                        pos,
                        format!("expected an op name in quotes, found {}", show(&t)),
                    ))
                }
            };
            let op = DartsOp::from_name(&name).ok_or((
                pos,
                format!(
                    "unknown op `{name}` (expected one of {})",
                    DartsOp::ALL.map(DartsOp::name).join(", ")
                ),
            ))?;
            self.punct(',')?;
            let (j, _) = self.int()?;
            self.punct(')')?;
            out.push((op, j, pos));
            if !self.peek_punct(']') {
                self.punct(',')?;
            }
        }
        self.punct(']')?;
        Ok(out)
    }
    /// `[2, 3, 4, 5]` or `range(2, 6)`.
    fn concat(&mut self) -> PResult<Vec<(usize, usize)>> {
        if let Some((Tok::Ident(id), pos)) = self.toks.get(self.i).cloned() {
            if id != "range" {
                return Err((pos, format!("expected a list or range(a, b), found `{id}`")));
            }
            self.i += 1;
            self.punct('(')?;
            let (a, pa) = self.int()?;
            self.punct(',')?;
            let (b, _) = self.int()?;
            self.punct(')')?;
            if b <= a {
                return Err((pa, format!("range({a}, {b}) is empty")));
            }
            // A cell has fewer states than the string has tokens (an edge
            // takes 5), so a range longer than that runs past the states of
            // any cell, and its first `tokens + 3` values already include
            // the first one out of range, the one `check_cell` names: listing
            // only those keeps `range(2, 10**12)` from asking for terabytes.
            let end = b.min(a.saturating_add(self.toks.len() + 3));
            return Ok((a..end).map(|v| (v, pa)).collect());
        }
        self.punct('[')?;
        let mut out = Vec::new();
        while !self.peek_punct(']') {
            out.push(self.int()?);
            if !self.peek_punct(']') {
                self.punct(',')?;
            }
        }
        self.punct(']')?;
        Ok(out)
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Int(v) => format!("`{v}`"),
        Tok::Punct(c) => format!("`{c}`"),
    }
}

/// Checks one cell's edges and concat list; errors carry a byte position.
fn check_cell(
    which: &str,
    edges: Vec<(DartsOp, usize, usize)>,
    concat: Vec<(usize, usize)>,
    list_pos: usize,
    concat_pos: usize,
) -> PResult<DartsCell> {
    if edges.is_empty() || !edges.len().is_multiple_of(2) {
        return Err((
            list_pos,
            format!(
                "{which}: {} edges; each intermediate node needs exactly 2",
                edges.len()
            ),
        ));
    }
    for (k, &(_, j, pos)) in edges.iter().enumerate() {
        let node = k / 2;
        if j >= node + 2 {
            return Err((
                pos,
                format!(
                    "{which}: edge {k} into node {} reads state {j}; only states 0..={} \
                     exist before it",
                    node + 2,
                    node + 1
                ),
            ));
        }
    }
    let states = edges.len() / 2 + 2;
    if concat.is_empty() {
        return Err((concat_pos, format!("{which}_concat is empty")));
    }
    let mut seen = vec![false; states];
    for &(v, pos) in &concat {
        if v >= states {
            return Err((
                pos,
                format!("{which}_concat names state {v}; the cell has states 0..{states}"),
            ));
        }
        // Found by tests/scoring/parsers.rs: such a genotype parsed, and then its
        // network failed to build with a shape error on a concat.
        if which == "reduce" && v < 2 {
            return Err((
                pos,
                format!(
                    "reduce_concat names input state {v}: a reduction cell's inputs have twice                      the resolution of its nodes, so they cannot be concatenated with them"
                ),
            ));
        }
        if seen[v] {
            return Err((pos, format!("{which}_concat names state {v} twice")));
        }
        seen[v] = true;
    }
    Ok(DartsCell {
        edges: edges.into_iter().map(|(op, j, _)| (op, j)).collect(),
        concat: concat.into_iter().map(|(v, _)| v).collect(),
    })
}

impl Genotype {
    /// Parses a genotype as DARTS prints it (module docs); errors name the
    /// offending token and its byte position.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_inner(s).map_err(|(pos, msg)| Error::Arch {
            arch: s.to_string(),
            pos,
            msg,
        })
    }

    fn parse_inner(s: &str) -> PResult<Self> {
        let toks = tokenize(s)?;
        let mut r = Reader {
            toks: &toks,
            i: 0,
            end: s.len(),
        };
        match r.next("`Genotype`")? {
            (Tok::Ident(id), _) if id == "Genotype" => {}
            (t, pos) => return Err((pos, format!("expected `Genotype(`, found {}", show(&t)))),
        }
        r.punct('(')?;
        let mut normal = None;
        let mut reduce = None;
        let mut normal_concat = None;
        let mut reduce_concat = None;
        loop {
            let (field, pos) = match r.next("a field name")? {
                (Tok::Ident(id), pos) => (id, pos),
                (t, pos) => {
                    return Err((pos, format!("expected a field name, found {}", show(&t))))
                }
            };
            r.punct('=')?;
            let vpos = r.pos();
            let dup = || (pos, format!("field `{field}` given twice"));
            match field.as_str() {
                "normal" if normal.is_none() => normal = Some((r.edges()?, vpos)),
                "reduce" if reduce.is_none() => reduce = Some((r.edges()?, vpos)),
                "normal_concat" if normal_concat.is_none() => {
                    normal_concat = Some((r.concat()?, vpos))
                }
                "reduce_concat" if reduce_concat.is_none() => {
                    reduce_concat = Some((r.concat()?, vpos))
                }
                "normal" | "reduce" | "normal_concat" | "reduce_concat" => return Err(dup()),
                _ => {
                    return Err((
                        pos,
                        format!(
                            "unknown field `{field}` (expected normal, normal_concat, reduce, \
                             reduce_concat)"
                        ),
                    ))
                }
            }
            if r.peek_punct(')') {
                r.i += 1;
                break;
            }
            r.punct(',')?;
        }
        if r.i < toks.len() {
            return Err((r.pos(), "unexpected text after the closing `)`".into()));
        }
        let missing = |f: &str| (s.len(), format!("field `{f}` is missing"));
        let (ne, np) = normal.ok_or_else(|| missing("normal"))?;
        let (nc, ncp) = normal_concat.ok_or_else(|| missing("normal_concat"))?;
        let (re, rp) = reduce.ok_or_else(|| missing("reduce"))?;
        let (rc, rcp) = reduce_concat.ok_or_else(|| missing("reduce_concat"))?;
        Ok(Genotype {
            normal: check_cell("normal", ne, nc, np, ncp)?,
            reduce: check_cell("reduce", re, rc, rp, rcp)?,
        })
    }

    /// A genotype drawn like the DARTS space defines one: in each cell, each
    /// of the 4 intermediate nodes picks 2 distinct earlier states uniformly
    /// among the unordered pairs (listed in increasing order) and an op for
    /// each edge uniformly among the 7 non-`none` ops; both cells
    /// concatenate all intermediate nodes (`[2, 3, 4, 5]`).
    fn draw(key: u64, index: u64) -> Genotype {
        let mut k = 0u64;
        let mut next = |m: u64| {
            // Uniform in 0..m by rejection (no modulo bias).
            let limit = u64::MAX - u64::MAX % m;
            loop {
                let r = bits(key, index * 1024 + k);
                k += 1;
                if r < limit {
                    return r % m;
                }
            }
        };
        let mut cell = || {
            let mut edges = Vec::with_capacity(8);
            for node in 0..4u64 {
                let states = node + 2;
                let a = next(states);
                let mut b = next(states - 1);
                if b >= a {
                    b += 1;
                }
                for j in [a.min(b), a.max(b)] {
                    let op = DartsOp::ALL[1 + next(7) as usize];
                    edges.push((op, j as usize));
                }
            }
            DartsCell {
                edges,
                concat: vec![2, 3, 4, 5],
            }
        };
        let normal = cell();
        let reduce = cell();
        Genotype { normal, reduce }
    }

    /// `n` distinct genotypes (at most 10,000,000) drawn with `seed`: in each
    /// cell, each of the 4 intermediate nodes picks 2 distinct earlier states
    /// and an op for each edge among the 7 non-`none` ops, uniformly; both
    /// cells concatenate all intermediate nodes.
    pub fn sample(n: usize, seed: u64) -> Result<Vec<Genotype>> {
        if n > 10_000_000 {
            return Err(Error::Arg(format!(
                "cannot sample {n} DARTS genotypes: at most 10,000,000 per call"
            )));
        }
        let key = stream_key(seed, name_id("darts.sample"));
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        let mut index = 0u64;
        while out.len() < n {
            let g = Self::draw(key, index);
            index += 1;
            if seen.insert(g.clone()) {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The DARTS CIFAR network of this genotype, pruned (module docs).
    pub fn network(&self, spec: &DartsNet) -> Result<Graph> {
        let mut b = GraphBuilder::new();
        let x = b.input(spec.image_size, spec.image_size, 3)?;
        let c_stem = spec.stem_multiplier * spec.init_channels;
        let stem = b.conv(x, ConvLayer::new(c_stem, 3).pad(1), "stem.conv")?;
        let stem = b.batchnorm(stem, "stem.bn");
        b.mark_block(stem);
        let (mut s0, mut s1) = (stem, stem);
        let mut c = spec.init_channels;
        let mut reduction_prev = false;
        let l = spec.layers;
        for i in 0..l {
            let reduction = i == l / 3 || i == 2 * l / 3;
            if reduction {
                c *= 2;
            }
            let cell = if reduction {
                &self.reduce
            } else {
                &self.normal
            };
            let place = CellPlace {
                reduction,
                reduction_prev,
            };
            let out = build_cell(
                &mut b,
                cell,
                [s0, s1],
                c,
                place,
                spec.count,
                &format!("cell{i}"),
            )?;
            b.mark_block(out);
            reduction_prev = reduction;
            s0 = s1;
            s1 = out;
        }
        let gap = b.global_avg_pool(s1, "gap");
        let logits = b.linear(gap, spec.classes, "classifier")?;
        Ok(b.finish(logits).prune())
    }
}

/// ReLU → conv (`layer`) without bias.
fn relu_conv(b: &mut GraphBuilder, x: NodeId, layer: ConvLayer, name: &str) -> Result<NodeId> {
    let r = b.relu(x, &format!("{name}.relu"));
    b.conv(r, layer, &format!("{name}.conv"))
}

/// DARTS's `ReLUConvBN(cin, cout, 1, 1, 0)`.
fn relu_conv_bn(b: &mut GraphBuilder, x: NodeId, cout: usize, name: &str) -> Result<NodeId> {
    let y = relu_conv(b, x, ConvLayer::new(cout, 1), name)?;
    Ok(b.batchnorm(y, &format!("{name}.bn")))
}

/// DARTS's `FactorizedReduce(cin, cout)`: ReLU, then two 1×1 stride-2 convs
/// of `cout / 2` channels, the second on the input shifted by one pixel
/// (`x[:, :, 1:, 1:]`), concatenated, then BN.
pub fn factorized_reduce(
    b: &mut GraphBuilder,
    x: NodeId,
    cout: usize,
    name: &str,
) -> Result<NodeId> {
    if !cout.is_multiple_of(2) {
        return Err(Error::Shape(format!(
            "{name}: factorized reduce to {cout} channels (must be even)"
        )));
    }
    let r = b.relu(x, &format!("{name}.relu"));
    let a = b.conv(
        r,
        ConvLayer::new(cout / 2, 1).stride(2),
        &format!("{name}.conv1"),
    )?;
    let shifted = b.crop(r, 1, 1, &format!("{name}.shift"))?;
    let s = b.conv(
        shifted,
        ConvLayer::new(cout / 2, 1).stride(2),
        &format!("{name}.conv2"),
    )?;
    let cat = b.concat(&[a, s], &format!("{name}.cat"))?;
    Ok(b.batchnorm(cat, &format!("{name}.bn")))
}

/// One edge op at `stride`; `None` for `none`.
fn edge(
    b: &mut GraphBuilder,
    op: DartsOp,
    x: NodeId,
    c: usize,
    stride: usize,
    name: &str,
) -> Result<Option<NodeId>> {
    let sep = |b: &mut GraphBuilder, k: usize| -> Result<NodeId> {
        let dw = ConvLayer::new(c, k).pad(k / 2).groups(c);
        let y = relu_conv(b, x, dw.stride(stride), &format!("{name}.dw1"))?;
        let y = b.conv(y, ConvLayer::new(c, 1), &format!("{name}.pw1"))?;
        let y = b.batchnorm(y, &format!("{name}.bn1"));
        let y = relu_conv(b, y, dw, &format!("{name}.dw2"))?;
        let y = b.conv(y, ConvLayer::new(c, 1), &format!("{name}.pw2"))?;
        Ok(b.batchnorm(y, &format!("{name}.bn2")))
    };
    let dil = |b: &mut GraphBuilder, k: usize| -> Result<NodeId> {
        let dw = ConvLayer::new(c, k)
            .stride(stride)
            .pad(k - 1)
            .dilation(2)
            .groups(c);
        let y = relu_conv(b, x, dw, &format!("{name}.dw"))?;
        let y = b.conv(y, ConvLayer::new(c, 1), &format!("{name}.pw"))?;
        Ok(b.batchnorm(y, &format!("{name}.bn")))
    };
    Ok(Some(match op {
        DartsOp::None => return Ok(None),
        DartsOp::MaxPool3x3 => b.pool(x, PoolKind::Max, 3, stride, 1, name)?,
        DartsOp::AvgPool3x3 => b.pool(x, PoolKind::Avg, 3, stride, 1, name)?,
        DartsOp::SkipConnect if stride == 1 => x,
        DartsOp::SkipConnect => factorized_reduce(b, x, c, &format!("{name}.fr"))?,
        DartsOp::SepConv3x3 => sep(b, 3)?,
        DartsOp::SepConv5x5 => sep(b, 5)?,
        DartsOp::DilConv3x3 => dil(b, 3)?,
        DartsOp::DilConv5x5 => dil(b, 5)?,
    }))
}

/// Where a cell sits in the network: whether it reduces (stride 2 on the
/// edges from its inputs) and whether the cell before it did (its first
/// input is then brought to size by a factorized reduce).
#[derive(Clone, Copy, Debug)]
struct CellPlace {
    reduction: bool,
    reduction_prev: bool,
}

/// One DARTS cell (`model.py`, `Cell`) with inputs `[s0, s1]`, `c` channels.
fn build_cell(
    b: &mut GraphBuilder,
    cell: &DartsCell,
    [s0, s1]: [NodeId; 2],
    c: usize,
    place: CellPlace,
    count: crate::net::Counting,
    prefix: &str,
) -> Result<NodeId> {
    let CellPlace {
        reduction,
        reduction_prev,
    } = place;
    let p0 = if reduction_prev {
        factorized_reduce(b, s0, c, &format!("{prefix}.pre0"))?
    } else {
        relu_conv_bn(b, s0, c, &format!("{prefix}.pre0"))?
    };
    let p1 = relu_conv_bn(b, s1, c, &format!("{prefix}.pre1"))?;
    let mut states = vec![p0, p1];
    for node in 0..cell.steps() {
        let mut terms = Vec::with_capacity(2);
        for k in [2 * node, 2 * node + 1] {
            let (op, j) = cell.edges[k];
            let stride = if reduction && j < 2 { 2 } else { 1 };
            let name = format!("{prefix}.n{}.e{k}.{}", node + 2, op.name());
            if let Some(y) = edge(b, op, states[j], c, stride, &name)? {
                terms.push(y);
            } else if count == crate::net::Counting::Graph {
                // `none` as DARTS's Zero: x·0 (x[:, :, ::2, ::2]·0 at stride
                // 2), which keeps its source's graph path to the output.
                let src = b.shape(states[j]);
                let shape = if stride == 2 {
                    Shape::new(1, src.h.div_ceil(2), src.w.div_ceil(2), src.c)
                } else {
                    src
                };
                terms.push(b.zeros(states[j], shape, &name)?);
            }
        }
        let s = if terms.is_empty() {
            // Both edges are `none`: zeros of the node's shape (see module docs).
            let (_, j) = cell.edges[2 * node];
            let src = b.shape(states[j]);
            let reduced = reduction && j < 2;
            let shape = if reduced {
                Shape::new(1, src.h.div_ceil(2), src.w.div_ceil(2), src.c)
            } else {
                src
            };
            b.zeros(states[j], shape, &format!("{prefix}.n{}.zeros", node + 2))?
        } else {
            b.add(&terms, &format!("{prefix}.n{}", node + 2))?
        };
        states.push(s);
    }
    let outs: Vec<NodeId> = cell.concat.iter().map(|&v| states[v]).collect();
    b.concat(&outs, &format!("{prefix}.out"))
}

impl std::fmt::Display for Genotype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |c: &DartsCell| {
            c.edges
                .iter()
                .map(|(op, j)| format!("('{}', {j})", op.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ints = |v: &[usize]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "Genotype(normal=[{}], normal_concat=[{}], reduce=[{}], reduce_concat=[{}])",
            list(&self.normal),
            ints(&self.normal.concat),
            list(&self.reduce),
            ints(&self.reduce.concat)
        )
    }
}

/// The DARTS CIFAR network's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DartsNet {
    /// C: channels of the first cells (DARTS's `--init_channels`).
    pub init_channels: usize,
    /// Cells (DARTS's `--layers`).
    pub layers: usize,
    /// The stem conv has `stem_multiplier·C` output channels (3 in DARTS).
    pub stem_multiplier: usize,
    /// Outputs of the linear classifier.
    pub classes: usize,
    /// Height and width of the input images, in pixels.
    pub image_size: usize,
    /// Which ReLUs are units: `none` edges as no edge, or as `x · 0`.
    pub count: crate::net::Counting,
}

impl Default for DartsNet {
    /// C = 16, 8 cells (the DARTS search network's size), 10 classes, 32×32.
    fn default() -> Self {
        DartsNet {
            init_channels: 16,
            layers: 8,
            stem_multiplier: 3,
            classes: 10,
            image_size: 32,
            count: crate::net::Counting::Functional,
        }
    }
}

/// The DARTS space, registered as `darts`: [`Genotype`]s in the CIFAR
/// network of [`DartsNet`], sized by the options `init_channels` (C,
/// default 16) and `layers` (default 8).
#[derive(Clone, Copy, Debug, Default)]
pub struct Darts;

impl SearchSpace for Darts {
    type Cell = Genotype;
    type Net = DartsNet;

    fn name(&self) -> &'static str {
        "darts"
    }

    fn options(&self) -> &'static [SpaceOption] {
        &[
            SpaceOption {
                key: "init_channels",
                default: "16",
                help: "channels C of the first cells (DARTS's --init_channels), at least 1",
            },
            SpaceOption {
                key: "layers",
                default: "8",
                help: "number of cells (DARTS's --layers), at least 1",
            },
            crate::space::nb201::COUNT_OPTION,
        ]
    }

    fn net(&self, opts: &SpaceOptions) -> Result<DartsNet> {
        let d = DartsNet::default();
        Ok(DartsNet {
            init_channels: opts.count("init_channels", d.init_channels)?,
            layers: opts.count("layers", d.layers)?,
            count: opts.value("count", d.count)?,
            ..d
        })
    }

    fn image_size(&self, net: &DartsNet) -> usize {
        net.image_size
    }

    fn parse(&self, s: &str) -> Result<Genotype> {
        Genotype::parse(s)
    }

    fn sample(&self, n: usize, seed: u64) -> Result<Vec<Genotype>> {
        Genotype::sample(n, seed)
    }

    fn enumerate(&self) -> Result<crate::space::Cells<Genotype>> {
        Err(Error::Arg(
            "the DARTS space (~10^18 genotypes) cannot be enumerated; sample it".into(),
        ))
    }

    /// Measured on the 500 genotypes of the shared DARTS table (CIFAR-10
    /// batch; 5-fold cross-validated Kendall τ, paired gain over WOT ± its
    /// standard deviation): at NDS-like size (C = 16, 8 cells, B = 128) no
    /// rule beats WOT beyond noise (`ranksum:2.02` +0.019 ± 0.020), so WOT;
    /// at SWAP's tiny network (C = 3, 1 cell, B = 16, 32 seeds averaged)
    /// `ranksum:0.24` (+0.139 ± 0.022). WOT for other sizes.
    fn default_rule(&self, net: &DartsNet) -> &'static str {
        if net.init_channels == 3 && net.layers == 1 {
            "ranksum:0.24"
        } else {
            "wot"
        }
    }

    /// Key: the canonical genotype ([`canonical::canonical`]).
    fn identity(&self, g: &Genotype) -> crate::space::Identity {
        let key = canonical::canonical(g).to_string();
        crate::space::Identity {
            score_key: key.clone(),
            key,
            index: None,
        }
    }

    /// In the normal or the reduction cell, one edge gets another non-`none`
    /// op, or another input state (not its sibling edge's), half and half.
    fn mutate(&self, genotype: &Genotype, below: &mut dyn FnMut(u64) -> u64) -> Genotype {
        let mut g = genotype.clone();
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
            let ops = &DartsOp::ALL[1..];
            let choices: Vec<DartsOp> = ops
                .iter()
                .copied()
                .filter(|&o| o != cell.edges[e].0)
                .collect();
            cell.edges[e].0 = choices[below(choices.len() as u64) as usize];
        } else {
            cell.edges[e].1 = others[below(others.len() as u64) as usize];
        }
        g
    }

    fn network(&self, genotype: &Genotype, net: &DartsNet) -> Result<Graph> {
        genotype.network(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DARTS-V2 from DARTS's `genotypes.py`.
    pub const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), \
        ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), \
        ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], \
        reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), \
        ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), \
        ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

    #[test]
    fn parse_print_round_trip() {
        let g = Genotype::parse(DARTS_V2).unwrap();
        assert_eq!(g.to_string(), DARTS_V2);
        assert_eq!(g.normal.steps(), 4);
        // range(2, 6) and double quotes, as a freshly searched genotype prints.
        let r = DARTS_V2
            .replace("[2, 3, 4, 5]", "range(2, 6)")
            .replace('\'', "\"");
        assert_eq!(Genotype::parse(&r).unwrap(), g);
    }

    #[test]
    fn bad_genotypes_are_rejected_with_position() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "('sep_conv_3x3', 0)",
                "('conv_9x9', 0)",
                "unknown op `conv_9x9`",
            ),
            (
                "('dil_conv_3x3', 2)",
                "('dil_conv_3x3', 5)",
                "reads state 5",
            ),
            (
                "normal_concat=[2, 3, 4, 5]",
                "normal_concat=[2, 3, 7]",
                "names state 7",
            ),
            (
                "reduce_concat=[2, 3, 4, 5]",
                "reduce_concat=[2, 2]",
                "twice",
            ),
            ("Genotype(", "Gentype(", "expected `Genotype(`"),
            (
                "normal_concat=",
                "normal_cat=",
                "unknown field `normal_cat`",
            ),
            (
                ", ('max_pool_3x3', 1)], reduce_concat",
                "], reduce_concat",
                "7 edges",
            ),
        ];
        for (from, to, want) in cases {
            let s = DARTS_V2.replacen(from, to, 1);
            assert_ne!(s, DARTS_V2, "{from}");
            let e = Genotype::parse(&s).unwrap_err();
            assert!(e.to_string().contains(want), "{s}: {e}");
        }
        let s = DARTS_V2.replacen("'sep_conv_3x3'", "'bogus'", 1);
        match Genotype::parse(&s) {
            Err(Error::Arch { pos, .. }) => assert_eq!(&s[pos..pos + 7], "'bogus'"),
            other => panic!("{other:?}"),
        }
        let e =
            Genotype::parse("Genotype(normal=[], normal_concat=[2], reduce=[], reduce_concat=[2])")
                .unwrap_err();
        assert!(e.to_string().contains("0 edges"), "{e}");
        let e = Genotype::parse(&DARTS_V2.replace(", reduce_concat=[2, 3, 4, 5]", "")).unwrap_err();
        assert!(e.to_string().contains("`reduce_concat` is missing"), "{e}");
        let e = Genotype::parse(&format!("{DARTS_V2} x")).unwrap_err();
        assert!(e.to_string().contains("after the closing"), "{e}");
    }

    /// DARTS reports DARTS-V2 at C = 36, 20 layers with 3.3M parameters
    /// (train.py logs `param size = 3.349342MB`, auxiliary head excluded).
    #[test]
    fn darts_v2_parameter_count() {
        let g = Genotype::parse(DARTS_V2).unwrap();
        let net = DartsNet {
            init_channels: 36,
            layers: 20,
            ..DartsNet::default()
        };
        assert_eq!(g.network(&net).unwrap().num_params(), 3_349_342);
    }

    #[test]
    fn network_shapes() {
        let g = Genotype::parse(DARTS_V2).unwrap();
        let net = g.network(&DartsNet::default()).unwrap();
        // Cell outputs: 4·C channels at 32², 4·2C at 16², 4·4C at 8².
        let out = |i: usize| {
            net.nodes
                .iter()
                .find(|n| n.name == format!("cell{i}.out"))
                .unwrap()
                .shape
        };
        assert_eq!(out(0), Shape::new(1, 32, 32, 64));
        assert_eq!(out(2), Shape::new(1, 16, 16, 128));
        assert_eq!(out(3), Shape::new(1, 16, 16, 128));
        assert_eq!(out(5), Shape::new(1, 8, 8, 256));
        assert_eq!(out(7), Shape::new(1, 8, 8, 256));
        assert_eq!(net.nodes[net.output].shape, Shape::new(1, 1, 1, 10));
    }

    #[test]
    fn none_edges_give_zeros_or_nothing() {
        let mut g = Genotype::parse(DARTS_V2).unwrap();
        // Node 2 of both cells gets two `none` edges: zeros of the node's shape.
        for c in [&mut g.normal, &mut g.reduce] {
            c.edges[0].0 = DartsOp::None;
            c.edges[1].0 = DartsOp::None;
        }
        let net = g.network(&DartsNet::default()).unwrap();
        let z = net
            .nodes
            .iter()
            .find(|n| n.name == "cell2.n2.zeros")
            .unwrap();
        assert_eq!(z.shape, Shape::new(1, 16, 16, 32));
        let z = net
            .nodes
            .iter()
            .find(|n| n.name == "cell0.n2.zeros")
            .unwrap();
        assert_eq!(z.shape, Shape::new(1, 32, 32, 16));
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_rules() {
        let a = Genotype::sample(40, 1).unwrap();
        assert_eq!(a, Genotype::sample(40, 1).unwrap());
        assert_ne!(a, Genotype::sample(40, 2).unwrap());
        for g in &a {
            assert_eq!(Genotype::parse(&g.to_string()).unwrap(), *g);
            for c in [&g.normal, &g.reduce] {
                for node in 0..4 {
                    let (o1, j1) = c.edges[2 * node];
                    let (o2, j2) = c.edges[2 * node + 1];
                    assert!(j1 < j2 && j2 < node + 2);
                    assert!(o1 != DartsOp::None && o2 != DartsOp::None);
                }
            }
        }
    }
}
