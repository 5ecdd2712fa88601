//! The forward passes of the measures that read feature maps (MeCo,
//! Zen-NAS, AZ-NAS), and the reductions each keeps of them: one feature
//! map of one sample per node (MeCo), channel covariances of the blocks'
//! outputs and the position-averaged products of their gradients
//! (AZ-NAS), one distance and BatchNorm variances (Zen-NAS).
//!
//! The forward passes run on the scorer's device; on a GPU each value a
//! measure reads is copied back as soon as it is computed (MeCo: one
//! sample of every node; Zen-NAS: the pre-pooling features and each
//! BatchNorm's input; AZ-NAS: the blocks and the values they hold) and
//! reduced on the host. AZ-NAS's per-block vector-Jacobian products run
//! on the host. Their own weights and inputs are drawn here from the
//! weight seed, as the official implementations draw theirs: AZ-NAS
//! re-initialises conv and linear weights Kaiming-normal (fan-in) and
//! scores a Gaussian batch; Zen-NAS re-initialises them N(0, 1) and scores
//! a Gaussian batch and a copy with 1 % Gaussian noise added.
//!
//! Layouts: tensors are NHWC; a covariance is C×C row-major in f64; a
//! product matrix is `rows × cols` row-major in f64.

use super::GradientDevice;
use crate::error::{Error, Result};
use crate::net::{Graph, NodeId};
use crate::rng::{name_id, normal, stream_key};
use crate::tensor::{Shape, Tensor};
use crate::train::cpu::vector_jacobian_product;
use rayon::prelude::*;

/// Every node `samples` asks for, its first `samples(i)` samples (all on
/// the CPU, which keeps the whole value anyway), visited on `device`.
fn visit_on(
    device: &GradientDevice<'_>,
    graph: &Graph,
    params: &[Vec<f32>],
    input: &Tensor,
    samples: &dyn Fn(NodeId) -> usize,
    visit: &mut dyn FnMut(NodeId, &Tensor) -> Result<()>,
) -> Result<()> {
    match device {
        GradientDevice::Cpu => {
            crate::train::cpu::forward_visit(graph, params, input, &mut |i, v| {
                if samples(i) > 0 {
                    visit(i, v)
                } else {
                    Ok(())
                }
            })
        }
        GradientDevice::Cuda(dev) => {
            crate::train::cuda::forward_visit(dev, graph, params, input, samples, visit)
        }
    }
}

/// MeCo's pass: sample 0's value at every node with a spatial output.
#[derive(Debug)]
pub struct SampleFeatures {
    /// Per node in order, its id and sample 0's value (`n = 1`, NHWC).
    pub maps: Vec<(NodeId, Tensor)>,
}

/// AZ-NAS's pass.
#[derive(Debug)]
pub struct BlockPass {
    /// Per block ([`Graph::blocks`]) in order: its channel count C and the
    /// C×C covariance of its channels over the batch and positions
    /// (biased: divided by B·H·W).
    pub covariances: Vec<(usize, Vec<f64>)>,
    /// Per consecutive pair of blocks: `(rows, cols, M)` with
    /// `M = G_inᵀ G_out / (B·H_out·W_out)`, `G_out` a Rademacher seed at
    /// the later block and `G_in` its vector-Jacobian product at the
    /// earlier one (space-to-depth folded to the later block's size, so
    /// rows = C_in·r²); `None` where the later block's value is the
    /// earlier one's (an identity block).
    pub products: Vec<Option<(usize, usize, Vec<f64>)>>,
}

/// Zen-NAS's pass.
#[derive(Debug)]
pub struct ZenPass {
    /// Mean over the batch of Σ |f(x) − f(x + γ·ε)| over each sample's
    /// pre-pooling feature map.
    pub distance: f64,
    /// Per BatchNorm node, the mean over channels of the running variance
    /// after the two passes (PyTorch's update, momentum 0.1, unbiased
    /// batch variance, from 1).
    pub running_var: Vec<f64>,
}

/// How [`reinit`] draws conv and linear weights.
#[derive(Clone, Copy, Debug)]
pub enum Reinit {
    /// N(0, 1) (Zen-NAS).
    StandardNormal,
    /// N(0, 2 / fan_in) (AZ-NAS: Kaiming normal, fan-in, ReLU gain).
    KaimingFanIn,
}

