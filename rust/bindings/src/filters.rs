//! Zero-phase IIR filtering (second-order sections) and polyphase resampling.

use crate::arrays::{new_array, same_shape, Float, FloatKernel};
use crate::buffers::Init;
use crate::errors::{value_error, Result};
use crate::runtime::{detached, guarded};
use crate::spectral::window_arg;
use hms_core::filter::{self, Sos};
use hms_core::resample::{self, Design, Padding, Resampler};
use ndarray::{Array2, ArrayViewD, Axis};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArrayDyn};
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

struct Resample {
    resampler: Resampler,
    axis: usize,
}

impl FloatKernel for Resample {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        // The filter's arrangement depends on the signal's length (scipy's padding of it).
        self.resampler.plan(x.len_of(Axis(self.axis)))?.resample_into(x, self.axis, out)
    }
}

/// Resampling by `up / down` along `axis`: the filter designed with `window` (a name or (name,
/// parameter)) or given as `taps`; `centred` is resample_poly's alignment, else upfirdn's.
#[pyfunction]
#[pyo3(signature = (x, up, down, axis, window, taps, padtype, cval, centred=true))]
#[allow(clippy::too_many_arguments)]
pub fn resample_poly<'py>(
    x: &Bound<'py, PyAny>,
    up: u64,
    down: u64,
    axis: usize,
    window: Option<&Bound<'py, PyAny>>,
    taps: Option<PyReadonlyArrayDyn<'py, f64>>,
    padtype: &str,
    cval: Option<f64>,
    centred: bool,
) -> Result<Bound<'py, PyAny>> {
    let padding = Padding::from_name(padtype, cval)?;
    let design = match (window, taps) {
        (Some(window), None) => Design::Window(window_arg(window)?),
        (None, Some(taps)) => {
            let taps = taps.as_array();
            if taps.ndim() != 1 {
                return Err(value_error(format!("window (the FIR taps) must be 1-D, got shape {:?}", taps.shape())));
            }
            Design::Taps(hms_core::alloc::collect(taps.len(), taps.iter().copied(), "the FIR taps of window")?)
        }
        _ => return Err(value_error("give either window or taps")),
    };
    // The design takes 20 * max(up, down) + 1 taps: built without the GIL.
    let kernel = Resample { resampler: detached(x.py(), || Resampler::new(up, down, &design, padding, centred))?, axis };
    new_array(x, "x", Init::Written, |s| kernel.resampler.output_shape(s, axis), &kernel)
}

/// scipy.signal.firwin(numtaps, cutoff, window=window): a low-pass windowed sinc, cutoff relative
/// to Nyquist.
#[pyfunction]
pub fn firwin<'py>(py: Python<'py>, numtaps: usize, cutoff: f64, window: &Bound<'py, PyAny>) -> Result<Bound<'py, PyArray1<f64>>> {
    let window = window_arg(window)?;
    Ok(detached(py, || resample::firwin(numtaps, cutoff, &window))?.into_pyarray(py))
}
