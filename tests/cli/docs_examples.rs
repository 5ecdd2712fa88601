//! The documentation's examples run as written, and its links resolve.
//!
//! The contract (also stated in `docs/testing.md`):
//!
//! * A fenced block whose info string is `sh` is executed; a block whose
//!   info string contains `no-run` (`sh no-run`: installs, the test
//!   command, cluster jobs, GPU-only commands) is only shown. Output is
//!   shown in `text` blocks, which never run.
//! * The `sh` blocks of one page (README.md, docs/*.md) run in order, each
//!   with `bash -euo pipefail`, all in one fresh temporary directory, with
//!   the directory of the `dasnas` binary this test was built with first on
//!   `PATH`, and `DASNAS_DATA` set to the data folder (`$DASNAS_DATA` when
//!   it names a folder, else `../shared/data` beside the repository) when
//!   there is one. A block that uses `DASNAS_DATA` while there is none is
//!   skipped, with a `SKIPPED` line on the terminal naming the page and the
//!   block's line.
//! * Python blocks are run by `bindings/python/tests/test_docs.py`; Rust
//!   blocks of `docs/rust.md` are doctests of the library.
//! * Every relative link (`[text](docs/x.md)`, `[text](x.md#anchor)`,
//!   images) points at a file that exists, and an anchor into a Markdown
//!   file names one of its headings (GitHub's heading ids).
//! * `docs/c.md` shows `examples/03_score_from_c.c`, the C program the
//!   C library's tests compile and run, verbatim.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A block that runs longer than this fails (the examples take seconds).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, then every `docs/*.md` by name.
fn pages() -> Vec<PathBuf> {
    let readme = repo().join("README.md");
    assert!(readme.is_file(), "{} is missing", readme.display());
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("reading the docs/ folder")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    let mut pages = vec![readme];
    pages.extend(docs);
    pages
}

/// A page's path relative to the repository, for messages.
fn name(page: &Path) -> String {
    page.strip_prefix(repo())
        .unwrap_or(page)
        .display()
        .to_string()
}

fn read(page: &Path) -> String {
    fs::read_to_string(page).unwrap_or_else(|e| panic!("reading {}: {e}", page.display()))
}

/// One fenced code block.
struct Block {
    /// The info string after the opening fence (`sh`, `sh no-run`, `text`, …).
    info: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// The content, every line ending in `\n`.
    text: String,
}

impl Block {
    /// The first word of the info string: the block's language.
    fn lang(&self) -> &str {
        self.info
            .split(|c: char| c.is_whitespace() || c == ',')
            .find(|w| !w.is_empty())
            .unwrap_or("")
    }

    /// An `sh` block to execute.
    fn runs(&self) -> bool {
        self.lang() == "sh" && !self.info.contains("no-run")
    }
}

/// An opening or closing fence: its character, its length and the rest of
/// the line, or `None`. At most three spaces of indentation (CommonMark).
fn fence(line: &str) -> Option<(char, usize, usize, &str)> {
    let body = line.trim_start_matches(' ');
    let indent = line.len() - body.len();
    if indent > 3 {
        return None;
    }
    let ch = body.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let len = body.chars().take_while(|&c| c == ch).count();
    if len < 3 {
        return None;
    }
    Some((ch, len, indent, &body[len..]))
}

/// The fenced code blocks of a Markdown page, in order. Panics on a fence
/// that is never closed (naming the page and line).
fn blocks(page: &str, md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    // (fence char, fence length, indentation, block)
    let mut open: Option<(char, usize, usize, Block)> = None;
    for (i, line) in md.lines().enumerate() {
        match open.take() {
            None => {
                if let Some((ch, len, indent, rest)) = fence(line) {
                    if ch == '`' && rest.contains('`') {
                        continue; // inline code, not a fence
                    }
                    let block = Block {
                        info: rest.trim().to_string(),
                        line: i + 1,
                        text: String::new(),
                    };
                    open = Some((ch, len, indent, block));
                }
            }
            Some((ch, len, indent, mut block)) => {
                let closes = fence(line)
                    .is_some_and(|(c, l, _, rest)| c == ch && l >= len && rest.trim().is_empty());
                if closes {
                    out.push(block);
                } else {
                    // Content loses up to the opening fence's indentation.
                    let strip = line.len() - line.trim_start_matches(' ').len();
                    block.text.push_str(&line[strip.min(indent)..]);
                    block.text.push('\n');
                    open = Some((ch, len, indent, block));
                }
            }
        }
    }
    if let Some((_, _, _, block)) = open {
        panic!(
            "{page}: the code block opened at line {} is never closed",
            block.line
        );
    }
    out
}