/// `graph`'s parameters re-drawn for a measure: every conv and linear
/// weight by `how` from stream `<name>#<tag>` under `seed`, their biases 0,
/// BatchNorm γ = 1 and β = 0 (their initial values), other parameters as
/// in `params`.
pub fn reinit(
    graph: &Graph,
    params: &[Vec<f32>],
    how: Reinit,
    seed: u64,
    tag: &str,
) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = params.to_vec();
    for node in &graph.nodes {
        let spec = node.op.spec();
        if spec.is_weight_layer() {
            if let Some((&w, rest)) = node.params.split_first() {
                let len = graph.params[w].len;
                let fan_in = (len / node.shape.c.max(1)).max(1);
                let std = match how {
                    Reinit::StandardNormal => 1.0,
                    Reinit::KaimingFanIn => (2.0 / fan_in as f64).sqrt(),
                };
                let key = stream_key(seed, name_id(&format!("{}#{tag}", graph.params[w].name)));
                out[w] = (0..len as u64)
                    .into_par_iter()
                    .map(|i| (normal(key, i) * std) as f32)
                    .collect();
                for &b in rest {
                    out[b].fill(0.0);
                }
            }
        } else if spec.normalises_batch() {
            if let [g, b] = node.params[..] {
                out[g].fill(1.0);
                out[b].fill(0.0);
            }
        }
    }
    out
}

/// A batch shaped `shape` of N(0, 1) values from stream `stream` under `seed`.
pub fn gaussian(shape: Shape, seed: u64, stream: &str) -> Tensor {
    let key = stream_key(seed, name_id(stream));
    Tensor {
        shape,
        data: (0..shape.len() as u64)
            .into_par_iter()
            .map(|i| normal(key, i) as f32)
            .collect(),
    }
}

/// MeCo's pass: one forward of `batch` with `params`, keeping sample 0 of
/// every node whose output has more than one position.
pub fn sample_features(
    graph: &Graph,
    params: &[Vec<f32>],
    batch: &Tensor,
    device: &GradientDevice<'_>,
) -> Result<SampleFeatures> {
    let mut maps = Vec::new();
    let spatial = |i: NodeId| {
        let s = graph.nodes[i].shape;
        usize::from(s.h * s.w > 1)
    };
    visit_on(device, graph, params, batch, &spatial, &mut |i, v| {
        let s = v.shape;
        if s.h * s.w > 1 {
            maps.push((
                i,
                Tensor {
                    shape: s.with_n(1),
                    data: v.data[..s.per_sample()].to_vec(),
                },
            ));
        }
        Ok(())
    })?;
    maps.sort_by_key(|(i, _)| *i);
    Ok(SampleFeatures { maps })
}

/// The biased covariance of the channels of `x` (NHWC) over its samples
/// and positions, C×C in f64. Partial sums are taken over fixed groups of
/// rows and added in order, so the result does not depend on the thread
/// count.
pub fn channel_covariance(x: &Tensor) -> Vec<f64> {
    let c = x.shape.c;
    let rows = x.data.len() / c.max(1);
    if rows == 0 || c == 0 {
        return vec![0.0; c * c];
    }
    let group = rows.div_ceil(16).max(1);
    let partials: Vec<(Vec<f64>, Vec<f64>)> = x
        .data
        .par_chunks(group * c)
        .map(|chunk| {
            let mut sum = vec![0.0f64; c];
            let mut prod = vec![0.0f64; c * c];
            let mut row64 = vec![0.0f64; c];
            for row in chunk.chunks_exact(c) {
                for (d, &v) in row64.iter_mut().zip(row) {
                    *d = f64::from(v);
                }
                for i in 0..c {
                    let xi = row64[i];
                    sum[i] += xi;
                    let line = &mut prod[i * c + i..(i + 1) * c];
                    for (p, &xj) in line.iter_mut().zip(&row64[i..]) {
                        *p += xi * xj;
                    }
                }
            }
            (sum, prod)
        })
        .collect();
    let mut sum = vec![0.0f64; c];
    let mut prod = vec![0.0f64; c * c];
    for (s, p) in &partials {
        for (a, b) in sum.iter_mut().zip(s) {
            *a += b;
        }
        for (a, b) in prod.iter_mut().zip(p) {
            *a += b;
        }
    }
    let n = rows as f64;
    let mut cov = vec![0.0f64; c * c];
    for i in 0..c {
        for j in i..c {
            let v = prod[i * c + j] / n - (sum[i] / n) * (sum[j] / n);
            cov[i * c + j] = v;
            cov[j * c + i] = v;
        }
    }
    cov
}

