//! Memory budget of scoring: how many bytes one cell needs at a batch size,
//! and the check that refuses a batch that cannot fit, before anything big
//! is allocated.
//!
//! Why a check at all: the B×B matrices grow with the square of the batch
//! (at B = 100,000 one u64 matrix is 80 GB) and the activations linearly,
//! and a host allocation that fails aborts the process (Rust's global
//! allocator does not return an error), so the only way to fail with an
//! `Err` that names the batch is to refuse before allocating.
//!
//! What one cell holds (the plan's layouts are in [`crate::device::plan`]):
//! * the input batch: f32 `[B, h, w, c]`;
//! * activations: on a GPU the plan's arena, f32 `[arena_len]`; on the CPU
//!   the host tensors of the arena's regions, which exceed the arena when
//!   the network's tensors have several sizes (see [`cpu_activation_bytes`];
//!   NB201: twice the arena);
//! * codes: u64 `[codes_len]`; BatchNorm scratch: f64 `[stats_len]` and f32
//!   `[saved_len]`; the parameters: f32 `[params_len]`;
//! * the B×B matrices, 8 bytes an entry, [`CPU_PAIRWISE_MATRICES`] of them
//!   at the CPU's peak (H, K_H as integers, K_H as floats, its Cholesky
//!   factor, in `crate::score`), [`GPU_PAIRWISE_MATRICES`] per cell of a GPU
//!   lane's chunk (H and K_H).
//!
//! On the CPU, the pass (activations, codes, H and the two B×B partial sums
//! of the Hamming accumulation) and the log-det (the four matrices, plus the
//! activation buffers the thread keeps for the next cell) do not overlap;
//! the estimate is the larger of the two. On a GPU every buffer of a lane
//! lives as long as the lane, so the estimate is their sum.

use super::plan::{Plan, Step};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// B×B matrices of 8 bytes an entry the CPU backend holds at its peak: H,
/// K_H (u64, `kernel_from_hamming`), K_H as f64 and its Cholesky factor
/// (`logdet_of_kernel`).
pub const CPU_PAIRWISE_MATRICES: u64 = 4;

/// B×B matrices of 8 bytes an entry the CPU backend holds during the pass:
/// H and the two matrices of partial sums a Hamming accumulation builds
/// before adding them to H.
const CPU_PASS_MATRICES: u64 = 3;

/// B×B matrices of 8 bytes an entry per cell of a GPU lane's chunk: H (u64)
/// and K_H (f64), each `[CHUNK][B][B]`.
pub const GPU_PAIRWISE_MATRICES: u64 = 2;

/// The estimated bytes of one cell's scoring at the plan's batch, by part.
/// Sizes saturate at `u64::MAX` rather than wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellMemory {
    /// B.
    pub batch: usize,
    /// The input batch.
    pub input: u64,
    /// Activations: the arena on a GPU, its host tensors on the CPU.
    pub arena: u64,
    /// Sign-bit codes.
    pub codes: u64,
    /// Parameters and BatchNorm scratch.
    pub other: u64,
    /// The B×B matrices held at once.
    pub pairwise: u64,
    /// The estimate: the most held at once.
    pub total: u64,
}

/// Bytes of the host tensors the CPU backend allocates in one pass over
/// `plan`, following its buffer rules (`crate::device::cpu`): one tensor
/// per live arena region; a tensor goes to a free list only when a later
/// step writes over its region, and a step takes a free buffer of exactly
/// its length or allocates one. Buffers of one length freed while tensors
/// of another length are needed stay allocated, which is why this exceeds
/// the arena (NB201's three tensor sizes: about twice). Nothing is
/// released during a pass, so the total allocated is the peak.
pub fn cpu_activation_bytes(plan: &Plan) -> u64 {
    let mut live: BTreeMap<usize, usize> = BTreeMap::new(); // start → length
    let mut free: HashMap<usize, usize> = HashMap::new(); // length → buffers
    let mut total = 0u64;
    for step in &plan.steps {
        // An in-place step writes into its input's tensor; a packing step
        // allocates no activation.
        let Step::Node(s) = step else { continue };
        if s.in_place.is_some() {
            continue;
        }
        let r = &s.out;
        let evicted: Vec<usize> = live
            .range(..r.end)
            .rev()
            .take_while(|(&start, &len)| start + len > r.start)
            .map(|(&start, _)| start)
            .collect();
        for start in evicted {
            if let Some(len) = live.remove(&start) {
                *free.entry(len).or_default() += 1;
            }
        }
        match free.get_mut(&r.len()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => total = total.saturating_add(bytes(r.len(), 4)),
        }
        live.insert(r.start, r.len());
    }
    total
}

