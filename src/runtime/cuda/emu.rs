//! The host emulation of the CUDA backend: the kernels of `cuda/`, compiled
//! as host C++ by the system's C++ compiler, run by a fiber scheduler
//! (`emu_runtime.cpp`) behind the same launch API as a GPU.
//!
//! [`super::CudaDevice::emulated`] opens one. Every launch function, the
//! plans, the lanes of the scorer and the GPU trainer then run unchanged
//! on the host, so machines without a GPU (CI) execute every kernel with
//! the launch geometry and arguments a GPU would get, against the CPU
//! twins. It is slow (one OS thread runs a grid block by block) and meant
//! for testing.
//!
//! Device memory is host memory with red zones: each allocation is
//! 256-byte aligned (as `cuMemAlloc`'s are), and 256 bytes of a canary
//! pattern (a NaN as f32) sit before it and after its rounded-up end.
//! Before a launch every pointer argument must lie inside a live
//! allocation; after it the red zones of every live allocation are
//! checked, so a kernel that writes out of bounds fails its launch with an
//! error naming it, and one that reads out of bounds reads NaNs.
//!
//! `DASNAS_EMU_TRACE=FILE` appends each launched kernel's name to FILE
//! (`scripts/emu-coverage.sh` uses it to list which kernels the tests run).

use super::memory::{Allocator, KernelArg};
use crate::error::{Error, Result};
use crate::runtime::cuda_sources::CUDA_SOURCES;
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

const RUNTIME_HPP: &str = include_str!("emu_runtime.hpp");
const RUNTIME_CPP: &str = include_str!("emu_runtime.cpp");

/// Flags of every emulation compile: IEEE arithmetic with each operation
/// rounded (no contraction into FMAs, no fast math), as NVRTC compiles the
/// kernels with `--fmad=false`.
const CXX_FLAGS: &[&str] = &[
    "-std=c++17",
    "-O2",
    "-fPIC",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fvisibility=hidden",
    "-w",
];

/// Red zone before and after each allocation, and allocation alignment.
const RED_ZONE: usize = 256;
/// The canary bytes of the red zones: 0xFFA5A5A5 as a little-endian u32,
/// a NaN as f32.
const CANARY: [u8; 4] = [0xA5, 0xA5, 0xA5, 0xFF];

type FindFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *const c_void;
type ParamsFn = unsafe extern "C" fn(*const c_void, *mut *const u32) -> c_int;
type LaunchFn = unsafe extern "C" fn(
    *const c_void,
    *const u32,
    *const u32,
    u32,
    *mut *mut c_void,
    *mut c_char,
    usize,
) -> c_int;

/// One live allocation: its layout (for `dealloc`) and user size.
struct Block {
    base: *mut u8,
    layout: Layout,
    bytes: usize,
}

// SAFETY: the raw pointer is only dereferenced under the allocation table's
// mutex or by launches serialised by the emulator's launch lock.
unsafe impl Send for Block {}

/// The loaded emulation library and its memory.
pub struct Emulator {
    path: PathBuf,
    find: FindFn,
    params: ParamsFn,
    launch: LaunchFn,
    /// One launch at a time: the scheduler and the kernels' `__shared__`
    /// arrays are process globals.
    launch_lock: Mutex<()>,
    /// Live allocations by user address.
    blocks: Mutex<BTreeMap<u64, Block>>,
    _lib: libloading::Library,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A kernel of the emulation library (an entry of its registry).
#[derive(Clone, Copy, Debug)]
pub struct EmuKernel(*const c_void);

// SAFETY: the entry is immutable static data of the loaded library, which
// lives as long as the Emulator (kept alive by every device handle).
unsafe impl Send for EmuKernel {}
// SAFETY: as above.
unsafe impl Sync for EmuKernel {}

impl Emulator {
    /// Builds (or finds already built) the emulation library in `dir` and
    /// loads it.
    pub fn open(dir: &Path) -> Result<Arc<Emulator>> {
        let path = build(dir)?;
        // SAFETY: loading our own library runs only the static registrars
        // of its kernel families (they push to a vector).
        let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| {
            Error::Device(format!(
                "cannot load the host emulation {}: {e}",
                path.display()
            ))
        })?;
        // SAFETY: the symbols are the C functions of emu_runtime.cpp with
        // exactly these signatures; `lib` is kept in the Emulator.
        let (find, params, launch) = unsafe {
            let err = |e: libloading::Error| Error::Device(format!("host emulation: {e}"));
            let find: FindFn = *lib.get::<FindFn>(b"emu_find\0").map_err(err)?;
            let params: ParamsFn = *lib.get::<ParamsFn>(b"emu_params\0").map_err(err)?;
            let launch: LaunchFn = *lib.get::<LaunchFn>(b"emu_launch\0").map_err(err)?;
            (find, params, launch)
        };
        Ok(Arc::new(Emulator {
            path,
            find,
            params,
            launch,
            launch_lock: Mutex::new(()),
            blocks: Mutex::new(BTreeMap::new()),
            _lib: lib,
        }))
    }

