//! CUDA n-ary add: launches `add2` / `add_into` of `cuda/add.cu`; CPU twin
//! [`super::cpu`].
//!
//! Layout: flat f32 buffers of equal length (elementwise, any shape). An
//! n-ary sum is one [`add2`] and one [`add_into`] per further input, so
//! every element is summed in list order, `((x0 + x1) + x2) + ...`, bit for
//! bit the CPU's. The float4 kernels run when every buffer of a launch is
//! 16-byte aligned.

use cudarc::driver::{CudaView, CudaViewMut, PushKernelArg};

use crate::device::cuda::CudaDevice;
use crate::error::{Error, Result};
use crate::ops::cuda_launch::{aligned16, grid_1d, launch_err};

fn check_same_len(what: &str, got: usize, len: usize) -> Result<()> {
    if got == len {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "add: {what} has {got} elements, expected {len}"
        )))
    }
}

/// Work items of a launch: one per float4 (the tail by the first threads)
/// or one per element.
fn work(len: u64, vec: bool) -> u64 {
    if vec {
        len.div_ceil(4)
    } else {
        len
    }
}

/// `y = a + b`; errors when the lengths differ.
pub fn add2(
    dev: &CudaDevice,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    let n = y.len();
    check_same_len("input 0", a.len(), n)?;
    check_same_len("input 1", b.len(), n)?;
    let len = n as u64;
    if len == 0 {
        return Ok(());
    }
    let vec = aligned16(dev, a) && aligned16(dev, b) && aligned16(dev, y);
    let f = dev.function("add", if vec { "add2_vec4" } else { "add2" })?;
    let mut lb = dev.stream().launch_builder(&f);
    lb.arg(a).arg(b).arg(y).arg(&len);
    // SAFETY: the arguments match `add2(_vec4)(const float* a, const float*
    // b, float* y, u64 len)`; the kernel reads a[0..len), b[0..len) and
    // writes y[0..len), all views of exactly len floats (checked above); y
    // is an exclusive borrow, so distinct from a and b as `__restrict__`
    // assumes; the vec4 kernel runs only when all three are 16-byte aligned.
    unsafe { lb.launch(grid_1d(work(len, vec))) }.map_err(launch_err("add2"))?;
    Ok(())
}

/// `y = y + x` (accumulate into `y`); errors when the lengths differ.
pub fn add_into(
    dev: &CudaDevice,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
) -> Result<()> {
    let n = y.len();
    check_same_len("addend", x.len(), n)?;
    let len = n as u64;
    if len == 0 {
        return Ok(());
    }
    let vec = aligned16(dev, x) && aligned16(dev, y);
    let f = dev.function("add", if vec { "add_into_vec4" } else { "add_into" })?;
    let mut lb = dev.stream().launch_builder(&f);
    lb.arg(y).arg(x).arg(&len);
    // SAFETY: the arguments match `add_into(_vec4)(float* y, const float* x,
    // u64 len)`; the kernel reads x[0..len) and reads and writes y[0..len),
    // both views of exactly len floats (checked above) and distinct (an
    // exclusive and a shared borrow); the vec4 kernel runs only when both
    // are 16-byte aligned.
    unsafe { lb.launch(grid_1d(work(len, vec))) }.map_err(launch_err("add_into"))?;
    Ok(())
}

/// `y = inputs[0] + inputs[1] + ...` in list order (one input: a copy);
/// errors on an empty list or differing lengths. Bitwise equal to
/// [`super::cpu::add_forward`].
pub fn add_forward(
    dev: &CudaDevice,
    inputs: &[&CudaView<'_, f32>],
    y: &mut CudaViewMut<'_, f32>,
) -> Result<()> {
    if inputs.is_empty() {
        return Err(Error::Shape("add: no inputs".into()));
    }
    for (i, t) in inputs.iter().enumerate() {
        check_same_len(&format!("input {i}"), t.len(), y.len())?;
    }
    match inputs {
        [a] => {
            if !y.is_empty() {
                dev.stream()
                    .memcpy_dtod(*a, y)
                    .map_err(|e| Error::Device(format!("CUDA add (copy of one input): {e}")))?;
            }
        }
        [a, b, rest @ ..] => {
            add2(dev, a, b, y)?;
            for t in rest {
                add_into(dev, y, t)?;
            }
        }
        [] => unreachable!("checked non-empty above"),
    }
    Ok(())
}

/// The in-place sum, like [`super::cpu::add_forward_inplace`]: `acc` holds
/// input `pos` of the list `others` with `acc` inserted at `pos`, and is
/// overwritten with the sum of that list in list order (bitwise the CPU's:
/// the inputs before `pos` are summed first, into a temporary buffer when
/// there are two or more of them, then added to `acc`).
pub fn add_forward_inplace(
    dev: &CudaDevice,
    acc: &mut CudaViewMut<'_, f32>,
    pos: usize,
    others: &[&CudaView<'_, f32>],
) -> Result<()> {
    if pos > others.len() {
        return Err(Error::Arg(format!(
            "add: in-place position {pos} beyond {} inputs",
            others.len() + 1
        )));
    }
    for (i, t) in others.iter().enumerate() {
        check_same_len(&format!("input {i}"), t.len(), acc.len())?;
    }
    if acc.is_empty() {
        return Ok(());
    }
    let (before, after) = others.split_at(pos);
    match before {
        [] => {}
        // s0 + acc == acc + s0: float addition is commutative.
        [s0] => add_into(dev, acc, s0)?,
        [s0, s1, rest @ ..] => {
            let mut tmp = dev
                .stream()
                .alloc_zeros::<f32>(acc.len())
                .map_err(|e| Error::Device(format!("CUDA add: temporary buffer: {e}")))?;
            add2(dev, s0, s1, &mut tmp.as_view_mut())?;
            for t in rest {
                add_into(dev, &mut tmp.as_view_mut(), t)?;
            }
            add_into(dev, acc, &tmp.as_view())?;
        }
    }
    for t in after {
        add_into(dev, acc, t)?;
    }
    Ok(())
}