/// `count × size` bytes, saturating.
pub(crate) fn bytes(count: usize, size: u64) -> u64 {
    (count as u64).saturating_mul(size)
}

/// `matrices` B×B matrices of 8-byte entries, saturating.
pub fn pairwise_bytes(batch: usize, matrices: u64) -> u64 {
    bytes(batch, 8)
        .saturating_mul(batch as u64)
        .saturating_mul(matrices)
}

impl CellMemory {
    /// What the CPU backend (`crate::device::cpu`) holds to score one cell
    /// of `plan`: the larger of its pass (input, arena, codes, scratch, H
    /// and the Hamming partial sums) and its log-det (input, the four B×B
    /// matrices, and the idle activation buffers it keeps, at most
    /// [`super::cpu::POOL_MAX_BYTES`]).
    pub fn cpu(plan: &Plan) -> CellMemory {
        let b = plan.batch;
        let input = bytes(b, 4).saturating_mul(plan.input.per_sample() as u64);
        let arena = cpu_activation_bytes(plan);
        let codes = bytes(plan.codes_len, 8);
        let other = bytes(plan.params_len, 4)
            .saturating_add(bytes(plan.stats_len, 8))
            .saturating_add(bytes(plan.saved_len, 4));
        let pass = input
            .saturating_add(arena)
            .saturating_add(codes)
            .saturating_add(other)
            .saturating_add(pairwise_bytes(b, CPU_PASS_MATRICES));
        let pairwise = pairwise_bytes(b, CPU_PAIRWISE_MATRICES);
        let logdet = input
            .saturating_add(pairwise)
            .saturating_add(arena.min(super::cpu::POOL_MAX_BYTES as u64));
        CellMemory {
            batch: b,
            input,
            arena,
            codes,
            other,
            pairwise,
            total: pass.max(logdet),
        }
    }

    /// What one lane of the GPU scorer (`crate::device::cuda::executor`)
    /// holds for a chunk of `chunk` cells like `plan` (every buffer at
    /// once), plus the shared input batch.
    pub fn gpu(plan: &Plan, chunk: usize) -> CellMemory {
        let b = plan.batch;
        let input = bytes(b, 4).saturating_mul(plan.input.per_sample() as u64);
        let arena = bytes(plan.arena_len, 4);
        let codes = bytes(plan.codes_len, 8);
        let other = bytes(plan.params_len, 4)
            .saturating_add(bytes(plan.stats_len, 8))
            .saturating_add(bytes(plan.saved_len, 4));
        let pairwise = pairwise_bytes(b, GPU_PAIRWISE_MATRICES).saturating_mul(chunk as u64);
        CellMemory {
            batch: b,
            input,
            arena,
            codes,
            other,
            pairwise,
            total: input
                .saturating_add(arena)
                .saturating_add(codes)
                .saturating_add(other)
                .saturating_add(pairwise),
        }
    }

    /// Refuses (an [`Error::Arg`] naming the batch, the estimate and what
    /// is available) when the estimate exceeds `available` bytes. With
    /// `available` unknown (`None`), only an estimate no allocation could
    /// ever satisfy (beyond `isize::MAX`) is refused.
    pub fn check(&self, available: Option<u64>) -> Result<()> {
        check_bytes(self.batch, self.total, self.pairwise, available, "about")
    }
}

