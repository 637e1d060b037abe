"""Test-set inference: a run or a saved ensemble -> a validated ``submission.csv``.

    hms predict --run runs/a --data-dir DIR [--out submission.csv] [--tta]
    hms predict --ensemble ensembles/NAME --data-dir DIR [--out submission.csv]
    hms predict --run runs/a --synthetic         (the synthetic set's test split)
    hms predict --run runs/a --eeg recording.parquet     (one 50-s window: the central one)
    hms predict --run runs/eeg --recording night.edf [--stride 10]   (a whole recording)

Each member run averages its fold models (each with its own training-time preprocessing and
normalization, see :mod:`hms.inference`); an ensemble then combines its members as saved by
``hms ensemble``. Rows follow test.csv; the probabilities pass the metric's checks before
the file is written (atomically). The test set is never guessed: ``--data-dir`` or ``--synthetic``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hms import CLASSES, engine
from hms.cli import add_progress_option, command, parse_command
from hms.competition import open_data, resolve_data_dir
from hms.inference import (
    check_run,
    gap_fractions,
    load_run,
    predict_eeg_file,
    predict_labels,
    predict_windows,
    recording_summary,
    window_starts,
    windows_frame,
)
from hms.io import write_csv_atomic, write_json_atomic
from hms.metric import validate_probabilities
from hms.schema import SUBMISSION_COLUMNS

log = logging.getLogger("hms.predict")  # not __name__: it is __main__ under python -m


def submission_frame(eeg_ids: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """The submission table, after the metric's probability checks (nothing renormalized)."""
    probs = validate_probabilities(probs, "submission")
    frame = pd.DataFrame(probs, columns=list(SUBMISSION_COLUMNS[1:]))
    frame.insert(0, SUBMISSION_COLUMNS[0], np.asarray(eeg_ids, dtype=np.int64))
    return frame


def predict_members(
    member_paths: Sequence[str | Path],
    data,
    labels: pd.DataFrame,
    *,
    tta: bool,
    device: torch.device,
    batch_size: int,
    progress: bool = True,
) -> list[np.ndarray]:
    """Each member run's fold-averaged test probabilities, in ``labels`` order."""
    return [
        predict_labels(
            load_run(path, data, device),
            labels,
            split="test",
            tta=tta,
            device=device,
            batch_size=batch_size,
            progress=progress,
        )
        for path in member_paths
    ]


