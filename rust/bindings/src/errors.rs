//! The bindings' one error type: a kernel's `CoreError` or an exception raised here. Functions
//! return [`Result`], `?` converts both, and pyo3 raises it through `From<Error> for PyErr`.

use hms_core::CoreError;
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::PyErr;

pub enum Error {
    /// A kernel's error: ValueError for a bad argument, MemoryError for memory that cannot be
    /// allocated (including sizes that overflow).
    Core(CoreError),
    Py(PyErr),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        Error::Core(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

impl From<numpy::BorrowError> for Error {
    fn from(e: numpy::BorrowError) -> Self {
        Error::Py(e.into())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(e) if e.is_alloc() => PyMemoryError::new_err(e.to_string()),
            Error::Core(e) => PyValueError::new_err(e.to_string()),
            Error::Py(e) => e,
        }
    }
}

pub fn value_error(msg: impl Into<String>) -> Error {
    Error::Py(PyValueError::new_err(msg.into()))
}

pub fn type_error(msg: impl Into<String>) -> Error {
    Error::Py(PyTypeError::new_err(msg.into()))
}
