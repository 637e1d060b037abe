"""The fuzz worker: hypothesis over every entry point of ``hms.dsp``, in a process of its own.

    python tests/_fuzz_worker.py [NAME ...]      # every entry point by default

``tests/test_fuzz_dsp.py`` runs it in a child process, so that an abort (SIGABRT, a segfault)
is a failed test instead of a crashed pytest. For each entry point it checks:

- with arbitrary arguments (wrong dtypes: int, bool, complex, object, float16; NaN, inf, huge and
  subnormal values; zero, negative, huge and non-integer sizes; strided, reversed, Fortran and
  zero-stride layouts, some of them larger than any memory): no abort, no ``PanicException``;
  any exception is a ``ValueError``, ``TypeError`` or ``MemoryError`` whose message names one of
  the function's arguments; outputs that are bounded by definition are finite;
- with valid arguments: parity with the reference (scipy, librosa, numpy, or exact arithmetic),
  within the tolerances of the parity tests.

Examples are bounded and derandomized (the same examples on every run, seconds in CI);
``HMS_FUZZ_EXAMPLES`` scales their number and ``HMS_FUZZ_RANDOM=1`` draws fresh ones (for
exploring). Prints one line per check and exits 1 on a failure.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.signal as ss
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms import _native, dsp

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import librosa

EXAMPLES = int(os.environ.get("HMS_FUZZ_EXAMPLES", "50"))
#: HMS_FUZZ_RANDOM=1: fresh random examples on each run (exploration); by default the same ones.
RANDOM = os.environ.get("HMS_FUZZ_RANDOM", "") not in ("", "0")


def fuzz_settings(scale: float = 1.0) -> settings:
    return settings(
        max_examples=max(1, round(EXAMPLES * scale)),
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )


#: Entry point name -> its checks (each a hypothesis test, or a plain function).
CHECKS: dict[str, list[Callable[[], None]]] = {}


def checks(*names: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        for name in names:
            CHECKS.setdefault(name, []).append(fn)
        return fn

    return register


# --- calling with arbitrary arguments ------------------------------------------------------------

ALLOWED = (ValueError, TypeError, MemoryError)


def argument_names(fn: Any) -> set[str]:
    """The parameter names of ``fn`` (a function or a class's ``__init__``)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    return {p for p in inspect.signature(target).parameters if p not in ("self", "args", "kwargs")}


def named(message: str, names: set[str]) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def attempt(fn: Callable[..., Any], names: set[str], *args: Any, **kwargs: Any) -> tuple[Any, BaseException | None]:
    """``fn(*args, **kwargs)``: its result, or an allowed exception that names an argument."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs), None
    except BaseException as e:  # noqa: B036 - a PanicException (BaseException) is a failure
        if not isinstance(e, Exception):
            raise AssertionError(f"{type(e).__name__} is not an Exception: {e}") from e
        if not isinstance(e, ALLOWED):
            raise AssertionError(f"{type(e).__name__} (only {ALLOWED} are expected): {e}") from e
        if not named(str(e), names):
            raise AssertionError(f"{type(e).__name__} names none of {sorted(names)}: {e}") from e
        return None, e


def finite(a: Any) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a))))


# --- values --------------------------------------------------------------------------------------

INF, NAN = float("inf"), float("nan")
#: Sizes beyond any address space (whatever the system's overcommit policy), fast to refuse.
HUGE_SIZES = [2**50, 2**62, 2**63, 2**64, 2**70]
WEIRD_INTS: list[Any] = [-1, 0, 1, 2, 3, 5, 8, 64, *HUGE_SIZES, 1.5, NAN, True, None, "4", np.int64(16)]
WEIRD_FLOATS: list[Any] = [0.0, -1.0, 1.0, 0.5, 1e-320, 5e-324, 1e308, -1e308, INF, -INF, NAN, 10**400, 7]
WEIRD_FLOATS += ["x", None, 1 + 1j, np.float32(2.5), -0.0]
WINDOWS: list[Any] = ["hann", "hamming", "blackman", "boxcar", "bartlett", "tukey", ("tukey", 0.3), ("tukey", NAN)]
WINDOWS += [("kaiser", 4.0), "cosine", "nonsense", ("hann", 2.0), 3, None, np.hanning(16), np.array([np.nan, 1.0])]
DTYPES = [np.float64, np.float32, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex128, object]
SCALES = [1.0, 40.0, 1e-3, 1e18, 1e150, 1e300, 1e-300, 1e-310]
LAYOUTS = ["c", "f", "strided", "reversed", "broadcast"]


def zero_strided(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A read-only view of one value with ``shape``: as many elements as asked, no memory."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape, (0,) * len(shape), writeable=False)


#: Arrays that stand for more values than any memory holds (2^60 and more bytes).
MONSTERS = [zero_strided((2**26, 20, 2**26)), zero_strided((2**40, 2**20), np.float32), zero_strided((2**58,))]


@st.composite
def arrays(
    draw: Any,
    shapes: Any,
    dtypes: list[Any] = DTYPES,
    scales: list[float] = SCALES,
    special: bool = True,
    layouts: list[str] = LAYOUTS,
) -> np.ndarray:
    """Arrays of a drawn shape, dtype, magnitude and layout, with NaN/inf/zeros sprinkled."""
    shape = tuple(draw(shapes))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(scales))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layout = draw(st.sampled_from(layouts))
    base_shape = shape
    if layout == "strided" and shape:
        base_shape = (*shape[:-1], 2 * shape[-1])
    elif layout == "broadcast" and shape:
        base_shape = (1, *shape[1:])
    x = rng.standard_normal(base_shape) * scale + rng.standard_normal() * scale
    if special and x.size:
        kind = draw(st.sampled_from(["none", "none", "nan", "inf", "zeros", "mixed"]))
        flat = x.reshape(-1)
        idx = rng.integers(0, flat.size, max(1, flat.size // 10))
        if kind == "nan":
            flat[idx] = np.nan
        elif kind == "inf":
            flat[idx] = np.inf
        elif kind == "zeros":
            flat[idx] = 0.0
        elif kind == "mixed":
            flat[idx] = rng.choice([np.nan, np.inf, -np.inf, 0.0, 1e308, -1e308], idx.size)
    with np.errstate(all="ignore"):
        if dtype in (np.int32, np.int64, np.uint8):
            info = np.iinfo(dtype)
            x = np.clip(np.nan_to_num(x), info.min, info.max).astype(dtype)
        elif dtype is np.bool_:
            x = x > 0
        elif dtype is np.complex128:
            x = x + 1j
        elif dtype is object:
            x = x.astype(object)
        else:
            x = x.astype(dtype)
    if layout == "f":
        x = np.asfortranarray(x)
    elif layout == "strided" and shape:
        x = x[..., ::2]
    elif layout == "reversed" and shape:
        x = x[..., ::-1]
    elif layout == "broadcast" and shape:
        x = np.broadcast_to(x, shape)
    return x


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 40, last: Any = None) -> Any:
    """Shape lists; ``last`` (a strategy) draws the last axis."""
    lead = st.lists(st.integers(min_side, max_side), min_size=max(0, min_dims - (last is not None)), max_size=max_dims)
    if last is None:
        return lead
    return st.tuples(lead, last).map(lambda t: [*t[0][: max_dims - 1], t[1]])


def anything(values: list[Any], array_strategy: Any = None, monsters: bool = True) -> Any:
    """One of ``values``, or (if given) an array of the strategy or (``monsters``) a monster."""
    options = [st.sampled_from(values)]
    if array_strategy is not None:
        options.append(array_strategy)
        if monsters:
            options.append(st.sampled_from(MONSTERS))
    return st.one_of(*options)


def valid_signal(shape: tuple[int, ...], dtype: Any, seed: int, scale: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + 5).astype(dtype)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float, floor: float = 0.0) -> None:
    """As tests/test_spectral.py: rtol, with an absolute floor at rtol * 1e-3 of the largest
    magnitude (at least four float32 epsilons of it for float32 references)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    own = 4 * float(np.finfo(expected.dtype).eps) * scale if expected.dtype in (np.float32, np.complex64) else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=max(rtol * 1e-3 * scale, floor, own))


# --- filters -------------------------------------------------------------------------------------

BTYPES = ["lowpass", "highpass", "bandpass", "bandstop", "low", "bp", "pass", "notch", 3, None]


