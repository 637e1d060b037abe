"""PNG figures of the hms tools (matplotlib, Agg backend: no display needed).

Every figure is written atomically (temporary file next to the target, then os.replace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hms import CLASSES  # noqa: E402
from hms.io import atomic_output
from hms.labels import make_labels
from hms.schema import CENTRAL_CHAIN, CONSENSUS_NAMES, VOTE_COLUMNS  # noqa: E402

EXPERT_VOTES = 10  # rows with at least this many votes resemble the test set


def save_figure(figure: plt.Figure, path: str | os.PathLike, dpi: int = 100, **savefig: Any) -> Path:
    """Write ``figure`` as PNG atomically (``savefig``: more of matplotlib's options) and close it."""
    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi, **savefig)
    finally:
        plt.close(figure)
    return path


# ---------------------------------------------------------------------------------------------
# Dataset overview
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetOverview:
    """The numbers behind the overview figure (all arrays in class order)."""

    consensus_rows: np.ndarray  # label rows per expert_consensus
    consensus_eegs: np.ndarray  # eeg_ids per consensus of their summed votes
    votes_per_row: np.ndarray  # total votes of each label row
    votes_over_rows: np.ndarray  # votes per class summed over all rows
    fractions_by_spectrogram: np.ndarray  # vote fractions per class summed over spectrogram groups
    n_rows: int
    n_eegs: int
    n_spectrograms: int
    n_patients: int


def dataset_overview(train: pd.DataFrame) -> DatasetOverview:
    """Summarize a validated train.csv frame for :func:`plot_dataset_overview`."""
    by_eeg = make_labels(train, "eeg")
    by_spectrogram = make_labels(train, "spectrogram")

    def consensus_counts(frame: pd.DataFrame) -> np.ndarray:
        return frame["expert_consensus"].value_counts().reindex(CONSENSUS_NAMES, fill_value=0).to_numpy()

    return DatasetOverview(
        consensus_rows=consensus_counts(train),
        consensus_eegs=consensus_counts(by_eeg),
        votes_per_row=train[list(VOTE_COLUMNS)].to_numpy().sum(axis=1),
        votes_over_rows=train[list(VOTE_COLUMNS)].to_numpy().sum(axis=0),
        fractions_by_spectrogram=by_spectrogram[list(VOTE_COLUMNS)].to_numpy().sum(axis=0),
        n_rows=len(train),
        n_eegs=int(train["eeg_id"].nunique()),
        n_spectrograms=int(train["spectrogram_id"].nunique()),
        n_patients=int(train["patient_id"].nunique()),
    )


def plot_dataset_overview(overview: DatasetOverview, path: str | os.PathLike, title: str | None = None) -> Path:
    """Four panels: consensus per row vs per eeg_id, votes per row, and the seed report's pair —
    votes per class over all rows vs vote fractions per class grouped by spectrogram_id."""
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    x = np.arange(len(CLASSES))
    names = list(CONSENSUS_NAMES)

    ax = axes[0, 0]
    ax.bar(x - 0.2, overview.consensus_rows / max(overview.n_rows, 1), 0.4, label=f"label rows ({overview.n_rows})")
    ax.bar(x + 0.2, overview.consensus_eegs / max(overview.n_eegs, 1), 0.4, label=f"eeg_ids ({overview.n_eegs})")
    ax.set(xticks=x, xticklabels=names, ylabel="share", title="expert consensus")
    ax.legend()

    ax = axes[0, 1]
    top = int(max(overview.votes_per_row.max(initial=1), EXPERT_VOTES))
    ax.hist(overview.votes_per_row, bins=np.arange(0.5, top + 1.5), color="0.4")
    ax.axvline(EXPERT_VOTES - 0.5, color="tab:red", linestyle="--")
    experts = float(np.mean(overview.votes_per_row >= EXPERT_VOTES)) if overview.n_rows else 0.0
    ax.set(
        xlabel="votes per label row", ylabel="rows", title=f"vote counts ({experts:.0%} rows with >= {EXPERT_VOTES})"
    )

    ax = axes[1, 0]
    ax.bar(x, overview.votes_over_rows, color="tab:blue")
    ax.set(xticks=x, xticklabels=names, ylabel="votes", title="votes per class, all rows")

    ax = axes[1, 1]
    ax.bar(x, overview.fractions_by_spectrogram, color="tab:orange")
    ax.set(
        xticks=x,
        xticklabels=names,
        ylabel="summed vote fractions",
        title=f"votes per class, grouped by spectrogram ({overview.n_spectrograms})",
    )

    figure.suptitle(title or f"{overview.n_patients} patients, {overview.n_eegs} EEGs, {overview.n_rows} label rows")
    figure.tight_layout()
    return save_figure(figure, path)


