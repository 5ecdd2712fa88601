//! Device memory: owned buffers and borrowed views of them, and the kernel
//! arguments they become.
//!
//! A [`DeviceBuffer<T>`] owns `len` elements of `T` on one device; a
//! [`DView`] / [`DViewMut`] borrows a range of one, shared or exclusive, as
//! a Rust slice borrows a `Vec`. The borrow checker therefore keeps two
//! launches from being handed overlapping outputs, and views of different
//! ranges of one buffer can be passed to one launch (split it first).
//!
//! An address is a `u64`: a `CUdeviceptr` on a GPU, a host address under
//! the host emulation (`super::emu`), so the same launch code runs on
//! both. Element types are `bytemuck::Pod` (plain bits, no padding, any bit
//! pattern valid), which is what lets buffers be copied from and to host
//! slices without `unsafe` at the call sites.

use crate::error::{Error, Result};
use bytemuck::Pod;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Who frees a buffer: the backend that allocated it.
pub(crate) trait Allocator: Send + Sync {
    /// Frees the allocation at `ptr` (never called with a null `ptr`).
    fn free(&self, ptr: u64);
}

/// `len` elements of `T` in device memory, freed on drop.
///
/// Dropping a buffer that queued work still uses is the caller's error to
/// avoid (as in CUDA): synchronise first. A zero-length buffer allocates
/// nothing.
pub struct DeviceBuffer<T> {
    ptr: u64,
    len: usize,
    owner: Option<Arc<dyn Allocator>>,
    _t: PhantomData<T>,
}

// SAFETY: a DeviceBuffer is a handle (an address and a length); the memory
// is only touched through the device's API, which may be called from any
// thread.
unsafe impl<T: Send> Send for DeviceBuffer<T> {}
// SAFETY: as above; shared access only reads the handle.
unsafe impl<T: Sync> Sync for DeviceBuffer<T> {}

impl<T> std::fmt::Debug for DeviceBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceBuffer<{}>[{}] at {:#x}",
            std::any::type_name::<T>(),
            self.len,
            self.ptr
        )
    }
}

impl<T> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        if let Some(owner) = &self.owner {
            if self.ptr != 0 {
                owner.free(self.ptr);
            }
        }
    }
}

/// Resolves a range against `len`; `None` when out of bounds or reversed.
fn bounds(r: impl RangeBounds<usize>, len: usize) -> Option<(usize, usize)> {
    let start = match r.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => e.checked_add(1)?,
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    (start <= end && end <= len).then_some((start, end))
}

fn out_of_range(start_end: Option<(usize, usize)>, what: &str, len: usize) -> ! {
    // Slicing out of range is a bug of the caller, as with `&v[a..b]`.
    panic!("{what}: range {start_end:?} out of bounds of {len} device elements")
}

impl<T: Pod> DeviceBuffer<T> {
    /// Wraps an allocation of `len` elements at `ptr` owned by `owner`.
    pub(crate) fn from_raw(ptr: u64, len: usize, owner: Option<Arc<dyn Allocator>>) -> Self {
        DeviceBuffer {
            ptr,
            len,
            owner,
            _t: PhantomData,
        }
    }

    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of element 0.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// A shared view of the whole buffer.
    pub fn as_view(&self) -> DView<'_, T> {
        DView::new(self.ptr, self.len)
    }

    /// An exclusive view of the whole buffer.
    pub fn as_view_mut(&mut self) -> DViewMut<'_, T> {
        DViewMut::new(self.ptr, self.len)
    }

    /// A shared view of elements `r`; `None` when out of bounds.
    pub fn try_slice(&self, r: impl RangeBounds<usize>) -> Option<DView<'_, T>> {
        self.as_view().try_slice(r)
    }

    /// An exclusive view of elements `r`; `None` when out of bounds.
    pub fn try_slice_mut(&mut self, r: impl RangeBounds<usize>) -> Option<DViewMut<'_, T>> {
        let (s, e) = bounds(r, self.len)?;
        Some(DViewMut::new(self.elem(s), e - s))
    }

    /// A shared view of elements `r`. Panics when out of bounds (as slice
    /// indexing does).
    pub fn slice(&self, r: impl RangeBounds<usize>) -> DView<'_, T> {
        self.as_view().slice(r)
    }

    /// An exclusive view of elements `r`. Panics when out of bounds.
    pub fn slice_mut(&mut self, r: impl RangeBounds<usize>) -> DViewMut<'_, T> {
        match bounds(r, self.len) {
            Some((s, e)) => DViewMut::new(self.elem(s), e - s),
            None => out_of_range(None, "DeviceBuffer::slice_mut", self.len),
        }
    }

    /// Two exclusive views, `[0, mid)` and `[mid, len)`; `None` when
    /// `mid > len`.
    pub fn try_split_at_mut(&mut self, mid: usize) -> Option<(DViewMut<'_, T>, DViewMut<'_, T>)> {
        (mid <= self.len).then(|| {
            (
                DViewMut::new(self.ptr, mid),
                DViewMut::new(self.elem(mid), self.len - mid),
            )
        })
    }

    /// [`Self::try_split_at_mut`], panicking when `mid > len`.
    pub fn split_at_mut(&mut self, mid: usize) -> (DViewMut<'_, T>, DViewMut<'_, T>) {
        let len = self.len;
        self.try_split_at_mut(mid)
            .unwrap_or_else(|| out_of_range(Some((mid, mid)), "split_at_mut", len))
    }

    fn elem(&self, i: usize) -> u64 {
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }
}