    /// The loaded library.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Kernel `name` of family `family`.
    pub fn kernel(&self, family: &str, name: &str) -> Result<EmuKernel> {
        let (f, n) = (cstring(family)?, cstring(name)?);
        // SAFETY: two valid C strings; emu_find only compares them.
        let p = unsafe { (self.find)(f.as_ptr(), n.as_ptr()) };
        if p.is_null() {
            return Err(Error::Device(format!(
                "CUDA kernel `{name}` not found in `{family}.cu` (host emulation)"
            )));
        }
        Ok(EmuKernel(p))
    }

    /// Bytes of each parameter of `kernel`, from its C++ signature.
    pub fn param_sizes(&self, kernel: EmuKernel) -> Option<Vec<usize>> {
        let mut sizes: *const u32 = std::ptr::null();
        // SAFETY: `kernel` is an entry of this library's registry; the call
        // writes a pointer to its static array of sizes.
        let n = unsafe { (self.params)(kernel.0, &mut sizes) };
        if n < 0 || (n > 0 && sizes.is_null()) {
            return None;
        }
        // SAFETY: a static array of at least `n` sizes.
        let s = unsafe { std::slice::from_raw_parts(sizes, n as usize) };
        Some(s.iter().map(|&b| b as usize).collect())
    }

    fn lock_blocks(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Block>> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates `bytes` (zeroed when `zero`, else filled with the canary
    /// pattern, as a poison) between two red zones; returns the address.
    pub fn alloc(&self, bytes: usize, zero: bool) -> Result<u64> {
        let rounded = bytes.div_ceil(RED_ZONE) * RED_ZONE;
        let total = rounded + 2 * RED_ZONE;
        let layout = Layout::from_size_align(total, RED_ZONE)
            .map_err(|e| Error::Device(format!("emulated allocation of {bytes} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        if base.is_null() {
            return Err(Error::Device(format!(
                "emulated allocation of {bytes} bytes: out of host memory"
            )));
        }
        // SAFETY: `base` points to `total` writable bytes.
        let all = unsafe { std::slice::from_raw_parts_mut(base, total) };
        for (i, b) in all.iter_mut().enumerate() {
            *b = CANARY[i % 4];
        }
        if zero {
            all[RED_ZONE..RED_ZONE + bytes].fill(0);
        }
        let user = base as u64 + RED_ZONE as u64;
        self.lock_blocks().insert(
            user,
            Block {
                base,
                layout,
                bytes,
            },
        );
        Ok(user)
    }

    /// Frees the allocation at `user`.
    fn release(&self, user: u64) {
        if let Some(b) = self.lock_blocks().remove(&user) {
            // SAFETY: allocated by `alloc` with this layout, removed from
            // the table so freed once.
            unsafe { std::alloc::dealloc(b.base, b.layout) };
        }
    }

    /// Errors unless `[addr, addr + bytes)` lies inside one live allocation.
    fn check_range(&self, addr: u64, bytes: usize, what: &dyn Fn() -> String) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let blocks = self.lock_blocks();
        let inside = blocks
            .range(..=addr)
            .next_back()
            .is_some_and(|(&start, b)| addr + bytes as u64 <= start + b.bytes as u64);
        if inside {
            Ok(())
        } else {
            Err(Error::Device(format!(
                "{}: {bytes} bytes at {addr:#x} are not inside a live device buffer (host emulation)",
                what()
            )))
        }
    }

    /// Copies `bytes` from `src` to `dst` (host addresses standing for
    /// device ones, checked to lie inside live allocations when `check_*`).
    ///
    /// # Safety
    /// Unchecked sides must be valid host memory of `bytes`.
    pub unsafe fn copy(
        &self,
        dst: u64,
        dst_device: bool,
        src: u64,
        src_device: bool,
        bytes: usize,
    ) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        if dst_device {
            self.check_range(dst, bytes, &|| "copy destination".into())?;
        }
        if src_device {
            self.check_range(src, bytes, &|| "copy source".into())?;
        }
        // `copy` (memmove): a device-to-device copy within one buffer may
        // overlap, as cuMemcpy's may not, but no harm in allowing it here.
        std::ptr::copy(src as *const u8, dst as *mut u8, bytes);
        Ok(())
    }

    /// Sets `bytes` at device address `dst` to `value`.
    pub fn memset(&self, dst: u64, value: u8, bytes: usize) -> Result<()> {
        self.check_range(dst, bytes, &|| "memset".into())?;
        // SAFETY: checked to lie inside a live allocation.
        unsafe { std::ptr::write_bytes(dst as *mut u8, value, bytes) };
        Ok(())
    }

    /// Runs `kernel` (`name` in messages) over `grid` blocks of `block`
    /// threads with `args`; checks pointer arguments before and every red
    /// zone after.
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list (types and order).
    pub unsafe fn launch(
        &self,
        kernel: EmuKernel,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &[&dyn KernelArg],
    ) -> Result<()> {
        for (i, a) in args.iter().enumerate() {
            if let Some((addr, bytes)) = a.device_range() {
                self.check_range(addr, bytes, &|| {
                    format!("emulated launch of `{name}`: pointer argument {i}")
                })?;
            }
        }
        let mut params: Vec<*mut c_void> = args.iter().map(|a| a.param_ptr()).collect();
        let g = [grid.0, grid.1, grid.2];
        let b = [block.0, block.1, block.2];
        let mut err = vec![0 as c_char; 1024];
        let rc = {
            let _one = self.launch_lock.lock().unwrap_or_else(|e| e.into_inner());
            (self.launch)(
                kernel.0,
                g.as_ptr(),
                b.as_ptr(),
                shared_bytes,
                params.as_mut_ptr(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if let Some(path) = std::env::var_os("DASNAS_EMU_TRACE") {
            // Which kernels ran (a coverage aid): one line per launch.
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{name}");
            }
        }
        if rc != 0 {
            // SAFETY: emu_launch wrote a NUL-terminated message into `err`.
            let msg = CStr::from_ptr(err.as_ptr()).to_string_lossy().into_owned();
            return Err(Error::Device(format!(
                "emulated launch of `{name}` (grid {grid:?}, block {block:?}): {msg}"
            )));
        }
        self.check_red_zones(name)
    }

    /// Errors (and restores the canaries) when any live allocation's red
    /// zone was written.
    fn check_red_zones(&self, name: &str) -> Result<()> {
        let blocks = self.lock_blocks();
        let mut bad = None;
        for (&user, b) in blocks.iter() {
            let rounded = b.bytes.div_ceil(RED_ZONE) * RED_ZONE;
            let total = rounded + 2 * RED_ZONE;
            // SAFETY: the block's whole layout is ours.
            let all = unsafe { std::slice::from_raw_parts_mut(b.base, total) };
            let zones = [(0, RED_ZONE), (RED_ZONE + b.bytes, total)];
            for (lo, hi) in zones {
                for i in lo..hi {
                    if all[i] != CANARY[i % 4] {
                        if bad.is_none() {
                            let off = i as i64 - RED_ZONE as i64;
                            bad = Some(format!(
                                "emulated kernel `{name}` wrote outside a device buffer: byte {off} \
                                 of a {}-byte buffer at {user:#x} (red zone)",
                                b.bytes
                            ));
                        }
                        all[i] = CANARY[i % 4];
                    }
                }
            }
        }
        match bad {
            Some(msg) => Err(Error::Device(msg)),
            None => Ok(()),
        }
    }
}

/// The [`Allocator`] of emulated buffers.
pub(crate) struct EmuAllocator(pub(crate) Arc<Emulator>);

impl Allocator for EmuAllocator {
    fn free(&self, ptr: u64) {
        self.0.release(ptr);
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Device(format!("name {s:?} contains NUL")))
}

/// The kernel names `__global__` functions of a CUDA source define, in
/// order: the identifier before the `(` that follows `__global__ void`
/// and any `__launch_bounds__(…)`.
pub fn kernel_names(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("__global__") {
        rest = &rest[i + "__global__".len()..];
        let mut s = rest.trim_start();
        s = s.strip_prefix("void").unwrap_or(s).trim_start();
        if let Some(after) = s.strip_prefix("__launch_bounds__") {
            // Skip the balanced parentheses of the launch bounds.
            let mut depth = 0;
            let mut end = after.len();
            for (k, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            s = after[end..].trim_start();
        }
        let name: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && s[name.len()..].trim_start().starts_with('(') {
            names.push(name);
        }
    }
    names
}

/// The host C++ of family `family`: the runtime header, the family's
/// source (`extern "C"` removed, so equal helper names of two families do
/// not collide) inside `namespace fam_<family>`, and its registrar.
fn family_cpp(family: &str, src: &str) -> String {
    let mut out = String::from("#include \"emu_runtime.hpp\"\n");
    out.push_str(&format!(
        "namespace fam_{family} {{\n#line 1 \"{family}.cu\"\n"
    ));
    out.push_str(&src.replace("extern \"C\"", ""));
    out.push_str("\n}  // namespace\nnamespace {\nconst emu::Entry entries[] = {\n");
    let names = kernel_names(src);
    for n in &names {
        out.push_str(&format!(
            "    {{\"{family}\", \"{n}\", [](void** a) {{ emu::call(&fam_{family}::{n}, a); }}, \
             emu::param_count(&fam_{family}::{n}), emu::param_sizes(&fam_{family}::{n})}},\n"
        ));
    }
    if names.is_empty() {
        out.push_str("    {nullptr, nullptr, nullptr, 0, nullptr},\n");
    }
    out.push_str(&format!(
        "}};\nemu::Registrar registrar(entries, {});\n}}  // namespace\n",
        names.len()
    ));
    out
}

/// The flags of this machine's compile: [`CXX_FLAGS`], plus `-mfma` where
/// the CPU has FMA instructions, so the kernels' `fmaf` (correctly rounded
/// either way) is one instruction instead of a libm call. Part of the
/// build's hash, so a library is never used on a CPU it was not built for.
fn cxx_flags() -> Vec<&'static str> {
    let mut f = CXX_FLAGS.to_vec();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        f.push("-mfma");
    }
    f
}

/// The C++ compiler: `$CXX`, else `g++`.
fn compiler() -> String {
    std::env::var("CXX")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "g++".into())
}

/// Builds the emulation library under `dir` (once per content: the folder
/// name is a hash of the runtime, every kernel source, the compiler and
/// its flags) and returns its path. Compiles the families in parallel.
pub fn build(dir: &Path) -> Result<PathBuf> {
    let cxx = compiler();
    let mut h = super::nvrtc::Fnv128::new();
    for part in [RUNTIME_HPP, RUNTIME_CPP, cxx.as_str()] {
        h.write(part.as_bytes());
        h.write(&[0]);
    }
    let flags = cxx_flags();
    for f in &flags {
        h.write(f.as_bytes());
        h.write(&[0]);
    }
    for (name, src) in CUDA_SOURCES {
        h.write(name.as_bytes());
        h.write(&[0]);
        h.write(src.as_bytes());
        h.write(&[0]);
    }
    let out_dir = dir.join(format!("emu-{:032x}", h.finish()));
    let lib = out_dir.join("libdasnas_emu.so");
    if lib.exists() {
        return Ok(lib);
    }
    let tmp = dir.join(format!(
        "emu-build-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let p = tmp.join(name);
        std::fs::write(&p, text).map_err(|e| io_err("write", &p, e))?;
        Ok(p)
    };
    write("emu_runtime.hpp", RUNTIME_HPP)?;
    let mut units = vec![write("emu_runtime.cpp", RUNTIME_CPP)?];
    for (name, src) in CUDA_SOURCES {
        units.push(write(&format!("fam_{name}.cpp"), &family_cpp(name, src))?);
    }
    // Compile the units a few at a time, then link.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(unit) = units.get(i) else { break };
                let obj = unit.with_extension("o");
                let r = Command::new(&cxx)
                    .args(&flags)
                    .arg("-c")
                    .arg(unit)
                    .arg("-o")
                    .arg(&obj)
                    .output();
                let msg = match r {
                    Ok(o) if o.status.success() => continue,
                    Ok(o) => format!(
                        "{} failed on {}:\n{}",
                        cxx,
                        unit.display(),
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    Err(e) => {
                        format!("host emulation needs a C++17 compiler (`{cxx}`, or set CXX): {e}")
                    }
                };
                errors.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if !errors.is_empty() {
        return Err(Error::Device(errors.join("\n")));
    }
    let objs: Vec<PathBuf> = units.iter().map(|u| u.with_extension("o")).collect();
    let tmp_lib = tmp.join("libdasnas_emu.so");
    let o = Command::new(&cxx)
        .arg("-shared")
        .args(&objs)
        .arg("-o")
        .arg(&tmp_lib)
        .output()
        .map_err(|e| Error::Device(format!("host emulation: cannot run `{cxx}`: {e}")))?;
    if !o.status.success() {
        return Err(Error::Device(format!(
            "host emulation: linking failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    // Publish the whole folder at once; a concurrent builder that won the
    // race leaves an identical library, which is then used.
    if std::fs::rename(&tmp, &out_dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if lib.exists() {
        Ok(lib)
    } else {
        Err(Error::Device(format!(
            "host emulation: {} missing after the build",
            lib.display()
        )))
    }
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Device(format!(
        "host emulation: cannot {what} {}: {e}",
        p.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_found_with_and_without_launch_bounds() {
        let src = "extern \"C\" __global__ void a(int x) {}\n\
                   extern \"C\" __global__ void __launch_bounds__(BN_TX* BN_TY)\n    b(float* y) {}\n\
                   __device__ void helper() {}\n\
                   extern \"C\" __global__ void __launch_bounds__(256) c (u64 n) {}";
        assert_eq!(kernel_names(src), vec!["a", "b", "c"]);
    }

    #[test]
    fn every_family_has_kernels() {
        for (name, src) in CUDA_SOURCES {
            assert!(!kernel_names(src).is_empty(), "{name}.cu: no kernels found");
        }
    }
}
