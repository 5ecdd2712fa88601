//! Labelled training batches from a CIFAR file, drawn with a seed.
//!
//! The records used for training (a `pool` of record indices, e.g. all but
//! the scoring batch) are visited epoch by epoch, each epoch in its own
//! seeded random order; batch `t` is positions `t·B .. (t+1)·B` of that
//! endless sequence (a batch may straddle two epochs). Every random choice
//! is a pure function of (seed, position) through the counter generator of
//! [`crate::rng`], so the same seed gives the same batches whatever
//! order they are asked for in and on any thread count.
//!
//! Augmentation (optional, on normalised images, as a training transform
//! would apply it after `ToTensor`/`Normalize`): `crop` pads the image with
//! 4 zeros on every side and takes a random 32×32 window (offsets 0..=8 on
//! each axis); `flip` mirrors the columns with probability 1/2 (after the
//! crop).

use crate::data::cifar::{CifarImages, IMAGE_SIZE};
use crate::error::{Error, Result};
use crate::rng::{bits, name_id, stream_key};
use crate::tensor::{Shape, Tensor};

/// Random crop with padding 4 and horizontal flip, each optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Pad by [`CROP_PAD`] zeros on every side and take a random 32×32 window.
    pub crop: bool,
    /// Mirror the columns with probability 1/2 (after the crop).
    pub flip: bool,
}

/// Padding of the random crop.
pub const CROP_PAD: usize = 4;

/// Seeded labelled batches over a pool of records of one CIFAR file.
#[derive(Clone, Debug)]
pub struct LabelledBatches<'a> {
    images: &'a CifarImages,
    pool: Vec<usize>,
    batch: usize,
    seed: u64,
    augment: Augment,
    /// The permutation of the last epoch used: (epoch, order).
    epoch_cache: Option<(u64, Vec<usize>)>,
}

impl<'a> LabelledBatches<'a> {
    /// Batches of `batch` images from records `pool` of `images`.
    pub fn new(
        images: &'a CifarImages,
        pool: Vec<usize>,
        batch: usize,
        seed: u64,
        augment: Augment,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::Arg("training batch size must be at least 1".into()));
        }
        if pool.is_empty() {
            return Err(Error::Data(
                "no training records to draw batches from".into(),
            ));
        }
        if let Some(&bad) = pool.iter().find(|&&i| i >= images.len()) {
            return Err(Error::Data(format!(
                "training record {bad} requested, the file has {}",
                images.len()
            )));
        }
        Ok(LabelledBatches {
            images,
            pool,
            batch,
            seed,
            augment,
            epoch_cache: None,
        })
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Record index at position `q` of the endless epoch sequence.
    fn record_at(&mut self, q: u64) -> usize {
        let len = self.pool.len() as u64;
        let (epoch, k) = (q / len, (q % len) as usize);
        if self.epoch_cache.as_ref().map(|c| c.0) != Some(epoch) {
            // Fisher–Yates, swap index from 64 random bits (multiply-shift).
            let key = stream_key(self.seed, name_id("train.shuffle") ^ epoch);
            let mut order = self.pool.clone();
            for i in (1..order.len()).rev() {
                let r = bits(key, i as u64);
                let j = ((r as u128 * (i as u128 + 1)) >> 64) as usize;
                order.swap(i, j);
            }
            self.epoch_cache = Some((epoch, order));
        }
        self.epoch_cache.as_ref().map(|c| c.1[k]).unwrap_or(0)
    }

    /// Batch `t`: NHWC images `[B, 32, 32, 3]` (normalised, augmented if
    /// asked) and their labels. Its buffers are reserved fallibly: a batch too large for memory is
    /// an error naming it, not an abort.
    pub fn batch_at(&mut self, t: u64) -> Result<(Tensor, Vec<u32>)> {
        let b = self.batch as u64;
        let first = t
            .checked_mul(b)
            .filter(|q| q.checked_add(b).is_some())
            .ok_or_else(|| {
                Error::Arg(format!(
                    "training batch {b}: step {t} is past the last position of the batch \
                     sequence (2^64 images)"
                ))
            })?;
        let mut records: Vec<usize> = Vec::new();
        let mut labels: Vec<u32> = Vec::new();
        records
            .try_reserve_exact(self.batch)
            .and_then(|_| labels.try_reserve_exact(self.batch))
            .map_err(|_| {
                Error::Arg(format!(
                    "training batch {b}: its record indices and labels cannot be allocated; \
                     use a smaller --train-batch"
                ))
            })?;
        for q in first..first + b {
            let r = self.record_at(q);
            records.push(r);
            labels.push(self.images.labels[r] as u32);
        }
        let mut x = self.images.batch(&records)?;
        drop(records);
        if self.augment.crop || self.augment.flip {
            let key = stream_key(self.seed, name_id("train.augment"));
            let per = x.shape.per_sample();
            let mut tmp = vec![0.0f32; per];
            for (img, q) in x.data.chunks_exact_mut(per).zip(first..) {
                let r = bits(key, q);
                let (oy, ox) = if self.augment.crop {
                    let span = 2 * CROP_PAD as u64 + 1;
                    ((r % span) as usize, ((r >> 16) % span) as usize)
                } else {
                    (CROP_PAD, CROP_PAD)
                };
                let flip = self.augment.flip && (r >> 32) & 1 == 1;
                augment_image(img, &mut tmp, oy, ox, flip);
                img.copy_from_slice(&tmp);
            }
        }
        Ok((x, labels))
    }
}

