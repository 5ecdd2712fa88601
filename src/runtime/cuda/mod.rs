//! The CUDA device: a context on one GPU (or the host emulation of one),
//! streams, device memory, and the kernels (`src/ops/<op>/*.cu`, `cuda/*.cu`) compiled by NVRTC for
//! that GPU's architecture and launched through one API.
//!
//! Two backends sit behind [`CudaDevice`]:
//! * the **driver**: libcuda through cudarc's raw driver calls (loaded at
//!   run time, so the crate builds and runs without it: every entry point
//!   checks [`driver_available`] first and returns [`Error::Device`] with
//!   the reason instead of letting cudarc panic), kernels loaded as CUBIN
//!   ([`nvrtc`]);
//! * the **host emulation** ([`emu`], [`CudaDevice::emulated`]): the same
//!   kernel sources compiled as host C++, run by a fiber scheduler, with
//!   red-zone checked memory. Everything above this module (launch
//!   functions, plans, lanes, the GPU trainer) runs unchanged on it, which
//!   is how CI runs every kernel without a GPU.
//!
//! Memory is [`DeviceBuffer`] / [`DView`] / [`DViewMut`] ([`memory`]);
//! kernels are named once in the kernel table ([`crate::exec::kernel_table`]), fetched once
//! per device ([`CudaDevice::kernel`], cached per (family, name)) and launched with [`CudaDevice::launch_builder`],
//! which checks the argument count and sizes against the kernel's
//! parameter list (driver: `cuFuncGetParamInfo`; emulation: the C++
//! signature) before every launch.
//!
//! Kernel launch functions, one per kernel with its data layout, live in
//! [`kernels`] (scoring, init, SGD) and beside each op's CPU code in
//! `crate::ops::<op>::cuda`.

pub mod emu;
pub mod kernel_ref;
pub mod kernels;
pub mod memory;
pub mod nvrtc;

pub use kernel_ref::{KernelRef, Pass};
pub use memory::{
    AsDView, AsDViewMut, DView, DViewMut, DeviceBuffer, KernelArg, KernelParams, NullPtr,
};

use crate::error::{Error, Result};
use bytemuck::Pod;
use cudarc::driver::{result as drv, sys, CudaContext, CudaStream};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

/// One GPU as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// CUDA device ordinal (as in `CUDA_VISIBLE_DEVICES` order).
    pub ordinal: usize,
    /// The device's name, as the driver reports it (e.g. `NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// (major, minor), e.g. (9, 0) for an H100.
    pub compute_capability: (u32, u32),
    /// Total device memory in bytes.
    pub total_memory: u64,
    /// Streaming multiprocessors (sizes grids so that every SM has work).
    pub multiprocessors: u32,
    /// Peak SM clock in kHz (as the driver reports it).
    pub clock_khz: u32,
}

impl DeviceInfo {
    /// NVRTC architecture number: `sm_{arch}`, e.g. 90 for (9, 0).
    pub fn arch(&self) -> u32 {
        self.compute_capability.0 * 10 + self.compute_capability.1
    }

    /// FP32 lanes per SM of this architecture (CUDA programming guide,
    /// "arithmetic instructions" table): 64 on sm_60/70/75/80, 128 on
    /// sm_86/89/90 and later.
    pub fn fp32_lanes_per_sm(&self) -> u32 {
        match self.compute_capability {
            (8, 0) | (7, _) | (6, 0) => 64,
            (major, _) if major >= 8 => 128,
            _ => 128,
        }
    }

    /// Peak fp32 rate in FLOP/s (an FMA counts 2): SMs × lanes × 2 × clock.
    pub fn fp32_peak_flops(&self) -> f64 {
        f64::from(self.multiprocessors)
            * f64::from(self.fp32_lanes_per_sm())
            * 2.0
            * f64::from(self.clock_khz)
            * 1e3
    }
}

/// Whether the CUDA driver library (libcuda) can be loaded (checked once).
pub fn driver_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library
    // names and drops what it opened; it touches no other state.
    *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() })
}

/// Whether NVRTC (libnvrtc) can be loaded (checked once).
pub fn nvrtc_available() -> bool {
    nvrtc::available()
}

fn require_driver() -> Result<()> {
    if driver_available() {
        Ok(())
    } else {
        Err(Error::Device(
            "no CUDA driver found (libcuda.so cannot be loaded)".into(),
        ))
    }
}

/// Maps a driver error to the crate's error, naming the failed step and
/// keeping the driver's error as the cause.
pub(crate) fn drv_err(what: &'static str) -> impl Fn(drv::DriverError) -> Error {
    move |e| Error::Driver {
        what: what.to_string(),
        source: e,
    }
}

