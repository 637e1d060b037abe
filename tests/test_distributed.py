"""Multi-process training on CPU: torchrun with two gloo processes, a killed and a hung rank,
folds_parallel, and the shard logic of hms.distributed. Tiny settings (tests/_tiny_runs.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from _tiny_runs import tiny_args
from hms import config, dsp, engine, inference, train
from hms.competition import open_data
from hms.dataset import InputDataset
from hms.distributed import Distributed, DistributedError, cpu_threads, eval_shard, share_cpus, train_shard
from hms.labels import make_folds, make_labels, targets_of
from hms.metric import kl_divergence
from hms.rundir import RUN_FILES
from hms.schema import OOF_PRED_COLUMNS, OOF_TARGET_COLUMNS

#: Long enough that each run is mid-training when a process is killed.
LONG = {"epochs": 200}
#: Stage 2 too, so its start (stage 1's best weights, read by rank 0 and broadcast) is covered.
DDP_SETTINGS = {"epochs": 3, "stage2_epochs": 1, "stage2_min_votes": 20, "lr": 3e-3}

#: Runs hms.train, logging every run-directory write with the writing process's RANK.
AUDITED_ENTRY = """
import os, sys
from hms import rundir, train

def audited(write):
    def wrapper(*args):
        with open(os.environ["HMS_WRITE_AUDIT"], "a") as log:
            log.write(f"{os.environ.get('RANK', '-')} {args[-1]}\\n")
        return write(*args)
    return wrapper

rundir.atomic_output = audited(rundir.atomic_output)
rundir.write_csv_atomic = audited(rundir.write_csv_atomic)
sys.exit(train.main(sys.argv[1:]))
"""


def cpu_args(data_dir: Path, cache_dir: Path, run_dir: Path, **settings) -> list[str]:
    """A tiny run on the CPU (device=auto would put every process on the one GPU of a GPU machine)."""
    return tiny_args(data_dir, cache_dir, run_dir, device="cpu", **settings)


def child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    return {**env, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", **extra}


def torchrun(entry: list[str], args: list[str], **popen) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node=2 ENTRY ARGS`` (standalone: a free port, no network)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *entry, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"exited with {process.returncode} before {path.name} appeared:\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def env_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_complete_run(run_dir: Path, n_labels: int) -> None:
    for name in RUN_FILES:
        assert (run_dir / name).stat().st_size > 0, name
    for fold in (0, 1):
        for name in ("best.pt", "last.pt", "normalization.json"):
            assert (run_dir / f"fold{fold}" / name).is_file(), f"fold{fold}/{name}"
        assert torch.load(run_dir / f"fold{fold}" / "last.pt", weights_only=True)["finished"]
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert not metrics.duplicated(["fold", "epoch"]).any()
    assert sorted(metrics["fold"].unique()) == [0, 1]
    assert np.isfinite(metrics[["train_loss", "val_kl", "samples_per_s"]].to_numpy()).all()
    oof = pd.read_parquet(run_dir / "oof.parquet")
    assert len(oof) == n_labels and oof["label_id"].is_unique, "duplicated or missing OOF rows"
    preds = oof[list(OOF_PRED_COLUMNS)].to_numpy()
    assert np.isfinite(preds).all()
    np.testing.assert_allclose(preds.sum(axis=1), 1.0, atol=1e-9)
    cv = json.loads((run_dir / "cv.json").read_text())
    targets = oof[list(OOF_TARGET_COLUMNS)].to_numpy()
    assert cv["overall"]["model"]["kl_all"] == pytest.approx(kl_divergence(targets, preds))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("input-cache")


@pytest.fixture(scope="module")
def n_labels(tiny_dataset) -> int:
    return len(make_labels(open_data(tiny_dataset).train, config.Config().grouping))


# ---------------------------------------------------------------------------------------------
# Shards and set-up
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,world", [(20, 2), (21, 2), (10, 3), (2, 4), (1, 2), (0, 3)])
def test_eval_shards_cover_every_row_once(n, world):
    parts = [list(eval_shard(n, r, world)) for r in range(world)]
    assert sorted(sum(parts, [])) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("n,world", [(20, 2), (21, 2), (10, 3), (2, 4), (1, 3)])
def test_train_shards_have_equal_lengths_and_cover_the_epoch(n, world):
    order = list(np.random.default_rng(n).permutation(n))
    shards = [train_shard(order, r, world) for r in range(world)]
    assert {len(s) for s in shards} == {-(-n // world)} == {Distributed(0, world).shard_length(n)}
    assert set(sum(shards, [])) == set(order)  # every sample; padding repeats the order's start
    assert len(sum(shards, [])) - n < world
    assert train_shard(order, 1, world) == train_shard(list(order), 1, world)  # deterministic


def test_each_process_takes_its_share_of_the_cpus_unless_told_otherwise():
    torch_threads = torch.get_num_threads()
    try:
        share_cpus(2, env={})
        assert torch.get_num_threads() == dsp.get_num_threads() == cpu_threads(2)
        dsp.set_num_threads(3)
        torch.set_num_threads(3)
        share_cpus(2, env={"OMP_NUM_THREADS": "3", "RAYON_NUM_THREADS": "3"})  # the user's choice stands
        assert torch.get_num_threads() == dsp.get_num_threads() == 3
    finally:
        torch.set_num_threads(torch_threads)
        dsp.set_num_threads(None)


def test_single_process_without_torchrun_and_a_partial_environment_is_an_error():
    single = Distributed.from_env(10, environ={})
    assert (single.enabled, single.is_main, single.rank, single.world_size) == (False, True, 0, 1)
    assert single.run_on_main(lambda: 7) == 7 and single.all_gather_object("x") == ["x"]
    assert Distributed.from_env(10, environ={"WORLD_SIZE": "1"}) == single
    with pytest.raises(DistributedError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set.*torchrun"):
        Distributed.from_env(10, environ={"WORLD_SIZE": "2"})
    assert single.seed(1, 2, 3) == engine.derive_seed(1, 2, 3)  # rank 0 keeps single-process seeds
    assert Distributed(1, 2).seed(1, 2, 3) != Distributed(0, 2).seed(1, 2, 3)


def test_folds_parallel_is_refused_under_torchrun(capsys):
    cfg = config.Config(folds_parallel=2)
    with pytest.raises(ValueError, match="folds_parallel=2 cannot be combined with torchrun"):
        train.check_launch(cfg, Distributed(rank=0, world_size=2))
    train.check_launch(cfg, Distributed())


class _Rank1(Distributed):
    """Rank 1 as it sees open_run_on_main: rank 0's broadcast result, no collective."""

    payload: tuple = ()

    def run_on_main(self, fn):
        return self.payload


