"""Native core of hms (Rust). Use the typed wrappers in ``hms.dsp``; these check values, not types."""

from typing import final

import numpy as np
from numpy.typing import NDArray

# What the module exports (pyo3's declarative module lists it).
__all__ = [
    "BIPOLAR",
    "CENTRAL",
    "CHAINS",
    "EEG_CHANNELS",
    "EegMelRecipe",
    "EegRawRecipe",
    "RunningStatsCore",
    "SpectrogramPlan",
    "StftPlan",
    "_output_pool_stats",
    "_panic_for_tests",
    "_panic_in_plan_for_tests",
    "bipolar_montage",
    "clip_log",
    "clip_log_inplace",
    "clip_log_normalize",
    "clip_log_normalize_inplace",
    "eeg_mel_spectrograms",
    "eeg_raw_inputs",
    "eeg_scipy_spectrograms",
    "firwin",
    "float16_to_float32",
    "get_num_threads",
    "get_window",
    "instance_normalize",
    "max_num_threads",
    "mel_filterbank",
    "melspectrogram",
    "model_inputs",
    "power_to_db",
    "resample_poly",
    "set_num_threads",
    "sos_padlen",
    "sosfilt_zi",
    "sosfiltfilt",
    "spectrogram",
    "stft",
]

_Float = NDArray[np.float32] | NDArray[np.float64]
_Complex = NDArray[np.complex64] | NDArray[np.complex128]
# A window: a native name, a (name, parameter) tuple or 1-D float64 values.
_Window = str | tuple[str, float] | NDArray[np.float64]

# runtime.rs, buffers.rs
def set_num_threads(n: int | None) -> None: ...
def get_num_threads() -> int: ...
def max_num_threads() -> int: ...
def _panic_for_tests() -> None: ...
def _panic_in_plan_for_tests() -> None: ...
def _output_pool_stats() -> dict[str, int]: ...

# filters.rs
def sosfiltfilt(sos: NDArray[np.float64], x: _Float, axis: int) -> _Float: ...
def sosfilt_zi(sos: NDArray[np.float64]) -> NDArray[np.float64]: ...
def sos_padlen(sos: NDArray[np.float64]) -> int: ...
def resample_poly(
    x: _Float,
    up: int,
    down: int,
    axis: int,
    window: str | tuple[str, float] | None,
    taps: NDArray[np.float64] | None,
    padtype: str,
    cval: float | None,
    centred: bool = True,
) -> _Float: ...
def firwin(numtaps: int, cutoff: float, window: _Window) -> NDArray[np.float64]: ...

# transform.rs
def clip_log(x: _Float, lo: float, hi: float, nan: float) -> _Float: ...
def clip_log_inplace(x: _Float, lo: float, hi: float, nan: float) -> None: ...
def float16_to_float32(x: NDArray[np.float16]) -> NDArray[np.float32]: ...
def instance_normalize(x: _Float, eps: float) -> _Float: ...
def clip_log_normalize(x: _Float, lo: float, hi: float, nan: float, eps: float) -> _Float: ...
def clip_log_normalize_inplace(x: _Float, cols: int, lo: float, hi: float, nan: float, eps: float) -> None: ...

# stats.rs
# pyo3 classes cannot be subclassed (no `subclass` option).
@final
class RunningStatsCore:
    def __new__(cls, per_channel: bool) -> RunningStatsCore: ...
    @property
    def per_channel(self) -> bool: ...
    def update(self, x: _Float) -> None: ...
    def merge(self, other: RunningStatsCore) -> None: ...
    def state(self) -> NDArray[np.float64]: ...
    @staticmethod
    def from_state(per_channel: bool, state: NDArray[np.float64]) -> RunningStatsCore: ...

# spectral.rs: STFT and spectrogram results have frames first.
def get_window(window: _Window, n: int) -> NDArray[np.float64]: ...

@final
class StftPlan:
    def __new__(
        cls, n_fft: int, hop_length: int, win_length: int, window: _Window, center: bool, pad_mode: str
    ) -> StftPlan: ...

@final
class SpectrogramPlan:
    def __new__(
        cls, fs: float, window: _Window, nperseg: int, noverlap: int, nfft: int, detrend: str, scaling: str
    ) -> SpectrogramPlan: ...

def stft(x: _Float, plan: StftPlan) -> _Complex: ...
def spectrogram(x: _Float, plan: SpectrogramPlan) -> _Float: ...
def mel_filterbank(
    sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, slaney_norm: bool
) -> NDArray[np.float32]: ...
def melspectrogram(
    x: _Float,
    plan: StftPlan,
    sr: float,
    power: float,
    n_mels: int,
    fmin: float,
    fmax: float,
    htk: bool,
    slaney_norm: bool,
) -> _Float: ...
def power_to_db(s: _Float, reference: float | None, amin: float, top_db: float | None) -> _Float: ...

# montage.rs
EEG_CHANNELS: list[str]
CHAINS: list[str]
BIPOLAR: list[tuple[str, str]]
CENTRAL: list[tuple[str, str]]

def bipolar_montage(eeg: _Float, channels: list[str]) -> _Float: ...

@final
class EegMelRecipe:
    def __new__(
        cls,
        channels: list[str],
        n_samples: int | None,
        filters: list[NDArray[np.float64]],
        fs: float,
        n_fft: int,
        hop_length: int | None,
        win_length: int,
        window: _Window,
        n_mels: int,
        fmin: float,
        fmax: float,
        power: float,
        amin: float,
        top_db: float | None,
        width_multiple: int,
        offset: float,
        scale: float,
    ) -> EegMelRecipe: ...

def eeg_mel_spectrograms(eeg: _Float, recipe: EegMelRecipe) -> _Float: ...
def eeg_scipy_spectrograms(
    eeg: _Float,
    channels: list[str],
    n_samples: int | None,
    filters: list[NDArray[np.float64]],
    spec: SpectrogramPlan,
    amin: float,
    fmax: float | None,
) -> _Float: ...

@final
class EegRawRecipe:
    def __new__(
        cls,
        channels: list[str],
        montage: str,
        n_samples: int | None,
        filters: list[NDArray[np.float64]],
        fs: float,
        rate: float,
        demean: bool,
        normalize: str,
        clip: float,
        scale: float,
        eps: float,
    ) -> EegRawRecipe: ...
    @property
    def ratio(self) -> tuple[int, int]: ...
    @property
    def n_links(self) -> int: ...

def eeg_raw_inputs(eeg: _Float, recipe: EegRawRecipe) -> NDArray[np.float32]: ...

# inputs.rs
def model_inputs(
    sources: list[str],
    layout: str,
    eps: float,
    stats: list[tuple[float, float]] | None = None,
    eeg: NDArray[np.float32] | None = None,
    eeg_recipe: EegMelRecipe | None = None,
    kaggle: NDArray[np.float32] | None = None,
    kaggle_order: list[int] | None = None,
    clip: tuple[float, float, float] | None = None,
) -> NDArray[np.float32]: ...
