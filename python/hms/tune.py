"""Hyperparameter search with Optuna: pruned, resumable, shareable between worker processes.

    hms tune [--config FILE] [KEY=VALUE ...] [--space FILE] [--trials N] [--timeout S] [--study NAME]
             [--storage URL] [--data-dir DIR] [--pruner median|hyperband|none] ...

Each trial is the trainer's own fold loop (:class:`hms.folds.FoldTrainer`) on a reduced budget:
the first ``--tune-folds`` folds of the config's K-fold split (default 2, so validation rows are the
same as a full run's) x ``--tune-epochs`` epochs (default 2, stage 2 off). The objective, minimized,
is the mean over those folds of the validation KL of each fold's selected model.

Pruning. Folds are trained one after another; after every epoch the trial reports, at step
``fold_index * epochs_per_fold + epoch``, the mean over the folds trained so far of their best
validation KL (finished folds: their selected model; the current fold: its best epoch so far).
Every trial reports the same steps with the same meaning, so the median pruner compares like with
like; the first ``--warmup-steps`` (default 1, the first epoch) are never pruned.

Storage (``--storage``):
    (default)            sqlite:///studies/NAME/study.db; rerunning the same command resumes it
    journal:PATH, *.log  Optuna's journal file: several worker processes on one machine
    any SQLAlchemy URL   e.g. postgresql://user:pw@host/db: workers on several machines
SQLite/SQLAlchemy storages record a heartbeat: a worker killed mid-trial leaves a RUNNING trial
that any other worker marks FAIL (and says so) when it next starts a trial, or finishes, once
``--grace-period`` seconds have passed without a heartbeat. Optuna's journal storage has no
heartbeat, so a killed worker's trial stays RUNNING there (it is not counted as a result; nothing
else is affected). PostgreSQL needs a driver: ``pip install 'hms-eeg[postgres]'`` (psycopg). Each
worker prints the trials it ran; ``--trials`` is per worker, so the study grows by their sum.

Outputs under ``--studies-dir/NAME`` (default studies/NAME): ``trials/NNNN/`` (each trial's run
directory), ``trials.csv``, ``best.toml`` (the --config values plus the best trial's parameters:
``hms train --config best.toml`` trains it on all folds with the full epoch budget) and
``plots/*.png``. ``optuna-dashboard sqlite:///studies/NAME/study.db`` reads the study live.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hms import config, engine
from hms.cli import add_data_dir_option, add_progress_option, command, parse_command
from hms.io import write_csv_atomic, write_text_atomic
from hms.search_space import Param, SearchSpaceError, apply_params, load_space

JOURNAL_PREFIX = "journal:"
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
#: Config keys a trial always sets itself: where it runs and what it costs.
TRIAL_KEYS = ("run_dir", "folds", "epochs", "stage2_epochs", "progress", "patience")
EXIT_NO_RESULT = 3
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

log = logging.getLogger("hms.tune")  # not __name__: it is __main__ under python -m


@dataclass
class TuneSettings:
    study: str = "hms"
    studies_dir: Path = Path("studies")
    storage: str | None = None
    trials: int | None = 20
    timeout: float | None = None
    tune_folds: int = 2
    tune_epochs: int = 2
    tune_stage2_epochs: int = 0
    pruner: str = "median"
    pruner_startup_trials: int = 5
    warmup_steps: int = 1
    sampler_startup_trials: int = 10
    seed: int | None = None  # default: the config's seed
    heartbeat_interval: int = 60
    grace_period: int = 180
    base_values: dict[str, Any] = field(default_factory=dict)  # --config file values and --data-dir

    def __post_init__(self) -> None:
        # The name is a folder under studies_dir: nothing may lead outside it.
        if not STUDY_NAME.fullmatch(self.study):
            raise ValueError(
                f"--study {self.study!r}: a study name is one folder name under {self.studies_dir}: letters, "
                "digits, '.', '_' and '-', starting with a letter or digit (no '/' or '..'), at most 128 characters"
            )

    @property
    def study_dir(self) -> Path:
        return Path(self.studies_dir) / self.study


# ---------------------------------------------------------------------------------------------
# Storage, sampler, pruner
# ---------------------------------------------------------------------------------------------


def open_storage(settings: TuneSettings):
    """The Optuna storage named by ``settings.storage`` (see the module docstring)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = settings.storage
    if url is None:
        settings.study_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(settings.study_dir / 'study.db').resolve()}"
    if url.startswith(JOURNAL_PREFIX) or ("://" not in url and url.endswith(JOURNAL_SUFFIXES)):
        path = Path(url.removeprefix(JOURNAL_PREFIX))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ValueError(
            f"--storage {url!r}: expected a SQLAlchemy URL (sqlite:///..., postgresql://...), "
            f"journal:PATH or a journal file ending in {', '.join(JOURNAL_SUFFIXES)}"
        )
    return open_rdb_storage(url, settings)


