//! Helpers shared by the integration tests: the GPU-or-skip rule and the
//! generator behind their random inputs.
#![allow(dead_code)] // each test binary uses its own subset

use dasnas::device::cuda::CudaDevice;
use std::sync::OnceLock;

/// The GPU shared by all tests of one binary, or `None` (after printing why)
/// when there is none and `REQUIRE_GPU` is not 1; under `REQUIRE_GPU=1` a
/// missing GPU fails the test.
pub fn gpu(test: &str) -> Option<&'static CudaDevice> {
    static DEV: OnceLock<Result<CudaDevice, String>> = OnceLock::new();
    match DEV.get_or_init(|| CudaDevice::open(0).map_err(|e| e.to_string())) {
        Ok(d) => Some(d),
        Err(why) => {
            if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_GPU=1 but no usable GPU: {why}");
            }
            println!("skip: {test}: {why}");
            None
        }
    }
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
