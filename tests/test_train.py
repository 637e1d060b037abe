"""hms.train and its parts (engine, optim, rundir, folds): fast CPU runs with a tiny timm model on
the tiny synthetic set, including a run killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import _tiny_runs
from hms import config, engine, train
from hms import folds as folds_module
from hms.config import Config
from hms.metric import kl_divergence
from hms.optim import LrSchedule, create_optimizer, create_schedule
from hms.rundir import RUN_FILES, RunDir, RunDirError
from hms.schema import OOF_PRED_COLUMNS, OOF_TARGET_COLUMNS


def tiny_args(data_dir: Path, cache_dir: Path, run_dir: Path, **extra) -> list[str]:
    """A run of a few seconds (see _tiny_runs), with stage 2 and 3 epochs of stage 1."""
    settings = {"epochs": 3, "stage2_epochs": 1, "stage2_min_votes": 20, "lr": 3e-3, **extra}
    return _tiny_runs.tiny_args(data_dir, cache_dir, run_dir, **settings)


def tiny_config(data_dir, cache_dir, run_dir, **extra) -> Config:
    return config.build(dict(a.split("=", 1) for a in tiny_args(data_dir, cache_dir, run_dir, **extra)))


def run_command(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hms.train", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("input-cache")


@pytest.fixture(scope="module")
def reference_run(tiny_dataset, cache_dir, tmp_path_factory) -> Path:
    """An uninterrupted run of the tiny configuration, through the command line."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    result = run_command(tiny_args(tiny_dataset, cache_dir, run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir / "stdout.txt").write_text(result.stdout)
    return run_dir


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------


def test_kl_loss_is_the_metric_without_clipping():
    torch.manual_seed(0)
    logits = torch.randn(16, 6, dtype=torch.float64)
    target = torch.softmax(torch.randn(16, 6, dtype=torch.float64) * 2, dim=1)
    target[:4, :3] = 0  # zero votes: terms count as 0
    target = target / target.sum(dim=1, keepdim=True)
    loss = engine.kl_loss(logits, target)
    probs = torch.softmax(logits, dim=1).numpy()
    assert loss.item() == pytest.approx(kl_divergence(target.numpy(), probs), rel=1e-5)
    reference = nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(logits.float(), 1), target.float())
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_kl_loss_vote_weights():
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2.0]])
    target = torch.eye(6)[:2]
    per_sample = [engine.kl_loss(logits[i : i + 1], target[i : i + 1]).item() for i in range(2)]
    assert engine.kl_loss(logits, target, torch.ones(2)).item() == pytest.approx(np.mean(per_sample))
    weighted = engine.kl_loss(logits, target, torch.tensor([3.0, 1.0])).item()
    assert weighted == pytest.approx((3 * per_sample[0] + per_sample[1]) / 4)


# ---------------------------------------------------------------------------------------------
# Vote-aware schedules
# ---------------------------------------------------------------------------------------------


def _votes_labels(votes: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"n_votes": votes, "expert_consensus": ["Seizure"] * len(votes)})


def test_vote_decay_moves_low_vote_rows_from_full_weight_to_their_share():
    cfg = Config(vote_schedule="decay", stage2_min_votes=10, epochs=5)
    stage = folds_module.Stage(1, 0, 5, np.arange(4), 1e-3)
    votes = torch.tensor([1.0, 5.0, 10.0, 20.0])
    first, middle, last = (folds_module.vote_weights(cfg, stage, e)(votes) for e in (0, 2, 4))
    torch.testing.assert_close(first, torch.ones(4))
    torch.testing.assert_close(middle, torch.tensor([0.1**0.5, 0.5**0.5, 1.0, 1.0]))
    torch.testing.assert_close(last, torch.tensor([0.1, 0.5, 1.0, 1.0]))
    with_counts = Config(vote_schedule="decay", stage2_min_votes=10, epochs=5, loss_vote_weights=True)
    torch.testing.assert_close(folds_module.vote_weights(with_counts, stage, 4)(votes), votes * last)
    stage2 = folds_module.Stage(2, 5, 2, np.arange(4), 1e-4)
    assert folds_module.vote_weights(cfg, stage2, 5) is None  # stage 2 has only high-vote rows
    assert folds_module.vote_weights(Config(), stage, 4) is None


