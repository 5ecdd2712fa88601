//! Run-time compilation of the kernels of `cuda/` with NVRTC.
//!
//! A kernel family (one `cuda/<name>.cu`, `common.cuh` prepended by
//! `build.rs`) is compiled to PTX for the GPU's own architecture
//! (`sm_XY`) the first time a process asks for it; the PTX is kept for the
//! rest of the process and, when possible, on disk, so a later process skips
//! NVRTC (a few hundred milliseconds per family).
//!
//! libnvrtc is loaded at run time (`dlopen`): a machine without it can still
//! build, test and run the CPU paths; everything here returns
//! [`Error::Device`] instead of letting cudarc panic on the missing library.

use crate::device::cuda_sources::CUDA_SOURCES;
use crate::error::{Error, Result};
use cudarc::nvrtc::{result, sys};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Whether libnvrtc can be loaded (checked once per process).
pub fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library
    // names and drops what it opened; it touches no other state.
    *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() })
}

/// Errors unless libnvrtc can be loaded: every cudarc NVRTC call panics
/// without it, so each public entry point checks this first.
fn require() -> Result<()> {
    if available() {
        Ok(())
    } else {
        Err(Error::Device(
            "NVRTC (libnvrtc.so) not found: install the CUDA toolkit or \
             `pip install nvidia-cuda-nvrtc==13.0.88` and add its \
             nvidia/cu13/lib folder to LD_LIBRARY_PATH"
                .into(),
        ))
    }
}

/// NVRTC's (major, minor) version.
pub fn version() -> Result<(i32, i32)> {
    require()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is loaded (checked above); nvrtcVersion only writes
    // the two ints through the valid pointers we pass.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| Error::Device(format!("nvrtcVersion: {e}")))?;
    Ok((major, minor))
}

/// The options every kernel is compiled with (besides the architecture).
/// `-default-device` lets helpers omit `__device__`; no fast-math or FTZ
/// flags: the kernels rely on IEEE semantics to match their CPU twins.
const BASE_OPTIONS: &[&str] = &["-default-device", "--std=c++17"];

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

/// Compiles `src` (named `name` in messages) to PTX for `sm_{arch}`, e.g.
/// `arch = 90` for sm_90. No caching. A compile error carries NVRTC's log.
pub fn compile_ptx(name: &str, src: &str, arch: u32) -> Result<String> {
    compile_ptx_logged(name, src, arch).map(|(ptx, _)| ptx)
}

/// [`compile_ptx`], also returning NVRTC's log of a successful compile
/// (warnings; empty when clean).
pub fn compile_ptx_logged(name: &str, src: &str, arch: u32) -> Result<(String, String)> {
    require()?;
    let fail = |what: &str, e: result::NvrtcError| {
        Error::Device(format!("NVRTC {what} `{name}` (sm_{arch}): {e}"))
    };
    let c_src = CString::new(src)
        .map_err(|_| Error::Device(format!("CUDA source `{name}` contains a NUL byte")))?;
    let c_name = CString::new(format!("{name}.cu"))
        .map_err(|_| Error::Device(format!("CUDA source name `{name}` contains a NUL byte")))?;
    let prog = result::create_program(&c_src, Some(&c_name)).map_err(|e| fail("create", e))?;
    // Destroys the program on every path out of this function.
    struct Program(sys::nvrtcProgram);
    impl Drop for Program {
        fn drop(&mut self) {
            // SAFETY: created by create_program and destroyed only here. An
            // error on destroy leaks the program, nothing worse.
            let _ = unsafe { result::destroy_program(self.0) };
        }
    }
    let prog = Program(prog);

    let mut options: Vec<String> = vec![format!("--gpu-architecture=sm_{arch}")];
    options.extend(BASE_OPTIONS.iter().map(|s| s.to_string()));
    // SAFETY: `prog.0` is a live program (destroyed only by the guard); the
    // options contain no NUL bytes (fixed strings and a number).
    let compiled = unsafe { result::compile_program(prog.0, &options) };
    // SAFETY: live program, see above.
    let log = unsafe { result::get_program_log(prog.0) }
        .map(|raw| c_chars_to_string(&raw))
        .unwrap_or_else(|e| format!("<no log: {e}>"));
    if let Err(e) = compiled {
        return Err(Error::Device(format!(
            "NVRTC failed to compile `{name}` for sm_{arch} ({e}); options {options:?}; log:\n{log}"
        )));
    }
    // SAFETY: live program, compiled successfully above.
    let raw = unsafe { result::get_ptx(prog.0) }.map_err(|e| fail("get PTX of", e))?;
    Ok((c_chars_to_string(&raw), log))
}

