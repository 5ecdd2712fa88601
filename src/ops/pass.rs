//! What a pass hands an op: the arguments of a forward (and backward)
//! pass of one node on each device ([`CpuFwd`], [`CudaFwd`], …), and the
//! traits each op implements once per device, beside its CPU code (`cpu.rs`) and its
//! CUDA launches (`cuda.rs`). The plan walkers (`exec::walk`,
//! `train::walk`) build these arguments from a plan step and call the op
//! through [`crate::ops::Op`]'s dispatch.

use crate::error::Result;
use crate::ops::batchnorm::ChannelSums;
use crate::ops::PackDest;
use crate::runtime::cuda::{CudaDevice, DView, DViewMut, KernelRef};
use crate::tensor::{Shape, Tensor};

/// A device family an op runs on: names the argument types of its passes.
pub trait Device {
    /// What a forward pass of one node is handed.
    type Fwd<'a>;
}

/// The CPU (host tensors, the CPU ops).
#[derive(Clone, Copy, Debug)]
pub struct Cpu;

/// CUDA (device buffers, kernel launches on a stream; a GPU
/// or its host emulation).
#[derive(Clone, Copy, Debug)]
pub struct Cuda;

impl Device for Cpu {
    type Fwd<'a> = CpuFwd<'a>;
}

impl Device for Cuda {
    type Fwd<'a> = CudaFwd<'a>;
}

/// The CUDA kernels an op launches, named once: its launch functions
/// fetch them by these constants, the GPU scorer compiles their families
/// up front, and the tests check the table against the `.cu` sources
/// (see [`crate::exec::kernel_table`]). An op without kernels lists none.
pub trait CudaKernels {
    /// Every kernel the op's forward and backward launches may use.
    const KERNELS: &'static [KernelRef];
}

/// An op's forward pass on device `B`.
pub trait Forward<B: Device> {
    /// Computes the node's output from its inputs and parameters; writes
    /// every element of the output.
    fn forward(&self, a: &mut B::Fwd<'_>) -> Result<()>;
}

/// The forward pass of one node on the CPU.
pub struct CpuFwd<'a> {
    /// The inputs, in the op's order, except the one at `in_place`.
    pub inputs: Vec<&'a Tensor>,
    /// The output, shaped; its contents are stale (or, with `in_place`,
    /// that input's values).
    pub out: &'a mut Tensor,
    /// The node's parameter tensors, in the op's order.
    pub params: Vec<&'a [f32]>,
    /// Input 0 is to be read through a ReLU.
    pub relu_input: bool,
    /// The input (position) held in `out`.
    pub in_place: Option<usize>,
    /// Where to leave the output's channel sums (for the reader that
    /// normalises by them).
    pub partials_out: Option<&'a mut Option<ChannelSums>>,
    /// Channel sums of input 0 its producer left (the op then normalises
    /// `out` in place).
    pub partials_in: Option<ChannelSums>,
    /// Where the forward pass saves what its backward pass needs
    /// (`OpSpec::saved_len` values), when training.
    pub saved: Option<&'a mut [f32]>,
    /// How a conv computes (a scoring pass may take the fast algorithm;
    /// training always runs exact convs, whose backward it matches).
    pub conv: crate::ops::conv2d::ConvAlgo,
}

impl<'a> CpuFwd<'a> {
    /// Input `k` of the non-in-place inputs, or an error naming the op.
    pub fn input(&self, op: &str, k: usize) -> Result<&'a Tensor> {
        self.inputs
            .get(k)
            .copied()
            .ok_or_else(|| crate::Error::Internal(format!("{op}: input {k} missing")))
    }
    /// Parameter `k`, or an error naming the op.
    pub fn param(&self, op: &str, k: usize) -> Result<&'a [f32]> {
        self.params
            .get(k)
            .copied()
            .ok_or_else(|| crate::Error::Internal(format!("{op}: parameter {k} missing")))
    }
}

/// Per-channel partial sums of a tensor on the GPU: f64 `[parts][c]` each.
pub struct CudaPartials<'a> {
    /// Sums of the values, f64 `[parts][c]`.
    pub psum: DViewMut<'a, f64>,
    /// Sums of the squared values, f64 `[parts][c]`.
    pub psumsq: DViewMut<'a, f64>,
}