/// ±1 values shaped `shape` from stream `stream` under `seed`.
fn rademacher(shape: Shape, seed: u64, stream: &str) -> Tensor {
    let key = stream_key(seed, name_id(stream));
    Tensor {
        shape,
        data: (0..shape.len() as u64)
            .into_par_iter()
            .map(|i| {
                if crate::rng::bits(key, i) >> 63 == 1 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect(),
    }
}

/// `M = G_inᵀ G_out / (B·H·W)` with `g_in` folded space-to-depth to
/// `g_out`'s positions (channel `c·r² + i·r + j` of output position
/// (y, x) is input position (y·r + i, x·r + j), channel c, as PyTorch's
/// `PixelUnshuffle`): `(rows, cols, M)`.
pub(crate) fn gradient_product(g_in: &Tensor, g_out: &Tensor) -> Result<(usize, usize, Vec<f64>)> {
    let (si, so) = (g_in.shape, g_out.shape);
    if si.n != so.n || si.h % so.h != 0 || si.w % so.w != 0 || si.h / so.h != si.w / so.w {
        return Err(Error::Shape(format!(
            "block gradients {si} and {so} cannot be folded to one size"
        )));
    }
    let r = si.h / so.h;
    let (rows, cols) = (si.c * r * r, so.c);
    let per_image: Vec<Vec<f64>> = (0..so.n)
        .into_par_iter()
        .map(|n| {
            let mut m = vec![0.0f64; rows * cols];
            let mut folded = vec![0.0f64; rows];
            for y in 0..so.h {
                for x in 0..so.w {
                    for i in 0..r {
                        for j in 0..r {
                            let at = ((n * si.h + y * r + i) * si.w + x * r + j) * si.c;
                            for c in 0..si.c {
                                folded[c * r * r + i * r + j] = f64::from(g_in.data[at + c]);
                            }
                        }
                    }
                    let at = ((n * so.h + y) * so.w + x) * so.c;
                    let out = &g_out.data[at..at + cols];
                    for (a, &fa) in folded.iter().enumerate() {
                        if fa == 0.0 {
                            continue;
                        }
                        let line = &mut m[a * cols..(a + 1) * cols];
                        for (l, &o) in line.iter_mut().zip(out) {
                            *l += fa * f64::from(o);
                        }
                    }
                }
            }
            m
        })
        .collect();
    let mut m = vec![0.0f64; rows * cols];
    for p in &per_image {
        for (a, b) in m.iter_mut().zip(p) {
            *a += b;
        }
    }
    let count = (so.n * so.h * so.w) as f64;
    m.iter_mut().for_each(|v| *v /= count);
    Ok((rows, cols, m))
}

/// What a measure draws for itself: weights, inputs, random vectors
/// (docs/measures.md; `Scorer.measure_inputs` hands them to a reference
/// formulation).
#[derive(Debug)]
pub struct Drawn {
    /// The weights the measure's passes use, indexed like `graph.params`.
    pub params: Vec<Vec<f32>>,
    /// Its named tensors, in the order the measure uses them: AZ-NAS's
    /// `input` and `seed<k>` (the Rademacher vector at block k, k ≥ 1);
    /// Zen-NAS's `input` and `noise`; `meco_opt`'s `channels.<node name>`
    /// (the sampled channel indices, `n = 1`, `h = w = 1`).
    pub tensors: Vec<(String, Tensor)>,
}

impl Drawn {
    fn take(&mut self, name: &str) -> Result<Tensor> {
        let at = self
            .tensors
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| Error::Internal(format!("drawn tensor {name} missing")))?;
        Ok(self.tensors.remove(at).1)
    }
}

/// The families of measures that draw their own inputs, as
/// [`draw`] names them.
pub const DRAWING: &[&str] = &["az_nas", "zen", "meco_opt"];

/// What `family` (`az_nas`, `zen` or `meco_opt`) draws for `graph` with
/// `params` from `seed`, for a batch shaped `batch_shape`.
pub fn draw(
    family: &str,
    graph: &Graph,
    params: &[Vec<f32>],
    batch_shape: Shape,
    seed: u64,
) -> Result<Drawn> {
    match family {
        "az_nas" => {
            let mut tensors = vec![(
                "input".to_string(),
                gaussian(batch_shape, seed, "az_nas.input"),
            )];
            for (k, &b) in graph.blocks.iter().enumerate().skip(1) {
                let shape = graph.nodes[b].shape.with_n(batch_shape.n);
                let name = format!("seed{k}");
                tensors.push((
                    name.clone(),
                    rademacher(shape, seed, &format!("az_nas.{name}")),
                ));
            }
            Ok(Drawn {
                params: reinit(graph, params, Reinit::KaimingFanIn, seed, "az_nas"),
                tensors,
            })
        }
        "zen" => Ok(Drawn {
            params: reinit(graph, params, Reinit::StandardNormal, seed, "zen"),
            tensors: vec![
                ("input".into(), gaussian(batch_shape, seed, "zen.input")),
                ("noise".into(), gaussian(batch_shape, seed, "zen.noise")),
            ],
        }),
        "meco_opt" => {
            let tensors = graph
                .nodes
                .iter()
                .filter(|n| {
                    n.shape.h * n.shape.w > 1 && n.op.spec().role() != crate::ops::Role::Input
                })
                .map(|n| {
                    let key = stream_key(seed, name_id(&format!("meco_opt.{}", n.name)));
                    let chosen = super::meco::sample_channels(
                        n.shape.c,
                        super::meco::SAMPLED.min(n.shape.c),
                        key,
                    );
                    let t = Tensor {
                        shape: Shape::new(1, 1, 1, chosen.len()),
                        data: chosen.iter().map(|&c| c as f32).collect(),
                    };
                    (format!("channels.{}", n.name), t)
                })
                .collect();
            Ok(Drawn {
                params: params.to_vec(),
                tensors,
            })
        }
        other => Err(Error::Arg(format!(
            "no measure family {} draws inputs (known: {})",
            crate::error::quote(other),
            DRAWING.join(", ")
        ))),
    }
}

/// AZ-NAS's pass on `graph`: weights re-drawn Kaiming-normal from `seed`,
/// a Gaussian batch shaped like `batch_shape`; the blocks' covariances,
/// then for each consecutive pair of blocks the vector-Jacobian product of
/// a Rademacher seed through the later block alone (the part of the
/// network between the two, other inputs held at their values).
pub fn block_pass(
    graph: &Graph,
    params: &[Vec<f32>],
    batch_shape: Shape,
    seed: u64,
    device: &GradientDevice<'_>,
) -> Result<BlockPass> {
    if graph.blocks.is_empty() {
        return Err(Error::Arg(
            "this space marks no blocks, which AZ-NAS's measures read".into(),
        ));
    }
    let mut drawn = draw("az_nas", graph, params, batch_shape, seed)?;
    let x = drawn.take("input")?;
    // The parts between consecutive blocks, and which values they hold.
    let mut parts = Vec::with_capacity(graph.blocks.len().saturating_sub(1));
    for w in graph.blocks.windows(2) {
        parts.push(if w[0] == w[1] {
            None
        } else {
            Some(graph.between(w[0], w[1])?)
        });
    }
    // The values kept: the blocks' and those the parts hold.
    let mut keep = vec![false; graph.nodes.len()];
    for &b in &graph.blocks {
        keep[b] = true;
    }
    for (_, held) in parts.iter().flatten() {
        for &(_, j) in held {
            keep[j] = true;
        }
    }
    let mut values: std::collections::HashMap<NodeId, Tensor> = std::collections::HashMap::new();
    let params = &drawn.params;
    let whole = |i: NodeId| if keep[i] { usize::MAX } else { 0 };
    visit_on(device, graph, params, &x, &whole, &mut |i, v| {
        values.insert(i, v.clone());
        Ok(())
    })?;
    let input_node = graph
        .nodes
        .iter()
        .position(|n| n.op.spec().role() == crate::ops::Role::Input);
    let value = |j: NodeId| -> Result<&Tensor> {
        if Some(j) == input_node {
            return Ok(&x);
        }
        values
            .get(&j)
            .ok_or_else(|| Error::Internal(format!("block value {} missing", graph.nodes[j].name)))
    };
    let covariances = graph
        .blocks
        .iter()
        .map(|&b| value(b).map(|v| (v.shape.c, channel_covariance(v))))
        .collect::<Result<Vec<_>>>()?;
    let mut products = Vec::with_capacity(parts.len());
    for (k, part) in parts.iter().enumerate() {
        let Some((sub, held)) = part else {
            products.push(None);
            continue;
        };
        let from = graph.blocks[k];
        let g_out = drawn
            .tensors
            .iter()
            .find(|(n, _)| *n == format!("seed{}", k + 1))
            .map(|(_, t)| t)
            .ok_or_else(|| Error::Internal(format!("AZ-NAS seed {} missing", k + 1)))?;
        let constants = held
            .iter()
            .map(|&(id, j)| value(j).map(|v| (id, v)))
            .collect::<Result<Vec<_>>>()?;
        let g_in = vector_jacobian_product(sub, params, value(from)?, &constants, g_out)?;
        if g_in.shape == g_out.shape && g_in.data == g_out.data {
            // The official code's exact-identity case.
            products.push(None);
            continue;
        }
        products.push(Some(gradient_product(&g_in, g_out)?));
    }
    Ok(BlockPass {
        covariances,
        products,
    })
}

/// Zen-NAS's pass: weights re-drawn N(0, 1) from `seed`, a Gaussian batch
/// x shaped like `batch_shape` and x + `gamma`·ε; the pre-pooling
/// distance and the BatchNorm running variances after both passes.
pub fn zen_pass(
    graph: &Graph,
    params: &[Vec<f32>],
    batch_shape: Shape,
    seed: u64,
    gamma: f32,
    device: &GradientDevice<'_>,
) -> Result<ZenPass> {
    let gap = graph
        .nodes
        .iter()
        .position(|n| n.op.spec().kind() == "global_avg_pool")
        .ok_or_else(|| {
            Error::Arg(
                "Zen-NAS reads the features before global pooling; this network has none".into(),
            )
        })?;
    let pre = graph.nodes[gap].inputs[0];
    let mut drawn = draw("zen", graph, params, batch_shape, seed)?;
    let (x, noise) = (drawn.take("input")?, drawn.take("noise")?);
    let params = drawn.params;
    let mixed = Tensor {
        shape: batch_shape,
        data: x
            .data
            .iter()
            .zip(&noise.data)
            .map(|(&a, &e)| a + gamma * e)
            .collect(),
    };
    // The node each BatchNorm normalises, in node order.
    let bns: Vec<NodeId> = graph
        .nodes
        .iter()
        .filter(|n| n.op.spec().normalises_batch())
        .map(|n| n.inputs[0])
        .collect();
    let mut wanted = vec![false; graph.nodes.len()];
    wanted[pre] = true;
    for &src in &bns {
        wanted[src] = true;
    }
    let read = |i: NodeId| if wanted[i] { usize::MAX } else { 0 };
    let run = |input: &Tensor| -> Result<(Tensor, Vec<Vec<f64>>)> {
        let mut features = None;
        let mut vars: Vec<Vec<f64>> = vec![Vec::new(); bns.len()];
        visit_on(device, graph, &params, input, &read, &mut |i, v| {
            if i == pre {
                features = Some(v.clone());
            }
            for (k, &src) in bns.iter().enumerate() {
                if src == i {
                    vars[k] = unbiased_channel_variance(v);
                }
            }
            Ok(())
        })?;
        let f =
            features.ok_or_else(|| Error::Internal("pre-pooling features not computed".into()))?;
        Ok((f, vars))
    };
    let (f1, v1) = run(&x)?;
    let (f2, v2) = run(&mixed)?;
    let per = f1.shape.per_sample();
    let distance = f1
        .data
        .chunks(per)
        .zip(f2.data.chunks(per))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| f64::from((p - q).abs()))
                .sum::<f64>()
        })
        .sum::<f64>()
        / f1.shape.n as f64;
    let running_var = v1
        .iter()
        .zip(&v2)
        .map(|(a, b)| {
            let c = a.len().max(1) as f64;
            a.iter()
                .zip(b)
                .map(|(&p, &q)| 0.81 + 0.09 * p + 0.1 * q)
                .sum::<f64>()
                / c
        })
        .collect();
    Ok(ZenPass {
        distance,
        running_var,
    })
}

/// Per channel, the unbiased variance of `x` (NHWC) over samples and
/// positions (PyTorch's running-variance update uses it).
fn unbiased_channel_variance(x: &Tensor) -> Vec<f64> {
    let c = x.shape.c;
    let rows = x.data.len() / c.max(1);
    let mut sum = vec![0.0f64; c];
    let mut sq = vec![0.0f64; c];
    for row in x.data.chunks_exact(c) {
        for k in 0..c {
            let v = f64::from(row[k]);
            sum[k] += v;
            sq[k] += v * v;
        }
    }
    let n = rows as f64;
    (0..c)
        .map(|k| {
            if rows < 2 {
                return 0.0;
            }
            let mean = sum[k] / n;
            (sq[k] - n * mean * mean) / (n - 1.0)
        })
        .collect()
}