/// Initialises the driver; `Ok(false)` when it works but sees no GPU.
fn init_driver() -> Result<bool> {
    require_driver()?;
    match drv::init() {
        Ok(()) => Ok(true),
        Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE => Ok(false),
        Err(e) => Err(drv_err("driver initialisation (cuInit)")(e)),
    }
}

/// The CUDA version the driver supports, as (major, minor), from
/// `cuDriverGetVersion` (13000 → (13, 0)).
pub fn driver_version() -> Result<(i32, i32)> {
    require_driver()?;
    let mut v = 0;
    // SAFETY: the library is loaded (checked above); the call writes one int
    // and needs no cuInit.
    unsafe { sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(drv_err("driver version (cuDriverGetVersion)"))?;
    Ok((v / 1000, (v % 1000) / 10))
}

/// Whether kernels compiled by NVRTC `nvrtc` load on a driver of CUDA
/// `driver`: `Ok(why)` or `Err(why not)`. A CUBIN loads on any driver of
/// the same or a newer major version (CUDA's minor-version compatibility);
/// PTX (only used when NVRTC cannot target the GPU) also needs the driver's
/// minor version to be at least NVRTC's.
pub fn nvrtc_compatibility(
    driver: (i32, i32),
    nvrtc: (i32, i32),
) -> std::result::Result<String, String> {
    let (d, n) = (driver, nvrtc);
    if n.0 > d.0 {
        return Err(format!(
            "NVRTC {}.{} is newer than the driver (CUDA {}.{}): its CUBINs need a CUDA {}.x \
             driver; use an NVRTC {}.x (e.g. DASNAS_NVRTC=/path/to/libnvrtc.so.{})",
            n.0, n.1, d.0, d.1, n.0, d.0, d.0
        ));
    }
    if n.0 == d.0 && n.1 > d.1 {
        Ok(format!(
            "yes: CUBIN from NVRTC {}.{} loads on a CUDA {}.{} driver (PTX would not, so \
             only CUBIN is loaded)",
            n.0, n.1, d.0, d.1
        ))
    } else {
        Ok(format!(
            "yes: NVRTC {}.{} on a CUDA {}.{} driver",
            n.0, n.1, d.0, d.1
        ))
    }
}

/// Number of GPUs the driver sees (0 when it sees none); an error when the
/// driver itself is missing or broken.
pub fn device_count() -> Result<usize> {
    if !init_driver()? {
        return Ok(0);
    }
    let n = drv::device::get_count().map_err(drv_err("device count"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Every GPU the driver sees (empty when it sees none); an error when the
/// driver is missing or broken. Creates no context.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    (0..device_count()?).map(device_info).collect()
}

fn device_info(ordinal: usize) -> Result<DeviceInfo> {
    let ord = i32::try_from(ordinal)
        .map_err(|_| Error::Device(format!("CUDA device ordinal {ordinal} out of range")))?;
    let dev = drv::device::get(ord).map_err(drv_err("device handle"))?;
    let name = drv::device::get_name(dev).map_err(drv_err("device name"))?;
    let attr = |a: sys::CUdevice_attribute, what: &'static str| -> Result<u32> {
        // SAFETY: `dev` was returned by cuDeviceGet just above.
        let v = unsafe { drv::device::get_attribute(dev, a) }.map_err(drv_err(what))?;
        Ok(u32::try_from(v).unwrap_or(0))
    };
    use sys::CUdevice_attribute as A;
    let major = attr(
        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
        "compute capability",
    )?;
    let minor = attr(
        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        "compute capability",
    )?;
    let multiprocessors = attr(
        A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        "multiprocessor count",
    )?;
    let clock_khz = attr(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE, "clock rate")?;
    // SAFETY: `dev` was returned by cuDeviceGet just above.
    let total = unsafe { drv::device::total_mem(dev) }.map_err(drv_err("total memory"))?;
    Ok(DeviceInfo {
        ordinal,
        name,
        compute_capability: (major, minor),
        total_memory: total as u64,
        multiprocessors,
        clock_khz,
    })
}

/// A kernel launch geometry: `grid_dim` blocks of `block_dim` threads, and
/// dynamic shared memory (none of our kernels uses any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in the grid, (x, y, z).
    pub grid_dim: (u32, u32, u32),
    /// Threads per block, (x, y, z).
    pub block_dim: (u32, u32, u32),
    /// Bytes of dynamic shared memory per block (0 for every kernel here).
    pub shared_mem_bytes: u32,
}

/// A loaded module of the driver backend, unloaded when the last kernel
/// handle of it goes.
struct LoadedModule {
    module: sys::CUmodule,
    ctx: Arc<CudaContext>,
}

// SAFETY: a CUmodule handle may be used from any thread with its context
// bound (every use here binds it first).
unsafe impl Send for LoadedModule {}
// SAFETY: as above; the handle is never mutated.
unsafe impl Sync for LoadedModule {}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        // Errors here (a destroyed context at exit) leave nothing to clean.
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: loaded by cuModuleLoadData, unloaded once, here.
            let _ = unsafe { drv::module::unload(self.module) };
        }
    }
}

