//! Test helpers for the library's own unit tests (compiled only with
//! `cfg(test)`): the shared data a test reads ([`test_data`]), the devices
//! a GPU test runs on and [`gpu_test!`], the
//! unit-test twin of `tests/common`'s macro, so an op's folder can carry
//! its CUDA-vs-CPU tests beside its code.
//!
//! `gpu_test!(name)` makes two tests of `fn name(dev: &CudaDevice)`:
//! `name::emulated` on the host emulation (always run, in CI too) and
//! `name::gpu` on GPU 0, `#[ignore = "needs a GPU…"]` (the GPU bundle runs
//! the library's test binary with `--include-ignored --skip emulated`).

#![allow(dead_code, unused_macros)] // used by the ops' GPU unit tests as they need them

use crate::runtime::cuda::CudaDevice;
use std::sync::OnceLock;

/// The host emulation shared by the unit tests, built once.
pub(crate) fn emulated() -> &'static CudaDevice {
    static DEV: OnceLock<CudaDevice> = OnceLock::new();
    DEV.get_or_init(|| {
        CudaDevice::emulated().unwrap_or_else(|e| {
            panic!("the host emulation of the CUDA backend cannot be built: {e}")
        })
    })
}

/// GPU 0; panics with the reason when there is none (such tests are
/// ignored unless asked for).
pub(crate) fn gpu() -> &'static CudaDevice {
    static DEV: OnceLock<std::result::Result<CudaDevice, String>> = OnceLock::new();
    match DEV.get_or_init(|| CudaDevice::open(0).map_err(|e| e.to_string())) {
        Ok(d) => d,
        Err(why) => panic!("this test needs a GPU, and there is no usable one: {why}"),
    }
}

/// `name::emulated` and `name::gpu` tests of `fn name(dev: &CudaDevice)`.
macro_rules! gpu_test {
    ($name:ident) => {
        mod $name {
            #[test]
            fn emulated() {
                super::$name($crate::testing::emulated())
            }
            #[test]
            #[ignore = "needs a GPU: run with --include-ignored where one is (REQUIRE_GPU=1)"]
            fn gpu() {
                super::$name($crate::testing::gpu())
            }
        }
    };
}

/// `../shared/data/<file>` for a unit test, or `None` after telling the
/// terminal (past the harness's output capture) that `test` did not run.
pub(crate) fn test_data(test: &str, file: &str) -> Option<std::path::PathBuf> {
    use std::io::Write;
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(file);
    if p.exists() {
        return Some(p);
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs ../shared/data/{file}, which is absent (it did not run)"
    );
    None
}
