//! CIFAR binary files. CIFAR-10: records of 1 label byte + 3,072 pixel bytes;
//! CIFAR-100: 2 label bytes (coarse, fine) + 3,072. Pixels are three planes
//! (1,024 R, 1,024 G, 1,024 B), each 32×32 row-major, no header.
//! (`../shared/data`'s CIFAR-100 file keeps one label byte, the fine label:
//! [`CifarImages::from_bytes`] tells the layouts apart by the file size.)

use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};
use std::path::Path;

/// Height and width of a CIFAR image, in pixels.
pub const IMAGE_SIZE: usize = 32;
const PIXELS: usize = 3 * IMAGE_SIZE * IMAGE_SIZE;

/// Which CIFAR dataset: decides the normalisation constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// CIFAR-10: 10 classes, one label byte per record.
    Cifar10,
    /// CIFAR-100: 100 fine classes, two label bytes per record (coarse, fine).
    Cifar100,
}

impl std::str::FromStr for Dataset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cifar10" => Ok(Dataset::Cifar10),
            "cifar100" => Ok(Dataset::Cifar100),
            other => Err(Error::Arg(format!(
                "unknown dataset `{other}` (expected cifar10 or cifar100)"
            ))),
        }
    }
}

impl Dataset {
    /// Per-channel (mean, std) of the NB201 convention.
    pub fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Dataset::Cifar10 => ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
            Dataset::Cifar100 => ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]),
        }
    }

    /// Label bytes per record in the official binary format.
    pub fn label_bytes(self) -> usize {
        match self {
            Dataset::Cifar10 => 1,
            Dataset::Cifar100 => 2,
        }
    }
}

/// Images and labels of one CIFAR file, kept as raw bytes.
#[derive(Clone, Debug)]
pub struct CifarImages {
    /// Which dataset the file holds (decides the normalisation).
    pub dataset: Dataset,
    /// One label per image (the fine label for CIFAR-100).
    pub labels: Vec<u8>,
    /// `PIXELS` bytes per image, planar RGB.
    pixels: Vec<u8>,
}