#[derive(Clone)]
enum KernelHandle {
    Driver {
        func: sys::CUfunction,
        _module: Arc<LoadedModule>,
    },
    Emulated(emu::EmuKernel),
}

// SAFETY: a CUfunction is an immutable driver handle valid while its module
// is loaded (kept alive by `_module`); launches bind the context first.
unsafe impl Send for KernelHandle {}
// SAFETY: as above.
unsafe impl Sync for KernelHandle {}

/// A kernel ready to launch on one device: its handle and its parameter
/// sizes in bytes (`None` when the driver cannot say, before CUDA 12.4).
#[derive(Clone)]
pub struct Kernel {
    family: &'static str,
    name: &'static str,
    handle: KernelHandle,
    params: Option<Arc<[usize]>>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({}::{})", self.family, self.name)
    }
}

impl Kernel {
    /// The kernel's name (its `extern "C"` symbol).
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Its family: the `<family>.cu` it is defined in.
    pub fn family(&self) -> &'static str {
        self.family
    }
    /// Bytes of each parameter, when known.
    pub fn param_sizes(&self) -> Option<&[usize]> {
        self.params.as_deref()
    }
}

/// What runs the kernels: a GPU through the driver, or the host emulation.
enum Hardware {
    Driver(Arc<CudaContext>),
    Emulated(Arc<emu::Emulator>),
}

/// What every handle on one device shares: the hardware, the device's
/// description, the compiled modules and kernels.
struct Shared {
    hardware: Hardware,
    info: DeviceInfo,
    /// Disk cache of compiled images, fixed at open (see [`nvrtc::cache_dir`]).
    cache: Option<PathBuf>,
    modules: Mutex<HashMap<&'static str, Arc<LoadedModule>>>,
    kernels: RwLock<HashMap<(&'static str, &'static str), Kernel>>,
    /// What the user should know about how kernels were loaded (a PTX
    /// fallback), once each.
    notes: Mutex<Vec<String>>,
    /// Whether the driver has cuFuncGetParamInfo (CUDA 12.4+).
    param_info: bool,
}

#[derive(Clone)]
enum Stream {
    Driver(Arc<CudaStream>),
    Emulated,
}

/// An open GPU (or its host emulation): the shared context, modules and
/// kernels, and one stream that every launch and copy of this handle goes
/// to, in order.
pub struct CudaDevice {
    shared: Arc<Shared>,
    stream: Stream,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("info", &self.shared.info)
            .field("emulated", &self.is_emulated())
            .finish_non_exhaustive()
    }
}

/// The one place each [`LoadedModule`]-free allocation of the driver
/// backend is released.
struct DriverAllocator(Arc<CudaContext>);

impl memory::Allocator for DriverAllocator {
    fn free(&self, ptr: u64) {
        // A failure (context gone at exit) leaves nothing to free.
        if self.0.bind_to_thread().is_ok() {
            // SAFETY: `ptr` came from cuMemAlloc in this context and is
            // freed once (by its buffer's drop).
            let _ = unsafe { drv::free_sync(ptr) };
        }
    }
}

