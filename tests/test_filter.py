"""Parity of the native zero-phase filter with scipy.signal, and its refusals of bad input."""

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import dsp

FS = 200.0
DESIGNS = {"lowpass": 20.0, "highpass": 0.5, "bandpass": (0.5, 40.0), "bandstop": (55.0, 65.0)}


def assert_filter_close(actual, expected, rtol=1e-10):
    # Relative to each lane's scale: values at zero crossings have no meaningful relative error.
    scale = np.max(np.abs(expected), axis=-1, keepdims=True)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * 1e-2 * scale.max())


@pytest.mark.parametrize("order", range(1, 9))
@pytest.mark.parametrize("btype", sorted(DESIGNS))
def test_butter_sos_equals_scipy(order, btype):
    expected = ss.butter(order, DESIGNS[btype], btype, fs=FS, output="sos")
    np.testing.assert_array_equal(dsp.butter_sos(order, DESIGNS[btype], btype, FS), expected)


def test_notch_sos_equals_scipy():
    expected = ss.tf2sos(*ss.iirnotch(60.0, 30.0, fs=FS))
    sos = dsp.notch_sos(60.0, 30.0, FS)
    assert sos.shape == (1, 6)
    np.testing.assert_array_equal(sos, expected)


@pytest.mark.parametrize("order", range(1, 9))
@pytest.mark.parametrize("btype", sorted(DESIGNS))
def test_sosfiltfilt_equals_scipy_float64(order, btype):
    sos = dsp.butter_sos(order, DESIGNS[btype], btype, FS)
    x = np.random.default_rng(order).standard_normal((2, 20, 700)) * 50 + 3
    assert_filter_close(dsp.sosfiltfilt(sos, x), ss.sosfiltfilt(sos, x))


def test_padlen_and_initial_conditions_equal_scipy():
    for order in (1, 3, 4):
        sos = dsp.butter_sos(order, 10.0, "lowpass", FS)
        ntaps = 2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum())
        assert dsp.sos_padlen(sos) == 3 * ntaps
        np.testing.assert_allclose(dsp.sosfilt_zi(sos), ss.sosfilt_zi(sos), rtol=1e-12, atol=1e-14)


def test_notch_filter_equals_scipy():
    sos = dsp.notch_sos(60.0, 30.0, FS)
    x = np.random.default_rng(1).standard_normal((20, 2000))
    assert_filter_close(dsp.sosfiltfilt(sos, x), ss.sosfiltfilt(sos, x))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_any_axis(axis):
    sos = dsp.butter_sos(4, (0.5, 40.0), "bandpass", FS)
    x = (
        np.random.default_rng(2).standard_normal((120, 110, 3))
        if axis in (0, 1, -2)
        else np.random.default_rng(2).standard_normal((3, 4, 200))
    )
    assert_filter_close(dsp.sosfiltfilt(sos, x, axis=axis), ss.sosfiltfilt(sos, x, axis=axis))


def test_non_contiguous_inputs():
    sos = dsp.butter_sos(2, 30.0, "lowpass", FS)
    base = np.random.default_rng(3).standard_normal((6, 900))
    for view, axis in ((base[::2, ::3], -1), (base[:, ::-1], -1), (base.T, 0), (np.asfortranarray(base), -1)):
        assert_filter_close(dsp.sosfiltfilt(sos, view, axis=axis), ss.sosfiltfilt(sos, view, axis=axis))


def test_float32_is_computed_in_float64_and_returned_as_float32():
    sos = dsp.butter_sos(4, (0.5, 40.0), "bandpass", FS)
    x = (np.random.default_rng(4).standard_normal((3, 20, 1000)) * 100).astype(np.float32)
    y = dsp.sosfiltfilt(sos, x)
    assert y.dtype == np.float32
    expected = ss.sosfiltfilt(sos, x.astype(np.float64))
    # Only the final rounding to float32 differs from a float64 computation.
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_integers_are_converted():
    sos = dsp.butter_sos(2, 10.0, "lowpass", FS)
    x = np.arange(300, dtype=np.int16) % 17
    y = dsp.sosfiltfilt(sos, x)
    assert y.dtype == np.float64
    assert_filter_close(y, ss.sosfiltfilt(sos, x.astype(np.float64)))


def test_shortest_signal_and_too_short_signal():
    sos = dsp.butter_sos(4, (0.5, 40.0), "bandpass", FS)
    padlen = dsp.sos_padlen(sos)
    ok = np.random.default_rng(5).standard_normal(padlen + 1)
    assert_filter_close(dsp.sosfiltfilt(sos, ok), ss.sosfiltfilt(sos, ok))
    with pytest.raises(ValueError, match=rf"{padlen} samples.*more than {padlen}"):
        dsp.sosfiltfilt(sos, np.zeros(padlen))


