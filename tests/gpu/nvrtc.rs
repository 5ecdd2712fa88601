//! Every kernel family of `cuda/` compiles with NVRTC to a CUBIN for the
//! architectures we run on (sm_90: H100/H200; sm_80: A100), the image
//! cache keeps CUBINs, and the kernels that must match the CPU bit for bit
//! compile without contractions or approximate division. Needs no GPU,
//! only libnvrtc.
//!
//! Without libnvrtc the tests print `SKIPPED …` and pass, unless
//! `REQUIRE_NVRTC=1` (CI sets it after installing the NVRTC wheel), so a
//! missing library cannot silently turn the check off there.

use dasnas::runtime::cuda::nvrtc;
use dasnas::runtime::cuda_sources::CUDA_SOURCES;

/// `true` when NVRTC is loadable; otherwise prints the skip reason, or
/// panics when NVRTC is required.
fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc::available() {
        return true;
    }
    let why =
        "libnvrtc cannot be loaded (set LD_LIBRARY_PATH to the NVRTC wheel's nvidia/cu13/lib)";
    if std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!("REQUIRE_NVRTC=1 but {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    false
}

#[test]
fn every_kernel_compiles_to_a_cubin_for_sm90_and_sm80() {
    if !nvrtc_or_skip("every_kernel_compiles_to_a_cubin_for_sm90_and_sm80") {
        return;
    }
    let lib = nvrtc::library().expect("NVRTC");
    let (major, minor) = lib.version();
    println!(
        "NVRTC {major}.{minor} from {} ({})",
        lib.path().display(),
        lib.chosen_by()
    );
    assert!(!CUDA_SOURCES.is_empty(), "no CUDA sources embedded");
    let mut failures = Vec::new();
    for (name, src) in CUDA_SOURCES {
        for arch in [90, 80] {
            match nvrtc::compile(name, src, arch) {
                Ok(c) => {
                    // Warnings are bugs waiting to happen in kernels this small.
                    if !c.log.trim().is_empty() {
                        failures.push(format!(
                            "{name} sm_{arch} compiled with warnings:\n{}",
                            c.log
                        ));
                    }
                    assert!(c.note.is_none(), "{name}: {:?}", c.note);
                    match &c.image {
                        nvrtc::Image::Cubin { bytes, arch: a } => {
                            assert_eq!(*a, arch);
                            assert_eq!(nvrtc::cubin_arch(bytes), Some(arch), "{name}: ELF arch");
                            println!("{name} sm_{arch}: {} bytes of CUBIN", bytes.len());
                        }
                        other => failures.push(format!("{name} sm_{arch}: {}", other.describe())),
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A GPU newer than NVRTC (an architecture it cannot emit a CUBIN for)
/// gets PTX for the newest architecture NVRTC knows, with a note saying so;
/// every architecture NVRTC lists gets a CUBIN, so PTX newer than the
/// driver never reaches it on that path.
#[test]
fn unknown_architectures_fall_back_to_ptx_with_a_note() {
    if !nvrtc_or_skip("unknown_architectures_fall_back_to_ptx_with_a_note") {
        return;
    }
    let lib = nvrtc::library().expect("NVRTC");
    let newest = *lib
        .supported_archs()
        .iter()
        .max()
        .expect("NVRTC lists architectures");
    let src = nvrtc::source("relu").unwrap();
    let c = nvrtc::compile("relu", src, newest + 7).expect("PTX fallback");
    match &c.image {
        nvrtc::Image::Ptx { text, target } => {
            assert_eq!(*target, newest);
            assert!(
                text.contains(&format!(".target sm_{newest}"))
                    || text.contains(&format!(".target compute_{newest}")),
                "{}",
                &text[..300.min(text.len())]
            );
        }
        other => panic!("expected PTX, got {}", other.describe()),
    }
    let note = c.note.expect("a note");
    assert!(
        note.contains("cannot emit a CUBIN") && note.contains("PTX"),
        "{note}"
    );
    for &arch in lib.supported_archs() {
        let c = nvrtc::compile("relu", src, arch).expect("compiles");
        assert!(
            matches!(c.image, nvrtc::Image::Cubin { arch: a, .. } if a == arch),
            "sm_{arch}"
        );
    }
}

/// Every kernel of the kernel table (what the launch functions load by
/// name) is an entry point of its family's compiled PTX (`extern "C"`
/// keeps the names unmangled); the table's agreement with the sources'
/// `__global__` functions is checked without NVRTC by the library's tests.
#[test]
fn kernels_have_the_entry_points_rust_loads() {
    if !nvrtc_or_skip("kernels_have_the_entry_points_rust_loads") {
        return;
    }
    let table = dasnas::exec::kernel_table::all();
    assert!(table.len() >= 51, "{} kernels in the table", table.len());
    let mut ptx_of = std::collections::HashMap::new();
    for k in table {
        let ptx = ptx_of.entry(k.family).or_insert_with(|| {
            let src = nvrtc::source(k.family).expect("family embedded");
            nvrtc::compile_ptx(k.family, src, 90).expect("compiles")
        });
        assert!(
            ptx.contains(&format!(".entry {}(", k.name)),
            "{}.cu has no entry `{}`",
            k.family,
            k.name
        );
    }
}

/// A compile error comes back as an error that carries NVRTC's log.
#[test]
fn compile_errors_carry_the_log() {
    if !nvrtc_or_skip("compile_errors_carry_the_log") {
        return;
    }
    let err = nvrtc::compile_ptx("broken", "extern \"C\" __global__ void k( { }", 90)
        .expect_err("must not compile");
    let msg = err.to_string();
    assert!(msg.contains("broken"), "{msg}");
    assert!(msg.contains("error"), "no log in: {msg}");
}

/// The process cache returns the same CUBIN; the disk cache is written on
/// the first compile (a CUBIN for the requested architecture) and read by
/// a later lookup.
#[test]
fn cubin_is_cached_in_memory_and_on_disk() {
    if !nvrtc_or_skip("cubin_is_cached_in_memory_and_on_disk") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dasnas-nvrtc-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // sm_75 is used by no other test here, so the process cache starts empty.
    let (a, origin) = nvrtc::image_with_cache("codes", 75, Some(&dir)).expect("compile");
    assert_eq!(origin, nvrtc::Origin::Compiled);
    let files: Vec<_> = std::fs::read_dir(dir.join("cubin"))
        .expect("cache folder written")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        !dir.join("ptx").exists(),
        "no PTX is written for an architecture NVRTC knows"
    );
    let on_disk = std::fs::read(&files[0]).unwrap();
    assert_eq!(
        nvrtc::cubin_arch(&on_disk),
        Some(75),
        "the cached artifact is a CUBIN for sm_75"
    );
    assert!(matches!(&a.image, nvrtc::Image::Cubin { bytes, arch: 75 } if *bytes == on_disk));
    let (b, origin) = nvrtc::image_with_cache("codes", 75, Some(&dir)).expect("cached");
    assert_eq!(origin, nvrtc::Origin::Memory);
    assert_eq!(a.image, b.image);
    // After forgetting the process copy (and the file), a new file is
    // compiled; then dropping only the process copy reads the file back.
    nvrtc::forget("codes", 75, Some(&dir));
    let (_, origin) = nvrtc::image_with_cache("codes", 75, Some(&dir)).expect("recompile");
    assert_eq!(origin, nvrtc::Origin::Compiled);
    nvrtc::forget("codes", 75, None);
    let (c, origin) = nvrtc::image_with_cache("codes", 75, Some(&dir)).expect("from disk");
    assert_eq!(origin, nvrtc::Origin::Disk);
    assert_eq!(a.image, c.image);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernels match their CPU twins bit for bit only if NVRTC keeps every
/// f32 multiply and add separately rounded and divides exactly: with
/// `--fmad=false` (nvrtc::OPTIONS) the PTX of every family but the convs
/// has no f32 fused multiply-add and no approximate division. (f64 FMAs
/// are allowed: the linear backward sums in f64 and is compared with a
/// tolerance.) Needs only NVRTC (skips without it unless
/// `REQUIRE_NVRTC=1`), so it runs in CI.
#[test]
fn bitwise_kernels_have_no_fma_or_approximate_division() {
    use dasnas::runtime::cuda::nvrtc;
    if !nvrtc::available() {
        let why = "libnvrtc cannot be loaded";
        if std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("REQUIRE_NVRTC=1 but {why}");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED bitwise_kernels_have_no_fma_or_approximate_division: {why}"
        );
        return;
    }
    // Every family but the convs, whose FMAs are explicit `fmaf` calls.
    for (family, _) in dasnas::runtime::cuda_sources::CUDA_SOURCES
        .iter()
        .filter(|(f, _)| !f.starts_with("conv2d"))
    {
        let src = nvrtc::source(family).expect("family embedded");
        let ptx = nvrtc::compile_ptx(family, src, 90).expect("compiles");
        // f32 contractions, approximate f32 division / square root, and
        // flushing f32 subnormals; f64 math functions (log, exp) may use
        // approximate instructions inside their correctly-iterated
        // implementations, and are compared with tolerances.
        for bad in [
            "fma.rn.f32",
            "fma.rn.ftz.f32",
            "mad.f32",
            "div.approx.f32",
            "div.approx.ftz.f32",
            "div.full.f32",
            "sqrt.approx.f32",
            "rcp.approx.f32",
            ".ftz.f32",
        ] {
            assert!(
                !ptx.contains(bad),
                "{family}.cu: PTX contains `{bad}`, so it cannot match the CPU bit for bit"
            );
        }
    }
}
