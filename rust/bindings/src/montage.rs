//! The bipolar montage and the EEG spectrogram recipes.

use crate::arrays::{filled_from, new_array, with_float_array, Float, FloatKernel, WithFloatArray};
use crate::buffers::Init;
use crate::errors::Result;
use crate::filters::sos_arg;
use crate::runtime::{detached, guarded};
use crate::spectral::{window_arg, PySpectrogram};
use hms_core::filterbank::MelFilterbank;
use hms_core::mel::{MelSpectrogram, PowerToDb};
use hms_core::montage::{self, MelRecipe, Preprocessing, ScipyRecipe};
use hms_core::raw::{Normalize, RawRecipe};
use hms_core::spectral::{Framing, PadMode};
use ndarray::ArrayViewD;
use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use std::sync::Arc;

/// The differences of channel pairs.
struct Montage(Vec<(usize, usize)>);

impl FloatKernel for Montage {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        montage::bipolar_montage_into(x, &self.0, out)
    }
}

#[pyfunction]
pub fn bipolar_montage<'py>(eeg: &Bound<'py, PyAny>, channels: Vec<String>) -> Result<Bound<'py, PyAny>> {
    let pairs = guarded(|| Ok(montage::bipolar_pairs(&channels)?))?;
    new_array(eeg, "eeg", Init::Zeroed, |s| montage::montage_shape(s, &pairs), &Montage(pairs.clone()))
}

/// The recipes' preprocessing: the middle `n_samples`, then the filters.
fn preprocessing(n_samples: Option<usize>, filters: Vec<PyReadonlyArrayDyn<'_, f64>>) -> Result<Preprocessing> {
    let filters = filters.iter().map(sos_arg).collect::<Result<Vec<_>>>()?;
    guarded(|| Ok(Preprocessing::new(n_samples, filters)?))
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
        let pairs = guarded(|| Ok(montage::bipolar_pairs(&channels)?))?;
        let pre = preprocessing(n_samples, filters)?;
        let py = window.py();
        let window = window_arg(window)?;
        // Checked now (any hop), so that bad parameters are reported before any work; the
        // sampling rate by this recipe's name for it.
        hms_core::error::positive(fs, "fs")?;
        // librosa's defaults: centred frames padded with zeros, Slaney mels and norm.
        let spec = move |hop: usize| {
            let framing = Framing::new(n_fft, hop, true, PadMode::Constant)?;
            let bank = MelFilterbank::new(fs, n_fft, n_mels, fmin, fmax, false, true)?;
            MelSpectrogram::new(framing, &window, Some(win_length), bank, power)
        };
        // The filterbank and window are built (and dropped) without the GIL, their memory checked.
        detached(py, || spec(hop_length.unwrap_or(1)).map(drop))?;
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
        guarded(|| Ok(recipe.check()?))?;
        Ok(PyEegMelRecipe { pairs, recipe })
    }
}

impl FloatKernel for PyEegMelRecipe {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        montage::mel_images_into(x, &self.pairs, &self.recipe, out)
    }
}

/// The mel recipe: (..., 4, n_mels, width).
#[pyfunction]
pub fn eeg_mel_spectrograms<'py>(eeg: &Bound<'py, PyAny>, recipe: PyRef<'py, PyEegMelRecipe>) -> Result<Bound<'py, PyAny>> {
    new_array(eeg, "eeg", Init::Zeroed, |s| montage::mel_shape(s, &recipe.recipe), &*recipe)
}

struct ScipyImages {
    pairs: Vec<(usize, usize)>,
    recipe: ScipyRecipe,
}

impl FloatKernel for ScipyImages {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        montage::scipy_images_into(x, &self.pairs, &self.recipe, out)
    }
}

/// The scipy recipe: (..., 4, n_freq, n_segments), the bins up to `fmax` (None: all).
#[pyfunction]
pub fn eeg_scipy_spectrograms<'py>(
    eeg: &Bound<'py, PyAny>,
    channels: Vec<String>,
    n_samples: Option<usize>,
    filters: Vec<PyReadonlyArrayDyn<'py, f64>>,
    spec: PyRef<'py, PySpectrogram>,
    amin: f64,
    fmax: Option<f64>,
) -> Result<Bound<'py, PyAny>> {
    let pairs = guarded(|| Ok(montage::bipolar_pairs(&channels)?))?;
    let pre = preprocessing(n_samples, filters)?;
    let n_freq = guarded(|| Ok(fmax.map(|fmax| spec.plan.bins_up_to(spec.fs, fmax)).transpose()?))?;
    let kernel = ScipyImages { pairs, recipe: ScipyRecipe { pre, spec: spec.plan.clone(), amin, n_freq } };
    new_array(eeg, "eeg", Init::Zeroed, |s| montage::scipy_shape(s, &kernel.recipe), &kernel)
}

/// The raw-EEG input recipe, checked once, for `eeg_raw_inputs`.
#[pyclass(module = "hms._native", name = "EegRawRecipe", frozen)]
pub struct PyEegRawRecipe {
    pub recipe: RawRecipe,
}

#[pymethods]
impl PyEegRawRecipe {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        channels: Vec<String>,
        montage: &str,
        n_samples: Option<usize>,
        filters: Vec<PyReadonlyArrayDyn<'_, f64>>,
        fs: f64,
        rate: f64,
        demean: bool,
        normalize: &str,
        clip: f64,
        scale: f64,
        eps: f64,
    ) -> Result<Self> {
        let pairs = guarded(|| Ok(montage::montage_pairs(&channels, montage)?))?;
        let pre = preprocessing(n_samples, filters)?;
        let normalize = Normalize::new(normalize, clip, scale, eps)?;
        let recipe = guarded(|| Ok(RawRecipe::new(pairs, channels.len(), pre, fs, rate, demean, normalize)?))?;
        Ok(PyEegRawRecipe { recipe })
    }

    /// (up, down): the resampling fraction rate / fs, (1, 1) when rate == fs.
    #[getter]
    fn ratio(&self) -> (usize, usize) {
        self.recipe.ratio()
    }

    #[getter]
    fn n_links(&self) -> usize {
        self.recipe.n_links()
    }
}

/// float32 inputs whatever the EEG's float type.
impl<'py> WithFloatArray<'py> for &PyEegRawRecipe {
    type Output = Bound<'py, PyAny>;
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<Self::Output> {
        filled_from(x, "eeg", Init::Written, |s| self.recipe.shape(s), |x, out: &mut [f32]| self.recipe.inputs_into(x, out))
    }
}

/// The raw recipe's inputs: (..., links, n_out) float32.
#[pyfunction]
pub fn eeg_raw_inputs<'py>(eeg: &Bound<'py, PyAny>, recipe: PyRef<'py, PyEegRawRecipe>) -> Result<Bound<'py, PyAny>> {
    with_float_array(eeg, "eeg", &*recipe)
}
