//! Run-time compilation of the CUDA kernels with NVRTC, to CUBIN.
//!
//! A kernel family (one `.cu` file, `common.cuh` and its folder's `.cuh` prepended by
//! `build.rs`) is compiled for the GPU's own architecture (`sm_XY`) the
//! first time a process asks for it, and NVRTC's **CUBIN** (the GPU's
//! machine code, `nvrtcGetCUBIN`) is what the driver loads. A CUBIN needs no
//! JIT in the driver, so an NVRTC newer than the driver (13.2 on a 13.0
//! driver, say) is no problem as long as the major versions agree: PTX from
//! such an NVRTC is rejected by the driver (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`),
//! CUBIN is not. Only when NVRTC cannot emit code for `sm_XY` (a GPU newer
//! than NVRTC) is PTX for the newest `compute_XY` it knows used instead, with
//! a [`Compiled::note`] saying so. The image is kept for the rest of the
//! process and, when possible, on disk, keyed by source, options, `sm_XY`
//! and NVRTC version, so a later process skips NVRTC.
//!
//! libnvrtc is loaded at run time by this module (not by cudarc), so that
//! `DASNAS_NVRTC=/path/to/libnvrtc.so.13` can choose the library exactly;
//! without it the names `libnvrtc.so.13`, `libnvrtc.so.12`, `libnvrtc.so`
//! are tried in that order on the loader's search path (a versioned name
//! first: a toolkit's unversioned `libnvrtc.so` on the system path must not
//! win over the one the user put on `LD_LIBRARY_PATH`). The
//! `libnvrtc-builtins` beside the library is loaded first, so the library
//! works from any folder without `LD_LIBRARY_PATH`. A machine without NVRTC
//! still builds, tests and runs the CPU paths: everything here returns
//! [`Error::Device`] instead of panicking.

use crate::error::{Error, Result};
use crate::runtime::cuda_sources::CUDA_SOURCES;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The environment variable that names the NVRTC library to load.
pub const NVRTC_ENV: &str = "DASNAS_NVRTC";

/// Library names tried, in order, when [`NVRTC_ENV`] is not set.
pub const SEARCH_NAMES: &[&str] = &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

