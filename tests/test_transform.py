"""clip_log and instance_normalize against their numpy definitions."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import dsp

LO, HI = math.exp(-6), math.exp(10)


def reference_clip_log(x, lo=LO, hi=HI, nan=-1.0):
    return np.log(np.clip(np.nan_to_num(x, nan=nan), lo, hi))


def reference_instance_normalize(x, axes, eps=1e-6):
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    std = x64.std(axis=axes, keepdims=True)
    return (x64 - mean) / (std + eps)


def spectrogram_like(shape, dtype, seed=0):
    """Kaggle-spectrogram-like values: log-normal power with NaN gaps, zeros and outliers."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.normal(0, 3, shape)).astype(dtype)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 20), replace=False)
    flat[idx[0::4]] = np.nan
    flat[idx[1::4]] = 0
    flat[idx[2::4]] = np.inf
    flat[idx[3::4]] = -np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_log_equals_numpy(dtype):
    x = spectrogram_like((4, 300, 400), dtype)
    y = dsp.clip_log(x)
    expected = reference_clip_log(x)
    assert y.dtype == dtype and y.shape == x.shape
    rtol = 2e-7 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol)


def test_clip_log_custom_bounds_and_fill():
    x = spectrogram_like((50, 30), np.float64, seed=1)
    y = dsp.clip_log(x, lo=0.5, hi=2.0, nan=1.5)
    np.testing.assert_allclose(y, reference_clip_log(x, 0.5, 2.0, 1.5), rtol=1e-15, atol=1e-16)
    assert y.min() >= math.log(0.5) and y.max() <= math.log(2.0)


def test_clip_log_in_place_and_into_out():
    x = spectrogram_like((64, 100), np.float32, seed=2)
    expected = reference_clip_log(x)
    out = np.empty_like(x)
    assert dsp.clip_log(x, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=2e-7, atol=2e-7)
    assert dsp.clip_log(x, out=x) is x
    np.testing.assert_allclose(x, expected, rtol=2e-7, atol=2e-7)


def test_clip_log_non_contiguous_and_empty():
    x = spectrogram_like((40, 60), np.float64, seed=3)[::3, ::-2]
    np.testing.assert_allclose(dsp.clip_log(x), reference_clip_log(x), rtol=1e-15)
    empty = np.zeros((0, 5), np.float32)
    assert dsp.clip_log(empty).shape == (0, 5)


