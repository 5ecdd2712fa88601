//! Input batches: CIFAR binary files and seeded Gaussian noise, as NHWC
//! tensors `[n, 32, 32, 3]`.

pub mod cifar;

use crate::net::rng::{name_id, normal, stream_key};
use crate::tensor::{Shape, Tensor};

/// `batch` images of N(0, 1) noise, `size × size × 3`, drawn from the counter
/// generator with `seed` (element i of the NHWC tensor is normal draw i).
pub fn gaussian_batch(batch: usize, size: usize, seed: u64) -> Tensor {
    let shape = Shape::new(batch, size, size, 3);
    let key = stream_key(seed, name_id("data.gaussian"));
    let data = (0..shape.len() as u64)
        .map(|i| normal(key, i) as f32)
        .collect();
    Tensor { shape, data }
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
        BatchSource::Gaussian => Ok(gaussian_batch(batch, size, seed)),
        BatchSource::Cifar(path, dataset) => cifar::CifarImages::load(path, *dataset)?
            .first(batch)
            .map_err(|e| match e {
                crate::Error::Data(msg) => crate::Error::Data(format!("{}: {msg}", path.display())),
                e => e,
            }),
    }
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
}