type Prog = *mut c_void;
type CreateFn = unsafe extern "C" fn(
    *mut Prog,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type ProgFn = unsafe extern "C" fn(*mut Prog) -> c_int;
type CompileFn = unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> c_int;
type SizeFn = unsafe extern "C" fn(Prog, *mut usize) -> c_int;
type BytesFn = unsafe extern "C" fn(Prog, *mut c_char) -> c_int;
type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
type NumArchsFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type ArchsFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type ErrorStringFn = unsafe extern "C" fn(c_int) -> *const c_char;

/// The loaded NVRTC: where it came from, its version, the architectures it
/// can emit CUBIN for, and its entry points.
pub struct Library {
    path: PathBuf,
    chosen_by: String,
    version: (i32, i32),
    archs: Vec<u32>,
    create: CreateFn,
    destroy: ProgFn,
    compile: CompileFn,
    log_size: SizeFn,
    log: BytesFn,
    ptx_size: SizeFn,
    ptx: BytesFn,
    cubin_size: SizeFn,
    cubin: BytesFn,
    error_string: ErrorStringFn,
    // Kept loaded for the life of the process (the function pointers above
    // point into it); the builtins are loaded first so NVRTC finds them.
    _builtins: Option<libloading::Library>,
    _lib: libloading::Library,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("nvrtc::Library")
            .field("path", &self.path)
            .field("chosen_by", &self.chosen_by)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Library {
    /// The file the library was loaded from (as the dynamic loader resolved
    /// it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How it was chosen: `DASNAS_NVRTC`, or the library name found on the
    /// search path.
    pub fn chosen_by(&self) -> &str {
        &self.chosen_by
    }

    /// NVRTC's (major, minor) version.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// The real architectures (`sm_XY` as `XY`) NVRTC can emit CUBIN for.
    pub fn supported_archs(&self) -> &[u32] {
        &self.archs
    }

    fn error_name(&self, code: c_int) -> String {
        // SAFETY: nvrtcGetErrorString returns a static string (or null).
        let p = unsafe { (self.error_string)(code) };
        if p.is_null() {
            format!("NVRTC error {code}")
        } else {
            // SAFETY: a non-null result is a NUL-terminated static string.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }
}

/// The NVRTC library of this process, loaded on first use.
pub fn library() -> Result<&'static Library> {
    static LIB: OnceLock<std::result::Result<Library, String>> = OnceLock::new();
    LIB.get_or_init(load)
        .as_ref()
        .map_err(|why| Error::Device(why.clone()))
}

/// Whether NVRTC can be loaded (checked once per process).
pub fn available() -> bool {
    library().is_ok()
}

/// NVRTC's (major, minor) version.
pub fn version() -> Result<(i32, i32)> {
    library().map(|l| l.version)
}

fn load() -> std::result::Result<Library, String> {
    let env = std::env::var_os(NVRTC_ENV).filter(|v| !v.is_empty());
    let (lib, chosen_by) = match env {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(format!(
                    "{NVRTC_ENV}={}: no such file (it must name the library itself, e.g. \
                     .../nvidia/cu13/lib/libnvrtc.so.13)",
                    path.display()
                ));
            }
            // SAFETY: loading a shared library runs its initialisers; NVRTC's
            // have no preconditions on the caller.
            let lib = unsafe { open(&path) }.map_err(|e| {
                let why = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("{e:?}"));
                format!("{NVRTC_ENV}={} cannot be loaded: {why}", path.display())
            })?;
            (lib, NVRTC_ENV.to_string())
        }
        None => {
            let mut errors = Vec::new();
            let mut found = None;
            for name in SEARCH_NAMES {
                // SAFETY: as above.
                match unsafe { open(Path::new(name)) } {
                    Ok(lib) => {
                        found = Some((lib, format!("search path ({name})")));
                        break;
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            found.ok_or_else(|| {
                format!(
                    "NVRTC (libnvrtc.so) not found: set {NVRTC_ENV}=/path/to/libnvrtc.so.13, \
                     or install the CUDA toolkit or `pip install nvidia-cuda-nvrtc==13.0.88` \
                     and add its nvidia/cu13/lib folder to LD_LIBRARY_PATH (tried {})",
                    SEARCH_NAMES.join(", ")
                )
            })?
        }
    };
    // SAFETY: each symbol is looked up with the C signature of the NVRTC
    // API (nvrtc.h); the pointers stay valid because `lib` is kept in the
    // returned value, which lives in a static for the rest of the process.
    unsafe {
        let version: VersionFn = sym(&lib, b"nvrtcVersion\0")?;
        let (mut major, mut minor) = (0, 0);
        let rc = version(&mut major, &mut minor);
        if rc != 0 {
            return Err(format!("nvrtcVersion failed with code {rc}"));
        }
        let path = resolved_path(version as *const c_void).unwrap_or_else(|| {
            PathBuf::from(
                match std::env::var_os(NVRTC_ENV).filter(|v| !v.is_empty()) {
                    Some(p) => p.to_string_lossy().into_owned(),
                    None => chosen_by.clone(),
                },
            )
        });
        let builtins = path.parent().and_then(|dir| {
            let f = dir.join(format!("libnvrtc-builtins.so.{major}.{minor}"));
            // A failure here is not fatal: NVRTC then looks for the builtins
            // on the search path itself, and says so at compile time.
            f.exists().then(|| open(&f).ok()).flatten()
        });
        let num_archs: NumArchsFn = sym(&lib, b"nvrtcGetNumSupportedArchs\0")?;
        let get_archs: ArchsFn = sym(&lib, b"nvrtcGetSupportedArchs\0")?;
        let mut n = 0;
        let mut archs = Vec::new();
        if num_archs(&mut n) == 0 && n > 0 {
            let mut raw = vec![0 as c_int; n as usize];
            if get_archs(raw.as_mut_ptr()) == 0 {
                archs = raw
                    .into_iter()
                    .filter_map(|a| u32::try_from(a).ok())
                    .collect();
            }
        }
        Ok(Library {
            path,
            chosen_by,
            version: (major, minor),
            archs,
            create: sym(&lib, b"nvrtcCreateProgram\0")?,
            destroy: sym(&lib, b"nvrtcDestroyProgram\0")?,
            compile: sym(&lib, b"nvrtcCompileProgram\0")?,
            log_size: sym(&lib, b"nvrtcGetProgramLogSize\0")?,
            log: sym(&lib, b"nvrtcGetProgramLog\0")?,
            ptx_size: sym(&lib, b"nvrtcGetPTXSize\0")?,
            ptx: sym(&lib, b"nvrtcGetPTX\0")?,
            cubin_size: sym(&lib, b"nvrtcGetCUBINSize\0")?,
            cubin: sym(&lib, b"nvrtcGetCUBIN\0")?,
            error_string: sym(&lib, b"nvrtcGetErrorString\0")?,
            _builtins: builtins,
            _lib: lib,
        })
    }
}

/// `dlopen(path, RTLD_NOW | RTLD_GLOBAL)`: global, so that NVRTC's own
/// `dlopen` of its builtins finds an already loaded copy by its soname.
///
/// # Safety
/// Runs the library's initialisers.
unsafe fn open(path: &Path) -> std::result::Result<libloading::Library, libloading::Error> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library as Unix, RTLD_GLOBAL, RTLD_NOW};
        Unix::open(Some(path), RTLD_NOW | RTLD_GLOBAL).map(Into::into)
    }
    #[cfg(not(unix))]
    {
        libloading::Library::new(path)
    }
}

