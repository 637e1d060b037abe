"""hms.tune and hms.search_space: space validation, a tiny study that prunes and resumes, a study
whose trials were all pruned, and a worker killed mid-trial (heartbeat marks its trial FAIL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import optuna
import pandas as pd
import pytest
import tomllib

from hms import config, tune
from hms.search_space import SearchSpaceError, apply_params, load_space, parse_space

TINY_SPACE = """
[lr]
type = "float"
low = 1e-4
high = 3e-2
log = true

[drop_rate]
type = "float"
low = 0.0
high = 0.5

[normalization]
type = "categorical"
choices = ["instance", "datawide"]
"""


@pytest.fixture(scope="module")
def tiny_setup(tiny_dataset, tmp_path_factory) -> dict[str, Path]:
    """A base config of timm's test_resnet on 32 x 32 Kaggle images (seconds per trial)."""
    root = tmp_path_factory.mktemp("tune")
    base = {
        "data_dir": str(tiny_dataset),
        "cache_dir": str(root / "cache"),
        "input": "kaggle",
        "image_size": 32,
        "model": "test_resnet",
        "n_folds": 2,
        "batch_size": 4,
        "stage2_min_votes": 20,
        "seed": 3,
        "progress": False,
        "device": "cpu",
    }
    (root / "base.toml").write_text(config.to_toml(base))
    (root / "space.toml").write_text(TINY_SPACE)
    return {"root": root, "config": root / "base.toml", "space": root / "space.toml"}


def tune_args(setup: dict[str, Path], studies: Path, *extra: str) -> list[str]:
    return [
        "--config", str(setup["config"]), "--space", str(setup["space"]), "--studies-dir", str(studies), "--study",
        "t", "--tune-epochs", "2", "--sampler-startup-trials", "2", *extra,
    ]  # fmt: skip


def states(storage_url: str, study: str = "t") -> list[str]:
    loaded = optuna.load_study(study_name=study, storage=storage_url)
    return [t.state.name for t in loaded.get_trials(deepcopy=False)]


# ---------------------------------------------------------------------------------------------
# Search space
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", tune.TRIAL_KEYS)
def test_keys_each_trial_sets_cannot_be_searched(tiny_setup, tmp_path, capsys, key):
    """A sampled epochs/folds/... would be overwritten by the trial budget and then reported as
    the best value: the space is refused before any trial, naming the entry."""
    hint = typing.get_type_hints(config.Config)[key]
    entry = {
        bool: 'type = "categorical"\nchoices = [true, false]',
        str | None: 'type = "categorical"\nchoices = ["a", "b"]',
    }
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE + f"\n[{key}]\n" + entry.get(hint, 'type = "int"\nlow = 1\nhigh = 3') + "\n")
    studies = tmp_path / "studies"
    argv = [
        "--config", str(tiny_setup["config"]), "--space", str(space), "--studies-dir", str(studies), "--trials", "1",
    ]  # fmt: skip
    assert tune.main(argv) == 2
    assert f"[{key}] ({key})" in capsys.readouterr().err
    assert not (studies / "hms" / "best.toml").exists()


@pytest.mark.parametrize("name", ["../../outside", "a/b", "/abs", "..", ".hidden", "", "x" * 129])
def test_study_names_stay_inside_the_studies_folder(tiny_setup, tmp_path, capsys, name):
    studies = tmp_path / "studies"
    argv = ["--config", str(tiny_setup["config"]), "--studies-dir", str(studies), "--trials", "1", "--study", name]
    assert tune.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: --study {name!r}: a study name is one folder name")
    assert not any(tmp_path.rglob("study.db"))


def test_base_config_takes_key_value_overrides(tmp_path):
    base = tmp_path / "base.toml"
    base.write_text('input = "eeg"\nepochs = 5\n')
    args = tune.build_parser().parse_args(["--config", str(base), "input=both", "batch-size=8", "--trials", "1"])
    settings = tune.settings_from_args(args)
    assert settings.base_values == {"input": "both", "epochs": 5, "batch_size": "8"}
    with pytest.raises(config.ConfigError, match="unknown config key 'epoch' in the command line.*'epochs'"):
        tune.settings_from_args(tune.build_parser().parse_args(["epoch=1"]))


