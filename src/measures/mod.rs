//! The training-free measures of the field, computed beside the scores
//! (docs/measures.md has each definition and the implementation it
//! follows).
//!
//! A measure is one module here with one [`Measure`] value: its name, the
//! pass it needs ([`Need`]) and how it turns that pass into a number.
//! [`ALL`] is the registry, in the order result lines list measures.
//! [`MeasureSet`] is what a caller asks for (`score --measures
//! grad_norm,zico`, `Scorer(measures=[…])`); [`passes`] runs, for one
//! cell, exactly the passes the set needs, each once, and [`evaluate`]
//! reads every measure off them.
//!
//! The measures of the scoring pass itself (`wot`, `d`, `n_units`, `das`,
//! `swap`, `swap_reg`, `params`, `flops`) are listed too ([`scoring_pass`]):
//! every line carries them already, under the same names.
//!
//! Which passes share: every cross-entropy measure of the whole batch
//! (`grad_norm`, `snip`, `plain`, `fisher`) reads one forward and one
//! backward. `zico` needs the gradients of the two halves of the batch,
//! each with its own forward (BatchNorm normalises each half by its own
//! statistics, so neither half's pass is part of the whole batch's).
//! `jacov` differentiates another loss (the sum of the logits) down to the
//! input: one more forward and backward. `synflow` runs another network
//! (no BatchNorm, absolute weights) on one image of ones. `l2_norm` reads
//! the weights only. `meco` and `meco_opt` share one forward of the
//! scoring batch. `zen` and the AZ-NAS components each re-draw the
//! weights their own way and score their own Gaussian batch, so each has
//! its own passes (Zen-NAS: two forwards; AZ-NAS: one forward, then one
//! backward through each block alone).

pub mod az_nas;
pub mod epe_nas;
pub mod fisher;
pub mod forward;
pub mod grad_norm;
pub mod jacov;
pub mod l2_norm;
pub mod meco;
pub mod pass;
pub mod plain;
pub mod scoring_pass;
pub mod snip;
pub mod synflow;
pub mod zen;
pub mod zico;

pub use pass::{passes, Passes};

use crate::error::{Error, Result};
use crate::net::Graph;

/// The device a cell's passes run on.
pub enum GradientDevice<'d> {
    /// The CPU ops.
    Cpu,
    /// A CUDA device (or its host emulation).
    Cuda(&'d crate::runtime::cuda::CudaDevice),
}

/// The pass a measure is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// The scoring pass every cell has (sign codes, the graph's counts).
    ScoringPass,
    /// The weights alone.
    Weights,
    /// Every parameter's gradient of the batch's cross-entropy.
    CrossEntropy,
    /// [`Need::CrossEntropy`] plus, per weight layer, sample and output
    /// channel, Σ over positions of output · ∂loss/∂output.
    LayerTaps,
    /// The cross-entropy gradients of each half of the batch, each half its
    /// own forward and backward.
    Halves,
    /// ∂(Σ logits)/∂input of every sample.
    InputJacobian,
    /// SynFlow's pass: the network without BatchNorm, every parameter's
    /// absolute value, one input of ones, ∂(Σ outputs)/∂param.
    Synflow,
    /// One forward of the scoring batch, sample 0's feature map at every
    /// node ([`forward::SampleFeatures`]).
    SampleFeatures,
    /// AZ-NAS's pass: the blocks' covariances and Jacobian sketches
    /// ([`forward::BlockPass`]).
    Blocks,
    /// Zen-NAS's two forwards ([`forward::ZenPass`]).
    Zen,
}

/// How a measure reads its value off a cell's passes.
pub type MeasureFn = fn(&Passes<'_>) -> Result<Option<f64>>;

impl Need {
    /// A short name of the pass (`dasnas measures` prints it).
    pub fn label(self) -> &'static str {
        match self {
            Need::ScoringPass => "scoring",
            Need::Weights => "weights",
            Need::CrossEntropy => "ce-grad",
            Need::LayerTaps => "ce-grad+taps",
            Need::Halves => "ce-halves",
            Need::InputJacobian => "input-jac",
            Need::Synflow => "synflow",
            Need::SampleFeatures => "features",
            Need::Blocks => "blocks",
            Need::Zen => "zen",
        }
    }
}

/// One training-free measure.
#[derive(Debug)]
pub struct Measure {
    /// Its name: the field of result lines and the word of `--measures`.
    pub name: &'static str,
    /// Other names it is known by (the field's spelling).
    pub aliases: &'static [&'static str],
    /// One line on what it is.
    pub summary: &'static str,
    /// The implementation whose semantics it follows.
    pub reference: &'static str,
    /// The pass it needs.
    pub need: Need,
    /// Its value from the passes (`None` where it is not a number: a
    /// constant gradient row, a log of 0); `None` for the measures of the
    /// scoring pass, which its line carries already.
    pub compute: Option<MeasureFn>,
}

/// Every measure, in the order result lines list them.
pub const ALL: &[&Measure] = &[
    &scoring_pass::WOT,
    &scoring_pass::D,
    &scoring_pass::N_UNITS,
    &scoring_pass::DAS,
    &scoring_pass::SWAP,
    &scoring_pass::SWAP_REG,
    &scoring_pass::PARAMS,
    &scoring_pass::FLOPS,
    &l2_norm::MEASURE,
    &grad_norm::MEASURE,
    &snip::MEASURE,
    &plain::MEASURE,
    &fisher::MEASURE,
    &jacov::MEASURE,
    &epe_nas::MEASURE,
    &zico::MEASURE,
    &synflow::MEASURE,
    &meco::MEASURE,
    &meco::OPT,
    &zen::MEASURE,
    &az_nas::EXPRESSIVITY,
    &az_nas::PROGRESSIVITY,
    &az_nas::TRAINABILITY,
];

