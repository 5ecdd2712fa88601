//! Embeds the CUDA sources of `cuda/` into the crate: every `cuda/<name>.cu`
//! becomes one entry of `CUDA_SOURCES` (name, full source with `common.cuh`
//! prepended), so a binary carries its kernels and NVRTC compiles them at run
//! time for whatever GPU it finds. The kernels include no system header.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("cuda/ folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cu"))
        .collect();
    names.sort();
    let mut out = String::from(
        "/// (kernel family, CUDA source) for every `cuda/*.cu`, `common.cuh` prepended.\n\
         pub const CUDA_SOURCES: &[(&str, &str)] = &[\n",
    );
    for n in &names {
        println!("cargo:rerun-if-changed={}", dir.join(n).display());
        let stem = n.trim_end_matches(".cu");
        writeln!(
            out,
            "    (\"{stem}\", concat!(include_str!(\"{common}\"), include_str!(\"{file}\"))),",
            common = dir.join("common.cuh").display(),
            file = dir.join(n).display()
        )
        .expect("write to String");
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("cuda_sources.rs");
    std::fs::write(dest, out).expect("write cuda_sources.rs");
}
