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
mod _native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::buffers::_output_pool_stats;
    #[pymodule_export]
    use crate::filters::{firwin, resample_poly, sos_padlen, sosfilt_zi, sosfiltfilt};
    #[pymodule_export]
    use crate::inputs::model_inputs;
    #[pymodule_export]
    use crate::montage::{bipolar_montage, eeg_mel_spectrograms, eeg_raw_inputs, eeg_scipy_spectrograms, PyEegMelRecipe, PyEegRawRecipe};
    #[pymodule_export]
    use crate::runtime::{_panic_for_tests, _panic_in_plan_for_tests, get_num_threads, max_num_threads, set_num_threads};
    #[pymodule_export]
    use crate::spectral::{get_window, mel_filterbank, melspectrogram, power_to_db, spectrogram, stft, PySpectrogram, PyStft};
    #[pymodule_export]
    use crate::stats::PyRunningStats;
    #[pymodule_export]
    use crate::transform::{
        clip_log, clip_log_inplace, clip_log_normalize, clip_log_normalize_inplace, float16_to_float32, instance_normalize,
    };

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("EEG_CHANNELS", hms_core::montage::EEG_CHANNELS.to_vec())?;
        m.add("CHAINS", hms_core::montage::CHAINS.to_vec())?;
        m.add("BIPOLAR", hms_core::montage::BIPOLAR.to_vec())?;
        m.add("CENTRAL", hms_core::montage::CENTRAL.to_vec())
    }
}