#: Workers starting together on an empty database race to create Optuna's tables (PostgreSQL's
#: CREATE TABLE/TYPE is check-then-create): the losers retry, and then find the tables made.
RDB_OPEN_ATTEMPTS = 6


def open_rdb_storage(url: str, settings: TuneSettings):
    """An Optuna RDBStorage with a heartbeat; connection problems are ValueErrors naming the URL
    (password hidden), not driver tracebacks."""
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise ValueError(f"--storage: not a SQLAlchemy URL ({exc})") from None
    shown = parsed.render_as_string(hide_password=True)
    url = with_installed_driver(parsed).render_as_string(hide_password=False)
    # Server databases: check a pooled connection before use, since a trial can outlast a server's
    # or a firewall's idle timeout, and recycle connections hourly. SQLite keeps Optuna's defaults.
    engine_kwargs = {} if shown.startswith("sqlite") else {"pool_pre_ping": True, "pool_recycle": 3600}
    for attempt in range(1, RDB_OPEN_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                # The heartbeat is marked experimental; it has been stable in use since Optuna 2.x.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                stale_callback: dict[str, Any] = {_stale_callback_arg(): report_stale_trial}
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=settings.heartbeat_interval,
                    grace_period=settings.grace_period,
                    **stale_callback,
                )
        except ImportError as exc:
            missing = exc.__cause__ or exc
            hint = " (pip install 'hms-eeg[postgres]')" if shown.startswith("postgres") else ""
            raise ValueError(f"--storage {shown}: the database driver is not installed{hint}: {missing}") from None
        except sqlalchemy.exc.ArgumentError as exc:  # includes NoSuchModuleError (unknown dialect)
            hint = "; PostgreSQL URLs start postgresql:// (not postgres://)" if shown.startswith("postgres:") else ""
            raise ValueError(f"--storage {shown}: {_first_line(exc)}{hint}") from None
        except sqlalchemy.exc.DBAPIError as exc:
            lost_race = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc.orig)
            if lost_race and attempt < RDB_OPEN_ATTEMPTS:
                time.sleep(random.uniform(0.2, 1.0) * attempt)
                continue
            what = (
                "cannot set up Optuna's tables"
                if lost_race or isinstance(exc, sqlalchemy.exc.ProgrammingError)
                else "cannot connect"
            )  # OperationalError: refused, unknown host or database, authentication
            raise ValueError(f"--storage {shown}: {what}: {_first_line(exc)}") from None
    raise AssertionError("unreachable")


def with_installed_driver(url):
    """``url`` (a SQLAlchemy URL) with its PostgreSQL driver made explicit when it names none and
    SQLAlchemy's default one is missing: plain postgresql:// means psycopg2 in SQLAlchemy 2.0 and
    psycopg (3) in 2.1, and the ``postgres`` extra installs psycopg. Other URLs are returned as is."""
    import importlib.util

    if url.drivername != "postgresql":
        return url
    try:
        default = url.get_dialect().driver
    except Exception:  # noqa: BLE001 - let RDBStorage report it
        return url
    if importlib.util.find_spec(default) is not None:
        return url
    for driver in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(driver) is not None:
            return url.set(drivername=f"postgresql+{driver}")
    return url