impl CudaDevice {
    /// Opens GPU `ordinal`: its primary context and a new (non-default)
    /// stream. Errors (never panics) when there is no driver, no such GPU,
    /// or no NVRTC to compile kernels.
    ///
    /// cudarc's per-buffer event tracking is switched off for the context
    /// here, once: this crate allocates no cudarc buffers (memory is
    /// [`DeviceBuffer`], raw driver allocations), and orders its streams
    /// itself — each lane's buffers are used only on its stream, and data
    /// shared by lanes is written and synchronised before any lane reads
    /// it — so the events cudarc would record are pure overhead.
    pub fn open(ordinal: usize) -> Result<Self> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::Device(if count == 0 {
                "the CUDA driver sees no GPU".into()
            } else {
                format!("no CUDA device {ordinal} (found {count})")
            }));
        }
        // Checked here rather than at the first launch: a device that cannot
        // compile its kernels is of no use, and the caller may fall back.
        nvrtc::library()?;
        let info = device_info(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(drv_err("context creation"))?;
        // SAFETY: see the doc comment: no cudarc buffer is used, and our
        // streams are ordered by our own synchronisation.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(drv_err("stream creation"))?;
        let param_info = driver_version().is_ok_and(|v| v >= (12, 4));
        Ok(CudaDevice {
            shared: Arc::new(Shared {
                hardware: Hardware::Driver(ctx),
                info,
                cache: nvrtc::cache_dir(),
                modules: Mutex::new(HashMap::new()),
                kernels: RwLock::new(HashMap::new()),
                notes: Mutex::new(Vec::new()),
                param_info,
            }),
            stream: Stream::Driver(stream),
        })
    }

    /// Opens the host emulation (see [`emu`]), building it first if needed
    /// in `<cache>/emu/` (the [`nvrtc::cache_dir`], else the system's
    /// temporary folder). Needs a C++17 compiler (`$CXX` or `g++`).
    pub fn emulated() -> Result<Self> {
        let dir = nvrtc::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("emu");
        Self::emulated_in(&dir)
    }

    /// [`Self::emulated`] with the emulation library built under `dir`.
    pub fn emulated_in(dir: &Path) -> Result<Self> {
        let emu = emu::Emulator::open(dir)?;
        Ok(CudaDevice {
            shared: Arc::new(Shared {
                hardware: Hardware::Emulated(emu),
                // The emulation stands for an H100 SXM (sm_90, 132 SMs), so
                // launch functions that size grids by the SM count choose
                // the geometry they would choose on the GPU we target.
                info: DeviceInfo {
                    ordinal: 0,
                    name: "dasnas host emulation (as an H100: sm_90, 132 SMs)".into(),
                    compute_capability: (9, 0),
                    total_memory: 0,
                    multiprocessors: 132,
                    clock_khz: 1_980_000,
                },
                cache: None,
                modules: Mutex::new(HashMap::new()),
                kernels: RwLock::new(HashMap::new()),
                notes: Mutex::new(Vec::new()),
                param_info: true,
            }),
            stream: Stream::Emulated,
        })
    }

    /// Whether this is the host emulation rather than a GPU.
    pub fn is_emulated(&self) -> bool {
        matches!(self.shared.hardware, Hardware::Emulated(_))
    }

    /// Another handle on the same device and stream (cheap: shared
    /// pointers).
    pub fn clone_handle(&self) -> Self {
        CudaDevice {
            shared: self.shared.clone(),
            stream: self.stream.clone(),
        }
    }

    /// Another handle on the same device, with its own new stream and the
    /// same loaded kernels: work queued through the two handles may overlap
    /// on the GPU (the scorer runs one cell pipeline per handle).
    pub fn with_new_stream(&self) -> Result<Self> {
        let stream = match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                Stream::Driver(ctx.new_stream().map_err(drv_err("stream creation"))?)
            }
            Hardware::Emulated(_) => Stream::Emulated,
        };
        Ok(CudaDevice {
            shared: self.shared.clone(),
            stream,
        })
    }

    /// What the driver says about this GPU (on the host emulation: an H100 SXM's
    /// figures, memory 0).
    pub fn info(&self) -> &DeviceInfo {
        &self.shared.info
    }

    /// `sm_{arch}` of this GPU, e.g. 90.
    pub fn arch(&self) -> u32 {
        self.shared.info.arch()
    }

    /// Notes on how kernels were loaded that a user should see (a PTX
    /// fallback for a GPU newer than NVRTC), each once.
    pub fn notes(&self) -> Vec<String> {
        self.shared
            .notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes this device's context current on the calling thread (the
    /// driver keeps one per thread); a no-op under emulation. Every method
    /// here binds it itself; lanes call this once per host thread.
    pub fn bind_to_thread(&self) -> Result<()> {
        match &self.shared.hardware {
            Hardware::Driver(ctx) => ctx.bind_to_thread().map_err(drv_err("context binding")),
            Hardware::Emulated(_) => Ok(()),
        }
    }

    /// Waits for all work queued on this handle's stream.
    pub fn synchronize(&self) -> Result<()> {
        match &self.stream {
            Stream::Driver(s) => s.synchronize().map_err(drv_err("synchronize")),
            Stream::Emulated => Ok(()),
        }
    }

    /// The kernel `k` names (a constant of the [kernel table](crate::exec::kernel_table)),
    /// compiling and loading its family's module on first use; cached per
    /// device, so later calls are one read-locked map lookup.
    pub fn kernel(&self, k: KernelRef) -> Result<Kernel> {
        let KernelRef { family, name, .. } = k;
        if let Some(k) = self
            .shared
            .kernels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(family, name))
        {
            return Ok(k.clone());
        }
        let kernel = self.load_function(family, name)?;
        self.shared
            .kernels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((family, name), kernel.clone());
        Ok(kernel)
    }

    fn load_function(&self, family: &'static str, name: &'static str) -> Result<Kernel> {
        match &self.shared.hardware {
            Hardware::Emulated(emu) => {
                let k = emu.kernel(family, name)?;
                Ok(Kernel {
                    family,
                    name,
                    handle: KernelHandle::Emulated(k),
                    params: emu.param_sizes(k).map(Arc::from),
                })
            }
            Hardware::Driver(ctx) => {
                let module = self.module(family)?;
                let c_name = std::ffi::CString::new(name)
                    .map_err(|_| Error::Device(format!("kernel name {name:?} contains NUL")))?;
                // The driver resolves a function in the context current on
                // this thread: bind it first (any thread may ask).
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                // SAFETY: the module is loaded (kept alive by `module`), the
                // name is a valid C string.
                let func =
                    unsafe { drv::module::get_function(module.module, c_name) }.map_err(|e| {
                        Error::Driver {
                            what: format!("kernel `{name}` in `{family}.cu`"),
                            source: e,
                        }
                    })?;
                let params = if self.shared.param_info {
                    driver_param_sizes(func)
                } else {
                    None
                };
                Ok(Kernel {
                    family,
                    name,
                    handle: KernelHandle::Driver {
                        func,
                        _module: module,
                    },
                    params,
                })
            }
        }
    }

    /// Compiles and loads family `family` now (it is otherwise loaded on
    /// first use). Under emulation every family is always there.
    pub fn module_loaded(&self, family: &'static str) -> Result<()> {
        match &self.shared.hardware {
            Hardware::Driver(_) => self.module(family).map(|_| ()),
            Hardware::Emulated(_) => nvrtc::source(family).map(|_| ()),
        }
    }

    fn module(&self, family: &'static str) -> Result<Arc<LoadedModule>> {
        let Hardware::Driver(ctx) = &self.shared.hardware else {
            return Err(Error::Internal("no modules under emulation".into()));
        };
        // The lock is held while compiling, so two threads do not load the
        // same module twice; compilation happens once per process anyway.
        let mut modules = self
            .shared
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(family) {
            return Ok(m.clone());
        }
        let arch = self.arch();
        let cache = self.shared.cache.as_deref();
        let (compiled, origin) = nvrtc::image_with_cache(family, arch, cache)?;
        let loaded = match load_image(ctx, &compiled.image) {
            Ok(m) => m,
            // An image from an earlier run may be stale or damaged in ways
            // the plausibility check cannot see: recompile once first.
            Err(_) if origin != nvrtc::Origin::Compiled => {
                nvrtc::forget(family, arch, cache);
                let (compiled, _) = nvrtc::image_with_cache(family, arch, None)?;
                load_image(ctx, &compiled.image)
                    .map_err(|e| load_error(family, &compiled.image, e))?
            }
            Err(e) => return Err(load_error(family, &compiled.image, e)),
        };
        if let Some(note) = &compiled.note {
            let mut notes = self.shared.notes.lock().unwrap_or_else(|e| e.into_inner());
            if !notes.contains(note) {
                notes.push(note.clone());
            }
        }
        let module = Arc::new(LoadedModule {
            module: loaded,
            ctx: ctx.clone(),
        });
        modules.insert(family, module.clone());
        Ok(module)
    }

    /// A launch of `kernel` on this handle's stream: add the arguments in
    /// the kernel's parameter order, then [`LaunchBuilder::launch`].
    pub fn launch_builder<'a>(&'a self, kernel: &'a Kernel) -> LaunchBuilder<'a> {
        LaunchBuilder {
            dev: self,
            kernel,
            args: Vec::with_capacity(16),
        }
    }

    fn allocator(&self) -> Arc<dyn memory::Allocator> {
        match &self.shared.hardware {
            Hardware::Driver(ctx) => Arc::new(DriverAllocator(ctx.clone())),
            Hardware::Emulated(emu) => Arc::new(emu::EmuAllocator(emu.clone())),
        }
    }

    /// Free device memory in bytes, as the driver reports it (every
    /// process's allocations taken); `None` under the host emulation, whose
    /// memory is the host's and is not checked.
    pub fn free_memory(&self) -> Result<Option<u64>> {
        match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                let (free, _total) = drv::mem_get_info().map_err(drv_err("memory query"))?;
                Ok(Some(free as u64))
            }
            Hardware::Emulated(_) => Ok(None),
        }
    }

    /// A buffer of `len` zeros (the zeroing is queued on this stream).
    pub fn alloc_zeros<T: Pod>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::Device(format!("allocation of {len} elements overflows")))?;
        if bytes == 0 {
            return Ok(DeviceBuffer::from_raw(0, len, None));
        }
        let ptr = match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                // SAFETY: a plain allocation in the bound context.
                let p = unsafe { drv::malloc_sync(bytes) }.map_err(|e| Error::Driver {
                    what: format!("allocation of {bytes} bytes"),
                    source: e,
                })?;
                let buf = DeviceBuffer::<T>::from_raw(p, len, Some(self.allocator()));
                // SAFETY: `p` is a fresh allocation of `bytes` bytes; the
                // buffer (freed only on drop) outlives the queued memset.
                unsafe { drv::memset_d8_async(p, 0, bytes, self.cu_stream()?) }
                    .map_err(drv_err("memset"))?;
                return Ok(buf);
            }
            Hardware::Emulated(emu) => emu.alloc(bytes, true)?,
        };
        Ok(DeviceBuffer::from_raw(ptr, len, Some(self.allocator())))
    }

    fn cu_stream(&self) -> Result<sys::CUstream> {
        match &self.stream {
            Stream::Driver(s) => Ok(s.cu_stream()),
            Stream::Emulated => Err(Error::Internal("no CUDA stream".into())),
        }
    }

    /// A new buffer holding a copy of `host`.
    pub fn upload<T: Pod>(&self, host: &[T]) -> Result<DeviceBuffer<T>> {
        let mut buf = self.alloc_zeros::<T>(host.len())?;
        self.copy_htod(host, &mut buf.as_view_mut())?;
        Ok(buf)
    }

    /// Copies `src` into `dst` (equal lengths). Queued on this stream; the
    /// host slice may be reused as soon as this returns (pageable memory
    /// is staged by the driver before the call returns).
    pub fn copy_htod<T: Pod>(&self, src: &[T], dst: &mut impl AsDViewMut<T>) -> Result<()> {
        let dst = dst.dview_mut();
        memory::same_len("host-to-device copy", src.len(), dst.len())?;
        let bytes: &[u8] = bytemuck::cast_slice(src);
        if bytes.is_empty() {
            return Ok(());
        }
        match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                // SAFETY: `dst` covers exactly `bytes.len()` device bytes
                // (checked lengths); the source is pageable host memory,
                // staged before the call returns.
                unsafe { drv::memcpy_htod_async(dst.device_ptr(), bytes, self.cu_stream()?) }
                    .map_err(drv_err("host-to-device copy"))
            }
            // SAFETY: the host side is `bytes`; the device side is checked.
            Hardware::Emulated(emu) => unsafe {
                emu.copy(
                    dst.device_ptr(),
                    true,
                    bytes.as_ptr() as u64,
                    false,
                    bytes.len(),
                )
            },
        }
    }

    /// Copies `src` into `dst` (equal lengths), waiting for this stream, so
    /// `dst` holds the result when this returns.
    pub fn copy_dtoh<T: Pod>(&self, src: &impl AsDView<T>, dst: &mut [T]) -> Result<()> {
        let src = src.dview();
        memory::same_len("device-to-host copy", src.len(), dst.len())?;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(dst);
        if bytes.is_empty() {
            return Ok(());
        }
        match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                // SAFETY: lengths checked; `bytes` stays borrowed until the
                // stream is synchronised below.
                unsafe { drv::memcpy_dtoh_async(bytes, src.device_ptr(), self.cu_stream()?) }
                    .map_err(drv_err("device-to-host copy"))?;
                self.synchronize()
            }
            // SAFETY: the host side is `bytes`; the device side is checked.
            Hardware::Emulated(emu) => unsafe {
                emu.copy(
                    bytes.as_mut_ptr() as u64,
                    false,
                    src.device_ptr(),
                    true,
                    bytes.len(),
                )
            },
        }
    }

    /// The contents of `src`, copied back (waits for this stream).
    pub fn download<T: Pod>(&self, src: &impl AsDView<T>) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); src.dview().len()];
        self.copy_dtoh(src, &mut out)?;
        Ok(out)
    }

    /// Copies device `src` into `dst` (equal lengths, not overlapping),
    /// queued on this stream.
    pub fn copy_dtod<T: Pod>(
        &self,
        src: &impl AsDView<T>,
        dst: &mut impl AsDViewMut<T>,
    ) -> Result<()> {
        let (src, dst) = (src.dview(), dst.dview_mut());
        memory::same_len("device-to-device copy", src.len(), dst.len())?;
        let bytes = src.len() * std::mem::size_of::<T>();
        if bytes == 0 {
            return Ok(());
        }
        match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                // SAFETY: both ranges are live views of `bytes` bytes.
                unsafe {
                    drv::memcpy_dtod_async(
                        dst.device_ptr(),
                        src.device_ptr(),
                        bytes,
                        self.cu_stream()?,
                    )
                }
                .map_err(drv_err("device-to-device copy"))
            }
            // SAFETY: both sides checked against live allocations.
            Hardware::Emulated(emu) => unsafe {
                emu.copy(dst.device_ptr(), true, src.device_ptr(), true, bytes)
            },
        }
    }

    /// Sets every byte of `dst` to zero, queued on this stream.
    pub fn memset_zeros<T: Pod>(&self, dst: &mut impl AsDViewMut<T>) -> Result<()> {
        let dst = dst.dview_mut();
        let bytes = dst.len() * std::mem::size_of::<T>();
        if bytes == 0 {
            return Ok(());
        }
        match &self.shared.hardware {
            Hardware::Driver(ctx) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                // SAFETY: the view covers `bytes` live device bytes.
                unsafe { drv::memset_d8_async(dst.device_ptr(), 0, bytes, self.cu_stream()?) }
                    .map_err(drv_err("memset"))
            }
            Hardware::Emulated(emu) => emu.memset(dst.device_ptr(), 0, bytes),
        }
    }

    /// Records an event on this stream (for timing with [`Event::seconds_to`]).
    pub fn record_event(&self) -> Result<Event> {
        match &self.stream {
            Stream::Driver(s) => s
                .record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map(Event::Driver)
                .map_err(drv_err("event record")),
            // Emulated work runs when queued, so host time is device time.
            Stream::Emulated => Ok(Event::Host(Instant::now())),
        }
    }
}

