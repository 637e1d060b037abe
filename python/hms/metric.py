"""The competition metric: Kullback-Leibler divergence of vote fractions, micro-averaged.

score = mean over rows of sum_k y_k * log(y_k / p_k), with the y_k == 0 terms counted as 0.
Both inputs must already be probabilities (values in [0, 1], rows summing to 1; nothing is
renormalized) and only the submission is clipped, to [1e-15, 1 - 1e-15], as on Kaggle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hms import CLASSES
from hms.schema import VOTE_COLUMNS

EPSILON = 1e-15
# Row sums are compared with np.isclose's default tolerances (rtol 1e-5, atol 1e-8): float32
# softmax outputs pass, a forgotten normalization does not.
_SUM_RTOL = 1e-5
_SUM_ATOL = 1e-8


def _as_matrix(values: pd.DataFrame | np.ndarray, name: str) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        missing = [c for c in VOTE_COLUMNS if c not in values.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}")
        frame = values[list(VOTE_COLUMNS)]
        non_numeric = [c for c in VOTE_COLUMNS if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise ValueError(f"{name}: column(s) {non_numeric} are not numeric")
        return frame.to_numpy(dtype=np.float64)
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(CLASSES):
        raise ValueError(f"{name}: expected shape (n, {len(CLASSES)}), got {matrix.shape}")
    return matrix


def _rows_text(rows: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def validate_probabilities(values: pd.DataFrame | np.ndarray, name: str = "submission") -> np.ndarray:
    """Check that every row is a probability vector over the six classes; return (n, 6) float64.

    Raises ValueError naming the rows (0-based) and classes of non-finite values, values outside
    [0, 1], and rows whose sum is not 1. Use it before writing a submission.
    """
    matrix = _as_matrix(values, name)
    if matrix.shape[0] == 0:
        raise ValueError(f"{name}: no rows")
    bad = ~np.isfinite(matrix)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{name}: non-finite values in rows {_rows_text(rows)}")
    outside = (matrix < 0) | (matrix > 1)
    if outside.any():
        rows = np.flatnonzero(outside.any(axis=1))
        classes = [VOTE_COLUMNS[j] for j in np.flatnonzero(outside.any(axis=0))]
        raise ValueError(
            f"{name}: values outside [0, 1] in column(s) {classes}, rows {_rows_text(rows)} "
            f"(e.g. {matrix[rows[0]].tolist()})"
        )
    sums = matrix.sum(axis=1)
    off = ~np.isclose(sums, 1.0, rtol=_SUM_RTOL, atol=_SUM_ATOL)
    if off.any():
        rows = np.flatnonzero(off)
        raise ValueError(
            f"{name}: rows {_rows_text(rows)} do not sum to 1 (e.g. row {rows[0]} sums to "
            f"{sums[rows[0]]!r}); probabilities are not renormalized"
        )
    return matrix


def _aligned(solution, submission) -> tuple[object, object]:
    # When both frames carry eeg_id, score by id (as Kaggle does), not by row position.
    both_frames = isinstance(solution, pd.DataFrame) and isinstance(submission, pd.DataFrame)
    if not (both_frames and "eeg_id" in solution.columns and "eeg_id" in submission.columns):
        return solution, submission
    for frame, name in ((solution, "solution"), (submission, "submission")):
        if frame["eeg_id"].duplicated().any():
            dup = frame["eeg_id"][frame["eeg_id"].duplicated()].unique()[:5].tolist()
            raise ValueError(f"{name}: duplicate eeg_id {dup}")
    missing = np.setdiff1d(solution["eeg_id"], submission["eeg_id"])
    extra = np.setdiff1d(submission["eeg_id"], solution["eeg_id"])
    if len(missing) or len(extra):
        raise ValueError(
            f"submission eeg_ids differ from the solution's: missing {missing[:5].tolist()}, "
            f"unexpected {extra[:5].tolist()}"
        )
    return solution, submission.set_index("eeg_id").loc[solution["eeg_id"]].reset_index()


def kl_divergence_per_row(solution, submission) -> np.ndarray:
    """Each row's KL divergence (the terms the competition metric averages)."""
    solution, submission = _aligned(solution, submission)
    y = validate_probabilities(solution, "solution")
    p = validate_probabilities(submission, "submission")
    if y.shape != p.shape:
        raise ValueError(f"solution has shape {y.shape}, submission {p.shape}")
    p = np.clip(p, EPSILON, 1 - EPSILON)
    terms = np.zeros_like(y)
    nonzero = y > 0
    terms[nonzero] = y[nonzero] * np.log(y[nonzero] / p[nonzero])
    return terms.sum(axis=1)


def kl_divergence(solution, submission) -> float:
    """The competition score (lower is better).

    ``solution`` and ``submission`` are (n, 6) arrays in class order, or DataFrames with the six
    ``*_vote`` columns (aligned by ``eeg_id`` when both have it, else by position).
    """
    return float(kl_divergence_per_row(solution, submission).mean())
