//! The crate's layering (ARCHITECTURE.md): `train` builds on `device`,
//! never the reverse, and an op reaches a device only through
//! `ops::backend` and the CUDA memory and launch API, never through the
//! planners, walkers or trainers. Checked on the sources, so a new import
//! that closes a circle fails here with the file and line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source folder") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of `dir`'s Rust files that contain one of `needles`, comments,
/// docs and tests left out (a `tests.rs` file, and everything from a
/// file's `#[cfg(test)]` on: tests may reach across layers).
fn offending(dir: &str, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut hits = Vec::new();
    for f in files {
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable source");
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            if needles.iter().any(|n| code.contains(n)) {
                hits.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn device_does_not_import_train() {
    let hits = offending("src/device", &["crate::train", "dasnas::train"]);
    assert!(
        hits.is_empty(),
        "device must not depend on train:\n{}",
        hits.join("\n")
    );
}

#[test]
fn ops_do_not_import_planners_or_trainers() {
    let hits = offending(
        "src/ops",
        &[
            "crate::train",
            "crate::device::plan",
            "crate::device::run",
            "crate::device::cpu",
            "crate::device::cuda::executor",
        ],
    );
    assert!(
        hits.is_empty(),
        "an op reaches a device only through ops::backend and the CUDA memory/launch API:\n{}",
        hits.join("\n")
    );
}
