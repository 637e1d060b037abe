"""Precompute the expensive model-input sources into the input cache.

    hms prepare [--data-dir DIR] [--splits train,test] [config options, e.g. input=both]

Computes, for every sample of the chosen splits (train: ``make_labels(train, grouping)``; test:
test.csv), the sources of ``cfg.input`` (Kaggle log windows, EEG chain spectrograms) and stores
them as float16 under a folder keyed by a hash of every preprocessing parameter (hms.input_cache).
Each array is written atomically; an interrupted run leaves only complete files, and a rerun
computes just the missing ones. Each file is read once and its windows go through the native
core in one call.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence

import pandas as pd

from hms import progress
from hms.cli import command, parse_config_command
from hms.competition import open_data
from hms.config import add_config_arguments
from hms.inputs import InputPipeline
from hms.labels import make_labels
from hms.windows import label_windows


def prepare_cache(
    pipeline: InputPipeline, labels: pd.DataFrame, split: str, *, show_progress: bool = True
) -> dict[str, dict[str, int]]:
    """Fills the cache for these label rows; returns {source: {"computed": n, "present": n}}."""
    rows = label_windows(labels, split)
    report = {}
    for source in pipeline.sources:
        cache = pipeline.cache(source)
        if cache is None:
            raise ValueError("the input cache is off (cache=false); nothing to prepare")
        windows = {row.source(source) for row in rows}
        missing: dict[int, list[float]] = defaultdict(list)
        for file_id, offset in sorted(windows):
            if not cache.contains(split, file_id, offset):
                missing[file_id].append(offset)
        n_missing = sum(len(v) for v in missing.values())
        with progress.bar(total=n_missing, desc=f"{split} {source}", unit="window", show=show_progress) as bar:
            for file_id, offsets in missing.items():
                arrays = pipeline.compute_source(source, split, file_id, offsets)
                for offset, array in zip(offsets, arrays):
                    cache.save(split, file_id, offset, array)
                bar.update(len(offsets))
        report[source] = {"computed": n_missing, "present": len(windows) - n_missing}
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hms prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--splits", default="train,test", help="comma-separated splits to prepare [default: train,test]"
    )
    add_config_arguments(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, cfg = parse_config_command(parser, argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "test")]
    if bad or not splits:
        parser.error(f"--splits must name train and/or test, got {args.splits!r}")
    if not cfg.cache:
        parser.error("cache=false: nothing to prepare")
    data = open_data(cfg.data_dir)
    pipeline = InputPipeline(cfg, data)
    for split in splits:
        if not data.has_split(split):
            print(f"{split}: not present in {data.root}; skipped", file=sys.stderr)
            continue
        labels = make_labels(data.train, cfg.grouping) if split == "train" else data.test
        report = prepare_cache(pipeline, labels, split)
        for source, counts in report.items():
            folder = getattr(pipeline.cache(source), "folder", None)
            print(f"{split} {source}: {counts['computed']} computed, {counts['present']} already cached -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
