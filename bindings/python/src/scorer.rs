//! `_Scorer`: a [`dasnas::Scorer`] opened from Python keyword arguments,
//! scoring blocks of architecture strings with the GIL released.

use crate::convert::{guarded, json_to_py};
use dasnas::data::array::{batch_from_nchw, Pixels};
use dasnas::data::cifar::Dataset;
use dasnas::run::{Images, Run, RunOptions, TrainingOptions};
use dasnas::scorer::Swap;
use dasnas::space::{Arch, Space, SpaceOptions};
use dasnas::{Error, Tensor};
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

/// An open run (a scorer with its run stamp and settings), one call at a
/// time.
#[pyclass(name = "_Scorer", module = "dasnas._dasnas", frozen)]
pub struct PyScorer {
    run: Mutex<Run>,
    space: Space,
    options: SpaceOptions,
    seed: u64,
    alpha: f64,
    batch: usize,
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

/// The library's training options of the Python wrapper's dict.
fn training_options(t: &TrainingArgs) -> dasnas::Result<TrainingOptions> {
    Ok(TrainingOptions {
        steps: t.steps,
        data: t.data.as_ref().map(std::path::PathBuf::from),
        records: t.records.map(|(a, b)| a..b),
        batch: t.batch,
        sgd: dasnas::train::SgdConfig {
            lr: t.lr,
            momentum: t.momentum,
            nesterov: t.nesterov,
            weight_decay: t.wd,
            schedule: t.lr_schedule.parse()?,
        },
        augment: t.augment,
    })
}

impl PyScorer {
    /// The run, locked (a run that panicked while locked is refused).
    pub fn lock(&self) -> dasnas::Result<MutexGuard<'_, Run>> {
        self.run.lock().map_err(|_| {
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
        let mut run = self.lock()?;
        let parsed = run.archs(archs, "archs")?;
        let refs: Vec<&Arch> = parsed.iter().collect();
        run.score_lines(&refs, extra_alphas)
    }

    /// Space, options and seed, for the search.
    pub fn setting(&self) -> (Space, &SpaceOptions, u64) {
        (self.space, &self.options, self.seed)
    }
}

#[pymethods]
impl PyScorer {
    #[new]
    #[pyo3(signature = (space, device, batch, seed, alpha, threads, lanes, space_options, data, dataset, training, swap=false, swap_reg=None, repeats=1, conv="exact", cells_in_flight=None, measures=None, labels=None))]
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
        measures: Option<Vec<String>>,
        labels: Option<Vec<u32>>,
    ) -> PyResult<Self> {
        let mut o = guarded(|| {
            let space: Space = space.parse()?;
            let mut o = RunOptions::new(space);
            o.space_options = self::space_options(space, space_options)?;
            o.dataset = dataset.parse()?;
            o.device = device.parse()?;
            o.conv = dasnas::ops::conv2d::ConvAlgo::parse(conv)?;
            o.swap = swap.then(|| Swap::new(swap_reg)).transpose()?;
            o.batch = batch;
            o.seed = seed;
            o.alpha = alpha;
            o.lanes = lanes;
            o.threads = threads;
            o.cells_in_flight = cells_in_flight;
            o.repeats = repeats;
            if let Some(m) = &measures {
                o.measures = dasnas::measures::MeasureSet::from_names(m)
                    .map_err(|e| e.context("measures"))?;
            }
            o.training = match &training {
                Some(t) if t.steps > 0 => Some(training_options(t)?),
                _ => None,
            };
            o.check()?;
            Ok(o)
        })?;
        // The images: an array of the caller's, a CIFAR file, or seeded
        // Gaussian images.
        match data {
            Some(obj) if obj.extract::<String>().is_err() => {
                let size = guarded(|| o.space.image_size(&o.space_options))?;
                let images = images_batch(obj, o.dataset, o.batch, size)?;
                // The labels of the images kept (the first `batch`).
                o.labels = labels.map(|l| {
                    let keep = if l.len() > images.shape.n && o.batch.is_some() {
                        images.shape.n
                    } else {
                        l.len()
                    };
                    l[..keep].to_vec()
                });
                o.images = Images::Given(images);
                o.batch = None;
            }
            Some(obj) => {
                o.images = Images::parse(&obj.extract::<String>()?);
                o.labels = labels;
            }
            None => o.labels = labels,
        }
        let run = py.detach(|| guarded(|| o.open()))?;
        let scorer = run.scorer_ref();
        Ok(PyScorer {
            device: scorer.describe(),
            space: run.space(),
            options: run.space_options().clone(),
            seed: run.seed(),
            alpha: run.alpha(),
            batch: run.batch_size(),
            notice: (!run.notices().is_empty()).then(|| run.notices().join("; ")),
            stamp: run.stamp().clone(),
            run: Mutex::new(run),
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

    /// The fields of this scorer's lines, in order (`das@A` for each of
    /// `extra_alphas`), whatever cells are scored.
    fn line_fields(&self, py: Python<'_>, extra_alphas: Vec<f64>) -> PyResult<Vec<String>> {
        py.detach(|| guarded(|| self.lock()?.line_fields(&extra_alphas)))
    }

    /// Scores one cell (the GIL released): the dict of its `dasnas score`
    /// line; a bad `arch` is a `ValueError` naming it.
    fn score_one<'py>(
        &self,
        py: Python<'py>,
        arch: String,
        extra_alphas: Vec<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let line = py.detach(|| {
            guarded(|| {
                let mut run = self.lock()?;
                let cell = run.arch(&arch)?;
                run.score_lines(&[&cell], &extra_alphas)?
                    .pop()
                    .ok_or_else(|| Error::Internal(format!("cell {arch} was not scored")))
            })
        })?;
        json_to_py(py, &line)
    }

    /// What a reference formulation needs to compute `arch`'s measures on
    /// the same network: the network as JSON text, its initial parameters
    /// (weight seed + `repeat`) as a dict of float32 arrays in the crate's
    /// layouts, the scoring batch `(B, H, W, C)` float32 and the labels
    /// the losses use (uint32).
    fn reference_inputs<'py>(
        &self,
        py: Python<'py>,
        arch: String,
        repeat: usize,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        use numpy::{IntoPyArray, PyArrayMethods};
        let dasnas::run::ReferenceInputs {
            graph,
            params,
            batch,
            labels,
        } = py.detach(|| {
            guarded(|| {
                let run = self.lock()?;
                let cell = run.arch(&arch)?;
                run.reference_inputs(&cell, repeat)
            })
        })?;
        let weights = pyo3::types::PyDict::new(py);
        for (p, v) in graph.params.iter().zip(params) {
            weights.set_item(&p.name, v.into_pyarray(py))?;
        }
        let s = batch.shape;
        let images = batch.data.into_pyarray(py).reshape([s.n, s.h, s.w, s.c])?;
        let labels = labels.into_pyarray(py);
        (graph.to_json().to_string(), weights, images, labels).into_pyobject(py)
    }

    /// What measure `family` (`az_nas`, `zen`, `meco_opt`) draws for
    /// itself on `arch`: its weights (a dict of float32 arrays, crate
    /// layouts) and its named tensors (float32, NHWC).
    fn measure_inputs<'py>(
        &self,
        py: Python<'py>,
        arch: String,
        family: String,
        repeat: usize,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        use numpy::{IntoPyArray, PyArrayMethods};
        let (graph, drawn) = py.detach(|| {
            guarded(|| {
                let run = self.lock()?;
                let cell = run.arch(&arch)?;
                run.measure_inputs(&cell, &family, repeat)
            })
        })?;
        let weights = pyo3::types::PyDict::new(py);
        for (p, v) in graph.params.iter().zip(drawn.params) {
            weights.set_item(&p.name, v.into_pyarray(py))?;
        }
        let tensors = pyo3::types::PyDict::new(py);
        for (name, t) in drawn.tensors {
            let s = t.shape;
            tensors.set_item(name, t.data.into_pyarray(py).reshape([s.n, s.h, s.w, s.c])?)?;
        }
        (weights, tensors).into_pyobject(py)
    }

