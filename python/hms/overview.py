"""A PNG overview of a competition folder's labels.

    hms overview [--data-dir DIR] [--out FILE.png]

Without --data-dir it summarizes the default synthetic set (created on first use).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hms.cli import add_data_dir_option, command, parse_command
from hms.competition import open_data
from hms.plots import EXPERT_VOTES, dataset_overview, plot_dataset_overview
from hms.schema import CONSENSUS_NAMES


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hms overview", description="Plot class and vote-count distributions of a competition folder's train.csv."
    )
    add_data_dir_option(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("dataset_overview.png"), help="PNG to write (default %(default)s)"
    )
    args = parse_command(parser, argv)
    data = open_data(args.data_dir, require=("train",))
    overview = dataset_overview(data.train)
    plot_dataset_overview(
        overview,
        args.out,
        title=f"{data.root.name}: {overview.n_patients} patients, {overview.n_eegs} EEGs, {overview.n_rows} label rows",
    )
    shares = overview.consensus_rows / max(overview.n_rows, 1)
    print(
        f"{data.root}: {overview.n_rows} label rows, {overview.n_eegs} eeg_ids, "
        f"{overview.n_spectrograms} spectrogram_ids, {overview.n_patients} patients"
    )
    print("consensus share of rows: " + ", ".join(f"{n} {s:.3f}" for n, s in zip(CONSENSUS_NAMES, shares)))
    print(f"rows with >= {EXPERT_VOTES} votes: {(overview.votes_per_row >= EXPERT_VOTES).mean():.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