@checks("butter_sos")
@fuzz_settings(2)
@given(
    order=anything([*WEIRD_INTS, 4, 24, 25]),
    cutoff=st.one_of(anything(WEIRD_FLOATS), st.lists(anything([*WEIRD_FLOATS, 10.0, 30.0]), max_size=3)),
    btype=st.sampled_from(BTYPES),
    fs=anything([*WEIRD_FLOATS, 200.0]),
)
def butter_sos_any(order: Any, cutoff: Any, btype: Any, fs: Any) -> None:
    sos, err = attempt(dsp.butter_sos, argument_names(dsp.butter_sos), order, cutoff, btype, fs)
    if err is None:
        wn = np.ravel(np.asarray(cutoff, dtype=np.float64))
        wn = float(wn[0]) if wn.size == 1 else wn  # one frequency given as [f], as dsp takes it
        np.testing.assert_array_equal(sos, ss.butter(int(order), wn, btype, fs=float(fs), output="sos"))


@checks("notch_sos")
@fuzz_settings()
@given(freq=anything([*WEIRD_FLOATS, 50.0]), q=anything([*WEIRD_FLOATS, 30.0]), fs=anything([*WEIRD_FLOATS, 200.0]))
def notch_sos_any(freq: Any, q: Any, fs: Any) -> None:
    sos, err = attempt(dsp.notch_sos, argument_names(dsp.notch_sos), freq, q, fs)
    if err is None:
        np.testing.assert_array_equal(sos, ss.tf2sos(*ss.iirnotch(freq, q, fs=fs)))


def designs() -> Any:
    """Valid second-order sections (Butterworth of any type and order, or a notch)."""
    butter = st.builds(
        lambda order, btype, lo, width: dsp.butter_sos(
            order, (lo, lo + width) if btype in ("bandpass", "bandstop") else lo, btype, 200.0
        ),
        st.integers(1, 8),
        st.sampled_from(["lowpass", "highpass", "bandpass", "bandstop"]),
        st.floats(0.5, 50.0),
        st.floats(1.0, 40.0),
    )
    # Stable notches: a bandwidth f / q beyond Nyquist makes scipy's design unstable.
    notch = st.builds(lambda f, q: dsp.notch_sos(f, q, 200.0), st.floats(1.0, 90.0), st.floats(2.0, 60.0))
    return st.one_of(butter, notch)


SOS_ANY = st.one_of(
    designs(), arrays(shapes(0, 3, 0, 7), scales=[1.0, 1e300]), st.sampled_from([[[1, 0, 0, 1, 0, 0]], "x"])
)


def scipy_padlen(sos: np.ndarray) -> int:
    ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


@checks("sos_padlen", "sosfilt_zi")
@fuzz_settings()
@given(sos=SOS_ANY)
def sos_helpers_any(sos: Any) -> None:
    padlen, err = attempt(dsp.sos_padlen, {"sos"}, sos)
    zi, err2 = attempt(dsp.sosfilt_zi, {"sos"}, sos)
    assert (err is None) == (err2 is None), (err, err2)
    if err is None:
        sos64 = np.asarray(sos, dtype=np.float64)
        assert padlen == scipy_padlen(sos64)
        np.testing.assert_allclose(zi, ss.sosfilt_zi(sos64), rtol=1e-9, atol=1e-12)


@checks("sosfiltfilt")
@fuzz_settings(2)
@given(
    sos=SOS_ANY,
    x=anything([None, "x", 3.0], arrays(shapes(0, 3, 0, 70), scales=[1.0, 40.0, 1e-300, 1e300])),
    axis=anything([-1, 0, 1, 2, -3, 5, 1.5, None, 2**70]),
)
def sosfiltfilt_any(sos: Any, x: Any, axis: Any) -> None:
    y, err = attempt(dsp.sosfiltfilt, argument_names(dsp.sosfiltfilt), sos, x, axis)
    if err is None and isinstance(x, np.ndarray) and np.asarray(sos).dtype != object:
        assert y.shape == x.shape and y.dtype == (np.float32 if x.dtype in (np.float32, np.float16) else np.float64)


@checks("sosfiltfilt")
@fuzz_settings(2)
@given(
    sos=designs(),
    shape=shapes(1, 3, 1, 4, last=st.integers(60, 400)),
    axis=st.integers(-3, 2),
    dtype=st.sampled_from([np.float32, np.float64, np.int16]),
    layout=st.sampled_from(["c", "f", "strided", "reversed"]),
    seed=st.integers(0, 2**31),
)
def sosfiltfilt_parity(sos: np.ndarray, shape: list[int], axis: int, dtype: Any, layout: str, seed: int) -> None:
    x = valid_signal(tuple(shape), dtype, seed)
    x = {"c": x, "f": np.asfortranarray(x), "strided": x[..., ::2], "reversed": x[..., ::-1]}[layout]
    if not -x.ndim <= axis < x.ndim:
        axis = -1
    y, err = attempt(dsp.sosfiltfilt, {"x", "axis", "sos"}, sos, x, axis)
    if x.shape[axis] <= scipy_padlen(sos):
        assert err is not None and "samples" in str(err)
        return
    assert err is None, err
    with np.errstate(over="ignore"):
        # Rounded to the output's type: an unstable filter may leave float32's range (inf).
        expected = ss.sosfiltfilt(sos, x.astype(np.float64), axis=axis).astype(y.dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-10
    # Sections of order up to 16 round at 1e-12 of the peak (test_filter.py's tolerance, within
    # a factor of 10 for these higher orders).
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * 1e-1 * float(np.abs(expected).max()))


# --- resampling ----------------------------------------------------------------------------------

RESAMPLE_WINDOWS: list[Any] = [("kaiser", 5.0), "hamming", "hann", ("tukey", 0.3), ("hamming",), ("kaiser", NAN)]
RESAMPLE_WINDOWS += [("kaiser", 1e4), ("kaiser",), "nonsense", ("hann", 2.0), 3, None, [0.25, 0.5, 0.25], []]
RESAMPLE_WINDOWS += [np.hanning(9), np.array([np.nan, 1.0]), np.ones((2, 2)), [1.0], zero_strided((2**58,))]
PADTYPES = ["constant", "line", "mean", "median", "minimum", "maximum", "wrap", "edge", 3, None]