/// The data folder, if there is one: `$DASNAS_DATA` when it names a
/// folder, else `../shared/data` beside the repository.
fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DASNAS_DATA") {
        let d = PathBuf::from(d);
        if d.is_dir() {
            return Some(d);
        }
    }
    let d = repo().join("../shared/data");
    d.is_dir().then(|| d.canonicalize().unwrap_or(d))
}

/// `PATH` with the directory of this build's `dasnas` binary first.
fn path_with_binary() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_dasnas"));
    let dir = bin.parent().expect("the binary's folder").to_path_buf();
    let old = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir).chain(std::env::split_paths(&old));
    std::env::join_paths(dirs).expect("PATH entries without ':'")
}

/// A fresh, empty scratch folder for one page.
fn scratch(page: &Path) -> PathBuf {
    let stem = page
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("dasnas-docs-{}-{stem}-{nanos}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("work")).expect("creating the scratch folder");
    fs::create_dir_all(dir.join("logs")).expect("creating the scratch folder");
    dir
}

/// Waits for `child` (the leader of its own process group) at most
/// `limit`; on timeout kills the whole group and returns `None`.
fn wait_for(mut child: Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() > limit {
            // The block's processes (bash and what it started) share the
            // group whose id is bash's pid.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `n` bytes of a text (on a character boundary).
fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs the `sh` blocks of `page` in order; returns one message per failed
/// block.
fn run_page(page: &Path, data: Option<&Path>) -> Vec<String> {
    let md = read(page);
    let page_name = name(page);
    let runnable: Vec<Block> = blocks(&page_name, &md)
        .into_iter()
        .filter(Block::runs)
        .collect();
    if runnable.is_empty() {
        return Vec::new();
    }
    let root = scratch(page);
    let work = root.join("work");
    let path = path_with_binary();
    let mut failures = Vec::new();
    for (k, block) in runnable.iter().enumerate() {
        if data.is_none() && block.text.contains("DASNAS_DATA") {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {page_name} block at line {}: it uses $DASNAS_DATA, and there is no \
                 data folder (../shared/data is absent; it did not run)",
                block.line
            );
            continue;
        }
        let out_path = root.join("logs").join(format!("{k}.stdout"));
        let err_path = root.join("logs").join(format!("{k}.stderr"));
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", block.text.as_str()])
            .current_dir(&work)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("creating a log file"))
            .stderr(File::create(&err_path).expect("creating a log file"));
        match data {
            Some(d) => cmd.env("DASNAS_DATA", d),
            None => cmd.env_remove("DASNAS_DATA"),
        };
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let started = Instant::now();
        let status = cmd
            .spawn()
            .and_then(|child| wait_for(child, BLOCK_TIMEOUT))
            .unwrap_or_else(|e| panic!("running bash for {page_name} line {}: {e}", block.line));
        let secs = started.elapsed().as_secs_f64();
        println!("{page_name} block at line {}: {secs:.2} s", block.line);
        let what = match status {
            Some(s) if s.success() => continue,
            Some(s) => format!("failed ({s})"),
            None => format!("ran past {} s and was killed", BLOCK_TIMEOUT.as_secs()),
        };
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        failures.push(format!(
            "{page_name}: the sh block at line {} {what} after {secs:.1} s \
             (in {}):\n--- block\n{}--- stderr\n{}\n--- stdout (end)\n{}",
            block.line,
            work.display(),
            block.text,
            stderr.trim_end(),
            tail(&stdout, 2000).trim_end()
        ));
    }
    if failures.is_empty() {
        let _ = fs::remove_dir_all(&root);
    }
    failures
}

#[test]
fn sh_examples_run() {
    let data = data_dir();
    let mut failures = Vec::new();
    for page in pages() {
        failures.extend(run_page(&page, data.as_deref()));
    }
    assert!(
        failures.is_empty(),
        "{} documentation example(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `line` without its inline code spans (text between backtick runs).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].chars().take_while(|&c| c == '`').count();
        let ticks = &rest[start..start + run];
        let after = &rest[start + run..];
        match after.find(ticks) {
            Some(end) => rest = &after[end + run..],
            None => {
                // An unmatched run is literal text.
                out.push_str(ticks);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The lines of a page outside fenced code blocks, with their 1-based
/// numbers.
fn prose_lines(md: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, line) in md.lines().enumerate() {
        match (open, fence(line)) {
            (None, Some((ch, len, _, rest))) if !(ch == '`' && rest.contains('`')) => {
                open = Some((ch, len));
            }
            (Some((ch, len)), Some((c, l, _, rest)))
                if c == ch && l >= len && rest.trim().is_empty() =>
            {
                open = None;
            }
            (None, _) => out.push((i + 1, line)),
            (Some(_), _) => {}
        }
    }
    out
}

/// The link targets of a page, `(line, target)`, outside code.
fn links(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line_no, line) in prose_lines(md) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let mut target = after[..end].trim();
            // A title after the target: `(x.md "title")`.
            if let Some(sp) = target.find(char::is_whitespace) {
                target = &target[..sp];
            }
            let target = target.trim_start_matches('<').trim_end_matches('>');
            if !target.is_empty() {
                out.push((line_no, target.to_string()));
            }
            rest = &after[end.min(after.len())..];
        }
    }
    out
}

/// GitHub's id of a heading: lower case, letters, digits, `-` and `_`
/// kept, spaces made `-`, everything else dropped.
fn slug(heading: &str) -> String {
    let mut s = String::new();
    for c in heading.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            s.extend(c.to_lowercase());
        } else if c == ' ' {
            s.push('-');
        }
    }
    s
}

