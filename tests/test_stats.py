"""RunningStats against numpy's float64 two-pass statistics of the concatenated data."""

import json
import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import dsp

RTOL = 1e-12


def feed(stats, data, cuts):
    for piece in np.split(data, cuts):
        stats.update(piece)
    return stats


def assert_matches_numpy(stats, data, axis=None, ddof=0):
    reduce_axes = None if axis is None else tuple(a for a in range(data.ndim) if a != axis % data.ndim)
    data = data.astype(np.float64)
    np.testing.assert_allclose(stats.mean, np.nanmean(data, axis=reduce_axes), rtol=RTOL)
    np.testing.assert_allclose(stats.var, np.nanvar(data, axis=reduce_axes, ddof=ddof), rtol=RTOL)
    np.testing.assert_allclose(stats.std, np.nanstd(data, axis=reduce_axes, ddof=ddof), rtol=RTOL)
    np.testing.assert_array_equal(stats.min, np.nanmin(data, axis=reduce_axes))
    np.testing.assert_array_equal(stats.max, np.nanmax(data, axis=reduce_axes))
    np.testing.assert_array_equal(stats.count, np.sum(~np.isnan(data), axis=reduce_axes))


def exact_mean_var(values):
    """Mean and population variance of float values in exact rational arithmetic."""
    exact = [Fraction(float(v)) for v in values]
    mean = sum(exact) / len(exact)
    return float(mean), float(sum((v - mean) ** 2 for v in exact) / len(exact))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(2, 5000),
    n_cuts=st.integers(0, 40),
    mean=st.sampled_from([0.0, -3.0, 1e6, 1e8]),
    spread=st.sampled_from([1.0, 1e-3, 1e3]),
    dtype=st.sampled_from([np.float32, np.float64]),
    data=st.data(),
)
def test_any_sequence_of_updates_equals_two_pass(n, n_cuts, mean, spread, dtype, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    values = (mean + spread * rng.standard_normal(n)).astype(dtype)
    if np.ptp(values.astype(np.float64)) == 0:
        return  # float32 cannot resolve the spread: nothing to compare relatively
    cuts = np.sort(rng.integers(0, n + 1, n_cuts))
    stats = feed(dsp.RunningStats(), values, cuts)
    # Against the exact values: where the spread is near the resolution of the mean (1e8 +- 1e-3),
    # numpy's own two-pass result is off by more than 1e-12 (its mean's rounding enters the
    # deviations), while the corrected two-pass with a compensated mean is not.
    mean, var = exact_mean_var(values)
    np.testing.assert_allclose(stats.mean, mean, rtol=RTOL)
    np.testing.assert_allclose(stats.var, var, rtol=RTOL)
    assert stats.min == values.min() and stats.max == values.max() and stats.count == n
    if spread / max(abs(mean), 1.0) > 1e-9:
        assert_matches_numpy(stats, values)


def test_hostile_data_where_the_naive_formula_fails():
    rng = np.random.default_rng(0)
    values = 1e6 + 1e-3 * rng.standard_normal(1_000_000)
    stats = feed(dsp.RunningStats(), values, np.arange(997, values.size, 997))
    naive_var = np.mean(values**2) - np.mean(values) ** 2
    true_var = values.var()
    assert abs(naive_var - true_var) > 1e-3 * true_var  # the test data really is hostile
    assert_matches_numpy(stats, values)
    # Single-value updates (Welford) stay exact as well.
    one_by_one = dsp.RunningStats()
    for v in values[:3000]:
        one_by_one.update(np.array([v]))
    assert_matches_numpy(one_by_one, values[:3000])


def test_large_magnitudes_and_many_values():
    rng = np.random.default_rng(1)
    stats = dsp.RunningStats()
    chunks = [1e8 + rng.standard_normal(2_000_000) for _ in range(5)]
    for chunk in chunks:
        stats.update(chunk)
    assert_matches_numpy(stats, np.concatenate(chunks))


def test_nan_is_skipped_and_counted_inf_is_refused():
    values = np.array([1.0, np.nan, 3.0, np.nan, 5.0], np.float32)
    stats = dsp.RunningStats().update(values)
    assert (stats.count, stats.nan_count) == (3, 2)
    assert stats.mean == 3.0 and stats.min == 1.0 and stats.max == 5.0
    with pytest.raises(ValueError, match="inf"):
        stats.update(np.array([1.0, np.inf]))
    assert stats.count == 3 and stats.mean == 3.0  # unchanged by the refused update
    empty = dsp.RunningStats()
    assert empty.count == 0 and np.isnan(empty.mean) and np.isnan(empty.var) and np.isnan(empty.min)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_statistics(axis):
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((4, 20, 30)) * np.arange(1, 31) + 5 for _ in range(3)]
    stats = dsp.RunningStats(axis=axis)
    for b in batches:
        stats.update(b)
    data = np.concatenate(batches, axis=0 if axis != 0 else 1)
    assert_matches_numpy(stats, data, axis=axis)
    with pytest.raises(ValueError, match="channel axis has"):
        stats.update(np.zeros((5, 5, 5)))