@checks("resample_poly")
@fuzz_settings(2)
@given(
    x=anything([None, "x", 3.0], arrays(shapes(0, 3, 0, 40), scales=[1.0, 40.0, 1e-300, 1e300])),
    up=anything([*WEIRD_INTS, 25, 200]),
    down=anything([*WEIRD_INTS, 32, 256]),
    axis=anything([-1, 0, 1, 2, -3, 5, 1.5, None, 2**70]),
    window=st.sampled_from(RESAMPLE_WINDOWS),
    padtype=st.sampled_from(PADTYPES),
    cval=st.sampled_from([None, None, 0.0, 2.5, NAN, "x"]),
)
def resample_poly_any(x: Any, up: Any, down: Any, axis: Any, window: Any, padtype: Any, cval: Any) -> None:
    y, err = attempt(dsp.resample_poly, argument_names(dsp.resample_poly), x, up, down, axis, window, padtype, cval)
    if err is None and isinstance(x, np.ndarray):
        ax = axis % x.ndim
        g = math.gcd(int(up), int(down))
        assert y.shape[ax] == -(-x.shape[ax] * (int(up) // g) // (int(down) // g))
        assert y.dtype == (np.float32 if x.dtype in (np.float32, np.float16) else np.float64)


@checks("resample_poly")
@fuzz_settings(2)
@given(
    up=st.integers(1, 30),
    down=st.integers(1, 30),
    shape=shapes(1, 3, 1, 4, last=st.integers(1, 400)),
    axis=st.integers(-3, 2),
    dtype=st.sampled_from([np.float32, np.float64, np.int16]),
    layout=st.sampled_from(["c", "f", "strided", "reversed"]),
    window=st.sampled_from([("kaiser", 5.0), "hamming", "hann", ("tukey", 0.5), [0.2, 0.6, 0.2], np.hanning(31)]),
    padtype=st.sampled_from(["constant", "line", "mean", "median", "minimum", "maximum"]),
    cval=st.sampled_from([None, 3.0]),
    gaps=st.booleans(),
    seed=st.integers(0, 2**31),
)
def resample_poly_parity(
    up: int,
    down: int,
    shape: list[int],
    axis: int,
    dtype: Any,
    layout: str,
    window: Any,
    padtype: str,
    cval: Any,
    gaps: bool,
    seed: int,
) -> None:
    x = valid_signal(tuple(shape), np.float64, seed)
    if gaps and dtype != np.int16:
        x.reshape(-1)[np.random.default_rng(seed).integers(0, x.size, 2)] = np.nan
    x = x.astype(dtype)
    x = {"c": x, "f": np.asfortranarray(x), "strided": x[..., ::2], "reversed": x[..., ::-1]}[layout]
    if not -x.ndim <= axis < x.ndim:
        axis = -1
    cval = cval if padtype == "constant" else None
    y, err = attempt(dsp.resample_poly, {"x"}, x, up, down, axis, window, padtype, cval)
    assert err is None, err
    with np.errstate(invalid="ignore"):
        expected = ss.resample_poly(
            x.astype(np.float64), up, down, axis=axis, window=window, padtype=padtype, cval=cval
        )
    expected = expected.astype(y.dtype)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    rtol = 1e-6 if y.dtype == np.float32 else 1e-12
    scale = float(np.nanmax(np.abs(expected), initial=1.0))
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * scale)


@checks("decimate")
@fuzz_settings(2)
@given(
    x=anything([None, "x", 3.0], arrays(shapes(0, 3, 0, 60), scales=[1.0, 40.0, 1e-300, 1e300])),
    q=anything([*WEIRD_INTS, 4, 13]),
    n=anything([None, None, *WEIRD_INTS]),
    ftype=st.sampled_from(["fir", "iir", "FIR", "kaiser", None, 3]),
    axis=anything([-1, 0, 1, 5, 1.5, None]),
    zero_phase=st.sampled_from([True, False, None, "yes"]),
)
def decimate_any(x: Any, q: Any, n: Any, ftype: Any, axis: Any, zero_phase: Any) -> None:
    y, err = attempt(dsp.decimate, argument_names(dsp.decimate), x, q, n, ftype, axis, zero_phase)
    if err is None and isinstance(x, np.ndarray):
        ax = axis % x.ndim
        assert y.shape[ax] == -(-x.shape[ax] // int(q))
        assert y.dtype == (np.float32 if x.dtype in (np.float32, np.float16) else np.float64)


@checks("decimate")
@fuzz_settings(2)
@given(
    q=st.integers(1, 13),
    n=st.sampled_from([None, None, 1, 6, 31]),
    ftype=st.sampled_from(["fir", "iir"]),
    zero_phase=st.booleans(),
    shape=shapes(1, 2, 1, 3, last=st.integers(100, 600)),
    axis=st.integers(-2, 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**31),
)
def decimate_parity(
    q: int, n: Any, ftype: str, zero_phase: bool, shape: list[int], axis: int, dtype: Any, seed: int
) -> None:
    x = valid_signal(tuple(shape), dtype, seed)
    if not -x.ndim <= axis < x.ndim:
        axis = -1
    y, err = attempt(dsp.decimate, argument_names(dsp.decimate), x, q, n, ftype, axis, zero_phase)
    if ftype == "fir" and q == 1 or ftype == "iir" and (not zero_phase or n is not None and n > 24):
        assert err is not None
        return
    if ftype == "iir" and err is not None:
        # sosfiltfilt's padding: a signal no longer than it is refused, as scipy refuses it.
        assert "samples" in str(err), err
        return
    assert err is None, err
    expected = ss.decimate(x.astype(np.float64), q, n=n, ftype=ftype, axis=axis, zero_phase=zero_phase).astype(y.dtype)
    rtol = 1e-6 if y.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * float(np.abs(expected).max()))


# --- threads -------------------------------------------------------------------------------------


@checks("set_num_threads", "get_num_threads")
@fuzz_settings()
@given(n=anything([*WEIRD_INTS, 1, 2, 4, _native.max_num_threads(), _native.max_num_threads() + 1, 10**6]))
def threads_any(n: Any) -> None:
    try:
        _, err = attempt(dsp.set_num_threads, {"n"}, n)
        if err is None:
            expected = n if n is not None else dsp.get_num_threads()
            assert dsp.get_num_threads() == expected
            assert 1 <= dsp.get_num_threads() <= _native.max_num_threads()
    finally:
        dsp.set_num_threads(None)


# --- element-wise and per-instance transforms ----------------------------------------------------

CLIP = math.exp(-6), math.exp(10), -1.0


@checks("to_float32")
@fuzz_settings(2)
@given(x=anything([None, "x", 3, [1, 2], [[1], [2, 3]]], arrays(shapes(0, 3, 0, 30))))
def to_float32_any(x: Any) -> None:
    y, err = attempt(dsp.to_float32, {"x"}, x)
    if err is None and np.size(y) < 10**7:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = np.asarray(x, dtype=np.float32)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, expected)


@checks("clip_log")
@fuzz_settings(2)
@given(
    x=anything([None, "x", [1.0, -2.0]], arrays(shapes(0, 3, 0, 30))),
    lo=anything([*WEIRD_FLOATS, CLIP[0]]),
    hi=anything([*WEIRD_FLOATS, CLIP[1]]),
    nan=anything([*WEIRD_FLOATS, -1.0]),
    use_out=st.booleans(),
)
def clip_log_any(x: Any, lo: Any, hi: Any, nan: Any, use_out: bool) -> None:
    out = None
    if use_out and isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) and x.size < 10**6:
        out = np.empty_like(x, order="C")
    y, err = attempt(dsp.clip_log, argument_names(dsp.clip_log), x, lo, hi, nan, out=out)
    if err is None:
        assert finite(y), "clip_log returned NaN or inf"
        x_ = np.asarray(x)
        dtype = np.float32 if x_.dtype in (np.float32, np.float16) else np.float64
        x_ = x_.astype(dtype)
        lo_, hi_, nan_ = (float(dtype(v)) for v in (lo, hi, nan))
        with np.errstate(all="ignore"):
            expected = np.log(np.clip(np.nan_to_num(x_, nan=nan_), dtype(lo_), dtype(hi_)))
        rtol = 2e-7 if dtype == np.float32 else 1e-15
        np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol)


def reference_instance_normalize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """(x - mean) / (std + eps) over ``axes`` in float64, on values scaled by a power of two per
    instance (exact, and the same value): finite wherever the mathematical result is."""
    x64 = x.astype(np.float64)
    big = np.max(np.abs(x64), axis=axes, keepdims=True)
    _, e = np.frexp(np.where(big > 0, big, 1.0))
    e = np.clip(e, -1000, 1000)
    xs = np.ldexp(x64, -e)
    # Within [min, max], as the mean is (numpy's sum of equal values rounds).
    mean = np.clip(
        xs.mean(axis=axes, keepdims=True), xs.min(axis=axes, keepdims=True), xs.max(axis=axes, keepdims=True)
    )
    std = np.sqrt(((xs - mean) ** 2).mean(axis=axes, keepdims=True))
    with np.errstate(all="ignore"):
        dev = xs - mean
        # eps scaled along may underflow to 0 where std is 0 too: those deviations are 0.
        return np.where(dev == 0, 0.0, dev / (std + np.ldexp(eps, -e)))


def instance_axes(ndim: int) -> Any:
    return st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim, unique_by=lambda a: a % ndim)


@checks("instance_normalize", "clip_log_normalize")
@fuzz_settings(2)
@given(
    x=anything([None, "x", 2.0], arrays(shapes(0, 3, 0, 20))),
    axes=anything([-1, 0, 1, (1, 2), (0, 0), (), 5, None, "a", 1.5]),
    eps=anything([*WEIRD_FLOATS, 1e-6, 2.3e-308]),
    which=st.sampled_from(["instance", "clip", "clip_out"]),
)
def normalize_any(x: Any, axes: Any, eps: Any, which: str) -> None:
    if which == "instance":
        y, err = attempt(dsp.instance_normalize, argument_names(dsp.instance_normalize), x, axes, eps)
    else:
        out = None
        if which == "clip_out" and isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) and x.size < 10**6:
            out = np.empty_like(x, order="C")
        y, err = attempt(dsp.clip_log_normalize, argument_names(dsp.clip_log_normalize), x, axes, eps=eps, out=out)
    if err is None:
        assert finite(y), f"{which} of finite input returned NaN or inf"


