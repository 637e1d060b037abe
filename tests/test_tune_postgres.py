"""hms.tune on a PostgreSQL server (tests/_postgres.py starts a throwaway one on loopback): workers
that share one study concurrently, and a worker killed mid-trial whose trial the heartbeat marks
FAIL while the other worker goes on. Skipped, naming what is missing, only where PostgreSQL or its
Python driver is not installed (``.ci/run`` installs both)."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import tomllib
from sqlalchemy.engine import make_url

from _postgres import free_port, postgres_server, unavailable_reason  # noqa: F401 - postgres_server is a fixture
from hms import tune
from test_tune import tiny_setup, tune_args  # noqa: F401 - tiny_setup is a fixture

WORKER_TIMEOUT_S = 150  # per worker process; a trial here takes about a second
FAST = ("--tune-folds", "1", "--tune-epochs", "1", "--pruner", "none")  # one epoch of one fold per trial
HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")


@functools.cache
def storage(url: str) -> optuna.storages.RDBStorage:
    """One storage (engine, connection pool) per database for the test's own reads; opened as the
    workers open it, since it may meet them creating Optuna's tables."""
    return tune.open_storage(tune.TuneSettings(storage=url))


def load(url: str, study: str = "t") -> optuna.Study:
    return optuna.load_study(study_name=study, storage=storage(url))