/// A point in a stream's work, for timing.
pub enum Event {
    /// A CUDA event recorded on a driver stream.
    Driver(cudarc::driver::CudaEvent),
    /// The host clock when the event was recorded (host emulation: its work runs
    /// as it is queued, so host time is device time).
    Host(Instant),
}

impl Event {
    /// Seconds from this event to `end` (both completed).
    pub fn seconds_to(&self, end: &Event) -> Result<f64> {
        match (self, end) {
            (Event::Driver(a), Event::Driver(b)) => {
                Ok(f64::from(a.elapsed_ms(b).map_err(drv_err("event timing"))?) * 1e-3)
            }
            (Event::Host(a), Event::Host(b)) => Ok(b.saturating_duration_since(*a).as_secs_f64()),
            _ => Err(Error::Internal("events of two different backends".into())),
        }
    }
}

/// Parameter sizes of a driver function (`cuFuncGetParamInfo`, CUDA 12.4+),
/// or `None` when the driver cannot say.
fn driver_param_sizes(func: sys::CUfunction) -> Option<Arc<[usize]>> {
    let mut sizes = Vec::new();
    for i in 0..256usize {
        let (mut offset, mut size) = (0usize, 0usize);
        // SAFETY: a valid function handle; the call writes two usizes.
        let r = unsafe { sys::cuFuncGetParamInfo(func, i, &mut offset, &mut size) };
        match r {
            sys::CUresult::CUDA_SUCCESS => sizes.push(size),
            // Past the last parameter.
            sys::CUresult::CUDA_ERROR_INVALID_VALUE => return Some(sizes.into()),
            _ => return None,
        }
    }
    None
}

