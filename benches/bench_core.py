"""Native core I against scipy/numpy on HMS-sized batches (this machine: 2 cores)."""

import numpy as np
import pytest
import scipy.signal as ss

from conftest import LOG_HI, LOG_LO, eeg_batch, spectrogram_batch
from hms import dsp

EEG = eeg_batch()
SPECS = spectrogram_batch()
LOGGED = dsp.clip_log(SPECS)
SOS = dsp.butter_sos(4, (0.5, 40.0), "bandpass", 200.0)


@pytest.mark.benchmark(group="sosfiltfilt: 64 EEGs x 20 ch x 10,000, band-pass 0.5-40 Hz order 4")
def test_sosfiltfilt_native(compare):
    compare("native", dsp.sosfiltfilt, SOS, EEG, target=10)


@pytest.mark.benchmark(group="sosfiltfilt: 64 EEGs x 20 ch x 10,000, band-pass 0.5-40 Hz order 4")
def test_sosfiltfilt_scipy(compare):
    compare("reference", ss.sosfiltfilt, SOS, EEG)


def native_clip_log_normalize(x):
    # The fused call computes what dsp.instance_normalize(dsp.clip_log(x), (-2, -1)) does.
    return dsp.clip_log_normalize(x, (-2, -1), LOG_LO, LOG_HI, nan=-1.0, eps=1e-6)


def numpy_clip_log_normalize(x):
    logged = np.log(np.clip(np.nan_to_num(x, nan=-1.0), LOG_LO, LOG_HI))
    mean = logged.mean(axis=(-2, -1), keepdims=True)
    std = logged.std(axis=(-2, -1), keepdims=True)
    return (logged - mean) / (std + 1e-6)


@pytest.mark.benchmark(group="clip_log + instance_normalize: 64 spectrograms 300 x 400")
def test_clip_log_normalize_native(compare):
    compare("native", native_clip_log_normalize, SPECS, target=8)


@pytest.mark.benchmark(group="clip_log + instance_normalize: 64 spectrograms 300 x 400")
def test_clip_log_normalize_numpy(compare):
    compare("reference", numpy_clip_log_normalize, SPECS)


@pytest.mark.benchmark(group="RunningStats.update: 64 x 300 x 400")
def test_running_stats_native(compare):
    compare("native", lambda x: dsp.RunningStats().update(x), LOGGED, target=3)


@pytest.mark.benchmark(group="RunningStats.update: 64 x 300 x 400")
def test_running_stats_numpy(compare):
    compare("reference", lambda x: (x.mean(), x.std()), LOGGED)


CACHED = np.random.default_rng(1).standard_normal((64, 4, 128, 256)).astype(np.float16)  # 64 cached EEG sources


@pytest.mark.benchmark(group="float16 -> float32: 64 cached EEG sources 4 x 128 x 256")
def test_to_float32_native(compare):
    compare("native", dsp.to_float32, CACHED)


@pytest.mark.benchmark(group="float16 -> float32: 64 cached EEG sources 4 x 128 x 256")
def test_to_float32_numpy(compare):
    compare("reference", CACHED.astype, np.float32)
