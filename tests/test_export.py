"""hms export: each fold model as TorchScript or ONNX, whose outputs equal the run's own fold
models on inputs rebuilt from the exported input spec alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _tiny_runs import tiny_run
from hms import CLASSES, export, inference
from hms.competition import open_data
from hms.inputs import InputPipeline
from hms.windows import spectrogram_window


@pytest.fixture(scope="module")
def run_a(tiny_dataset, tmp_path_factory):
    return tiny_run(tiny_dataset, tmp_path_factory.getbasetemp() / "tiny-runs", "a")


def _runtime(fmt: str, path):
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
        return lambda x: module(torch.from_numpy(x)).detach().numpy()
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run([export.OUTPUT_NAME], {export.INPUT_NAME: x})[0]


@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_exported_folds_equal_the_runs_own(fmt, run_a, tiny_dataset, tmp_path, capsys):
    out = tmp_path / fmt
    assert export.main(["--run", str(run_a), "--format", fmt, "--out-dir", str(out), "--no-progress"]) == 0
    manifest = export.read_manifest(out)
    loaded = inference.load_run(run_a, None)
    assert [f["fold"] for f in manifest["folds"]] == [fm.fold for fm in loaded.folds]

    data = open_data(tiny_dataset, require=("test",))
    windows = np.stack([spectrogram_window(data.read_spectrogram("test", s), 0.0) for s in data.test["spectrogram_id"]])
    exported_mean = np.zeros((len(windows), 6))
    for entry, fm in zip(manifest["folds"], loaded.folds):
        spec = json.loads((out / entry["spec"]).read_text())
        pipeline = InputPipeline.from_state(spec["pipeline"], None)  # the spec alone rebuilds the inputs
        inputs = pipeline.transform_windows(kaggle=windows)
        assert list(inputs.shape[1:]) == spec["input"]["shape"][1:]
        got = _runtime(fmt, out / entry["model"])(inputs)
        with torch.no_grad():
            expected = fm.model(torch.from_numpy(inputs)).double().softmax(dim=1).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert got.shape == (len(windows), 6) and spec["output"]["classes"] == list(CLASSES)
        exported_mean += got / len(manifest["folds"])
    np.testing.assert_allclose(exported_mean.sum(axis=1), 1.0, atol=1e-5)


def test_export_refuses_a_folder_it_did_not_make(run_a, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert export.main(["--run", str(run_a), "--format", "torchscript", "--out-dir", str(tmp_path)]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / export.MANIFEST_FILE).exists()