/// NVRTC output buffers are NUL-terminated C strings.
fn c_chars_to_string(raw: &[std::ffi::c_char]) -> String {
    // c_char is i8 or u8 depending on the target: reinterpret as bytes.
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Where compiled PTX comes from (tests use this to check the disk cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtxOrigin {
    /// Compiled by NVRTC in this call.
    Compiled,
    /// Read from the on-disk cache.
    Disk,
    /// Already compiled earlier in this process.
    Memory,
}

/// The process-wide PTX cache, keyed by (family, arch).
type MemoryCache = Mutex<HashMap<(String, u32), Arc<str>>>;

fn memory() -> std::sync::MutexGuard<'static, HashMap<(String, u32), Arc<str>>> {
    static MEMORY: OnceLock<MemoryCache> = OnceLock::new();
    // A poisoned lock only means another thread panicked around an insert or
    // remove; the map itself is always consistent, so keep using it.
    MEMORY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// PTX of kernel family `family` for `sm_{arch}`, compiled at most once per
/// process, using the on-disk cache of [`cache_dir`].
pub fn ptx(family: &str, arch: u32) -> Result<Arc<str>> {
    ptx_with_cache(family, arch, cache_dir().as_deref()).map(|(p, _)| p)
}

/// [`ptx`] with an explicit disk-cache folder (`None`: no disk cache), also
/// saying where the PTX came from.
pub fn ptx_with_cache(
    family: &str,
    arch: u32,
    disk: Option<&Path>,
) -> Result<(Arc<str>, PtxOrigin)> {
    let key = (family.to_string(), arch);
    if let Some(p) = memory().get(&key) {
        return Ok((p.clone(), PtxOrigin::Memory));
    }
    // Compiled without holding the lock (NVRTC takes ~0.1-1 s); two threads
    // may then both compile the first time: the first insert wins, and both
    // results are identical anyway.
    let (ptx, origin) = ptx_uncached_in_memory(family, arch, disk)?;
    let kept = memory().entry(key).or_insert(Arc::from(ptx)).clone();
    Ok((kept, origin))
}

/// Drops `family`/`arch` from the process cache and from the disk cache in
/// `disk`, so the next [`ptx_with_cache`] compiles afresh (used when the
/// driver rejects a cached PTX).
pub fn forget(family: &str, arch: u32, disk: Option<&Path>) {
    memory().remove(&(family.to_string(), arch));
    if let (Some(dir), Ok(src), Ok(v)) = (disk, source(family), version()) {
        // Nothing to do if the file is already gone.
        let _ = std::fs::remove_file(cache_file(dir, family, src, arch, v));
    }
}

fn ptx_uncached_in_memory(
    family: &str,
    arch: u32,
    disk: Option<&Path>,
) -> Result<(String, PtxOrigin)> {
    let src = source(family)?;
    let nvrtc_version = version()?;
    let file = disk.map(|d| cache_file(d, family, src, arch, nvrtc_version));
    if let Some(f) = &file {
        if let Some(ptx) = read_cached(f) {
            return Ok((ptx, PtxOrigin::Disk));
        }
    }
    let ptx = compile_ptx(family, src, arch)?;
    if let Some(f) = &file {
        // A cache that cannot be written only costs a recompile next time.
        let _ = write_cached(f, &ptx);
    }
    Ok((ptx, PtxOrigin::Compiled))
}

/// The disk-cache folder: `$DASNAS_CACHE_DIR` (empty: no disk cache), else
/// `$XDG_CACHE_HOME/dasnas`, else `$HOME/.cache/dasnas`; PTX files go in its
/// `ptx/` subfolder. `None` when none of these is set.
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

/// `<dir>/ptx/<family>-sm<arch>-<hash>.ptx`; the hash covers everything that
/// changes the PTX: source text, architecture, options and NVRTC version.
fn cache_file(dir: &Path, family: &str, src: &str, arch: u32, nvrtc: (i32, i32)) -> PathBuf {
    let mut h = Fnv128::new();
    h.write(src.as_bytes());
    h.write(&[0]);
    h.write(format!("sm_{arch}").as_bytes());
    for o in BASE_OPTIONS {
        h.write(&[0]);
        h.write(o.as_bytes());
    }
    h.write(&[0]);
    h.write(format!("nvrtc {}.{}", nvrtc.0, nvrtc.1).as_bytes());
    dir.join("ptx")
        .join(format!("{family}-sm{arch}-{:032x}.ptx", h.finish()))
}

/// A cached PTX, or `None` when missing or not plausibly complete (a
/// truncated file must not reach the driver).
fn read_cached(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let plausible = text.contains(".version")
        && text.contains(".entry")
        && text.trim_end().ends_with('}')
        && !text.contains('\0');
    plausible.then_some(text)
}

/// Writes through a temporary file and a rename, so a concurrent reader
/// sees either no file or the whole file.
fn write_cached(path: &Path, ptx: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache file has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, ptx)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// FNV-1a with 128-bit state: stable across Rust versions and platforms
/// (unlike `DefaultHasher`), wide enough that cache-key collisions are not
/// a concern.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    fn new() -> Self {
        Fnv128(Self::OFFSET)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u128;
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
    fn finish(&self) -> u128 {
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
        let base = cache_file(d, "codes", "src", 90, (13, 0));
        assert_ne!(base, cache_file(d, "codes", "src2", 90, (13, 0)));
        assert_ne!(base, cache_file(d, "codes", "src", 80, (13, 0)));
        assert_ne!(base, cache_file(d, "codes", "src", 90, (13, 1)));
        assert!(base.starts_with("/c/ptx"));
    }

    #[test]
    fn truncated_cache_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("dasnas-ptx-test-{}", std::process::id()));
        let f = dir.join("ptx").join("x.ptx");
        write_cached(&f, ".version 9.0\n.entry k(\n").unwrap();
        assert_eq!(read_cached(&f), None);
        write_cached(&f, ".version 9.0\n.entry k()\n{\n}\n").unwrap();
        assert!(read_cached(&f).is_some());
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
            Err(e) => assert!(e.to_string().contains("NVRTC")),
        }
    }
}
