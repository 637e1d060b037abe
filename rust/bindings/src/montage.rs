//! The bipolar montage and the EEG spectrogram recipes.

use crate::arrays::{new_array, ArrayKernel, Float};
use crate::errors::Result;
use crate::filters::sos_arg;
use crate::spectral::{mel_plan, spectrogram_plan, window_arg};
use hms_core::mel::PowerToDb;
use hms_core::montage::{self, MelRecipe, Preprocessing, ScipyRecipe};
use ndarray::ArrayViewD;
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;
use std::sync::Arc;

struct Montage {
    pairs: Vec<(usize, usize)>,
}

impl ArrayKernel for Montage {
    type Out<T: Float> = T;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        montage::montage_shape(shape, &self.pairs)
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        montage::bipolar_montage_into(x, &self.pairs, out)
    }
}

#[pyfunction]
pub fn bipolar_montage<'py>(eeg: &Bound<'py, PyAny>, channels: Vec<String>) -> Result<Bound<'py, PyAny>> {
    new_array(eeg, "eeg", &Montage { pairs: montage::bipolar_pairs(&channels)? })
}

/// The recipes' preprocessing: the middle `n_samples`, then the filters.
fn preprocessing(n_samples: Option<usize>, filters: Vec<PyReadonlyArrayDyn<'_, f64>>) -> Result<Preprocessing> {
    let filters = filters.iter().map(sos_arg).collect::<Result<Vec<_>>>()?;
    Ok(Preprocessing::new(n_samples, filters)?)
}

/// The EEG mel recipe's arguments, checked once (`hop_length` None: kept samples // 256), for
/// `eeg_mel_spectrograms` and `model_inputs`.
#[pyclass(module = "hms._native", name = "EegMelRecipe", frozen)]
pub struct PyEegMelRecipe {
    pub pairs: Vec<(usize, usize)>,
    pub recipe: MelRecipe,
}

#[pymethods]
impl PyEegMelRecipe {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        channels: Vec<String>,
        n_samples: Option<usize>,
        filters: Vec<PyReadonlyArrayDyn<'_, f64>>,
        fs: f64,
        n_fft: usize,
        hop_length: Option<usize>,
        win_length: usize,
        window: &Bound<'_, PyAny>,
        n_mels: usize,
        fmin: f64,
        fmax: f64,
        power: f64,
        amin: f64,
        top_db: Option<f64>,
        width_multiple: usize,
        offset: f64,
        scale: f64,
    ) -> Result<Self> {
        let pairs = montage::bipolar_pairs(&channels)?;
        let pre = preprocessing(n_samples, filters)?;
        let window = window_arg(window)?;
        // Checked now (any hop), so that bad parameters are reported before any work; the
        // sampling rate by this recipe's name for it.
        hms_core::error::positive(fs, "fs")?;
        let spec =
            move |hop: usize| mel_plan(fs, n_fft, hop, win_length, &window, true, "constant", power, n_mels, fmin, fmax, false, true);
        spec(hop_length.unwrap_or(1))?;
        let recipe = MelRecipe {
            pre,
            spec: Arc::new(move |kept: usize| {
                let hop = hop_length.unwrap_or(kept / 256);
                hms_core::ensure!(hop >= 1, "hop_length: {kept} samples give a hop of {kept} // 256 = 0; pass hop_length");
                spec(hop)
            }),
            db: PowerToDb::new(None, amin, top_db)?,
            width_multiple,
            offset,
            scale,
        };
        recipe.check()?;
        Ok(PyEegMelRecipe { pairs, recipe })
    }
}

impl ArrayKernel for PyEegMelRecipe {
    type Out<T: Float> = T;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        montage::mel_shape(shape, &self.recipe)
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        montage::mel_images_into(x, &self.pairs, &self.recipe, out)
    }
}

/// The mel recipe: (..., 4, n_mels, width).
#[pyfunction]
pub fn eeg_mel_spectrograms<'py>(eeg: &Bound<'py, PyAny>, recipe: PyRef<'py, PyEegMelRecipe>) -> Result<Bound<'py, PyAny>> {
    new_array(eeg, "eeg", &*recipe)
}

struct ScipyImages {
    pairs: Vec<(usize, usize)>,
    recipe: ScipyRecipe,
}

impl ArrayKernel for ScipyImages {
    type Out<T: Float> = T;
    const ZEROED: bool = true;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>> {
        montage::scipy_shape(shape, &self.recipe)
    }
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        montage::scipy_images_into(x, &self.pairs, &self.recipe, out)
    }
}

/// The scipy recipe: (..., 4, n_freq, n_segments), the bins up to `fmax` (None: all).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn eeg_scipy_spectrograms<'py>(
    eeg: &Bound<'py, PyAny>,
    channels: Vec<String>,
    n_samples: Option<usize>,
    filters: Vec<PyReadonlyArrayDyn<'py, f64>>,
    fs: f64,
    window: &Bound<'py, PyAny>,
    nperseg: usize,
    noverlap: usize,
    nfft: usize,
    detrend: &str,
    scaling: &str,
    amin: f64,
    fmax: Option<f64>,
) -> Result<Bound<'py, PyAny>> {
    let pairs = montage::bipolar_pairs(&channels)?;
    let pre = preprocessing(n_samples, filters)?;
    let spec = spectrogram_plan(fs, window, nperseg, noverlap, nfft, detrend, scaling)?;
    let n_freq = fmax.map(|fmax| spec.bins_up_to(fs, fmax)).transpose()?;
    new_array(eeg, "eeg", &ScipyImages { pairs, recipe: ScipyRecipe { pre, spec, amin, n_freq } })
}
