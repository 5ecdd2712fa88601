//! The one walk of a scoring [`Plan`], generic over the device: each step
//! is handed to a [`PlanRunner`], which turns the step's regions into its
//! backend's buffers and calls the node's op through
//! [`Forward`](crate::ops::Forward) (a node step) or packs sign bits (a pack
//! step). The CPU backend (`exec::cpu`) and the CUDA backend
//! (`exec::cuda::executor`) are the two runners; neither matches on ops.

use super::plan::{CodeGroup, NodeStep, PackStep, Plan, Step};
use crate::error::{Error, Result};
use crate::net::Graph;

/// A device that runs plan steps.
pub trait PlanRunner {
    /// Runs node step `step` of `graph` (`groups`: the plan's code groups,
    /// for a step that packs as it stores).
    fn node_step(&mut self, graph: &Graph, step: &NodeStep, groups: &[CodeGroup]) -> Result<()>;
    /// Packs a stored tensor's sign bits into code group `group`.
    fn pack_step(&mut self, step: &PackStep, group: &CodeGroup) -> Result<()>;
}

/// Runs every step of `plan` (made for `graph`) on `runner`, in order.
pub fn run_plan(runner: &mut impl PlanRunner, plan: &Plan, graph: &Graph) -> Result<()> {
    for step in &plan.steps {
        match step {
            Step::Node(s) => runner.node_step(graph, s, &plan.groups)?,
            Step::Pack(p) => {
                let group = plan
                    .groups
                    .get(p.group)
                    .ok_or_else(|| Error::Internal(format!("no code group {}", p.group)))?;
                runner.pack_step(p, group)?
            }
        }
    }
    Ok(())
}
