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
        let pass = match m.need {
            dasnas::measures::Need::ScoringPass => "scoring",
            dasnas::measures::Need::Weights => "weights",
            dasnas::measures::Need::CrossEntropy => "ce-grad",
            dasnas::measures::Need::LayerTaps => "ce-grad+taps",
            dasnas::measures::Need::Halves => "ce-halves",
            dasnas::measures::Need::InputJacobian => "input-jac",
        };
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