/// Loads a compiled image into the context `ctx`.
fn load_image(
    ctx: &Arc<CudaContext>,
    image: &nvrtc::Image,
) -> std::result::Result<sys::CUmodule, drv::DriverError> {
    ctx.bind_to_thread()?;
    match image {
        // SAFETY: a CUBIN is an ELF image that cuModuleLoadData reads in
        // full during the call; `bytes` lives across it.
        nvrtc::Image::Cubin { bytes, .. } => unsafe {
            drv::module::load_data(bytes.as_ptr().cast())
        },
        nvrtc::Image::Ptx { text, .. } => {
            // PTX must be NUL-terminated; NVRTC's output has no interior NUL
            // (cut at the first one), and the disk cache rejects any.
            let mut z = text.clone().into_bytes();
            z.push(0);
            // SAFETY: NUL-terminated PTX text, alive across the call.
            unsafe { drv::module::load_data(z.as_ptr().cast()) }
        }
    }
}

fn load_error(family: &str, image: &nvrtc::Image, e: drv::DriverError) -> Error {
    let nv = nvrtc::version()
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|_| "?".into());
    let drv_v = driver_version()
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|_| "?".into());
    let hint = match e.0 {
        sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => format!(
            " (NVRTC {nv} emits a PTX version this CUDA {drv_v} driver is too old for: use \
             an NVRTC no newer than the driver, e.g. DASNAS_NVRTC=/path/to/libnvrtc.so.13 of \
             nvidia-cuda-nvrtc==13.0.88)"
        ),
        sys::CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU
        | sys::CUresult::CUDA_ERROR_INVALID_IMAGE
        | sys::CUresult::CUDA_ERROR_INVALID_SOURCE => format!(
            " (NVRTC {nv}, driver CUDA {drv_v}: an NVRTC of a newer major version than the \
             driver writes images the driver cannot load)"
        ),
        _ => String::new(),
    };
    Error::Device(format!(
        "CUDA could not load the {} of `{family}.cu`: {e}{hint}",
        image.describe()
    ))
}

