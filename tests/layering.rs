//! The crate's layers, checked on its sources.
//!
//! [`LAYERS`] is the whole order, bottom first (ARCHITECTURE.md draws the
//! same diagram). A module may import from its own layer's module, from
//! itself, and from layers below; never from a layer above, and never
//! from another module of its own layer (peers stay independent, so two
//! peers cannot close a circle). Inside every module, the files and
//! folders beside each other must not import each other in a circle
//! either (`exec/cpu.rs` ↔ `exec/budget.rs` would fail).
//!
//! What counts as an import: every path of a `use` declaration and every
//! `crate::…`, `super::…` or `self::…` path in code, resolved to the
//! module it names (a root re-export such as `crate::Tensor` resolves to
//! the module it re-exports from). Comments, doc comments, string
//! literals, `tests.rs` files and `#[cfg(test)]` items are left out:
//! tests may reach across layers. The binary (`src/main.rs`, `src/cli/`)
//! sits above every layer and is not checked here; it uses the library
//! through `dasnas::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first; each a name and its top-level modules.
const LAYERS: &[(&str, &[&str])] = &[
    ("errors", &["error"]),
    ("values and the generator", &["tensor", "rng"]),
    ("parameters, score math", &["param", "score"]),
    (
        "runtime: memory, CUDA device, NVRTC, emulation, budgets",
        &["runtime"],
    ),
    ("data: image batches", &["data"]),
    ("ops", &["ops"]),
    ("networks", &["net"]),
    (
        "spaces; execution: plans, walker, runners, lanes",
        &["space", "exec"],
    ),
    ("training", &["train"]),
    ("training-free measures", &["measures"]),
    ("cell lists", &["io", "select"]),
    ("the scorer", &["scorer"]),
    ("result lines and run stamps", &["results"]),
    ("scoring runs: options, open runs, result files", &["run"]),
    (
        "tools: evaluation, training bench, benchmarks",
        &["eval", "dtb", "bench"],
    ),
    ("test support (tests only)", &["testing"]),
];