@checks("instance_normalize", "clip_log_normalize")
@fuzz_settings(2)
@given(
    data=st.data(),
    shape=shapes(1, 3, 1, 12),
    dtype=st.sampled_from([np.float64, np.float32, np.int32]),
    scale=st.sampled_from([1.0, 1e-3, 1e150, 1e300, 1e-200, 1e-310]),
    eps=st.sampled_from([0.0, 1e-6, 1e-3, 2.2250738585072014e-308, 1e300]),
    layout=st.sampled_from(["c", "f", "reversed"]),
    seed=st.integers(0, 2**31),
)
def normalize_parity(data: Any, shape: list[int], dtype: Any, scale: float, eps: float, layout: str, seed: int) -> None:
    x = valid_signal(tuple(shape), np.float64, seed, scale=scale)
    with np.errstate(all="ignore"):
        x = x.astype(dtype)
    if dtype == np.float32 and not finite(x):
        return
    x = {"c": x, "f": np.asfortranarray(x), "reversed": x[..., ::-1]}[layout]
    axes = tuple(a % x.ndim for a in data.draw(instance_axes(x.ndim)))
    y, err = attempt(dsp.instance_normalize, {"x", "axes", "eps"}, x, axes, eps)
    constant = np.ptp(x.astype(np.float64), axis=axes) == 0
    if err is not None:
        assert eps == 0.0 and np.any(constant) and "constant" in str(err), err
    else:
        assert finite(y), "instance_normalize of finite input returned NaN or inf"
        expected = reference_instance_normalize(x, axes, eps)
        rtol = 1e-5 if y.dtype == np.float32 else 1e-11
        np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol)
    z, err = attempt(dsp.clip_log_normalize, {"x", "axes", "eps"}, x, axes, eps=eps)
    if err is None:
        logs = dsp.clip_log(x)
        expected = reference_instance_normalize(logs, axes, eps)
        rtol = 1e-5 if z.dtype == np.float32 else 1e-11
        np.testing.assert_allclose(z, expected, rtol=rtol, atol=rtol)
    else:
        assert eps == 0.0 and "constant" in str(err), err


# --- running statistics --------------------------------------------------------------------------


def exact_moments(values: np.ndarray, ddof: int) -> tuple[float, float]:
    """The mean and variance of float64 ``values`` (no NaN) in exact rational arithmetic, rounded
    to float64 (inf beyond its range)."""
    fr = [Fraction(float(v)) for v in values]
    n = len(fr)
    mean = sum(fr) / n
    if n - ddof <= 0:
        return float(mean), math.nan
    var = sum((v - mean) ** 2 for v in fr) / (n - ddof)
    try:
        return float(mean), float(var)
    except OverflowError:
        return float(mean), math.inf


@checks("RunningStats")
@fuzz_settings(2)
@given(
    # No monsters: per channel, a zero-stride view of 2^26 channels is a legitimate (if absurd)
    # request for 2^26 summaries; the global update of one is checked below.
    chunks=st.lists(
        anything(
            [None, "x", 3.0, [1.0, 2.0]],
            arrays(shapes(0, 3, 0, 6), scales=[1.0, 1e6, 1e150, 1e300, 1e-300]),
            monsters=False,
        ),
        min_size=1,
        max_size=4,
    ),
    axis=anything([None, 0, 1, -1, 3, 1.5, "a"]),
    ddof=anything([0, 1, 2, -1, 1.5, True, None]),
)
def running_stats_any(chunks: list[Any], axis: Any, ddof: Any) -> None:
    names = {"x", "axis", "ddof", "other"}
    stats, err = attempt(dsp.RunningStats, names, axis, ddof)
    if err is not None:
        return
    for c in chunks:
        _, err = attempt(stats.update, names, c)
    values = [stats.count, stats.nan_count, stats.mean, stats.var, stats.std, stats.min, stats.max]
    counts = np.atleast_1d(stats.count)
    var = np.atleast_1d(stats.var)
    # A variance is a number >= 0 or inf wherever count > ddof: never NaN, never negative.
    assert np.all(~np.isnan(var[counts > stats.ddof])) and np.all(var[counts > stats.ddof] >= 0), values
    assert np.all(np.isfinite(np.atleast_1d(stats.mean)[counts > 0])), values
    restored = dsp.RunningStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(np.atleast_1d(restored.var), var)
    if stats.axis is None:
        for monster in MONSTERS:
            _, err = attempt(stats.update, {"x"}, monster)
            assert isinstance(err, MemoryError), err


@checks("RunningStats")
@fuzz_settings(2)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5),
    scale=st.sampled_from([1.0, 1e6, 1e-300, 1e150, 1e300, 1.5e308]),
    offset=st.sampled_from([0.0, 1.0, 1e8, -1e300]),
    nan_frac=st.sampled_from([0.0, 0.0, 0.3, 1.0]),
    ddof=st.integers(0, 2),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**31),
)
def running_stats_parity(
    sizes: list[int], scale: float, offset: float, nan_frac: float, ddof: int, dtype: Any, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        chunks = [(rng.standard_normal(n) * scale + offset).astype(dtype) for n in sizes]
    chunks = [np.where(rng.random(c.size) < nan_frac, np.nan, c).astype(dtype) for c in chunks]
    if not all(np.all(np.isfinite(c) | np.isnan(c)) for c in chunks):
        return  # float32 overflow made inf: refused, as tested above
    stats = dsp.RunningStats(ddof=ddof)
    for c in chunks:
        stats.update(c)
    values = np.concatenate(chunks).astype(np.float64)
    kept = values[~np.isnan(values)]
    assert stats.count == kept.size and stats.nan_count == values.size - kept.size
    if kept.size == 0:
        assert math.isnan(stats.mean) and math.isnan(stats.min)
        return
    mean, var = exact_moments(kept, ddof)
    big = float(np.max(np.abs(kept)))
    assert (stats.min, stats.max) == (kept.min(), kept.max())
    assert abs(stats.mean - mean) <= 1e-12 * big, (stats.mean, mean)
    if math.isnan(var):
        assert math.isnan(stats.var)
    elif math.isinf(var) or var > 1e300:
        # Near or beyond float64's range: inf (or a value that rounds close to the limit).
        assert stats.var == math.inf or abs(stats.var / var - 1) < 1e-9, (stats.var, var)
    else:
        assert stats.var != math.inf and abs(stats.std - math.sqrt(var)) <= 1e-10 * big, (stats.var, var)


# --- spectral ------------------------------------------------------------------------------------

LIBROSA_WINDOWS = ["hann", "hamming", "blackman", "boxcar", ("tukey", 0.25), ("kaiser", 5.0)]


@checks("get_window")
@fuzz_settings(2)
@given(window=st.sampled_from(WINDOWS), n=anything([*WEIRD_INTS, 1, 7, 16, 255]))
def get_window_any(window: Any, n: Any) -> None:
    w, err = attempt(dsp.get_window, {"window", "n"}, window, n)
    if err is None:
        assert finite(w) and w.shape == (n,)
        if isinstance(window, str | tuple):
            np.testing.assert_allclose(w, ss.get_window(window, n, fftbins=True), rtol=1e-13, atol=1e-15)


@checks("stft")
@fuzz_settings(2)
@given(
    x=anything([None, "x"], arrays(shapes(0, 3, 0, 40), scales=[1.0, 1e300, 1e-310])),
    n_fft=anything([*WEIRD_INTS, 16, 33]),
    hop_length=anything([*WEIRD_INTS, 4]),
    win_length=anything([*WEIRD_INTS, 16]),
    window=st.sampled_from(WINDOWS),
    center=st.sampled_from([True, False, 0, "yes"]),
    pad_mode=st.sampled_from(["constant", "reflect", "edge", "symmetric", "wrap", 3]),
)
def stft_any(x: Any, n_fft: Any, hop_length: Any, win_length: Any, window: Any, center: Any, pad_mode: Any) -> None:
    attempt(dsp.stft, argument_names(dsp.stft), x, n_fft, hop_length, win_length, window, center, pad_mode)


@checks("stft")
@fuzz_settings(2)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    n=st.integers(1, 500),
    n_fft=st.integers(2, 300),
    hop=st.integers(1, 80),
    win_frac=st.floats(0.05, 1.0),
    window=st.sampled_from(LIBROSA_WINDOWS),
    center=st.booleans(),
    pad_mode=st.sampled_from(["constant", "reflect", "edge"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**31),
)
def stft_parity(
    batch: list[int],
    n: int,
    n_fft: int,
    hop: int,
    win_frac: float,
    window: Any,
    center: bool,
    pad_mode: str,
    dtype: Any,
    seed: int,
) -> None:
    x = valid_signal((*batch, n), dtype, seed)
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=max(1, int(n_fft * win_frac)), window=window, center=center)
    kw["pad_mode"] = pad_mode
    got, err = attempt(dsp.stft, set(kw) | {"x"}, x, **kw)
    if (not center and n < n_fft) or (center and pad_mode == "reflect" and n < 2):
        return  # refused (named) / numpy.pad cannot reflect one sample
    assert err is None, err
    expected = librosa.stft(x, **kw)
    assert got.dtype == expected.dtype
    assert_close(got, expected, 1e-5)