def _first_line(exc: BaseException) -> str:
    """The driver's own message (first line), without SQLAlchemy's statement and link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def report_stale_trial(study, trial) -> None:
    """Heartbeat callback: a RUNNING trial of a killed worker has just been marked FAIL."""
    log.warning(
        "study %s: trial %d had no heartbeat for the grace period (its worker was killed or lost): marked FAIL",
        study.study_name,
        trial.number,
    )


def _stale_callback_arg() -> str:
    import inspect

    import optuna

    params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    # Renamed in Optuna 4.x; the old name warns in 5.0.
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"


def make_sampler(settings: TuneSettings, seed: int):
    import optuna

    # Explicit arguments: Optuna's defaults have changed between versions, and a study must be
    # reproducible from its command line. constant_liar keeps parallel workers from sampling the
    # same point while their trials run.
    return optuna.samplers.TPESampler(
        n_startup_trials=settings.sampler_startup_trials,
        n_ei_candidates=24,
        multivariate=True,
        group=False,
        constant_liar=True,
        seed=seed,
    )


def steps_per_trial(settings: TuneSettings) -> int:
    return settings.tune_folds * (settings.tune_epochs + settings.tune_stage2_epochs)


def make_pruner(settings: TuneSettings):
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=settings.warmup_steps, interval_steps=1
        )
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=steps_per_trial(settings), reduction_factor=3
        )
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"--pruner must be median, hyperband or none, got {settings.pruner!r}")


# ---------------------------------------------------------------------------------------------
# Objective
# ---------------------------------------------------------------------------------------------


def check_space(space: list[Param]) -> None:
    """Refuses entries for the keys every trial sets itself: their sampled values would be
    overwritten, never trained, yet recorded as the study's parameters."""
    taken = [f"[{p.name}] ({p.key})" for p in space if p.key in TRIAL_KEYS]
    if taken:
        raise SearchSpaceError(
            f"search space entries {', '.join(taken)} set keys that each trial sets itself "
            f"({', '.join(TRIAL_KEYS)}); use --tune-folds, --tune-epochs and --tune-stage2-epochs for the trial budget"
        )


def trial_config(
    settings: TuneSettings, space: list[Param], values: dict[str, Any], run_dir: Path | None
) -> config.Config:
    """The config one trial trains: base values, the sampled parameters, the reduced budget."""
    base = config.build(settings.base_values)
    if settings.tune_folds > base.n_folds:
        raise ValueError(f"--tune-folds {settings.tune_folds} exceeds n_folds {base.n_folds}")
    budget = {
        "folds": list(range(settings.tune_folds)),
        "epochs": settings.tune_epochs,
        "stage2_epochs": settings.tune_stage2_epochs,
        "progress": False,
        "patience": None,
        "run_dir": None if run_dir is None else str(run_dir),
    }
    return config.build({**settings.base_values, **apply_params(space, values), **budget})


def objective_for(settings: TuneSettings, space: list[Param]):
    import optuna

    from hms.competition import open_data
    from hms.folds import FoldTrainer, Runtime
    from hms.labels import make_folds, make_labels, targets_of
    from hms.metric import kl_divergence
    from hms.rundir import RunDir

    def objective(trial: optuna.Trial) -> float:
        values = {p.name: p.suggest(trial) for p in space}
        run_dir = settings.study_dir / "trials" / f"{trial.number:04d}"
        cfg = trial_config(settings, space, values, run_dir)  # ConfigError: the trial FAILs, the study goes on
        run = RunDir.create(run_dir, config.to_dict(cfg))
        trial.set_user_attr("run_dir", str(run_dir))
        engine.set_deterministic(cfg.deterministic)
        engine.seed_everything(cfg.seed)
        device = engine.resolve_device(cfg.device)
        fold_kls: list[float] = []
        epochs_per_fold = cfg.epochs + cfg.stage2_epochs

        def report(fold_index: int, history: list[dict[str, Any]]) -> None:
            current = min((row["val_kl"] for row in history), default=math.nan)
            value = float(np.mean(fold_kls + [current]))
            step = fold_index * epochs_per_fold + len(history) - 1
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at step {step} (fold {fold_index}, epoch {len(history)}): KL {value:.4f}"
                )

        rt = Runtime(device, engine.resolve_precision(cfg.amp, device))
        data = open_data(cfg.data_dir, require=("train",))
        labels = make_labels(data.train, cfg.grouping)
        folds = make_folds(labels, cfg.n_folds, cfg.seed)
        targets = targets_of(labels)
        for fold_index, fold in enumerate(cfg.folds or []):  # trial_config always sets folds
            rt.on_epoch = lambda _fold, history, i=fold_index: report(i, history)
            probs, _ = FoldTrainer(cfg, run, data, labels, folds, fold, rt).run_fold()
            fold_kls.append(float(kl_divergence(targets[folds == fold], probs)))
            trial.set_user_attr(f"kl_fold{fold}", fold_kls[-1])
        return float(np.mean(fold_kls))

    return objective


# ---------------------------------------------------------------------------------------------
# Study
# ---------------------------------------------------------------------------------------------