/// The measure called `name` (or one of its aliases).
pub fn by_name(name: &str) -> Option<&'static Measure> {
    ALL.iter()
        .copied()
        .find(|m| m.name == name || m.aliases.contains(&name))
}

/// The measures a caller asked for, each once, in [`ALL`]'s order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeasureSet {
    ids: Vec<usize>,
}

impl MeasureSet {
    /// No measure beyond the scoring pass.
    pub fn none() -> MeasureSet {
        MeasureSet::default()
    }

    /// Every measure.
    pub fn all() -> MeasureSet {
        MeasureSet {
            ids: (0..ALL.len()).collect(),
        }
    }

    /// The measures named in `names` (each a name, an alias or `all`).
    /// An unknown name is an error that names it and lists the known ones.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<MeasureSet> {
        let mut ids = Vec::new();
        for raw in names {
            let name = raw.as_ref().trim();
            if name == "all" {
                return Ok(MeasureSet::all());
            }
            let id = ALL
                .iter()
                .position(|m| m.name == name || m.aliases.contains(&name))
                .ok_or_else(|| {
                    Error::Arg(format!(
                        "unknown measure {} (known: all, {})",
                        crate::error::quote(name),
                        ALL.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(MeasureSet { ids })
    }

    /// A comma-separated list, as `--measures` takes it (`all` for all).
    pub fn parse(list: &str) -> Result<MeasureSet> {
        let names: Vec<&str> = list.split(',').collect();
        if names.iter().any(|n| n.trim().is_empty()) {
            return Err(Error::Arg(format!(
                "measure list {} has an empty name (expected names separated by commas, \
                 or all)",
                crate::error::quote(list)
            )));
        }
        Self::from_names(&names)
    }

    /// The measures, in [`ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = &'static Measure> + '_ {
        self.ids.iter().map(|&i| ALL[i])
    }

    /// Whether no measure is asked for.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether a measure of the set needs `need`.
    pub fn needs(&self, need: Need) -> bool {
        self.iter().any(|m| m.need == need)
    }

    /// Whether the set asks for SWAP (counted by the scoring pass).
    pub fn wants_swap(&self) -> bool {
        self.iter()
            .any(|m| m.name == "swap" || m.name == "swap_reg")
    }

    /// The measures computed beyond the scoring pass.
    pub fn computed(&self) -> impl Iterator<Item = &'static Measure> + '_ {
        self.iter().filter(|m| m.compute.is_some())
    }

    /// Whether any measure needs a pass beyond the scoring pass.
    pub fn needs_passes(&self) -> bool {
        self.computed().next().is_some()
    }

    /// The computed measures' names joined by commas (a run stamp's
    /// `measures`), `None` when there are none.
    pub fn stamp(&self) -> Option<String> {
        let names: Vec<&str> = self.computed().map(|m| m.name).collect();
        (!names.is_empty()).then(|| names.join(","))
    }
}

/// Every computed measure of `set` from `passes`, by name; a value that is
/// not finite is `None`.
pub fn evaluate(set: &MeasureSet, passes: &Passes<'_>) -> Result<Vec<(&'static str, Option<f64>)>> {
    set.computed()
        .map(|m| {
            let f = m
                .compute
                .ok_or_else(|| Error::Internal(format!("{} has no value", m.name)))?;
            let v = f(passes).map_err(|e| e.context(format!("measure {}", m.name)))?;
            Ok((m.name, v.filter(|x| x.is_finite())))
        })
        .collect()
}

/// Labels for a scoring batch that has none (Gaussian images, a caller's
/// unlabelled array): `n` labels uniform over `classes`, drawn from
/// `seed` (the weights' seed), the same on any device and thread count.
pub fn seeded_labels(seed: u64, n: usize, classes: usize) -> Vec<u32> {
    let key = crate::rng::stream_key(seed, crate::rng::name_id("measures.labels"));
    let classes = classes.max(1) as u64;
    (0..n as u64)
        .map(|i| (crate::rng::bits(key, i) % classes) as u32)
        .collect()
}

/// The weight layers of `graph` (PyTorch's `nn.Conv2d` and `nn.Linear`,
/// which the field's measures hook), in node order: each node's id and its
/// weight's parameter id.
pub fn weight_layers(graph: &Graph) -> Vec<(usize, usize)> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op.spec().is_weight_layer())
        .filter_map(|(i, n)| n.params.first().map(|&p| (i, p)))
        .collect()
}

/// Σ over the weights θ of `graph`'s weight layers of `term(θ, g)`, with
/// `g` the same weight's entry of `grads` (indexed like `graph.params`),
/// accumulated in f64.
pub(crate) fn sum_over_weights(
    graph: &Graph,
    params: &[Vec<f32>],
    grads: &[Vec<f32>],
    term: impl Fn(f32, f32) -> f64,
) -> f64 {
    weight_layers(graph)
        .into_iter()
        .map(|(_, w)| {
            params[w]
                .iter()
                .zip(&grads[w])
                .map(|(&t, &g)| term(t, g))
                .sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests;