/// A shared view of `len` elements of `T` in device memory, borrowed from
/// a [`DeviceBuffer`] for `'a`.
pub struct DView<'a, T> {
    ptr: u64,
    len: usize,
    _b: PhantomData<&'a [T]>,
}

impl<T> Clone for DView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DView<'_, T> {}

impl<T> std::fmt::Debug for DView<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DView[{}] at {:#x}", self.len, self.ptr)
    }
}

impl<'a, T: Pod> DView<'a, T> {
    fn new(ptr: u64, len: usize) -> Self {
        DView {
            ptr,
            len,
            _b: PhantomData,
        }
    }

    /// Elements in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of element 0.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Elements `r` of this view; `None` when out of bounds.
    pub fn try_slice(&self, r: impl RangeBounds<usize>) -> Option<DView<'a, T>> {
        let (s, e) = bounds(r, self.len)?;
        Some(DView::new(
            self.ptr + (s * std::mem::size_of::<T>()) as u64,
            e - s,
        ))
    }

    /// Elements `r` of this view. Panics when out of bounds.
    pub fn slice(&self, r: impl RangeBounds<usize>) -> DView<'a, T> {
        let len = self.len;
        self.try_slice(r)
            .unwrap_or_else(|| out_of_range(None, "DView::slice", len))
    }

    /// `[0, mid)` and `[mid, len)`. Panics when `mid > len`.
    pub fn split_at(&self, mid: usize) -> (DView<'a, T>, DView<'a, T>) {
        (self.slice(..mid), self.slice(mid..))
    }
}

/// An exclusive view of `len` elements of `T` in device memory, borrowed
/// from a [`DeviceBuffer`] for `'a`.
pub struct DViewMut<'a, T> {
    ptr: u64,
    len: usize,
    _b: PhantomData<&'a mut [T]>,
}

impl<T> std::fmt::Debug for DViewMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DViewMut[{}] at {:#x}", self.len, self.ptr)
    }
}

impl<'a, T: Pod> DViewMut<'a, T> {
    fn new(ptr: u64, len: usize) -> Self {
        DViewMut {
            ptr,
            len,
            _b: PhantomData,
        }
    }

