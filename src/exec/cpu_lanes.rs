//! CPU lanes: several cells in flight on the CPU, each on its own rayon
//! pool of `threads / lanes` threads, the CPU counterpart of the GPU's
//! lanes ([`crate::exec::cuda::lane`]).

use crate::error::{Error, Result};

/// CPU cells in flight: `pools.len()` lanes, each scoring one cell at a
/// time on its own rayon pool (its ops parallel over images inside), like
/// the GPU's lanes. Built for one thread count, reused across blocks.
pub struct CpuLanes {
    threads: usize,
    pools: Vec<rayon::ThreadPool>,
}

/// The CPU cells in flight for `threads` threads when the user does not
/// say: one cell at a time, its ops parallel over all threads, up to 8
/// threads; beyond, one cell per 8 threads. Measured on 2 cores (docs/performance.md,
/// "Cells in flight and threads"): two cells on one thread each and one cell on two
/// threads score at the same rate there, so the rule keeps the lower
/// memory of one cell where op parallelism still has 16 or more images
/// per thread at B = 128, and adds cells where it would not.
pub fn default_cells_in_flight(threads: usize) -> usize {
    (threads / 8).max(1)
}

impl CpuLanes {
    /// Whether these lanes were built for `lanes` lanes over `threads`
    /// threads (else a caller builds new ones).
    pub fn built_for(&self, lanes: usize, threads: usize) -> bool {
        self.threads == threads && self.pools.len() == lanes
    }

    /// `lanes` lanes sharing `threads` threads (each at least one).
    pub fn new(lanes: usize, threads: usize) -> Result<CpuLanes> {
        let per = (threads / lanes).max(1);
        let pools = (0..lanes)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(per)
                    .thread_name(move |j| format!("dasnas-cpu-lane{i}-{j}"))
                    .build()
                    .map_err(|e| Error::Arg(format!("cells in flight: thread pool: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CpuLanes { threads, pools })
    }

    /// `f(0..n)`, each call on one lane, lanes taking the next index as
    /// they finish; results in index order (the first error by index).
    pub fn run<T: Send>(&self, n: usize, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<Result<T>>>> =
            (0..n).map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for pool in &self.pools {
                let (next, slots, f) = (&next, &slots, &f);
                s.spawn(move || {
                    pool.install(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let r = f(i);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(r);
                        }
                    })
                });
            }
        });
        slots
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                m.into_inner()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Err(Error::Arg(format!("cell {i}: a CPU lane stopped"))))
            })
            .collect()
    }
}
