//! The kernel table: every `__global__` kernel the crate launches, named
//! once, where its launch function lives.
//!
//! A launch function fetches its kernel with
//! [`CudaDevice::kernel`](crate::runtime::cuda::CudaDevice::kernel) and a [`KernelRef`]
//! constant; each op lists its constants in its
//! [`CudaKernels`](crate::ops::CudaKernels) table, the kernels that are not
//! ops list theirs in [`kernels::KERNELS`]. [`all`] joins them: the
//! GPU scorer compiles the families of the forward kernels when it opens,
//! and the tests check the table against the sources in both directions
//! (every entry is defined in its family, every `__global__` of every
//! family is in the table), so a renamed or forgotten kernel fails in CI,
//! not on a GPU.

use crate::runtime::cuda::{emu, kernels, KernelRef, Pass};
use crate::runtime::cuda_sources::CUDA_SOURCES;

/// Every kernel the crate launches: the ops' tables (in registry order),
/// then the kernels that are not ops.
pub fn all() -> Vec<KernelRef> {
    let mut v = crate::ops::Op::cuda_kernels();
    v.extend_from_slice(kernels::KERNELS);
    v
}

/// The families holding at least one kernel of `pass`, sorted, each once:
/// what a scorer (forward) or a trainer (both) compiles up front.
pub fn families(pass: Pass) -> Vec<&'static str> {
    let mut f: Vec<&'static str> = all()
        .into_iter()
        .filter(|k| k.pass == pass)
        .map(|k| k.family)
        .collect();
    f.sort_unstable();
    f.dedup();
    f
}

/// Differences between the table and the sources: entries whose family
/// or kernel does not exist, kernels defined but not in the table, and
/// entries listed twice. Empty when they agree.
pub fn mismatches() -> Vec<String> {
    let table = all();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for k in &table {
        if !seen.insert((k.family, k.name)) {
            problems.push(format!("{k} is listed twice"));
        }
        match CUDA_SOURCES.iter().find(|(f, _)| *f == k.family) {
            None => problems.push(format!("{k}: no kernel family `{}`", k.family)),
            Some((_, src)) => {
                if !emu::kernel_names(src).iter().any(|n| n == k.name) {
                    problems.push(format!("{k}: `{}.cu` defines no such kernel", k.family));
                }
            }
        }
    }
    for (family, src) in CUDA_SOURCES {
        for name in emu::kernel_names(src) {
            if !seen.contains(&(*family, name.as_str())) {
                problems.push(format!(
                    "{family}::{name} is defined but in no kernel table (an op's \
                     CudaKernels or runtime::cuda::kernels::KERNELS)"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_sources_agree() {
        let problems = mismatches();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(all().len() >= 51, "{} kernels", all().len());
    }

    #[test]
    fn scoring_compiles_no_training_only_family() {
        let fwd = families(Pass::Forward);
        for f in ["relu", "conv2d", "hamming", "logdet", "codes", "init"] {
            assert!(fwd.contains(&f), "{f} missing from {fwd:?}");
        }
        for f in ["conv2d_backward", "batchnorm_backward", "sgd", "softmax_ce"] {
            assert!(!fwd.contains(&f), "{f} compiled for scoring");
        }
    }
}
