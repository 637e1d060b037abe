"""python -m hms.prepare: fills the input cache, resumes after an interruption, never half-writes."""

from __future__ import annotations

import numpy as np
import pytest

from hms import input_cache, prepare
from hms.competition import CompetitionData
from hms.config import build
from hms.inputs import InputPipeline
from hms.labels import make_labels
from hms.windows import label_windows


@pytest.fixture(scope="module")
def data(tiny_dataset):
    return CompetitionData(tiny_dataset)


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_interrupted_prepare_resumes_without_redoing_work(data, tmp_path, monkeypatch):
    pipeline = InputPipeline(build({"input": "both", "cache_dir": str(tmp_path)}), data)
    labels = make_labels(data.train, "eeg")
    real_save = input_cache.SourceCache.save
    saved = []

    def save_then_crash(self, *args):
        if len(saved) == 7:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
        real_save(self, *args)
        saved.append(args)

    monkeypatch.setattr(input_cache.SourceCache, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_cache(pipeline, labels, "train", show_progress=False)
    monkeypatch.setattr(input_cache.SourceCache, "save", real_save)
    written = [p for p in _files(tmp_path) if p.suffix == ".npy"]
    assert len(written) == 7 and not [p for p in _files(tmp_path) if p.name.endswith(".tmp")]
    stamps = {p: p.stat().st_mtime_ns for p in written}

    report = prepare.prepare_cache(pipeline, labels, "train", show_progress=False)
    n_windows = len(labels)  # grouping "eeg": one window per eeg_id and per source here
    assert report["kaggle"]["present"] == 7 and report["kaggle"]["computed"] == n_windows - 7
    assert report["eeg"] == {"computed": n_windows, "present": 0}
    assert {p: p.stat().st_mtime_ns for p in written} == stamps  # finished work untouched
    again = prepare.prepare_cache(pipeline, labels, "train", show_progress=False)
    assert again == {s: {"computed": 0, "present": n_windows} for s in ("kaggle", "eeg")}
    # What the dataset reads is what prepare wrote.
    row = label_windows(labels, "train")[0]
    cached = pipeline.cache("eeg").load("train", row.eeg_id, row.eeg_offset)
    fresh = pipeline.compute_source("eeg", "train", row.eeg_id, [row.eeg_offset])[0]
    np.testing.assert_allclose(cached, fresh, rtol=1e-2, atol=1e-3)


def test_cli_prepares_both_splits_into_a_parameter_keyed_folder(data, tmp_path, capsys):
    argv = ["--data-dir", str(data.root), "input=kaggle", f"cache_dir={tmp_path}"]
    assert prepare.main(argv) == 0
    out = capsys.readouterr().out
    n_train = len(make_labels(data.train, "eeg"))
    assert f"train kaggle: {n_train} computed" in out and f"test kaggle: {len(data.test)} computed" in out
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1 and (folders[0] / "params.json").is_file()
    assert len(list((folders[0] / "test").glob("*.npy"))) == len(data.test)
    assert prepare.main(argv + ["clip_lo=-5"]) == 0
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # a new key, no stale reuse
    capsys.readouterr()
    assert prepare.main(argv) == 0
    assert f"train kaggle: 0 computed, {n_train} already cached" in capsys.readouterr().out


def test_eeg_cache_of_the_whole_competition_fits_in_4_5_gb(data, tmp_path):
    """One float16 file of 4 x 128 x 256 per eeg_id (grouping "eeg"): 17,089 EEGs take 4.48 GB."""
    pipeline = InputPipeline(build({"input": "eeg", "cache_dir": str(tmp_path)}), data)
    labels = make_labels(data.train, "eeg")
    prepare.prepare_cache(pipeline, labels, "train", show_progress=False)
    files = [p for p in _files(tmp_path) if p.suffix == ".npy"]
    assert len(files) == labels["eeg_id"].nunique() == len(labels)
    assert all(
        np.load(p, mmap_mode="r").dtype == np.float16 and np.load(p, mmap_mode="r").shape == (4, 128, 256)
        for p in files
    )
    largest = max(p.stat().st_size for p in files)
    assert largest <= 4 * 128 * 256 * 2 + 128  # the array and the .npy header
    assert 17_089 * largest <= 4.5e9


def test_cli_rejects_bad_splits(data, tmp_path):
    with pytest.raises(SystemExit):
        prepare.main(["--data-dir", str(data.root), "--splits", "valid", f"cache_dir={tmp_path}"])


def test_float16_overflow_is_refused(tmp_path, data):
    cache = input_cache.SourceCache(tmp_path, "eeg", {"x": 1}, data.root)
    with pytest.raises(ValueError, match="float16"):
        cache.save("train", 1, 0.0, np.full((2, 2), 1e6, dtype=np.float32))
    assert not cache.path("train", 1, 0.0).exists()


def test_cached_arrays_read_back_exactly_and_damaged_files_are_recomputed(tmp_path):
    """Reads after the first reuse its parsed header; a truncated, padded or foreign file (or one
    with another shape) is parsed in full or refused (None: the caller recomputes)."""
    cache = input_cache.SourceCache(tmp_path, "eeg", {"k": 1}, tmp_path)
    rng = np.random.default_rng(0)
    arrays = {i: rng.standard_normal((4, 8, 16)).astype(np.float32) for i in range(3)}
    for i, a in arrays.items():
        cache.save("train", i, 0.0, a)
    for i, a in arrays.items():  # the first read parses the header, the others reuse it
        got = cache.load("train", i, 0.0)
        assert got.dtype == np.float32 and np.array_equal(got, a.astype(np.float16).astype(np.float32))
    path = cache.path("train", 1, 0.0)
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])
    assert cache.load("train", 1, 0.0) is None
    path.write_bytes(whole + b"extra")
    assert np.array_equal(cache.load("train", 1, 0.0), arrays[1].astype(np.float16).astype(np.float32))
    path.write_bytes(b"not a numpy file")
    assert cache.load("train", 1, 0.0) is None
    np.save(path, np.zeros((2, 3), np.float16))  # another shape: parsed, not taken for the usual layout
    assert cache.load("train", 1, 0.0).shape == (2, 3)
    assert cache.load("train", 2, 0.0).shape == (4, 8, 16)
    assert cache.load("train", 99, 0.0) is None
