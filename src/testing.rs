//! Test support, not API: what the library's unit tests (`src/**/tests.rs`,
//! `#[cfg(test)]` modules) and the integration tests (`tests/*/`) share.
//! It is compiled always (so the integration tests can use it) and hidden
//! from the documentation; nothing here is covered by semver.
//!
//! * the devices a GPU test runs on: [`emulated`] and [`gpu`];
//! * [`gpu_test!`](crate::gpu_test) and
//!   [`gpu_only_test!`](crate::gpu_only_test), which turn one
//!   `fn name(dev: &CudaDevice)` into the tests `name::emulated` (the host
//!   emulation of the CUDA backend: always run, in CI too) and `name::gpu`
//!   (GPU 0, `#[ignore]`d: the GPU bundle runs the test binaries with
//!   `--include-ignored --skip emulated` and `REQUIRE_GPU=1`; run without
//!   a usable GPU it fails, saying why);
//! * [`shared_data`]: a file of the data folder beside the repository, or
//!   a visible `SKIPPED` line;
//! * [`Rng`], the generator behind random test inputs, with the
//!   distributions several test files draw from, and [`POISON`], what a
//!   kernel's output starts as;
//! * [`upload`] and [`download`], host ↔ device copies that fail the test.
//!
//! The runners of the `dasnas` binary live in the command-line tests
//! (`tests/cli/main.rs`): only an integration test knows where cargo built
//! the binary.

use crate::runtime::cuda::{CudaDevice, DeviceBuffer};
use crate::tensor::{Shape, Tensor};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The host emulation of the CUDA backend ([`CudaDevice::emulated`], built
/// once per content into its cache folder), shared by all tests of one
/// test binary. Building it needs a C++17 compiler, as CI has.
pub fn emulated() -> &'static CudaDevice {
    static DEV: OnceLock<CudaDevice> = OnceLock::new();
    DEV.get_or_init(|| {
        CudaDevice::emulated().unwrap_or_else(|e| {
            panic!("the host emulation of the CUDA backend cannot be built: {e}")
        })
    })
}

/// GPU 0, shared by all tests of one test binary. Panics (failing the
/// test) with the reason when there is none: GPU tests are `#[ignore]`d,
/// so this runs only when asked for.
pub fn gpu() -> &'static CudaDevice {
    static DEV: OnceLock<std::result::Result<CudaDevice, String>> = OnceLock::new();
    match DEV.get_or_init(|| CudaDevice::open(0).map_err(|e| e.to_string())) {
        Ok(d) => d,
        Err(why) => panic!("this test needs a GPU, and there is no usable one: {why}"),
    }
}

/// Makes the two tests `name::emulated` (on [`emulated`](crate::testing::emulated))
/// and `name::gpu` (on [`gpu`](crate::testing::gpu), ignored unless asked
/// for) of the function `name(dev: &CudaDevice)` in scope.
#[doc(hidden)]
#[macro_export]
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

/// Makes the one test `name::gpu` (ignored unless asked for) of a GPU test
/// too large for the emulation.
#[doc(hidden)]
#[macro_export]
macro_rules! gpu_only_test {
    ($name:ident) => {
        mod $name {
            #[test]
            #[ignore = "needs a GPU: run with --include-ignored where one is (REQUIRE_GPU=1)"]
            fn gpu() {
                super::$name($crate::testing::gpu())
            }
        }
    };
}

/// `../shared/data/<file>` (beside the repository) when it exists;
/// otherwise writes `SKIPPED <test>: …` straight to the terminal (past the
/// test harness's output capture, so a skipped test is seen, not only
/// counted as passed) and returns `None`.
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

/// A NaN with a recognisable payload: what a kernel's output starts as, so
/// an element it forgets to write cannot pass.
pub const POISON: f32 = f32::from_bits(0x7fc0_dead);

/// splitmix64: a small deterministic generator for test inputs.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // a generator, not an iterator
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), from the top 24 bits (exact in f32).
    pub fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `len` draws of [`Self::unit`].
    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit()).collect()
    }

    /// A tensor of shape `s` filled with [`Self::unit`] draws.
    pub fn tensor(&mut self, s: Shape) -> Tensor {
        Tensor::from_vec(s, self.vec(s.len())).expect("a buffer of the shape's length")
    }

    /// Uniform in [-1, 1) in f64, from the top 53 bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// `len` draws of [`Self::unit_f64`], rounded to f32 and times `scale`.
    pub fn scaled(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.unit_f64() as f32 * scale).collect()
    }
}

/// `host` copied to the device (the test fails if it cannot be).
pub fn upload<T: bytemuck::Pod>(dev: &CudaDevice, host: &[T]) -> DeviceBuffer<T> {
    dev.upload(host).expect("upload")
}

/// `buf` copied back to the host (the test fails if it cannot be).
pub fn download<T: bytemuck::Pod>(dev: &CudaDevice, buf: &DeviceBuffer<T>) -> Vec<T> {
    dev.download(buf).expect("download")
}
