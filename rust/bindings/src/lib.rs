//! Python bindings of the hms native core (`hms._native`).
//!
//! These modules only convert arrays, release the GIL around the work, and map errors (and any
//! panic) to Python exceptions. The kernels live in the `hms-core` crate, which knows nothing of
//! Python.

mod arrays;
mod buffers;
mod errors;
mod filters;
mod inputs;
mod montage;
mod runtime;
mod spectral;
mod stats;
mod transform;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(runtime::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(buffers::_output_pool_stats, m)?)?;
    m.add_function(wrap_pyfunction!(filters::sosfiltfilt, m)?)?;
    m.add_function(wrap_pyfunction!(filters::sosfilt_zi, m)?)?;
    m.add_function(wrap_pyfunction!(filters::sos_padlen, m)?)?;
    m.add_function(wrap_pyfunction!(transform::clip_log, m)?)?;
    m.add_function(wrap_pyfunction!(transform::clip_log_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(transform::float16_to_float32, m)?)?;
    m.add_function(wrap_pyfunction!(transform::instance_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(transform::clip_log_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(transform::clip_log_normalize_inplace, m)?)?;
    m.add_class::<stats::PyRunningStats>()?;
    m.add_function(wrap_pyfunction!(spectral::get_window, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::stft, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::spectrogram, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::mel_filterbank, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::melspectrogram, m)?)?;
    m.add_function(wrap_pyfunction!(spectral::power_to_db, m)?)?;
    m.add_function(wrap_pyfunction!(montage::bipolar_montage, m)?)?;
    m.add_class::<montage::PyEegMelRecipe>()?;
    m.add_function(wrap_pyfunction!(montage::eeg_mel_spectrograms, m)?)?;
    m.add_function(wrap_pyfunction!(montage::eeg_scipy_spectrograms, m)?)?;
    m.add_function(wrap_pyfunction!(inputs::model_inputs, m)?)?;
    m.add("EEG_CHANNELS", hms_core::montage::EEG_CHANNELS.to_vec())?;
    m.add("CHAINS", hms_core::montage::CHAINS.to_vec())?;
    m.add("BIPOLAR", hms_core::montage::BIPOLAR.to_vec())?;
    Ok(())
}