/// The arguments of one launch, collected in the kernel's parameter order
/// (see [`CudaDevice::launch_builder`]).
pub struct LaunchBuilder<'a> {
    dev: &'a CudaDevice,
    kernel: &'a Kernel,
    args: Vec<&'a dyn KernelArg>,
}

impl<'a> LaunchBuilder<'a> {
    /// Appends the next parameter: a scalar of the parameter's C type, a
    /// view for a pointer, or [`NullPtr`].
    pub fn arg<T: KernelArg>(&mut self, a: &'a T) -> &mut Self {
        self.args.push(a);
        self
    }

    /// Queues the kernel on the device's stream (under emulation: runs it).
    /// Errors, without launching, when the arguments do not match the
    /// kernel's parameter count and sizes, or the geometry is invalid; the
    /// error names the kernel.
    ///
    /// # Safety
    /// The arguments must be of the kernel's parameter types, and every
    /// element a kernel reads or writes through a pointer must lie inside
    /// the view passed for it (the launch functions check sizes first).
    pub unsafe fn launch(&mut self, cfg: LaunchConfig) -> Result<()> {
        let k = self.kernel;
        check_geometry(k.name, &cfg)?;
        if let Some(sizes) = &k.params {
            let given: Vec<usize> = self.args.iter().map(|a| a.param_size()).collect();
            if given.as_slice() != &sizes[..] {
                return Err(Error::Device(format!(
                    "launch of `{}`: arguments of {given:?} bytes for parameters of {:?} bytes",
                    k.name,
                    &sizes[..]
                )));
            }
        }
        match (&k.handle, &self.dev.shared.hardware) {
            (KernelHandle::Driver { func, .. }, Hardware::Driver(ctx)) => {
                ctx.bind_to_thread().map_err(drv_err("context binding"))?;
                let mut params: Vec<*mut std::ffi::c_void> =
                    self.args.iter().map(|a| a.param_ptr()).collect();
                drv::launch_kernel(
                    *func,
                    cfg.grid_dim,
                    cfg.block_dim,
                    cfg.shared_mem_bytes,
                    self.dev.cu_stream()?,
                    &mut params,
                )
                .map_err(|e| Error::Driver {
                    what: format!("launch of `{}`", k.name),
                    source: e,
                })
            }
            (KernelHandle::Emulated(h), Hardware::Emulated(emu)) => emu.launch(
                *h,
                k.name,
                cfg.grid_dim,
                cfg.block_dim,
                cfg.shared_mem_bytes,
                &self.args,
            ),
            _ => Err(Error::Internal(format!(
                "kernel `{}` launched on another backend",
                k.name
            ))),
        }
    }
}