/// The refusal of [`CellMemory::check`], for a need known only as a lower
/// bound (`qualifier` "at least") or an estimate ("about").
fn check_bytes(
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
/// bound of [`CellMemory::cpu`]). With `pairwise` false (the batch is
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

/// Refuses a CPU scoring of `plan` that cannot fit in host memory
/// ([`CellMemory::cpu`] against [`host_available`]).
pub fn check_host(plan: &Plan) -> Result<()> {
    CellMemory::cpu(plan).check(host_available())
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
    use crate::space::{Arch, Space};

    fn nb201_plan(batch: usize) -> Plan {
        let arch = Arch::parse(
            "nb201".parse::<Space>().unwrap(),
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        )
        .unwrap();
        Plan::new(&arch.network().unwrap(), batch).unwrap()
    }

    #[test]
    fn estimate_of_an_nb201_cell_has_the_right_order_of_magnitude() {
        let b = 128;
        let plan = nb201_plan(b);
        let m = CellMemory::cpu(&plan);
        // The largest NB201 activation: B × 32 × 32 × 16 floats (8 MB at
        // B = 128). The arena holds a few of them at once, not dozens; the
        // CPU's host tensors are at least the arena.
        let largest = (b * 32 * 32 * 16 * 4) as u64;
        let arena = plan.arena_len as u64 * 4;
        assert!(arena >= 2 * largest && arena <= 8 * largest, "{arena}");
        assert!(m.arena >= arena && m.arena <= 3 * arena, "{m:?}");
        assert_eq!(m.input, (b * 32 * 32 * 3 * 4) as u64);
        assert_eq!(m.pairwise, 4 * 8 * (b * b) as u64);
        assert!(
            m.total >= m.arena + m.input && m.total < 3 * (m.arena + m.pairwise),
            "{m:?}"
        );
        // Tens of MB at B = 128.
        assert!(
            (10e6..100e6).contains(&(m.total as f64)),
            "{}",
            human(m.total)
        );

        // Linear in B for the activations, quadratic for the matrices.
        let m2 = CellMemory::cpu(&nb201_plan(2 * b));
        assert!(m2.arena >= 2 * m.arena - 4096 && m2.arena <= 2 * m.arena + 4096);
        assert_eq!(m2.pairwise, 4 * m.pairwise);

        // At B = 100,000 the matrices dominate: 320 GB of a few hundred.
        let big = CellMemory::cpu(&nb201_plan(100_000));
        assert_eq!(human(big.pairwise), "320 GB");
        assert!(big.total > big.pairwise && big.total < 2 * big.pairwise);

        // A GPU lane: H and K_H for each of the chunk's cells.
        let g = CellMemory::gpu(&plan, 8);
        assert_eq!(g.pairwise, 8 * 2 * 8 * (b * b) as u64);
        assert_eq!(g.total, g.input + g.arena + g.codes + g.other + g.pairwise);
    }

    #[test]
    fn check_refuses_with_batch_estimate_and_availability() {
        let m = CellMemory::cpu(&nb201_plan(64));
        assert!(m.check(Some(m.total)).is_ok());
        assert!(m.check(None).is_ok());
        let e = m.check(Some(m.total - 1)).unwrap_err().to_string();
        assert!(e.contains("batch 64 needs about"), "{e}");
        assert!(e.contains("are available; use a smaller --batch"), "{e}");
        // Beyond any address space, refused even when availability is unknown.
        let e = check_host_batch(usize::MAX, 3072, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("batch {}", usize::MAX)), "{e}");
    }

    #[test]
    fn lower_bound_before_the_batch_is_made() {
        // 4 × 8 × 10^10 bytes of matrices and 1.2 GB of input.
        let Some(avail) = host_available() else {
            return;
        };
        if avail > 400_000_000_000 {
            return;
        }
        let e = check_host_batch(100_000, 3072, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "batch 100000 needs at least 321 GB for one cell (its B×B matrices alone: 320 GB)"
            ),
            "{e}"
        );
        // On a GPU the host only holds the input (1.2 GB).
        if avail > 2_000_000_000 {
            check_host_batch(100_000, 3072, false).unwrap();
        }
    }

    #[test]
    fn cpu_scoring_refuses_before_allocating() {
        // Without MemAvailable only the impossible is refused, and 32 TB
        // of matrices is not impossible on paper.
        if host_available().is_none() {
            return;
        }
        // 10^6 one-pixel images: a 12 MB input, but 32 TB of B×B matrices.
        let mut g = crate::net::GraphBuilder::new();
        let x = g.input(1, 1, 3).unwrap();
        let c = g
            .conv(x, crate::ops::conv2d::ConvLayer::new(4, 1), "c")
            .unwrap();
        let r = g.relu(c, "r");
        let graph = g.finish(r).prune();
        let batch = crate::data::gaussian_batch(1_000_000, 1, 0);
        let params = crate::net::init::init_params(&graph, 0);
        let e = crate::device::cpu::relu_codes(&graph, &params, &batch)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "batch 1000000 needs about 32 TB for one cell (its B×B matrices alone: 32 TB)"
            ),
            "{e}"
        );
        assert!(e.contains("are available; use a smaller --batch"), "{e}");
        let e = crate::score_graph(&graph, &batch, 0, 1.0).unwrap_err();
        assert!(e.to_string().contains("batch 1000000"), "{e}");
        let e = crate::Scorer::open(crate::device::DeviceKind::Cpu, batch, 1).unwrap_err();
        assert!(
            e.to_string().contains("batch 1000000 needs at least"),
            "{e}"
        );
    }

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