/// `out[y][x] = padded[y + oy][x' + ox]` with `x' = 31 − x` when flipped,
/// where `padded` is `img` with `CROP_PAD` zeros around it (32×32×3 NHWC).
pub fn augment_image(img: &[f32], out: &mut [f32], oy: usize, ox: usize, flip: bool) {
    let s = IMAGE_SIZE;
    for y in 0..s {
        for x in 0..s {
            let xs = if flip { s - 1 - x } else { x };
            let (sy, sx) = (y + oy, xs + ox);
            let dst = &mut out[(y * s + x) * 3..(y * s + x) * 3 + 3];
            if sy < CROP_PAD || sy >= s + CROP_PAD || sx < CROP_PAD || sx >= s + CROP_PAD {
                dst.fill(0.0);
            } else {
                let k = ((sy - CROP_PAD) * s + (sx - CROP_PAD)) * 3;
                dst.copy_from_slice(&img[k..k + 3]);
            }
        }
    }
}

/// The shape of one batch of `b` images.
pub fn batch_shape(b: usize) -> Shape {
    Shape::new(b, IMAGE_SIZE, IMAGE_SIZE, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize) -> CifarImages {
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.push((i % 10) as u8);
            bytes.extend((0..3072).map(|k| ((k * 7 + i * 13) % 256) as u8));
        }
        CifarImages::from_bytes(&bytes, crate::data::cifar::Dataset::Cifar10).unwrap()
    }

    #[test]
    fn same_seed_same_batches_and_epochs_cover_the_pool() {
        let imgs = file(12);
        let pool: Vec<usize> = (2..12).collect();
        let aug = Augment {
            crop: true,
            flip: true,
        };
        let mut a = LabelledBatches::new(&imgs, pool.clone(), 4, 7, aug).unwrap();
        let mut b = LabelledBatches::new(&imgs, pool.clone(), 4, 7, aug).unwrap();
        let mut c = LabelledBatches::new(&imgs, pool.clone(), 4, 8, aug).unwrap();
        // Out of order on `b`: results depend on t only.
        let b3 = b.batch_at(3).unwrap();
        let b0 = b.batch_at(0).unwrap();
        assert_eq!(a.batch_at(0).unwrap(), b0);
        assert_eq!(a.batch_at(3).unwrap(), b3);
        assert_ne!(c.batch_at(0).unwrap(), b0);
        // First epoch (10 records) = positions 0..10: every record once.
        let mut seen: Vec<usize> = (0..10).map(|q| a.record_at(q)).collect();
        seen.sort();
        assert_eq!(seen, pool);
        // Labels follow the records.
        let (_, labels) = a.batch_at(1).unwrap();
        let recs: Vec<u32> = (4..8).map(|q| (a.record_at(q) % 10) as u32).collect();
        assert_eq!(labels, recs);
        assert!(LabelledBatches::new(&imgs, vec![12], 4, 0, aug).is_err());
        assert!(LabelledBatches::new(&imgs, vec![], 4, 0, aug).is_err());
    }

    #[test]
    fn huge_batches_and_far_steps_are_errors_not_aborts() {
        let imgs = file(3);
        let aug = Augment::default();
        // Record indices of 2^61 images cannot be reserved.
        let mut big = LabelledBatches::new(&imgs, vec![0, 1, 2], 1 << 61, 0, aug).unwrap();
        let e = big.batch_at(0).unwrap_err().to_string();
        assert!(e.contains("training batch 2305843009213693952"), "{e}");
        assert!(e.contains("cannot be allocated"), "{e}");
        // Positions past 2^64: step 2^40 of batches of 2^30.
        let mut far = LabelledBatches::new(&imgs, vec![0, 1, 2], 1 << 30, 0, aug).unwrap();
        let e = far.batch_at(1 << 40).unwrap_err().to_string();
        assert!(
            e.contains("training batch 1073741824: step 1099511627776"),
            "{e}"
        );
        // The last batch before the end of the sequence is still drawn.
        let mut two = LabelledBatches::new(&imgs, vec![0, 1, 2], 2, 0, aug).unwrap();
        let (x, l) = two.batch_at(u64::MAX / 2 - 1).unwrap();
        assert_eq!((x.shape.n, l.len()), (2, 2));
        assert!(two.batch_at(u64::MAX / 2).is_err());
    }

    #[test]
    fn crop_and_flip_geometry() {
        let s = IMAGE_SIZE;
        let img: Vec<f32> = (0..s * s * 3).map(|i| i as f32 + 1.0).collect();
        let mut out = vec![f32::NAN; img.len()];
        // Centre crop, no flip: identity.
        augment_image(&img, &mut out, CROP_PAD, CROP_PAD, false);
        assert_eq!(out, img);
        // Flip only: columns mirrored.
        augment_image(&img, &mut out, CROP_PAD, CROP_PAD, true);
        assert_eq!(out[..3], img[(s - 1) * 3..s * 3]);
        // Offset (0, 0): the top-left 4 rows / columns are padding zeros and
        // pixel (4, 4) is the image's (0, 0).
        augment_image(&img, &mut out, 0, 0, false);
        assert_eq!(out[..3], [0.0; 3]);
        assert_eq!(out[(4 * s + 4) * 3..(4 * s + 4) * 3 + 3], img[..3]);
        assert_eq!(out[(3 * s + 10) * 3], 0.0);
        // Offset (8, 8): pixel (0, 0) is the image's (4, 4), the last 4
        // rows are zeros.
        augment_image(&img, &mut out, 8, 8, false);
        assert_eq!(out[..3], img[(4 * s + 4) * 3..(4 * s + 4) * 3 + 3]);
        assert_eq!(out[((s - 1) * s) * 3], 0.0);
    }
}