def test_vote_switch_draws_only_high_vote_rows_from_its_epoch():
    labels = _votes_labels([1, 12, 3, 15, 2, 2, 10])
    cfg = Config(vote_schedule="switch", vote_switch_epoch=2, stage2_min_votes=10, epochs=4)
    stage = folds_module.Stage(1, 0, 4, np.arange(len(labels)), 1e-3)
    before = [folds_module.epoch_order(cfg, 0, stage, labels, e) for e in (0, 1)]
    after = [folds_module.epoch_order(cfg, 0, stage, labels, e) for e in (2, 3)]
    assert all(sorted(order) == list(range(7)) for order in before)  # every row once
    for order in after:
        assert len(order) == 7 and set(order) == {1, 3, 6}  # as many draws, high-vote rows only
        assert max(np.bincount(order)) - min(np.bincount(order)[[1, 3, 6]]) <= 1  # in rounds
    assert after[0] != after[1]  # reshuffled per epoch
    plain = Config(stage2_min_votes=10, epochs=4)
    assert folds_module.epoch_order(plain, 0, stage, labels, 0) == before[0]  # unchanged before the switch


def test_vote_schedules_train_end_to_end(tiny_dataset, cache_dir, tmp_path, monkeypatch):
    seen = []
    original = engine.train_one_epoch

    def spy(*args, sample_weight=None, **kwargs):
        seen.append(None if sample_weight is None else sample_weight(torch.tensor([1.0, 20.0])))
        return original(*args, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", spy)
    monkeypatch.setattr(train, "baseline_predictions", lambda *a: {"class_prior": np.full((20, 6), 1 / 6)})
    cfg = tiny_config(
        tiny_dataset, cache_dir, tmp_path / "run", epochs=3, stage2_epochs=0, vote_schedule="decay",
        stage2_min_votes=4, folds=[0],
    )  # fmt: skip
    summary = train.train_cv(cfg, RunDir.create(cfg.run_dir, config.to_dict(cfg)))
    assert math.isfinite(summary["overall"]["model"]["kl_all"])
    torch.testing.assert_close(torch.stack(seen), torch.tensor([[1.0, 1.0], [0.5, 1.0], [0.25, 1.0]]))


def test_raw_input_trains_with_finite_loss_on_gaps_missing_and_flat_channels(tiny_dataset, tmp_path):
    """input=raw on recordings with a 20-s gap on every channel, an all-NaN channel, a flat
    channel and a label window that is all NaN: finite losses and predictions."""
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_dataset, data_dir)
    for k, path in enumerate(sorted((data_dir / "train_eegs").glob("*.parquet"))[:4]):
        frame = pd.read_parquet(path)
        frame.iloc[2000:6000] = np.nan
        frame["Fp1"] = np.nan
        frame["O2"] = np.float32(0.0)
        if k == 0:
            frame.iloc[:] = np.nan
        frame.to_parquet(path, index=False)
    cfg = tiny_config(
        data_dir, tmp_path / "cache", tmp_path / "run", input="raw", model="efficientnet1d", epochs=2, folds=[0],
        aug_shift_s=5.0, aug_reverse_p=0.5, aug_drop_chain_p=0.5, mixup_alpha=0.4,
    )  # fmt: skip
    summary = train.train_cv(cfg, RunDir.create(cfg.run_dir, config.to_dict(cfg)))
    metrics = RunDir.open(cfg.run_dir).read_metrics()
    assert np.isfinite(metrics["train_loss"]).all() and np.isfinite(metrics["val_kl"]).all()
    assert math.isfinite(summary["overall"]["model"]["kl_all"])


