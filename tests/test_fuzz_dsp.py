"""The standing fuzz suite of ``hms.dsp``: tests/_fuzz_worker.py in child processes.

Each group of entry points runs in an interpreter of its own, so that an abort or a segfault in
the native core fails a test instead of killing pytest. The worker checks every entry point with
arbitrary arguments (errors are ValueError/TypeError/MemoryError naming an argument, never a
PanicException; bounded outputs are finite) and valid ones (parity with scipy, librosa, numpy or
exact arithmetic). Examples are derandomized: the same ones on every run.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hms import dsp

pytest.importorskip("librosa")
pytest.importorskip("hypothesis")

WORKER = Path(__file__).with_name("_fuzz_worker.py")

GROUPS = {
    "filters-threads-transforms-stats": [
        "butter_sos", "notch_sos", "sos_padlen", "sosfilt_zi", "sosfiltfilt", "resample_poly", "decimate",
        "set_num_threads", "get_num_threads", "to_float32", "clip_log", "clip_log_normalize", "instance_normalize",
        "RunningStats",
    ],
    "spectral": ["get_window", "stft", "spectrogram", "mel_filterbank", "melspectrogram", "power_to_db"],
    "montage-recipes-inputs": [
        "bipolar_montage", "BIPOLAR_PAIRS", "CHAIN_NAMES", "ChainSpectrograms", "MEL_RECIPE", "SCIPY_RECIPE",
        "eeg_spectrograms", "eeg_mel_recipe", "eeg_raw_recipe", "eeg_raw_inputs", "model_inputs",
    ],
}  # fmt: skip


def _load_worker():
    spec = importlib.util.spec_from_file_location("_fuzz_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_entry_point_is_fuzzed():
    """A new name in ``hms.dsp.__all__`` needs checks in the worker (and a group here)."""
    checked = set(_load_worker().CHECKS)
    public = set(dsp.__all__)
    assert public - checked == set(), f"entry points without fuzz checks: {sorted(public - checked)}"
    assert checked - public == set(), f"fuzz checks of unknown entry points: {sorted(checked - public)}"
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(public), "every entry point belongs to exactly one group"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_fuzz(group):
    result = subprocess.run([sys.executable, str(WORKER), *GROUPS[group]], capture_output=True, text=True, timeout=600)
    output = (result.stdout + result.stderr)[-20_000:]
    if result.returncode < 0:
        pytest.fail(f"the fuzz worker was killed by {signal.Signals(-result.returncode).name}:\n{output}")
    assert result.returncode == 0, output
    assert "0 failed check(s)" in result.stdout, output
