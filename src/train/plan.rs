//! The training plan of a network for one batch size, device-free: which
//! values the forward pass keeps for the backward pass, where every value,
//! gradient and saved statistic lives, and the backward schedule — the
//! order of every gradient contribution, and whether it writes or adds.
//! Both trainers (`train::cpu`, `train::cuda`) walk this one plan
//! ([`super::walk`]); the ops say what they need through
//! [`crate::ops::OpSpec`], the planner matches on no op.
//!
//! The forward pass uses the plain ops (no BatchNorm-statistics or
//! in-place fusion), except that a ReLU read only by convs is applied as
//! the conv loads it (its backward masks the conv's input gradient).
//!
//! Gradients arriving at one node from several readers are summed in
//! reverse node order: readers with higher ids first, then a reader's
//! inputs in order; the first contribution writes, later ones add. When a
//! reader reads one node at two input positions (`x + x`), the second
//! position's gradient goes to a scratch region that is then added in,
//! so every contribution is a separate `acc + g` in that order, as on the
//! CPU. The result does not depend on the device's thread count.
//!
//! Layouts (regions of one lane's buffers):
//! * `values`: f32, node `i`'s forward value `[B][h][w][c]`; a value the
//!   backward pass does not read is freed after its last forward reader;
//! * `grads`: f32, ∂loss/∂(node `i`'s output), allocated at its first
//!   contribution and freed after node `i`'s backward;
//! * `saved`: f32, what a node's forward saves for its backward
//!   (`OpSpec::saved_len`: BatchNorm's `[mean: c][inv_std: c]`);
//! * `stats`: f64, a forward BatchNorm's partial sums (scratch);
//! * parameters and their gradients laid out by [`ParamSlot`]s.

use crate::error::{Error, Result};
use crate::exec::plan::{param_slots, Allocator, Fusions, Partials, Region};
use crate::net::{Graph, NodeId};
use crate::ops::Role;
use crate::param::ParamSlot;
use crate::tensor::Shape;

/// Where one gradient contribution of a backward step goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GradTarget {
    /// The node whose output gradient this is.
    pub node: NodeId,
    /// The region written (the node's gradient, or a scratch region).
    pub region: Region,
    /// Add to what the region holds (an earlier reader wrote it).
    pub accumulate: bool,
    /// When `region` is scratch: the node's gradient region to add it
    /// into after the step.
    pub merge_into: Option<Region>,
}

/// The plan of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePlan {
    /// Its shape (batch included).
    pub shape: Shape,
    /// The forward pass computes it (not the input batch, not a ReLU its
    /// readers apply).
    pub computes: bool,
    /// Its value's region (`None` for the input batch and unstored ReLUs).
    pub value: Option<Region>,
    /// The nodes whose values its forward reads, in the op's input order
    /// (a ReLU its conv applies is replaced by that ReLU's input).
    pub reads: Vec<NodeId>,
    /// Input 0 is read through a ReLU.
    pub relu_input: bool,
    /// Region of what its forward saves for its backward.
    pub saved: Option<Region>,
    /// Scratch for the partial sums its forward normalises by, and the
    /// values summed per channel.
    pub partials_in: Option<(Partials, usize)>,
    /// The values whose last forward reader it is and that the backward
    /// pass does not read: freed after its forward.
    pub free_after_forward: Vec<NodeId>,
    /// A gradient with respect to its output reaches it.
    pub has_grad: bool,
    /// Its output gradient's region (when `has_grad`).
    pub grad: Option<Region>,
    /// Its backward's gradient targets, one per entry of `reads`.
    pub targets: Vec<Option<GradTarget>>,
    /// Scratch its CUDA backward needs: (f32, f64) elements.
    pub backward_scratch: (usize, usize),
}

/// A network planned for training at one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainPlan {
    /// Samples per training batch (B).
    pub batch: usize,
    /// Per-sample input shape.
    pub input: Shape,
    /// One plan per graph node, by node id.
    pub nodes: Vec<NodePlan>,
    /// Each parameter tensor's slot in the parameter buffer, indexed like
    /// `graph.params` (the CUDA trainer's gradient and momentum buffers
    /// share the layout).
    pub params: Vec<ParamSlot>,
    /// f32 elements of the parameter buffer.
    pub params_len: usize,
    /// f32 elements of the `values` buffer.
    pub values_len: usize,
    /// f32 elements of the `grads` buffer.
    pub grads_len: usize,
    /// f32 elements of the `saved` buffer.
    pub saved_len: usize,
    /// f64 elements of the `stats` buffer.
    pub stats_len: usize,
    /// Largest backward scratch of a node: f32 and f64 elements.
    pub scratch32_len: usize,
    /// Largest backward scratch of a node, f64 elements (see `scratch32_len`).
    pub scratch64_len: usize,
    /// The most parameter values one node has: the CPU backward holds a
    /// partial gradient of them per sample (a conv's per-image weight
    /// gradients), see [`crate::train::budget::TrainMemory::cpu`].
    pub max_node_params: usize,
}

