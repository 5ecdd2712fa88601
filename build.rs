//! Embeds the CUDA sources into the crate: every kernel family (one `.cu`
//! file) becomes one entry of `CUDA_SOURCES` (family name = file stem, full
//! source with `cuda/common.cuh` prepended), so a binary carries its kernels
//! and NVRTC compiles them at run time for whatever GPU it finds. The
//! kernels include no system header.
//!
//! Kernels live beside the code that launches them: an op's kernels in its
//! own folder (`src/ops/<op>/*.cu`), the kernels that are not ops (weight
//! init, sign packing, Hamming, log-det, SGD) in `cuda/`. A new `.cu` file
//! in either place is picked up without touching this script. A `.cuh` in
//! an op's folder (declarations its kernel families share, such as the
//! conv's geometry struct) is prepended to each `.cu` of that folder, after
//! `common.cuh`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The files directly in `dir` with extension `ext`, sorted.
fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// One kernel family: its `.cu` and the op-local headers prepended to it.
struct Family {
    name: String,
    file: PathBuf,
    headers: Vec<PathBuf>,
}

fn main() {
    // Read at run time: `env!` would bake in the folder the build script was
    // first compiled in (a copied target/ would embed another tree's kernels).
    let root_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&root_dir);
    let shared = root.join("cuda");
    let ops = root.join("src").join("ops");
    println!("cargo:rerun-if-changed={}", shared.display());
    println!("cargo:rerun-if-changed={}", ops.display());
    let mut files: Vec<(PathBuf, Vec<PathBuf>)> = files_with(&shared, "cu")
        .into_iter()
        .map(|f| (f, Vec::new()))
        .collect();
    let mut op_dirs: Vec<PathBuf> = std::fs::read_dir(&ops)
        .expect("src/ops folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    op_dirs.sort();
    for dir in &op_dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        let headers = files_with(dir, "cuh");
        files.extend(
            files_with(dir, "cu")
                .into_iter()
                .map(|f| (f, headers.clone())),
        );
    }

    let mut families: Vec<Family> = files
        .into_iter()
        .map(|(p, headers)| {
            let stem = p
                .file_stem()
                .expect("a .cu file has a stem")
                .to_string_lossy()
                .into_owned();
            assert!(
                !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}: a kernel family's file name must be an identifier",
                p.display()
            );
            Family {
                name: stem,
                file: p,
                headers,
            }
        })
        .collect();
    families.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in families.windows(2) {
        assert!(
            pair[0].name != pair[1].name,
            "two kernel families named `{}`: {} and {}",
            pair[0].name,
            pair[0].file.display(),
            pair[1].file.display()
        );
    }

    let mut out = String::from(
        "/// (kernel family, CUDA source) for every `.cu` of `cuda/` and `src/ops/*/`,\n\
         /// `cuda/common.cuh` prepended; sorted by family.\n\
         pub const CUDA_SOURCES: &[(&str, &str)] = &[\n",
    );
    let include = |p: &Path| format!("include_str!({:?}), ", p.display().to_string());
    for fam in &families {
        println!("cargo:rerun-if-changed={}", fam.file.display());
        let mut parts = include(&shared.join("common.cuh"));
        for h in &fam.headers {
            println!("cargo:rerun-if-changed={}", h.display());
            parts.push_str(&include(h));
        }
        parts.push_str(&include(&fam.file));
        writeln!(out, "    ({:?}, concat!({parts})),", fam.name).expect("write to String");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("cuda_sources.rs");
    std::fs::write(dest, out).expect("write cuda_sources.rs");
}
