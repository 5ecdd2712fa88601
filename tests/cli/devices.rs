//! `dasnas devices` never fails for lack of a GPU: it says what it found.

use std::process::Command;

#[test]
fn devices_reports_and_exits_zero() {
    let o = Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .arg("devices")
        .output()
        .expect("run dasnas");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("no CUDA driver found") || out.contains("GPU") || out.contains("no GPU"),
        "{out}"
    );
    assert!(out.contains("NVRTC"), "{out}");
}

const CELL: &str =
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|";

fn score_on(device: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .args(["score", "--arch", CELL, "--batch", "8", "--device", device])
        .output()
        .expect("run dasnas")
}

fn gpu_works() -> bool {
    dasnas::runtime::cuda::CudaDevice::open(0).is_ok()
}

#[test]
fn device_flag_selects_falls_back_or_fails_with_the_reason() {
    let cpu = score_on("cpu");
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    assert!(
        cpu.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    let cpu_json: serde_json::Value = serde_json::from_slice(&cpu.stdout).expect("one JSON line");

    let auto = score_on("auto");
    let auto_err = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "{auto_err}");
    let auto_json: serde_json::Value = serde_json::from_slice(&auto.stdout).expect("one JSON line");
    assert_eq!(auto_json["n_units"], cpu_json["n_units"]);

    let cuda = score_on("cuda");
    let cuda_err = String::from_utf8_lossy(&cuda.stderr);
    if gpu_works() {
        assert!(cuda.status.success(), "{cuda_err}");
        assert!(auto_err.is_empty(), "{auto_err}");
    } else {
        // auto: one notice line, then the CPU's result.
        assert_eq!(auto_err.lines().count(), 1, "{auto_err}");
        assert!(auto_err.contains("running on the CPU"), "{auto_err}");
        assert_eq!(auto_json["wot"], cpu_json["wot"]);
        // cuda: an error naming why, exit status 1, nothing on stdout.
        assert_eq!(cuda.status.code(), Some(1), "{cuda_err}");
        assert!(cuda_err.starts_with("dasnas: error: "), "{cuda_err}");
        assert!(
            cuda_err.contains("CUDA") || cuda_err.contains("GPU") || cuda_err.contains("NVRTC"),
            "{cuda_err}"
        );
        assert!(cuda.stdout.is_empty());
    }

    for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1"] {
        let o = score_on(bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad}");
        assert!(
            err.contains("expected auto, cpu, cuda or cuda:N"),
            "{bad}: {err}"
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_dasnas"))
        .args(["score", "--arch", CELL, "--batch", "8", "--lanes", "0"])
        .output()
        .expect("run dasnas");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--lanes must be at least 1"));
}

/// `DASNAS_NVRTC` names the NVRTC library exactly: `devices` reports that
/// path and the choice, and a compile works from it with no
/// `LD_LIBRARY_PATH` (its builtins are found beside it); a bad value is
/// reported, not fatal.
#[test]
fn dasnas_nvrtc_chooses_the_library() {
    use std::io::Write;
    let run = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_dasnas"))
            .arg("devices")
            .env("DASNAS_NVRTC", value)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .expect("run dasnas")
    };
    let bad = run("/no/such/libnvrtc.so.13");
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(bad.status.success(), "{out}");
    assert!(
        out.contains("DASNAS_NVRTC=/no/such/libnvrtc.so.13: no such file"),
        "{out}"
    );
    let lib = match dasnas::runtime::cuda::nvrtc::library() {
        Ok(lib) => lib,
        Err(e) => {
            if std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_NVRTC=1 but {e}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED dasnas_nvrtc_chooses_the_library (half): no NVRTC to point at ({e})"
            );
            return;
        }
    };
    let path = lib.path().to_string_lossy().into_owned();
    let good = run(&path);
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{out}");
    assert!(out.contains(&path), "{out}");
    assert!(out.contains("chosen by DASNAS_NVRTC"), "{out}");
    assert!(
        out.contains("NVRTC compile check (relu.cu): ok, CUBIN for sm_"),
        "{out}"
    );
}