#: Bad clip_log parameters (shared by clip_log_normalize): (kwargs, error, message).
BAD_CLIP_PARAMETERS = [
    ({"lo": 0.0}, ValueError, "lo must be positive"),
    ({"lo": 2.0, "hi": 1.0}, ValueError, "lo must not exceed hi"),
    ({"nan": float("nan")}, ValueError, "nan must be finite"),
    ({"hi": float("inf")}, ValueError, "hi must be finite"),
    ({"lo": 1e-60}, ValueError, "not representable as float32"),
    ({"lo": "x"}, TypeError, "lo must be a real number"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_CLIP_PARAMETERS)
def test_clip_log_refuses_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        dsp.clip_log(np.ones(4, np.float32), **kwargs)


def test_clip_log_refuses_bad_out_and_dtypes():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="shape"):
        dsp.clip_log(x, out=np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        dsp.clip_log(x, out=np.empty((3, 4), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        dsp.clip_log(x.T.copy().T, out=np.empty((4, 3), np.float32).T)
    with pytest.raises(TypeError, match="complex"):
        dsp.clip_log(np.ones(3, complex))
    with pytest.raises(TypeError, match="numeric"):
        dsp.clip_log(np.array([object()]))


@pytest.mark.parametrize("axes", [(-2, -1), (1, 2), 0, (0, 2), (-1,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_instance_normalize_equals_numpy(axes, dtype):
    x = (np.random.default_rng(4).standard_normal((5, 30, 40)) * 3 + 7).astype(dtype)
    y = dsp.instance_normalize(x, axes)
    assert y.dtype == dtype and y.shape == x.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, reference_instance_normalize(x, axes), rtol=rtol, atol=rtol)


def test_instance_normalize_non_contiguous_and_constant():
    x = np.random.default_rng(5).standard_normal((8, 50, 60))[:, ::2, ::-3]
    np.testing.assert_allclose(
        dsp.instance_normalize(x, (1, 2)), reference_instance_normalize(x, (1, 2)), rtol=1e-12, atol=1e-13
    )
    constant = np.full((2, 10), 3.0)
    np.testing.assert_array_equal(dsp.instance_normalize(constant, -1, eps=1e-6), 0.0)


@pytest.mark.parametrize(
    "x, axes, eps, error, match",
    [
        (np.full((2, 10), 3.0), -1, 0.0, ValueError, "instance 0 is constant"),
        (np.r_[1.0, np.nan, 2.0][None], -1, 1e-6, ValueError, "instance 0 contains NaN"),
        (np.ones((2, 3)), 2, 1e-6, ValueError, "axes=2 is out of bounds"),
        (np.ones((2, 3)), (1, -1), 1e-6, ValueError, "repeated axis"),
        (np.ones((2, 3)), (), 1e-6, ValueError, "at least one axis"),
        (np.ones((2, 3)), -1, -1.0, ValueError, "eps must be >= 0"),
        (np.ones((2, 0)), -1, 1e-6, ValueError, "empty"),
        (np.ones((2, 3), complex), -1, 1e-6, TypeError, "complex"),
    ],
)
def test_instance_normalize_refuses_bad_input(x, axes, eps, error, match):
    with pytest.raises(error, match=match):
        dsp.instance_normalize(x, axes, eps=eps)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
    lo_exp=st.floats(-20, 5),
    span=st.floats(0, 20),
    nan=st.floats(-5, 5),
    data=st.data(),
)
def test_transforms_fuzz(shape, dtype, lo_exp, span, nan, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = (rng.standard_normal(shape) * 1e3).astype(dtype)
    if x.ndim > 1 and data.draw(st.booleans()):
        x = x.swapaxes(0, -1)
    lo, hi = math.exp(lo_exp), math.exp(lo_exp + span)
    y = dsp.clip_log(x, lo=lo, hi=hi, nan=nan)
    expected = reference_clip_log(x.astype(np.float64) if dtype == np.int64 else x, lo, hi, nan)
    np.testing.assert_allclose(y, expected, rtol=3e-7, atol=3e-7 * max(1.0, abs(lo_exp) + span))
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, x.ndim - 1), min_size=1))))
    z = dsp.instance_normalize(x, axes, eps=1e-3)
    np.testing.assert_allclose(z, reference_instance_normalize(x, axes, 1e-3), rtol=1e-4, atol=1e-4)


def reference_clip_log_normalize(x, axes, lo=LO, hi=HI, nan=-1.0, eps=1e-6):
    """The numpy expression the fused kernel computes: the log in x's dtype, statistics in float64."""
    return reference_instance_normalize(reference_clip_log(x, lo, hi, nan), axes, eps)