/// A function pointer of type `F` for symbol `name` (NUL-terminated).
///
/// # Safety
/// `F` must be the symbol's C function type; the pointer is valid only
/// while `lib` stays loaded.
unsafe fn sym<F: Copy>(lib: &libloading::Library, name: &[u8]) -> std::result::Result<F, String> {
    lib.get::<F>(name).map(|s| *s).map_err(|e| {
        format!(
            "libnvrtc has no `{}` ({e}): too old an NVRTC (11.2 or newer is needed)",
            String::from_utf8_lossy(&name[..name.len() - 1])
        )
    })
}

/// The file the dynamic loader mapped the code at `addr` from.
fn resolved_path(addr: *const c_void) -> Option<PathBuf> {
    #[cfg(unix)]
    {
        // SAFETY: `Dl_info` is a C struct of pointers and integers, for
        // which all-zero bytes are a valid value.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the address and fills `info`.
        if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
        let name = unsafe { CStr::from_ptr(info.dli_fname) };
        let p = PathBuf::from(name.to_string_lossy().into_owned());
        Some(std::fs::canonicalize(&p).unwrap_or(p))
    }
    #[cfg(not(unix))]
    {
        let _ = addr;
        None
    }
}

/// The options every kernel is compiled with (besides the architecture).
/// `-default-device` lets helpers omit `__device__`. `--fmad=false`: NVRTC
/// must not contract a multiply and an add into an FMA, because the kernels
/// that match their CPU twins bit for bit rely on each being rounded
/// separately (the conv's FMAs are explicit `fmaf` calls, which stay). No
/// fast-math or FTZ flags, for the same reason.
pub const OPTIONS: &[&str] = &["-default-device", "--std=c++17", "--fmad=false"];

/// The source of kernel family `family` (a `cuda/<family>.cu` stem).
pub fn source(family: &str) -> Result<&'static str> {
    CUDA_SOURCES
        .iter()
        .find(|(name, _)| *name == family)
        .map(|(_, src)| *src)
        .ok_or_else(|| {
            let known: Vec<&str> = CUDA_SOURCES.iter().map(|(n, _)| *n).collect();
            Error::Device(format!(
                "no CUDA kernel family `{family}` (have: {})",
                known.join(", ")
            ))
        })
}

