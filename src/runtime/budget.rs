//! Memory budgets that need no plan: what the host has available, the
//! size of a scoring batch's input and B×B matrices, and the refusal a
//! batch that cannot fit gets, worded the same for every budget (scoring
//! in [`crate::exec::budget`], training in [`crate::train::budget`]).
//!
//! Why a check at all: the B×B matrices grow with the square of the batch
//! (at B = 100,000 one u64 matrix is 80 GB) and the activations linearly,
//! and a host allocation that fails aborts the process (Rust's global
//! allocator does not return an error), so the only way to fail with an
//! `Err` that names the batch is to refuse before allocating.

use crate::error::{Error, Result};

/// B×B matrices of 8 bytes an entry the CPU backend holds at its peak: H,
/// K_H (u64, `kernel_from_hamming`), K_H as f64 and its Cholesky factor
/// (`logdet_of_kernel`).
pub const CPU_PAIRWISE_MATRICES: u64 = 4;

/// B×B matrices of 8 bytes an entry the CPU backend holds during the pass:
/// H and the two matrices of partial sums a Hamming accumulation builds
/// before adding them to H.
pub const CPU_PASS_MATRICES: u64 = 3;

/// B×B matrices of 8 bytes an entry per cell of a GPU lane's chunk: H (u64)
/// and K_H (f64), each `[CHUNK][B][B]`.
pub const GPU_PAIRWISE_MATRICES: u64 = 2;

/// `count × size` bytes, saturating.
pub fn bytes(count: usize, size: u64) -> u64 {
    (count as u64).saturating_mul(size)
}

/// `matrices` B×B matrices of 8-byte entries, saturating.
pub fn pairwise_bytes(batch: usize, matrices: u64) -> u64 {
    bytes(batch, 8)
        .saturating_mul(batch as u64)
        .saturating_mul(matrices)
}

/// The refusal of [`CellMemory::check`](crate::exec::budget::CellMemory::check), for a need known only as a lower
/// bound (`qualifier` "at least") or an estimate ("about").
pub fn check_bytes(
    batch: usize,
    need: u64,
    pairwise: u64,
    available: Option<u64>,
    qualifier: &str,
) -> Result<()> {
    if fits(need, available) {
        return Ok(());
    }
    Err(too_big(
        batch,
        qualifier,
        need,
        pairwise,
        available,
        "are available",
    ))
}

/// Whether `need` bytes fit in `available` (`None`, unknown: anything an
/// allocation could ever satisfy, up to `isize::MAX`).
pub fn fits(need: u64, available: Option<u64>) -> bool {
    need <= available.unwrap_or(isize::MAX as u64)
}

/// A memory need that is refused, as both budgets (scoring here, training
/// in `crate::train::budget`) word it: `{name} {batch} needs {qualifier}
/// {need} for {unit} (its {part}), {available} {verb}; use a smaller
/// {flag}`.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    /// What the batch is called: "batch", "training batch", a flag.
    pub name: &'a str,
    /// Its size.
    pub batch: usize,
    /// "at least" (a lower bound) or "about" (an estimate).
    pub qualifier: &'a str,
    /// Bytes needed.
    pub need: u64,
    /// What the need is for: "one cell", "one training step".
    pub unit: &'a str,
    /// A named part of the need worth showing, if any.
    pub part: Option<(&'a str, u64)>,
    /// Bytes available (`None`: beyond what the machine can address).
    pub available: Option<u64>,
    /// How they are available: "are available", "are free on the GPU".
    pub verb: &'a str,
    /// The flag that sets the batch.
    pub flag: &'a str,
}

impl Refusal<'_> {
    /// The [`Error::Arg`] saying all that.
    pub fn error(&self) -> Error {
        let have = match self.available {
            Some(a) => format!("{} {}", human(a), self.verb),
            None => "more than this machine can address".into(),
        };
        let part = match self.part {
            Some((what, b)) => format!(" (its {what}: {})", human(b)),
            None => String::new(),
        };
        Error::Arg(format!(
            "{} {} needs {} {} for {}{part}, {have}; use a smaller {}",
            self.name,
            self.batch,
            self.qualifier,
            human(self.need),
            self.unit,
            self.flag,
        ))
    }
}

/// The error of a batch that needs `need` bytes for one cell (`pairwise` of
/// them for the B×B matrices) where `available` are (`None`: beyond what
/// the machine can address); `verb` says how they are available ("are
/// available", "are free on the GPU").
pub fn too_big(
    batch: usize,
    qualifier: &str,
    need: u64,
    pairwise: u64,
    available: Option<u64>,
    verb: &str,
) -> Error {
    Refusal {
        name: "batch",
        batch,
        qualifier,
        need,
        unit: "one cell",
        // Without B×B matrices (a GPU's batch on the host) there is no
        // part worth naming.
        part: (pairwise > 0).then_some(("B×B matrices alone", pairwise)),
        available,
        verb,
        flag: "--batch",
    }
    .error()
}

/// Refuses a CPU scoring batch of `batch` images of `per_sample` values each
/// that cannot fit in host memory, from what is known before any network
/// is planned or the batch made: the input and the B×B matrices (a lower
/// bound of [`CellMemory::cpu`](crate::exec::budget::CellMemory::cpu)). With `pairwise` false (the batch is
/// scored on a GPU) only the input counts.
pub fn check_host_batch(batch: usize, per_sample: usize, pairwise: bool) -> Result<()> {
    let input = bytes(batch, 4).saturating_mul(per_sample as u64);
    let matrices = if pairwise {
        pairwise_bytes(batch, CPU_PAIRWISE_MATRICES)
    } else {
        0
    };
    check_bytes(
        batch,
        input.saturating_add(matrices),
        matrices,
        host_available(),
        "at least",
    )
}

/// Host memory available to a new allocation without swapping:
/// `MemAvailable` of `/proc/meminfo` (Linux 3.14+); `None` elsewhere or when
/// it cannot be read, and then nothing is refused.
pub fn host_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_available(&text)
}

/// The `MemAvailable:` line of `/proc/meminfo` text, in bytes (the file
/// gives kB, i.e. KiB); `None` when the line is missing or malformed.
pub fn meminfo_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut fields = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match (fields.next(), fields.next()) {
        (Some("kB"), None) => Some(value.saturating_mul(1024)),
        (None, None) => Some(value),
        _ => None,
    }
}

/// Bytes in decimal units, two or three significant digits ("161 GB",
/// "1.5 GB", "320 MB").
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 5] = [
        ("PB", 1e15),
        ("TB", 1e12),
        ("GB", 1e9),
        ("MB", 1e6),
        ("kB", 1e3),
    ];
    let b = bytes as f64;
    for (unit, size) in UNITS {
        if b >= size {
            let v = b / size;
            return if v >= 10.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_units() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(meminfo_available(text), Some(23_000_000 * 1024));
        assert_eq!(meminfo_available("MemAvailable: 12\n"), Some(12));
        assert_eq!(meminfo_available("MemAvailable: x kB\n"), None);
        assert_eq!(meminfo_available("MemAvailable: 1 kB 2\n"), None);
        assert_eq!(meminfo_available("MemFree: 1 kB\n"), None);
        assert_eq!(human(80_000_000_000), "80 GB");
        assert_eq!(human(1_500_000_000), "1.5 GB");
        assert_eq!(human(999), "999 bytes");
        assert_eq!(human(u64::MAX), "18447 PB");
    }
}