/// The forward pass of one node on a CUDA device.
pub struct CudaFwd<'a> {
    /// The device, on the stream of the cell being computed.
    pub dev: &'a CudaDevice,
    /// The inputs, in the op's order, except the one at `in_place`, with
    /// their shapes (batch included).
    pub inputs: Vec<(DView<'a, f32>, Shape)>,
    /// The output and its shape (batch included).
    pub out: DViewMut<'a, f32>,
    /// The output's shape, batch included.
    pub out_shape: Shape,
    /// The node's parameter tensors, in the op's order.
    pub params: Vec<DView<'a, f32>>,
    /// Input 0 is to be read through a ReLU.
    pub relu_input: bool,
    /// The input (position) held in `out`, and its shape.
    pub in_place: Option<(usize, Shape)>,
    /// Where to write the output's channel partial sums.
    pub partials_out: Option<CudaPartials<'a>>,
    /// Partial sums of input 0: filled by its producer (`.1`), or scratch
    /// to sum it into; `.2` values per channel.
    pub partials_in: Option<(CudaPartials<'a>, bool, usize)>,
    /// Scratch (scoring) or the saved values (training) of
    /// `OpSpec::saved_len` floats.
    pub saved: Option<DViewMut<'a, f32>>,
    /// Pack the output's sign bits as it is stored.
    pub pack: Option<PackDest<'a, 'a>>,
}

impl<'a> CudaFwd<'a> {
    /// Input `k` of the non-in-place inputs, or an error naming the op.
    pub fn input(&self, op: &str, k: usize) -> Result<(DView<'a, f32>, Shape)> {
        self.inputs
            .get(k)
            .copied()
            .ok_or_else(|| crate::Error::Internal(format!("{op}: input {k} missing")))
    }
    /// Parameter `k`, or an error naming the op.
    pub fn param(&self, op: &str, k: usize) -> Result<DView<'a, f32>> {
        self.params
            .get(k)
            .copied()
            .ok_or_else(|| crate::Error::Internal(format!("{op}: parameter {k} missing")))
    }
}

/// The gradient of one input on the CPU: written, or added to what is
/// there when `accumulate` (another reader's contribution came first).
pub struct CpuGrad<'a> {
    /// The input's gradient tensor.
    pub t: &'a mut Tensor,
    /// Add to `t` instead of overwriting it.
    pub accumulate: bool,
}

impl CpuGrad<'_> {
    /// Runs `f` to compute a gradient: into the target itself, or (when
    /// accumulating) into a fresh tensor that is then added to it, `acc +
    /// g` elementwise in f32, the order of contributions the caller keeps.
    pub fn write(&mut self, f: impl FnOnce(&mut Tensor) -> Result<()>) -> Result<()> {
        if self.accumulate {
            let mut g = Tensor::zeros(self.t.shape);
            f(&mut g)?;
            crate::ops::add::cpu::add_backward_accumulate(&g, self.t)
        } else {
            f(self.t)
        }
    }
}

/// The backward pass of one node on the CPU.
pub struct CpuBwd<'a> {
    /// The values of the node's inputs (in the op's order) when its
    /// backward reads them (`OpSpec::backward_reads_inputs`), else `None`;
    /// with `relu_input`, input 0 is the ReLU's source.
    pub inputs: Vec<Option<&'a Tensor>>,
    /// Every input's shape (batch included).
    pub in_shapes: Vec<Shape>,
    /// The node's parameter tensors, in the op's order.
    pub params: Vec<&'a [f32]>,
    /// What the forward pass saved (`OpSpec::saved_len` values).
    pub saved: Option<&'a [f32]>,
    /// ∂loss/∂output.
    pub dy: &'a Tensor,
    /// Where each input's gradient goes; `None` for an input that needs
    /// none.
    pub dx: Vec<Option<CpuGrad<'a>>>,
    /// The parameters' gradients. Each parameter belongs to one node; its
    /// gradient is zeroed before the backward pass and this node's
    /// backward is the only one to set it (adding to the zeros, as
    /// [`CpuBwd::add_param_grad`] does, or writing it: the same).
    pub dparams: Vec<&'a mut [f32]>,
    /// Input 0 was read through a ReLU (its gradient is masked by it).
    pub relu_input: bool,
}