/// What the driver loads: machine code for one GPU architecture, or (only
/// when NVRTC cannot emit that) PTX for the driver to JIT-compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// An ELF CUBIN for `sm_{arch}`.
    Cubin {
        /// The ELF image.
        bytes: Vec<u8>,
        /// The architecture number it was compiled for, e.g. 90.
        arch: u32,
    },
    /// PTX for virtual architecture `compute_{target}`.
    Ptx {
        /// The PTX source.
        text: String,
        /// The virtual architecture number it targets, e.g. 121.
        target: u32,
    },
}

impl Image {
    /// `"CUBIN for sm_90"` or `"PTX for compute_121"`.
    pub fn describe(&self) -> String {
        match self {
            Image::Cubin { arch, .. } => format!("CUBIN for sm_{arch}"),
            Image::Ptx { target, .. } => format!("PTX for compute_{target}"),
        }
    }
}

/// One compiled kernel family.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The machine code or PTX the driver loads.
    pub image: Image,
    /// NVRTC's log of a successful compile (warnings; empty when clean).
    pub log: String,
    /// Set when the image is not a CUBIN for the requested architecture,
    /// saying why.
    pub note: Option<String>,
}

/// How family `name` is compiled for a GPU of `sm_{arch}`: the
/// `--gpu-architecture` value and, when it is not `sm_{arch}`, why.
fn target_for(lib: &Library, arch: u32) -> Result<(String, Option<String>)> {
    if lib.archs.is_empty() || lib.archs.contains(&arch) {
        return Ok((format!("sm_{arch}"), None));
    }
    let (major, minor) = lib.version;
    match lib.archs.iter().copied().filter(|&a| a < arch).max() {
        Some(best) => Ok((
            format!("compute_{best}"),
            Some(format!(
                "NVRTC {major}.{minor} cannot emit a CUBIN for sm_{arch} (it knows sm_{}); \
                 loading PTX for compute_{best}, which the driver compiles for the GPU \
                 (an NVRTC as new as the GPU avoids this)",
                lib.archs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", sm_")
            )),
        )),
        None => Err(Error::Device(format!(
            "NVRTC {major}.{minor} supports no architecture up to sm_{arch} (oldest: sm_{}): \
             this GPU is too old for it",
            lib.archs.iter().min().copied().unwrap_or(0)
        ))),
    }
}

/// A live NVRTC program, destroyed on every path out of a compile.
struct Program<'l> {
    lib: &'l Library,
    prog: Prog,
}

impl Drop for Program<'_> {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram and destroyed only here. An
        // error on destroy leaks the program, nothing worse.
        let _ = unsafe { (self.lib.destroy)(&mut self.prog) };
    }
}

impl Program<'_> {
    /// Output `get` of size `size` (a NUL-terminated string or a binary).
    fn output(&self, size: SizeFn, get: BytesFn, what: &str) -> Result<Vec<u8>> {
        let mut n = 0usize;
        // SAFETY: live program; NVRTC writes one usize.
        let rc = unsafe { size(self.prog, &mut n) };
        if rc != 0 {
            return Err(Error::Device(format!(
                "NVRTC size of the {what}: {}",
                self.lib.error_name(rc)
            )));
        }
        let mut buf = vec![0u8; n];
        if n > 0 {
            // SAFETY: live program; NVRTC writes exactly `n` bytes.
            let rc = unsafe { get(self.prog, buf.as_mut_ptr().cast()) };
            if rc != 0 {
                return Err(Error::Device(format!(
                    "NVRTC {what}: {}",
                    self.lib.error_name(rc)
                )));
            }
        }
        Ok(buf)
    }
}

