//! The native half of the `dasnas` Python package: `dasnas._dasnas`.
//!
//! Thin glue over the core crate: every function here converts Python
//! values, calls the library, and converts the result back. The pure-Python
//! package (`python/dasnas/`) holds the user-facing API, docstrings,
//! warnings, progress and the tool adapters; this module is private.
//!
//! Two rules hold for every entry point:
//! * errors become Python exceptions naming the bad input
//!   (`convert::to_py_err`): `ValueError` for bad arguments, data and
//!   architectures, `OSError` for files, `dasnas.DeviceError` for the GPU;
//! * no panic crosses into Python: work runs under `convert::guarded`,
//!   which turns a panic into `dasnas.InternalError`.

use pyo3::prelude::*;

mod convert;
mod functions;
mod scorer;

/// The module `dasnas._dasnas`.
#[pymodule]
fn _dasnas(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DeviceError", py.get_type::<convert::DeviceError>())?;
    m.add("InternalError", py.get_type::<convert::InternalError>())?;
    m.add_class::<scorer::PyScorer>()?;
    functions::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