def test_ddof_merge_and_serialization():
    rng = np.random.default_rng(3)
    a_data, b_data = rng.standard_normal((3, 100)), rng.standard_normal((3, 50)) + 2
    a = dsp.RunningStats(axis=0, ddof=1).update(a_data)
    b = dsp.RunningStats(axis=0).update(b_data)
    a.merge(b)
    assert_matches_numpy(a, np.concatenate([a_data, b_data], axis=1), axis=0, ddof=1)
    restored = dsp.RunningStats.from_dict(json.loads(json.dumps(a.to_dict())))
    pickled = pickle.loads(pickle.dumps(a))
    for copy in (restored, pickled):
        assert copy.ddof == 1 and copy.axis == 0
        np.testing.assert_array_equal(copy.mean, a.mean)
        np.testing.assert_array_equal(copy.var, a.var)
        np.testing.assert_array_equal(copy.count, a.count)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(dsp.RunningStats())
    with pytest.raises(ValueError, match="3 and 2 channels"):
        a.merge(dsp.RunningStats(axis=0).update(np.zeros((2, 5))))
    with pytest.raises(ValueError, match="lacks"):
        dsp.RunningStats.from_dict({"axis": None})
    with pytest.raises(ValueError, match="non-negative integer"):
        dsp.RunningStats.from_dict({"axis": None, "ddof": 0, "state": [[-1, 0, 0, 0, 0, 0, 0]]})
    with pytest.raises(ValueError, match="ddof"):
        dsp.RunningStats(ddof=-1)
    with pytest.raises(TypeError, match="complex"):
        dsp.RunningStats().update(np.ones(3, complex))


def test_states_no_update_can_make_are_refused():
    """A restored state holds what updates produce: a finite mean, m2 >= 0 (inf allowed)."""
    ok = [[3, 0, 1.0, 0.0, np.inf, -1e300, 1e300]]
    assert dsp.RunningStats.from_dict({"axis": None, "ddof": 0, "state": ok}).var == np.inf
    for bad in ([3, 0, np.nan, 0, 1, 0, 2], [3, 0, 1, 0, -1, 0, 2], [3, 0, 1, 0, np.nan, 0, 2], [3, 0, 1, 0, 1, 2, 0]):
        with pytest.raises(ValueError, match="RunningStats state: invalid moments"):
            dsp.RunningStats.from_dict({"axis": None, "ddof": 0, "state": [bad]})


def test_constant_data_has_variance_zero_at_any_magnitude():
    for value in (1e300, -1e300, 1.7e308, 3e-310):
        for n in (3, 7, 100_000):
            stats = dsp.RunningStats().update(np.full(n, value))
            assert (stats.mean, stats.var, stats.min, stats.max) == (value, 0.0, value, value)
