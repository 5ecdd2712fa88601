//! `dasnas measures`: the training-free measures `score --measures`
//! computes, one per line: name, other names, the pass it needs, what it
//! is and the implementation it follows.

use dasnas::error::Result;

/// Runs `dasnas measures`.
pub fn run() -> Result<()> {
    let all = dasnas::measures::ALL;
    // Columns as wide as their longest entry.
    let name_w = all.iter().map(|m| m.name.len()).max().unwrap_or(0).max(4);
    let also_w = all
        .iter()
        .map(|m| m.aliases.join(",").len())
        .max()
        .unwrap_or(0)
        .max(4);
    let pass_w = all
        .iter()
        .map(|m| m.need.label().len())
        .max()
        .unwrap_or(0)
        .max(4);
    println!(
        "{:<name_w$} {:<also_w$} {:<pass_w$} what (follows)",
        "name", "also", "pass"
    );
    for m in all {
        println!(
            "{:<name_w$} {:<also_w$} {:<pass_w$} {} ({})",
            m.name,
            m.aliases.join(","),
            m.need.label(),
            m.summary,
            m.reference
        );
    }
    Ok(())
}