fn src_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("source folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `src/exec/cpu.rs` → `[exec, cpu]`,
/// `src/exec/mod.rs` → `[exec]`, `src/lib.rs` → `[]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_root()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// `text` with comments, string and char literals blanked (newlines kept,
/// so line numbers stay right).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |s: &[u8], out: &mut String| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&rest[..end], &mut out);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0usize;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&rest[..j], &mut out);
            i += j;
        } else if rest[0] == b'"' || rest.starts_with(b"r\"") || rest.starts_with(b"r#") {
            // A string literal, raw or not.
            let (hashes, start) = if rest[0] == b'r' {
                let h = rest[1..].iter().take_while(|&&c| c == b'#').count();
                (h, 2 + h)
            } else {
                (0, 1)
            };
            if rest[0] == b'r' && rest.get(1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let mut j = start;
            while j < rest.len() {
                if hashes == 0 && rest[0] != b'r' && rest[j] == b'\\' {
                    j += 2;
                    continue;
                }
                if rest[j] == b'"' && rest[j + 1..].iter().take(hashes).all(|&c| c == b'#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            let j = j.min(rest.len());
            blank(&rest[..j], &mut out);
            i += j;
        } else if rest[0] == b'\'' {
            // A char literal ('a', '\n', '\u{1F600}'), not a lifetime.
            let lit = if rest.get(1) == Some(&b'\\') {
                // An escape: the backslash, one char, then up to the quote.
                rest.get(3..)
                    .and_then(|r| r.iter().position(|&c| c == b'\''))
                    .map(|p| p + 4)
            } else {
                text[i + 1..].chars().next().and_then(|c| {
                    let n = c.len_utf8();
                    (rest.get(1 + n) == Some(&b'\'')).then_some(n + 2)
                })
            };
            match lit {
                Some(n) => {
                    blank(&rest[..n], &mut out);
                    i += n;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `code` with every `#[cfg(test)]` item blanked (an item ends at its
/// `;` or its matching `}`).
fn without_test_items(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let text: String = out.iter().collect();
    let mut from = 0;
    while let Some(pos) = text[from..].find("#[cfg(test)]") {
        let start = from + pos;
        let chars_before = text[..start].chars().count();
        let after = &text[start..];
        let semi = after.find(';');
        let brace = after.find('{');
        let end_byte = match (semi, brace) {
            (Some(s), Some(b)) if s < b => start + s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = text.len();
                for (k, c) in text[start + b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = start + b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (Some(s), None) => start + s + 1,
            (None, None) => text.len(),
        };
        let n = text[start..end_byte].chars().count();
        for c in out.iter_mut().skip(chars_before).take(n) {
            if *c != '\n' {
                *c = ' ';
            }
        }
        from = end_byte;
    }
    out.into_iter().collect()
}

/// The paths of a `use` tree: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`,
/// `a::c::e` (an `as` rename dropped).
fn expand_use(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        for part in split_top(inner) {
            expand_use(prefix, &part, out);
        }
        return;
    }
    if let Some(open) = tree.find("::{") {
        let mut p = prefix.to_vec();
        p.extend(
            tree[..open]
                .split("::")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
        expand_use(&p, &tree[open + 2..], out);
        return;
    }
    // `a::b as c` is `a::b`; `a::*` is the module `a`.
    let name = tree.split(" as ").next().unwrap_or(tree);
    let name = name.trim_end_matches('*').trim_end_matches("::");
    let mut p = prefix.to_vec();
    p.extend(
        name.split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    out.push(p);
}

/// The comma-separated parts of a brace group, nested groups kept whole.
fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

/// One import: the line it is on and the path as written.
struct Import {
    line: usize,
    path: Vec<String>,
}

/// Every path `code` uses: `use` trees and `crate::`/`super::`/`self::`
/// paths in expressions and types.
fn imports(code: &str) -> Vec<Import> {
    let line_of = |byte: usize| code[..byte].matches('\n').count() + 1;
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // `use` declarations (possibly over several lines).
    let mut from = 0;
    while let Some(pos) = code[from..].find("use ") {
        let at = from + pos;
        from = at + 4;
        if at > 0 && (ident(bytes[at - 1]) || bytes[at - 1] == b':') {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let tree = code[at + 4..at + end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut paths = Vec::new();
        expand_use(&[], &tree, &mut paths);
        for path in paths {
            out.push(Import {
                line: line_of(at),
                path,
            });
        }
    }
    // Paths in code.
    for anchor in ["crate::", "super::", "self::", "$crate::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(anchor) {
            let at = from + pos;
            from = at + anchor.len();
            if at > 0 && (ident(bytes[at - 1]) || bytes[at - 1] == b':') && anchor != "$crate::" {
                continue;
            }
            let path: Vec<String> = code[at..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('$', ""))
                .collect();
            out.push(Import {
                line: line_of(at),
                path,
            });
        }
    }
    out
}

/// The crate's top-level modules and its root re-exports (`pub use
/// a::b::Item;` → `Item` → `a`), read from `src/lib.rs`.
fn root_items() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let lib = std::fs::read_to_string(src_root().join("lib.rs")).expect("lib.rs");
    let code = code_only(&lib);
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for stmt in code.split(';') {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        let Some(k) = words.iter().position(|w| *w == "mod" || *w == "use") else {
            continue;
        };
        if words[k] == "mod" {
            if let Some(name) = words.get(k + 1) {
                modules.insert(name.to_string());
            }
        } else {
            let tree = words[k + 1..].join(" ");
            let mut paths = Vec::new();
            expand_use(&[], &tree, &mut paths);
            for p in paths {
                if let (Some(first), Some(last)) = (p.first(), p.last()) {
                    reexports.insert(last.clone(), first.clone());
                }
            }
        }
    }
    (modules, reexports)
}

/// `path` (as written in the file of module `here`) made absolute: the
/// module path it names, from the crate root. `None` for paths of other
/// crates.
fn resolve(here: &[String], path: &[String], modules: &BTreeSet<String>) -> Option<Vec<String>> {
    let first = path.first()?;
    match first.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "super" | "self" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while let Some(head) = rest.first() {
                match head.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        // `use` of a top-level module by its bare name (2015-style or a
        // `use crate::{a, b}` already expanded) stays with other crates.
        _ => {
            let _ = modules;
            None
        }
    }
}

/// Every import of the library's sources, resolved: (file, line, module of
/// the file, target module path).
fn resolved_imports() -> Vec<(PathBuf, usize, Vec<String>, Vec<String>)> {
    let (modules, reexports) = root_items();
    let mut files = Vec::new();
    rust_files(&src_root(), &mut files);
    let mut out = Vec::new();
    for f in files {
        let here = module_of(&f);
        let binary = f.ends_with("main.rs") || here.first().is_some_and(|m| m == "cli");
        if binary || f.file_name().is_some_and(|n| n == "tests.rs") || here.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable source");
        let code = without_test_items(&code_only(&text));
        for imp in imports(&code) {
            let Some(mut target) = resolve(&here, &imp.path, &modules) else {
                continue;
            };
            // A root re-export names the module it comes from.
            if let Some(first) = target.first() {
                if !modules.contains(first) {
                    match reexports.get(first) {
                        Some(m) => target = vec![m.clone()],
                        None => continue,
                    }
                }
            }
            if !target.is_empty() {
                out.push((f.clone(), imp.line, here.clone(), target));
            }
        }
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

#[test]
fn every_module_has_a_layer() {
    let (modules, _) = root_items();
    let missing: Vec<&String> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "top-level modules without a layer in tests/layering.rs: {missing:?}"
    );
    let declared: Vec<&str> = LAYERS
        .iter()
        .flat_map(|(_, ms)| ms.iter().copied())
        .collect();
    let gone: Vec<&&str> = declared.iter().filter(|m| !modules.contains(**m)).collect();
    assert!(
        gone.is_empty(),
        "layers name modules that do not exist: {gone:?}"
    );
}

#[test]
fn no_import_points_up_or_across() {
    let mut bad = Vec::new();
    for (file, line, here, target) in resolved_imports() {
        let (from, to) = (&here[0], &target[0]);
        if from == to {
            continue;
        }
        let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else {
            continue;
        };
        if lt > lf {
            bad.push(format!(
                "{}:{line}: `{from}` ({}) imports `{}` from a layer above ({})",
                file.display(),
                LAYERS[lf].0,
                target.join("::"),
                LAYERS[lt].0
            ));
        } else if lt == lf {
            bad.push(format!(
                "{}:{line}: `{from}` imports `{}` from its peer `{to}` (one layer: {})",
                file.display(),
                target.join("::"),
                LAYERS[lf].0
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layer order:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_circle_between_neighbouring_modules() {
    // Edges between the children of one module: `parent::a` imports
    // `parent::b` (from anywhere inside `a`, of anything inside `b`).
    let mut edges: BTreeMap<(Vec<String>, String, String), (PathBuf, usize)> = BTreeMap::new();
    for (file, line, here, target) in resolved_imports() {
        let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
        if common < here.len() && common < target.len() {
            let key = (
                here[..common].to_vec(),
                here[common].clone(),
                target[common].clone(),
            );
            edges.entry(key).or_insert((file, line));
        }
    }
    let mut by_parent: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (parent, a, b) in edges.keys() {
        by_parent
            .entry(parent.clone())
            .or_default()
            .entry(a.clone())
            .or_default()
            .insert(b.clone());
    }
    let mut circles = Vec::new();
    for (parent, adj) in &by_parent {
        // A circle is a path from b back to a for some edge a → b.
        for (a, outs) in adj {
            for b in outs {
                let mut seen = BTreeSet::new();
                let mut stack = vec![vec![b.clone()]];
                while let Some(path) = stack.pop() {
                    let last = path.last().expect("non-empty").clone();
                    if last == *a {
                        let mut names = vec![a.clone()];
                        names.extend(path);
                        let proof: Vec<String> = names
                            .windows(2)
                            .map(|w| {
                                let (f, l) = &edges[&(parent.clone(), w[0].clone(), w[1].clone())];
                                format!("{} → {} ({}:{l})", w[0], w[1], f.display())
                            })
                            .collect();
                        circles.push(format!(
                            "in `{}`: {}",
                            if parent.is_empty() {
                                "crate".into()
                            } else {
                                parent.join("::")
                            },
                            proof.join(", ")
                        ));
                        break;
                    }
                    if !seen.insert(last.clone()) {
                        continue;
                    }
                    for next in adj.get(&last).into_iter().flatten() {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push(p);
                    }
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    // Comments, strings and test items are not imports; use trees expand.
    let code = without_test_items(&code_only(
        "use crate::a::{b, c::{d as e}};\n// use crate::x;\nlet s = \"crate::y\";\n\
         #[cfg(test)]\nmod tests { use crate::z; }\nfn f() { super::w::g(); let c = '\"'; let q = '\\''; }\n\
         fn g<'a>(x: &'a str) -> &'a str { crate::v::h(x) }\n",
    ));
    let found: Vec<String> = imports(&code).iter().map(|i| i.path.join("::")).collect();
    assert!(found.contains(&"crate::a::b".to_string()), "{found:?}");
    assert!(found.contains(&"crate::a::c::d".to_string()), "{found:?}");
    assert!(found.contains(&"super::w::g".to_string()), "{found:?}");
    assert!(found.contains(&"crate::v::h".to_string()), "{found:?}");
    for absent in ["crate::x", "crate::y", "crate::z"] {
        assert!(!found.iter().any(|p| p == absent), "{absent} in {found:?}");
    }
    let here = vec!["exec".to_string(), "cpu".to_string()];
    let up = resolve(&here, &["super".into(), "budget".into()], &BTreeSet::new());
    assert_eq!(up, Some(vec!["exec".to_string(), "budget".to_string()]));
    // The whole crate resolves to a good number of imports, so a parser
    // that silently finds nothing fails here.
    assert!(
        resolved_imports().len() > 500,
        "{}",
        resolved_imports().len()
    );
}