def test_other_ranks_get_rank_0s_config_and_a_run_that_writes_nothing(tmp_path):
    parser = train.build_parser()
    args, cfg = config.parse_args(parser, ["model=test_resnet"])
    rank0 = config.to_dict(cfg) | {"run_dir": str(tmp_path / "run-20240101-000000")}
    rank1 = _Rank1(rank=1, world_size=2)
    object.__setattr__(rank1, "payload", (rank0, rank0["run_dir"]))
    got_cfg, run = train.open_run_on_main(parser, args, cfg, rank1)
    assert config.to_dict(got_cfg) == rank0 and not run.is_writer
    run.write_json("config.json", {})
    run.save_checkpoint(0, "last", {"x": torch.ones(1)})
    run.write_metrics([{"fold": 0}])
    run.write_oof(pd.DataFrame({"a": [1]}))
    assert not (tmp_path / "run-20240101-000000").exists()


# ---------------------------------------------------------------------------------------------
# torchrun, 2 processes with gloo
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_run(tiny_dataset, cache_dir, tmp_path_factory) -> tuple[Path, str, str, list[str]]:
    """(run directory, stdout, stderr, audited writes as "RANK path") of a 2-process torchrun run."""
    root = tmp_path_factory.mktemp("ddp")
    entry, audit = root / "audited_train.py", root / "writes.txt"
    entry.write_text(AUDITED_ENTRY)
    run_dir = root / "run"
    process = torchrun(
        [str(entry)],
        cpu_args(tiny_dataset, cache_dir, run_dir, **DDP_SETTINGS),
        env=child_env(HMS_WRITE_AUDIT=str(audit)),
    )
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-4000:]
    return run_dir, out, err, audit.read_text().splitlines()


@pytest.mark.slow
def test_ddp_run_directory_is_complete_with_one_writer(ddp_run, n_labels):
    run_dir, out, err, writes = ddp_run
    assert_complete_run(run_dir, n_labels)
    assert {w.split(" ", 1)[0] for w in writes} == {"0"}, "a rank other than 0 wrote to the run directory"
    written = {Path(w.split(" ", 1)[1]).name for w in writes}
    assert set(RUN_FILES) | {"best.pt", "last.pt", "normalization.json"} <= written
    assert out.count("CV ") == 1 and err.count("x 2 processes") == 1  # one report and one log, from rank 0
    assert len(re.findall(r"fold 0 stage 1 epoch 1/", err)) == 1  # one log line per epoch
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["stage"].tolist() == [1, 1, 1, 2] * 2