def start_worker(setup, studies: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}  # two workers on two cores
    return subprocess.Popen(
        [sys.executable, "-m", "hms.tune", *tune_args(setup, studies, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(worker: subprocess.Popen, timeout: float = WORKER_TIMEOUT_S) -> tuple[str, str]:
    try:
        out, err = worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate()
        pytest.fail(f"worker did not finish within {timeout} s:\n{out}\n{err[-3000:]}")
    return out, err


def worker_trials(stdout: str) -> list[int]:
    """Trial numbers from the worker's summary line 'this worker ran N trial(s): 0 complete, 3 pruned'."""
    match = re.search(r"^this worker ran (\d+) trial\(s\)(?:: (.*))?$", stdout, re.M)
    assert match, stdout
    numbers = [int(item.split()[0]) for item in (match.group(2) or "").split(", ") if item]
    assert len(numbers) == int(match.group(1))
    return numbers


def kill_all(*workers: subprocess.Popen) -> None:
    for w in workers:
        if w.poll() is None:
            w.kill()
            w.wait(timeout=10)


def test_skip_reason_names_what_is_missing(tmp_path, monkeypatch):
    reason = unavailable_reason([str(tmp_path)])  # a folder without initdb
    assert reason is not None and ".ci/run" in reason
    if "driver" not in reason:  # (the driver is checked first)
        assert "initdb" in reason and str(tmp_path) in reason
    monkeypatch.setenv("HMS_PG_BINDIR", "none")  # forces the skip path: HMS_PG_BINDIR=none pytest ...
    reason = unavailable_reason()
    assert "not found in HMS_PG_BINDIR=none" in reason or "driver" in reason


def test_unreachable_server_is_a_clear_error(tiny_setup, tmp_path, capsys):
    url = f"postgresql://hms:secret@127.0.0.1:{free_port()}/nothing"
    code = tune.main(tune_args(tiny_setup, tmp_path, "--trials", "1", "--storage", url))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --storage postgresql://hms:***@127.0.0.1:"), err
    assert "secret" not in err and ("cannot connect" in err or "driver is not installed" in err), err
    assert "Traceback" not in err


def test_grace_period_must_exceed_the_heartbeat_interval(tmp_path, capsys):
    assert tune.main(["--studies-dir", str(tmp_path), "--heartbeat-interval", "5", "--grace-period", "5"]) == 2
    assert "--grace-period (5 s) must exceed --heartbeat-interval (5 s)" in capsys.readouterr().err


def test_default_postgres_driver_falls_back_to_the_installed_one(monkeypatch):
    import importlib.util

    url = make_url("postgresql://u:pw@host/db")
    real = importlib.util.find_spec
    default = url.get_dialect().driver
    other = {"psycopg": "psycopg2", "psycopg2": "psycopg"}[default]
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == other else (None if name == default else real(name, *a)),
    )
    assert tune.with_installed_driver(url).render_as_string(False) == f"postgresql+{other}://u:pw@host/db"
    assert tune.with_installed_driver(make_url("postgresql+psycopg2://h/d")).drivername == "postgresql+psycopg2"
    assert tune.with_installed_driver(make_url("sqlite:///x.db")).drivername == "sqlite"


def test_workers_meeting_an_empty_database_all_open_it(postgres_server):
    """Optuna's create_all is check-then-create: without tune's retry, most of 4 threads starting
    together on an empty PostgreSQL database fail (duplicate pg_type, relation already exists)."""
    import threading

    for round_ in range(2):
        url = postgres_server.new_database(f"race{round_}")
        barrier, outcomes = threading.Barrier(4), []

        def open_it(barrier=barrier, url=url, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                tune.open_storage(tune.TuneSettings(storage=url)).engine.dispose()
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - reported below
                outcomes.append(repr(exc))

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert outcomes == ["ok"] * 4, outcomes


def running_owner(url: str, folders: tuple[str, ...]) -> int | None:
    """Index of the folder whose worker is in a trial now (a trial's run_dir tells whose it is)."""
    try:
        trials = load(url).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return None
    for trial in trials:
        if trial.state.name == "RUNNING":
            for index, folder in enumerate(folders):
                if f"{folder}/" in trial.user_attrs.get("run_dir", ""):
                    return index
    return None


def test_two_workers_share_a_study(postgres_server, tiny_setup):
    """Both start together on an empty database (so they also race to create Optuna's tables). The
    worker first seen in a trial is paused there (SIGSTOP) while the other runs its three trials,
    so trials of the two overlap by construction, whatever their start-up times."""
    url = postgres_server.new_database("concurrent")
    root = tiny_setup["root"]
    folders = ("studies-concurrent-a", "studies-concurrent-b")  # one per worker, as on two machines
    workers = [
        start_worker(tiny_setup, root / folder, "--storage", url, "--trials", "3", "--seed", str(seed), *FAST)
        for seed, folder in zip((1, 2), folders)
    ]
    results: list[tuple[str, str]] = [("", ""), ("", "")]
    try:
        deadline = time.monotonic() + 90
        while (first := running_owner(url, folders)) is None:
            assert all(w.poll() is None for w in workers), "a worker ended before any trial was seen running"
            assert time.monotonic() < deadline, "no trial running within 90 s"
            time.sleep(0.05)
        other = 1 - first
        os.kill(workers[first].pid, signal.SIGSTOP)  # mid-trial: its trial stays RUNNING (grace 180 s)
        results[other] = finish(workers[other])
        os.kill(workers[first].pid, signal.SIGCONT)
        results[first] = finish(workers[first])
    finally:
        for w in workers:
            if w.poll() is None:
                os.kill(w.pid, signal.SIGCONT)
        kill_all(*workers)
    assert [w.returncode for w in workers] == [0, 0], results
    ran = [worker_trials(out) for out, _ in results]
    assert [len(r) for r in ran] == [3, 3], results

    trials = load(url).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(trials) == sum(len(r) for r in ran) == 6
    assert sorted(numbers) == sorted(ran[0] + ran[1]) == list(range(6))  # unique, each run by one worker
    assert {t.state.name for t in trials} == {"COMPLETE"}
    # The workers ran at the same time: some trial of one overlaps some trial of the other.
    spans = {t.number: (t.datetime_start, t.datetime_complete) for t in trials}
    assert any(spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1] for a in ran[0] for b in ran[1]), spans

    for folder, own in zip(folders, ran):
        studies = root / folder
        best = tomllib.loads((studies / "t" / "best.toml").read_text())
        assert {"lr", "drop_rate", "normalization"} <= set(best)
        for number in own:
            assert (studies / "t" / "trials" / f"{number:04d}" / "fold0" / "last.pt").exists()
    # The worker that finished last saw every trial complete.
    assert len(pd.read_csv(root / folders[first] / "t" / "trials.csv")) == 6


def test_killed_worker_trial_is_failed_by_heartbeat_while_other_goes_on(postgres_server, tiny_setup):
    """Worker A is SIGKILLed in a long trial; worker B, running short trials meanwhile (for --timeout
    seconds), finds A's trial without a heartbeat for the grace period and marks it FAIL."""
    url = postgres_server.new_database("killed")
    root = tiny_setup["root"]
    # One studies folder per worker, as on two machines: a trial's run_dir tells whose it is.
    victim = start_worker(
        tiny_setup,
        root / "studies-pg-a",
        "--storage",
        url,
        "--trials",
        "1",
        "--seed",
        "1",
        "--tune-folds",
        "1",
        "--tune-epochs",
        "200",
        "--pruner",
        "none",
        *HEARTBEAT,
    )
    survivor = None

    def trials_of(folder: str) -> list[optuna.trial.FrozenTrial]:
        try:
            trials = load(url).get_trials(deepcopy=False)
        except KeyError:  # the study is not created yet
            return []
        return [t for t in trials if f"{folder}/" in t.user_attrs.get("run_dir", "")]

    def wait_for(what: str, condition) -> None:
        deadline = time.monotonic() + 90
        while not condition():
            for w in (victim, survivor):
                assert w is None or w.poll() is None, (
                    f"waiting for {what}: a worker exited\n{w.communicate()[1][-3000:]}"
                )
            assert time.monotonic() < deadline, f"waiting for {what}: not within 90 s"
            time.sleep(0.2)

    try:
        # B starts once A is connected (its import overlapping A's set-up), so both start trials
        # close together and B's --timeout is counted from about the kill.
        wait_for("worker A's study", lambda: optuna.study.get_all_study_names(storage(url)) == ["t"])
        survivor = start_worker(
            tiny_setup,
            root / "studies-pg-b",
            "--storage",
            url,
            "--trials",
            "100",
            "--timeout",
            "9",
            "--seed",
            "2",
            *FAST,
            *HEARTBEAT,
        )
        wait_for("trials of both workers", lambda: trials_of("studies-pg-a") and trials_of("studies-pg-b"))
        time.sleep(1.5)  # > --heartbeat-interval: A's heartbeat is recorded
        (victim_trial,) = [t.number for t in trials_of("studies-pg-a")]
        assert trials_of("studies-pg-a")[0].state.name == "RUNNING"
        assert survivor.poll() is None, "the survivor finished before the kill: raise its --timeout"
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(timeout=10)
        out, err = finish(survivor)
    finally:
        kill_all(*(w for w in (victim, survivor) if w is not None))
    assert survivor.returncode == 0, (out, err[-3000:])
    assert time.monotonic() - killed_at > 3, "the survivor ended within the grace period of the kill"

    trials = {t.number: t for t in load(url).get_trials(deepcopy=False)}
    assert trials[victim_trial].state.name == "FAIL"
    assert f"trial {victim_trial} had no heartbeat for the grace period" in err, err[-3000:]
    ran = worker_trials(out)
    assert ran and victim_trial not in ran
    assert all(trials[n].state.name == "COMPLETE" for n in ran)
    assert sorted(trials) == sorted([victim_trial, *ran])
    assert (root / "studies-pg-b" / "t" / "best.toml").exists()
