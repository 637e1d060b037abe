"""The competition metric against scipy's rel_entr, and its documented rejections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr

from hms.metric import EPSILON, kl_divergence, kl_divergence_per_row, validate_probabilities
from hms.schema import VOTE_COLUMNS


def reference_kl(solution: np.ndarray, submission: np.ndarray) -> float:
    """Kaggle's definition written with scipy: clip the submission only, rel_entr, row mean."""
    clipped = np.clip(submission, EPSILON, 1 - EPSILON)
    return float(rel_entr(solution, clipped).sum(axis=1).mean())


def random_probabilities(rng: np.random.Generator, n: int, zero_share: float = 0.3) -> np.ndarray:
    values = rng.dirichlet(np.full(6, 0.7), n)
    values[rng.random((n, 6)) < zero_share] = 0.0
    values[values.sum(axis=1) == 0, 0] = 1.0  # keep every row a distribution
    return values / values.sum(axis=1, keepdims=True)


def frame(values: np.ndarray, eeg_ids=None) -> pd.DataFrame:
    out = pd.DataFrame(values, columns=list(VOTE_COLUMNS))
    if eeg_ids is not None:
        out.insert(0, "eeg_id", eeg_ids)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_scipy_rel_entr_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    solution = random_probabilities(rng, 200)
    submission = random_probabilities(rng, 200, zero_share=0.2)  # zeros exercise the clipping
    expected = reference_kl(solution, submission)
    assert np.isfinite(expected)
    assert kl_divergence(solution, submission) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert kl_divergence(frame(solution), frame(submission)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_property_nonnegative_and_equal_to_reference(n, seed):
    rng = np.random.default_rng(seed)
    solution, submission = random_probabilities(rng, n), random_probabilities(rng, n)
    score = kl_divergence(solution, submission)
    assert score >= -1e-12
    assert score == pytest.approx(reference_kl(solution, submission), rel=1e-12, abs=1e-12)


def test_perfect_prediction_scores_zero_and_uniform_scores_log6_on_one_hot():
    one_hot = np.eye(6)[[0, 3, 5, 1]]
    # A perfect one-hot submission is clipped to 1 - 1e-15: the score is ~1e-15, not exactly 0.
    assert kl_divergence(one_hot, one_hot) == pytest.approx(0.0, abs=1e-14)
    assert kl_divergence(one_hot, np.full((4, 6), 1 / 6)) == pytest.approx(np.log(6))


def test_zero_targets_contribute_nothing_even_where_the_submission_is_zero():
    solution = np.array([[0.5, 0.5, 0, 0, 0, 0]])
    submission = np.array([[0.5, 0.5, 0, 0, 0, 0]])
    assert kl_divergence(solution, submission) == pytest.approx(0.0, abs=1e-14)


def test_only_the_submission_is_clipped():
    solution = np.array([[1.0, 0, 0, 0, 0, 0]])
    submission = np.array([[0.0, 1.0, 0, 0, 0, 0]])
    # log(1 / 1e-15): the zero probability on the true class is clipped to 1e-15.
    assert kl_divergence(solution, submission) == pytest.approx(np.log(1e15))
    assert kl_divergence_per_row(solution, submission)[0] == pytest.approx(-np.log(EPSILON))


def test_mean_over_rows_not_sum():
    rng = np.random.default_rng(1)
    solution, submission = random_probabilities(rng, 10), random_probabilities(rng, 10)
    per_row = kl_divergence_per_row(solution, submission)
    assert per_row.shape == (10,)
    assert kl_divergence(solution, submission) == pytest.approx(per_row.mean())
    doubled = kl_divergence(np.vstack([solution, solution]), np.vstack([submission, submission]))
    assert doubled == pytest.approx(per_row.mean())


def test_frames_are_aligned_by_eeg_id():
    rng = np.random.default_rng(2)
    solution, submission = random_probabilities(rng, 8), random_probabilities(rng, 8)
    ids = np.arange(100, 108)
    order = rng.permutation(8)
    shuffled = frame(submission[order], ids[order])
    assert kl_divergence(frame(solution, ids), shuffled) == pytest.approx(reference_kl(solution, submission))


@pytest.mark.parametrize(
    ("solution_ids", "submission_ids", "message"),
    [([1, 2, 3], [1, 2, 4], "missing"), ([1, 2, 2], [1, 2, 3], "duplicate eeg_id")],
)
def test_eeg_id_mismatch_is_rejected(solution_ids, submission_ids, message):
    values = np.full((3, 6), 1 / 6)
    with pytest.raises(ValueError, match=message):
        kl_divergence(frame(values, solution_ids), frame(values, submission_ids))


@pytest.mark.parametrize("which", ["solution", "submission"])
@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([0.5, 0.4, 0.0, 0.0, 0.0, 0.0], "do not sum to 1"),
        ([1.2, -0.2, 0.0, 0.0, 0.0, 0.0], r"outside \[0, 1\]"),
        ([np.nan, 1.0, 0.0, 0.0, 0.0, 0.0], "non-finite"),
        ([2.0, 2.0, 2.0, 2.0, 2.0, 2.0], r"outside \[0, 1\]"),
    ],
)
def test_non_probability_rows_are_rejected_not_renormalized(which, row, message):
    good = np.full((3, 6), 1 / 6)
    bad = good.copy()
    bad[1] = row
    args = (bad, good) if which == "solution" else (good, bad)
    with pytest.raises(ValueError, match=rf"{which}: .*{message}") as error:
        kl_divergence(*args)
    assert "rows 1" in str(error.value)  # names the offending row


def test_float32_softmax_rounding_is_accepted():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 6)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert validate_probabilities(probs).shape == (50, 6)


def test_shape_and_column_errors():
    with pytest.raises(ValueError, match=r"expected shape \(n, 6\)"):
        validate_probabilities(np.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="missing column"):
        validate_probabilities(frame(np.full((2, 6), 1 / 6)).drop(columns="gpd_vote"))
    with pytest.raises(ValueError, match="shape"):
        kl_divergence(np.full((2, 6), 1 / 6), np.full((3, 6), 1 / 6))
    with pytest.raises(ValueError, match="no rows"):
        validate_probabilities(np.zeros((0, 6)))