@pytest.mark.slow
def test_ddp_cv_equals_a_single_process_evaluation_of_the_saved_models(ddp_run, tiny_dataset):
    run_dir = ddp_run[0]
    cv = json.loads((run_dir / "cv.json").read_text())
    oof = pd.read_parquet(run_dir / "oof.parquet")
    data = open_data(tiny_dataset)
    loaded = inference.load_run(run_dir, data)
    labels = make_labels(data.train, loaded.cfg.grouping)
    folds = make_folds(labels, loaded.cfg.n_folds, loaded.cfg.seed)
    cpu = torch.device("cpu")
    assert [fm.fold for fm in loaded.folds] == [0, 1]
    for fm in loaded.folds:
        rows = labels[folds == fm.fold].reset_index(drop=True)
        loader = DataLoader(InputDataset(fm.pipeline, rows, split="train", augment=False), batch_size=3)
        probs = engine.validate(fm.model, loader, len(rows), device=cpu, precision=engine.resolve_precision("off", cpu))
        assert kl_divergence(targets_of(rows), probs) == pytest.approx(
            cv["per_fold"][str(fm.fold)]["model"]["kl_all"], abs=1e-6
        )
        saved = oof.loc[oof["fold"] == fm.fold, list(OOF_PRED_COLUMNS)].to_numpy()
        np.testing.assert_allclose(probs, saved, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_killed_rank_ends_the_torchrun_job_with_a_clear_error(tiny_dataset, cache_dir, tmp_path):
    run_dir = tmp_path / "killed"
    process = torchrun(
        ["-m", "hms.train"], cpu_args(tiny_dataset, cache_dir, run_dir, **LONG, dist_timeout_s=30), env=child_env()
    )
    try:
        wait_for(run_dir / "metrics.csv", process)  # mid-training: an epoch is done
        (rank1,) = [pid for pid in children(process.pid) if env_of(pid).get("RANK") == "1"]
        os.kill(rank1, signal.SIGKILL)
        killed = time.monotonic()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0 and time.monotonic() - killed < 60
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", err) and "SIGKILL" in err, err[-3000:]
    assert not (run_dir / "cv.json").exists()


@pytest.mark.slow
def test_hung_rank_makes_the_other_fail_after_the_timeout(tiny_dataset, cache_dir, tmp_path):
    """Without torchrun's agent to tear the job down, a rank whose peer stops answering fails
    with a clear error after dist_timeout_s instead of waiting forever."""
    run_dir, port = tmp_path / "hung", str(free_port())
    args = cpu_args(tiny_dataset, cache_dir, run_dir, **LONG, dist_timeout_s=5)
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "hms.train", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE="2",
                LOCAL_WORLD_SIZE="2",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                OMP_NUM_THREADS="1",
            ),
        )
        for r in (0, 1)
    ]
    try:
        wait_for(run_dir / "metrics.csv", ranks[0])
        os.kill(ranks[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        _, err = ranks[0].communicate(timeout=60)
        waited = time.monotonic() - stopped
    finally:
        for p in ranks:
            p.kill()
            p.communicate()
    assert ranks[0].returncode == 1 and waited < 60
    assert "error: rank 0 of 2: " in err and "dist_timeout_s=5 s" in err and "Timed out" in err, err[-3000:]


# ---------------------------------------------------------------------------------------------
# folds_parallel
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_folds_parallel_matches_one_fold_after_another(tiny_dataset, cache_dir, tmp_path, n_labels):
    args = lambda run_dir, **extra: cpu_args(tiny_dataset, cache_dir, run_dir, **DDP_SETTINGS, **extra)  # noqa: E731
    # One thread everywhere: CPU results depend on the thread count, not on the process.
    parallel = subprocess.run(
        [sys.executable, "-m", "hms.train", *args(tmp_path / "parallel", folds_parallel=2)],
        capture_output=True,
        text=True,
        timeout=240,
        env=child_env(OMP_NUM_THREADS="1"),
    )
    assert parallel.returncode == 0, parallel.stderr[-4000:]
    assert "worker 0: folds [0], worker 1: folds [1]" in parallel.stderr and parallel.stdout.count("CV ") == 1
    assert_complete_run(tmp_path / "parallel", n_labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train.main(args(tmp_path / "sequential")) == 0
    finally:
        torch.set_num_threads(threads)
    a, b = (pd.read_parquet(tmp_path / name / "oof.parquet") for name in ("parallel", "sequential"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    ma, mb = (pd.read_csv(tmp_path / name / "metrics.csv") for name in ("parallel", "sequential"))
    assert ma[["fold", "epoch", "best"]].equals(mb[["fold", "epoch", "best"]])


@pytest.mark.slow
def test_failed_fold_worker_stops_the_others_and_names_its_fold(tiny_dataset, cache_dir, tmp_path):
    run_dir = tmp_path / "failing"
    process = subprocess.Popen(
        [sys.executable, "-m", "hms.train", *cpu_args(tiny_dataset, cache_dir, run_dir, **LONG, folds_parallel=2)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        wait_for(run_dir / "fold1" / "last.pt", process)
        workers = [
            pid for pid in children(process.pid) if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    # Each worker trains one fold here: the failed fold is the killed worker's.
    failure = re.search(
        r"error: fold (\d) failed: fold worker (\d) \(pid (\d+), folds \[(\d)\]\) "
        r"ended with exit status -9 \(SIGKILL\)",
        err,
    )
    assert failure and failure[1] == failure[2] == failure[4] and int(failure[3]) == workers[0], err[-3000:]
    deadline = time.monotonic() + 10
    while Path(f"/proc/{workers[1]}").exists():
        assert time.monotonic() < deadline, "the other worker outlived the failure"
        time.sleep(0.1)
