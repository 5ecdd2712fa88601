//! `dasnas measures`: the training-free measures `score --measures`
//! computes, one per line: name, other names, the pass it needs, what it
//! is and the implementation it follows.

use dasnas::error::Result;

/// Runs `dasnas measures`.
pub fn run() -> Result<()> {
    println!(
        "{:<10} {:<13} {:<12} what (follows)",
        "name", "also", "pass"
    );
    for m in dasnas::measures::ALL {
        let pass = m.need.label();
        println!(
            "{:<10} {:<13} {:<12} {} ({})",
            m.name,
            m.aliases.join(","),
            pass,
            m.summary,
            m.reference
        );
    }
    Ok(())
}
