//! `_Scorer`: a [`dasnas::Scorer`] opened from Python keyword arguments,
//! scoring blocks of architecture strings with the GIL released.

use crate::convert::{guarded, json_to_py};
use dasnas::data::array::{batch_from_nchw, Pixels};
use dasnas::data::cifar::Dataset;
use dasnas::space::{Arch, Space, SpaceOptions};
use dasnas::{Error, Scorer, Tensor};
use numpy::{PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Fast-training options, as the Python wrapper passes them (a dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct TrainingArgs {
    steps: usize,
    data: Option<String>,
    records: Option<(usize, usize)>,
    batch: usize,
    lr: f64,
    lr_schedule: String,
    momentum: f64,
    nesterov: bool,
    wd: f64,
    augment: bool,
}

/// A scorer and what every call needs: its space, space options, seed, α.
#[pyclass(name = "_Scorer", module = "dasnas._dasnas", frozen)]
pub struct PyScorer {
    scorer: Mutex<Scorer>,
    space: Space,
    options: SpaceOptions,
    seed: u64,
    alpha: f64,
    batch: usize,
    /// Weight seeds averaged per cell (`score --repeats`).
    repeats: usize,
    device: String,
    notice: Option<String>,
    stamp: dasnas::results::RunStamp,
}

/// `images` (a NumPy array `(B, 3, H, W)`, float32, float16 or uint8,
/// C-contiguous) as the scoring batch of a network taking `size × size`.
fn images_batch(
    images: &Bound<'_, PyAny>,
    dataset: Dataset,
    batch: Option<usize>,
    size: usize,
) -> PyResult<Tensor> {
    let arr = images.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "data: expected a NumPy array of shape (B, 3, H, W), got {}",
            images
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if arr.ndim() != 4 {
        return Err(PyValueError::new_err(format!(
            "data: an array of shape {:?}; expected 4 dimensions (B, 3, H, W)",
            arr.shape()
        )));
    }
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "data: the array is not C-contiguous (a transposed or strided view); pass \
             numpy.ascontiguousarray(data)",
        ));
    }
    let full = [
        arr.shape()[0],
        arr.shape()[1],
        arr.shape()[2],
        arr.shape()[3],
    ];
    let n = match batch {
        None => full[0],
        Some(b) if b <= full[0] => b,
        Some(b) => {
            return Err(PyValueError::new_err(format!(
                "batch {b} is larger than the {} images of data",
                full[0]
            )))
        }
    };
    let shape = [n, full[1], full[2], full[3]];
    let len = n * full[1] * full[2] * full[3];
    let dtype = arr.dtype().str()?.to_string();
    let run = |p: Pixels<'_>| guarded(|| batch_from_nchw(p, shape, size));
    match dtype.as_str() {
        "float32" => {
            let a: PyReadonlyArrayDyn<'_, f32> = images.extract()?;
            run(Pixels::F32(&a.as_slice().map_err(contiguous)?[..len]))
        }
        "float16" => {
            let a: PyReadonlyArrayDyn<'_, half::f16> = images.extract()?;
            let wide: Vec<f32> = a.as_slice().map_err(contiguous)?[..len]
                .iter()
                .map(|h| h.to_f32())
                .collect();
            run(Pixels::F32(&wide))
        }
        "uint8" => {
            let a: PyReadonlyArrayDyn<'_, u8> = images.extract()?;
            run(Pixels::U8(
                &a.as_slice().map_err(contiguous)?[..len],
                dataset,
            ))
        }
        other => Err(PyTypeError::new_err(format!(
            "data: dtype {other} is not supported: float32 (normalised images), float16 \
             (widened to float32) or uint8 (normalised with the dataset's mean and std); \
             convert with data.astype(numpy.float32)"
        ))),
    }
}

fn contiguous(e: numpy::AsSliceError) -> PyErr {
    PyValueError::new_err(format!("data: {e}"))
}

/// The space options of a Python dict (values already strings).
pub fn space_options(space: Space, opts: HashMap<String, String>) -> dasnas::Result<SpaceOptions> {
    let mut o = SpaceOptions::new();
    for (k, v) in opts {
        o.insert(k, v)?;
    }
    space.check_options(&o)?;
    Ok(o)
}

