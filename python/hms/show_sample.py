"""Render one sample as a PNG: montage traces, chain spectrograms, Kaggle tiles, model input, labels.

hms show-sample [--row N | --eeg-id ID] [--split train|test] [--out FILE.png] [config options]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from hms.cli import command, parse_config_command
from hms.competition import open_data
from hms.config import add_config_arguments
from hms.inputs import InputPipeline
from hms.labels import make_labels
from hms.plots import plot_input_sample, save_figure
from hms.recipes import CHAINS
from hms.schema import BIPOLAR_CHAINS, CONSENSUS_NAMES, EEG_CHANNELS, TARGET_COLUMNS
from hms.windows import eeg_window, label_windows


def render_sample(pipeline: InputPipeline, labels, row_index: int, split: str, out: str) -> str:
    """Writes the PNG of ``labels`` row ``row_index``; returns its path. Normalization uses the
    pipeline's state (fit it first for "datawide")."""
    if not 0 <= row_index < len(labels):
        raise IndexError(f"row {row_index} is out of range: the {split} labels have {len(labels)} rows")
    row = label_windows(labels.iloc[[row_index]], split)[0]
    path = pipeline.data.eeg_path(split, row.eeg_id) if pipeline.data is not None else None
    window = eeg_window(pipeline.recording(split, row.eeg_id), row.eeg_offset, path)
    names, traces = [], []
    for chain in CHAINS:
        for a, b in BIPOLAR_CHAINS[chain]:
            names.append(f"{a}-{b}")
            traces.append(window[EEG_CHANNELS.index(a)] - window[EEG_CHANNELS.index(b)])
    sources = {s: pipeline.row_source(s, split, row) for s in pipeline.sources}
    model_input = pipeline.assemble({s: v[None] for s, v in sources.items()})[0]
    title = f"{split} eeg_id {row.eeg_id} @ {row.eeg_offset:g} s, spectrogram_id {row.spectrogram_id}"
    if split == "train":
        votes = labels.iloc[row_index][list(TARGET_COLUMNS)].to_numpy(dtype=float)
        shares = ", ".join(f"{n} {v:.2f}" for n, v in zip(CONSENSUS_NAMES, votes))
        title += f"\nconsensus {labels.iloc[row_index]['expert_consensus']} ({int(labels.iloc[row_index]['n_votes'])} votes): {shares}"
    figure = plot_input_sample(
        np.asarray(traces), names, sources.get("eeg"), sources.get("kaggle"), model_input, CHAINS, title
    )
    return str(save_figure(figure, out))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hms show-sample", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--row", type=int, default=0, help="row of the split's labels [default: 0]")
    which.add_argument("--eeg-id", type=int, help="the sample of this eeg_id")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--out", default="sample.png", help="PNG path [default: sample.png]")
    add_config_arguments(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, cfg = parse_config_command(parser, argv)
    data = open_data(cfg.data_dir)
    labels = make_labels(data.train, cfg.grouping) if args.split == "train" else data.test
    row_index = args.row
    if args.eeg_id is not None:
        matches = np.flatnonzero(labels["eeg_id"].to_numpy() == args.eeg_id)
        if not len(matches):
            parser.error(f"eeg_id {args.eeg_id} is not in the {args.split} labels")
        row_index = int(matches[0])
    pipeline = InputPipeline(cfg, data)
    if cfg.normalization == "datawide":
        pipeline.fit(labels if args.split == "train" else make_labels(data.train, cfg.grouping))
    try:
        print(render_sample(pipeline, labels, row_index, args.split, args.out))
    except IndexError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