/// The ids of a page's headings (`#` … `######`), duplicates numbered as
/// GitHub numbers them (`x`, `x-1`, `x-2`).
fn anchors(md: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for (_, line) in prose_lines(md) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let text = line[hashes..].trim().trim_end_matches('#').trim();
        let base = slug(text);
        let n = seen.entry(base.clone()).or_insert(0);
        let id = if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        *n += 1;
        out.insert(id);
    }
    out
}

#[test]
fn relative_links_resolve() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let md = read(&page);
        for (line, target) in links(&md) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file_part, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if file_part.is_empty() {
                page.clone()
            } else {
                page.parent().expect("a page's folder").join(file_part)
            };
            if !file.exists() {
                bad.push(format!(
                    "{}:{line}: `{target}`: {} does not exist",
                    name(&page),
                    file.display()
                ));
                continue;
            }
            if let Some(anchor) = anchor {
                if file.extension().is_some_and(|x| x == "md")
                    && !anchors(&read(&file)).contains(anchor)
                {
                    bad.push(format!(
                        "{}:{line}: `{target}`: {} has no heading with the id `{anchor}`",
                        name(&page),
                        name(&file)
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no relative link found: is the link parser broken?"
    );
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn c_page_shows_the_tested_program() {
    let program = read(&repo().join("examples/03_score_from_c.c"));
    let page = repo().join("docs/c.md");
    let shown = blocks("docs/c.md", &read(&page))
        .into_iter()
        .any(|b| b.lang() == "c" && b.text == program);
    assert!(
        shown,
        "docs/c.md must show examples/03_score_from_c.c verbatim in a ```c block \
         (the program the C library's tests compile and run)"
    );
}

#[test]
fn the_parsers_agree_with_themselves() {
    let md = "# A `b` c\n\n```sh\necho '# not a heading'\n```\n\n## A `b` c\n\
              see [x](y.md#a-b-c) and `[no](link.md)`\n~~~text\n[no](z.md)\n~~~\n";
    let bs = blocks("test", md);
    assert_eq!(bs.len(), 2);
    assert_eq!(bs[0].lang(), "sh");
    assert!(bs[0].runs());
    assert_eq!(bs[0].text, "echo '# not a heading'\n");
    assert_eq!(bs[0].line, 3);
    assert_eq!(bs[1].lang(), "text");
    let ids = anchors(md);
    assert!(ids.contains("a-b-c") && ids.contains("a-b-c-1"), "{ids:?}");
    assert_eq!(links(md), vec![(8, "y.md#a-b-c".to_string())]);
    assert_eq!(
        slug("Fast training (measured, CPU)"),
        "fast-training-measured-cpu"
    );
    assert_eq!(
        slug("`--count`: graph × functional"),
        "--count-graph--functional"
    );
    let no_run = Block {
        info: "sh no-run".into(),
        line: 1,
        text: String::new(),
    };
    assert!(!no_run.runs());
}