    /// Elements in the view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address of element 0.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// A shared view of the same elements (for as long as this is borrowed).
    pub fn as_view(&self) -> DView<'_, T> {
        DView::new(self.ptr, self.len)
    }

    /// A shorter-lived exclusive view of the same elements.
    pub fn as_view_mut(&mut self) -> DViewMut<'_, T> {
        DViewMut::new(self.ptr, self.len)
    }

    fn elem(&self, i: usize) -> u64 {
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }

    /// Shared view of elements `r`; `None` when out of bounds.
    pub fn try_slice(&self, r: impl RangeBounds<usize>) -> Option<DView<'_, T>> {
        self.as_view().try_slice(r)
    }

    /// Shared view of elements `r`. Panics when out of bounds.
    pub fn slice(&self, r: impl RangeBounds<usize>) -> DView<'_, T> {
        self.as_view().slice(r)
    }

    /// Exclusive view of elements `r`; `None` when out of bounds.
    pub fn try_slice_mut(&mut self, r: impl RangeBounds<usize>) -> Option<DViewMut<'_, T>> {
        let (s, e) = bounds(r, self.len)?;
        Some(DViewMut::new(self.elem(s), e - s))
    }

    /// Exclusive view of elements `r`. Panics when out of bounds.
    pub fn slice_mut(&mut self, r: impl RangeBounds<usize>) -> DViewMut<'_, T> {
        let len = self.len;
        self.try_slice_mut(r)
            .unwrap_or_else(|| out_of_range(None, "DViewMut::slice_mut", len))
    }

    /// Elements `r`, keeping this view's lifetime (consumes the view).
    pub fn into_slice_mut(self, r: impl RangeBounds<usize>) -> Option<DViewMut<'a, T>> {
        let (s, e) = bounds(r, self.len)?;
        Some(DViewMut::new(self.elem(s), e - s))
    }

    /// `[0, mid)` and `[mid, len)` as two exclusive views; `None` when
    /// `mid > len`.
    pub fn try_split_at_mut(&mut self, mid: usize) -> Option<(DViewMut<'_, T>, DViewMut<'_, T>)> {
        (mid <= self.len).then(|| {
            (
                DViewMut::new(self.ptr, mid),
                DViewMut::new(self.elem(mid), self.len - mid),
            )
        })
    }

    /// [`Self::try_split_at_mut`], panicking when `mid > len`.
    pub fn split_at_mut(&mut self, mid: usize) -> (DViewMut<'_, T>, DViewMut<'_, T>) {
        let len = self.len;
        self.try_split_at_mut(mid)
            .unwrap_or_else(|| out_of_range(Some((mid, mid)), "split_at_mut", len))
    }

    /// [`Self::try_split_at_mut`] keeping this view's lifetime (consumes it).
    pub fn into_split_at_mut(self, mid: usize) -> Option<(DViewMut<'a, T>, DViewMut<'a, T>)> {
        (mid <= self.len).then(|| {
            (
                DViewMut::new(self.ptr, mid),
                DViewMut::new(self.elem(mid), self.len - mid),
            )
        })
    }
}

/// Anything that reads as a shared device view: buffers and both views.
pub trait AsDView<T> {
    /// The whole of `self` as a shared view.
    fn dview(&self) -> DView<'_, T>;
}

impl<T: Pod> AsDView<T> for DeviceBuffer<T> {
    fn dview(&self) -> DView<'_, T> {
        self.as_view()
    }
}
impl<T: Pod> AsDView<T> for DView<'_, T> {
    fn dview(&self) -> DView<'_, T> {
        *self
    }
}
impl<T: Pod> AsDView<T> for DViewMut<'_, T> {
    fn dview(&self) -> DView<'_, T> {
        self.as_view()
    }
}

/// Anything that writes as an exclusive device view: buffers and views.
pub trait AsDViewMut<T> {
    /// The whole of `self` as an exclusive view.
    fn dview_mut(&mut self) -> DViewMut<'_, T>;
}

impl<T: Pod> AsDViewMut<T> for DeviceBuffer<T> {
    fn dview_mut(&mut self) -> DViewMut<'_, T> {
        self.as_view_mut()
    }
}
impl<T: Pod> AsDViewMut<T> for DViewMut<'_, T> {
    fn dview_mut(&mut self) -> DViewMut<'_, T> {
        self.as_view_mut()
    }
}

/// A value a kernel takes as one parameter: the bytes `cuLaunchKernel`
/// copies from [`KernelArg::param_ptr`], which must be exactly the C type
/// of that parameter (`u64` for `u64`, a device address for `T*`).
///
/// # Safety
/// `param_ptr` must point to `size_of` of the parameter's C type readable
/// bytes that live as long as `self`.
pub unsafe trait KernelArg {
    /// Pointer to the parameter's bytes.
    fn param_ptr(&self) -> *mut c_void;
    /// Bytes of the parameter (checked against the kernel's signature).
    fn param_size(&self) -> usize;
    /// For device pointers: (address, bytes) of the memory the view covers,
    /// which the host emulation checks against its live allocations.
    fn device_range(&self) -> Option<(u64, usize)> {
        None
    }
}

macro_rules! scalar_kernel_arg {
    ($($t:ty),*) => {$(
        // SAFETY: a scalar parameter is its own bytes.
        unsafe impl KernelArg for $t {
            fn param_ptr(&self) -> *mut c_void {
                self as *const $t as *mut c_void
            }
            fn param_size(&self) -> usize {
                std::mem::size_of::<$t>()
            }
        }
    )*};
}
scalar_kernel_arg!(i32, u32, i64, u64, f32, f64);

