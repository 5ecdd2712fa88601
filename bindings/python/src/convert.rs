//! Errors, panics and JSON values across the boundary to Python.

use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(
    _dasnas,
    DeviceError,
    PyRuntimeError,
    "A GPU that cannot be used (no driver, no such GPU, no NVRTC, a kernel that does not compile) or that failed."
);
create_exception!(
    _dasnas,
    InternalError,
    PyRuntimeError,
    "A bug in dasnas (a Rust panic, caught before it reached Python). Please report it with the message."
);

/// The Python exception of a library error: its kind decides the class,
/// its full message (with every context) is the text.
pub fn to_py_err(e: dasnas::Error) -> PyErr {
    use dasnas::Error as E;
    let msg = e.to_string();
    match e.root() {
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        E::Io { .. } | E::Csv { .. } => PyOSError::new_err(msg),
        E::Device(_) | E::Driver { .. } => DeviceError::new_err(msg),
        E::Internal(_) => InternalError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// Runs `f`, turning a library error into its Python exception and a panic
/// into [`InternalError`] (`dasnas::error::catch_panic`); nothing unwinds
/// past this call.
pub fn guarded<T>(f: impl FnOnce() -> dasnas::Result<T>) -> PyResult<T> {
    dasnas::error::catch_panic(f).map_err(to_py_err)
}

/// A JSON value as the Python object `json.loads` would give.
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as V;
    Ok(match v {
        V::Null => py.None().into_bound(py),
        V::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        V::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        V::String(s) => s.into_pyobject(py)?.into_any(),
        V::Array(a) => {
            let items = a
                .iter()
                .map(|x| json_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        V::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// A serialisable report as a Python dict (through its JSON form).
pub fn report_to_py<'py, T: serde::Serialize>(
    py: Python<'py>,
    r: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(r)
        .map_err(|e| InternalError::new_err(format!("report does not serialise: {e}")))?;
    json_to_py(py, &v)
}
