//! The one walk of a training step over a [`TrainPlan`], generic over the
//! device: forward every computed node (freeing what the plan frees), the
//! loss and its gradient at the output, then every node's backward in
//! reverse order with the plan's gradient targets, merging scratch
//! contributions where the plan says. The CPU trainer (`train::cpu`) and
//! the GPU trainer (`train::cuda`) are the two runners; each turns a node's
//! regions into its backend's buffers and calls the op through
//! [`Forward`](crate::ops::Forward) / [`Backward`](crate::ops::Backward).

use super::plan::{GradTarget, TrainPlan};
use crate::error::Result;
use crate::net::{Graph, NodeId};

/// A device that runs the steps of a training pass.
pub trait TrainRunner {
    /// The forward pass of node `i`.
    fn forward(&mut self, graph: &Graph, plan: &TrainPlan, i: NodeId) -> Result<()>;
    /// Frees node `j`'s value (the plan no longer needs it).
    fn free_value(&mut self, plan: &TrainPlan, j: NodeId);
    /// The loss of the output's logits and its gradient, written as the
    /// output's gradient.
    fn loss(&mut self, graph: &Graph, plan: &TrainPlan) -> Result<()>;
    /// Zeroes the parameters' gradients.
    fn zero_param_grads(&mut self, plan: &TrainPlan) -> Result<()>;
    /// The backward pass of node `i` (its targets in `plan`).
    fn backward(&mut self, graph: &Graph, plan: &TrainPlan, i: NodeId) -> Result<()>;
    /// Adds a scratch contribution into its node's gradient.
    fn merge(&mut self, plan: &TrainPlan, target: &GradTarget) -> Result<()>;
    /// Node `i`'s gradient is consumed.
    fn free_grad(&mut self, plan: &TrainPlan, i: NodeId);
}

/// One forward and backward pass of `graph` on `runner`.
pub fn train_pass(runner: &mut impl TrainRunner, graph: &Graph, plan: &TrainPlan) -> Result<()> {
    for (i, node) in plan.nodes.iter().enumerate() {
        if node.computes {
            runner.forward(graph, plan, i)?;
        }
        for &j in &node.free_after_forward {
            runner.free_value(plan, j);
        }
    }
    runner.loss(graph, plan)?;
    runner.zero_param_grads(plan)?;
    for (i, node) in plan.nodes.iter().enumerate().rev() {
        if !node.has_grad {
            runner.free_value(plan, i);
            continue;
        }
        if node.computes {
            runner.backward(graph, plan, i)?;
        }
        for t in node.targets.iter().flatten() {
            if t.merge_into.is_some() {
                runner.merge(plan, t)?;
            }
        }
        runner.free_grad(plan, i);
        // Every reader of node i has a larger id: its value is done.
        runner.free_value(plan, i);
    }
    Ok(())
}
