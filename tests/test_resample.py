"""Parity of the native polyphase resampler and decimator with scipy.signal, and their refusals of
bad input."""

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import _native, dsp

# (up, down) of the sampling-rate changes HMS meets: 256, 250, 512 and 1000 Hz to 200 Hz, 200 Hz to
# the raw recipe's 40 or 50 Hz, and odd small ratios.
RATES = [(200, 256), (200, 250), (200, 512), (200, 1000), (40, 200), (50, 200), (7, 3), (3, 7), (1, 1)]
PADTYPES = ["constant", "line", "mean", "median", "minimum", "maximum"]


def signal(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 40 + rng.uniform(-20, 20)).astype(dtype)


def assert_resampled(actual, expected, rtol):
    """Within rtol of the largest value (rounding of sums of products of that size), NaN where
    the reference has NaN."""
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = expected[np.isfinite(expected)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("up, down", RATES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_resample_poly_equals_scipy(up, down, dtype):
    x = signal((3, 5003), seed=up * 1000 + down, dtype=dtype)
    y = dsp.resample_poly(x, up, down)
    assert y.dtype == dtype
    if dtype == np.float64:
        assert_resampled(y, ss.resample_poly(x, up, down, axis=-1), rtol=1e-12)
    else:
        # Computed in float64, rounded once: within float32 rounding of the float64 result, and of
        # scipy's own float32 computation.
        assert_resampled(y, ss.resample_poly(x.astype(np.float64), up, down, axis=-1).astype(np.float32), rtol=1e-6)
        assert_resampled(y, ss.resample_poly(x, up, down, axis=-1), rtol=1e-5)


@pytest.mark.parametrize("up, down", RATES)
@pytest.mark.parametrize("padtype", PADTYPES)
def test_every_padtype_equals_scipy(up, down, padtype):
    x = signal((2, 777), seed=3)
    assert_resampled(
        dsp.resample_poly(x, up, down, padtype=padtype), ss.resample_poly(x, up, down, axis=-1, padtype=padtype), 1e-12
    )


@pytest.mark.parametrize("cval", [0.0, 2.5, -1e3])
def test_constant_padding_with_cval(cval):
    x = signal(500, seed=4)
    assert_resampled(dsp.resample_poly(x, 25, 32, cval=cval), ss.resample_poly(x, 25, 32, cval=cval), 1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 63, 64, 65, 641])
@pytest.mark.parametrize("up, down", [(25, 32), (1, 5), (7, 3), (5, 1)])
@pytest.mark.parametrize("padtype", ["constant", "line", "mean"])
def test_signals_shorter_than_the_filter(n, up, down, padtype):
    """The filters have 20 * max(up, down) + 1 taps (641 for 25/32): shorter signals are all edge."""
    x = signal(n, seed=n)
    assert_resampled(
        dsp.resample_poly(x, up, down, padtype=padtype), ss.resample_poly(x, up, down, padtype=padtype), 1e-12
    )


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_any_axis(axis):
    x = signal((40, 37, 30), seed=5)
    assert_resampled(dsp.resample_poly(x, 4, 5, axis=axis), ss.resample_poly(x, 4, 5, axis=axis), 1e-12)


def test_any_strides_and_layouts():
    base = signal((6, 2001), seed=6)
    views = {
        "strided": (base[::2, ::3], -1),
        "reversed": (base[:, ::-1], -1),
        "transposed": (base.T, 0),
        "fortran": (np.asfortranarray(base), -1),
        "broadcast": (np.broadcast_to(base[:1], (4, 2001)), -1),
    }
    for name, (view, axis) in views.items():
        got = dsp.resample_poly(view, 25, 32, axis=axis)
        assert got.flags.c_contiguous, name
        assert_resampled(got, ss.resample_poly(view, 25, 32, axis=axis), 1e-12)


def test_integers_are_converted_and_equal_ratios_copy():
    x = (np.arange(3000) % 17).astype(np.int16)
    y = dsp.resample_poly(x, 2, 3)
    assert y.dtype == np.float64
    assert_resampled(y, ss.resample_poly(x.astype(np.float64), 2, 3), 1e-12)
    z = signal((2, 100), dtype=np.float32)
    same = dsp.resample_poly(z, 4, 4)
    assert same.dtype == np.float32 and same is not z
    np.testing.assert_array_equal(same, z)


#: scipy's windows without parameters; with them, in any case, and as values (taps).
PARAMETERLESS_WINDOWS = ("hann", "hamming", "blackman", "boxcar", "bartlett")
WINDOWS_WITH_PARAMETERS = [("tukey", 0.3), ("kaiser", 8.6), ("hamming",), ("KAISER", 2.0)]
WINDOW_VALUES = [[0.25, 0.5, 0.25], np.hanning(21), np.ones(4), [1.0]]


@pytest.mark.parametrize("window", [*PARAMETERLESS_WINDOWS, *WINDOWS_WITH_PARAMETERS, *WINDOW_VALUES])
def test_windows_and_taps_equal_scipy(window):
    x = signal((2, 1500), seed=7)
    # Names in any case (scipy takes lower case).
    reference = (window[0].lower(), *window[1:]) if isinstance(window, tuple) else window
    for up, down in ((5, 7), (3, 1), (1, 4)):
        expected = ss.resample_poly(x, up, down, axis=-1, window=reference)
        assert_resampled(dsp.resample_poly(x, up, down, window=window), expected, 1e-12)


@pytest.mark.parametrize("window", ["hann", "hamming", ("kaiser", 5.0), ("kaiser", 0.0), ("tukey", 0.5), "boxcar"])
@pytest.mark.parametrize("numtaps, cutoff", [(1, 0.5), (8, 0.5), (41, 0.2), (641, 1 / 32), (2001, 0.01)])
def test_fir_design_equals_firwin(window, numtaps, cutoff):
    np.testing.assert_allclose(
        _native.firwin(numtaps, cutoff, window), ss.firwin(numtaps, cutoff, window=window), rtol=1e-12, atol=1e-15
    )


def test_nan_and_inf_reach_the_outputs_they_reach_in_scipy():
    x = signal((4, 3000), seed=8)
    x[0, 1000] = np.nan
    x[1, :3] = np.nan
    x[2, -1] = np.inf
    x[3, 2000] = -np.inf
    for up, down in ((25, 32), (1, 5), (3, 2)):
        for padtype in ("constant", "line", "mean", "maximum"):
            with np.errstate(invalid="ignore"):
                expected = ss.resample_poly(x, up, down, axis=-1, padtype=padtype)
            got = dsp.resample_poly(x, up, down, padtype=padtype)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"{up}/{down} {padtype}")
            np.testing.assert_array_equal(np.isinf(got), np.isinf(expected), err_msg=f"{up}/{down} {padtype}")
            finite = np.isfinite(expected)
            np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12, atol=1e-10)


