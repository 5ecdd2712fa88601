//! Criterion benches of every CPU kernel at the shapes each search space
//! runs, and of one whole cell per space. `cargo bench --bench kernels`
//! runs them all (tens of minutes, see docs/performance.md, "Kernel benches");
//! `cargo bench --bench kernels -- 'conv2d/darts/dw'` runs one group.
//!
//! The shapes are not listed by hand: [`sites`] builds a few networks per
//! space with the public API, plans them as the CPU scorer does
//! ([`Plan::new`]), and keeps each distinct kernel call once (op, input
//! shapes, and the fusions the plan gives it: a ReLU applied as a conv
//! loads its input, a conv that leaves channel sums for its BatchNorm, a
//! BatchNorm that normalises from them, an add into a buffer it owns). So
//! a new op or shape in a space is benched without editing this file, and
//! each bench calls the op's public CPU entry point as the runner's
//! `Forward<Cpu>` dispatch does: convs go through `conv2d_forward*`, so
//! whatever algorithm sits behind them (Winograd, a faster depthwise
//! kernel) is what gets timed.
//!
//! Names are `<family>/<space>/<kind and shape>`, e.g.
//! `conv2d/darts/dw 3x3 c32 16x16 +relu`: `+relu` is a ReLU fused into the
//! conv's input, `+sums` the BatchNorm channel sums of its output.
//! Throughput is FLOP for convs and linear layers, elements read for the
//! rest (elements packed for sign packing, word pairs for Hamming).

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, Bencher, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use dasnas::exec::plan::{Plan, Step};
use dasnas::net::{init::init_params, Op};
use dasnas::ops::add::cpu::{add_forward, add_forward_inplace};
use dasnas::ops::batchnorm::cpu::{batchnorm_forward, batchnorm_forward_from_sums};
use dasnas::ops::batchnorm::ChannelSums;
use dasnas::ops::concat::cpu::concat_forward;
use dasnas::ops::conv2d::cpu::{
    conv2d_forward, conv2d_forward_relu_input, conv2d_forward_stats, conv2d_forward_winograd,
    winograd, ConvKernel,
};
use dasnas::ops::crop::cpu::crop_forward;
use dasnas::ops::global_avg_pool::cpu::global_avg_pool_forward;
use dasnas::ops::linear::cpu::linear_forward;
use dasnas::ops::pool::{cpu::pool_forward, PoolKind};
use dasnas::ops::relu::cpu::relu_forward;
use dasnas::ops::{CpuFwd, Forward};
use dasnas::score::ReluCodes;
use dasnas::score::{codes::pack_signs, hamming, logdet::cholesky_logdet, metrics};
use dasnas::space::{Arch, Space};
use dasnas::{data::gaussian_batch, Shape, Tensor};
use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

/// The scoring batch of every space (the scorer's default).
const B: usize = 128;

/// The batch NB101's kernels are benched at. Its 128-channel stem makes a
/// 128-channel 3×3 conv of the first stack ≈ 39 GFLOP at B = 128 (about
/// 0.3 s at the 3×3 kernel's rate on 2 cores, and several such shapes);
/// a quarter of the batch keeps its kernels near the other spaces' in
/// time. Each image's work is the same at any batch (BatchNorm's
/// statistics too), so GFLOP/s and elements/s compare with B = 128's,
/// save that a smaller tensor may sit in cache a little more. Its codes
/// and its whole cell run at B = 128.
const B_NB101: usize = 32;

/// The cells whose networks the shapes come from, per space: together
/// they use every op of the space. The first of each is also the cell
/// [`cell`] scores end to end.
const NB201_ARCHS: &[&str] = &[
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|",
];
/// NB101 at its default 128-channel stem: a cell with all three ops (and
/// input projections); one whose third vertex sums its two elders
/// truncated to its channels (43 → 42: crops) before a 3×3 conv; and a
/// chain of two 3×3 convs at the full width of each stack (128, 256,
/// 512 channels: the costliest NB101 shapes).
const NB101_ARCHS: &[&str] = &[
    "0111100001000010000100000/input|conv3x3-bn-relu|conv1x1-bn-relu|maxpool3x3|output",
    "0110100011000110000100000/input|conv3x3-bn-relu|maxpool3x3|conv3x3-bn-relu|output",
    "0101001000010000/input|conv3x3-bn-relu|conv3x3-bn-relu|output",
];
/// DARTS at its defaults (C = 16, 8 cells): DARTS-V2, and a genotype with
/// the ops V2 lacks (5×5 and dilated convs, average pools) in both cells.
const DARTS_ARCHS: &[&str] = &[
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), \
     ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), \
     ('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), \
     ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), \
     ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))",
    "Genotype(normal=[('sep_conv_5x5', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), \
     ('max_pool_3x3', 1), ('dil_conv_3x3', 0), ('sep_conv_3x3', 2), ('skip_connect', 1), \
     ('avg_pool_3x3', 3)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 0), \
     ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0), \
     ('skip_connect', 1), ('max_pool_3x3', 0), ('skip_connect', 2)], reduce_concat=range(2, 6))",
];

