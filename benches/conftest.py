"""Shared pieces of the benchmark suites.

Every comparison is a pytest-benchmark group holding one ``native`` run and one ``reference`` run
on the same data in the same session; ``python benches/report.py`` turns them into ratios.
"""

import math

import numpy as np
import pytest


def spectrogram_batch(n=64, seed=0):
    """Kaggle-spectrogram-like float32 batch (n, 300, 400): log-normal power with NaN gaps."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.normal(0.0, 2.6, (n, 300, 400))).astype(np.float32)
    x[:, 100:110, :] = np.nan
    return x


def eeg_batch(n=64, seed=0):
    """EEG-like float32 batch (n, 20, 10000) in microvolts."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 20, 10_000)) * 40).astype(np.float32)


@pytest.fixture
def compare(benchmark):
    """``compare(role, fn, *args, target=None, samples=1)``: benchmark ``fn`` as the group's
    native or reference run over ``samples`` samples (ratios are per sample); ``target`` is the
    speed-up the native run must reach."""

    def run(role, fn, *args, target=None, samples=1, group=None, rounds=7):
        assert role in ("native", "reference")
        if group is not None:
            benchmark.group = group
        benchmark.extra_info["role"] = role
        benchmark.extra_info["samples"] = samples
        if target is not None:
            benchmark.extra_info["target_ratio"] = target
        return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=1)

    return run


LOG_LO, LOG_HI = math.exp(-6), math.exp(10)
