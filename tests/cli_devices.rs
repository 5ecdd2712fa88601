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