def test_one_hour_recording():
    """A 256 Hz hour of 20 channels to 200 Hz: the benchmark's case, in blocks across threads."""
    x = signal((20, 3600 * 256), seed=9, dtype=np.float32)
    got = dsp.resample_poly(x, 200, 256)
    assert got.shape == (20, 3600 * 200)
    idx = np.random.default_rng(0).integers(0, got.shape[1], 5000)
    expected = ss.resample_poly(x[:2].astype(np.float64), 200, 256, axis=-1)
    np.testing.assert_allclose(got[:2, idx], expected[:, idx], rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(up=0, down=3), ValueError, "up must be a positive integer"),
        (dict(up=3, down=0), ValueError, "down must be a positive integer"),
        (dict(up=-1, down=3), ValueError, "up must be a non-negative integer"),
        (dict(up=1.5, down=3), TypeError, "up must be an integer"),
        (dict(up=2, down="3"), TypeError, "down must be an integer"),
        (dict(up=2, down=2**64), ValueError, "down must be at most"),
        (dict(up=2, down=3, padtype="wrap"), ValueError, "padtype must be one of"),
        (dict(up=2, down=3, padtype=3), TypeError, "padtype must be a string"),
        (dict(up=2, down=3, padtype="mean", cval=1.0), ValueError, "cval has no effect"),
        (dict(up=2, down=3, cval="x"), TypeError, "cval must be a real number"),
        (dict(up=2, down=3, window="nonsense"), ValueError, "window"),
        (dict(up=2, down=3, window=("kaiser",)), ValueError, "Kaiser window needs its parameter beta"),
        (dict(up=2, down=3, window=("kaiser", np.nan)), ValueError, "beta must be finite"),
        (dict(up=2, down=3, window=("kaiser", 800.0)), ValueError, "beta must be finite and at most 700"),
        (dict(up=2, down=3, window=("hann", 2.0)), ValueError, "takes no parameter"),
        (dict(up=2, down=3, window=[]), ValueError, "window is empty"),
        (dict(up=2, down=3, window=[1.0, np.nan]), ValueError, "window .the FIR taps. contains NaN"),
        (dict(up=2, down=3, window=np.ones((2, 3))), ValueError, "window .the FIR taps. must be 1-D"),
        (dict(up=2, down=3, window=3), TypeError, "window must be a window name"),
        (dict(up=2, down=3, axis=1), ValueError, "axis=1 is out of bounds"),
        (dict(up=2, down=3, axis=0.5), TypeError, "axis must be an integer"),
    ],
)
def test_resample_poly_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        dsp.resample_poly(np.ones(100), **kwargs)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.zeros(0), ValueError, "x is empty"),
        (np.zeros((3, 0)), ValueError, "x is empty"),
        (np.zeros(5, complex), TypeError, "complex"),
        (np.array(["a"]), TypeError, "numeric"),
        (np.float64(3.0), ValueError, "out of bounds"),
    ],
)
def test_resample_poly_refuses_bad_signals(x, error, match):
    with pytest.raises(error, match=match):
        dsp.resample_poly(x, 2, 3)


