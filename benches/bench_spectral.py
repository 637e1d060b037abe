"""Native spectral core vs its references, in the same run (pytest-benchmark groups).

PYTHONPATH=python python -m pytest benches/bench_spectral.py --benchmark-only
PYTHONPATH=python python benches/bench_spectral.py      # prints the ratios only
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.signal as ss

from hms import dsp
from hms.schema import EEG_CHANNELS

librosa = pytest.importorskip("librosa")

BATCH = 64  # EEGs per batch of the recipe benchmark
MEL = dict(sr=200, n_fft=1024, hop_length=39, win_length=128, n_mels=128, fmin=0, fmax=20)
CHAINS = [
    ["Fp1", "F7", "T3", "T5", "O1"],
    ["Fp1", "F3", "C3", "P3", "O1"],
    ["Fp2", "F8", "T4", "T6", "O2"],
    ["Fp2", "F4", "C4", "P4", "O2"],
]
INDEX = {c: i for i, c in enumerate(EEG_CHANNELS)}


def eeg_batch(n=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 20, 10_000)).astype(np.float32) * 30
    x += 40 * np.sin(np.arange(10_000) * rng.uniform(0.01, 0.3, (n, 20, 1))).astype(np.float32)
    return x


def reference_recipe(batch):
    """The public numpy+librosa recipe, one EEG (20 x 10,000) at a time."""
    out = np.zeros((len(batch), 4, 128, 256), np.float32)
    for e, eeg in enumerate(batch):
        for k, cols in enumerate(CHAINS):
            for a, b in zip(cols[:-1], cols[1:]):
                x = eeg[INDEX[a]] - eeg[INDEX[b]]
                if np.isnan(x).mean() < 1:
                    x = np.nan_to_num(x, nan=np.nanmean(x))
                else:
                    x[:] = 0
                mel = librosa.feature.melspectrogram(y=x, **{**MEL, "hop_length": len(x) // 256})
                db = librosa.power_to_db(mel, ref=np.max).astype(np.float32)[:, :256]
                out[e, k] += (db + 40) / 40
            out[e, k] /= 4
    return out


def native_recipe(batch):
    return dsp.eeg_spectrograms(batch).images


def signals(n, length=10_000, seed=1):
    return (np.random.default_rng(seed).standard_normal((n, length)) * 30).astype(np.float32)


# Each comparison: (group, native callable, reference callable, input factory, ratio floor).
def comparisons():
    return {
        "eeg-mel-recipe": (native_recipe, reference_recipe, eeg_batch, 25),
        "melspectrogram": (
            lambda x: dsp.melspectrogram(x, **MEL),
            lambda x: librosa.feature.melspectrogram(y=x, **MEL),
            lambda: signals(256),
            15,
        ),
        "stft": (
            lambda x: dsp.stft(x, n_fft=256, hop_length=64),
            lambda x: ss.stft(x, nperseg=256, noverlap=192),
            lambda: signals(64),
            5,
        ),
        "spectrogram": (
            lambda x: dsp.spectrogram(x, fs=200, nperseg=256, noverlap=224),
            lambda x: ss.spectrogram(x, fs=200, nperseg=256, noverlap=224),
            lambda: signals(64),
            None,
        ),
        "power_to_db": (
            lambda s: dsp.power_to_db(s),
            lambda s: np.stack([librosa.power_to_db(m, ref=np.max) for m in s]),
            lambda: np.random.default_rng(2).random((256, 128, 257)).astype(np.float32) ** 4,
            None,
        ),
    }


CASES = [(group, impl) for group in comparisons() for impl in ("native", "reference")]


@pytest.fixture(scope="module")
def inputs():
    return {group: make() for group, (_, _, make, _) in comparisons().items()}


@pytest.mark.parametrize("group, impl", CASES, ids=[f"{g}-{i}" for g, i in CASES])
def test_bench(compare, inputs, group, impl):
    native, reference, _, floor = comparisons()[group]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if impl == "reference":
            compare("reference", reference, inputs[group], group=group, rounds=2)
        else:
            compare("native", native, inputs[group], group=group, target=floor)


def best_time(func, arg, repeat):
    func(arg)  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        func(arg)
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    warnings.simplefilter("ignore")
    print(f"{'comparison':<16} {'native ms':>10} {'reference ms':>13} {'ratio':>7}  floor")
    for group, (native, reference, make, floor) in comparisons().items():
        x = make()
        t_native = best_time(native, x, 7)
        t_ref = best_time(reference, x, 2)
        print(f"{group:<16} {t_native * 1e3:10.2f} {t_ref * 1e3:13.1f} {t_ref / t_native:7.1f}  {floor or '-'}")
        if group == "eeg-mel-recipe":
            n = len(x)
            print(f"{'':<16} native {t_native / n * 1e3:.3f} ms per EEG, reference {t_ref / n * 1e3:.1f} ms per EEG")
    # Parity of the benchmarked recipe on the benchmark batch.
    x = eeg_batch(4)
    print(f"recipe parity (4 EEGs): max abs {np.abs(native_recipe(x) - reference_recipe(x)).max():.2e}")


if __name__ == "__main__":
    main()