# ---------------------------------------------------------------------------------------------
# Training run figures (hms.train: loss_curves.png, confusion.png, class_distributions.png)
# ---------------------------------------------------------------------------------------------


def plot_training_curves(metrics: pd.DataFrame) -> plt.Figure:
    """Per-fold curves over epochs: training loss and validation KL (all rows and high-vote rows).

    ``metrics`` has one row per (fold, epoch) with columns fold, epoch, train_loss, val_kl and
    optionally val_kl_high_votes (the history rows hms.folds writes).
    """
    figure, (loss_ax, kl_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for fold, rows in metrics.groupby("fold", sort=True) if len(metrics) else []:
        rows = rows.sort_values("epoch")
        line = loss_ax.plot(rows["epoch"], rows["train_loss"], marker="o", label=f"fold {fold}")[0]
        kl_ax.plot(rows["epoch"], rows["val_kl"], marker="o", color=line.get_color(), label=f"fold {fold}")
        if "val_kl_high_votes" in rows:
            kl_ax.plot(rows["epoch"], rows["val_kl_high_votes"], linestyle="--", color=line.get_color())
    loss_ax.set(xlabel="epoch", ylabel="training loss (KL)", title="training loss")
    kl_ax.set(xlabel="epoch", ylabel="validation KL", title="validation KL (dashed: high-vote rows)")
    for ax in (loss_ax, kl_ax):
        if ax.lines:
            ax.legend()
    figure.tight_layout()
    return figure


def plot_consensus_confusion(targets: np.ndarray, probs: np.ndarray) -> plt.Figure:
    """Confusion matrix of the vote majority (rows) against the predicted class (columns),
    normalized per row, with the row counts in the labels."""
    n = len(CLASSES)
    truth, predicted = np.argmax(targets, axis=1), np.argmax(probs, axis=1)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (truth, predicted), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(
                j, i, f"{shares[i, j]:.2f}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black"
            )
    names = list(CONSENSUS_NAMES)
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xticklabels=names,
        yticklabels=[f"{name} ({counts[i].sum()})" for i, name in enumerate(names)],
        xlabel="predicted",
        ylabel="vote majority",
        title="consensus confusion (row-normalized)",
    )
    figure.colorbar(image, ax=ax)
    figure.tight_layout()
    return figure


def plot_class_distributions(targets: np.ndarray, probs: np.ndarray) -> plt.Figure:
    """Per class: mean target vs mean predicted probability (calibration in the large), and the
    distribution of predicted probabilities."""
    figure, (mean_ax, hist_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(CLASSES))
    names = list(CONSENSUS_NAMES)
    mean_ax.bar(x - 0.2, targets.mean(axis=0) if len(targets) else np.zeros(len(x)), 0.4, label="targets")
    mean_ax.bar(x + 0.2, probs.mean(axis=0) if len(probs) else np.zeros(len(x)), 0.4, label="predictions")
    mean_ax.set(xticks=x, xticklabels=names, ylabel="mean probability", title="class mass")
    mean_ax.legend()
    bins = np.linspace(0.0, 1.0, 21)
    for j, name in enumerate(names):
        hist_ax.hist(probs[:, j], bins=bins, histtype="step", label=name)
    hist_ax.set(xlabel="predicted probability", ylabel="rows", title="predicted probabilities")
    hist_ax.legend()
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
# Model inputs of one sample (hms.show_sample; owned with hms.inputs)
# ---------------------------------------------------------------------------------------------


def _plot_traces(ax: plt.Axes, traces: np.ndarray, names: list[str]) -> None:
    """(links, n) traces over the 50-s window, one below the other, the labelled 10 s shaded."""
    seconds = np.arange(traces.shape[-1]) * 50.0 / traces.shape[-1]
    std = np.nanstd(traces)
    spread = 4 * std if np.isfinite(std) and std > 0 else 1.0
    for k, trace in enumerate(traces):
        ax.plot(seconds, trace - k * spread, lw=0.4, color="k")
    ax.set_yticks([-k * spread for k in range(len(names))], names, fontsize=6)
    ax.axvspan(20, 30, color="tab:orange", alpha=0.15, label="labelled 10 s")


