//! Input batches: CIFAR binary files and seeded Gaussian noise, as NHWC
//! tensors `[n, 32, 32, 3]`.

pub mod array;
pub mod cifar;

use crate::error::{Error, Result};
use crate::rng::{name_id, normal, stream_key};
use crate::runtime::budget::human;
use crate::tensor::{Shape, Tensor};

/// `batch` images of N(0, 1) noise, `size × size × 3`, drawn from the counter
/// generator with `seed` (element i of the NHWC tensor is normal draw i).
///
/// # Panics
/// When the tensor cannot be allocated (see [`try_gaussian_batch`], which
/// returns that as an error: use it for sizes a user chose).
pub fn gaussian_batch(batch: usize, size: usize, seed: u64) -> Tensor {
    try_gaussian_batch(batch, size, seed).unwrap_or_else(|e| panic!("gaussian_batch: {e}"))
}

/// [`gaussian_batch`], or an error naming the batch when the tensor's
/// length overflows, exceeds the host's available memory
/// ([`crate::runtime::budget::host_available`]), or its allocation fails.
pub fn try_gaussian_batch(batch: usize, size: usize, seed: u64) -> Result<Tensor> {
    let shape = Shape::new(batch, size, size, 3);
    let too_big = |why: String| {
        Error::Arg(format!(
            "batch {batch} of {size}×{size}×3 images: {why}; use a smaller --batch"
        ))
    };
    let len = [size, size, 3]
        .iter()
        .try_fold(batch, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / 4)
        .ok_or_else(|| too_big("more values than this machine can address".into()))?;
    let bytes = len as u64 * 4;
    if let Some(avail) = crate::runtime::budget::host_available() {
        if bytes > avail {
            return Err(too_big(format!(
                "needs {}, {} are available",
                human(bytes),
                human(avail)
            )));
        }
    }
    // A fallible reservation: an allocation that fails must not abort.
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| too_big(format!("cannot allocate {}", human(bytes))))?;
    let key = stream_key(seed, name_id("data.gaussian"));
    data.extend((0..len as u64).map(|i| normal(key, i) as f32));
    Ok(Tensor { shape, data })
}

/// Where a scoring batch comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchSource {
    /// Seeded N(0, 1) images ([`gaussian_batch`]).
    Gaussian,
    /// The first images of a CIFAR binary file, normalised with the
    /// dataset's NB201 mean and std.
    Cifar(std::path::PathBuf, cifar::Dataset),
}

impl BatchSource {
    /// `gaussian`, or the path of a CIFAR file of `dataset`.
    pub fn parse(s: &str, dataset: cifar::Dataset) -> Self {
        if s == "gaussian" {
            BatchSource::Gaussian
        } else {
            BatchSource::Cifar(s.into(), dataset)
        }
    }
}

/// The scoring batch: `batch` images of `size × size × 3` from `source`
/// (Gaussian ones drawn with `seed`). Errors when `batch < 2` (the kernel
/// matrix needs two images) or the file is short or malformed.
pub fn scoring_batch(
    source: &BatchSource,
    batch: usize,
    size: usize,
    seed: u64,
) -> crate::Result<Tensor> {
    if batch < 2 {
        return Err(crate::Error::Arg(format!(
            "batch {batch} is too small: the kernel matrix needs at least 2 images"
        )));
    }
    match source {
        BatchSource::Gaussian => try_gaussian_batch(batch, size, seed),
        BatchSource::Cifar(path, dataset) => cifar::CifarImages::load(path, *dataset)?
            .first(batch)
            .map_err(|e| e.context(path.display().to_string())),
    }
}

/// [`scoring_batch`] for a scorer on `device`, refused before it is made
/// (seconds at a huge B) when the batch, and on the CPU its B×B matrices,
/// cannot fit in host memory (a GPU keeps the matrices on the device; see
/// [`crate::runtime::budget::check_host_batch`]).
pub fn checked_scoring_batch(
    source: &BatchSource,
    batch: usize,
    size: usize,
    seed: u64,
    device: crate::runtime::DeviceKind,
) -> crate::Result<Tensor> {
    let on_gpu = matches!(device, crate::runtime::DeviceKind::Cuda(_));
    crate::runtime::budget::check_host_batch(batch, size * size * 3, !on_gpu)?;
    scoring_batch(source, batch, size, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_is_seeded_and_standard() {
        let a = gaussian_batch(4, 8, 1);
        assert_eq!(a, gaussian_batch(4, 8, 1));
        assert_ne!(a, gaussian_batch(4, 8, 2));
        let mean = a.data.iter().map(|&v| v as f64).sum::<f64>() / a.data.len() as f64;
        assert!(mean.abs() < 0.1);
    }

    #[test]
    fn huge_batches_are_errors_not_aborts() {
        // The length overflows usize: refused whatever the machine.
        let e = try_gaussian_batch(usize::MAX / 2, 32, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("batch {}", usize::MAX / 2)), "{e}");
        // 2^50 images of 32×32×3 floats (12 EB): beyond any address space.
        let e = try_gaussian_batch(1 << 50, 32, 0).unwrap_err().to_string();
        assert!(e.contains("use a smaller --batch"), "{e}");
        // 10^9 images (12 TB): more than this machine has, where it can tell.
        if crate::runtime::budget::host_available().is_some_and(|a| a < 12_000_000_000_000) {
            let e = try_gaussian_batch(1_000_000_000, 32, 0)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("batch 1000000000") && e.contains("are available"),
                "{e}"
            );
        }
        assert_eq!(
            try_gaussian_batch(3, 4, 9).unwrap(),
            gaussian_batch(3, 4, 9)
        );
    }
}
