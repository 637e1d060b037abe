//! Windows, STFT, spectrograms, mel filterbanks and spectrograms, decibels.

use crate::arrays::{filled_from, new_array, same_shape, with_float_array, Float, FloatKernel, WithFloatArray};
use crate::buffers::Init;
use crate::errors::{type_error, value_error, Result};
use crate::runtime::{detached, guarded};
use hms_core::filterbank::MelFilterbank;
use hms_core::mel::{self, MelSpectrogram, PowerToDb};
use hms_core::spectral::{Detrend, Framing, PadMode, Scaling, Spectrogram, Stft, Window};
use ndarray::{Array2, ArrayViewD};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;

/// A window given as a name, a (name, parameter) tuple or a 1-D array of float64 values.
pub fn window_arg(window: &Bound<'_, PyAny>) -> Result<Window> {
    if let Ok(name) = window.extract::<String>() {
        return Ok(Window::from_name(&name, None)?);
    }
    if let Ok((name, param)) = window.extract::<(String, f64)>() {
        return Ok(Window::from_name(&name, Some(param))?);
    }
    if let Ok(values) = window.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        let values = values.as_array();
        if values.ndim() != 1 {
            return Err(value_error(format!("window must be 1-D, got shape {:?}", values.shape())));
        }
        return Ok(Window::Values(hms_core::alloc::collect(values.len(), values.iter().copied(), "the window's values")?));
    }
    Err(type_error("window must be a name, a (name, parameter) tuple or a 1-D float64 array"))
}

/// The periodic window of `n` points (values are checked and returned as they are).
#[pyfunction]
pub fn get_window<'py>(py: Python<'py>, window: &Bound<'py, PyAny>, n: usize) -> Result<Bound<'py, PyArray1<f64>>> {
    let window = window_arg(window)?;
    Ok(detached(py, || window.periodic(n))?.into_pyarray(py))
}

/// The STFT's output is complex: its own dispatch.
impl<'py> WithFloatArray<'py> for &Stft {
    type Output = Bound<'py, PyAny>;
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<Self::Output> {
        let shape = |s: &[usize]| self.output_shape(s);
        filled_from(x, "x", Init::Zeroed, shape, |x, out: &mut [T::Complex]| self.compute_into(x, T::complex_mut(out)))
    }
}

/// librosa's framing arguments, checked once, for `stft` and `melspectrogram`.
#[pyclass(module = "hms._native", name = "StftPlan", frozen)]
pub struct PyStft {
    stft: Stft,
    framing: Framing,
    window: Window,
    win_length: usize,
}

#[pymethods]
impl PyStft {
    #[new]
    fn new(n_fft: usize, hop_length: usize, win_length: usize, window: &Bound<'_, PyAny>, center: bool, pad_mode: &str) -> Result<Self> {
        let framing = Framing::new(n_fft, hop_length, center, PadMode::from_name(pad_mode)?)?;
        let window_ = window_arg(window)?;
        // The plan (window, FFT tables) is built without the GIL, its allocations checked.
        let stft = detached(window.py(), || Stft::new(framing, &window_, Some(win_length)))?;
        Ok(PyStft { stft, framing, window: window_, win_length })
    }
}

/// STFT with frames first: (..., n_frames, n_freq).
#[pyfunction]
pub fn stft<'py>(x: &Bound<'py, PyAny>, plan: PyRef<'py, PyStft>) -> Result<Bound<'py, PyAny>> {
    with_float_array(x, "x", &plan.stft)
}

/// scipy.signal.spectrogram's arguments, checked once (for `spectrogram` and the scipy recipe).
#[pyclass(module = "hms._native", name = "SpectrogramPlan", frozen)]
pub struct PySpectrogram {
    pub plan: Spectrogram,
    pub fs: f64,
}

#[pymethods]
impl PySpectrogram {
    #[new]
    fn new(fs: f64, window: &Bound<'_, PyAny>, nperseg: usize, noverlap: usize, nfft: usize, detrend: &str, scaling: &str) -> Result<Self> {
        let (detrend, scaling) = (Detrend::from_name(detrend)?, Scaling::from_name(scaling)?);
        let window_ = window_arg(window)?;
        let plan = detached(window.py(), || Spectrogram::new(fs, &window_, nperseg, noverlap, nfft, detrend, scaling))?;
        Ok(PySpectrogram { plan, fs })
    }
}

impl FloatKernel for Spectrogram {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        self.compute_into(x, out)
    }
}

/// scipy.signal.spectrogram's Sxx with segments first: (..., n_segments, n_freq).
#[pyfunction]
pub fn spectrogram<'py>(x: &Bound<'py, PyAny>, plan: PyRef<'py, PySpectrogram>) -> Result<Bound<'py, PyAny>> {
    new_array(x, "x", Init::Zeroed, |s| plan.plan.output_shape(s), &plan.plan)
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn mel_filterbank<'py>(
    py: Python<'py>,
    sr: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> Result<Bound<'py, PyArray2<f32>>> {
    let dense = detached(py, || {
        let mel = MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm)?;
        let dense = mel.to_dense(|v| v as f32)?;
        Ok(Array2::from_shape_vec((n_mels, mel.n_freq()), dense).expect("n_mels x n_freq"))
    })?;
    Ok(dense.into_pyarray(py))
}

impl FloatKernel for MelSpectrogram {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        self.compute_into(x, out)
    }
}

/// Mel power spectrogram: (..., n_mels, n_frames).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn melspectrogram<'py>(
    x: &Bound<'py, PyAny>,
    plan: PyRef<'py, PyStft>,
    sr: f64,
    power: f64,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> Result<Bound<'py, PyAny>> {
    let plan: &PyStft = &plan;
    let mel = detached(x.py(), || {
        let bank = MelFilterbank::new(sr, plan.framing.n_fft, n_mels, fmin, fmax, htk, slaney_norm)?;
        MelSpectrogram::new(plan.framing, &plan.window, Some(plan.win_length), bank, power)
    })?;
    new_array(x, "x", Init::Zeroed, |s| mel.output_shape(s), &mel)
}

impl FloatKernel for PowerToDb {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        mel::power_to_db_into(x, self, out)
    }
}

/// power_to_db per 2-D spectrogram; `reference` None is each spectrogram's maximum.
#[pyfunction]
pub fn power_to_db<'py>(s: &Bound<'py, PyAny>, reference: Option<f64>, amin: f64, top_db: Option<f64>) -> Result<Bound<'py, PyAny>> {
    let db = guarded(|| Ok(PowerToDb::new(reference, amin, top_db)?))?;
    new_array(s, "S", Init::Zeroed, same_shape, &db)
}