@checks("spectrogram")
@fuzz_settings(2)
@given(
    x=anything([None, "x"], arrays(shapes(0, 3, 0, 300), scales=[1.0, 1e300, 1e-310])),
    fs=anything([*WEIRD_FLOATS, 200.0]),
    window=st.sampled_from(WINDOWS),
    nperseg=anything([*WEIRD_INTS, 16, 64, None]),
    noverlap=anything([*WEIRD_INTS, None]),
    nfft=anything([*WEIRD_INTS, None, 128]),
    detrend=st.sampled_from(["constant", "linear", False, None, "quadratic", 3]),
    scaling=st.sampled_from(["density", "spectrum", "psd", None]),
)
def spectrogram_any(
    x: Any, fs: Any, window: Any, nperseg: Any, noverlap: Any, nfft: Any, detrend: Any, scaling: Any
) -> None:
    attempt(dsp.spectrogram, argument_names(dsp.spectrogram), x, fs, window, nperseg, noverlap, nfft, detrend, scaling)


@checks("spectrogram")
@fuzz_settings(2)
@given(
    n=st.integers(1, 1200),
    nperseg=st.integers(1, 300),
    overlap_frac=st.floats(0.0, 0.95),
    extra=st.integers(0, 60),
    detrend=st.sampled_from(["constant", "linear", False]),
    scaling=st.sampled_from(["density", "spectrum"]),
    window=st.sampled_from([("tukey", 0.25), "hann", "boxcar", ("kaiser", 3.0)]),
    dtype=st.sampled_from([np.float32, np.float64, np.int32]),
    seed=st.integers(0, 2**31),
)
def spectrogram_parity(
    n: int,
    nperseg: int,
    overlap_frac: float,
    extra: int,
    detrend: Any,
    scaling: str,
    window: Any,
    dtype: Any,
    seed: int,
) -> None:
    x = valid_signal((2, n), dtype, seed)
    kw = dict(fs=200.0, window=window, nperseg=nperseg, noverlap=int(nperseg * overlap_frac), nfft=nperseg + extra)
    kw.update(detrend=detrend, scaling=scaling)
    got, err = attempt(dsp.spectrogram, set(kw) | {"x"}, x, **kw)
    if n < nperseg:
        assert err is not None and "nperseg" in str(err)
        return
    assert err is None, err
    f, t, s = got
    f2, t2, s2 = ss.spectrogram(x, **kw)
    np.testing.assert_allclose(t, t2)
    np.testing.assert_allclose(f, f2)
    assert s.dtype == s2.dtype
    floor = 1e-9 * float(np.max(x.astype(np.float64) ** 2))
    assert_close(s, s2, 1e-5 if s.dtype == np.float32 else 1e-9, floor)


@checks("mel_filterbank")
@fuzz_settings(2)
@given(
    sr=anything([*WEIRD_FLOATS, 200.0, 22050.0]),
    n_fft=anything([*WEIRD_INTS, 64, 1024]),
    n_mels=anything([*WEIRD_INTS, 40]),
    fmin=anything([*WEIRD_FLOATS, 0.0, 20.0]),
    fmax=anything([*WEIRD_FLOATS, None, 20.0, 100.0]),
    htk=st.booleans(),
    norm=st.sampled_from(["slaney", None, "l2", 1]),
)
def mel_filterbank_any(sr: Any, n_fft: Any, n_mels: Any, fmin: Any, fmax: Any, htk: bool, norm: Any) -> None:
    attempt(dsp.mel_filterbank, argument_names(dsp.mel_filterbank), sr, n_fft, n_mels, fmin, fmax, htk, norm)


@checks("mel_filterbank")
@fuzz_settings(2)
@given(
    sr=st.sampled_from([200.0, 1000.0, 8000.0, 22050.0]),
    n_fft=st.integers(1, 2048),
    n_mels=st.integers(1, 300),
    fmin_frac=st.floats(0.0, 0.5),
    fmax_frac=st.floats(0.1, 1.0),
    htk=st.booleans(),
    norm=st.sampled_from(["slaney", None]),
)
def mel_filterbank_parity(
    sr: float, n_fft: int, n_mels: int, fmin_frac: float, fmax_frac: float, htk: bool, norm: Any
) -> None:
    fmax = sr / 2 * fmax_frac
    fmin = fmax * fmin_frac
    if fmin >= fmax:
        return
    got = dsp.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9 * max(float(np.abs(expected).max()), 1e-30))


@checks("melspectrogram")
@fuzz_settings(2)
@given(
    x=anything([None, "x"], arrays(shapes(0, 3, 0, 300), scales=[1.0, 1e300, 1e-310])),
    sr=anything([*WEIRD_FLOATS, 200.0]),
    n_fft=anything([*WEIRD_INTS, 64]),
    hop_length=anything([*WEIRD_INTS, 16]),
    n_mels=anything([*WEIRD_INTS, 16]),
    fmax=anything([*WEIRD_FLOATS, None, 50.0]),
    power=anything([*WEIRD_FLOATS, 2.0]),
    window=st.sampled_from(WINDOWS),
)
def melspectrogram_any(
    x: Any, sr: Any, n_fft: Any, hop_length: Any, n_mels: Any, fmax: Any, power: Any, window: Any
) -> None:
    kw = dict(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmax=fmax, power=power, window=window)
    attempt(dsp.melspectrogram, argument_names(dsp.melspectrogram), x, **kw)


@checks("melspectrogram")
@fuzz_settings(2)
@given(
    n=st.integers(200, 2000),
    n_fft=st.integers(16, 1024),
    hop=st.integers(1, 100),
    win_frac=st.floats(0.05, 1.0),
    n_mels=st.integers(1, 64),
    fmax_frac=st.floats(0.05, 1.0),
    power=st.sampled_from([1.0, 2.0, 1.5]),
    dtype=st.sampled_from([np.float32, np.float64]),
    transpose=st.booleans(),
    seed=st.integers(0, 2**31),
)
def melspectrogram_parity(
    n: int,
    n_fft: int,
    hop: int,
    win_frac: float,
    n_mels: int,
    fmax_frac: float,
    power: float,
    dtype: Any,
    transpose: bool,
    seed: int,
) -> None:
    x = valid_signal((2, n), dtype, seed)
    if transpose:  # the same values through a non-contiguous view
        x = np.asfortranarray(x)
    kw = dict(sr=200.0, n_fft=n_fft, hop_length=hop, win_length=max(1, int(n_fft * win_frac)), n_mels=n_mels)
    kw.update(fmin=0.0, fmax=100.0 * fmax_frac, power=power)
    got = dsp.melspectrogram(x, **kw)
    expected = librosa.feature.melspectrogram(y=np.ascontiguousarray(x), **kw)
    assert got.dtype == dtype
    assert_close(got, expected, 1e-4 if dtype == np.float32 else 1e-7)


@checks("power_to_db")
@fuzz_settings(2)
@given(
    S=anything([None, "x", 1.0], arrays(shapes(0, 4, 0, 12), scales=[1.0, 1e300, 1e-310])),
    ref=st.sampled_from(["max", np.max, 1.0, 0.0, -3.0, NAN, INF, "min", None, 10**400]),
    amin=anything([*WEIRD_FLOATS, 1e-10]),
    top_db=anything([*WEIRD_FLOATS, 80.0, None]),
)
def power_to_db_any(S: Any, ref: Any, amin: Any, top_db: Any) -> None:
    attempt(dsp.power_to_db, argument_names(dsp.power_to_db), S, ref, amin, top_db)