# ---------------------------------------------------------------------------------------------
# Schedules and optimizer
# ---------------------------------------------------------------------------------------------


def _schedule(kind, **extra) -> LrSchedule:
    cfg = Config(scheduler=kind, lr=1e-3, min_lr=1e-5, **extra)
    return create_schedule(cfg, peak_lr=cfg.lr, epochs=4, steps_per_epoch=10)


def test_cosine_with_warmup():
    s = _schedule("cosine", warmup_epochs=1)
    lrs = [s.lr_at(i) for i in range(40)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # then monotone decay
    assert lrs[-1] == pytest.approx(1e-5)


def test_onecycle_peaks_after_warmup():
    s = _schedule("onecycle")
    lrs = [s.lr_at(i) for i in range(41)]
    assert lrs[0] == pytest.approx(1e-3 / 25)
    assert max(lrs) == pytest.approx(1e-3) and int(np.argmax(lrs)) == 12  # 30% of 40 steps
    assert lrs[-1] == pytest.approx(1e-5)


def test_step_schedule():
    s = _schedule("step", step_epochs=2, lr_decay=0.1)
    assert [s.lr_at(i) for i in (0, 19, 20, 39)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_plateau_cuts_after_patience_and_resumes_from_state():
    s = _schedule("plateau", plateau_patience=2, lr_decay=0.5)
    for score in (1.0, 0.9, 0.95, 0.95):
        s.epoch_end(score)
    assert s.lr == pytest.approx(5e-4)
    restored = LrSchedule.from_state(json.loads(json.dumps(s.state_dict())))
    restored.epoch_end(0.99)
    s.epoch_end(0.99)
    assert restored == s


def test_adamw_skips_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    opt = create_optimizer(model, 1e-3, (0.5, 0.999), 0.01)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.5, 0.999)
    decayed, free = opt.param_groups
    assert decayed["weight_decay"] == 0.01 and [p.ndim for p in decayed["params"]] == [4]
    assert free["weight_decay"] == 0.0 and len(free["params"]) == 3


# ---------------------------------------------------------------------------------------------
# train_one_epoch / validate
# ---------------------------------------------------------------------------------------------


def _batches(n_batches, batch_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(n_batches):
        x = torch.randn(batch_size, 1, 4, 4, generator=g)
        target = torch.softmax(torch.randn(batch_size, 6, generator=g), dim=1)
        index = torch.arange(b * batch_size, (b + 1) * batch_size)
        out.append({"input": x, "target": target, "n_votes": torch.full((batch_size,), 3.0), "index": index})
    return out


def _linear_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 6))


def _epoch(model, loader, accum_steps=1, lr=0.05, grad_clip=None):
    cfg = Config(lr=lr, min_lr=0.0, scheduler="step", step_epochs=100)
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # plain SGD: accumulation must be exact
    steps = math.ceil(len(loader) / accum_steps)
    schedule = create_schedule(cfg, peak_lr=lr, epochs=1, steps_per_epoch=steps)
    stats = engine.train_one_epoch(
        model,
        loader,
        opt,
        schedule,
        device=torch.device("cpu"),
        precision=engine.resolve_precision("auto", torch.device("cpu")),
        accum_steps=accum_steps,
        grad_clip=grad_clip,
    )
    return stats, schedule


def test_accumulation_equals_one_large_batch():
    big = _batches(1, 8)
    halves = [{k: v[:4] for k, v in big[0].items()}, {k: v[4:] for k, v in big[0].items()}]
    a, b = _linear_model(), _linear_model()
    _, sa = _epoch(a, big)
    _, sb = _epoch(b, halves, accum_steps=2)
    assert sa.step == sb.step == 1
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_training_reduces_loss_and_counts_samples():
    model, loader = _linear_model(), _batches(4, 8) * 5
    first, _ = _epoch(model, loader[:4])
    later, _ = _epoch(model, loader)
    assert later.loss < first.loss
    assert later.samples == 160 and later.samples_per_s > 0


