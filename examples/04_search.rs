//! NASWOT's random search on NAS-Bench-201: five runs, each sampling 10
//! cells and keeping the best by WOT, scored on the fly on the CPU.
//!
//! ```sh
//! cargo run --release --example 04_search
//! ```
//!
//! With a ground-truth table (`dasnas search --truth`), the report also
//! gives the chosen cells' accuracy; see docs/cli.md, "dasnas search".

use dasnas::eval::fit::Rule;
use dasnas::eval::search::{search, Evaluator, SearchOptions, Strategy};
use dasnas::run::RunOptions;
use dasnas::runtime::DeviceKind;
use dasnas::space::{Space, SpaceOptions};

fn main() -> dasnas::Result<()> {
    let mut options = RunOptions::new(Space::NB201);
    options.device = DeviceKind::Cpu;
    options.batch = Some(32);
    let mut run = options.open()?;
    let mut evaluator = Evaluator::new(Default::default(), Some(run.scorer()), 0);
    let search_options = SearchOptions {
        space: Space::NB201,
        n: 10,
        runs: 5,
        rule: Rule::parse("wot")?,
        seed: 0,
        strategy: Strategy::Random,
        from_cache: false,
        space_options: SpaceOptions::new(),
    };
    let report = search(&search_options, &mut evaluator, &[], None)?;
    print!("{report}");
    Ok(())
}