/// The fast training of `t`; `data` is the scoring file, if any.
fn training(
    t: &TrainingArgs,
    data: Option<&str>,
    dataset: Dataset,
    batch: usize,
) -> dasnas::Result<dasnas::Training> {
    let (path, same) = match (&t.data, data) {
        (Some(p), d) => (p.as_str(), d == Some(p.as_str())),
        (None, Some(d)) => (d, true),
        (None, None) => {
            return Err(Error::Arg(
                "training needs labelled images: give train_data (a CIFAR binary file), or a \
                 CIFAR file as data to train on its records after the scoring batch"
                    .into(),
            ))
        }
    };
    for (name, v) in [("lr", t.lr), ("momentum", t.momentum), ("wd", t.wd)] {
        if !v.is_finite() {
            return Err(Error::Arg(format!("{name} {v} is not a finite number")));
        }
    }
    let config = dasnas::train::SgdConfig {
        lr: t.lr,
        momentum: t.momentum,
        nesterov: t.nesterov,
        weight_decay: t.wd,
        schedule: t.lr_schedule.parse()?,
    };
    let augment = dasnas::train::batches::Augment {
        crop: t.augment,
        flip: t.augment,
    };
    let file = dasnas::scorer::TrainingFile {
        path: std::path::Path::new(path),
        dataset,
        records: t.records.map(|(a, b)| a..b),
        records_name: "train_records",
        skip: if same { batch } else { 0 },
    };
    file.training(t.steps, t.batch, config, augment)
}

impl PyScorer {
    /// The architecture `s` of this scorer's space, with its options.
    fn arch(&self, s: &str) -> dasnas::Result<Arch> {
        Arch::parse(self.space, s)?.with_options(&self.options)
    }

    /// Parses every string, naming the first bad one by its index.
    fn archs(&self, archs: &[String]) -> dasnas::Result<Vec<Arch>> {
        archs
            .iter()
            .enumerate()
            .map(|(i, s)| self.arch(s).map_err(|e| e.context(format!("archs[{i}]"))))
            .collect()
    }

    /// The scorer, locked (a scorer that panicked while locked is refused).
    pub fn lock(&self) -> dasnas::Result<MutexGuard<'_, Scorer>> {
        self.scorer.lock().map_err(|_| {
            Error::Device(
                "this scorer was left unusable by an earlier internal error; open a new one".into(),
            )
        })
    }

    /// The result lines of `archs`, scored in order.
    fn lines(
        &self,
        archs: &[String],
        extra_alphas: &[f64],
    ) -> dasnas::Result<Vec<serde_json::Value>> {
        let parsed = self.archs(archs)?;
        let refs: Vec<&Arch> = parsed.iter().collect();
        // Repeat r draws the weights of seed S + r, as `score --repeats`.
        let mut per_cell: Vec<Vec<dasnas::CellResult>> = vec![Vec::new(); parsed.len()];
        let mut scorer = self.lock()?;
        for r in 0..self.repeats {
            let seed = self.seed.wrapping_add(r as u64);
            for (cell, res) in per_cell
                .iter_mut()
                .zip(scorer.score_archs(&refs, seed, self.alpha)?)
            {
                cell.push(res);
            }
        }
        Ok(parsed
            .iter()
            .zip(per_cell)
            .map(|(a, r)| dasnas::results::repeated_line(a, &r, extra_alphas, &self.stamp, None))
            .collect())
    }

    /// Space, options and seed, for the search.
    pub fn setting(&self) -> (Space, &SpaceOptions, u64) {
        (self.space, &self.options, self.seed)
    }
}