impl<'a> CpuBwd<'a> {
    /// The value of input `k`, or an error naming the op.
    pub fn input(&self, op: &str, k: usize) -> Result<&'a Tensor> {
        self.inputs.get(k).copied().flatten().ok_or_else(|| {
            crate::Error::Internal(format!("{op} backward: value of input {k} missing"))
        })
    }
    /// Parameter `k`, or an error naming the op.
    pub fn param(&self, op: &str, k: usize) -> Result<&'a [f32]> {
        self.params
            .get(k)
            .copied()
            .ok_or_else(|| crate::Error::Internal(format!("{op} backward: parameter {k} missing")))
    }
    /// Whether the pass wants the parameters' gradients (a pass that
    /// differentiates with respect to its input only gives no `dparams`:
    /// an op may then skip computing them).
    pub fn wants_param_grads(&self) -> bool {
        !self.dparams.is_empty()
    }

    /// Adds `g` to the gradient of parameter `k` (nothing when the pass
    /// wants no parameter gradient).
    pub fn add_param_grad(&mut self, op: &str, k: usize, g: &[f32]) -> Result<()> {
        if !self.wants_param_grads() {
            return Ok(());
        }
        let d = self.dparams.get_mut(k).ok_or_else(|| {
            crate::Error::Internal(format!("{op} backward: gradient of parameter {k} missing"))
        })?;
        for (d, &v) in d.iter_mut().zip(g) {
            *d += v;
        }
        Ok(())
    }
}

/// The gradient of one input on a CUDA device: the kernel writes it, or
/// adds to it when `accumulate`.
pub struct CudaGrad<'a> {
    /// The input's gradient, on the device.
    pub dx: DViewMut<'a, f32>,
    /// The kernel adds to `dx` instead of overwriting it.
    pub accumulate: bool,
}

/// The backward pass of one node on a CUDA device.
pub struct CudaBwd<'a> {
    /// The device, on the stream the training step runs on.
    pub dev: &'a CudaDevice,
    /// The values of the node's inputs when its backward reads them, else
    /// `None` (with `relu_input`, input 0 is the ReLU's source).
    pub inputs: Vec<Option<DView<'a, f32>>>,
    /// Every input's shape (batch included).
    pub in_shapes: Vec<Shape>,
    /// The node's parameter tensors, in the op's order.
    pub params: Vec<DView<'a, f32>>,
    /// What the forward pass saved.
    pub saved: Option<DView<'a, f32>>,
    /// ∂loss/∂output.
    pub dy: DView<'a, f32>,
    /// Where each input's gradient goes; `None` for one that needs none.
    pub dx: Vec<Option<CudaGrad<'a>>>,
    /// The parameters' gradients. Each parameter belongs to one node; its
    /// gradient is zeroed before the backward pass and this node's
    /// backward is the only one to set it (its kernels write it).
    pub dparams: Vec<DViewMut<'a, f32>>,
    /// Input 0 was read through a ReLU.
    pub relu_input: bool,
    /// The f32 part of the backward scratch: exactly the f32 elements
    /// `OpSpec::backward_scratch` asked for this node's input shape (`None`
    /// when it asked for none); contents stale.
    pub scratch32: Option<DViewMut<'a, f32>>,
    /// The f64 part of the backward scratch (see `scratch32`).
    pub scratch64: Option<DViewMut<'a, f64>>,
}

impl<'a> CudaBwd<'a> {
    /// The value of input `k`, or an error naming the op.
    pub fn input(&self, op: &str, k: usize) -> Result<DView<'a, f32>> {
        self.inputs.get(k).copied().flatten().ok_or_else(|| {
            crate::Error::Internal(format!("{op} backward: value of input {k} missing"))
        })
    }
    /// Parameter `k`, or an error naming the op.
    pub fn param(&self, op: &str, k: usize) -> Result<DView<'a, f32>> {
        self.params
            .get(k)
            .copied()
            .ok_or_else(|| crate::Error::Internal(format!("{op} backward: parameter {k} missing")))
    }
}

/// An op's backward pass on device `B`.
pub trait Backward<B: DeviceBwd> {
    /// Computes the gradients of the node's inputs (those asked for) and
    /// of its parameters from `dy`.
    fn backward(&self, a: &mut B::Bwd<'_>) -> Result<()>;
}

/// A device with a backward pass: names its argument type.
pub trait DeviceBwd: Device {
    /// What a backward pass of one node is handed.
    type Bwd<'a>;
}

impl DeviceBwd for Cpu {
    type Bwd<'a> = CpuBwd<'a>;
}

impl DeviceBwd for Cuda {
    type Bwd<'a> = CudaBwd<'a>;
}