@pytest.mark.parametrize("q", [2, 3, 5, 8, 13])
@pytest.mark.parametrize("n", [None, 7, 30])
@pytest.mark.parametrize("zero_phase", [True, False])
def test_decimate_fir_equals_scipy(q, n, zero_phase):
    x = signal((3, 4001), seed=q)
    expected = ss.decimate(x, q, n=n, ftype="fir", zero_phase=zero_phase)
    assert_resampled(dsp.decimate(x, q, n=n, zero_phase=zero_phase), expected, 1e-12)


@pytest.mark.parametrize("q", [1, 2, 5, 10])
@pytest.mark.parametrize("n", [None, 4])
def test_decimate_iir_equals_scipy(q, n):
    x = signal((2, 3000), seed=q)
    got = dsp.decimate(x, q, n=n, ftype="iir")
    np.testing.assert_allclose(got, ss.decimate(x, q, n=n, ftype="iir"), rtol=1e-10, atol=1e-10 * np.abs(x).max())


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("ftype", ["fir", "iir"])
def test_decimate_float32_and_any_axis(axis, ftype):
    x = signal((600, 700), seed=11, dtype=np.float32)
    got = dsp.decimate(x, 4, ftype=ftype, axis=axis)
    assert got.dtype == np.float32
    expected = ss.decimate(x.astype(np.float64), 4, ftype=ftype, axis=axis).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(q=1), ValueError, "q must be at least 2 with ftype='fir'"),
        (dict(q=0, ftype="iir"), ValueError, "q must be a positive integer"),
        (dict(q=2.5), TypeError, "q must be an integer"),
        (dict(q=2, ftype="kaiser"), ValueError, "ftype must be 'fir' or 'iir'"),
        (dict(q=2, ftype=None), ValueError, "ftype must be 'fir' or 'iir'"),
        (dict(q=2, ftype="iir", zero_phase=False), ValueError, "zero_phase=False with ftype='iir'"),
        (dict(q=2, ftype="iir", n=0), ValueError, "n .the order of the IIR filter. must be between 1 and 24"),
        (dict(q=2, n=-1), ValueError, "n must be a non-negative integer"),
        (dict(q=2, n=2**62), MemoryError, r"n=4611686018427387904 \(q=2\): cannot allocate"),
        (dict(q=2**50), MemoryError, r"q=1125899906842624 \(a filter of 20 q \+ 1 taps\): cannot allocate"),
        (dict(q=2**62), ValueError, "q=4611686018427387904 gives a filter of more than 2..64 - 1 taps"),
        (dict(q=2, n=2**64 - 1), ValueError, "n=18446744073709551615 gives a filter of more than"),
        (dict(q=2**64), ValueError, "q must be at most 2..64 - 1"),
        (dict(q=2, axis=3), ValueError, "axis=3 is out of bounds"),
    ],
)
def test_decimate_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        dsp.decimate(np.ones(200), **kwargs)


def test_decimate_iir_refuses_nan_and_short_signals():
    with pytest.raises(ValueError, match="NaN or inf"):
        dsp.decimate(np.r_[np.ones(100), np.nan, np.ones(100)], 2, ftype="iir")
    with pytest.raises(ValueError, match="samples"):
        dsp.decimate(np.ones(20), 2, ftype="iir")


@settings(max_examples=60, deadline=None)
@given(
    up=st.integers(1, 40),
    down=st.integers(1, 40),
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    n=st.integers(1, 300),
    dtype=st.sampled_from([np.float32, np.float64, np.int32]),
    padtype=st.sampled_from(PADTYPES),
    step=st.integers(1, 3),
    reverse=st.booleans(),
    data=st.data(),
)
def test_resample_poly_fuzz(up, down, shape, n, dtype, padtype, step, reverse, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    full = (rng.standard_normal((*shape, n * step)) * 20).astype(dtype)
    x = full[..., :: -step if reverse else step]
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    y = dsp.resample_poly(x, up, down, axis=axis, padtype=padtype)
    assert y.dtype == (np.float32 if dtype == np.float32 else np.float64)
    expected = ss.resample_poly(x.astype(np.float64), up, down, axis=axis, padtype=padtype)
    assert_resampled(y, expected.astype(y.dtype), 1e-6 if dtype == np.float32 else 1e-12)