@pytest.mark.parametrize("axes", [(-2, -1), (1, 2), 0, (0, 2), (-1,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_log_normalize_equals_numpy(axes, dtype):
    x = spectrogram_like((5, 30, 40), dtype, seed=6)
    y = dsp.clip_log_normalize(x, axes)
    assert y.dtype == dtype and y.shape == x.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, reference_clip_log_normalize(x, axes), rtol=rtol, atol=rtol)
    # The same values as the two calls it fuses.
    np.testing.assert_allclose(y, dsp.instance_normalize(dsp.clip_log(x), axes), rtol=rtol, atol=rtol)


def test_clip_log_normalize_large_instances_custom_parameters_and_non_contiguous():
    # Instances of several chunks of the kernel, and a partial one.
    x = spectrogram_like((3, 300, 401), np.float32, seed=7)
    kwargs = dict(lo=0.01, hi=1e3, nan=0.5, eps=1e-3)
    expected = reference_clip_log_normalize(x, (1, 2), 0.01, 1e3, 0.5, 1e-3)
    np.testing.assert_allclose(dsp.clip_log_normalize(x, (1, 2), **kwargs), expected, rtol=1e-5, atol=1e-5)
    view = spectrogram_like((4, 50, 60), np.float64, seed=8)[:, ::2, ::-3]
    np.testing.assert_allclose(
        dsp.clip_log_normalize(view, (1, 2)), reference_clip_log_normalize(view, (1, 2)), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("axes", [(-2, -1), (0, 1)])
def test_clip_log_normalize_into_out_and_in_place(axes):
    x = spectrogram_like((6, 20, 30), np.float32, seed=9)
    expected = reference_clip_log_normalize(x, axes)
    out = np.empty_like(x)
    assert dsp.clip_log_normalize(x, axes, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert dsp.clip_log_normalize(x, axes, out=x) is x
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    BAD_CLIP_PARAMETERS
    + [
        ({"eps": -1.0}, ValueError, "eps must be >= 0"),
        ({"eps": float("inf")}, ValueError, "eps must be finite"),
        ({"axes": 3}, ValueError, "axes=3 is out of bounds"),
        ({"axes": (1, -1)}, ValueError, "repeated axis"),
        ({"axes": ()}, ValueError, "at least one axis"),
        ({"out": np.empty((4, 3), np.float32)}, ValueError, "out must have x's shape"),
        ({"out": np.empty((3, 4), np.float64)}, ValueError, "out must have x's shape"),
        ({"out": np.empty((4, 3), np.float32).T}, ValueError, "out must be C-contiguous"),
        ({"out": [[0.0] * 4] * 3}, TypeError, "out must be a numpy array"),
    ],
)
def test_clip_log_normalize_refuses_bad_input(kwargs, error, match):
    kwargs = {"axes": -1, **kwargs}
    with pytest.raises(error, match=match):
        dsp.clip_log_normalize(np.ones((3, 4), np.float32) * np.arange(1, 5, dtype=np.float32), **kwargs)


def test_clip_log_normalize_refuses_bad_arrays():
    # Every value clipped to lo: a constant instance has no spread to divide by.
    with pytest.raises(ValueError, match="instance 1 is constant"):
        dsp.clip_log_normalize(np.r_[[1.0, 2.0], [0.0, -1.0]].reshape(2, 2), -1, eps=0.0)
    with pytest.raises(ValueError, match="x is empty"):
        dsp.clip_log_normalize(np.ones((2, 0)), -1)
    with pytest.raises(TypeError, match="complex"):
        dsp.clip_log_normalize(np.ones((2, 3), complex), -1)
    with pytest.raises(ValueError, match="at least one dimension"):
        dsp.clip_log_normalize(np.float64(3.0), -1)


def test_to_float32_widens_every_float16_as_numpy_does():
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256)
    expected = every.astype(np.float32)
    for view in (every, every.T, every[::3, 1::2], every[5, 7], every[:0]):  # layouts, 0-d, empty
        got = dsp.to_float32(view)
        assert got.dtype == np.float32 and got.shape == view.shape and got.flags.c_contiguous
        want = np.asarray(view).astype(np.float32)
        assert np.array_equal(got, want, equal_nan=True)
        finite = ~np.isnan(want)
        assert np.array_equal(got[finite].view(np.uint32), want[finite].view(np.uint32))  # -0.0 kept
    assert np.isnan(dsp.to_float32(every)).sum() == np.isnan(expected).sum() == 2 * 1023
    x32 = np.ones(3, np.float32)
    assert dsp.to_float32(x32) is x32
    assert dsp.to_float32([1.5, 2.25]).dtype == np.float32


def test_instance_normalize_of_spreads_near_the_float64_limits():
    # Squared deviations below float64's range: not a constant instance with eps=0.
    tiny = np.array([[1e-200, 2e-200, 4e-200]])
    np.testing.assert_allclose(
        dsp.instance_normalize(tiny, -1, eps=0.0), reference_instance_normalize(tiny * 1e200, -1, 0.0), rtol=1e-12
    )
    # Beyond it: the finite values of the definition.
    huge = np.array([[1.5e308, -1.5e308, 1.5e308, -1.5e308], [-1e308, 0.0, 1.0, 2.0]])
    expected = reference_instance_normalize(huge / 1e300, -1, 0.0)
    np.testing.assert_allclose(dsp.instance_normalize(huge, -1, eps=0.0), expected, rtol=1e-12)
    np.testing.assert_allclose(dsp.clip_log_normalize(np.full((1, 4), 5.0), -1, eps=1e-300), np.zeros((1, 4)))
