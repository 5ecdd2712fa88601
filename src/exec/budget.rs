//! Memory budget of scoring a planned cell: how many bytes one cell needs
//! at a batch size, and the check that refuses a batch that cannot fit,
//! before anything big is allocated (the host-side rules and the wording
//! of a refusal are in [`crate::runtime::budget`]).
//!
//! What one cell holds (the plan's layouts are in [`crate::exec::plan`]):
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
use crate::error::Result;
use crate::runtime::budget::{
    bytes, check_bytes, host_available, pairwise_bytes, CPU_PAIRWISE_MATRICES, CPU_PASS_MATRICES,
    GPU_PAIRWISE_MATRICES,
};
use std::collections::{BTreeMap, HashMap};

/// Most bytes of idle activation buffers a CPU thread keeps between
/// passes ([`super::cpu`] pools them, so the next cell reuses warm pages).
pub const POOL_MAX_BYTES: usize = 512 << 20;

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
/// `plan`, following its buffer rules (`crate::exec::cpu`): one tensor
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

impl CellMemory {
    /// What the CPU backend (`crate::exec::cpu`) holds to score one cell
    /// of `plan`: the larger of its pass (input, arena, codes, scratch, H
    /// and the Hamming partial sums) and its log-det (input, the four B×B
    /// matrices, and the idle activation buffers it keeps, at most
    /// [`POOL_MAX_BYTES`]).
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
            .saturating_add(arena.min(POOL_MAX_BYTES as u64));
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

    /// What one lane of the GPU scorer (`crate::exec::cuda::executor`)
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

    /// Refuses (an [`Error::Arg`](crate::Error::Arg) naming the batch, the estimate and what
    /// is available) when the estimate exceeds `available` bytes. With
    /// `available` unknown (`None`), only an estimate no allocation could
    /// ever satisfy (beyond `isize::MAX`) is refused.
    pub fn check(&self, available: Option<u64>) -> Result<()> {
        check_bytes(self.batch, self.total, self.pairwise, available, "about")
    }
}

/// Refuses a CPU scoring of `plan` that cannot fit in host memory
/// ([`CellMemory::cpu`] against [`host_available`]).
pub fn check_host(plan: &Plan) -> Result<()> {
    CellMemory::cpu(plan).check(host_available())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::budget::*;
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
        let e = crate::exec::cpu::relu_codes(&graph, &params, &batch)
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
        let e = crate::Scorer::open(crate::runtime::DeviceKind::Cpu, batch, 1).unwrap_err();
        assert!(
            e.to_string().contains("batch 1000000 needs at least"),
            "{e}"
        );
    }
}