/// Compiles `src` (named `name` in messages) for `--gpu-architecture=
/// {target}` with [`OPTIONS`]; returns the program for its outputs and the
/// log. A compile error carries NVRTC's log and the options.
fn compile_program<'l>(
    lib: &'l Library,
    name: &str,
    src: &str,
    target: &str,
) -> Result<(Program<'l>, String)> {
    let c_src = CString::new(src)
        .map_err(|_| Error::Device(format!("CUDA source `{name}` contains a NUL byte")))?;
    let c_name = CString::new(format!("{name}.cu"))
        .map_err(|_| Error::Device(format!("CUDA source name `{name}` contains a NUL byte")))?;
    let mut prog: Prog = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings, no headers (count 0, null
    // arrays); NVRTC writes the program handle.
    let rc = unsafe {
        (lib.create)(
            &mut prog,
            c_src.as_ptr(),
            c_name.as_ptr(),
            0,
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::Device(format!(
            "NVRTC could not create program `{name}`: {}",
            lib.error_name(rc)
        )));
    }
    let program = Program { lib, prog };
    let options: Vec<String> = std::iter::once(format!("--gpu-architecture={target}"))
        .chain(OPTIONS.iter().map(|s| s.to_string()))
        .collect();
    let c_opts: Vec<CString> = options
        .iter()
        .map(|o| CString::new(o.as_str()).expect("options contain no NUL"))
        .collect();
    let ptrs: Vec<*const c_char> = c_opts.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: live program; `ptrs` holds `ptrs.len()` valid C strings that
    // outlive the call.
    let rc = unsafe { (lib.compile)(program.prog, ptrs.len() as c_int, ptrs.as_ptr()) };
    let log = program
        .output(lib.log_size, lib.log, "log")
        .map(|b| c_string(&b))
        .unwrap_or_else(|e| format!("<no log: {e}>"));
    if rc != 0 {
        return Err(Error::Device(format!(
            "NVRTC failed to compile `{name}` for {target} ({}); options {options:?}; log:\n{log}",
            lib.error_name(rc)
        )));
    }
    Ok((program, log))
}

/// Compiles `src` (named `name` in messages) for a GPU of `sm_{arch}`: a
/// CUBIN when NVRTC can emit one for it (checked: an ELF for that
/// architecture), else PTX for the newest virtual architecture below it,
/// with a note. No caching.
pub fn compile(name: &str, src: &str, arch: u32) -> Result<Compiled> {
    let lib = library()?;
    let (target, note) = target_for(lib, arch)?;
    let (program, log) = compile_program(lib, name, src, &target)?;
    let image = if note.is_none() {
        let bytes = program.output(lib.cubin_size, lib.cubin, "CUBIN")?;
        match cubin_arch(&bytes) {
            Some(a) if a == arch => Image::Cubin { bytes, arch },
            Some(a) => {
                return Err(Error::Device(format!(
                    "NVRTC emitted a CUBIN for sm_{a} when asked for sm_{arch} (`{name}`)"
                )))
            }
            None => {
                return Err(Error::Device(format!(
                    "NVRTC emitted no valid CUBIN for sm_{arch} (`{name}`, {} bytes)",
                    bytes.len()
                )))
            }
        }
    } else {
        let text = c_string(&program.output(lib.ptx_size, lib.ptx, "PTX")?);
        let target = target
            .trim_start_matches("compute_")
            .parse()
            .unwrap_or(arch);
        Image::Ptx { text, target }
    };
    Ok(Compiled { image, log, note })
}

/// Compiles `src` to PTX for `sm_{arch}` (tests inspect the PTX: which
/// instructions the kernels use). No caching.
pub fn compile_ptx(name: &str, src: &str, arch: u32) -> Result<String> {
    compile_ptx_logged(name, src, arch).map(|(ptx, _)| ptx)
}

/// [`compile_ptx`], also returning NVRTC's log of a successful compile.
pub fn compile_ptx_logged(name: &str, src: &str, arch: u32) -> Result<(String, String)> {
    let lib = library()?;
    let (program, log) = compile_program(lib, name, src, &format!("sm_{arch}"))?;
    let ptx = c_string(&program.output(lib.ptx_size, lib.ptx, "PTX")?);
    Ok((ptx, log))
}

/// NVRTC output strings are NUL-terminated.
fn c_string(raw: &[u8]) -> String {
    match CStr::from_bytes_until_nul(raw) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// The `sm_XY` architecture (as `XY`) of a CUDA ELF (CUBIN), or `None`
/// when `bytes` is not a 64-bit little-endian ELF for the CUDA machine
/// (`e_machine` 190). The architecture sits in `e_flags`: bits 8–15 from
/// ELF ABI version 8 on (CUDA 12.8+), bits 0–7 before.
pub fn cubin_arch(bytes: &[u8]) -> Option<u32> {
    const EM_CUDA: u16 = 190;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != EM_CUDA {
        return None;
    }
    let flags = u32::from_le_bytes([bytes[48], bytes[49], bytes[50], bytes[51]]);
    let arch = if bytes[8] >= 8 {
        (flags >> 8) & 0xff
    } else {
        flags & 0xff
    };
    (arch > 0).then_some(arch)
}

/// Where a compiled image comes from (tests use this to check the caches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled by NVRTC in this call.
    Compiled,
    /// Read from the on-disk cache.
    Disk,
    /// Already compiled earlier in this process.
    Memory,
}

/// The process-wide image cache, keyed by (family, arch).
type MemoryCache = Mutex<HashMap<(String, u32), Arc<Compiled>>>;

fn memory() -> std::sync::MutexGuard<'static, HashMap<(String, u32), Arc<Compiled>>> {
    static MEMORY: OnceLock<MemoryCache> = OnceLock::new();
    // A poisoned lock only means another thread panicked around an insert or
    // remove; the map itself is always consistent, so keep using it.
    MEMORY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The image of kernel family `family` for `sm_{arch}`, compiled at most
/// once per process, using the on-disk cache in `disk` (`None`: none),
/// and where it came from.
pub fn image_with_cache(
    family: &str,
    arch: u32,
    disk: Option<&Path>,
) -> Result<(Arc<Compiled>, Origin)> {
    let key = (family.to_string(), arch);
    if let Some(c) = memory().get(&key) {
        return Ok((c.clone(), Origin::Memory));
    }
    // Compiled without holding the lock (NVRTC takes ~0.1-1 s); two threads
    // may then both compile the first time: the first insert wins, and both
    // results are identical anyway.
    let (compiled, origin) = image_uncached_in_memory(family, arch, disk)?;
    let kept = memory().entry(key).or_insert(Arc::new(compiled)).clone();
    Ok((kept, origin))
}

/// Drops `family`/`arch` from the process cache and from the disk cache in
/// `disk`, so the next [`image_with_cache`] compiles afresh (used when the
/// driver rejects a cached image).
pub fn forget(family: &str, arch: u32, disk: Option<&Path>) {
    memory().remove(&(family.to_string(), arch));
    if let (Some(dir), Ok(src), Ok(lib)) = (disk, source(family), library()) {
        for kind in [Kind::Cubin, Kind::Ptx] {
            // Nothing to do if the file is already gone.
            let _ = std::fs::remove_file(cache_file(dir, family, src, arch, lib.version, kind));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cubin,
    Ptx,
}

fn image_uncached_in_memory(
    family: &str,
    arch: u32,
    disk: Option<&Path>,
) -> Result<(Compiled, Origin)> {
    let src = source(family)?;
    let lib = library()?;
    let (_, note) = target_for(lib, arch)?;
    let kind = if note.is_some() {
        Kind::Ptx
    } else {
        Kind::Cubin
    };
    let file = disk.map(|d| cache_file(d, family, src, arch, lib.version, kind));
    if let Some(f) = &file {
        if let Some(image) = read_cached(f, kind, arch) {
            return Ok((
                Compiled {
                    image,
                    log: String::new(),
                    note,
                },
                Origin::Disk,
            ));
        }
    }
    let compiled = compile(family, src, arch)?;
    if let Some(f) = &file {
        let bytes: &[u8] = match &compiled.image {
            Image::Cubin { bytes, .. } => bytes,
            Image::Ptx { text, .. } => text.as_bytes(),
        };
        // A cache that cannot be written only costs a recompile next time.
        let _ = write_cached(f, bytes);
    }
    Ok((compiled, Origin::Compiled))
}

/// The disk-cache folder: `$DASNAS_CACHE_DIR` (empty: no disk cache), else
/// `$XDG_CACHE_HOME/dasnas`, else `$HOME/.cache/dasnas`; images go in its
/// `cubin/` (or `ptx/`) subfolder. `None` when none of these is set.
pub fn cache_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = std::env::var_os("DASNAS_CACHE_DIR") {
        return (!v.is_empty()).then(|| PathBuf::from(v));
    }
    if let Some(x) = nonempty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("dasnas"));
    }
    nonempty("HOME").map(|h| PathBuf::from(h).join(".cache").join("dasnas"))
}