@checks("power_to_db")
@fuzz_settings(2)
@given(
    shape=shapes(2, 4, 1, 12),
    ref=st.sampled_from(["max", 1.0, 3.5, 1e-3]),
    amin=st.sampled_from([1e-10, 1e-5, 1e-30]),
    top_db=st.sampled_from([80.0, 40.0, None]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**31),
)
def power_to_db_parity(shape: list[int], ref: Any, amin: float, top_db: Any, dtype: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = (rng.random(shape) ** 8 * 10.0 ** rng.integers(-3, 6)).astype(dtype)
    got = dsp.power_to_db(s, ref=ref, amin=amin, top_db=top_db)
    lib_ref = np.max if ref == "max" else ref
    flat = s.reshape(-1, *s.shape[-2:])
    expected = np.stack([librosa.power_to_db(b, ref=lib_ref, amin=amin, top_db=top_db) for b in flat]).reshape(s.shape)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


# --- montage and the EEG recipes -----------------------------------------------------------------

CHANNELS = list(dsp._EEG_CHANNELS)
CHAIN_COLUMNS = [["Fp1", "F7", "T3", "T5", "O1"], ["Fp1", "F3", "C3", "P3", "O1"]]
CHAIN_COLUMNS += [["Fp2", "F8", "T4", "T6", "O2"], ["Fp2", "F4", "C4", "P4", "O2"]]


@checks("bipolar_montage", "BIPOLAR_PAIRS", "CHAIN_NAMES")
@fuzz_settings(2)
@given(
    eeg=anything([None, "x", 3.0], arrays(shapes(0, 4, 0, 24), scales=[1.0, 1e300, 1e-310])),
    channels=st.sampled_from(
        [None, CHANNELS, CHANNELS[::-1], [c.upper() for c in CHANNELS], CHANNELS[:19], "Fp1", [1] * 20]
    ),
)
def bipolar_montage_any(eeg: Any, channels: Any) -> None:
    y, err = attempt(dsp.bipolar_montage, {"eeg", "channels"}, eeg, channels)
    if err is None:
        x = np.asarray(eeg)
        names = CHANNELS if channels is None else [c.lower() for c in channels]
        dtype = np.float32 if x.dtype in (np.float32, np.float16) else np.float64
        x = x.astype(dtype)
        index = {c.lower(): i for i, c in enumerate(names)}
        expected = np.stack(
            [x[..., index[a.lower()], :] - x[..., index[b.lower()], :] for a, b in dsp.BIPOLAR_PAIRS], -2
        )
        assert y.dtype == dtype and len(dsp.BIPOLAR_PAIRS) == 16 and len(dsp.CHAIN_NAMES) == 4
        np.testing.assert_allclose(y, expected, rtol=1e-7 if dtype == np.float32 else 0)


RECIPE_OPTIONS = {
    "n_samples": [None, 0, 1, 3000, 2**62, -1, 1.5],
    "bandpass": [None, (0.5, 40.0), (40.0, 0.5), (0.0, 200.0), 3.0],
    "notch": [None, 60.0, 150.0, NAN],
    "n_fft": [256, 0, 1, 2**50, 2**62, 2**64],
    "hop_length": [None, 0, 7, 2**62],
    "win_length": [128, 0, 300, 2**62],
    "n_mels": [32, 0, 2**50, 2**62],
    "fmax": [20.0, 0.0, 150.0, NAN],
    "power": [2.0, 0.0, -1.0, INF],
    "top_db": [80.0, None, -1.0],
    "width_multiple": [32, 0, 2**62],
    "scale": [40.0, 0.0, INF],
    "amin": [1e-10, 0.0, 5e-324, -1.0],
    "nperseg": [256, 0, 2**62],
    "nfft": [None, 100, 2**50],
    "fs": [200.0, 0.0, -5.0, INF],
    "unknown_option": [1],
}


@checks("eeg_spectrograms", "eeg_mel_recipe", "ChainSpectrograms", "MEL_RECIPE", "SCIPY_RECIPE")
@fuzz_settings(3)
@given(
    eeg=anything(
        [None, "x"], arrays(shapes(2, 3, 1, 3, last=st.integers(0, 3000)), scales=[40.0, 1e18, 1e300, 1e-310])
    ),
    recipe=st.sampled_from(["mel", "scipy", "other"]),
    options=st.dictionaries(st.sampled_from(sorted(RECIPE_OPTIONS)), st.just(None), max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.sampled_from(RECIPE_OPTIONS[k]) for k in keys})
    ),
)
def eeg_spectrograms_any(eeg: Any, recipe: str, options: dict[str, Any]) -> None:
    names = {"eeg", "recipe", "channels", "options", "filter_order", "notch_q", *RECIPE_OPTIONS, *dsp.MEL_RECIPE}
    names |= set(dsp.SCIPY_RECIPE)
    if isinstance(eeg, np.ndarray) and eeg.ndim >= 2 and eeg.shape[-2] != 20 and eeg.size:
        eeg = np.broadcast_to(eeg[..., :1, :], (*eeg.shape[:-2], 20, eeg.shape[-1]))
    result, err = attempt(dsp.eeg_spectrograms, names, eeg, recipe, **options)
    if err is None:
        assert isinstance(result, dsp.ChainSpectrograms) and result.names == dsp.CHAIN_NAMES
        x = np.asarray(eeg)
        if finite(x) or np.isnan(x).any() and not np.isinf(x).any():
            assert finite(result.images), "the images of finite EEG hold NaN or inf"
    if recipe == "mel":
        obj, err2 = attempt(dsp.eeg_mel_recipe, names, **options)
        if err2 is None:
            assert isinstance(obj, _native.EegMelRecipe)


def reference_mel_images(eeg: np.ndarray, p: dict[str, Any], filters: list[np.ndarray]) -> np.ndarray:
    """The public numpy + librosa recipe with these parameters, (..., 4, n_mels, width)."""
    n = eeg.shape[-1]
    kept = n if p["n_samples"] is None else p["n_samples"]
    start = (n - kept) // 2
    x_all = eeg[..., start : start + kept]
    index = {c: i for i, c in enumerate(CHANNELS)}
    out = []
    for rec in x_all.reshape(-1, *x_all.shape[-2:]):
        images = []
        for cols in CHAIN_COLUMNS:
            acc = 0
            for a, b in zip(cols[:-1], cols[1:]):
                x = rec[index[a]] - rec[index[b]]
                x = np.nan_to_num(x, nan=np.nanmean(x)) if np.isnan(x).mean() < 1 else np.zeros_like(x)
                for sos in filters:
                    x = ss.sosfiltfilt(sos, x).astype(x.dtype)
                mel = librosa.feature.melspectrogram(
                    y=x,
                    sr=p["fs"],
                    n_fft=p["n_fft"],
                    hop_length=p["hop_length"] or kept // 256,
                    win_length=p["win_length"],
                    window=p["window"],
                    n_mels=p["n_mels"],
                    fmin=p["fmin"],
                    fmax=p["fmax"],
                    power=p["power"],
                )
                width = mel.shape[1] // p["width_multiple"] * p["width_multiple"]
                db = librosa.power_to_db(mel, ref=np.max, amin=p["amin"], top_db=p["top_db"])[:, :width]
                acc = acc + (db + p["offset"]) / p["scale"]
            images.append(acc / 4)
        out.append(np.stack(images))
    return np.stack(out).reshape(*eeg.shape[:-2], *out[0].shape)