    /// Refuses (`ValueError`) an output file that holds lines of another
    /// run; `score_many(out=…)` checks it once before its first block.
    fn check_out(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| guarded(|| dasnas::results::check_append(&path, &self.stamp)))
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
        py.detach(|| guarded(|| Ok(self.lock()?.scorer_ref().block_size())))
    }

    /// The canonical strings of `archs`; `ValueError` naming the first bad one.
    fn check(&self, py: Python<'_>, archs: Vec<String>) -> PyResult<Vec<String>> {
        py.detach(|| {
            guarded(|| {
                let run = self.lock()?;
                Ok(run
                    .archs(&archs, "archs")?
                    .iter()
                    .map(|a| a.to_string())
                    .collect())
            })
        })
    }

    /// Scores `archs` in order (the GIL released): one dict per cell, the
    /// fields of a `dasnas score` line, `das@A` for each of `extra_alphas`.
    /// With `out`, the lines are also appended to that JSON Lines file and
    /// flushed, byte for byte as `dasnas score --out` writes them.
    #[pyo3(signature = (archs, extra_alphas, out=None))]
    fn score_block<'py>(
        &self,
        py: Python<'py>,
        archs: Vec<String>,
        extra_alphas: Vec<f64>,
        out: Option<std::path::PathBuf>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let lines = py.detach(|| {
            guarded(|| {
                let lines = self.lines(&archs, &extra_alphas)?;
                if let Some(path) = &out {
                    dasnas::run::output::append_lines(path, &lines)?;
                }
                Ok(lines)
            })
        })?;
        lines.iter().map(|v| json_to_py(py, v)).collect()
    }
}