impl CifarImages {
    /// Reads a CIFAR binary file. The record size is `label_bytes + 3,072`
    /// where CIFAR-10 has 1 label byte and CIFAR-100 has 2; a CIFAR-100 file
    /// with 1 label byte (fine label only) is accepted when its size fits
    /// that layout and not the 2-byte one. A size that fits neither is an error.
    pub fn load(path: &Path, dataset: Dataset) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, dataset).map_err(|e| e.context(path.display().to_string()))
    }

    /// Parses the bytes of a CIFAR binary file (layouts as in [`Self::load`]).
    pub fn from_bytes(bytes: &[u8], dataset: Dataset) -> Result<Self> {
        let want = dataset.label_bytes();
        let fits = |lb: usize| !bytes.is_empty() && bytes.len().is_multiple_of(lb + PIXELS);
        let label_bytes = if fits(want) {
            want
        } else if dataset == Dataset::Cifar100 && fits(1) {
            1
        } else {
            return Err(Error::Data(format!(
                "{} bytes is not a whole number of {:?} records of {} bytes",
                bytes.len(),
                dataset,
                want + PIXELS
            )));
        };
        let record = label_bytes + PIXELS;
        let n = bytes.len() / record;
        let mut labels = Vec::with_capacity(n);
        let mut pixels = Vec::with_capacity(n * PIXELS);
        for r in bytes.chunks_exact(record) {
            labels.push(r[label_bytes - 1]);
            pixels.extend_from_slice(&r[label_bytes..]);
        }
        Ok(CifarImages {
            dataset,
            labels,
            pixels,
        })
    }

    /// Images in the file.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the file holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Normalised images `indices` as an NHWC tensor `[k, 32, 32, 3]`:
    /// `(pixel / 255 - mean[c]) / std[c]`.
    pub fn batch(&self, indices: &[usize]) -> Result<Tensor> {
        let (mean, std) = self.dataset.mean_std();
        let hw = IMAGE_SIZE * IMAGE_SIZE;
        // Reserved fallibly: a batch too large for memory is an error.
        let mut data = Vec::new();
        indices
            .len()
            .checked_mul(PIXELS)
            .filter(|&n| n <= isize::MAX as usize / 4)
            .and_then(|n| data.try_reserve_exact(n).ok())
            .ok_or_else(|| {
                Error::Arg(format!(
                    "a batch of {} images cannot be allocated ({} f32 values each)",
                    indices.len(),
                    PIXELS
                ))
            })?;
        for &i in indices {
            if i >= self.len() {
                return Err(Error::Data(format!(
                    "image {i} requested, the file has {}",
                    self.len()
                )));
            }
            let img = &self.pixels[i * PIXELS..(i + 1) * PIXELS];
            for p in 0..hw {
                for c in 0..3 {
                    let v = img[c * hw + p] as f32 / 255.0;
                    data.push((v - mean[c]) / std[c]);
                }
            }
        }
        Tensor::from_vec(Shape::new(indices.len(), IMAGE_SIZE, IMAGE_SIZE, 3), data)
    }

    /// The first `n` images; an error if the file has fewer.
    pub fn first(&self, n: usize) -> Result<Tensor> {
        if n > self.len() {
            return Err(Error::Data(format!(
                "batch of {n} images requested, the file has only {}",
                self.len()
            )));
        }
        self.batch(&(0..n).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: impl Fn(usize) -> u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..PIXELS).map(fill));
        r
    }

    #[test]
    fn layout_is_planar_to_nhwc() {
        let bytes = record(7, |i| (i % 251) as u8);
        let imgs = CifarImages::from_bytes(&bytes, Dataset::Cifar10).unwrap();
        assert_eq!(imgs.labels, vec![7]);
        let t = imgs.first(1).unwrap();
        let (mean, std) = Dataset::Cifar10.mean_std();
        // pixel (y=1, x=2), channel G is byte 1024 + 1*32 + 2 of the planes.
        let raw = ((1024 + 32 + 2) % 251) as f32;
        let want = (raw / 255.0 - mean[1]) / std[1];
        assert_eq!(t.at(0, 1, 2, 1), want);
    }

    #[test]
    fn bad_sizes_and_short_files_are_errors() {
        let mut bytes = record(1, |_| 0);
        bytes.pop();
        let e = CifarImages::from_bytes(&bytes, Dataset::Cifar10).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
        assert!(CifarImages::from_bytes(&[], Dataset::Cifar10).is_err());
        let imgs = CifarImages::from_bytes(&record(1, |_| 0), Dataset::Cifar10).unwrap();
        let e = imgs.first(2).unwrap_err();
        assert!(e.to_string().contains("only 1"), "{e}");
    }

    #[test]
    fn cifar100_two_label_bytes() {
        let mut r = vec![3u8, 42u8];
        r.extend(std::iter::repeat_n(9u8, PIXELS));
        let imgs = CifarImages::from_bytes(&r, Dataset::Cifar100).unwrap();
        assert_eq!(imgs.labels, vec![42]);
    }

    #[test]
    fn shared_files_load_when_present() {
        let Some(path) = crate::testing::shared_data(
            "shared_files_load_when_present",
            "cifar10_test1000_q75.bin",
        ) else {
            return;
        };
        let imgs = CifarImages::load(&path, Dataset::Cifar10).unwrap();
        assert_eq!(imgs.len(), 1000);
        // Classes are interleaved 0,1,…,9,0,1,…
        assert_eq!(&imgs.labels[..12], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
        let t = imgs.first(128).unwrap();
        let mean = t.data.iter().map(|&v| v as f64).sum::<f64>() / t.data.len() as f64;
        assert!(mean.abs() < 0.5, "normalised mean {mean}");
    }
}