@checks("eeg_spectrograms", "MEL_RECIPE")
@fuzz_settings(1)
@given(
    batch=st.lists(st.integers(1, 2), max_size=1),
    n=st.integers(1200, 2600),
    n_samples=st.sampled_from([None, 1100]),
    n_fft=st.sampled_from([128, 256, 512]),
    win_frac=st.sampled_from([0.25, 0.5, 1.0]),
    n_mels=st.integers(8, 48),
    fmax=st.sampled_from([20.0, 40.0, 100.0]),
    top_db=st.sampled_from([80.0, 40.0, None]),
    width_multiple=st.sampled_from([1, 4, 32]),
    bandpass=st.sampled_from([None, (0.5, 40.0)]),
    dtype=st.sampled_from([np.float32, np.float64]),
    loud=st.sampled_from([1.0, 1.0, 1e18]),
    gaps=st.booleans(),
    seed=st.integers(0, 2**31),
)
def mel_recipe_parity(
    batch: list[int],
    n: int,
    n_samples: Any,
    n_fft: int,
    win_frac: float,
    n_mels: int,
    fmax: float,
    top_db: Any,
    width_multiple: int,
    bandpass: Any,
    dtype: Any,
    loud: float,
    gaps: bool,
    seed: int,
) -> None:
    eeg = valid_signal((*batch, 20, n), np.float64, seed)
    if top_db is None:
        loud = 1.0
    if gaps:
        eeg[..., 3, 100:300] = np.nan
        eeg[..., 11, :] = np.nan
    options = dict(n_samples=n_samples, n_fft=n_fft, win_length=int(n_fft * win_frac), n_mels=n_mels, fmax=fmax)
    options.update(top_db=top_db, width_multiple=width_multiple, bandpass=bandpass)
    got = dsp.eeg_spectrograms((eeg * loud).astype(dtype), **options).images
    if loud != 1.0:
        np.testing.assert_allclose(got, dsp.eeg_spectrograms(eeg.astype(dtype), **options).images, atol=1e-4)
    assert finite(got)
    p = {**dsp.MEL_RECIPE, **options}
    filters = [] if bandpass is None else [dsp.butter_sos(4, bandpass, "bandpass", 200.0)]
    # Loud EEG: the images of the quiet one (decibels relative to the maximum, floored at top_db
    # below it, far above amin). Without a floor, float32 noise 80 dB under the peak differs.
    expected = reference_mel_images(eeg.astype(dtype), p, filters)
    # float32: its rounding in the spectrograms' cancellations (the public recipe's parity, 1e-4);
    # without a top_db floor, bins 100 dB and more below the peak are float32 noise on both
    # sides (a relative 1e-3 of their power).
    tol = 1e-4 if dtype == np.float32 else 1e-8
    if dtype == np.float32 and top_db is None:
        tol = 1e-3
    np.testing.assert_allclose(got, expected.astype(dtype), atol=tol * max(1.0, float(np.abs(expected).max())))