/// Each space: its label, the cells above, and the batch its kernels run at.
fn spaces() -> [(&'static str, Space, &'static [&'static str], usize); 3] {
    [
        ("nb201", Space::NB201, NB201_ARCHS, B),
        ("nb101", Space::NB101, NB101_ARCHS, B_NB101),
        ("darts", Space::DARTS, DARTS_ARCHS, B),
    ]
}

/// One kernel call the CPU scorer makes: a node step of a space's plan.
struct Site {
    space: &'static str,
    op: Op,
    /// The inputs' shapes, batch included, in the op's order (a fused
    /// ReLU's source as input 0).
    inputs: Vec<Shape>,
    out: Shape,
    /// The node's parameters as the scorer draws them.
    params: Vec<Vec<f32>>,
    /// Input 0 is read through a ReLU (a conv).
    relu_input: bool,
    /// The conv also returns its output's channel sums.
    sums_out: bool,
    /// The BatchNorm normalises in place from its producer's sums.
    from_sums: bool,
    /// The input whose buffer the output is (an add).
    in_place: Option<usize>,
}

/// A tensor's per-sample shape as names print it: `c16 32x32`.
fn chw(s: Shape) -> String {
    format!("c{} {}x{}", s.c, s.h, s.w)
}

/// Every distinct kernel call of the networks of [`spaces`], in plan
/// order, each once per space (the same call in two cells, or twice in
/// one network, costs the same).
fn sites() -> &'static [Site] {
    static SITES: OnceLock<Vec<Site>> = OnceLock::new();
    SITES.get_or_init(|| {
        let mut out: Vec<Site> = Vec::new();
        let mut seen = HashSet::new();
        for (label, space, archs, batch) in spaces() {
            for a in archs {
                let graph = Arch::parse(space, a)
                    .and_then(|a| a.network())
                    .unwrap_or_else(|e| panic!("{label} {a}: {e}"));
                let plan = Plan::new(&graph, batch).expect("plan");
                let params = init_params(&graph, 0);
                for step in &plan.steps {
                    let Step::Node(s) = step else { continue };
                    let node = &graph.nodes[s.node];
                    if node.op.spec().role() == dasnas::ops::Role::Input {
                        continue;
                    }
                    let site = Site {
                        space: label,
                        op: node.op.clone(),
                        inputs: s.inputs.iter().map(|x| x.shape).collect(),
                        out: s.out_shape,
                        params: node.params.iter().map(|&p| params[p].clone()).collect(),
                        relu_input: s.relu_input,
                        sums_out: s.partials_out.is_some(),
                        from_sums: s.partials_in.as_ref().is_some_and(|p| p.filled),
                        in_place: s.in_place,
                    };
                    let key = format!(
                        "{label} {:?} {:?} {} {} {} {:?}",
                        site.op,
                        site.inputs,
                        site.relu_input,
                        site.sums_out,
                        site.from_sums,
                        site.in_place
                    );
                    if seen.insert(key) {
                        out.push(site);
                    }
                }
            }
        }
        out
    })
}

/// The sites of one space whose op `pick` accepts.
fn sites_of<'a>(
    space: &'a str,
    pick: impl Fn(&Op) -> bool + 'a,
) -> impl Iterator<Item = &'static Site> + 'a {
    sites()
        .iter()
        .filter(move |s| s.space == space && pick(&s.op))
}

/// Uniform values in [-1, 1), seeded.
fn random(shape: Shape, seed: u64) -> Tensor {
    let key = dasnas::rng::stream_key(seed, 1);
    let data = (0..shape.len() as u64)
        .map(|i| dasnas::rng::uniform_pm1(key, i))
        .collect();
    Tensor { shape, data }
}

/// Random tensors of the site's input shapes.
fn inputs(site: &Site) -> Vec<Tensor> {
    (0..)
        .zip(&site.inputs)
        .map(|(k, &s)| random(s, k))
        .collect()
}

