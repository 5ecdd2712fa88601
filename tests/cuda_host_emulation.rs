//! Runs the real `cuda/conv2d.cu`, `cuda/batchnorm.cu`,
//! `cuda/conv2d_backward.cu`, `cuda/batchnorm_backward.cu`, the pool
//! backward of `cuda/pool.cu`, `cuda/softmax_ce.cu`, `cuda/sgd.cu`, and the
//! sign packing of `cuda/codes.cu`, `cuda/add.cu` (`add_n`, `add_n_pack`)
//! and `bn_normalize_pack` sources as host C++ (`tools/cuda_emu.cpp`,
//! `tools/cuda_emu_backward.inc`, `tools/cuda_emu_pack.inc`: each block as
//! blockDim threads with a barrier for `__syncthreads` and per-warp
//! barriers for `__ballot_sync`) against naive references, so their index
//! math, tiling and boundary handling are exercised on machines without a
//! GPU.
//! It cannot show races that the host schedule hides, nor GPU speed.
//! Skips with a message when no `g++` is installed.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn cuda_kernels_match_references_under_host_emulation() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda_emu");
    let compiled = Command::new("g++")
        .args([
            "-std=c++20",
            "-O2",
            "-pthread",
            "-Wno-unknown-pragmas",
            "-o",
        ])
        .arg(&exe)
        .arg(root.join("tools/cuda_emu.cpp"))
        .output();
    let compiled = match compiled {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skip: cannot run g++ ({e})");
            return;
        }
    };
    assert!(
        compiled.status.success(),
        "g++ failed:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let run = Command::new(&exe).output().expect("run the emulator");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && out.lines().any(|l| l.trim() == "0 failing cases"),
        "emulated kernels disagree with the references:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