def test_grad_clip_limits_the_update():
    free, clipped = _linear_model(), _linear_model()
    before = [p.detach().clone() for p in free.parameters()]
    _epoch(free, _batches(1, 8), lr=1.0)
    _epoch(clipped, _batches(1, 8), lr=1.0, grad_clip=1e-3)
    moved = lambda m: sum((p - q).norm() ** 2 for p, q in zip(m.parameters(), before)).sqrt().item()  # noqa: E731
    assert moved(clipped) == pytest.approx(1e-3, rel=1e-3)
    assert moved(free) > 1e-2


def test_validate_returns_probabilities_in_label_order():
    model, loader = _linear_model(), _batches(3, 4)
    shuffled = loader[::-1]
    kw = dict(device=torch.device("cpu"), precision=engine.resolve_precision("off", torch.device("cpu")))
    a = engine.validate(model, loader, 12, **kw)
    b = engine.validate(model, shuffled, 12, **kw)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="covered 8 of 12"):
        engine.validate(model, loader[:2], 12, **kw)


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path):
    import random

    engine.seed_everything(5)
    path = tmp_path / "rng.pt"
    torch.save(engine.rng_state(), path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    engine.set_rng_state(torch.load(path, weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_cpu_precision_is_float32_and_unknown_device_fails():
    assert engine.resolve_precision("bf16", torch.device("cpu")).dtype is None
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device=cuda"):
            engine.resolve_device("cuda")
    assert engine.derive_seed(1, 0, 2) != engine.derive_seed(1, 0, 3)


# ---------------------------------------------------------------------------------------------
# Run directory
# ---------------------------------------------------------------------------------------------


def test_rundir_refuses_to_overwrite_a_run(tmp_path):
    RunDir.create(tmp_path / "r", {"model": "x"})
    with pytest.raises(RunDirError, match="--resume"):
        RunDir.create(tmp_path / "r", {"model": "x"})
    with pytest.raises(RunDirError, match="config.json"):
        RunDir.open(tmp_path / "elsewhere")


@pytest.mark.parametrize("present", ["metrics.csv", "cv.json", "notes.txt"])
def test_rundir_is_made_only_in_a_new_or_empty_folder(tmp_path, present):
    """An ordinary folder (no config.json: not a run) holding anything is never written into."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / present).write_text("the user's own file")
    with pytest.raises(RunDirError, match=rf"{folder}: run_dir is a folder hms did not make.*{present}"):
        RunDir.create(folder, {"model": "x"})
    assert (folder / present).read_text() == "the user's own file" and not (folder / "config.json").exists()
    (folder / present).unlink()
    (folder / ".config.json.abc.tmp").write_text("")  # left by an interrupted hms write
    assert RunDir.create(folder, {"model": "x"}).read_config() == {"model": "x"}
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="not a folder"):
        RunDir.create(tmp_path / "file", {})


def test_resume_after_the_labels_changed_is_refused(tiny_dataset, cache_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    run_dir = tmp_path / "run"
    assert train.main(tiny_args(data, cache_dir, run_dir, epochs=1, stage2_epochs=0)) == 0
    frame = pd.read_csv(data / "train.csv")
    frame.loc[0, "seizure_vote"] += 1  # one more vote: other targets
    frame.to_csv(data / "train.csv", index=False)
    capsys.readouterr()
    assert train.main(["--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and str(data / "train.csv") in err and "start a new run" in err


def test_checkpoints_are_atomic_and_safe(tmp_path):
    run = RunDir.create(tmp_path / "r", {})
    run.save_checkpoint(0, "last", {"weights": torch.ones(2), "history": [{"epoch": 1}]})
    assert [p.name for p in run.fold_dir(0).iterdir()] == ["last.pt"]  # no temporary files left
    assert run.load_checkpoint(0, "last")["history"] == [{"epoch": 1}]
    assert run.load_checkpoint(1, "best") is None
    run.checkpoint_path(0, "best").write_bytes(b"truncated")
    with pytest.raises(RunDirError, match="best.pt"):
        run.load_checkpoint(0, "best")
    silent = RunDir(tmp_path / "rank1", is_writer=False)
    silent.save_checkpoint(0, "last", {"x": torch.ones(1)})
    silent.write_json("cv.json", {})
    assert not (tmp_path / "rank1").exists()


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for name in config.field_names() + ["resume", "config"]:
        assert config.option_name(name) in text, name


def test_unknown_option_names_the_closest_key(capsys):
    with pytest.raises(SystemExit):
        train.main(["--n_fold", "2"])
    assert "did you mean 'n_folds'" in capsys.readouterr().err


def test_complete_run_directory(reference_run, tiny_dataset):
    cfg = json.loads((reference_run / "config.json").read_text())
    assert cfg["model"] == "test_resnet" and cfg["run_dir"] == str(reference_run)
    for name in RUN_FILES:
        assert (reference_run / name).stat().st_size > 0, name
    for fold in (0, 1):
        for name in ("best.pt", "last.pt", "normalization.json"):
            assert (reference_run / f"fold{fold}" / name).is_file()
    metrics = pd.read_csv(reference_run / "metrics.csv")
    for column in (
        "fold",
        "stage",
        "epoch",
        "train_loss",
        "val_loss",
        "val_kl",
        "val_kl_high_votes",
        "lr",
        "samples_per_s",
        "train_seconds",
    ):
        assert column in metrics, column
    assert not metrics.duplicated(["fold", "epoch"]).any()
    assert set(metrics["stage"]) <= {1, 2} and metrics.groupby("fold").size().max() <= 4


def test_oof_and_cv_agree(reference_run):
    oof = pd.read_parquet(reference_run / "oof.parquet")
    cv = json.loads((reference_run / "cv.json").read_text())
    preds = oof[list(OOF_PRED_COLUMNS)].to_numpy()
    targets = oof[list(OOF_TARGET_COLUMNS)].to_numpy()
    np.testing.assert_allclose(preds.sum(axis=1), 1.0, atol=1e-9)
    assert set(oof["fold"]) == {0, 1} and oof["label_id"].is_unique
    assert cv["overall"]["model"]["kl_all"] == pytest.approx(kl_divergence(targets, preds))
    high = oof["n_votes"].to_numpy() >= cv["min_votes"]
    assert cv["overall"]["model"]["kl_high_votes"] == pytest.approx(kl_divergence(targets[high], preds[high]))
    for fold, scores in cv["per_fold"].items():
        rows = oof["fold"].to_numpy() == int(fold)
        assert scores["model"]["kl_all"] == pytest.approx(kl_divergence(targets[rows], preds[rows]))
    assert set(cv["overall"]) >= {"model", "uniform", "class_prior", "band_power_lr"}
    assert cv["overall"]["uniform"]["kl_all"] == pytest.approx(kl_divergence(targets, np.full_like(targets, 1 / 6)))
    stdout = (reference_run / "stdout.txt").read_text()
    assert "CV" in stdout and "class prior" in stdout and f"{cv['overall']['model']['kl_all']:.4f}" in stdout


def test_best_checkpoint_holds_the_selected_predictions(reference_run):
    oof = pd.read_parquet(reference_run / "oof.parquet")
    metrics = pd.read_csv(reference_run / "metrics.csv")
    for fold in (0, 1):
        best = torch.load(reference_run / f"fold{fold}" / "best.pt", weights_only=True)
        rows = oof[oof["fold"] == fold]
        np.testing.assert_array_equal(best["val_probs"].numpy(), rows[list(OOF_PRED_COLUMNS)].to_numpy())
        fold_rows = metrics[metrics["fold"] == fold]
        assert best["epoch"] + 1 == fold_rows.loc[fold_rows["best"], "epoch"].max()
        assert json.loads(best["inputs"])["params"]["image_size"] == 32


def test_sigkill_then_resume_matches_uninterrupted_run(reference_run, tiny_dataset, cache_dir, tmp_path):
    run_dir = tmp_path / "killed"
    args = tiny_args(tiny_dataset, cache_dir, run_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "hms.train", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    try:
        while not (run_dir / "metrics.csv").exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "cv.json").exists(), "the run finished before it was killed"

    refused = run_command(["--resume", str(run_dir), "lr=0.1"])
    assert refused.returncode == 2 and "['lr']" in refused.stderr
    resumed = run_command(["--resume", str(run_dir), "progress=false"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, got = pd.read_parquet(reference_run / "oof.parquet"), pd.read_parquet(run_dir / "oof.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    a, b = pd.read_csv(reference_run / "metrics.csv"), pd.read_csv(run_dir / "metrics.csv")
    assert list(a[["fold", "epoch"]].itertuples(index=False)) == list(b[["fold", "epoch"]].itertuples(index=False))
    np.testing.assert_array_equal(a["val_kl"], b["val_kl"])


def test_dataloader_workers_change_nothing_and_live_for_a_stage(
    reference_run, tiny_dataset, cache_dir, tmp_path, monkeypatch
):
    """Augmentations depend on (seed, fold, epoch, row) alone: two persistent workers reproduce
    the reference run exactly, and each stage of each fold builds one training DataLoader."""
    built = []
    build_loader = folds_module.FoldTrainer._train_loader

    def counted(self, train_set, stage):
        built.append((self.fold, stage.number))
        return build_loader(self, train_set, stage)

    monkeypatch.setattr(folds_module.FoldTrainer, "_train_loader", counted)
    run_dir = tmp_path / "workers"
    assert train.main(tiny_args(tiny_dataset, cache_dir, run_dir, num_workers=2)) == 0
    expected, got = pd.read_parquet(reference_run / "oof.parquet"), pd.read_parquet(run_dir / "oof.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    a, b = pd.read_csv(reference_run / "metrics.csv"), pd.read_csv(run_dir / "metrics.csv")
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    np.testing.assert_array_equal(a["val_kl"], b["val_kl"])
    stages = list(b[["fold", "stage"]].drop_duplicates().itertuples(index=False, name=None))
    assert built == stages and len(b) > len(stages), (built, stages)


def test_early_stopping_and_stage_two(tiny_dataset, cache_dir, tmp_path, monkeypatch):
    # Validation that never improves after the first epoch: each stage stops after `patience`.
    scores = iter(np.arange(1.0, 100.0, 0.5))
    monkeypatch.setattr(folds_module, "score_subsets", lambda *a: (next(scores), math.nan))
    cfg = tiny_config(
        tiny_dataset, cache_dir, tmp_path / "run", epochs=5, stage2_epochs=3, stage2_min_votes=1, patience=1, folds=[1]
    )
    run = RunDir.create(cfg.run_dir, config.to_dict(cfg))
    monkeypatch.setattr(train, "baseline_predictions", lambda *a: {"class_prior": np.full((20, 6), 1 / 6)})
    summary = train.train_cv(cfg, run)
    metrics = run.read_metrics()
    assert metrics["fold"].unique().tolist() == [1]
    assert metrics["stage"].tolist() == [1, 1, 2]  # 1 good + 1 bad epoch, then stage 2 stops after 1
    assert metrics["epoch"].tolist() == [1, 2, 6]
    assert metrics["best"].tolist() == [True, False, False]
    assert list(summary["per_fold"]) == ["1"]
    oof = run.read_oof()
    assert set(oof["fold"]) == {1}
