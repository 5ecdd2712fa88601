//! How a kernel is named: its family (the `.cu` file that defines it), its
//! `extern "C"` symbol and the pass that launches it. Launch functions
//! fetch kernels by these constants; the table of every kernel the crate
//! launches is assembled above the ops, in [`crate::exec::kernel_table`].

/// Which pass launches a kernel: scoring needs only the forward ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pass {
    /// Scoring (and the forward half of training).
    Forward,
    /// Training only: gradients, the loss, the optimiser step.
    Backward,
}

/// One kernel: its family (the `.cu` file stem that defines it), its
/// `extern "C"` name and the pass that launches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelRef {
    /// The kernel family: the stem of the `.cu` file (`relu` for
    /// `src/ops/relu/relu.cu`).
    pub family: &'static str,
    /// The `extern "C"` symbol.
    pub name: &'static str,
    /// The pass that launches it.
    pub pass: Pass,
}

impl KernelRef {
    /// A kernel scoring launches.
    pub const fn forward(family: &'static str, name: &'static str) -> KernelRef {
        KernelRef {
            family,
            name,
            pass: Pass::Forward,
        }
    }

    /// A kernel only training launches.
    pub const fn backward(family: &'static str, name: &'static str) -> KernelRef {
        KernelRef {
            family,
            name,
            pass: Pass::Backward,
        }
    }
}

impl std::fmt::Display for KernelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.family, self.name)
    }
}
