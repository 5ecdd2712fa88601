//! CUDA n-ary add: launches `add2` / `add_into` of `src/ops/add/add.cu`; CPU twin
//! [`super::cpu`].
//!
//! Layout: flat f32 buffers of equal length (elementwise, any shape). An
//! n-ary sum is one [`add2`] and one [`add_into`] per further input, so
//! every element is summed in list order, `((x0 + x1) + x2) + ...`, bit for
//! bit the CPU's. The float4 kernels run when every buffer of a launch is
//! 16-byte aligned.

use crate::runtime::cuda::{DView, DViewMut};

use crate::error::{Error, Result};
use crate::ops::cuda_launch::{aligned16, check_pack, grid_1d, pack_grid, PackDest};
use crate::runtime::cuda::CudaDevice;
use crate::runtime::cuda::KernelRef;

/// `add2` of `add.cu`.
const ADD2: KernelRef = KernelRef::forward("add", "add2");
/// `add2_vec4` of `add.cu`.
const ADD2_VEC4: KernelRef = KernelRef::forward("add", "add2_vec4");
/// `add_into` of `add.cu`.
const ADD_INTO: KernelRef = KernelRef::forward("add", "add_into");
/// `add_into_vec4` of `add.cu`.
const ADD_INTO_VEC4: KernelRef = KernelRef::forward("add", "add_into_vec4");
/// `add_n` of `add.cu`.
const ADD_N: KernelRef = KernelRef::forward("add", "add_n");
/// `add_n_pack` of `add.cu`.
const ADD_N_PACK: KernelRef = KernelRef::forward("add", "add_n_pack");

impl crate::ops::CudaKernels for super::AddOp {
    const KERNELS: &'static [KernelRef] =
        &[ADD2, ADD2_VEC4, ADD_INTO, ADD_INTO_VEC4, ADD_N, ADD_N_PACK];
}

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
    a: &DView<'_, f32>,
    b: &DView<'_, f32>,
    y: &mut DViewMut<'_, f32>,
) -> Result<()> {
    let n = y.len();
    check_same_len("input 0", a.len(), n)?;
    check_same_len("input 1", b.len(), n)?;
    let len = n as u64;
    if len == 0 {
        return Ok(());
    }
    let vec = aligned16(dev, a) && aligned16(dev, b) && aligned16(dev, y);
    let f = dev.kernel(if vec { ADD2_VEC4 } else { ADD2 })?;
    let mut lb = dev.launch_builder(&f);
    lb.arg(a).arg(b).arg(y).arg(&len);
    // SAFETY: the arguments match `add2(_vec4)(const float* a, const float*
    // b, float* y, u64 len)`; the kernel reads a[0..len), b[0..len) and
    // writes y[0..len), all views of exactly len floats (checked above); y
    // is an exclusive borrow, so distinct from a and b as `__restrict__`
    // assumes; the vec4 kernel runs only when all three are 16-byte aligned.
    unsafe { lb.launch(grid_1d(work(len, vec))) }?;
    Ok(())
}

/// `y = y + x` (accumulate into `y`); errors when the lengths differ.
pub fn add_into(dev: &CudaDevice, y: &mut DViewMut<'_, f32>, x: &DView<'_, f32>) -> Result<()> {
    let n = y.len();
    check_same_len("addend", x.len(), n)?;
    let len = n as u64;
    if len == 0 {
        return Ok(());
    }
    let vec = aligned16(dev, x) && aligned16(dev, y);
    let f = dev.kernel(if vec { ADD_INTO_VEC4 } else { ADD_INTO })?;
    let mut lb = dev.launch_builder(&f);
    lb.arg(y).arg(x).arg(&len);
    // SAFETY: the arguments match `add_into(_vec4)(float* y, const float* x,
    // u64 len)`; the kernel reads x[0..len) and reads and writes y[0..len),
    // both views of exactly len floats (checked above) and distinct (an
    // exclusive and a shared borrow); the vec4 kernel runs only when both
    // are 16-byte aligned.
    unsafe { lb.launch(grid_1d(work(len, vec))) }?;
    Ok(())
}

