"""Model-input pipeline: in-memory EEG (20 x 10,000) + Kaggle window -> normalized "both" tensor
(1 x 512 x 512, instance normalization), native hms.inputs against the same recipe written with
numpy/librosa, in the same run. Target: native >= 1,000 samples/s on 2 CPU cores and >= 20x
the reference.

    python -m pytest benches/bench_inputs.py --benchmark-only -o python_files=bench_*.py
    python benches/bench_inputs.py          # prints samples/s of both
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from hms.config import build
from hms.inputs import InputPipeline
from hms.recipes import CHAINS, KAGGLE_TO_CHAINS
from hms.schema import BIPOLAR_CHAINS, EEG_CHANNELS

N = 64
LOG_LO, LOG_HI = math.exp(-6), math.exp(10)


def windows(n=N, seed=0):
    rng = np.random.default_rng(seed)
    eeg = (rng.standard_normal((n, 20, 10_000)) * 40).astype(np.float32)
    eeg[:, :, 3000:3100] = np.nan
    kaggle = np.exp(rng.normal(0.0, 2.6, (n, 4, 100, 300))).astype(np.float32)
    kaggle[:, :, :, 100:110] = np.nan
    return eeg, kaggle


PIPELINE = InputPipeline(
    build({"input": "both", "tile_layout": "stack", "normalization": "instance", "cache": False}), None
)
_PAIRS = [[(EEG_CHANNELS.index(a), EEG_CHANNELS.index(b)) for a, b in BIPOLAR_CHAINS[c]] for c in CHAINS]


def native_both(eeg, kaggle):
    return PIPELINE.transform_windows(eeg=eeg, kaggle=kaggle)


def _standardize(x):
    return (x - x.mean()) / (x.std() + 1e-6)


def reference_both(eeg, kaggle):
    """The same recipe, one sample at a time, as the public notebooks write it."""
    import librosa

    out = np.empty((len(eeg), 1, 512, 512), dtype=np.float32)
    for i in range(len(eeg)):
        chains = np.zeros((4, 128, 256), dtype=np.float32)
        for c, pairs in enumerate(_PAIRS):
            for a, b in pairs:
                x = eeg[i, a] - eeg[i, b]
                mean = np.nanmean(x) if not np.isnan(x).all() else 0.0
                x = np.where(np.isnan(x), mean, x)
                mel = librosa.feature.melspectrogram(
                    y=x, sr=200, hop_length=len(x) // 256, n_fft=1024, n_mels=128, fmin=0, fmax=20, win_length=128
                )
                db = librosa.power_to_db(mel, ref=np.max).astype(np.float32)[:, :256]
                chains[c] += (db + 40) / 40 / 4
        logged = np.log(np.clip(np.nan_to_num(kaggle[i][list(KAGGLE_TO_CHAINS)], nan=-1.0), LOG_LO, LOG_HI))
        logged = _standardize(logged)
        tiles = np.zeros((4, 128, 256), dtype=np.float32)
        tiles[:, 14:114] = logged[:, :, 22:278]
        out[i, 0] = np.concatenate([tiles.reshape(512, 256), _standardize(chains).reshape(512, 256)], axis=1)
    return out


GROUP = f"input pipeline 'both': {N} samples, EEG 20 x 10,000 + Kaggle 4 x 100 x 300 -> 1 x 512 x 512"
EEG, KAGGLE = windows()


def test_native_matches_reference():
    np.testing.assert_allclose(native_both(EEG[:4], KAGGLE[:4]), reference_both(EEG[:4], KAGGLE[:4]), atol=2e-3)


@pytest.mark.benchmark(group=GROUP)
def test_inputs_native(compare):
    compare("native", native_both, EEG, KAGGLE, target=20, samples=N)


@pytest.mark.benchmark(group=GROUP)
def test_inputs_reference(compare):
    compare("reference", reference_both, EEG[:16], KAGGLE[:16], samples=16)  # fewer: it is slow


def _rate(fn, n, repeats):
    eeg, kaggle = EEG[:n], KAGGLE[:n]
    fn(eeg, kaggle)  # warm-up
    best = min(_timed(fn, eeg, kaggle) for _ in range(repeats))
    return n / best


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    native = _rate(native_both, N, 20)  # best of 20 calls (about 1 s): robust to short stalls of the machine
    reference = _rate(reference_both, 16, 2)
    print(f"native:    {native:8.0f} samples/s")
    print(f"reference: {reference:8.1f} samples/s (numpy/librosa)")
    print(f"speed-up:  {native / reference:8.1f}x")
