//! Streaming statistics (the native state of `hms.dsp.RunningStats`).
//!
//! One object may be updated by several Python threads at once: the summaries of an update are
//! computed without the GIL and without any lock, and merged into the state under a mutex (held
//! only for the merge, never while waiting for the GIL). The result equals sequential updates up
//! to the order of the merges (rounding only).

use crate::arrays::{with_float_array, Float, WithFloatArray};
use crate::errors::{value_error, Result};
use crate::runtime::{detached, guarded};
use hms_core::stats::{Moments, RunningStats};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyArrayDyn, PyArrayMethods, PyReadonlyArray2};
use pyo3::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// Columns of the state: count, nan_count, mean, mean_lo, m2, min, max (see `stats::Moments`).
const STATE_FIELDS: usize = 7;

#[pyclass(module = "hms._native", name = "RunningStatsCore", frozen)]
pub struct PyRunningStats {
    inner: Mutex<RunningStats>,
}

impl PyRunningStats {
    fn lock(&self) -> MutexGuard<'_, RunningStats> {
        // A panic while the lock was held left the state as it was before the merge (merges
        // happen after every check), so a poisoned lock is safe to take.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The summaries of an array's values for statistics of a kind (per channel, channel count).
struct Summarize(bool, Option<usize>);

impl<'py> WithFloatArray<'py> for Summarize {
    type Output = Vec<Moments>;
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<Vec<Moments>> {
        let x = x.try_readonly()?;
        let view = x.as_array();
        detached(x.py(), || RunningStats::summarize_as(self.0, self.1, view))
    }
}

#[pymethods]
impl PyRunningStats {
    #[new]
    fn new(per_channel: bool) -> Self {
        let inner = if per_channel { RunningStats::per_channel() } else { RunningStats::global() };
        PyRunningStats { inner: Mutex::new(inner) }
    }

    #[getter]
    fn per_channel(&self) -> bool {
        self.lock().is_per_channel()
    }

    /// Adds the values of `x`; per channel, axis 0 is the channel axis.
    fn update(&self, x: &Bound<'_, PyAny>) -> Result<()> {
        // The channel count as it is now, for an early check; `absorb` checks it again.
        let (per_channel, channels) = self.lock().kind();
        let new = with_float_array(x, "x", Summarize(per_channel, channels))?;
        guarded(|| Ok(self.lock().absorb(new)?))
    }

    fn merge(&self, other: &Bound<'_, PyRunningStats>) -> Result<()> {
        // A copy of the other state first (it may be this object): one lock at a time.
        let theirs = other.get().lock().clone();
        guarded(|| Ok(self.lock().merge(&theirs)?))
    }

    /// One row per channel of the `STATE_FIELDS` columns.
    fn state<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyArray2<f64>>> {
        let rows = guarded(|| {
            let stats = self.lock();
            let channels = stats.channels();
            let fields = channels.iter().flat_map(|m| [m.count as f64, m.nan_count as f64, m.mean, m.mean_lo, m.m2, m.min, m.max]);
            let values = hms_core::alloc::collect(channels.len() * STATE_FIELDS, fields, "the state of the statistics")?;
            Ok(Array2::from_shape_vec((channels.len(), STATE_FIELDS), values).expect("n x fields"))
        })?;
        Ok(rows.into_pyarray(py))
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
        let mut channels = hms_core::alloc::with_capacity(state.nrows(), "the channels of state")?;
        for r in state.rows() {
            let m = Moments {
                count: as_count(r[0], "count")?,
                nan_count: as_count(r[1], "nan_count")?,
                mean: r[2],
                mean_lo: r[3],
                m2: r[4],
                min: r[5],
                max: r[6],
            };
            // What updates can produce: a finite mean, m2 >= 0 (inf where it overflowed).
            let valid = m.count == 0 || (m.mean.is_finite() && m.mean_lo.is_finite() && m.m2 >= 0.0 && m.min <= m.max);
            if !valid {
                return Err(value_error(format!("RunningStats state: invalid moments {:?}", r.to_vec())));
            }
            channels.push(m);
        }
        Ok(PyRunningStats { inner: Mutex::new(RunningStats::from_moments(channels, per_channel)?) })
    }
}