/// `<dir>/cubin/<family>-sm<arch>-<hash>.cubin` (or `ptx/….ptx`); the hash
/// covers everything that changes the image: source text, architecture,
/// options, image kind and NVRTC version.
fn cache_file(
    dir: &Path,
    family: &str,
    src: &str,
    arch: u32,
    nvrtc: (i32, i32),
    kind: Kind,
) -> PathBuf {
    let mut h = Fnv128::new();
    h.write(src.as_bytes());
    h.write(&[0]);
    h.write(format!("sm_{arch}").as_bytes());
    for o in OPTIONS {
        h.write(&[0]);
        h.write(o.as_bytes());
    }
    h.write(&[0]);
    h.write(format!("nvrtc {}.{} {kind:?}", nvrtc.0, nvrtc.1).as_bytes());
    let (sub, ext) = match kind {
        Kind::Cubin => ("cubin", "cubin"),
        Kind::Ptx => ("ptx", "ptx"),
    };
    dir.join(sub)
        .join(format!("{family}-sm{arch}-{:032x}.{ext}", h.finish()))
}

/// A cached image, or `None` when missing or not plausibly complete (a
/// truncated file must not reach the driver): a CUBIN must be a CUDA ELF
/// for `arch` whose section headers end inside the file.
fn read_cached(path: &Path, kind: Kind, arch: u32) -> Option<Image> {
    let bytes = std::fs::read(path).ok()?;
    match kind {
        Kind::Cubin => {
            let complete = elf_complete(&bytes);
            (cubin_arch(&bytes) == Some(arch) && complete).then_some(Image::Cubin { bytes, arch })
        }
        Kind::Ptx => {
            let text = String::from_utf8(bytes).ok()?;
            let plausible = text.contains(".version")
                && text.contains(".entry")
                && text.trim_end().ends_with('}')
                && !text.contains('\0');
            let target = text
                .lines()
                .find_map(|l| l.trim().strip_prefix(".target compute_"))
                .and_then(|t| t.trim().parse().ok())?;
            plausible.then_some(Image::Ptx { text, target })
        }
    }
}