/// What a gradient pass keeps beyond a training step's needs (the
/// training-free measures ask for these; a training step asks for none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// The gradient reaches the input batch (∂loss/∂input, for `jacov`).
    pub input_grad: bool,
    /// Every weight layer's output ([`crate::ops::OpSpec::is_weight_layer`])
    /// is kept until its own backward, which reads it with its output
    /// gradient (for `fisher`).
    pub keep_layer_outputs: bool,
}

impl TrainPlan {
    /// The ReLUs this plan never materialises (each fused into its
    /// readers, which apply it as they read), by the node they read.
    pub fn fused_relus(&self, graph: &Graph) -> std::collections::HashMap<NodeId, Vec<NodeId>> {
        let mut fused: std::collections::HashMap<NodeId, Vec<NodeId>> = Default::default();
        for (i, node) in graph.nodes.iter().enumerate() {
            if node.op.spec().role() == Role::CountedRelu && !self.nodes[i].computes {
                if let Some(&src) = node.inputs.first() {
                    fused.entry(src).or_default().push(i);
                }
            }
        }
        fused
    }

    /// Plans `graph` (pruned) for training batches of `batch` samples.
    /// Errors when a parameter is read by two nodes (each node writes its
    /// parameters' gradients).
    pub fn new(graph: &Graph, batch: usize) -> Result<TrainPlan> {
        Self::with_options(graph, batch, PlanOptions::default())
    }

