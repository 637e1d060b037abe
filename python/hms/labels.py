"""Training samples from label rows: vote-fraction targets grouped per eeg, spectrogram or row,
and patient-grouped folds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from hms.schema import CONSENSUS_NAMES, GROUPINGS, LABEL_COLUMNS, TARGET_COLUMNS, VOTE_COLUMNS


def make_labels(train: pd.DataFrame, grouping: str = "eeg") -> pd.DataFrame:
    """One row per training sample, with vote fractions as targets.

    ``grouping``:
      * ``"row"``: every label row.
      * ``"eeg"``: votes summed over all rows of an eeg_id.
      * ``"spectrogram"``: votes summed over all rows of a spectrogram_id (the seed baseline).

    A grouped sample takes its ids and window offsets from the group's earliest row (smallest
    offset of the grouping's own modality; ties: smallest label_id), so its EEG and spectrogram
    windows are those of one real label row. ``expert_consensus`` is recomputed as the class with
    most summed votes (ties: the earlier class). Columns: :data:`LABEL_COLUMNS` — the
    VOTE_COLUMNS hold fractions summing to 1, ``n_votes`` the summed vote count (for vote-aware
    training), ``n_rows`` the number of label rows merged.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    n_rows: np.ndarray
    if grouping == "row":
        first = train.reset_index(drop=True)
        votes = first[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
        n_rows = np.ones(len(train), dtype=np.int64)
    else:
        key = "eeg_id" if grouping == "eeg" else "spectrogram_id"
        offset = "eeg_label_offset_seconds" if grouping == "eeg" else "spectrogram_label_offset_seconds"
        ordered = train.sort_values([key, offset, "label_id"], kind="stable")
        first = ordered.drop_duplicates(key, keep="first").reset_index(drop=True)
        summed = train.groupby(key, sort=True)[list(VOTE_COLUMNS)].sum()
        votes = summed.loc[first[key]].to_numpy(dtype=np.float64)
        n_rows = train.groupby(key, sort=True).size().loc[first[key]].to_numpy(dtype=np.int64)
    n_votes = votes.sum(axis=1)
    labels = first[list(LABEL_COLUMNS[:6])].copy()
    if grouping == "row":
        labels["expert_consensus"] = first["expert_consensus"].to_numpy()
    else:
        labels["expert_consensus"] = np.asarray(CONSENSUS_NAMES)[votes.argmax(axis=1)]
    for j, column in enumerate(VOTE_COLUMNS):
        labels[column] = votes[:, j] / n_votes
    labels["n_votes"] = n_votes.astype(np.int64)
    labels["n_rows"] = np.asarray(n_rows, dtype=np.int64)
    return labels.reset_index(drop=True)


def targets_of(labels: pd.DataFrame) -> np.ndarray:
    """The (n, 6) float64 target matrix of a label frame, in class order."""
    return labels[list(TARGET_COLUMNS)].to_numpy(dtype=np.float64)


def make_folds(labels: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..n_folds-1) of every label row, grouped by patient_id.

    No patient appears in two folds; folds are stratified by ``expert_consensus`` as far as the
    patient groups allow, and the assignment is a pure function of (labels, n_folds, seed).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    patients = labels["patient_id"].to_numpy()
    n_patients = len(np.unique(patients))
    if n_patients < n_folds:
        raise ValueError(f"cannot make {n_folds} patient-grouped folds from {n_patients} patient(s)")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    strata = labels["expert_consensus"].astype(str).to_numpy()
    with warnings.catch_warnings():
        # Rare classes with fewer patients than folds are expected in small sets.
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, held_out) in enumerate(splitter.split(labels, strata, groups=patients)):
            folds[held_out] = fold
    empty = [f for f in range(n_folds) if not (folds == f).any()]
    if empty:
        raise ValueError(f"fold(s) {empty} received no patient; use fewer folds")
    return folds


def high_vote_mask(labels: pd.DataFrame, min_votes: int) -> np.ndarray:
    """Rows with at least ``min_votes`` votes (the expert-labelled kind that resembles the test set)."""
    return labels["n_votes"].to_numpy() >= min_votes
