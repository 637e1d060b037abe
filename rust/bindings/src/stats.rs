//! Streaming statistics (the native state of `hms.dsp.RunningStats`).

use crate::arrays::{with_float_array, Float, WithFloatArray};
use crate::errors::{value_error, Result};
use crate::runtime::detached;
use hms_core::stats::{Moments, RunningStats};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyArrayDyn, PyArrayMethods, PyReadonlyArray2};
use pyo3::prelude::*;

/// Columns of the state: count, nan_count, mean, mean_lo, m2, min, max (see `stats::Moments`).
const STATE_FIELDS: usize = 7;

#[pyclass(module = "hms._native", name = "RunningStatsCore")]
pub struct PyRunningStats {
    inner: RunningStats,
}

/// Adds the values of an array.
struct Update<'s>(&'s mut RunningStats);

impl<'py> WithFloatArray<'py> for Update<'_> {
    type Output = ();
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<()> {
        let x = x.try_readonly()?;
        let view = x.as_array();
        detached(x.py(), || self.0.update(view))
    }
}

#[pymethods]
impl PyRunningStats {
    #[new]
    fn new(per_channel: bool) -> Self {
        let inner = if per_channel { RunningStats::per_channel() } else { RunningStats::global() };
        PyRunningStats { inner }
    }

    #[getter]
    fn per_channel(&self) -> bool {
        self.inner.is_per_channel()
    }

    /// Adds the values of `x`; per channel, axis 0 is the channel axis.
    fn update(&mut self, x: &Bound<'_, PyAny>) -> Result<()> {
        with_float_array(x, "x", Update(&mut self.inner))
    }

    fn merge(&mut self, other: PyRef<'_, PyRunningStats>) -> Result<()> {
        Ok(self.inner.merge(&other.inner)?)
    }

    /// One row per channel of the `STATE_FIELDS` columns.
    fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let rows: Vec<f64> = self
            .inner
            .channels()
            .iter()
            .flat_map(|m| [m.count as f64, m.nan_count as f64, m.mean, m.mean_lo, m.m2, m.min, m.max])
            .collect();
        let n = rows.len() / STATE_FIELDS;
        Array2::from_shape_vec((n, STATE_FIELDS), rows).expect("n x fields").into_pyarray(py)
    }

    #[staticmethod]
    fn from_state(per_channel: bool, state: PyReadonlyArray2<'_, f64>) -> Result<Self> {
        let state = state.as_array();
        if state.ncols() != STATE_FIELDS {
            return Err(value_error(format!("RunningStats state must have {STATE_FIELDS} columns, got shape {:?}", state.shape())));
        }
        let as_count = |v: f64, what: &str| -> Result<u64> {
            if v >= 0.0 && v.fract() == 0.0 && v < 9.007_199_254_740_992e15 {
                Ok(v as u64)
            } else {
                Err(value_error(format!("RunningStats state: {what} must be a non-negative integer, got {v}")))
            }
        };
        let channels = state
            .rows()
            .into_iter()
            .map(|r| {
                Ok(Moments {
                    count: as_count(r[0], "count")?,
                    nan_count: as_count(r[1], "nan_count")?,
                    mean: r[2],
                    mean_lo: r[3],
                    m2: r[4],
                    min: r[5],
                    max: r[6],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PyRunningStats { inner: RunningStats::from_moments(channels, per_channel)? })
    }
}