/// The limits every CUDA launch must respect (compute capability 7.0+):
/// 1–1024 threads per block, block z ≤ 64, grid x < 2³¹, y and z ≤ 65535,
/// and at most 48 KiB of dynamic shared memory without opt-in.
fn check_geometry(name: &str, cfg: &LaunchConfig) -> Result<()> {
    let (bx, by, bz) = cfg.block_dim;
    let (gx, gy, gz) = cfg.grid_dim;
    let threads = u64::from(bx) * u64::from(by) * u64::from(bz);
    let ok = (1..=1024).contains(&threads)
        && bz <= 64
        && (1..=0x7fff_ffff).contains(&gx)
        && (1..=65535).contains(&gy)
        && (1..=65535).contains(&gz)
        && cfg.shared_mem_bytes <= 48 * 1024;
    if ok {
        Ok(())
    } else {
        Err(Error::Device(format!(
            "launch of `{name}`: invalid geometry {cfg:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_follows_cuda_minor_version_rules() {
        assert!(nvrtc_compatibility((13, 0), (13, 0)).is_ok());
        let newer_minor = nvrtc_compatibility((13, 0), (13, 2)).unwrap();
        assert!(newer_minor.contains("CUBIN"), "{newer_minor}");
        assert!(nvrtc_compatibility((13, 1), (12, 8)).is_ok());
        let e = nvrtc_compatibility((12, 8), (13, 0)).unwrap_err();
        assert!(e.contains("newer than the driver"), "{e}");
    }

    #[test]
    fn geometry_limits_are_checked() {
        let good = LaunchConfig {
            grid_dim: (1 << 16, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        assert!(check_geometry("k", &good).is_ok());
        for bad in [
            LaunchConfig {
                block_dim: (1025, 1, 1),
                ..good
            },
            LaunchConfig {
                block_dim: (0, 1, 1),
                ..good
            },
            LaunchConfig {
                grid_dim: (1, 65536, 1),
                ..good
            },
            LaunchConfig {
                grid_dim: (0, 1, 1),
                ..good
            },
        ] {
            let e = check_geometry("k", &bad).unwrap_err().to_string();
            assert!(e.contains("`k`"), "{e}");
        }
    }
}