@checks("eeg_spectrograms", "SCIPY_RECIPE")
@fuzz_settings(1)
@given(
    n=st.integers(300, 2500),
    nperseg=st.sampled_from([64, 128, 256]),
    nfft=st.sampled_from([None, 300]),
    fmax=st.sampled_from([None, 30.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
    loud=st.sampled_from([1.0, 1e160]),
    seed=st.integers(0, 2**31),
)
def scipy_recipe_parity(n: int, nperseg: int, nfft: Any, fmax: Any, dtype: Any, loud: float, seed: int) -> None:
    if dtype == np.float32 and loud > 1e30:
        loud = 1e18
    eeg = valid_signal((20, n), np.float64, seed) * loud
    options = dict(n_samples=None, nperseg=nperseg, nfft=nfft, fmax=fmax)
    got, err = attempt(
        dsp.eeg_spectrograms, {"eeg", "nperseg", "nfft", "fmax", "n_samples"}, eeg.astype(dtype), "scipy", **options
    )
    if n < nperseg:
        assert err is not None
        return
    assert err is None, err
    x = eeg.astype(dtype).astype(np.float64)
    index = {c: i for i, c in enumerate(CHANNELS)}
    images = []
    for cols in CHAIN_COLUMNS:
        logs = []
        for a, b in zip(cols[:-1], cols[1:]):
            d = x[index[a]] - x[index[b]]
            # ln(max(p, amin)) of the loud difference from the spectrogram of the unit one.
            f, _, s = ss.spectrogram(d / loud, fs=200.0, nperseg=nperseg, nfft=nfft, window=("tukey", 0.25))
            with np.errstate(divide="ignore"):
                logs.append(np.maximum(np.log(s) + 2 * np.log(loud), np.log(1e-10)))
        img = np.mean(logs, axis=0)
        images.append(img if fmax is None else img[f <= fmax])
    expected = np.stack(images)
    assert finite(got.images)
    np.testing.assert_allclose(got.images, expected, rtol=1e-5, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


RAW_OPTIONS: dict[str, list[Any]] = {
    "n_samples": [None, 0, 1, 2000, 2**62, -1, 1.5],
    "montage": ["banana16", "banana18", "banana", 16],
    "bandpass": [None, (0.5, 20.0), (20.0, 0.5), (0.0, 200.0), 3.0],
    "filter_order": [1, 4, 0, 25, 2.5],
    "notch": [None, 60.0, 150.0, NAN],
    "notch_q": [30.0, 0.0, INF],
    "fs": [200.0, 256.0, 0.0, -5.0, INF, "x"],
    "rate": [40.0, 50.0, 200.0, 400.0, 40.004, 0.0, NAN, 1e300, 5e-324],
    "demean": [True, False],
    "normalize": ["clip", "standardize", "none", "zscore", None],
    "clip": [1024.0, 0.0, -1.0, NAN, INF],
    "scale": [32.0, 0.0, INF, -2.0],
    "eps": [1e-6, 0.0, 5e-324, NAN],
    "channels": [None, CHANNELS[::-1], CHANNELS[:18], "Fp1", [1] * 20],
}


@checks("eeg_raw_recipe", "eeg_raw_inputs")
@fuzz_settings(3)
@given(
    eeg=anything(
        [None, "x"], arrays(shapes(2, 3, 1, 3, last=st.integers(0, 3000)), scales=[40.0, 1e18, 1e300, 1e-310])
    ),
    options=st.dictionaries(st.sampled_from(sorted(RAW_OPTIONS)), st.just(None), max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.sampled_from(RAW_OPTIONS[k]) for k in keys})
    ),
)
def eeg_raw_any(eeg: Any, options: dict[str, Any]) -> None:
    names = argument_names(dsp.eeg_raw_recipe) | argument_names(dsp.eeg_raw_inputs)
    if isinstance(eeg, np.ndarray) and eeg.ndim >= 2 and eeg.size:
        channels = options.get("channels")
        count = len(channels) if isinstance(channels, list) else 20
        eeg = np.broadcast_to(eeg[..., :1, :], (*eeg.shape[:-2], count, eeg.shape[-1]))
    recipe, err = attempt(dsp.eeg_raw_recipe, names, **options)
    if err is not None:
        return
    y, err = attempt(dsp.eeg_raw_inputs, names, eeg, recipe)
    if err is None:
        assert y.dtype == np.float32 and y.shape[-2] == recipe.n_links
        x = np.asarray(eeg)
        if options.get("normalize", "clip") in ("clip", "standardize") and not np.isinf(x).any():
            assert finite(y), "the raw inputs of finite EEG hold NaN or inf"


def reference_raw_inputs(eeg: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The raw recipe with numpy and scipy, one step at a time, in float64."""
    x = eeg.astype(np.float64)
    n = x.shape[-1]
    kept = n if p["n_samples"] is None else p["n_samples"]
    x = x[..., (n - kept) // 2 : (n - kept) // 2 + kept]
    links = list(dsp.BIPOLAR_PAIRS) + ([("Fz", "Cz"), ("Cz", "Pz")] if p["montage"] == "banana18" else [])
    index = {c: i for i, c in enumerate(CHANNELS)}
    d = np.stack([x[..., index[a], :] - x[..., index[b], :] for a, b in links], axis=-2)
    fill = np.nan_to_num(np.nanmean(d, axis=-1, keepdims=True), nan=0.0)
    d = np.where(np.isnan(d), fill, d)
    if p["bandpass"] is not None:
        d = ss.sosfiltfilt(ss.butter(4, p["bandpass"], "bandpass", fs=200.0, output="sos"), d, axis=-1)
    ratio = Fraction(p["rate"] / 200.0).limit_denominator(1000)
    if ratio != 1:
        d = ss.resample_poly(d, ratio.numerator, ratio.denominator, axis=-1)
    d = d - d.mean(axis=-1, keepdims=True)
    if p["normalize"] == "clip":
        d = np.clip(d, -p["clip"], p["clip"]) / 32.0
    elif p["normalize"] == "standardize":
        d = (d - d.mean(axis=-1, keepdims=True)) / (d.std(axis=-1, keepdims=True) + 1e-6)
    return d.astype(np.float32)


@checks("eeg_raw_recipe", "eeg_raw_inputs")
@fuzz_settings(1)
@given(
    batch=st.lists(st.integers(1, 2), max_size=2),
    n=st.integers(300, 2600),
    n_samples=st.sampled_from([None, 280]),
    montage=st.sampled_from(["banana16", "banana18"]),
    bandpass=st.sampled_from([None, (0.5, 20.0), (1.0, 70.0)]),
    rate=st.sampled_from([40.0, 50.0, 64.0, 200.0, 300.0]),
    normalize=st.sampled_from(["clip", "standardize", "none"]),
    clip=st.sampled_from([1024.0, 20.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
    gaps=st.booleans(),
    seed=st.integers(0, 2**31),
)
def eeg_raw_parity(
    batch: list[int],
    n: int,
    n_samples: Any,
    montage: str,
    bandpass: Any,
    rate: float,
    normalize: str,
    clip: float,
    dtype: Any,
    gaps: bool,
    seed: int,
) -> None:
    eeg = valid_signal((*batch, 20, n), np.float64, seed)
    if gaps:
        eeg[..., 3, n // 3 : n // 2] = np.nan
        eeg[..., 11, :] = np.nan
    eeg = eeg.astype(dtype)
    p = dict(n_samples=n_samples, montage=montage, bandpass=bandpass, rate=rate, normalize=normalize, clip=clip)
    got = dsp.eeg_raw_inputs(eeg, dsp.eeg_raw_recipe(**p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = reference_raw_inputs(eeg, p)
    assert finite(got)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


# --- model inputs --------------------------------------------------------------------------------


@checks("model_inputs")
@fuzz_settings(2)
@given(
    sources=st.sampled_from([["kaggle"], ["eeg"], ["kaggle", "eeg"], [], ["other"], "kaggle", ["kaggle", "kaggle"]]),
    kaggle=anything(
        [None, "x"],
        arrays(st.sampled_from([[1, 4, 100, 300], [2, 4, 128, 256], [1, 4, 129, 300], [1, 3, 10, 300], [4, 10, 256]])),
    ),
    kaggle_order=st.sampled_from([(0, 1, 2, 3), (3, 2, 1, 0), (0, 1, 2), (0, 1, 2, 9), (-1, 0, 1, 2)]),
    clip=st.sampled_from([CLIP, (0.0, 1.0, 0.0), (1.0, 0.5, 0.0), (1e-50, 1.0, 0.0), (1.0, 2.0, NAN)]),
    layout=st.sampled_from(["stack", "channels", "other"]),
    eps=anything([*WEIRD_FLOATS, 1e-6]),
    stats=st.sampled_from(
        [None, [(0.0, 1.0)], [(0.0, 1e-300)], [(1e39, 1.0)], [(0.0, 1.0), (1.0, 2.0)], [(NAN, 1.0)], [1.0]]
    ),
)
def model_inputs_any(
    sources: Any, kaggle: Any, kaggle_order: Any, clip: Any, layout: Any, eps: Any, stats: Any
) -> None:
    names = argument_names(dsp.model_inputs) | {"eeg_recipe", "eps", "stats[0]", "stats[1]"}
    y, err = attempt(
        dsp.model_inputs,
        names,
        sources,
        kaggle=kaggle,
        kaggle_order=kaggle_order,
        clip=clip,
        layout=layout,
        eps=eps,
        stats=stats,
    )
    if err is None:
        assert y.dtype == np.float32
        assert finite(y) or not finite(np.nan_to_num(np.asarray(kaggle, dtype=np.float64), nan=0.0))


def reference_kaggle_tiles(
    kaggle: np.ndarray, order: tuple[int, ...], clip: tuple[float, float, float], layout: str, eps: float, stats: Any
) -> np.ndarray:
    lo, hi, nan = (np.float32(v) for v in clip)
    logs = np.log(np.clip(np.nan_to_num(kaggle[:, list(order)], nan=nan), lo, hi)).astype(np.float32)
    b, _, rows, cols = logs.shape
    if stats is None:
        flat = logs.reshape(b, -1).astype(np.float64)
        mean = flat.mean(axis=1)[:, None, None, None]
        std = flat.std(axis=1)[:, None, None, None]
        norm = ((logs - mean) / (std + eps)).astype(np.float32)
    else:
        norm = (logs - np.float32(stats[0][0])) / np.float32(stats[0][1])
    tiles = np.zeros((b, 4, 128, 256), np.float32)
    top, first = (128 - rows) // 2, (cols - 256) // 2
    tiles[:, :, top : top + rows] = norm[..., first : first + 256]
    return tiles if layout == "channels" else tiles.reshape(b, 1, 512, 256)


@checks("model_inputs")
@fuzz_settings(2)
@given(
    batch=st.integers(1, 3),
    rows=st.integers(1, 128),
    cols=st.integers(256, 300),
    order=st.permutations([0, 1, 2, 3]).map(tuple),
    layout=st.sampled_from(["stack", "channels"]),
    eps=st.sampled_from([1e-6, 0.0, 1.0]),
    stats=st.sampled_from([None, [(0.5, 2.0)]]),
    scale=st.sampled_from([1.0, 1e30, 1e-30]),
    seed=st.integers(0, 2**31),
)
def model_inputs_kaggle_parity(
    batch: int,
    rows: int,
    cols: int,
    order: tuple[int, ...],
    layout: str,
    eps: float,
    stats: Any,
    scale: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    kaggle = (np.exp(rng.normal(0, 3, (batch, 4, rows, cols))) * scale).astype(np.float32)
    kaggle[:, :, :, 7] = np.nan
    got, err = attempt(
        dsp.model_inputs,
        {"eps", "kaggle", "stats"},
        ["kaggle"],
        kaggle=kaggle,
        kaggle_order=order,
        layout=layout,
        eps=eps,
        stats=stats,
    )
    if err is not None:
        assert eps == 0.0 and stats is None and "eps is 0" in str(err), err
        return
    expected = reference_kaggle_tiles(kaggle, order, CLIP, layout, eps, stats)
    assert finite(got)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


@checks("model_inputs", "eeg_mel_recipe")
@fuzz_settings(0.5)
@given(
    layout=st.sampled_from(["stack", "channels"]),
    loud=st.sampled_from([1.0, 1e18]),
    both=st.booleans(),
    seed=st.integers(0, 2**31),
)
def model_inputs_eeg_parity(layout: str, loud: float, both: bool, seed: int) -> None:
    eeg = (valid_signal((1, 20, 10_000), np.float64, seed) * loud).astype(np.float32)
    recipe = dsp.eeg_mel_recipe()
    sources = ["kaggle", "eeg"] if both else ["eeg"]
    kaggle = np.exp(np.random.default_rng(seed).normal(0, 3, (1, 4, 100, 300))).astype(np.float32)
    got = dsp.model_inputs(sources, eeg=eeg, eeg_recipe=recipe, kaggle=kaggle, layout=layout)
    images = dsp.eeg_spectrograms(eeg).images.astype(np.float64)
    norm = ((images - images.mean()) / (images.std() + 1e-6)).astype(np.float32)
    g = len(sources) - 1
    if layout == "channels":
        part = got[:, 4 * g : 4 * g + 4]
    else:
        part = got[:, :, :, 256 * g : 256 * g + 256].reshape(1, 4, 128, 256)
    assert finite(got)
    np.testing.assert_allclose(part, norm, atol=1e-4)


# --- running the checks --------------------------------------------------------------------------


def run(names: list[str]) -> int:
    failures = 0
    done: set[Callable[[], None]] = set()
    for name in names:
        for check in CHECKS[name]:
            if check in done:  # a check of several entry points runs once
                continue
            done.add(check)
            t = time.perf_counter()
            label = f"{name}: {check.__name__}"
            try:
                check()
            except Exception:  # a failed example (hypothesis re-raises the shrunk one)
                failures += 1
                print(f"FAIL {label}\n{traceback.format_exc()}", flush=True)
                continue
            print(f"ok   {label} ({time.perf_counter() - t:.1f} s)", flush=True)
    # The native core is still usable after every attack.
    assert dsp.stft(np.ones(64), n_fft=16, hop_length=4).shape == (9, 17)
    return failures


def main(argv: list[str]) -> int:
    unknown = sorted(set(argv) - set(CHECKS))
    if unknown:
        print(f"unknown entry points: {unknown}; known: {sorted(CHECKS)}")
        return 2
    warnings.simplefilter("ignore")  # the references' warnings (empty mel filters, short signals)
    dsp.set_num_threads(2)
    failures = run(argv or sorted(CHECKS))
    print(f"{failures} failed check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