/// `y = inputs[0] + inputs[1] + ...` in list order (one input: a copy);
/// errors on an empty list or differing lengths. Bitwise equal to
/// [`super::cpu::add_forward`].
pub fn add_forward(
    dev: &CudaDevice,
    inputs: &[&DView<'_, f32>],
    y: &mut DViewMut<'_, f32>,
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
                dev.copy_dtod(*a, y)?;
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
    acc: &mut DViewMut<'_, f32>,
    pos: usize,
    others: &[&DView<'_, f32>],
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
            let mut tmp = dev.alloc_zeros::<f32>(acc.len())?;
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

/// Inputs one `add_n` launch sums (`ADD_MAX_INPUTS` of `src/ops/add/add.cu`).
const ADD_MAX_INPUTS: usize = 8;

/// One input of an `add_n` launch: a view, or "read `y` itself".
enum AddIn<'v, 'a> {
    View(&'v DView<'a, f32>),
    SelfY,
}

/// Sums `inputs` (at most [`ADD_MAX_INPUTS`]) into `y` in one launch,
/// packing `y`'s sign bits into `pack` when given.
fn add_n_launch(
    dev: &CudaDevice,
    inputs: &[AddIn<'_, '_>],
    y: &mut DViewMut<'_, f32>,
    pack: Option<(&mut PackDest<'_, '_>, usize)>,
) -> Result<()> {
    let len = y.len();
    let null = 0u64;
    let self_pos = inputs
        .iter()
        .position(|x| matches!(x, AddIn::SelfY))
        .map_or(-1i32, |p| p as i32);
    let n_inputs = inputs.len() as i32;
    let len_u = len as u64;
    let k = if pack.is_some() { ADD_N_PACK } else { ADD_N };
    let f = dev.kernel(k)?;
    let mut b = dev.launch_builder(&f);
    for k in 0..ADD_MAX_INPUTS {
        match inputs.get(k) {
            Some(AddIn::View(v)) => b.arg(*v),
            _ => b.arg(&null),
        };
    }
    b.arg(&n_inputs).arg(&self_pos).arg(y);
    let cfg;
    let pack_args;
    match pack {
        None => {
            b.arg(&len_u);
            cfg = grid_1d(len_u);
        }
        Some((dest, batch)) => {
            let (n, wps) = check_pack("add", len, batch, dest)?;
            pack_args = [
                batch as u64,
                n as u64,
                wps as u64,
                dest.row_stride as u64,
                dest.word_offset as u64,
            ];
            b.arg(&pack_args[0])
                .arg(&pack_args[1])
                .arg(&pack_args[2])
                .arg(&*dest.codes)
                .arg(&pack_args[3])
                .arg(&pack_args[4]);
            cfg = pack_grid((batch * wps) as u64);
        }
    }
    if len == 0 {
        return Ok(());
    }
    // SAFETY: the arguments match `add_n(const float* x0..x7, int n_inputs,
    // int self_pos, float* y, u64 len)` or `add_n_pack(x0..x7, n_inputs,
    // self_pos, y, u64 batch, u64 n, u64 wps, u64* codes, u64 row_stride,
    // u64 word_offset)`; every input view has y's length (checked by the
    // callers), unused inputs are null and never read (k < n_inputs), the
    // kernel touches elements < len of each, and the code words written
    // lie inside `codes` (check_pack); blockDim 256 is a multiple of 32 as
    // the ballots need.
    unsafe { b.launch(cfg) }?;
    Ok(())
}

/// `y = x0 + x1 + …` in input order (bitwise the CPU's `add_forward`), in
/// one launch per 8 inputs, with `y`'s sign bits packed into `pack` (for
/// `batch` samples) when given: the sum and the codes of a counted tensor
/// in one pass. `y` must not alias an input (see [`add_n_inplace`]).
pub fn add_n(
    dev: &CudaDevice,
    inputs: &[&DView<'_, f32>],
    y: &mut DViewMut<'_, f32>,
    batch: usize,
    pack: Option<PackDest<'_, '_>>,
) -> Result<()> {
    if inputs.is_empty() {
        return Err(Error::Shape("add: no inputs".into()));
    }
    for (i, t) in inputs.iter().enumerate() {
        check_same_len(&format!("input {i}"), t.len(), y.len())?;
    }
    add_chunks(
        dev,
        inputs.iter().map(|v| AddIn::View(v)).collect(),
        y,
        batch,
        pack,
    )
}

/// `acc` holds input `pos` of a sum whose other inputs are `others` (in
/// order); overwrites `acc` with the whole sum in input order (bitwise
/// [`add_n`]), packing its sign bits when `pack` is given. No temporary.
pub fn add_n_inplace(
    dev: &CudaDevice,
    acc: &mut DViewMut<'_, f32>,
    pos: usize,
    others: &[&DView<'_, f32>],
    batch: usize,
    pack: Option<PackDest<'_, '_>>,
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
    let mut ins: Vec<AddIn<'_, '_>> = others.iter().map(|v| AddIn::View(v)).collect();
    ins.insert(pos, AddIn::SelfY);
    add_chunks(dev, ins, acc, batch, pack)
}

/// Sums in launches of at most 8 inputs: after the first, `y` (the partial
/// sum) is input 0 of the next, so the order stays the input order; only
/// the last launch packs.
fn add_chunks(
    dev: &CudaDevice,
    ins: Vec<AddIn<'_, '_>>,
    y: &mut DViewMut<'_, f32>,
    batch: usize,
    mut pack: Option<PackDest<'_, '_>>,
) -> Result<()> {
    // A chunk after the first starts with the partial sum in y; an input
    // that is y itself can only be first (in place), so it is consumed by
    // the first chunk when it comes before position 8.
    if ins
        .iter()
        .skip(ADD_MAX_INPUTS)
        .any(|x| matches!(x, AddIn::SelfY))
    {
        return Err(Error::Arg(
            "add: an in-place input past the 8th is not supported".into(),
        ));
    }
    let mut rest: &[AddIn<'_, '_>] = &ins;
    let mut first = true;
    while !rest.is_empty() {
        let take = if first {
            ADD_MAX_INPUTS
        } else {
            ADD_MAX_INPUTS - 1
        };
        let (now, later) = rest.split_at(take.min(rest.len()));
        let mut chunk: Vec<AddIn<'_, '_>> = Vec::with_capacity(ADD_MAX_INPUTS);
        if !first {
            chunk.push(AddIn::SelfY);
        }
        for x in now {
            chunk.push(match x {
                AddIn::View(v) => AddIn::View(v),
                AddIn::SelfY => AddIn::SelfY,
            });
        }
        let last = later.is_empty();
        let p = if last {
            pack.as_mut().map(|d| (d, batch))
        } else {
            None
        };
        add_n_launch(dev, &chunk, y, p)?;
        rest = later;
        first = false;
    }
    Ok(())
}

impl crate::ops::Forward<crate::ops::Cuda> for super::AddOp {
    /// The n-ary sum in input order (in place into the input the plan gave
    /// the output's buffer to, if any), packing the sum's sign bits when
    /// asked.
    fn forward(&self, a: &mut crate::ops::CudaFwd<'_>) -> Result<()> {
        let views: Vec<DView<'_, f32>> = a.inputs.iter().map(|(v, _)| *v).collect();
        let refs: Vec<&DView<'_, f32>> = views.iter().collect();
        let batch = a.out_shape.n;
        let dest = a.pack.take();
        match a.in_place {
            Some((pos, _)) => add_n_inplace(a.dev, &mut a.out, pos, &refs, batch, dest),
            None => add_n(a.dev, &refs, &mut a.out, batch, dest),
        }
    }
}

impl crate::ops::Backward<crate::ops::Cuda> for super::AddOp {
    /// Every input's gradient is `dy`: a copy, or an add into what is there.
    fn backward(&self, a: &mut crate::ops::CudaBwd<'_>) -> Result<()> {
        for g in a.dx.iter_mut().flatten() {
            if g.accumulate {
                add_into(a.dev, &mut g.dx, &a.dy)?;
            } else {
                a.dev.copy_dtod(&a.dy, &mut g.dx)?;
            }
        }
        Ok(())
    }
}