/// Elements of all the site's inputs, as its throughput.
fn elements_in(site: &Site) -> Throughput {
    Throughput::Elements(site.inputs.iter().map(|s| s.len() as u64).sum())
}

/// A criterion group of one kernel family in one space.
struct Group<'c> {
    g: BenchmarkGroup<'c, WallTime>,
    /// Names benched so far: sites that differ only in what does not
    /// change the work (which input an add accumulates into) share a name
    /// and are benched once.
    seen: HashSet<String>,
}

impl<'c> Group<'c> {
    /// `<family>/<space>`, `samples` samples per bench.
    fn new(c: &'c mut Criterion, family: &str, space: &str, samples: usize) -> Self {
        let mut g = c.benchmark_group(format!("{family}/{space}"));
        g.sample_size(samples);
        Group {
            g,
            seen: HashSet::new(),
        }
    }

    /// Benches `f` as `id` at throughput `t`, unless `id` was benched.
    fn bench(&mut self, id: String, t: Throughput, f: impl FnMut(&mut Bencher<'_, WallTime>)) {
        if self.seen.insert(id.clone()) {
            self.g.throughput(t);
            self.g.bench_function(id, f);
        }
    }

    fn finish(self) {
        self.g.finish();
    }
}

/// Every conv of every space, through the entry point the runner's
/// dispatch picks for it (with channel sums, with a fused ReLU, or plain).
fn conv(c: &mut Criterion) {
    for (space, ..) in spaces() {
        // 20 samples: the large shapes take tens of ms each.
        let mut g = Group::new(c, "conv2d", space, 20);
        for site in sites_of(space, |op| matches!(op, Op::Conv2d(_))) {
            let Op::Conv2d(spec) = &site.op else {
                continue;
            };
            let kind = site.op.profile_kind().trim_start_matches("conv2d ");
            let mut id = kind.to_string();
            if !kind.contains('x') {
                id += &format!(" {}x{}", spec.kh, spec.kw);
            }
            if spec.stride > 1 && !kind.contains("strided") {
                id += &format!(" s{}", spec.stride);
            }
            // Named where the kind does not say them (`conv2d other`).
            if spec.dilation > 1 && !kind.contains("dilated") {
                id += &format!(" d{}", spec.dilation);
            }
            if spec.groups > 1 && !kind.contains("dw") {
                id += &format!(" g{}", spec.groups);
            }
            id += &format!(" c{}", spec.cin);
            if spec.cout != spec.cin {
                id += &format!("-{}", spec.cout);
            }
            id += &format!(" {}x{}", site.inputs[0].h, site.inputs[0].w);
            if site.relu_input {
                id += " +relu";
            }
            if site.sums_out {
                id += " +sums";
            }
            let x = &inputs(site)[0];
            let w = &site.params[0];
            let mut y = Tensor::zeros(site.out);
            g.bench(
                id.clone(),
                Throughput::Elements(spec.flops(x.shape).unwrap()),
                |b| {
                    b.iter(|| {
                        if site.sums_out {
                            conv2d_forward_stats(
                                spec,
                                x,
                                w,
                                &mut y,
                                site.relu_input,
                                ConvKernel::Auto,
                            )
                            .map(|_sums| ())
                            .unwrap()
                        } else if site.relu_input {
                            conv2d_forward_relu_input(spec, x, w, &mut y).unwrap()
                        } else {
                            conv2d_forward(spec, x, w, &mut y).unwrap()
                        }
                    })
                },
            );
            // The fast algorithm's twin of every conv it can compute
            // (`--conv fast` picks it only where `winograd::applies`; the
            // others show why), same effective FLOPs.
            if winograd::supports(spec) {
                let mark = if winograd::applies(spec) {
                    ""
                } else {
                    " (not chosen)"
                };
                g.bench(
                    format!("{id} winograd{mark}"),
                    Throughput::Elements(spec.flops(x.shape).unwrap()),
                    |b| {
                        b.iter(|| {
                            conv2d_forward_winograd(
                                spec,
                                x,
                                w,
                                &mut y,
                                site.relu_input,
                                ConvKernel::Auto,
                                site.sums_out,
                            )
                            .unwrap()
                        })
                    },
                );
            }
        }
        g.finish();
    }
}

/// Max and average pools (NB201's 3×3 average and 2×2 downsample, NB101's
/// 3×3 max and 2×2 downsample, DARTS's 3×3 pools at stride 1 and 2).
fn pool(c: &mut Criterion) {
    for (space, ..) in spaces() {
        let mut g = Group::new(c, "pool", space, 30);
        for site in sites_of(space, |op| matches!(op, Op::Pool(_))) {
            let Op::Pool(spec) = &site.op else { continue };
            let kind = match spec.kind {
                PoolKind::Max => "max",
                PoolKind::Avg => "avg",
            };
            let mut id = format!("{kind} {0}x{0}", spec.k);
            if spec.stride > 1 {
                id += &format!(" s{}", spec.stride);
            }
            id += &format!(" {}", chw(site.inputs[0]));
            let x = &inputs(site)[0];
            let mut y = Tensor::zeros(site.out);
            g.bench(id, elements_in(site), |b| {
                b.iter(|| pool_forward(spec, x, &mut y).unwrap())
            });
        }
        g.finish();
    }
}

/// BatchNorm: the in-place pass from a conv's channel sums (the fused
/// path) and the full pass that sums its input first, where each runs.
fn batchnorm(c: &mut Criterion) {
    for (space, ..) in spaces() {
        let mut g = Group::new(c, "batchnorm", space, 30);
        for site in sites_of(space, |op| matches!(op, Op::BatchNorm(_))) {
            let Op::BatchNorm(spec) = &site.op else {
                continue;
            };
            let mut x = inputs(site).swap_remove(0);
            if site.from_sums {
                // Sums of mean 0 and variance 1 - eps, γ = 1, β = 0: the
                // normalisation is the identity, so the in-place pass
                // repeats on stable values. Its cost does not depend on
                // them.
                let (gamma, beta) = (&vec![1.0; spec.channels], &vec![0.0; spec.channels]);
                let count = x.shape.n * x.shape.h * x.shape.w;
                let sums = ChannelSums {
                    count,
                    sum: vec![0.0; spec.channels],
                    sumsq: vec![count as f64 * (1.0 - spec.eps as f64); spec.channels],
                };
                let id = format!("from sums {}", chw(x.shape));
                g.bench(id, elements_in(site), |b| {
                    b.iter(|| {
                        batchnorm_forward_from_sums(spec, &mut x, gamma, beta, &sums).unwrap()
                    })
                });
            } else {
                let (gamma, beta) = (&site.params[0], &site.params[1]);
                let mut y = Tensor::zeros(site.out);
                let id = format!("full {}", chw(x.shape));
                g.bench(id, elements_in(site), |b| {
                    b.iter(|| batchnorm_forward(spec, &x, gamma, beta, &mut y).unwrap())
                });
            }
        }
        g.finish();
    }
}

/// Adds (cell nodes summing their edges, residual sums), in place into an
/// input the plan gives them or into a buffer of their own.
fn add(c: &mut Criterion) {
    for (space, ..) in spaces() {
        let mut g = Group::new(c, "add", space, 30);
        for site in sites_of(space, |op| matches!(op, Op::Add(_))) {
            let mut xs = inputs(site);
            let mut id = format!("{} in {}", xs.len(), chw(site.out));
            match site.in_place {
                Some(pos) => {
                    id += " in place";
                    // The accumulator grows by the others each iteration,
                    // linearly: some 10^5 iterations of values in ±1 stay
                    // far from overflow, and the cost does not depend on
                    // the values.
                    let mut acc = xs.remove(pos);
                    g.bench(id, elements_in(site), |b| {
                        b.iter(|| {
                            let others: Vec<&Tensor> = xs.iter().collect();
                            add_forward_inplace(&mut acc, pos, &others).unwrap()
                        })
                    });
                }
                None => {
                    let mut y = Tensor::zeros(site.out);
                    g.bench(id, elements_in(site), |b| {
                        b.iter(|| {
                            let refs: Vec<&Tensor> = xs.iter().collect();
                            add_forward(&refs, &mut y).unwrap()
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

/// Channel concatenations (NB101's cell output, DARTS's cell output and
/// FactorizedReduce), and crops (NB101's channel truncations, DARTS's
/// one-pixel shift in FactorizedReduce).
fn concat_crop(c: &mut Criterion) {
    for (space, ..) in spaces() {
        let mut g = Group::new(c, "concat", space, 30);
        for site in sites_of(space, |op| matches!(op, Op::Concat(_))) {
            let xs = inputs(site);
            let cs: Vec<String> = site.inputs.iter().map(|s| s.c.to_string()).collect();
            let id = format!("c{} {}x{}", cs.join("+"), site.out.h, site.out.w);
            let mut y = Tensor::zeros(site.out);
            g.bench(id, elements_in(site), |b| {
                b.iter(|| {
                    let refs: Vec<&Tensor> = xs.iter().collect();
                    concat_forward(&refs, &mut y).unwrap()
                })
            });
        }
        g.finish();
        let mut g = Group::new(c, "crop", space, 30);
        for site in sites_of(space, |op| matches!(op, Op::Crop(_))) {
            let Op::Crop(spec) = &site.op else { continue };
            let x = &inputs(site)[0];
            let id = format!("{} to {}", chw(x.shape), chw(site.out));
            let mut y = Tensor::zeros(site.out);
            g.bench(id, elements_in(site), |b| {
                b.iter(|| crop_forward(spec, x, &mut y).unwrap())
            });
        }
        g.finish();
    }
}

/// ReLUs the plan stores (those read by an op that cannot fuse them).
fn relu(c: &mut Criterion) {
    for (space, ..) in spaces() {
        let mut g = Group::new(c, "relu", space, 30);
        for site in sites_of(space, |op| matches!(op, Op::Relu(_))) {
            let x = &inputs(site)[0];
            let mut y = Tensor::zeros(site.out);
            g.bench(chw(x.shape), elements_in(site), |b| {
                b.iter(|| relu_forward(x, &mut y).unwrap())
            });
        }
        g.finish();
    }
}

/// The classifier head: global average pool and the linear layer.
fn head(c: &mut Criterion) {
    for (space, ..) in spaces() {
        let mut g = Group::new(c, "head", space, 30);
        for site in sites_of(space, |op| {
            matches!(op, Op::GlobalAvgPool(_) | Op::Linear(_))
        }) {
            let x = &inputs(site)[0];
            let mut y = Tensor::zeros(site.out);
            match &site.op {
                Op::Linear(spec) => {
                    let per = site.inputs.iter().map(|s| s.with_n(1)).collect::<Vec<_>>();
                    let flops = site.op.spec().flops(&per, site.out.with_n(1));
                    let (w, bias) = (&site.params[0], &site.params[1]);
                    let id = format!("linear {}-{}", x.shape.c, site.out.c);
                    g.bench(id, Throughput::Elements(flops * x.shape.n as u64), |b| {
                        b.iter(|| linear_forward(spec, x, w, bias, &mut y).unwrap())
                    });
                }
                _ => {
                    g.bench(format!("gap {}", chw(x.shape)), elements_in(site), |b| {
                        b.iter(|| global_avg_pool_forward(x, &mut y).unwrap())
                    });
                }
            }
        }
        g.finish();
    }
}

/// Any op no family above covers (none today: e.g. `axis_conv`, should a
/// space start using it), through the `Forward<Cpu>` dispatch the runner
/// calls, so no kernel a space runs goes unbenched.
fn other(c: &mut Criterion) {
    let covered = |op: &Op| {
        matches!(
            op,
            Op::Conv2d(_)
                | Op::Pool(_)
                | Op::BatchNorm(_)
                | Op::Add(_)
                | Op::Concat(_)
                | Op::Crop(_)
                | Op::Relu(_)
                | Op::GlobalAvgPool(_)
                | Op::Linear(_)
        )
    };
    for (space, ..) in spaces() {
        let todo: Vec<&Site> = sites_of(space, |op| !covered(op)).collect();
        if todo.is_empty() {
            continue;
        }
        let mut g = Group::new(c, "other", space, 10);
        for site in todo {
            let xs = inputs(site);
            let shapes: Vec<String> = site.inputs.iter().map(|&s| chw(s)).collect();
            let id = format!(
                "{} {} to {}",
                site.op.profile_kind(),
                shapes.join(" "),
                chw(site.out)
            );
            let mut y = Tensor::zeros(site.out);
            g.bench(id, elements_in(site), |b| {
                b.iter(|| {
                    // Plain, unfused calls: the families above handle the
                    // fusions (in-place outputs, channel sums).
                    let mut a = CpuFwd {
                        inputs: xs.iter().collect(),
                        out: &mut y,
                        params: site.params.iter().map(Vec::as_slice).collect(),
                        relu_input: site.relu_input,
                        in_place: None,
                        partials_out: None,
                        partials_in: None,
                        saved: None,
                        conv: Default::default(),
                    };
                    Forward::<dasnas::ops::Cpu>::forward(&site.op, &mut a).unwrap()
                })
            });
        }
        g.finish();
    }
}

/// Sign packing and Hamming accumulation at B = 128 for every code length
/// a space packs (named by its first tensor of that length), with the
/// kernel the scorer picks; and every popcount kernel this CPU has at
/// NB201's first code.
fn codes(c: &mut Criterion) {
    for (space, s, archs, _) in spaces() {
        // Per-sample lengths of the packed tensors, from the plans at B.
        let mut lens: Vec<Shape> = Vec::new();
        for a in archs {
            let graph = Arch::parse(s, a).and_then(|a| a.network()).unwrap();
            let plan = Plan::new(&graph, B).unwrap();
            for step in &plan.steps {
                let shape = match step {
                    Step::Node(n) if n.pack.is_some() => n.out_shape,
                    Step::Pack(p) => p.shape,
                    _ => continue,
                };
                // Packing and Hamming cost depends on the length alone:
                // one shape per length.
                if lens.iter().all(|l| l.per_sample() != shape.per_sample()) {
                    lens.push(shape.with_n(B));
                }
            }
        }
        let mut g = Group::new(c, "codes", space, 30);
        for &shape in &lens {
            let x = random(shape, 4);
            g.bench(
                format!("pack {}", chw(shape)),
                Throughput::Elements(shape.len() as u64),
                |b| b.iter(|| pack_signs(&x.data, B).unwrap()),
            );
        }
        g.finish();
        let mut g = Group::new(c, "hamming", space, 30);
        for (i, &shape) in lens.iter().enumerate() {
            let packed = pack_signs(&random(shape, 5).data, B).unwrap();
            let pairs_words = (B * (B - 1) / 2 * packed.words_per_sample) as u64;
            // The kernel the scorer picks at every length; the others (the
            // fallbacks of CPUs without AVX2 or POPCNT) only at NB201's
            // first code.
            let kernels = match (space, i) {
                ("nb201", 0) => hamming::PopcountKernel::available(),
                _ => vec![hamming::PopcountKernel::detect()],
            };
            for k in kernels {
                let mut h = vec![0u64; B * B];
                let id = format!("{} {} {}w", k.name(), chw(shape), packed.words_per_sample);
                g.bench(id, Throughput::Elements(pairs_words), |b| {
                    b.iter(|| hamming::hamming_accumulate_with(k, &packed, 1, &mut h).unwrap())
                });
            }
        }
        g.finish();
    }
}

/// The log-det phase at B = 128: Cholesky of a 128×128 matrix, and the
/// scores from a Hamming matrix (K_H, its Cholesky, the metrics).
fn logdet(c: &mut Criterion) {
    let mut g = c.benchmark_group("logdet");
    let n = B;
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = if i == j {
                2.0 * n as f64
            } else {
                ((i * j) % 7) as f64
            };
        }
    }
    g.bench_function("cholesky b128", |b| b.iter(|| cholesky_logdet(&a, n)));
    // The Hamming matrix of one NB201 stem-sized code.
    let codes = pack_signs(&random(Shape::new(B, 32, 32, 16), 6).data, B).unwrap();
    let mut h = vec![0u64; B * B];
    hamming::hamming_accumulate(&codes, 1, &mut h).unwrap();
    let relu_codes = ReluCodes {
        batch: B,
        n_units: codes.bits as u64,
        hamming: h,
        swap: None,
    };
    g.bench_function("scores from H b128", |b| {
        b.iter(|| metrics::scores(&relu_codes, 1.0))
    });
    g.finish();
}

/// One whole cell per space scored end to end at B = 128 (network build,
/// weights, forward, codes, log-det): the first cell of each space's list.
/// These take seconds per iteration (measured on the shared 2-core
/// development machine: NB201 0.2–0.6 s, DARTS ≈ 1 s, NB101 at its
/// 128-channel stem ≈ 6.5 s), so 10 samples of one iteration each (flat
/// sampling; criterion warns that they outrun the measurement time, which
/// is expected): about 70 s for NB101 alone.
fn cell(c: &mut Criterion) {
    let mut g = c.benchmark_group("cell");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    let batch = gaussian_batch(B, 32, 0);
    for (space, s, archs, _) in spaces() {
        let arch = Arch::parse(s, archs[0]).unwrap();
        g.bench_function(format!("{space} b{B}"), |b| {
            b.iter(|| dasnas::score_arch(&arch, &batch, 0, 1.0).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short warm-up and measurement: there are a couple of hundred
    // benches, and the machine these run on is usually shared. Command-line
    // options (`--measurement-time`, `--sample-size`) override these.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = conv, pool, batchnorm, add, concat_crop, relu, head, other, codes, logdet, cell
}
criterion_main!(benches);
