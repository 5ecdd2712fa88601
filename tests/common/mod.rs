//! Helpers shared by the integration tests: the devices GPU tests run on,
//! the visible skip of tests whose data is absent, and the generator
//! behind random inputs.
//!
//! A GPU test is written once, as `fn name(dev: &CudaDevice)`, and
//! `gpu_test!(name)` makes two tests of it:
//! * `name::emulated` runs it on the host emulation of the CUDA backend
//!   (every kernel, launch and plan as on a GPU; `CudaDevice::emulated`),
//!   always, so CI executes the CUDA path without a GPU;
//! * `name::gpu` runs it on GPU 0 and is `#[ignore = "needs a GPU"]`:
//!   `cargo test` lists it as ignored (never as passed), and the GPU bundle
//!   runs it with `--include-ignored` and `REQUIRE_GPU=1`. Run on a machine
//!   without a usable GPU it fails, saying why.
#![allow(dead_code)] // each test binary uses its own subset
#![allow(unused_macros)]

use dasnas::runtime::cuda::CudaDevice;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The host emulation shared by all tests of one binary, built once into
/// cargo's temporary folder (needs a C++17 compiler, as CI has).
pub fn emulated() -> &'static CudaDevice {
    static DEV: OnceLock<CudaDevice> = OnceLock::new();
    DEV.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emu");
        CudaDevice::emulated_in(&dir).unwrap_or_else(|e| {
            panic!("the host emulation of the CUDA backend cannot be built: {e}")
        })
    })
}

/// GPU 0, shared by all tests of one binary. Panics (failing the test)
/// with the reason when there is none: GPU tests are `#[ignore]`d, so this
/// runs only when asked for.
pub fn gpu() -> &'static CudaDevice {
    static DEV: OnceLock<Result<CudaDevice, String>> = OnceLock::new();
    match DEV.get_or_init(|| CudaDevice::open(0).map_err(|e| e.to_string())) {
        Ok(d) => d,
        Err(why) => panic!("this test needs a GPU, and there is no usable one: {why}"),
    }
}

/// Makes the two tests `name::emulated` and `name::gpu` of the function
/// `name(dev: &CudaDevice)` (see the module docs).
macro_rules! gpu_test {
    ($name:ident) => {
        mod $name {
            #[test]
            fn emulated() {
                super::$name(crate::common::emulated())
            }
            #[test]
            #[ignore = "needs a GPU: run with --include-ignored where one is (REQUIRE_GPU=1)"]
            fn gpu() {
                super::$name(crate::common::gpu())
            }
        }
    };
}

/// Makes the one test `name::gpu` (ignored unless asked for) of a GPU test
/// too large for the emulation.
macro_rules! gpu_only_test {
    ($name:ident) => {
        mod $name {
            #[test]
            #[ignore = "needs a GPU: run with --include-ignored where one is (REQUIRE_GPU=1)"]
            fn gpu() {
                super::$name(crate::common::gpu())
            }
        }
    };
}

/// `../shared/data/<file>` when it exists; otherwise writes
/// `SKIPPED <test>: …` straight to the terminal (past the test harness's
/// output capture, so a skipped test is seen, not only counted as passed)
/// and returns `None`.
pub fn shared_data(test: &str, file: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// splitmix64: a small deterministic generator for test inputs (each test
/// file adds the distributions it needs in its own `impl Rng`).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Runs this package's `dasnas` binary with `args`.
pub fn dasnas(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .args(args)
        .output()
        .expect("run dasnas")
}

/// The stdout of a run that must have succeeded (else the test fails with
/// its exit status and stderr).
pub fn stdout_of(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Asserts that `dasnas args` exits non-zero, says `needle` on stderr and
/// does not panic.
pub fn fails_with(args: &[&str], needle: &str) {
    let o = dasnas(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: stderr was {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}
