//! The kernels that must match their CPU twins bit for bit compile without
//! f32 contractions or approximate division (the CUDA-vs-CPU tests of the
//! pool, add, ReLU, global-average-pool and linear kernels sit beside their
//! ops, in `src/ops/<op>/tests.rs`).

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