@pytest.mark.parametrize(
    "sos, x, axis, error, match",
    [
        (np.ones((2, 5)), np.zeros(100), -1, ValueError, "sos must have shape"),
        ([[1, 0, 0, 2, 0, 0]], np.zeros(100), -1, ValueError, "a0"),
        ([[1, np.nan, 0, 1, 0, 0]], np.zeros(100), -1, ValueError, "NaN or inf"),
        ([[1, 0, 0, 1, -2, 1]], np.zeros(100), -1, ValueError, "pole at z=1"),
        ([[1, 0, 0, 1, 0, 0]], np.zeros(100, complex), -1, TypeError, "complex"),
        ([[1, 0, 0, 1, 0, 0]], np.array(["a", "b"]), -1, TypeError, "numeric"),
        ([[1, 0, 0, 1, 0, 0]], np.zeros((0, 100)), -1, ValueError, "empty"),
        ([[1, 0, 0, 1, 0, 0]], np.zeros(100), 1, ValueError, "axis=1 is out of bounds"),
        ([[1, 0, 0, 1, 0, 0]], np.zeros(100), 0.5, TypeError, "axis must be an integer"),
        ([[1, 0, 0, 1, 0, 0]], np.r_[np.zeros(50), np.nan, np.zeros(49)], -1, ValueError, "NaN or inf"),
        ([[1, 0, 0, 1, 0, 0]], np.r_[np.zeros(50), np.inf, np.zeros(49)], -1, ValueError, "NaN or inf"),
    ],
)
def test_sosfiltfilt_refuses_bad_input(sos, x, axis, error, match):
    with pytest.raises(error, match=match):
        dsp.sosfiltfilt(sos, x, axis=axis)


@pytest.mark.parametrize(
    "args, match",
    [
        ((4, 120.0, "lowpass", FS), "cutoff must lie strictly between 0 and fs/2"),
        ((4, 0.0, "highpass", FS), "cutoff must lie strictly between"),
        ((4, (40.0, 0.5), "bandpass", FS), "increasing"),
        ((4, 10.0, "bandpass", FS), "pair"),
        ((4, (1.0, 2.0), "lowpass", FS), "one frequency"),
        ((4, 10.0, "sideways", FS), "btype"),
        ((0, 10.0, "lowpass", FS), "order"),
        ((4, 10.0, "lowpass", -1.0), "fs must be positive"),
        ((4, np.nan, "lowpass", FS), "finite"),
    ],
)
def test_butter_sos_refuses_bad_design(args, match):
    with pytest.raises(ValueError, match=match):
        dsp.butter_sos(*args)


def test_notch_refuses_bad_design():
    with pytest.raises(ValueError, match="freq must lie strictly"):
        dsp.notch_sos(100.0, 30.0, FS)
    with pytest.raises(ValueError, match="q must be positive"):
        dsp.notch_sos(60.0, 0.0, FS)
    with pytest.raises(ValueError, match="q must be finite"):
        dsp.notch_sos(60.0, np.inf, FS)


@settings(max_examples=60, deadline=None)
@given(
    order=st.integers(1, 8),
    btype=st.sampled_from(sorted(DESIGNS)),
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=2),
    n=st.integers(60, 400),
    dtype=st.sampled_from([np.float32, np.float64, np.int32]),
    step=st.integers(1, 3),
    reverse=st.booleans(),
    data=st.data(),
)
def test_sosfiltfilt_fuzz(order, btype, shape, n, dtype, step, reverse, data):
    sos = dsp.butter_sos(order, DESIGNS[btype], btype, FS)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    full = (rng.standard_normal((*shape, n * step)) * 20).astype(dtype)
    x = full[..., :: -step if reverse else step]
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    padlen = dsp.sos_padlen(sos)
    if x.shape[axis] <= padlen:
        with pytest.raises(ValueError, match="samples"):
            dsp.sosfiltfilt(sos, x, axis=axis)
        return
    y = dsp.sosfiltfilt(sos, x, axis=axis)
    expected = ss.sosfiltfilt(sos, x.astype(np.float64), axis=axis)
    assert y.shape == x.shape
    assert y.dtype == (np.float32 if dtype == np.float32 else np.float64)
    scale = np.abs(expected).max()
    rtol = 1e-6 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * 1e-2 * scale)
