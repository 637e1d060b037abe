//! Zero-phase IIR filtering (second-order sections).

use crate::arrays::{new_array, same_shape, Float, FloatKernel};
use crate::buffers::Init;
use crate::errors::Result;
use crate::runtime::guarded;
use hms_core::filter::{self, Sos};
use ndarray::{Array2, ArrayViewD};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArrayDyn};
use pyo3::prelude::*;

/// The checked sections of a float64 array (n_sections, 6).
pub fn sos_arg(sos: &PyReadonlyArrayDyn<'_, f64>) -> Result<Sos> {
    guarded(|| Ok(Sos::new(sos.as_array())?))
}

struct FiltFilt {
    sos: Sos,
    axis: usize,
}

impl FloatKernel for FiltFilt {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        filter::sosfiltfilt_into(&self.sos, x, self.axis, out)
    }
}

#[pyfunction]
pub fn sosfiltfilt<'py>(sos: PyReadonlyArrayDyn<'py, f64>, x: &Bound<'py, PyAny>, axis: usize) -> Result<Bound<'py, PyAny>> {
    new_array(x, "x", Init::Written, same_shape, &FiltFilt { sos: sos_arg(&sos)?, axis })
}

#[pyfunction]
pub fn sosfilt_zi<'py>(py: Python<'py>, sos: PyReadonlyArrayDyn<'py, f64>) -> Result<Bound<'py, PyArray2<f64>>> {
    let sos = sos_arg(&sos)?;
    let zi = guarded(|| {
        let zi: Vec<f64> = sos.initial_conditions().into_iter().flatten().collect();
        let n = zi.len() / 2;
        Ok(Array2::from_shape_vec((n, 2), zi).expect("n x 2"))
    })?;
    Ok(zi.into_pyarray(py))
}

#[pyfunction]
pub fn sos_padlen(sos: PyReadonlyArrayDyn<'_, f64>) -> Result<usize> {
    Ok(sos_arg(&sos)?.padlen())
}