def plot_input_sample(
    montage: np.ndarray,
    montage_names: list[str],
    chain_spectrograms: np.ndarray | None,
    kaggle_log: np.ndarray | None,
    model_input: np.ndarray,
    chain_names: tuple[str, ...],
    title: str,
) -> plt.Figure:
    """One sample from file to network: bipolar montage traces (16, n) of the 50-s window, the 4
    chain spectrograms (4, F, T), the 4 Kaggle log tiles (4, 100, 300) and the model input (C, H, W).
    ``None`` panels (a source the recipe does not use) are left out."""
    panels = [
        (name, images)
        for name, images in (("EEG chain spectrograms", chain_spectrograms), ("Kaggle log spectrogram", kaggle_log))
        if images is not None
    ]
    n_rows = len(panels) + 2  # traces, the panels, the model input
    figure = plt.figure(figsize=(16, 3.2 * n_rows))
    grid = figure.add_gridspec(n_rows, 4)
    traces = figure.add_subplot(grid[0, :])
    _plot_traces(traces, montage, montage_names)
    traces.set(xlabel="s", title="bipolar montage, 50-s window")
    traces.legend(loc="upper right", fontsize=7)
    for r, (name, images) in enumerate(panels, start=1):
        for c in range(4):
            ax = figure.add_subplot(grid[r, c])
            ax.imshow(images[c], origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"{name}: {chain_names[c]}", fontsize=8)
            ax.set_xticks([])
    inner = figure.add_subplot(grid[n_rows - 1, :])
    if model_input.ndim == 2:  # the raw EEG: links x time, drawn as traces
        central = [f"{a}-{b}" for a, b in CENTRAL_CHAIN]
        _plot_traces(inner, model_input, (montage_names + central)[: len(model_input)])
        inner.set(xlabel="s", title=f"model input {tuple(model_input.shape)}: scaled bipolar links")
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        return figure
    shown = model_input[0] if model_input.shape[0] == 1 else np.concatenate(list(model_input), axis=1)
    picture = inner.imshow(shown, origin="lower", aspect="auto", cmap="viridis")
    figure.colorbar(picture, ax=inner, fraction=0.02)
    inner.set_title(
        f"model input {tuple(model_input.shape)}" + (" (channels side by side)" if model_input.shape[0] > 1 else ""),
        fontsize=9,
    )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
# A recording's probability timeline
# ---------------------------------------------------------------------------------------------


def _clock(seconds: float, _position: Any = None) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def plot_probability_timeline(windows: pd.DataFrame, title: str) -> plt.Figure:
    """Stacked class probabilities of a recording's windows over its time axis (window centres,
    h:mm:ss), with the most likely class of each window as a strip underneath; windows that are
    mostly gap (``gap_fraction`` > 0.5) are hatched in grey."""
    from matplotlib.ticker import FuncFormatter

    centres = 0.5 * (windows["start_s"].to_numpy() + windows["end_s"].to_numpy())
    probs = windows[list(VOTE_COLUMNS)].to_numpy()
    colors = [plt.get_cmap("tab10")(k) for k in range(len(CLASSES))]
    fig, (ax, strip) = plt.subplots(
        2, 1, figsize=(12, 4.5), sharex=True, gridspec_kw={"height_ratios": [6, 1]}, constrained_layout=True
    )
    ax.stackplot(centres, probs.T, labels=[c.upper() for c in CLASSES], colors=colors, alpha=0.9)
    if "gap_fraction" in windows:
        step = float(np.median(np.diff(centres))) if len(centres) > 1 else 50.0
        for centre in centres[windows["gap_fraction"].to_numpy() > 0.5]:
            ax.axvspan(centre - step / 2, centre + step / 2, facecolor="0.85", edgecolor="0.5", hatch="//", lw=0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    strip.scatter(centres, np.zeros_like(centres), c=[colors[k] for k in probs.argmax(axis=1)], marker="|", s=400)
    strip.set_yticks([])
    strip.set_ylabel("top", rotation=0, ha="right", va="center")
    strip.xaxis.set_major_formatter(FuncFormatter(_clock))
    strip.set_xlabel("recording time (window centre, h:mm:ss)")
    strip.set_xlim(0, float(windows["end_s"].max()))
    return fig
