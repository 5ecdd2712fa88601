//! `examples/03_score_from_c.c` (the example of docs/c.md), compiled with the system C
//! compiler (`$CC`, else `cc`) against the built library, shared and
//! static, prints the same scores as the Rust crate.

use std::path::{Path, PathBuf};
use std::process::Command;

const CELL: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";

/// `target/release`: this test is `target/release/deps/c_program-HASH`.
/// Where `cargo test` left this crate's libraries: `<target>/<profile>/deps`,
/// the test binary's own folder (`cargo build` also copies them one level
/// up, but `cargo test` alone does not).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .expect("the test binary lies in <target>/<profile>/deps")
        .to_path_buf()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh scratch directory for this test's binaries.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dasnas-c-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}

/// Compiles `examples/03_score_from_c.c` with `link` (the library's flags) into `dir`, runs
/// it, and returns its stdout.
fn build_and_run(dir: &Path, link: &[String]) -> String {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let exe = dir.join("example");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/03_score_from_c.c");
    let out = Command::new(&cc)
        .arg("-std=c99")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .args(link)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e} (set CC to one)"));
    assert!(
        out.status.success(),
        "`{cc}` failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("running the C program");
    let stdout = String::from_utf8(run.stdout).expect("UTF-8 output");
    assert!(
        run.status.success(),
        "the C program failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// What the example must print: the cell's scores from the Rust crate,
/// to the C program's precision, then the bad cell's error.
fn check_output(stdout: &str) {
    let arch = dasnas_core::space::Arch::parse(dasnas_core::space::Space::NB201, CELL).unwrap();
    let batch = dasnas_core::data::gaussian_batch(16, 32, 0);
    let s = dasnas_core::score_arch(&arch, &batch, 0, 1.0)
        .unwrap()
        .scores;
    let expected = format!(
        "wot={:.6} d={:.6} n_units={} das={:.6} singular={}",
        s.wot.unwrap(),
        s.d.unwrap(),
        s.n_units,
        s.das.unwrap(),
        s.singular as i32
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(expected.as_str()), "stdout:\n{stdout}");
    let err = lines.next().unwrap_or_default();
    assert!(
        err.starts_with("error: invalid architecture `|bogus~0|`") && err.contains("at byte"),
        "the error line: {err:?}"
    );
    assert_eq!(lines.next(), None, "stdout:\n{stdout}");
}

#[test]
fn c_program_against_the_shared_library() {
    let dir = lib_dir();
    let so = dir.join("libdasnas_c.so");
    assert!(
        so.exists(),
        "{} is missing: built by `cargo test --release -p dasnas-c`",
        so.display()
    );
    let scratch = scratch("shared");
    let d = dir.display();
    let stdout = build_and_run(
        &scratch,
        &[
            format!("-L{d}"),
            "-ldasnas_c".into(),
            format!("-Wl,-rpath,{d}"),
        ],
    );
    check_output(&stdout);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn c_program_against_the_static_library() {
    let a = lib_dir().join("libdasnas_c.a");
    assert!(
        a.exists(),
        "{} is missing: built by `cargo test --release -p dasnas-c`",
        a.display()
    );
    let scratch = scratch("static");
    // The link flags of docs/c.md for the static library.
    let stdout = build_and_run(
        &scratch,
        &[
            a.display().to_string(),
            "-lpthread".into(),
            "-ldl".into(),
            "-lm".into(),
        ],
    );
    check_output(&stdout);
    let _ = std::fs::remove_dir_all(&scratch);
}