    /// [`Self::new`] keeping what `options` asks for.
    pub fn with_options(graph: &Graph, batch: usize, options: PlanOptions) -> Result<TrainPlan> {
        if batch == 0 {
            return Err(Error::Arg("training plan: batch must be at least 1".into()));
        }
        // Every tensor of the plan is some node's shape at this batch; with
        // their sum addressable in bytes, no length or offset below
        // overflows.
        let per_sample = graph
            .nodes
            .iter()
            .try_fold(0usize, |a, node| a.checked_add(node.shape.per_sample()));
        if per_sample
            .and_then(|p| p.checked_mul(batch))
            .is_none_or(|len| len > isize::MAX as usize / 16)
        {
            return Err(Error::Arg(format!(
                "{} {batch}: the network's tensors at this batch are more than this \
                 machine can address; use a smaller --train-batch",
                crate::train::TRAIN_BATCH
            )));
        }
        let n = graph.nodes.len();
        let mut owner = vec![None::<NodeId>; graph.params.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            for &p in &node.params {
                if let Some(other) = owner[p].replace(i) {
                    return Err(Error::Arg(format!(
                        "training: parameter {} is shared by nodes {} and {}",
                        graph.params[p].name, graph.nodes[other].name, node.name
                    )));
                }
            }
        }
        let f = Fusions::of(graph);
        // Which values the backward pass reads.
        let mut keep = vec![false; n];
        let mut needs_grad = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            let spec = node.op.spec();
            if spec.backward_reads_inputs() {
                for j in f.reads(graph, i) {
                    keep[j] = true;
                }
            }
            // A ReLU fused into its reader is undone in that reader's
            // backward, masked by the ReLU's input: keep it, whatever else
            // the op reads.
            if let Some(src) = f.fused_relu_source[i] {
                keep[src] = true;
            }
            needs_grad[i] = !node.params.is_empty()
                || (options.input_grad && spec.role() == Role::Input)
                || (spec.passes_gradient() && node.inputs.iter().any(|&j| needs_grad[j]));
            if options.keep_layer_outputs && spec.is_weight_layer() {
                keep[i] = true;
            }
        }
        keep[graph.output] = true;
        let mut values = Allocator::default();
        let mut saved = Allocator::default();
        let mut stats = Allocator::default();
        let mut nodes: Vec<NodePlan> = Vec::with_capacity(n);
        let mut scratch = (0usize, 0usize);
        for (i, node) in graph.nodes.iter().enumerate() {
            let spec = node.op.spec();
            let shape = node.shape.with_n(batch);
            let computes = match spec.role() {
                Role::Input => false,
                Role::CountedRelu => f.relu_materialised[i],
                Role::Compute => true,
            };
            let reads = if computes {
                f.reads(graph, i)
            } else {
                Vec::new()
            };
            let value = computes.then(|| {
                let r = values.alloc(shape.len());
                r.start..r.start + shape.len()
            });
            let saved_len = spec.saved_len(shape);
            let saved_r = (computes && saved_len > 0).then(|| {
                let r = saved.alloc(saved_len);
                r.start..r.start + saved_len
            });
            let partials_in = match reads.first() {
                Some(&j) if computes => {
                    let xs = graph.nodes[j].shape.with_n(batch);
                    spec.partials_in(xs).map(|(parts, c)| {
                        let a = stats.alloc(parts * c);
                        let b = stats.alloc(parts * c);
                        (
                            Partials {
                                psum: a.start..a.start + parts * c,
                                psumsq: b.start..b.start + parts * c,
                                parts,
                            },
                            xs.n * xs.h * xs.w,
                        )
                    })
                }
                _ => None,
            };
            if let Some((p, _)) = &partials_in {
                // Scratch of this step only.
                stats.free(p.psum.clone());
                stats.free(p.psumsq.clone());
            }
            let backward_scratch = match reads.first() {
                Some(&j) if computes => {
                    spec.backward_scratch(graph.nodes[j].shape.with_n(batch))?
                }
                _ => (0, 0),
            };
            scratch = (
                scratch.0.max(backward_scratch.0),
                scratch.1.max(backward_scratch.1),
            );
            // Values whose last forward reader this is, not kept.
            let mut free_after_forward = Vec::new();
            for &j in &reads {
                if f.last_read[j] == i && !keep[j] && !free_after_forward.contains(&j) {
                    free_after_forward.push(j);
                }
            }
            for &j in &free_after_forward {
                if let Some(r) = nodes.get(j).and_then(|p: &NodePlan| p.value.clone()) {
                    values.free(r);
                }
            }
            nodes.push(NodePlan {
                shape,
                computes,
                value,
                reads,
                relu_input: f.fused_relu_source[i].is_some(),
                saved: saved_r,
                partials_in,
                free_after_forward,
                has_grad: false,
                grad: None,
                targets: Vec::new(),
                backward_scratch,
            });
        }
        // The backward schedule, in reverse node order.
        let mut grads = Allocator::default();
        let out = graph.output;
        let len_of = |nodes: &[NodePlan], j: NodeId| nodes[j].shape.len();
        let alloc = |grads: &mut Allocator, len: usize| {
            let r = grads.alloc(len);
            r.start..r.start + len
        };
        nodes[out].has_grad = true;
        nodes[out].grad = Some(alloc(&mut grads, len_of(&nodes, out)));
        for i in (0..n).rev() {
            if !nodes[i].has_grad {
                continue;
            }
            let passes = graph.nodes[i].op.spec().passes_gradient();
            let reads = nodes[i].reads.clone();
            let mut targets = Vec::with_capacity(reads.len());
            let mut scratch_regions = Vec::new();
            for (k, &j) in reads.iter().enumerate() {
                if !(passes && needs_grad[j]) {
                    targets.push(None);
                    continue;
                }
                let seen = reads[..k].iter().any(|&jj| jj == j && needs_grad[jj]);
                let t = if seen {
                    let r = alloc(&mut grads, len_of(&nodes, j));
                    scratch_regions.push(r.clone());
                    GradTarget {
                        node: j,
                        region: r,
                        accumulate: false,
                        merge_into: nodes[j].grad.clone(),
                    }
                } else {
                    let accumulate = nodes[j].has_grad;
                    if nodes[j].grad.is_none() {
                        nodes[j].grad = Some(alloc(&mut grads, len_of(&nodes, j)));
                    }
                    nodes[j].has_grad = true;
                    GradTarget {
                        node: j,
                        region: nodes[j].grad.clone().expect("allocated"),
                        accumulate,
                        merge_into: None,
                    }
                };
                targets.push(Some(t));
            }
            nodes[i].targets = targets;
            for r in scratch_regions {
                grads.free(r);
            }
            if let Some(r) = nodes[i].grad.clone() {
                grads.free(r);
            }
        }
        let (params, params_len) = param_slots(graph);
        let max_node_params = graph
            .nodes
            .iter()
            .map(|node| node.params.iter().map(|&p| graph.params[p].len).sum())
            .max()
            .unwrap_or(0);
        Ok(TrainPlan {
            batch,
            input: graph.input_shape()?,
            nodes,
            params,
            params_len,
            values_len: values.end,
            grads_len: grads.end,
            saved_len: saved.end,
            stats_len: stats.end,
            scratch32_len: scratch.0,
            scratch64_len: scratch.1,
            max_node_params,
        })
    }

    /// The regions of node `i`'s parameters in the parameter buffer.
    pub fn param_regions(&self, graph: &Graph, i: NodeId) -> Result<Vec<Region>> {
        graph.nodes[i]
            .params
            .iter()
            .map(|&p| {
                self.params
                    .get(p)
                    .map(ParamSlot::region)
                    .ok_or_else(|| Error::Internal(format!("no parameter {p}")))
            })
            .collect()
    }
}