// SAFETY: a pointer parameter is the 8-byte device address, which the view
// holds in its `ptr` field for as long as it lives.
unsafe impl<T: Pod> KernelArg for DView<'_, T> {
    fn param_ptr(&self) -> *mut c_void {
        &self.ptr as *const u64 as *mut c_void
    }
    fn param_size(&self) -> usize {
        8
    }
    fn device_range(&self) -> Option<(u64, usize)> {
        Some((self.ptr, self.len * std::mem::size_of::<T>()))
    }
}

// SAFETY: as for DView.
unsafe impl<T: Pod> KernelArg for DViewMut<'_, T> {
    fn param_ptr(&self) -> *mut c_void {
        &self.ptr as *const u64 as *mut c_void
    }
    fn param_size(&self) -> usize {
        8
    }
    fn device_range(&self) -> Option<(u64, usize)> {
        Some((self.ptr, self.len * std::mem::size_of::<T>()))
    }
}

/// A `#[repr(C)]` struct a kernel takes by value: a kernel family's
/// geometry (the conv's `ConvGeom`, the pool's `PoolGeom`), passed as one
/// parameter instead of a dozen positional integers. It is a [`KernelArg`]
/// whose bytes are the struct's, and the launch checks its size against
/// the kernel's parameter list.
///
/// # Safety
/// The type must be `#[repr(C)]` with exactly the layout of the C struct
/// the kernel declares: the same field types in the same order (a size
/// check cannot see two swapped fields of one type). Each implementation
/// sits beside the `.cuh`/`.cu` that declares its C twin.
pub unsafe trait KernelParams: Pod {}

// SAFETY: a by-value struct parameter is its own bytes (`KernelParams`
// promises the C layout).
unsafe impl<T: KernelParams> KernelArg for T {
    fn param_ptr(&self) -> *mut c_void {
        self as *const T as *mut c_void
    }
    fn param_size(&self) -> usize {
        std::mem::size_of::<T>()
    }
}

/// A null device pointer, for a kernel's unused optional pointer
/// parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullPtr(u64);

impl NullPtr {
    /// The null pointer (address 0).
    pub const fn new() -> Self {
        NullPtr(0)
    }
}

// SAFETY: an 8-byte zero address.
unsafe impl KernelArg for NullPtr {
    fn param_ptr(&self) -> *mut c_void {
        &self.0 as *const u64 as *mut c_void
    }
    fn param_size(&self) -> usize {
        8
    }
}

/// Checks that a copy between `a` and `b` elements is of equal lengths.
pub(crate) fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{what}: source has {a} elements, destination {b}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_slice_and_split_by_element() {
        let mut b = DeviceBuffer::<f32>::from_raw(0x1000, 10, None);
        assert_eq!(b.slice(2..5).device_ptr(), 0x1008);
        assert_eq!(b.slice(2..5).len(), 3);
        assert!(b.try_slice(3..11).is_none());
        assert!(b.try_slice_mut(11..).is_none());
        let (lo, hi) = b.split_at_mut(4);
        assert_eq!((lo.device_ptr(), lo.len()), (0x1000, 4));
        assert_eq!((hi.device_ptr(), hi.len()), (0x1010, 6));
        let v = hi.into_slice_mut(1..=2).unwrap();
        assert_eq!((v.device_ptr(), v.len()), (0x1014, 2));
        let w = DeviceBuffer::<u64>::from_raw(0x2000, 3, None);
        assert_eq!(w.slice(1..).device_ptr(), 0x2008);
        assert_eq!(w.as_view().device_range(), Some((0x2000, 24)));
    }

    #[test]
    fn kernel_args_point_at_their_bytes() {
        let x = 7u64;
        // SAFETY: reading the 8 bytes the argument points to.
        assert_eq!(unsafe { *(x.param_ptr() as *const u64) }, 7);
        let b = DeviceBuffer::<f32>::from_raw(0xabc0, 4, None);
        let v = b.as_view();
        // SAFETY: as above.
        assert_eq!(unsafe { *(v.param_ptr() as *const u64) }, 0xabc0);
        // SAFETY: as above.
        assert_eq!(unsafe { *(NullPtr::new().param_ptr() as *const u64) }, 0);
    }
}
