//! Scoring batches from a caller's own images: NCHW arrays as a PyTorch
//! `DataLoader` yields them, handed over by the Python package and the C ABI.
//!
//! Layout in: `[n, 3, h, w]` row-major (NCHW). Layout out: the crate's NHWC
//! [`Tensor`]. Float pixels are taken as already normalised; 8-bit pixels
//! are normalised like a CIFAR file, `(p / 255 − mean[c]) / std[c]`.

use crate::data::cifar::Dataset;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

/// A caller's pixel buffer, NCHW.
#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    /// Normalised float pixels, used as they are.
    F32(&'a [f32]),
    /// Raw 8-bit pixels, normalised with `Dataset`'s NB201 mean and std.
    U8(&'a [u8], Dataset),
}

impl Pixels<'_> {
    fn len(&self) -> usize {
        match self {
            Pixels::F32(v) => v.len(),
            Pixels::U8(v, _) => v.len(),
        }
    }
}

/// The scoring batch of `pixels`, shaped `shape = [n, c, h, w]` (NCHW), for
/// a network that takes `size × size` RGB images. Errors name the bad
/// input: fewer than 2 images, not 3 channels, a size other than the
/// network's, a buffer of the wrong length, a non-finite value.
pub fn batch_from_nchw(pixels: Pixels<'_>, shape: [usize; 4], size: usize) -> Result<Tensor> {
    let [n, c, h, w] = shape;
    if n < 2 {
        return Err(Error::Arg(format!(
            "images: {n} image(s) given, the kernel matrix needs at least 2"
        )));
    }
    if c != 3 {
        return Err(Error::Arg(format!(
            "images: {c} channels in shape {shape:?} (N, C, H, W), expected 3 (RGB)"
        )));
    }
    if h != size || w != size {
        return Err(Error::Arg(format!(
            "images: {h}×{w} pixels in shape {shape:?} (N, C, H, W), this space's network takes \
             {size}×{size}"
        )));
    }
    let len = n
        .checked_mul(c * h * w)
        .ok_or_else(|| Error::Arg(format!("images: shape {shape:?} is too large")))?;
    if pixels.len() != len {
        return Err(Error::Arg(format!(
            "images: {} values for shape {shape:?}, which needs {len}",
            pixels.len()
        )));
    }
    crate::runtime::budget::check_host_batch(n, c * h * w, true)?;
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| Error::Arg(format!("images: cannot allocate {len} floats")))?;
    let hw = h * w;
    for img in 0..n {
        for p in 0..hw {
            for ch in 0..c {
                let at = (img * c + ch) * hw + p;
                let v = match pixels {
                    Pixels::F32(v) => v[at],
                    Pixels::U8(v, dataset) => {
                        let (mean, std) = dataset.mean_std();
                        (v[at] as f32 / 255.0 - mean[ch]) / std[ch]
                    }
                };
                if !v.is_finite() {
                    return Err(Error::Arg(format!(
                        "images: value {v} at [{img}, {ch}, {}, {}] is not finite",
                        p / w,
                        p % w
                    )));
                }
                data.push(v);
            }
        }
    }
    Tensor::from_vec(Shape::new(n, h, w, c), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar::CifarImages;

    #[test]
    fn nchw_becomes_nhwc() {
        // Value = 1000·n + 100·c + 10·y + x, so every element is traceable.
        let (n, c, s) = (2, 3, 4);
        let v: Vec<f32> = (0..n * c * s * s)
            .map(|i| {
                let (img, rest) = (i / (c * s * s), i % (c * s * s));
                let (ch, p) = (rest / (s * s), rest % (s * s));
                (1000 * img + 100 * ch + 10 * (p / s) + p % s) as f32
            })
            .collect();
        let t = batch_from_nchw(Pixels::F32(&v), [n, c, s, s], s).unwrap();
        assert_eq!(t.shape, Shape::new(n, s, s, c));
        for img in 0..n {
            for y in 0..s {
                for x in 0..s {
                    for ch in 0..c {
                        let at = ((img * s + y) * s + x) * c + ch;
                        assert_eq!(t.data[at], (1000 * img + 100 * ch + 10 * y + x) as f32);
                    }
                }
            }
        }
    }

    #[test]
    fn bytes_are_normalised_as_a_cifar_file_is() {
        let rec: Vec<u8> = (0..2)
            .flat_map(|i| {
                let mut r = vec![7u8];
                r.extend((0..3072).map(move |p| ((p * 7 + i * 13) % 256) as u8));
                r
            })
            .collect();
        let file = CifarImages::from_bytes(&rec, Dataset::Cifar10).unwrap();
        let pixels: Vec<u8> = rec.chunks(3073).flat_map(|r| r[1..].to_vec()).collect();
        let t = batch_from_nchw(Pixels::U8(&pixels, Dataset::Cifar10), [2, 3, 32, 32], 32).unwrap();
        assert_eq!(t, file.first(2).unwrap());
    }

    #[test]
    fn bad_inputs_are_named() {
        let v = vec![0.0f32; 2 * 3 * 8 * 8];
        let e = |p, s, size| batch_from_nchw(p, s, size).unwrap_err().to_string();
        assert!(e(Pixels::F32(&v[..192]), [1, 3, 8, 8], 8).contains("at least 2"));
        assert!(e(Pixels::F32(&v), [2, 1, 8, 24], 8).contains("1 channels"));
        assert!(e(Pixels::F32(&v), [2, 3, 8, 8], 32).contains("takes 32×32"));
        assert!(e(Pixels::F32(&v[1..]), [2, 3, 8, 8], 8).contains("383 values"));
        let mut nan = v.clone();
        nan[3 * 64 + 64 + 9] = f32::NAN;
        assert!(e(Pixels::F32(&nan), [2, 3, 8, 8], 8).contains("[1, 1, 1, 1]"));
    }
}