def run_study(settings: TuneSettings, space: list[Param], *, worker_trials: list | None = None):
    """Creates or resumes the study and runs up to ``settings.trials`` more trials; returns it.
    ``worker_trials``, when given, receives ``(number, state name)`` of each trial this call ran."""
    import optuna

    check_space(space)
    base = config.build(settings.base_values)  # fails now, naming the key, not in every trial
    trial_config(settings, space, {}, None)
    storage = open_storage(settings)
    probe = optuna.create_study(study_name=settings.study, storage=storage, direction="minimize", load_if_exists=True)
    # A resumed run (or a second worker) must not replay the first run's random start-up draws:
    # offset the seed by the trials the study already holds. Give simultaneous workers distinct --seed.
    seed = (settings.seed if settings.seed is not None else base.seed) + len(probe.trials)
    study = optuna.create_study(
        study_name=settings.study,
        storage=storage,
        direction="minimize",
        load_if_exists=True,
        sampler=make_sampler(settings, seed),
        pruner=make_pruner(settings),
    )
    # Optuna also does this before every trial, so a worker marks the trials of killed workers FAIL
    # while it runs (report_stale_trial prints each); here and after the loop, for the summary.
    fail_stale_trials(study)
    study.set_user_attr(
        "objective",
        f"mean validation KL over folds 0..{settings.tune_folds - 1}, "
        f"{settings.tune_epochs}+{settings.tune_stage2_epochs} epochs",
    )
    callbacks = [] if worker_trials is None else [lambda _study, t: worker_trials.append((t.number, t.state.name))]
    study.optimize(
        objective_for(settings, space),
        n_trials=settings.trials,
        timeout=settings.timeout,
        catch=(config.ConfigError,),
        gc_after_trial=True,
        callbacks=callbacks,
    )
    fail_stale_trials(study)
    return study


def fail_stale_trials(study) -> None:
    """Marks FAIL the RUNNING trials whose worker stopped sending heartbeats (RDB storages)."""
    import optuna

    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def is_heartbeat_enabled(storage) -> bool:
    """Whether ``storage`` records heartbeats (RDB with heartbeat_interval; not the journal)."""
    try:  # private module: public in some Optuna versions, not in 5.0
        from optuna.storages._heartbeat import is_heartbeat_enabled as enabled
    except ImportError:  # pragma: no cover
        return hasattr(storage, "get_heartbeat_interval") and storage.get_heartbeat_interval() is not None
    return enabled(storage)


