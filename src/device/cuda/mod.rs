//! The CUDA device: a context on one GPU, a stream, and the kernel modules
//! of `cuda/` compiled by NVRTC for that GPU's architecture.
//!
//! Everything is reached through cudarc with run-time loading of libcuda
//! and libnvrtc, so the crate builds, tests and runs on machines without
//! either: cudarc panics on a missing library, so every entry point here
//! checks [`driver_available`] / [`nvrtc_available`] first and returns
//! [`Error::Device`] with the reason instead.
//!
//! Kernel launch functions, one per kernel with its data layout, live in
//! [`kernels`]; each has a CPU twin that `tests/gpu_vs_cpu.rs` compares
//! against. The network ops' launch functions sit beside their CPU code in
//! `crate::ops::<op>::cuda` (pool, add, relu, global_avg_pool, linear;
//! compared in `tests/gpu_ops_misc.rs`).

pub mod executor;
pub mod kernels;
pub mod nvrtc;

use crate::error::{Error, Result};
use cudarc::driver::{result as drv, sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// One GPU as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// CUDA device ordinal (as in `CUDA_VISIBLE_DEVICES` order).
    pub ordinal: usize,
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

/// Maps a driver error to the crate's error, naming the failed step.
fn drv_err(what: &'static str) -> impl Fn(drv::DriverError) -> Error {
    move |e| Error::Device(format!("CUDA {what}: {e}"))
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

/// An open GPU: its context, one stream that every launch of this device
/// goes to (so launches are ordered), and the kernel modules loaded so far.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    info: DeviceInfo,
    /// Disk cache of PTX, fixed at open (see [`nvrtc::cache_dir`]).
    cache: Option<PathBuf>,
    /// Loaded module per kernel family, shared by every handle made with
    /// [`CudaDevice::with_new_stream`].
    modules: Arc<Mutex<HashMap<String, Arc<CudaModule>>>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl CudaDevice {
    /// Opens GPU `ordinal`: its primary context and a new (non-default)
    /// stream, which CUDA-graph capture will need. Errors (never panics)
    /// when there is no driver, no such GPU, or no NVRTC to compile kernels.
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
        if !nvrtc_available() {
            return Err(Error::Device(
                "NVRTC (libnvrtc.so) not found: it compiles the kernels at run time".into(),
            ));
        }
        let info = device_info(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(drv_err("context creation"))?;
        let stream = ctx.new_stream().map_err(drv_err("stream creation"))?;
        Ok(CudaDevice {
            ctx,
            stream,
            info,
            cache: nvrtc::cache_dir(),
            modules: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Another handle on the same GPU, context and stream (cheap: shared
    /// pointers).
    pub fn clone_handle(&self) -> Self {
        CudaDevice {
            ctx: self.ctx.clone(),
            stream: self.stream.clone(),
            info: self.info.clone(),
            cache: self.cache.clone(),
            modules: self.modules.clone(),
        }
    }

    /// Another handle on the same GPU and context, with its own new stream
    /// and the same loaded kernels: work queued through the two handles may
    /// overlap on the GPU (the scorer runs one cell pipeline per handle).
    pub fn with_new_stream(&self) -> Result<Self> {
        let stream = self.ctx.new_stream().map_err(drv_err("stream creation"))?;
        Ok(CudaDevice {
            ctx: self.ctx.clone(),
            stream,
            info: self.info.clone(),
            cache: self.cache.clone(),
            modules: self.modules.clone(),
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// `sm_{arch}` of this GPU, e.g. 90.
    pub fn arch(&self) -> u32 {
        self.info.arch()
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every launch function of [`kernels`] uses.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for all work queued on [`Self::stream`].
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv_err("synchronize"))
    }

    /// Kernel `name` of family `family` (`cuda/<family>.cu`), compiling and
    /// loading the family's module on first use.
    pub fn function(&self, family: &str, name: &str) -> Result<CudaFunction> {
        let module = self.module(family)?;
        if name.contains('\0') {
            return Err(Error::Device(format!("kernel name {name:?} contains NUL")));
        }
        module
            .load_function(name)
            .map_err(|e| Error::Device(format!("CUDA kernel `{name}` in `{family}.cu`: {e}")))
    }

    /// Compiles and loads family `family` now (it is otherwise loaded on
    /// first use).
    pub fn module_loaded(&self, family: &str) -> Result<()> {
        self.module(family).map(|_| ())
    }

    fn module(&self, family: &str) -> Result<Arc<CudaModule>> {
        // The lock is held while compiling, so two threads do not load the
        // same module twice; compilation happens once per process anyway.
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(family) {
            return Ok(m.clone());
        }
        let arch = self.arch();
        let (ptx, origin) = nvrtc::ptx_with_cache(family, arch, self.cache.as_deref())?;
        let module = match self.load_ptx(&ptx) {
            Ok(m) => m,
            // A PTX from an earlier run may be stale or damaged in ways the
            // plausibility check cannot see: recompile once before failing.
            Err(_) if origin != nvrtc::PtxOrigin::Compiled => {
                nvrtc::forget(family, arch, self.cache.as_deref());
                let (ptx, _) = nvrtc::ptx_with_cache(family, arch, None)?;
                self.load_ptx(&ptx)
                    .map_err(|e| load_error(family, arch, e))?
            }
            Err(e) => return Err(load_error(family, arch, e)),
        };
        modules.insert(family.to_string(), module.clone());
        Ok(module)
    }

    fn load_ptx(&self, ptx: &str) -> std::result::Result<Arc<CudaModule>, drv::DriverError> {
        // `Ptx::from_src` would panic on an interior NUL: our PTX is cut at
        // the first NUL (compiled) or rejected (disk cache), so none is left.
        self.ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx.to_string()))
    }
}

fn load_error(family: &str, arch: u32, e: drv::DriverError) -> Error {
    let hint = if e.0 == sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION {
        let v = nvrtc::version()
            .map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or_else(|_| "?".into());
        format!(
            " (NVRTC {v} emits a PTX version this driver is too old for: \
             use the NVRTC of the driver's CUDA version, e.g. nvidia-cuda-nvrtc==13.0.88)"
        )
    } else {
        String::new()
    };
    Error::Device(format!(
        "CUDA could not load the PTX of `{family}.cu` for sm_{arch}: {e}{hint}"
    ))
}