/// Whether an ELF64's section header table lies inside the file (a
/// truncated write would cut it off: it sits at the end).
fn elf_complete(b: &[u8]) -> bool {
    if b.len() < 64 {
        return false;
    }
    let shoff = u64::from_le_bytes(b[40..48].try_into().expect("8 bytes"));
    let shentsize = u64::from(u16::from_le_bytes([b[58], b[59]]));
    let shnum = u64::from(u16::from_le_bytes([b[60], b[61]]));
    shoff
        .checked_add(shentsize * shnum)
        .is_some_and(|end| end <= b.len() as u64 && shnum > 0)
}

/// Writes through a temporary file and a rename, so a concurrent reader
/// sees either no file or the whole file.
fn write_cached(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache file has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// FNV-1a with 128-bit state: stable across Rust versions and platforms
/// (unlike `DefaultHasher`), wide enough that cache-key collisions are not
/// a concern.
pub(crate) struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    pub(crate) fn new() -> Self {
        Fnv128(Self::OFFSET)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u128;
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
    pub(crate) fn finish(&self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv128_reference_values() {
        // Published FNV-1a 128 test vectors.
        assert_eq!(Fnv128::new().finish(), 0x6c62272e07bb014262b821756295c58d);
        let mut h = Fnv128::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn cache_file_depends_on_every_input() {
        let d = Path::new("/c");
        let base = cache_file(d, "codes", "src", 90, (13, 0), Kind::Cubin);
        assert_ne!(
            base,
            cache_file(d, "codes", "src2", 90, (13, 0), Kind::Cubin)
        );
        assert_ne!(
            base,
            cache_file(d, "codes", "src", 80, (13, 0), Kind::Cubin)
        );
        assert_ne!(
            base,
            cache_file(d, "codes", "src", 90, (13, 1), Kind::Cubin)
        );
        assert_ne!(base, cache_file(d, "codes", "src", 90, (13, 0), Kind::Ptx));
        assert!(base.starts_with("/c/cubin"));
        assert!(base.to_string_lossy().ends_with(".cubin"));
    }

    /// A minimal CUDA ELF header: 64-bit, little endian, `e_machine` 190,
    /// the given ABI version and `e_flags`, section headers at the end.
    fn fake_cubin(abi: u8, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[8] = abi;
        b[18..20].copy_from_slice(&190u16.to_le_bytes());
        b[40..48].copy_from_slice(&64u64.to_le_bytes());
        b[48..52].copy_from_slice(&flags.to_le_bytes());
        b[58..60].copy_from_slice(&64u16.to_le_bytes());
        b[60..62].copy_from_slice(&1u16.to_le_bytes());
        b
    }

    #[test]
    fn cubin_arch_reads_both_elf_abi_layouts() {
        // e_flags as NVRTC 13.0 writes them (ABI 8), read off its CUBINs.
        assert_eq!(cubin_arch(&fake_cubin(8, 0x0600_5a04)), Some(90));
        assert_eq!(cubin_arch(&fake_cubin(8, 0x0600_5004)), Some(80));
        assert_eq!(cubin_arch(&fake_cubin(8, 0x0600_6402)), Some(100));
        // Older toolkits: EF_CUDA_SM in the low byte.
        assert_eq!(cubin_arch(&fake_cubin(7, 0x0050_0550)), Some(80));
        let mut not_cuda = fake_cubin(8, 0x0600_5a04);
        not_cuda[18] = 62; // x86-64
        assert_eq!(cubin_arch(&not_cuda), None);
        assert_eq!(cubin_arch(b"\x7fELF"), None);
        assert_eq!(cubin_arch(b".version 9.0\n.target sm_90\n"), None);
    }

    #[test]
    fn truncated_cache_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("dasnas-image-test-{}", std::process::id()));
        let f = dir.join("cubin").join("x.cubin");
        let whole = fake_cubin(8, 0x0600_5a04);
        write_cached(&f, &whole[..100]).unwrap();
        assert_eq!(read_cached(&f, Kind::Cubin, 90), None);
        write_cached(&f, &whole).unwrap();
        assert!(read_cached(&f, Kind::Cubin, 90).is_some());
        // A CUBIN for another GPU is not taken either.
        assert_eq!(read_cached(&f, Kind::Cubin, 80), None);
        let p = dir.join("ptx").join("x.ptx");
        write_cached(&p, b".version 9.0\n.target compute_90\n.entry k(\n").unwrap();
        assert_eq!(read_cached(&p, Kind::Ptx, 90), None);
        write_cached(&p, b".version 9.0\n.target compute_90\n.entry k()\n{\n}\n").unwrap();
        assert!(matches!(
            read_cached(&p, Kind::Ptx, 90),
            Some(Image::Ptx { target: 90, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_family_is_an_error() {
        assert!(matches!(source("no_such_kernel"), Err(Error::Device(_))));
        for (name, _) in CUDA_SOURCES {
            assert!(source(name).is_ok());
        }
    }

    #[test]
    fn missing_nvrtc_is_an_error_not_a_panic() {
        // Either outcome is fine; neither may panic.
        match version() {
            Ok((major, _)) => assert!(major >= 11),
            Err(e) => assert!(e.to_string().contains("NVRTC"), "{e}"),
        }
    }
}
