"""python -m hms.prepare: fills the input cache, resumes after an interruption, never half-writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    written = [p for p in _files(tmp_path) if p.suffix == input_cache.SUFFIX]
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
    assert len(list((folders[0] / "test").glob("*" + input_cache.SUFFIX))) == len(data.test)
    assert prepare.main(argv + ["clip_lo=-5"]) == 0
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # a new key, no stale reuse
    capsys.readouterr()
    assert prepare.main(argv) == 0
    assert f"train kaggle: 0 computed, {n_train} already cached" in capsys.readouterr().out


def test_eeg_cache_of_the_whole_competition_fits_in_4_5_gb(data, tmp_path):
    """One float16 entry of 4 x 128 x 256 per eeg_id (grouping "eeg"): 17,089 EEGs take 4.48 GB."""
    pipeline = InputPipeline(build({"input": "eeg", "cache_dir": str(tmp_path)}), data)
    labels = make_labels(data.train, "eeg")
    prepare.prepare_cache(pipeline, labels, "train", show_progress=False)
    files = [p for p in _files(tmp_path) if p.suffix == input_cache.SUFFIX]
    assert len(files) == labels["eeg_id"].nunique() == len(labels)
    for p in files:
        stored, _ = input_cache.decode_entry(p.read_bytes(), p)
        assert stored.dtype == np.float16 and stored.shape == (4, 128, 256)
    largest = max(p.stat().st_size for p in files)
    assert largest <= 4 * 128 * 256 * 2 + 256  # the values and the header
    assert 17_089 * largest <= 4.5e9


def test_cli_rejects_bad_splits(data, tmp_path):
    with pytest.raises(SystemExit):
        prepare.main(["--data-dir", str(data.root), "--splits", "valid", f"cache_dir={tmp_path}"])


def _cache(data, tmp_path):
    return input_cache.SourceCache(tmp_path, "eeg", {"k": 1}, data.root, data.eeg_path)


def test_float16_overflow_is_refused(tmp_path, data):
    cache = _cache(data, tmp_path)
    eeg_id = int(data.train["eeg_id"].iloc[0])
    with pytest.raises(ValueError, match="float16"):
        cache.save("train", eeg_id, 0.0, np.full((2, 2), 1e6, dtype=np.float32))
    assert not cache.path("train", eeg_id, 0.0).exists()


def test_cached_arrays_read_back_exactly(data, tmp_path):
    cache = _cache(data, tmp_path)
    rng = np.random.default_rng(0)
    ids = [int(i) for i in data.train["eeg_id"].unique()[:3]]
    arrays = {i: rng.standard_normal((4, 8, 16)).astype(np.float32) for i in ids}
    for i, a in arrays.items():
        cache.save("train", i, 0.0, a)
    for i, a in arrays.items():
        got = cache.load("train", i, 0.0)
        assert got.dtype == np.float32 and np.array_equal(got, a.astype(np.float16).astype(np.float32))
        assert cache.contains("train", i, 0.0)
    assert cache.load("train", 99, 0.0) is None and not cache.contains("train", 99, 0.0)


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0x10]) + raw[at + 1 :]


DAMAGE = {
    "flipped value byte": lambda raw, entry: _flip(raw, len(raw) - 100),
    "flipped header byte": lambda raw, entry: _flip(raw, 20),
    "truncated": lambda raw, entry: raw[:-10],
    "padded": lambda raw, entry: raw + b"extra",
    "not an entry": lambda raw, entry: b"not a cache entry at all",
    "empty": lambda raw, entry: b"",
    "huge header length": lambda raw, entry: raw[:8] + b"\xff\xff\xff\x7f" + raw[12:],
    "NaN with a valid checksum": lambda raw, entry: entry(np.full((4, 8, 16), np.nan)),
    "other dtype": lambda raw, entry: raw.replace(b'"<f2"', b'"<f4"'),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_named_discarded_and_recomputed(data, tmp_path, caplog, damage):
    """Damaged bytes are never used as data: the read names the file (a warning), discards it and
    answers "absent"; the caller recomputes and the next save repairs the entry for good."""
    cache = _cache(data, tmp_path)
    eeg_id = int(data.train["eeg_id"].iloc[0])
    array = np.random.default_rng(1).standard_normal((4, 8, 16)).astype(np.float32)
    cache.save("train", eeg_id, 0.0, array)
    path = cache.path("train", eeg_id, 0.0)
    source = input_cache.source_identity(data.eeg_path("train", eeg_id))
    path.write_bytes(DAMAGE[damage](path.read_bytes(), lambda a: input_cache.encode_entry(a, source)))
    with caplog.at_level("WARNING", logger="hms.input_cache"):
        assert cache.load("train", eeg_id, 0.0) is None
    assert str(path) in caplog.text and "damaged input cache entry" in caplog.text
    assert not path.exists()
    cache.save("train", eeg_id, 0.0, array)
    assert np.array_equal(cache.load("train", eeg_id, 0.0), array.astype(np.float16).astype(np.float32))


def test_an_entry_of_a_replaced_source_file_is_recomputed(tiny_dataset, tmp_path):
    """The entries record their EEG file's identity: replacing the file (same name, other
    content) makes the pipeline compute from the new file, not serve the old arrays."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    data = CompetitionData(root)
    pipeline = InputPipeline(build({"input": "eeg", "cache_dir": str(tmp_path / "cache")}), data)
    row = label_windows(make_labels(data.train, "eeg"), "train")[0]
    before = pipeline.row_source("eeg", "train", row)
    assert pipeline.cache("eeg").load("train", row.eeg_id, row.eeg_offset) is not None
    path = data.eeg_path("train", row.eeg_id)
    frame = pd.read_parquet(path)
    frame[frame.columns] = frame.to_numpy()[::-1]  # the same samples, reversed in time
    frame.to_parquet(path, index=False)
    after = pipeline.row_source("eeg", "train", row)
    fresh = pipeline.compute_source("eeg", "train", row.eeg_id, [row.eeg_offset])[0]
    assert not np.allclose(after, before, atol=1e-2)
    np.testing.assert_allclose(after, fresh, rtol=1e-2, atol=1e-2)