def completed_trials(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def best_config_values(settings: TuneSettings, space: list[Param], params: dict[str, Any]) -> dict[str, Any]:
    """The config a full run of the best trial trains: base values plus its parameters (validated)."""
    values = {**settings.base_values, **apply_params(space, params)}
    values.pop("run_dir", None)  # each full run picks its own directory
    config.build(values)
    return values


def write_outputs(study, settings: TuneSettings, space: list[Param]) -> dict[str, Any]:
    """trials.csv, best.toml and plots; returns a summary (``best`` is None when nothing completed)."""
    out = settings.study_dir
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(study.trials_dataframe(), out / "trials.csv")
    counts = {s.name.lower(): 0 for s in __import__("optuna").trial.TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] += 1
    summary: dict[str, Any] = {"study": settings.study, "counts": counts, "best": None, "plots": []}
    done = completed_trials(study)
    if not done:
        return summary
    best = min(done, key=lambda t: t.value)
    values = best_config_values(settings, space, best.params)
    header = (
        f"# hms.tune study '{settings.study}', trial {best.number}: mean validation KL {best.value:.5f}\n"
        f"# ({settings.tune_folds} folds x {settings.tune_epochs} epochs). Train it: hms train --config best.toml\n"
    )
    write_text_atomic(out / "best.toml", header + config.to_toml(values))
    summary["best"] = {"number": best.number, "value": best.value, "params": best.params}
    summary["plots"] = write_plots(study, out / "plots")
    return summary


def write_plots(study, folder: Path) -> list[str]:
    """Optuna's matplotlib views; a view that needs more trials than there are is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as ovm

    from hms.plots import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    views: dict[str, Callable[..., Any]] = {
        "optimization_history": ovm.plot_optimization_history,
        "param_importances": ovm.plot_param_importances,
        "slice": ovm.plot_slice,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
        "intermediate_values": ovm.plot_intermediate_values,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib views experimental
        for name, view in views.items():
            try:
                axes = view(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. importances of 1 trial
                log.warning("plot %s skipped: %s", name, exc)
                continue
            figure = np.ravel(axes)[0].figure
            figure.set_size_inches(max(figure.get_size_inches()[0], 8), max(figure.get_size_inches()[1], 5))
            save_figure(figure, folder / f"{name}.png", bbox_inches="tight")
            written.append(f"{name}.png")
    return written


def format_summary(summary: dict[str, Any], settings: TuneSettings) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in summary["counts"].items() if n)
    lines = [f"study {summary['study']} ({settings.study_dir}): {counts or 'no trials'}"]
    if "worker_trials" in summary:  # several workers share a study: what this one ran
        ran = summary["worker_trials"]
        lines.append(
            f"this worker ran {len(ran)} trial(s)"
            + (": " if ran else "")
            + ", ".join(f"{number} {state.lower()}" for number, state in ran)
        )
    if summary["best"] is None:
        lines.append(
            "no trial completed, so there is no best config. If all were pruned: raise --pruner-startup-trials "
            "or --warmup-steps, or use --pruner none; if they failed, see the errors above."
        )
    else:
        best = summary["best"]
        lines.append(f"best trial {best['number']}: mean validation KL {best['value']:.5f}")
        lines.extend(f"  {k} = {v}" for k, v in best["params"].items())
        lines.append(f"best config: {settings.study_dir / 'best.toml'}  (hms train --config it)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hms tune", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--config", metavar="FILE", help="base config (TOML/JSON); the space's keys override it")
    p.add_argument("--space", metavar="FILE", help="search space file (default: hms/search_space_default.toml)")
    p.add_argument("--trials", type=int, default=20, help="trials this worker runs (default 20)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--study", default="hms", help="study name (default hms)")
    p.add_argument("--storage", help="SQLAlchemy URL, journal:PATH or PATH.log (default: sqlite in the study folder)")
    add_data_dir_option(p, "competition folder (overrides the config's data_dir)")
    p.add_argument("--studies-dir", default="studies", help="parent of the study folder (default studies)")
    p.add_argument("--tune-folds", type=int, default=2, help="folds per trial: the first N of n_folds (default 2)")
    p.add_argument("--tune-epochs", type=int, default=2, help="stage-1 epochs per fold (default 2)")
    p.add_argument("--tune-stage2-epochs", type=int, default=0, help="stage-2 epochs per fold (default 0)")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    p.add_argument("--pruner-startup-trials", type=int, default=5, help="median pruner: trials before pruning starts")
    p.add_argument("--warmup-steps", type=int, default=1, help="median pruner: steps (epochs) never pruned (default 1)")
    p.add_argument("--sampler-startup-trials", type=int, default=10, help="TPE: random trials before TPE (default 10)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the config's seed); distinct per parallel worker")
    p.add_argument("--heartbeat-interval", type=int, default=60, help="RDB storages: seconds between heartbeats")
    p.add_argument(
        "--grace-period",
        type=int,
        default=180,
        help="RDB storages: a RUNNING trial without a heartbeat for this long is FAIL",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="base config values, over --config (e.g. input=both)"
    )
    add_progress_option(p)
    return p


def settings_from_args(args: argparse.Namespace) -> TuneSettings:
    base = config.load_file(args.config) if args.config else {}
    base.update(config.parse_overrides(args.overrides))
    if args.data_dir:
        base["data_dir"] = args.data_dir
    for name, value in (
        ("--trials", args.trials),
        ("--tune-folds", args.tune_folds),
        ("--tune-epochs", args.tune_epochs),
        ("--heartbeat-interval", args.heartbeat_interval),
        ("--grace-period", args.grace_period),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if args.grace_period <= args.heartbeat_interval:  # live trials would be marked FAIL between heartbeats
        raise ValueError(
            f"--grace-period ({args.grace_period} s) must exceed --heartbeat-interval ({args.heartbeat_interval} s)"
        )
    return TuneSettings(
        study=args.study,
        studies_dir=Path(args.studies_dir),
        storage=args.storage,
        trials=args.trials,
        timeout=args.timeout,
        tune_folds=args.tune_folds,
        tune_epochs=args.tune_epochs,
        tune_stage2_epochs=args.tune_stage2_epochs,
        pruner=args.pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        warmup_steps=args.warmup_steps,
        sampler_startup_trials=args.sampler_startup_trials,
        seed=args.seed,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        base_values=base,
    )


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(build_parser(), argv)
    started = time.perf_counter()
    settings = settings_from_args(args)
    space = load_space(args.space)
    worker_trials: list[tuple[int, str]] = []
    study = run_study(settings, space, worker_trials=worker_trials)
    summary = write_outputs(study, settings, space)
    summary["worker_trials"] = worker_trials
    print(format_summary(summary, settings))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0 if summary["best"] is not None else EXIT_NO_RESULT


if __name__ == "__main__":
    sys.exit(main())