#[pymethods]
impl PyScorer {
    #[new]
    #[pyo3(signature = (space, device, batch, seed, alpha, threads, lanes, space_options, data, dataset, training, swap=false, swap_reg=None, repeats=1, conv="exact", cells_in_flight=None))]
    #[allow(clippy::too_many_arguments)] // one Python keyword each
    fn new(
        py: Python<'_>,
        space: &str,
        device: &str,
        batch: Option<usize>,
        seed: u64,
        alpha: f64,
        threads: Option<usize>,
        lanes: usize,
        space_options: HashMap<String, String>,
        data: Option<&Bound<'_, PyAny>>,
        dataset: &str,
        training: Option<TrainingArgs>,
        swap: bool,
        swap_reg: Option<(f64, f64)>,
        repeats: usize,
        conv: &str,
        cells_in_flight: Option<usize>,
    ) -> PyResult<Self> {
        let conv = guarded(|| dasnas::ops::conv2d::ConvAlgo::parse(conv))?;
        if repeats == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "repeats 0: at least one weight seed is needed",
            ));
        }
        let swap = if swap {
            Some(guarded(|| dasnas::scorer::Swap::new(swap_reg))?)
        } else {
            None
        };
        let (space, options, dataset, kind) = guarded(|| {
            if !alpha.is_finite() {
                return Err(Error::Arg(format!("alpha {alpha} is not a finite number")));
            }
            let space: Space = space.parse()?;
            let options = self::space_options(space, space_options)?;
            let dataset: Dataset = dataset.parse()?;
            let kind: dasnas::runtime::DeviceKind = device.parse()?;
            Ok((space, options, dataset, kind))
        })?;
        let size = guarded(|| space.image_size(&options))?;
        // The batch: an array of the caller's images, a CIFAR file, or
        // seeded Gaussian images.
        let (tensor, path) = match data {
            Some(obj) if obj.extract::<String>().is_err() => {
                (images_batch(obj, dataset, batch, size)?, None)
            }
            other => {
                let name = match other {
                    Some(o) => o.extract::<String>()?,
                    None => "gaussian".to_string(),
                };
                let b = batch.unwrap_or(128);
                let source = dasnas::data::BatchSource::parse(&name, dataset);
                let t = py.detach(|| {
                    guarded(|| dasnas::data::checked_scoring_batch(&source, b, size, seed, kind))
                })?;
                (t, (name != "gaussian").then_some(name))
            }
        };
        let b = tensor.shape.n;
        let train = match &training {
            Some(t) if t.steps > 0 => {
                Some(py.detach(|| guarded(|| self::training(t, path.as_deref(), dataset, b)))?)
            }
            _ => None,
        };
        let stamp =
            dasnas::results::RunStamp::new(space, &options, seed, &tensor, alpha, train.as_ref());
        let stamp = match &swap {
            Some(s) => stamp.with_swap(s),
            None => stamp,
        }
        .with_repeats(repeats)
        .with_conv(conv);
        let (mut scorer, notice) = py.detach(|| guarded(|| Scorer::open(kind, tensor, lanes)))?;
        guarded(|| scorer.set_threads(threads))?;
        scorer.set_training(train);
        scorer.set_swap(swap);
        guarded(|| scorer.set_cells_in_flight(cells_in_flight))?;
        let notice = match (notice, scorer.set_conv(conv)) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        Ok(PyScorer {
            device: scorer.describe(),
            scorer: Mutex::new(scorer),
            space,
            options,
            seed,
            alpha,
            batch: b,
            repeats,
            notice,
            stamp,
        })
    }

    /// The run stamp every result line carries (space, options, seed, batch,
    /// images digest, α, training), as JSON text.
    #[getter]
    fn run(&self) -> String {
        self.stamp.to_json().to_string()
    }

    /// Scores `archs` in order (the GIL released) and returns each cell's
    /// `dasnas score` line as JSON text, byte for byte what the binary
    /// writes (but `ms`).
    fn score_lines(
        &self,
        py: Python<'_>,
        archs: Vec<String>,
        extra_alphas: Vec<f64>,
    ) -> PyResult<Vec<String>> {
        py.detach(|| {
            guarded(|| {
                Ok(self
                    .lines(&archs, &extra_alphas)?
                    .iter()
                    .map(|v| v.to_string())
                    .collect())
            })
        })
    }

    /// `cpu` or `cuda:N (name)`.
    #[getter]
    fn device(&self) -> &str {
        &self.device
    }

    /// Images in the scoring batch (B).
    #[getter]
    fn batch_size(&self) -> usize {
        self.batch
    }

    /// The space's name.
    #[getter]
    fn space(&self) -> &'static str {
        self.space.name()
    }

    /// The seed of the weights.
    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }

    /// DAS's α.
    #[getter]
    fn alpha(&self) -> f64 {
        self.alpha
    }

    /// What opening the device had to say (the CPU fallback of `auto`, PTX
    /// instead of CUBIN), or None.
    #[getter]
    fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Cells per call of `score_block` that keep the device busy.
    #[getter]
    fn block_size(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| guarded(|| Ok(self.lock()?.block_size())))
    }

    /// The canonical strings of `archs`; `ValueError` naming the first bad one.
    fn check(&self, py: Python<'_>, archs: Vec<String>) -> PyResult<Vec<String>> {
        py.detach(|| guarded(|| Ok(self.archs(&archs)?.iter().map(|a| a.to_string()).collect())))
    }

    /// Scores `archs` in order (the GIL released): one dict per cell, the
    /// fields of a `dasnas score` line, `das@A` for each of `extra_alphas`.
    fn score_block<'py>(
        &self,
        py: Python<'py>,
        archs: Vec<String>,
        extra_alphas: Vec<f64>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let lines = py.detach(|| guarded(|| self.lines(&archs, &extra_alphas)))?;
        lines.iter().map(|v| json_to_py(py, v)).collect()
    }
}
