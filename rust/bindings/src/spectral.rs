//! Windows, STFT, spectrograms, mel filterbanks and spectrograms, decibels.

use crate::arrays::{new_array, ArrayKernel, Float};
use crate::errors::{type_error, value_error, Result};
use hms_core::filterbank::MelFilterbank;
use hms_core::mel::{self, MelSpectrogram, PowerToDb};
use hms_core::spectral::{Detrend, Framing, PadMode, Scaling, Spectrogram, Stft, Window};
use ndarray::{Array2, ArrayViewD};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArrayDyn};
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
        return Ok(Window::Values(values.iter().copied().collect()));
    }
    Err(type_error("window must be a name, a (name, parameter) tuple or a 1-D float64 array"))
}

/// The periodic window of `n` points (values are checked and returned as they are).
#[pyfunction]
pub fn get_window<'py>(py: Python<'py>, window: &Bound<'py, PyAny>, n: usize) -> Result<Bound<'py, PyArray1<f64>>> {
    Ok(window_arg(window)?.periodic(n)?.into_pyarray(py))
}

impl ArrayKernel for Stft {
    type Out<T: Float> = T::Complex;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        Stft::output_shape(self, shape)
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T::Complex]) -> hms_core::Result<()> {
        self.compute_into(x, T::complex_mut(out))
    }
}

/// STFT with frames first: (..., n_frames, n_freq).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn stft<'py>(
    x: &Bound<'py, PyAny>,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &Bound<'py, PyAny>,
    center: bool,
    pad_mode: &str,
) -> Result<Bound<'py, PyAny>> {
    let framing = Framing::new(n_fft, hop_length, center, PadMode::from_name(pad_mode)?)?;
    new_array(x, "x", &Stft::new(framing, &window_arg(window)?, Some(win_length))?)
}

impl ArrayKernel for Spectrogram {
    type Out<T: Float> = T;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        Spectrogram::output_shape(self, shape)
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        self.compute_into(x, out)
    }
}

/// scipy.signal.spectrogram's arguments, checked.
pub fn spectrogram_plan(
    fs: f64,
    window: &Bound<'_, PyAny>,
    nperseg: usize,
    noverlap: usize,
    nfft: usize,
    detrend: &str,
    scaling: &str,
) -> Result<Spectrogram> {
    let (detrend, scaling) = (Detrend::from_name(detrend)?, Scaling::from_name(scaling)?);
    Ok(Spectrogram::new(fs, &window_arg(window)?, nperseg, noverlap, nfft, detrend, scaling)?)
}

/// scipy.signal.spectrogram's Sxx with segments first: (..., n_segments, n_freq).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn spectrogram<'py>(
    x: &Bound<'py, PyAny>,
    fs: f64,
    window: &Bound<'py, PyAny>,
    nperseg: usize,
    noverlap: usize,
    nfft: usize,
    detrend: &str,
    scaling: &str,
) -> Result<Bound<'py, PyAny>> {
    new_array(x, "x", &spectrogram_plan(fs, window, nperseg, noverlap, nfft, detrend, scaling)?)
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
    let mel = MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm)?;
    let dense: Vec<f32> = mel.to_dense().into_iter().map(|v| v as f32).collect();
    Ok(Array2::from_shape_vec((n_mels, mel.n_freq()), dense).expect("n_mels x n_freq").into_pyarray(py))
}

/// A mel spectrogram's arguments, checked.
#[allow(clippy::too_many_arguments)]
pub fn mel_plan(
    sr: f64,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &Window,
    center: bool,
    pad_mode: &str,
    power: f64,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> hms_core::Result<MelSpectrogram> {
    let framing = Framing::new(n_fft, hop_length, center, PadMode::from_name(pad_mode)?)?;
    let bank = MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm)?;
    MelSpectrogram::new(framing, window, Some(win_length), bank, power)
}

impl ArrayKernel for MelSpectrogram {
    type Out<T: Float> = T;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        MelSpectrogram::output_shape(self, shape)
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        self.compute_into(x, out)
    }
}

/// Mel power spectrogram: (..., n_mels, n_frames).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn melspectrogram<'py>(
    x: &Bound<'py, PyAny>,
    sr: f64,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &Bound<'py, PyAny>,
    center: bool,
    pad_mode: &str,
    power: f64,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> Result<Bound<'py, PyAny>> {
    let window = window_arg(window)?;
    let plan = mel_plan(sr, n_fft, hop_length, win_length, &window, center, pad_mode, power, n_mels, fmin, fmax, htk, slaney_norm)?;
    new_array(x, "x", &plan)
}

impl ArrayKernel for PowerToDb {
    type Out<T: Float> = T;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        Ok(shape.to_vec())
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        mel::power_to_db_into(x, self, out)
    }
}

/// power_to_db per 2-D spectrogram; `reference` None is each spectrogram's maximum.
#[pyfunction]
pub fn power_to_db<'py>(s: &Bound<'py, PyAny>, reference: Option<f64>, amin: f64, top_db: Option<f64>) -> Result<Bound<'py, PyAny>> {
    new_array(s, "S", &PowerToDb::new(reference, amin, top_db)?)
}
