//! `include/dasnas.h` is what cbindgen makes of `src/lib.rs` today: the
//! committed header can never drift from the library. Regenerate it with
//! `DASNAS_BLESS=1 cargo test --release -p dasnas-c --test header`.

use std::path::Path;

#[test]
fn header_matches_the_source() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("bindings/c/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    let path = crate_dir.join("../../include/dasnas.h");
    if std::env::var_os("DASNAS_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("writing include/dasnas.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/dasnas.h differs from what bindings/c/src/lib.rs generates; regenerate it with \
         DASNAS_BLESS=1 cargo test --release -p dasnas-c --test header\n--- generated ---\n{generated}"
    );
}