def predict_test(
    *,
    run: str | None = None,
    ensemble: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    tta: bool = False,
    device: str = "cpu",
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[pd.DataFrame, float]:
    """(submission frame in test.csv order, samples/s) for a run or a saved ensemble. The run
    folders are checked before any data is read."""
    from hms.ensemble import SavedEnsemble

    if (run is None) == (ensemble is None):
        raise ValueError("predict_test needs a run (run=) or an ensemble (ensemble=)")
    saved = SavedEnsemble.load(ensemble) if ensemble is not None else None
    members = saved.members if saved is not None else [str(run)]
    for member in members:
        check_run(member)
    data = open_data(data_dir, require=("test",))
    labels = data.test.reset_index(drop=True)
    torch_device = torch.device(device)
    started = time.perf_counter()
    member_probs = predict_members(
        members, data, labels, tta=tta, device=torch_device, batch_size=batch_size, progress=progress
    )
    probs = saved.combine(member_probs) if saved is not None else member_probs[0]
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    samples_per_s = len(labels) / max(time.perf_counter() - started, 1e-9)
    return submission_frame(labels["eeg_id"].to_numpy(), probs), samples_per_s


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hms predict", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN_DIR", help="a training run (its fold models are averaged)")
    which.add_argument("--ensemble", metavar="DIR", help="an ensemble folder written by hms ensemble")
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--data-dir", metavar="DIR", help="competition folder with test.csv, test_eegs/, test_spectrograms/"
    )
    data.add_argument("--synthetic", action="store_true", help="predict the synthetic set's test split")
    parser.add_argument(
        "--out",
        help="the submission [default: submission.csv]; with --recording the per-window CSV "
        "[default: <recording>_windows.csv], beside it <out>_timeline.png and <out>_summary.json",
    )
    parser.add_argument(
        "--eeg", metavar="FILE.parquet", help="predict one EEG recording (EEG-only models) and print it"
    )
    recording = parser.add_argument_group("a whole recording (EEG-only runs)")
    recording.add_argument(
        "--recording", metavar="FILE", help="EDF, EDF+, BDF or parquet: probabilities of sliding 50-s windows"
    )
    recording.add_argument("--stride", type=float, default=10.0, help="seconds between windows [default: 10]")
    recording.add_argument("--mapping", metavar="FILE", help="channel mapping file (TOML/JSON: file label = channel)")
    recording.add_argument(
        "--allow-missing-channels", action="store_true", help="fill channels the file lacks as flat (with a warning)"
    )
    parser.add_argument("--tta", action="store_true", help="average in the left/right hemisphere-swapped input")
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda", "mps"),
        help="auto: cuda, then mps, then cpu (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    add_progress_option(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_command(parser, argv)
    device = str(engine.resolve_device(args.device))  # the trainer's rule: cuda, then mps, then cpu
    if args.eeg is not None:
        return _predict_one_eeg(args)
    if args.recording is not None:
        return _predict_recording(args, device)
    if args.data_dir is None and not args.synthetic:
        # Never a guess: on Kaggle a silently synthetic submission would look valid.
        parser.error("say which test set: --data-dir DIR (the competition folder with test.csv) or --synthetic")
    frame, samples_per_s = predict_test(
        run=args.run,
        ensemble=args.ensemble,
        data_dir=resolve_data_dir(args.data_dir),
        tta=args.tta,
        device=device,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    out = args.out or "submission.csv"
    write_csv_atomic(frame, out)
    print(f"{out}: {len(frame)} rows; {samples_per_s:.1f} test samples/s on {device}{' with TTA' if args.tta else ''}")
    return 0


def _predict_recording(args: argparse.Namespace, device: str) -> int:
    from hms.ensemble import SavedEnsemble
    from hms.recordings import load_mapping, read_recording

    saved = SavedEnsemble.load(args.ensemble) if args.ensemble is not None else None
    members = saved.members if saved is not None else [args.run]
    for member in members:
        check_run(member)
    started = time.perf_counter()
    mapping = load_mapping(args.mapping) if args.mapping else None
    recording = read_recording(args.recording, mapping=mapping, allow_missing=args.allow_missing_channels)
    read_seconds = time.perf_counter() - started
    starts = window_starts(recording.data.shape[1], args.stride)
    member_probs = [
        predict_windows(
            load_run(m, None, device),
            recording.data,
            starts,
            tta=args.tta,
            batch_size=args.batch_size,
            device=device,
            progress=args.progress,
        )
        for m in members
    ]
    probs = validate_probabilities(saved.combine(member_probs) if saved else member_probs[0], "window predictions")
    seconds = time.perf_counter() - started
    frame = windows_frame(starts, probs, gap_fractions(recording.data, starts))
    out = Path(args.out or f"{Path(args.recording).stem}_windows.csv")
    write_csv_atomic(frame, out)
    summary = {
        "recording": str(args.recording),
        "seconds": recording.seconds,
        "source_rate_hz": recording.source_rate,
        "missing_channels": list(recording.missing),
        "stride_s": args.stride,
        "models": [str(m) for m in members],
        **recording_summary(frame),
    }
    write_json_atomic(out.with_name(out.stem + "_summary.json"), summary)
    try:
        from hms.plots import plot_probability_timeline, save_figure
    except ImportError:
        log.warning("the timeline PNG needs matplotlib (pip install 'hms-eeg[train]'); wrote the CSV and summary")
    else:
        title = f"{Path(args.recording).name}: {recording.seconds / 60:.1f} min, {len(frame)} windows every {args.stride:g} s"
        save_figure(plot_probability_timeline(frame, title), out.with_name(out.stem + "_timeline.png"), dpi=110)
    print(
        f"{out}: {len(frame)} windows of {recording.seconds:.0f} s in {seconds:.1f} s "
        f"({len(frame) / seconds:.1f} windows/s; reading and resampling {read_seconds:.1f} s)"
    )
    for name, stats in summary["per_class"].items():
        print(
            f"  {name:<8} mean {stats['mean']:.3f}  max {stats['max']:.3f} at {stats['max_at_s']:.0f} s  "
            f"top in {100 * stats['top_share']:.0f}% of windows"
        )
    return 0


def _predict_one_eeg(args: argparse.Namespace) -> int:
    if args.ensemble is not None:
        from hms.ensemble import SavedEnsemble

        saved = SavedEnsemble.load(args.ensemble)
        probs = saved.combine(
            [predict_eeg_file(load_run(m, None), args.eeg, tta=args.tta)[None] for m in saved.members]
        )[0]
    else:
        probs = predict_eeg_file(load_run(args.run, None), args.eeg, tta=args.tta)
    validate_probabilities(probs[None], "prediction")
    print("  ".join(f"{c} {p:.4f}" for c, p in zip(CLASSES, probs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
