"""hms.predict and hms.inference on a tiny trained run: the submission's format and order, its
equality with a recomputation from the fold checkpoints, TTA, scoring on the synthetic hidden
test solution, and the single-recording path."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from _tiny_runs import tiny_run
from hms import CLASSES, inference, predict
from hms.competition import open_data
from hms.inputs import InputPipeline
from hms.metric import kl_divergence
from hms.models import create_model
from hms.rundir import RunDir
from hms.schema import VOTE_COLUMNS
from hms.windows import spectrogram_window


@pytest.fixture(scope="module")
def run_a(tiny_dataset, tmp_path_factory):
    return tiny_run(tiny_dataset, tmp_path_factory.getbasetemp() / "tiny-runs", "a")


@pytest.fixture(scope="module")
def submission(run_a, tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "submission.csv"
    argv = ["--run", str(run_a), "--data-dir", str(tiny_dataset), "--out", str(out), "--device", "cpu"]
    assert predict.main([*argv, "--no-progress"]) == 0
    return pd.read_csv(out)


def test_submission_format_and_order(submission, tiny_dataset):
    test = pd.read_csv(tiny_dataset / "test.csv")
    assert list(submission.columns) == ["eeg_id", *VOTE_COLUMNS]
    assert submission["eeg_id"].tolist() == test["eeg_id"].tolist()
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-9)


def recompute_from_checkpoints(run_path, data_dir) -> np.ndarray:
    """Independent of hms.inference: each fold's model and input state straight from best.pt,
    inputs built in memory from the raw test spectrogram windows, no dataset or loader."""
    run = RunDir.open(run_path)
    cfg = run.read_config()
    data = open_data(data_dir, require=("test",))
    test = data.test
    windows = np.stack([spectrogram_window(data.read_spectrogram("test", s), 0.0) for s in test["spectrogram_id"]])
    probs = []
    for fold in range(cfg["n_folds"]):
        state = torch.load(run.checkpoint_path(fold, "best"), map_location="cpu", weights_only=True)
        pipeline = InputPipeline.from_state(json.loads(state["inputs"]), None)
        model = create_model(cfg["model"], pipeline.in_chans, input_pool=cfg["input_pool"])
        model.load_state_dict(state["model"])
        with torch.no_grad():
            probs.append(
                model.eval()(torch.from_numpy(pipeline.transform_windows(kaggle=windows))).double().softmax(1).numpy()
            )
    return np.mean(probs, axis=0)


def test_submission_equals_fold_average_of_checkpoints(submission, run_a, tiny_dataset):
    expected = recompute_from_checkpoints(run_a, tiny_dataset)
    # The inference path reads inputs through the float16 input cache, as training validation did.
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].to_numpy(), expected, atol=2e-3)


def test_submission_beats_uniform_on_hidden_solution(submission, tiny_dataset):
    solution = pd.read_csv(tiny_dataset / "test_solution.csv").drop(columns="n_votes")
    uniform = submission.copy()
    uniform[list(VOTE_COLUMNS)] = 1 / 6
    assert kl_divergence(solution, submission) < kl_divergence(solution, uniform)


def test_tta_averages_the_swapped_input(run_a, tiny_dataset):
    data = open_data(tiny_dataset, require=("test",))
    loaded = inference.load_run(run_a, data)
    plain = inference.predict_labels(loaded, data.test, progress=False)
    tta = inference.predict_labels(loaded, data.test, tta=True, progress=False)
    swapped = 2 * tta - plain  # tta = (plain + swapped) / 2
    np.testing.assert_allclose(swapped.sum(axis=1), 1.0, atol=1e-9)
    assert not np.allclose(tta, plain), "TTA changed nothing: was the swap applied?"


def test_invalid_probabilities_are_never_written():
    with pytest.raises(ValueError, match="do not sum to 1"):
        predict.submission_frame(np.array([1, 2]), np.full((2, 6), 0.2))


def test_lone_eeg_with_a_spectrogram_model_is_refused(run_a, tiny_dataset):
    eeg_file = next((tiny_dataset / "test_eegs").glob("*.parquet"))
    with pytest.raises(ValueError, match="needs a Kaggle spectrogram"):
        inference.predict_eeg_file(inference.load_run(run_a, None), eeg_file)


def test_missing_checkpoint_is_named(run_a, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_a, broken)
    (broken / "fold1" / "best.pt").unlink()
    with pytest.raises(ValueError, match="fold1/best.pt"):
        inference.load_run(broken, None)


def test_checkpoint_lacking_a_key_is_named(run_a, tiny_dataset, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_a, broken)
    path = broken / "fold0" / "best.pt"
    state = torch.load(path, weights_only=True)
    del state["inputs"]
    torch.save(state, path)
    argv = ["--run", str(broken), "--data-dir", str(tiny_dataset), "--out", str(tmp_path / "s.csv")]
    assert predict.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: checkpoint lacks ['inputs']") and err.count("\n") == 1
    assert not (tmp_path / "s.csv").exists()


def test_predict_caches_only_under_the_users_cache_folder(run_a, tiny_dataset, tmp_path, monkeypatch):
    """A checkpoint records where it was trained to cache; inference on another machine must not
    write there (it may not exist, or be someone else's)."""
    monkeypatch.setenv("HMS_CACHE_DIR", str(tmp_path / "mine"))
    loaded = inference.load_run(run_a, open_data(tiny_dataset, require=("test",)))
    trained_cache = RunDir.open(run_a).read_config()["cache_dir"]
    for fm in loaded.folds:
        folder = fm.pipeline.cache("kaggle").folder
        assert folder.is_relative_to(tmp_path / "mine") and not folder.is_relative_to(trained_cache)


TRAINING_ONLY = ("sklearn", "matplotlib", "optuna", "sqlalchemy", "psycopg")
# None in sys.modules: "import x" fails and importlib.util.find_spec("x") is None, as when absent.
_BLOCKED_PREDICT = """
import sys
sys.modules.update(dict.fromkeys({blocked!r}))
from hms.cli import main
sys.exit(main({argv!r}))
"""


def test_a_slim_run_folder_predicts_without_the_training_extras(run_a, submission, tiny_dataset, tmp_path):
    """What a Kaggle notebook gets: config.json and each fold's best.pt only, and an install of
    the core dependencies (the training extras' packages cannot be imported)."""
    import shutil
    import subprocess
    import sys

    slim = tmp_path / "slim"
    for path in [run_a / "config.json", *run_a.glob("fold*/best.pt")]:
        target = slim / path.relative_to(run_a)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    out = tmp_path / "submission.csv"
    argv = ["predict", "--run", str(slim), "--data-dir", str(tiny_dataset), "--out", str(out), "--no-progress"]
    script = _BLOCKED_PREDICT.format(blocked=TRAINING_ONLY, argv=argv)
    env = {**os.environ, "HMS_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(out), submission, atol=2e-3)  # float16 cache vs fresh


def test_predict_never_guesses_the_test_set(run_a, tmp_path, capsys):
    """Without --data-dir or --synthetic, predict is an error that says what to pass (a silent
    synthetic submission would look valid on Kaggle); a missing run is named before data work."""
    with pytest.raises(SystemExit) as exc:
        predict.main(["--run", str(run_a), "--out", str(tmp_path / "s.csv")])
    assert exc.value.code == 2 and "--data-dir DIR" in capsys.readouterr().err
    assert predict.main(["--run", str(tmp_path / "absent"), "--data-dir", str(tmp_path / "no-data")]) == 2
    assert f"{tmp_path / 'absent' / 'config.json'}: not found" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("name", ["eeg", "raw"])
def test_lone_eeg_prediction_matches_the_competition_path(tiny_dataset, tmp_path_factory, capsys, name):
    """A 50 s test EEG predicted as a lone file equals its row of the test-set submission, and a
    longer recording is predicted from its central 50 s (EEG spectrogram and raw-EEG runs)."""
    run_eeg = tiny_run(tiny_dataset, tmp_path_factory.getbasetemp() / "tiny-runs", name)
    data = open_data(tiny_dataset, require=("test",))
    loaded = inference.load_run(run_eeg, data)
    test_set = inference.predict_labels(loaded, data.test, progress=False)
    eeg_id = int(data.test["eeg_id"].iloc[2])
    lone = inference.predict_eeg_file(inference.load_run(run_eeg, None), data.eeg_path("test", eeg_id))
    np.testing.assert_allclose(lone, test_set[2], atol=2e-3)  # float16 input cache on the test-set path

    recording = pd.read_parquet(data.eeg_path("test", eeg_id))
    longer = tmp_path_factory.mktemp("lone-eeg") / "long.parquet"
    pd.concat([recording.iloc[:5000], recording, recording.iloc[5000:]]).to_parquet(longer)  # same centre
    capsys.readouterr()  # drop what training printed
    assert predict.main(["--run", str(run_eeg), "--eeg", str(longer)]) == 0
    printed = [float(v) for v in capsys.readouterr().out.split()[1::2]]
    np.testing.assert_allclose(printed, lone, atol=1e-4)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_device_auto_picks_what_training_picks(monkeypatch, cuda, mps, expected):
    """predict's ``--device auto`` follows the trainer's rule (cuda, then mps, then cpu)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    seen = {}

    def fake_predict_test(**kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(predict, "predict_test", fake_predict_test)
    assert predict.main(["--run", "runs/a", "--data-dir", "data"]) == 2
    assert seen["device"] == expected


@pytest.mark.parametrize("name", ["eeg", "raw"])
def test_a_whole_recording_gives_windows_a_timeline_and_a_summary(tiny_dataset, tmp_path_factory, capsys, name):
    """Sliding 50-s windows every --stride seconds; each window's probabilities equal the lone
    prediction of that window, written as its own 50-s file; CSV, PNG and summary are written."""
    run_eeg = tiny_run(tiny_dataset, tmp_path_factory.getbasetemp() / "tiny-runs", name)
    tmp = tmp_path_factory.mktemp("recording")
    source = max((tiny_dataset / "train_eegs").glob("*.parquet"), key=lambda p: pd.read_parquet(p).shape[0])
    frame = pd.read_parquet(source)
    frame.to_parquet(tmp / "rec.parquet", index=False)
    out = tmp / "rec_windows.csv"
    capsys.readouterr()
    argv = ["--run", str(run_eeg), "--recording", str(tmp / "rec.parquet"), "--stride", "7.5", "--out", str(out)]
    assert predict.main([*argv, "--no-progress"]) == 0
    windows = pd.read_csv(out)
    n_expected = (len(frame) - 10_000) // 1500 + 1
    assert len(windows) == n_expected and list(windows.columns) == ["start_s", "end_s", *VOTE_COLUMNS, "gap_fraction"]
    gaps = np.isnan(frame.to_numpy()[:, :19]).all(axis=1)
    np.testing.assert_allclose(
        windows["gap_fraction"], [gaps[k * 1500 : k * 1500 + 10_000].mean() for k in range(n_expected)]
    )
    np.testing.assert_allclose(windows["start_s"], np.arange(n_expected) * 7.5)
    np.testing.assert_allclose(windows[list(VOTE_COLUMNS)].sum(axis=1), 1.0, atol=1e-9)
    loaded = inference.load_run(run_eeg, None)
    for k in (0, n_expected - 1):
        lone = tmp / f"w{k}.parquet"
        frame.iloc[k * 1500 : k * 1500 + 10_000].to_parquet(lone, index=False)
        np.testing.assert_allclose(
            windows.loc[k, list(VOTE_COLUMNS)], inference.predict_eeg_file(loaded, lone), atol=1e-6
        )
    summary = json.loads((tmp / "rec_windows_summary.json").read_text())
    assert summary["windows"] == n_expected and set(summary["per_class"]) == set(CLASSES)
    assert (tmp / "rec_windows_timeline.png").stat().st_size > 10_000
    assert "windows/s" in capsys.readouterr().out


def test_recording_prediction_refuses_what_it_cannot_do(run_a, tiny_dataset, tmp_path, capsys):
    eeg = next((tiny_dataset / "test_eegs").glob("*.parquet"))
    assert predict.main(["--run", str(run_a), "--recording", str(eeg)]) == 2  # a Kaggle-spectrogram run
    assert "needs a Kaggle spectrogram" in capsys.readouterr().err
    short = tmp_path / "short.parquet"
    pd.read_parquet(eeg).iloc[:5000].to_parquet(short, index=False)
    run_eeg = tiny_run(tiny_dataset, run_a.parent, "eeg")
    assert predict.main(["--run", str(run_eeg), "--recording", str(short)]) == 2
    assert "25 s long; a window is 50 s" in capsys.readouterr().err
