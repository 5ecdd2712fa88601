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