def test_default_space_samples_valid_configs():
    space = load_space()
    assert {p.key for p in space} >= {
        "lr", "beta1", "beta2", "weight_decay", "scheduler", "drop_rate", "normalization", "clip_lo", "clip_hi",
        "bandpass", "input",
    }  # fmt: skip
    for seed in range(3):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        trial = study.ask()
        overrides = apply_params(space, {p.name: p.suggest(trial) for p in space})
        cfg = config.build(overrides)
        assert len(cfg.bandpass) == 2 and cfg.bandpass[0] < cfg.bandpass[1]
        assert cfg.scheduler in config.SCHEDULERS and 0 <= cfg.drop_rate <= 0.5


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}, "'lrr' is not a config key"),
        ({"lr": {"type": "float", "low": 1e-2, "high": 1e-4}}, "[lr]: low must be < high"),
        ({"lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}, "[lr]: log = true needs low > 0"),
        (
            {"scheduler": {"type": "categorical", "choices": ["cosine", "one-cycle"]}},
            "[scheduler]: scheduler must be one of",
        ),
        (
            {"lo": {"type": "float", "key": "bandpass", "index": 1, "low": 1.0, "high": 2.0}},
            "needs entries for indices 0..0",
        ),
        ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "logg": True}}, "[lr]: unknown field(s) ['logg']"),
    ],
)
def test_space_errors_name_the_entry(entry, message):
    with pytest.raises(SearchSpaceError) as info:
        parse_space(entry, "space.toml")
    assert message in str(info.value) and "space.toml" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------------


def test_all_pruned_study_is_reported_without_best(tmp_path):
    study = optuna.create_study(study_name="p")
    for _ in range(2):
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED, params={}, distributions={}, intermediate_values={0: 1.0}
            )
        )
    settings = tune.TuneSettings(study="p", studies_dir=tmp_path)
    summary = tune.write_outputs(study, settings, [])
    assert summary["best"] is None and summary["counts"]["pruned"] == 2
    assert not (tmp_path / "p" / "best.toml").exists()
    assert len(pd.read_csv(tmp_path / "p" / "trials.csv")) == 2
    assert "no trial completed" in tune.format_summary(summary, settings)


def test_study_prunes_writes_outputs_and_resumes(tiny_setup, capsys):
    studies = tiny_setup["root"] / "studies-a"
    args = tune_args(tiny_setup, studies, "--trials", "4", "--pruner-startup-trials", "1")
    code = tune.main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    url = f"sqlite:///{(studies / 't' / 'study.db').resolve()}"
    first = states(url)
    assert len(first) == 4 and "PRUNED" in first and "COMPLETE" in first, first

    best = tomllib.loads((studies / "t" / "best.toml").read_text())
    cfg = config.build(best)  # runs as `python -m hms.train --config best.toml`
    assert cfg.n_folds == 2 and cfg.folds is None and cfg.epochs == config.Config().epochs  # full budget, not 2 x 2
    assert {"lr", "drop_rate", "normalization"} <= set(best)
    trials = pd.read_csv(studies / "t" / "trials.csv")
    assert len(trials) == 4 and trials["value"].notna().any()
    for name in ("optimization_history", "param_importances", "slice"):
        assert (studies / "t" / "plots" / f"{name}.png").stat().st_size > 1000
    # Each trial trained in its own run directory under the study.
    assert (studies / "t" / "trials" / "0000" / "fold0" / "last.pt").exists()

    assert tune.main(tune_args(tiny_setup, studies, "--trials", "1", "--pruner-startup-trials", "1")) == 0
    second = states(url)
    assert len(second) == 5 and second[:4] == first
    assert len(pd.read_csv(studies / "t" / "trials.csv")) == 5


def test_killed_worker_trial_fails_and_study_continues(tiny_setup):
    studies = tiny_setup["root"] / "studies-k"
    url = f"sqlite:///{(studies / 't' / 'study.db').resolve()}"
    heartbeat = ("--heartbeat-interval", "1", "--grace-period", "2")
    # Many epochs so the worker is surely mid-trial when killed.
    args = tune_args(tiny_setup, studies, "--trials", "1", "--tune-epochs", "50", *heartbeat)
    worker = subprocess.Popen(
        [sys.executable, "-m", "hms.tune", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (studies / "t" / "trials" / "0000" / "fold0" / "last.pt").exists():  # at least one epoch trained
                break
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        assert states(url) == ["RUNNING"]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    time.sleep(3)  # past the grace period of the last heartbeat
    assert (
        tune.main(tune_args(tiny_setup, studies, "--trials", "1", "--tune-epochs", "1", "--pruner", "none", *heartbeat))
        == 0
    )
    assert states(url) == ["FAIL", "COMPLETE"]
    assert (studies / "t" / "best.toml").exists()


def test_hyperband_on_a_journal_file_shared_by_two_workers(tiny_setup):
    """Two worker processes on one machine share a study through Optuna's journal file."""
    import subprocess
    import sys

    studies = tiny_setup["root"] / "studies-journal"
    journal = tiny_setup["root"] / "shared.log"
    args = tune_args(
        tiny_setup,
        studies,
        "--trials",
        "2",
        "--tune-epochs",
        "1",
        "--pruner",
        "hyperband",
        "--storage",
        f"journal:{journal}",
    )
    assert isinstance(
        tune.make_pruner(tune.settings_from_args(tune.build_parser().parse_args(args))), optuna.pruners.HyperbandPruner
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "hms.tune", *args, "--seed", str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name="t", storage=JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4 and len({t.number for t in trials}) == 4
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
