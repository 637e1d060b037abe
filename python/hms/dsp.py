"""Signal processing for EEG and spectrograms: typed wrappers over the native Rust core.

Every function takes float32 or float64 arrays of any leading shape (integers and bools are
converted to float64), computes in float64, and returns the input's float dtype. Bad input raises
``ValueError`` or ``TypeError`` naming the argument. The native work runs in parallel with the GIL
released, on a pool of this process's own: :func:`set_num_threads` (or ``RAYON_NUM_THREADS``)
bounds its threads.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal as _signal

from hms import _native

__all__ = [
    "RunningStats", "butter_sos", "clip_log", "clip_log_normalize", "decimate", "instance_normalize", "to_float32",
    "set_num_threads", "get_num_threads", "notch_sos", "resample_poly", "sosfiltfilt", "sosfilt_zi", "sos_padlen",
]  # fmt: skip

FloatArray = NDArray[np.floating[Any]]

_BTYPES = {
    "lowpass": "lowpass",
    "low": "lowpass",
    "lp": "lowpass",
    "highpass": "highpass",
    "high": "highpass",
    "hp": "highpass",
    "bandpass": "bandpass",
    "band": "bandpass",
    "bp": "bandpass",
    "pass": "bandpass",
    "bandstop": "bandstop",
    "stop": "bandstop",
    "bs": "bandstop",
}


def as_float_array(x: ArrayLike, name: str, *, allow_empty: bool = False) -> FloatArray:
    """``x`` as a float32 or float64 array (integers and bools become float64, float16 float32)."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if kind not in "iubf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if kind in "iub" or arr.dtype not in (np.float32, np.float64):
        arr = _converted(arr, np.float32 if arr.dtype == np.float16 else np.float64, name)
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


def _converted(arr: NDArray[Any], dtype: Any, name: str) -> NDArray[Any]:
    """``arr`` converted to ``dtype`` (a copy); a copy that cannot be allocated is a
    MemoryError naming the argument (a view with zero strides can hold more than memory)."""
    try:
        return arr.astype(dtype)
    except MemoryError as exc:
        raise MemoryError(f"cannot allocate a {np.dtype(dtype).name} copy of {name}: {exc}") from None


def _normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(f"{name}={axis} is out of bounds for an array of {ndim} dimensions")
    return ax % ndim


# Coercion only: the native core checks the values of what it is given, naming the argument.


def _real(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    except OverflowError:
        raise ValueError(f"{name} is beyond float64's range, got {value!r}") from None


# The largest count the native core's unsigned (64-bit) arguments hold.
_MAX_COUNT = 2**64 - 1


def _integer(value: Any, name: str, expected: str = "an integer") -> int:
    """``value`` as an int (bool refused: ``True`` as an argument is a mistake, not 1)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, got {value!r}") from None


def _index(value: Any, name: str) -> int:
    """``value`` as a count: a non-negative int (what the native core's unsigned arguments hold)."""
    v = _integer(value, name)
    if v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v}")
    if v > _MAX_COUNT:
        raise ValueError(f"{name} must be at most 2**64 - 1, got {v}")
    return v


def _finite_number(value: Any, name: str) -> float:
    """For the filter designs, which scipy computes (the native core never sees these values)."""
    v = _real(value, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _check_fs_and_freqs(freqs: Sequence[float], fs: Any, name: str) -> float:
    fs_ = _finite_number(fs, "fs")
    if fs_ <= 0:
        raise ValueError(f"fs must be positive, got {fs_}")
    for f in freqs:
        # As a fraction of Nyquist too: scipy's designs take 2 f / fs, which must not underflow.
        if not (0 < f < fs_ / 2 and 0 < 2 * (f / fs_) < 1):
            raise ValueError(f"{name} must lie strictly between 0 and fs/2 = {fs_ / 2}, got {f}")
    return fs_


def butter_sos(order: int, cutoff: float | Sequence[float], btype: str, fs: float) -> NDArray[np.float64]:
    """Butterworth design as second-order sections, identical to
    ``scipy.signal.butter(order, cutoff, btype, fs=fs, output="sos")``; shape (n_sections, 6)."""
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise TypeError(f"order must be an integer, got {order!r}")
    if not 1 <= order <= 24:
        raise ValueError(f"order must be between 1 and 24, got {order}")
    kind = _BTYPES.get(str(btype).lower()) if isinstance(btype, str) else None
    if kind is None:
        raise ValueError(f"btype must be one of lowpass, highpass, bandpass, bandstop, got {btype!r}")
    band = kind in ("bandpass", "bandstop")
    try:
        freqs = np.atleast_1d(np.asarray(cutoff, dtype=np.float64)) if np.ndim(cutoff) <= 1 else None
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"cutoff must be one frequency or a pair of them, got {cutoff!r}") from None
    if freqs is None or freqs.size != (2 if band else 1):
        raise ValueError(
            f"cutoff for a {kind} filter must be {'a pair (low, high)' if band else 'one frequency'}, got {cutoff!r}"
        )
    if not np.all(np.isfinite(freqs)):
        raise ValueError(f"cutoff must be finite, got {cutoff!r}")
    _check_fs_and_freqs(freqs.tolist(), fs, "cutoff")
    if band and not freqs[0] < freqs[1]:
        raise ValueError(f"cutoff must be increasing (low < high), got {cutoff!r}")
    wn = freqs if band else float(freqs[0])
    return _signal.butter(int(order), wn, kind, fs=float(fs), output="sos")


def notch_sos(freq: float, q: float, fs: float) -> NDArray[np.float64]:
    """Second-order IIR notch as one section: ``tf2sos(*scipy.signal.iirnotch(freq, q, fs=fs))``."""
    f = _finite_number(freq, "freq")
    _check_fs_and_freqs([f], fs, "freq")
    q_ = _finite_number(q, "q")
    if q_ <= 0:
        raise ValueError(f"q must be positive, got {q_}")
    try:
        b, a = _signal.iirnotch(f, q_, fs=float(fs))
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(f"no notch at freq={f} with q={q_} (fs={fs}): {exc}") from None
    return _signal.tf2sos(b, a)


def _as_sos(sos: ArrayLike) -> NDArray[np.float64]:
    return np.ascontiguousarray(as_float_array(sos, "sos"), dtype=np.float64)


def sos_padlen(sos: ArrayLike) -> int:
    """The padding ``sosfiltfilt`` uses by default (scipy's rule); signals must be longer."""
    return _native.sos_padlen(_as_sos(sos))


def sosfilt_zi(sos: ArrayLike) -> NDArray[np.float64]:
    """Steady-state initial conditions, (n_sections, 2), as ``scipy.signal.sosfilt_zi``."""
    return _native.sosfilt_zi(_as_sos(sos))


def sosfiltfilt(sos: ArrayLike, x: ArrayLike, axis: int = -1) -> FloatArray:
    """Zero-phase filtering equal to ``scipy.signal.sosfiltfilt(sos, x, axis)`` with its defaults
    (odd extension, scipy's padlen, steady-state initial conditions). Any shape, any axis, any
    strides; computed in float64, returned as float32 for float32 input."""
    sos_ = _as_sos(sos)
    arr = as_float_array(x, "x")
    ax = _normalize_axis(axis, arr.ndim)
    return _native.sosfiltfilt(sos_, arr, ax)


def _fir_design(window: Any) -> tuple[Any, NDArray[np.float64] | None]:
    """``resample_poly``'s window as (design, taps): a name or (name, parameter) the native core
    designs with, or FIR taps (a list or an array, as scipy takes them)."""
    if isinstance(window, (list, np.ndarray)):
        taps = as_float_array(window, "window")
        try:
            return None, np.ascontiguousarray(taps, dtype=np.float64)
        except MemoryError as exc:
            raise MemoryError(f"cannot allocate a contiguous copy of window (the FIR taps): {exc}") from None
    if isinstance(window, str):
        return window, None
    if isinstance(window, tuple) and len(window) == 1 and isinstance(window[0], str):
        return window[0], None
    if isinstance(window, tuple) and len(window) == 2 and isinstance(window[0], str):
        return (window[0], _real(window[1], "window's parameter")), None
    raise TypeError(f"window must be a window name, a (name, parameter) tuple or FIR taps, got {window!r}")


def resample_poly(
    x: ArrayLike,
    up: int,
    down: int,
    axis: int = -1,
    window: Any = ("kaiser", 5.0),
    padtype: str = "constant",
    cval: float | None = None,
) -> FloatArray:
    """Polyphase resampling by ``up / down`` equal to ``scipy.signal.resample_poly`` (its filter,
    output length ``ceil(n * up / down)`` and alignment: the first output sample is the first
    input sample), with time on ``axis`` (-1 by default, where scipy's default is 0).

    ``up`` and ``down`` are positive integers, reduced by their gcd (``up == down``: a copy). The
    low-pass filter is ``firwin(20 * m + 1, 1 / m, window=window)`` times ``up`` for ``m = max(up,
    down)``, designed natively for the windows "hann", "hamming", "blackman", "boxcar",
    "bartlett", ("tukey", alpha) and ("kaiser", beta); ``window`` may also be the FIR taps (a list
    or 1-D array, applied times ``up`` and centred on their middle tap). ``padtype`` says what lies
    beyond the ends: "constant" (``cval``, default 0), "line" (the line through the first and last
    samples), or each lane's "mean", "median", "minimum" or "maximum". Any shape, axis and strides;
    computed in float64, returned in ``x``'s float dtype. Only the output samples are computed.

    NaN and inf propagate as in scipy: an output is NaN where its filter's window (the zero taps
    of scipy's alignment included) meets a NaN; with a background ``padtype`` (mean, median, ...)
    a NaN makes its whole lane NaN, and with "line" a NaN first or last sample reaches the
    outputs near both ends."""
    arr = as_float_array(x, "x")
    ax = _normalize_axis(axis, arr.ndim)
    design, taps = _fir_design(window)
    if not isinstance(padtype, str):
        raise TypeError(f"padtype must be a string, got {padtype!r}")
    cval_ = None if cval is None else _real(cval, "cval")
    return _native.resample_poly(arr, _index(up, "up"), _index(down, "down"), ax, design, taps, padtype, cval_)


def decimate(
    x: ArrayLike, q: int, n: int | None = None, ftype: str = "fir", axis: int = -1, zero_phase: bool = True
) -> FloatArray:
    """Downsampling by ``q`` after a low-pass filter, equal to ``scipy.signal.decimate`` (time on
    ``axis``, -1 by default as in scipy).

    - ``ftype="fir"``: a Hamming ``firwin(n + 1, 1 / q)`` (``n`` 20 q by default; ``q >= 2``),
      through :func:`resample_poly` (``zero_phase=True``) or upfirdn's causal alignment.
    - ``ftype="iir"``: a Chebyshev I filter of order ``n`` (8 by default, ripple 0.05 dB, cutoff
      0.8 / q of Nyquist), applied forwards and backwards (:func:`sosfiltfilt`; only
      ``zero_phase=True``), then every ``q``-th sample (a strided view, as scipy returns). As
      :func:`sosfiltfilt`, it refuses NaN and inf and signals no longer than its padding.

    Computed in float64, returned in ``x``'s float dtype."""
    arr = as_float_array(x, "x")
    ax = _normalize_axis(axis, arr.ndim)
    q_ = _index(q, "q")
    if isinstance(ftype, str) and ftype == "fir":
        if q_ < 2:
            raise ValueError(f"q must be at least 2 with ftype='fir' (its low-pass cuts at 1/q of Nyquist), got {q_}")
        order = 20 * q_ if n is None else _index(n, "n")
        # The filter's taps, n + 1, are a count of the native core (at most 2**64 - 1).
        if order + 1 > _MAX_COUNT:
            name = "q" if n is None else "n"
            raise ValueError(f"{name}={q_ if n is None else order} gives a filter of more than 2**64 - 1 taps")
        context = f"q={q_} (a filter of 20 q + 1 taps)" if n is None else f"n={order} (q={q_})"
        try:
            taps = _native.firwin(order + 1, 1.0 / q_, "hamming")
        except (ValueError, MemoryError) as exc:
            raise type(exc)(f"{context}: {exc}") from None
        try:
            return _native.resample_poly(arr, 1, q_, ax, None, taps, "constant", None, bool(zero_phase))
        except MemoryError as exc:
            # The filter's alignment takes up to q zeros (named here by down).
            raise MemoryError(f"q={q_}: {exc}") from None
    if isinstance(ftype, str) and ftype == "iir":
        if q_ < 1:
            raise ValueError(f"q must be a positive integer, got {q_}")
        if not zero_phase:
            raise ValueError(
                "zero_phase=False with ftype='iir' (a one-pass IIR filter) is not supported; use zero_phase=True"
            )
        order = 8 if n is None else _index(n, "n")
        if not 1 <= order <= 24:
            raise ValueError(f"n (the order of the IIR filter) must be between 1 and 24, got {order}")
        sos = _signal.cheby1(order, 0.05, 0.8 / q_, output="sos")
        try:
            y = _native.sosfiltfilt(np.ascontiguousarray(sos, dtype=np.float64), arr, ax)
        except ValueError as exc:
            # The design's sections (degenerate for a huge q) or the signal's length.
            raise ValueError(f"ftype='iir' with q={q_}, n={order}: {exc}") from None
        return y[(slice(None),) * ax + (slice(None, None, q_),)]
    raise ValueError(f"ftype must be 'fir' or 'iir', got {ftype!r}")


def set_num_threads(n: int | None) -> None:
    """Threads of the native core in this process from now on (None: the default, which is
    ``RAYON_NUM_THREADS`` or one per CPU). Like ``torch.set_num_threads``: e.g. one per
    DataLoader worker, or a share of the CPUs per process of a multi-process job. At most 8 per
    CPU this process may use (ValueError above; ``RAYON_NUM_THREADS`` is capped there too)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))):
        raise TypeError(f"n must be an int or None, got {n!r}")
    _native.set_num_threads(None if n is None else int(n))


def get_num_threads() -> int:
    """Threads of the native core in this process."""
    return _native.get_num_threads()


def to_float32(x: ArrayLike) -> NDArray[np.float32]:
    """``x`` as a float32 array: float16 widened natively (exact, equal to numpy's cast and about
    20x faster; e.g. the float16 input cache), anything else through ``np.asarray``. A float32
    array is returned as is."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"x must be a numeric array: {exc}") from None
    if arr.dtype == np.float16:
        return _native.float16_to_float32(arr)
    if arr.dtype == np.float32:
        return arr
    try:
        return _converted(arr, np.float32, "x")
    except (ValueError, TypeError) as exc:
        raise TypeError(f"x must be a numeric array: {exc}") from None


def clip_log(
    x: ArrayLike, lo: float = math.exp(-6), hi: float = math.exp(10), nan: float = -1.0, out: FloatArray | None = None
) -> FloatArray:
    """``np.log(np.clip(np.nan_to_num(x, nan=nan), lo, hi))`` in one pass; in place with ``out=x``.

    ``+inf``/``-inf`` end up at ``hi``/``lo`` as with ``nan_to_num``. ``out`` must have ``x``'s
    shape and float dtype and be C-contiguous and writeable."""
    arr = as_float_array(x, "x", allow_empty=True)
    lo_, hi_, nan_ = _clip_args(lo, hi, nan)
    if out is None:
        return _native.clip_log(arr, lo_, hi_, nan_)
    _check_out(out, arr)
    if out is not arr:
        np.copyto(out, arr)
    _native.clip_log_inplace(out, lo_, hi_, nan_)
    return out


def _clip_args(lo: Any, hi: Any, nan: Any) -> tuple[float, float, float]:
    return _real(lo, "lo"), _real(hi, "hi"), _real(nan, "nan")


def _check_out(out: Any, arr: FloatArray) -> None:
    """``out`` can receive ``x``'s result: checked before it is written (the native core checks
    the layout again, but only after ``x`` has been copied into it)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != arr.shape or out.dtype != arr.dtype:
        raise ValueError(f"out must have x's shape {arr.shape} and dtype {arr.dtype}, got {out.shape} {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writeable")


def _instance_axes(arr: FloatArray, axes: int | Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The instance axes of ``arr`` normalized, and the trailing positions they are moved to."""
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension")
    axes_seq = (axes,) if np.ndim(axes) == 0 else tuple(axes)  # type: ignore[arg-type]
    if not axes_seq:
        raise ValueError("axes must name at least one axis")
    norm = tuple(_normalize_axis(a, arr.ndim, "axes") for a in axes_seq)
    if len(set(norm)) != len(norm):
        raise ValueError(f"axes contains a repeated axis: {axes!r}")
    return norm, tuple(range(arr.ndim - len(norm), arr.ndim))


def _per_instance(
    native: Any, arr: FloatArray, norm: tuple[int, ...], inner: tuple[int, ...], *args: float
) -> FloatArray:
    """``native`` applied to the instances of ``arr`` as the rows of a 2-D array."""
    moved = np.moveaxis(arr, norm, inner)
    instance_size = math.prod(moved.shape[len(moved.shape) - len(norm) :])
    out = native(moved.reshape(-1, instance_size), *args).reshape(moved.shape)
    return np.moveaxis(out, inner, norm)


def instance_normalize(x: ArrayLike, axes: int | Sequence[int], eps: float = 1e-6) -> FloatArray:
    """Standardizes each instance: ``(x - mean) / (std + eps)`` with mean and population std taken
    over ``axes`` (e.g. ``(-2, -1)`` for a batch of images), computed in float64.

    Raises ValueError for NaN/inf in an instance, or a constant instance with ``eps=0``."""
    arr = as_float_array(x, "x")
    norm, inner = _instance_axes(arr, axes)
    eps_ = _real(eps, "eps")
    return _per_instance(_native.instance_normalize, arr, norm, inner, eps_)


def clip_log_normalize(
    x: ArrayLike,
    axes: int | Sequence[int],
    lo: float = math.exp(-6),
    hi: float = math.exp(10),
    nan: float = -1.0,
    eps: float = 1e-6,
    out: FloatArray | None = None,
) -> FloatArray:
    """``instance_normalize(clip_log(x, lo, hi, nan), axes, eps)`` in one pass over memory; in
    place with ``out=x``.

    The logged values are those of :func:`clip_log` (in ``x``'s dtype); the statistics are
    float64 as in :func:`instance_normalize`. ``out`` must have ``x``'s shape and float dtype and
    be C-contiguous and writeable. Raises ValueError for a constant instance with ``eps=0``."""
    arr = as_float_array(x, "x")
    lo_, hi_, nan_ = _clip_args(lo, hi, nan)
    norm, inner = _instance_axes(arr, axes)
    eps_ = _real(eps, "eps")
    if out is None:
        return _per_instance(_native.clip_log_normalize, arr, norm, inner, lo_, hi_, nan_, eps_)
    _check_out(out, arr)
    if set(norm) != set(inner):
        # Instances are not contiguous in out: compute them apart, then copy.
        np.copyto(out, _per_instance(_native.clip_log_normalize, arr, norm, inner, lo_, hi_, nan_, eps_))
        return out
    if out is not arr:
        np.copyto(out, arr)
    _native.clip_log_normalize_inplace(out, math.prod(arr.shape[d] for d in inner), lo_, hi_, nan_, eps_)
    return out


# Columns of the native state (see rust/core/src/stats.rs, Moments).
_COUNT, _NAN, _MEAN, _MEAN_LO, _M2, _MIN, _MAX = range(7)


class RunningStats:
    """Streaming mean/var/std/min/max in float64, exact to rounding for any sequence of updates.

    ``axis=None`` summarizes every element; ``axis=k`` keeps one summary per index of axis ``k``
    of the updated arrays (e.g. ``axis=0`` for (channels, time) or ``axis=1`` for
    (batch, channels, h, w)). NaN values are skipped and counted; inf raises ValueError. ``ddof``
    sets the variance's delta degrees of freedom (0: population, like numpy's default).
    Serializable with ``to_dict``/``from_dict`` (JSON-friendly) and pickle.
    """

    def __init__(self, axis: int | None = None, ddof: int = 0) -> None:
        self.axis = None if axis is None else _integer(axis, "axis", "an integer or None")
        self.ddof = ddof
        self._core = _native.RunningStatsCore(axis is not None)

    @property
    def ddof(self) -> int:
        return self._ddof

    @ddof.setter
    def ddof(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"ddof must be a non-negative integer, got {value!r}")
        self._ddof = int(value)

    def update(self, x: ArrayLike) -> RunningStats:
        """Adds the values of ``x``; returns ``self``."""
        arr = as_float_array(x, "x", allow_empty=True)
        if self.axis is not None:
            if arr.ndim == 0:
                raise ValueError(f"x must have a channel axis {self.axis}, got a 0-d array")
            arr = np.moveaxis(arr, _normalize_axis(self.axis, arr.ndim), 0)
        self._core.update(arr)
        return self

    def merge(self, other: RunningStats) -> RunningStats:
        """Adds another summary of disjoint data (Chan et al.); returns ``self``."""
        if not isinstance(other, RunningStats):
            raise TypeError(f"can only merge another RunningStats, got {type(other).__name__}")
        if (self.axis is None) != (other.axis is None):
            raise ValueError(f"cannot merge statistics with axis={self.axis} and axis={other.axis}")
        self._core.merge(other._core)
        return self

    def _column(self, k: int) -> NDArray[np.float64]:
        return self._core.state()[:, k]

    def _out(self, values: NDArray[Any]) -> Any:
        if self.axis is None:
            return values[0].item()
        return values

    @property
    def count(self) -> Any:
        return self._out(self._column(_COUNT).astype(np.int64))

    @property
    def nan_count(self) -> Any:
        return self._out(self._column(_NAN).astype(np.int64))

    @property
    def mean(self) -> Any:
        state = self._core.state()
        mean = state[:, _MEAN] + state[:, _MEAN_LO]
        return self._out(np.where(state[:, _COUNT] > 0, mean, np.nan))

    @property
    def var(self) -> Any:
        state = self._core.state()
        dof = state[:, _COUNT] - self.ddof
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(dof > 0, state[:, _M2] / np.maximum(dof, 1), np.nan)
        return self._out(var)

    @property
    def std(self) -> Any:
        return self._out(np.sqrt(np.atleast_1d(self.var)))

    @property
    def min(self) -> Any:
        state = self._core.state()
        return self._out(np.where(state[:, _COUNT] > 0, state[:, _MIN], np.nan))

    @property
    def max(self) -> Any:
        state = self._core.state()
        return self._out(np.where(state[:, _COUNT] > 0, state[:, _MAX], np.nan))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable snapshot; ``from_dict`` restores it exactly."""
        return {"version": 1, "axis": self.axis, "ddof": self.ddof, "state": self._core.state().tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunningStats:
        missing = {"axis", "ddof", "state"} - set(data)
        if missing:
            raise ValueError(f"RunningStats dict lacks {sorted(missing)}")
        stats = cls(axis=data["axis"], ddof=data["ddof"])
        state = np.asarray(data["state"], dtype=np.float64).reshape(-1, 7)
        stats._core = _native.RunningStatsCore.from_state(stats.axis is not None, state)
        return stats

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, data: dict[str, Any]) -> None:
        restored = RunningStats.from_dict(data)
        self.__dict__.update(restored.__dict__)

    def __repr__(self) -> str:
        return f"RunningStats(axis={self.axis}, count={self.count}, mean={self.mean}, std={self.std})"


# ---------------------------------------------------------------------------------------------
# Spectral: STFT, spectrograms, mel spectrograms, the bipolar montage and the EEG recipes
# (native kernels in rust/core/src/spectral.rs, mel.rs, montage.rs).

__all__ += [
    "BIPOLAR_PAIRS", "CHAIN_NAMES", "MEL_RECIPE", "SCIPY_RECIPE", "ChainSpectrograms", "bipolar_montage",
    "eeg_mel_recipe", "eeg_raw_inputs", "eeg_raw_recipe", "eeg_spectrograms", "get_window", "mel_filterbank",
    "melspectrogram", "model_inputs", "power_to_db", "spectrogram", "stft",
]  # fmt: skip

# The competition's channel order (hms.schema has the public constant; kept private here so that
# the signal layer does not depend on the data layer). The native core holds the definitions.
_EEG_CHANNELS: tuple[str, ...] = tuple(_native.EEG_CHANNELS)

#: The double-banana chains, in the order of ``eeg_spectrograms``' images.
CHAIN_NAMES: tuple[str, ...] = tuple(_native.CHAINS)

#: The 16 bipolar differences (first minus second), four per chain in ``CHAIN_NAMES`` order:
#: LL Fp1-F7, F7-T3, T3-T5, T5-O1; LP Fp1-F3, F3-C3, C3-P3, P3-O1; RL Fp2-F8, F8-T4, T4-T6,
#: T6-O2; RP Fp2-F4, F4-C4, C4-P4, P4-O2.
BIPOLAR_PAIRS: tuple[tuple[str, str], ...] = tuple((a, b) for a, b in _native.BIPOLAR)

# Window names the native core evaluates itself; any other scipy window is evaluated by
# scipy.signal.get_window and handed over as values.
_NATIVE_WINDOWS = frozenset(
    "hann han hamming hamm ham blackman black blk boxcar box ones rect rectangular bartlett bart brt tukey tuk".split()
)


def _window_arg(window: Any, n: int, size: str, name: str = "window") -> Any:
    """The window in a form the native core takes: a native name, (name, param), or values;
    ``size`` names the argument that ``n`` comes from."""
    if isinstance(window, str) and window.lower() in _NATIVE_WINDOWS:
        return window
    if (
        isinstance(window, tuple)
        and len(window) == 2
        and isinstance(window[0], str)
        and window[0].lower() in ("tukey", "tuk")
    ):
        return (window[0], _real(window[1], f"{name}'s Tukey alpha"))
    try:
        if callable(window):
            values = window(n)
        elif isinstance(window, (str, tuple)):
            try:
                values = _signal.get_window(window, n, fftbins=True)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"{name}={window!r} is not a window scipy.signal.get_window knows: {exc}") from None
        else:
            values = as_float_array(window, name)
        # The native core checks the values' shape and finiteness.
        return np.ascontiguousarray(values, dtype=np.float64)
    except MemoryError as exc:
        raise MemoryError(f"cannot allocate a {name} of {size}={n} values: {exc}") from None


def get_window(window: Any, n: int) -> NDArray[np.float64]:
    """``scipy.signal.get_window(window, n, fftbins=True)``: the periodic window of ``n`` points.

    ``window`` is a name ("hann", "hamming", "blackman", "boxcar", "bartlett", "tukey", or any
    other scipy window), a tuple such as ``("tukey", 0.25)``, a callable of ``n``, or values."""
    n_ = _index(n, "n")
    return _native.get_window(_window_arg(window, n_, "n"), n_)


def _frame_args(n_fft: Any, hop_length: Any, win_length: Any) -> tuple[int, int, int]:
    """(n_fft, hop, win_length) with librosa's defaults."""
    n_fft_ = _index(n_fft, "n_fft")
    win = n_fft_ if win_length is None else _index(win_length, "win_length")
    hop = max(win // 4, 1) if hop_length is None else _index(hop_length, "hop_length")
    return n_fft_, hop, win


def _stft_plan(n_fft: Any, hop_length: Any, win_length: Any, window: Any, center: Any, pad_mode: Any) -> Any:
    n_fft_, hop, win = _frame_args(n_fft, hop_length, win_length)
    return _native.StftPlan(n_fft_, hop, win, _window_arg(window, win, "win_length"), bool(center), str(pad_mode))


def stft(
    x: ArrayLike,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: Any = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> NDArray[np.complexfloating[Any, Any]]:
    """Short-time Fourier transform equal to ``librosa.stft`` (same arguments and defaults).

    ``x`` has time on its last axis and any leading (batch) axes; the result has shape
    ``(..., 1 + n_fft // 2, n_frames)``, complex64 for float32 input and complex128 otherwise
    (FFTs run in float64). The window of ``win_length`` (default ``n_fft``) is centred in
    ``n_fft``; ``center=True`` pads ``n_fft // 2`` samples per side with ``pad_mode``
    ("constant", "edge", "reflect" or "symmetric"). The result is a view with frames as the
    slow axis (librosa's layout too). Non-finite input raises ValueError, as in librosa."""
    arr = as_float_array(x, "x")
    out = _native.stft(arr, _stft_plan(n_fft, hop_length, win_length, window, center, pad_mode))
    return np.swapaxes(out, -1, -2)


def _spectrogram_plan(
    fs: float, window: Any, nperseg: int, noverlap: int, nfft: int, detrend: Any, scaling: Any
) -> Any:
    detrend_ = "none" if detrend is False or detrend is None else str(detrend)
    window_ = _window_arg(window, nperseg, "nperseg")
    return _native.SpectrogramPlan(fs, window_, nperseg, noverlap, nfft, detrend_, str(scaling))


def spectrogram(
    x: ArrayLike,
    fs: float = 1.0,
    window: Any = ("tukey", 0.25),
    nperseg: int | None = None,
    noverlap: int | None = None,
    nfft: int | None = None,
    detrend: str | bool | None = "constant",
    scaling: str = "density",
) -> tuple[NDArray[np.float64], NDArray[np.float64], FloatArray]:
    """``scipy.signal.spectrogram`` (one-sided, mode "psd"): returns ``(f, t, Sxx)``.

    Defaults as scipy: ``nperseg`` 256 (or the window's length for an array window),
    ``noverlap`` ``nperseg // 8``, ``nfft`` ``nperseg``. ``detrend`` is "constant", "linear" or
    False; ``scaling`` "density" (power/Hz) or "spectrum". ``Sxx`` has shape
    ``(..., len(f), len(t))`` and ``x``'s float dtype. Unlike scipy, a signal shorter than
    ``nperseg`` raises ValueError instead of shrinking the window."""
    arr = as_float_array(x, "x")
    fs_ = _real(fs, "fs")
    named = isinstance(window, (str, tuple)) or callable(window)
    default_seg = 256 if named else int(np.size(window))  # an array window: its length
    seg = default_seg if nperseg is None else _index(nperseg, "nperseg")
    overlap = seg // 8 if noverlap is None else _index(noverlap, "noverlap")
    nfft_ = seg if nfft is None else _index(nfft, "nfft")
    sxx = _native.spectrogram(arr, _spectrogram_plan(fs_, window, seg, overlap, nfft_, detrend, scaling))
    n = arr.shape[-1]
    freqs = np.fft.rfftfreq(nfft_, 1 / fs_).astype(np.float64)
    times = np.arange(seg / 2, n - seg / 2 + 1, seg - overlap) / fs_
    return freqs, times, np.swapaxes(sxx, -1, -2)


def _mel_args(sr: Any, n_mels: Any, fmin: Any, fmax: Any, norm: Any) -> tuple[float, int, float, float, bool]:
    """(sr, n_mels, fmin, fmax, slaney) with librosa's defaults."""
    sr_ = _real(sr, "sr")
    n_mels_ = _index(n_mels, "n_mels")
    fmax_ = sr_ / 2 if fmax is None else _real(fmax, "fmax")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    return sr_, n_mels_, _real(fmin, "fmin"), fmax_, norm == "slaney"


def mel_filterbank(
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> NDArray[np.float32]:
    """Mel filterbank equal to ``librosa.filters.mel`` (Slaney scale and area normalization by
    default): float32, shape ``(n_mels, 1 + n_fft // 2)``. ``fmax`` defaults to ``sr / 2``."""
    n_fft_ = _index(n_fft, "n_fft")
    sr_, n_mels_, fmin_, fmax_, slaney = _mel_args(sr, n_mels, fmin, fmax, norm)
    return _native.mel_filterbank(sr_, n_fft_, n_mels_, fmin_, fmax_, bool(htk), slaney)


def melspectrogram(
    x: ArrayLike,
    sr: float = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    power: float = 2.0,
    window: Any = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    htk: bool = False,
    norm: str | None = "slaney",
) -> FloatArray:
    """Mel spectrogram equal to ``librosa.feature.melspectrogram(y=x, ...)``: ``mel_filterbank
    @ |stft(x)|**power``, shape ``(..., n_mels, n_frames)``, ``x``'s float dtype.

    Only the frequency bins the filters touch are computed; with a short window and a low
    ``fmax`` (EEG) they come from one dense matrix product instead of an FFT per frame."""
    arr = as_float_array(x, "x")
    plan = _stft_plan(n_fft, hop_length, win_length, window, center, pad_mode)
    sr_, n_mels_, fmin_, fmax_, slaney = _mel_args(sr, n_mels, fmin, fmax, norm)
    return _native.melspectrogram(arr, plan, sr_, _real(power, "power"), n_mels_, fmin_, fmax_, bool(htk), slaney)


def power_to_db(S: ArrayLike, ref: Any = "max", amin: float = 1e-10, top_db: float | None = 80.0) -> FloatArray:
    """``librosa.power_to_db`` applied to each 2-D spectrogram (the last two axes) separately:
    ``10 * log10(max(amin, S) / max(amin, ref))``, floored at ``max - top_db`` of that
    spectrogram. ``ref`` is "max" (or ``np.max``: each spectrogram's own maximum) or a number."""
    arr = as_float_array(S, "S")
    if isinstance(ref, str) and ref == "max" or ref is np.max or ref is np.amax:
        reference = None
    elif callable(ref) or isinstance(ref, str):
        raise ValueError(f"ref must be 'max', np.max or a number, got {ref!r}")
    else:
        reference = _real(ref, "ref")
    top = None if top_db is None else _real(top_db, "top_db")
    return _native.power_to_db(arr, reference, _real(amin, "amin"), top)


def _channel_names(channels: Sequence[str] | None, n_channels: int, name: str = "eeg") -> list[str]:
    if channels is None:
        if n_channels != len(_EEG_CHANNELS):
            raise ValueError(
                f"{name} must have the competition's {len(_EEG_CHANNELS)} channels on axis -2 "
                f"({', '.join(_EEG_CHANNELS)}), got {n_channels}; pass channels= to name them "
                "(and transpose (samples, channels) data)"
            )
        return list(_EEG_CHANNELS)
    if isinstance(channels, str) or not all(isinstance(c, str) for c in channels):
        raise TypeError(f"channels must be a sequence of channel names, got {channels!r}")
    names = list(channels)
    if len(names) != n_channels:
        raise ValueError(f"channels names {len(names)} channels, but {name} has {n_channels} on axis -2")
    return names


def _eeg_array(eeg: Any, channels: Sequence[str] | None) -> tuple[FloatArray, list[str]]:
    if hasattr(eeg, "columns") and hasattr(eeg, "to_numpy"):  # a DataFrame: (samples, channels)
        if channels is None:
            channels = [str(c) for c in eeg.columns]
        eeg = eeg.to_numpy().T
    arr = as_float_array(eeg, "eeg")
    if arr.ndim < 2:
        raise ValueError(f"eeg must have shape (..., channels, samples), got {arr.shape}")
    return arr, _channel_names(channels, arr.shape[-2])


def bipolar_montage(eeg: ArrayLike, channels: Sequence[str] | None = None) -> FloatArray:
    """The 16 double-banana differences ``BIPOLAR_PAIRS`` of EEG shaped ``(..., channels,
    samples)``: result ``(..., 16, samples)`` in ``eeg``'s float dtype, NaN propagated.

    Channels are in the competition's order (Fp1, F3, C3, P3, F7, T3, T5, O1, Fz, Cz, Pz, Fp2,
    F4, C4, P4, F8, T4, T6, O2, EKG) unless ``channels`` names them (any order and case; T7, T8,
    P7, P8 stand for T3, T4, T5, T6). A DataFrame (samples x channels) is taken by its columns."""
    arr, names = _eeg_array(eeg, channels)
    return _native.bipolar_montage(arr, names)


#: Defaults of ``eeg_spectrograms(recipe="mel")``: the public notebooks' "magic formula".
MEL_RECIPE: dict[str, Any] = {
    "fs": 200.0,
    "n_fft": 1024,
    "hop_length": None,  # None: n_samples // 256
    "win_length": 128,
    "window": "hann",
    "n_mels": 128,
    "fmin": 0.0,
    "fmax": 20.0,
    "power": 2.0,
    "amin": 1e-10,
    "top_db": 80.0,
    "width_multiple": 32,
    "offset": 40.0,
    "scale": 40.0,
}

#: Defaults of ``eeg_spectrograms(recipe="scipy")``: ``spectrogram``'s own defaults at 200 Hz.
SCIPY_RECIPE: dict[str, Any] = {
    "fs": 200.0,
    "window": ("tukey", 0.25),
    "nperseg": 256,
    "noverlap": None,  # None: nperseg // 8
    "nfft": None,  # None: nperseg
    "detrend": "constant",
    "scaling": "density",
    "amin": 1e-10,
    "fmax": None,  # None: every bin; else the bins at or below fmax
}


class ChainSpectrograms(NamedTuple):
    """Images of the four chains: ``images`` (..., 4, height, width), ``names`` their chains."""

    images: FloatArray
    names: tuple[str, ...]


def _recipe_params(recipe: str, params: dict[str, Any]) -> dict[str, Any]:
    defaults = {"mel": MEL_RECIPE, "scipy": SCIPY_RECIPE}.get(recipe)
    if defaults is None:
        raise ValueError(f"recipe must be 'mel' or 'scipy', got {recipe!r}")
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise TypeError(f"recipe {recipe!r} has no parameter {', '.join(unknown)} (it has {', '.join(defaults)})")
    return {**defaults, **params}


def _filters(bandpass: Any, notch: Any, order: Any, notch_q: Any, fs: float) -> list[NDArray[np.float64]]:
    filters = []
    if bandpass is not None:
        if np.ndim(bandpass) != 1 or len(bandpass) != 2:
            raise ValueError(f"bandpass must be a pair (low, high) in Hz, got {bandpass!r}")
        try:
            filters.append(butter_sos(order, tuple(bandpass), "bandpass", fs))
        except (ValueError, TypeError) as exc:
            # butter_sos names its own arguments: cutoff is the recipe's bandpass.
            raise type(exc)(f"bandpass={bandpass!r} (filter_order={order!r}): {exc}") from None
    if notch is not None:
        try:
            filters.append(notch_sos(notch, notch_q, fs))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"notch={notch!r} (notch_q={notch_q!r}): {exc}") from None
    return filters


def _checked_recipe(
    recipe: str,
    n_samples: int | None = 10_000,
    bandpass: tuple[float, float] | None = None,
    notch: float | None = None,
    filter_order: int = 4,
    notch_q: float = 30.0,
    **params: Any,
) -> tuple[dict[str, Any], float, int | None, list]:
    """The options of both EEG recipes, with their defaults: (recipe parameters, fs, samples kept
    or None, filter sections)."""
    p = _recipe_params(recipe, params)
    fs = _real(p["fs"], "fs")
    kept = None if n_samples is None else _index(n_samples, "n_samples")
    return p, fs, kept, _filters(bandpass, notch, filter_order, notch_q, fs)


def _native_mel_recipe(p: dict[str, Any], names: list[str], kept: int | None, filters: list, fs: float) -> Any:
    """The native mel recipe object of checked arguments."""
    hop = None if p["hop_length"] is None else _index(p["hop_length"], "hop_length")
    n_fft, _, win = _frame_args(p["n_fft"], hop or 1, p["win_length"])
    _, n_mels, fmin, fmax, _ = _mel_args(fs, p["n_mels"], p["fmin"], p["fmax"], "slaney")
    top_db = p["top_db"]
    return _native.EegMelRecipe(
        names,
        kept,
        filters,
        fs,
        n_fft,
        hop,
        win,
        _window_arg(p["window"], win, "win_length"),
        n_mels,
        fmin,
        fmax,
        _real(p["power"], "power"),
        _real(p["amin"], "amin"),
        None if top_db is None else _real(top_db, "top_db"),
        _index(p["width_multiple"], "width_multiple"),
        _real(p["offset"], "offset"),
        _real(p["scale"], "scale"),
    )


def eeg_mel_recipe(*, channels: Sequence[str] | None = None, **options: Any) -> Any:
    """The ``"mel"`` recipe of :func:`eeg_spectrograms` with these arguments, checked once, for
    :func:`model_inputs` (an opaque native object). ``options`` are :func:`eeg_spectrograms`'
    (``n_samples=10_000``, ``bandpass=None``, ``notch=None``, ``filter_order=4``,
    ``notch_q=30.0``, and ``MEL_RECIPE``'s parameters)."""
    names = _channel_names(channels, len(channels) if channels is not None else len(_EEG_CHANNELS))
    p, fs, kept, filters = _checked_recipe("mel", **options)
    return _native_mel_recipe(p, names, kept, filters, fs)


def eeg_raw_recipe(
    *,
    channels: Sequence[str] | None = None,
    n_samples: int | None = 10_000,
    montage: str = "banana16",
    bandpass: tuple[float, float] | None = (0.5, 20.0),
    filter_order: int = 4,
    notch: float | None = None,
    notch_q: float = 30.0,
    fs: float = 200.0,
    rate: float = 40.0,
    demean: bool = True,
    normalize: str = "clip",
    clip: float = 1024.0,
    scale: float = 32.0,
    eps: float = 1e-6,
) -> Any:
    """The raw-EEG input recipe for :func:`eeg_raw_inputs`, checked once (an opaque native object).

    Per EEG window: the middle ``n_samples`` (None: all); the bipolar differences of ``montage``
    ("banana16": ``BIPOLAR_PAIRS`` in chain order LL, LP, RL, RP, as :func:`bipolar_montage`;
    "banana18": the same 16, then Fz-Cz and Cz-Pz), each difference's NaN replaced by the mean of
    its finite values (zeros if all NaN), as the spectrogram recipes do; zero-phase Butterworth
    band-pass (``bandpass=(low, high)`` Hz of ``filter_order``; None: none) and notch (``notch`` Hz,
    quality ``notch_q``; None: none), as :func:`sosfiltfilt`; resampling from ``fs`` to ``rate``
    (:func:`resample_poly` by the fraction ``rate / fs``, whose terms must be integers of at most
    1000; ``rate == fs``: none; ``rate > fs`` upsamples); ``demean``: each link's mean subtracted;
    ``normalize``: "clip" (``clip(x, -clip, clip) / scale``), "standardize" (``(x - mean) / (std +
    eps)`` per link) or "none". Channels are in the competition's order unless ``channels`` names
    them (as :func:`bipolar_montage`)."""
    names = _channel_names(channels, len(channels) if channels is not None else len(_EEG_CHANNELS))
    fs_ = _real(fs, "fs")
    kept = None if n_samples is None else _index(n_samples, "n_samples")
    filters = _filters(bandpass, notch, filter_order, notch_q, fs_)
    for value, name in ((montage, "montage"), (normalize, "normalize")):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
    return _native.EegRawRecipe(
        names,
        montage,
        kept,
        filters,
        fs_,
        _real(rate, "rate"),
        bool(demean),
        normalize,
        _real(clip, "clip"),
        _real(scale, "scale"),
        _real(eps, "eps"),
    )


def eeg_raw_inputs(eeg: ArrayLike, recipe: Any) -> NDArray[np.float32]:
    """Model inputs ``(..., n_links, n_out)`` float32 of EEG windows ``(..., channels, samples)``
    through ``recipe`` (:func:`eeg_raw_recipe`), in one native call per batch: computed in
    float64, in parallel over windows and links."""
    if not isinstance(recipe, _native.EegRawRecipe):
        raise TypeError(f"recipe must be an eeg_raw_recipe(...), got {type(recipe).__name__}")
    return _native.eeg_raw_inputs(as_float_array(eeg, "eeg"), recipe)


def model_inputs(
    sources: Sequence[str],
    *,
    eeg: ArrayLike | None = None,
    eeg_recipe: Any = None,
    kaggle: ArrayLike | None = None,
    kaggle_order: Sequence[int] = (0, 1, 2, 3),
    clip: tuple[float, float, float] = (math.exp(-6), math.exp(10), -1.0),
    layout: str = "stack",
    eps: float = 1e-6,
    stats: Sequence[tuple[float, float]] | None = None,
) -> NDArray[np.float32]:
    """Normalized model inputs ``(..., C, H, W)`` float32 from raw windows, in one native pass
    per sample: for each source of ``sources`` ("kaggle", "eeg"), its four 128 x 256 tiles
    (chain order LL, LP, RL, RP) written in place and standardized there.

    - "kaggle": ``kaggle`` windows ``(..., 4, F<=128, T>=256)``, regions taken in
      ``kaggle_order``, ``log(clip(nan_to_num(x, nan), lo, hi))`` with ``clip=(lo, hi, nan)``,
      standardized over all their values, rows centred in the tile (zeros around), frames
      cropped to the middle 256.
    - "eeg": ``eeg`` windows ``(..., channels, samples)`` through ``eeg_recipe``
      (:func:`eeg_mel_recipe`), whose images must be 128 x 256.

    ``layout``: "channels" ``(4 S, 128, 256)`` or "stack" ``(1, 512, 256 S)``. Standardization:
    each sample's source by its own mean and std, ``(x - mean) / (std + eps)`` in float64, or
    with ``stats``, one ``(mean, std)`` per source, ``(x - mean) / std`` in float32."""

    def f32(x: Any, name: str) -> NDArray[np.float32] | None:
        if x is None:
            return None
        arr = as_float_array(x, name)
        try:
            return np.ascontiguousarray(arr, dtype=np.float32)
        except MemoryError as exc:
            raise MemoryError(f"cannot allocate a contiguous float32 copy of {name}: {exc}") from None

    def items(value: Any, name: str, what: str, size: int | None = None) -> list[Any]:
        try:
            values = list(value)
        except TypeError:
            raise TypeError(f"{name} must be {what}, got {value!r}") from None
        if isinstance(value, str) or (size is not None and len(values) != size):
            raise TypeError(f"{name} must be {what}, got {value!r}")
        return values

    stats_ = None
    if stats is not None:
        pairs = [items(p, f"stats[{g}]", "a (mean, std) pair", 2) for g, p in enumerate(items(stats, "stats", "pairs"))]
        stats_ = [(_real(m, f"stats[{g}]'s mean"), _real(s, f"stats[{g}]'s std")) for g, (m, s) in enumerate(pairs)]
    lo, hi, nan = items(clip, "clip", "a (lo, hi, nan) triple", 3)
    return _native.model_inputs(
        [str(s) for s in items(sources, "sources", "a sequence of source names")],
        str(layout),
        _real(eps, "eps"),
        stats_,
        f32(eeg, "eeg"),
        eeg_recipe,
        f32(kaggle, "kaggle"),
        [_index(i, "kaggle_order") for i in items(kaggle_order, "kaggle_order", "four region indices")],
        (_real(lo, "clip's lo"), _real(hi, "clip's hi"), _real(nan, "clip's nan")),
    )


def eeg_spectrograms(
    eeg: Any, recipe: str = "mel", *, channels: Sequence[str] | None = None, **options: Any
) -> ChainSpectrograms:
    """Spectrogram images of the four double-banana chains (LL, LP, RL, RP) of one EEG
    ``(channels, samples)`` or a batch ``(..., channels, samples)``.

    Both recipes take the middle ``n_samples`` (default 10,000; None: all), form the 16 differences of
    ``BIPOLAR_PAIRS``, replace each difference's NaN by its mean (zeros if all NaN), optionally
    band-pass (``bandpass=(low, high)``, Butterworth of ``filter_order``, default 4) and notch
    (``notch`` Hz, quality ``notch_q``, default 30) with zero-phase filters, transform each difference, and average the
    four differences of each chain:

    - ``"mel"``: ``melspectrogram`` (``MEL_RECIPE``: sr=200, n_fft=1024, hop n//256,
      win_length=128, 128 mels up to 20 Hz), ``power_to_db(ref="max")`` per difference, width
      cropped to a multiple of 32, ``(db + 40) / 40``. Images (..., 4, 128, 256) for 10,000
      samples, equal to the public numpy+librosa recipe.
    - ``"scipy"``: ``spectrogram`` (``SCIPY_RECIPE``), ``log(max(Sxx, amin))``, the bins up to
      ``fmax``. Images (..., 4, n_freq, n_segments).

    The other ``options`` override the recipe's defaults (``fs`` is the sampling rate of both). The images
    have ``eeg``'s float dtype (float32 for the competition's files); the mel recipe computes
    its float32 products in float32."""
    arr, names = _eeg_array(eeg, channels)
    p, fs, kept, filters = _checked_recipe(recipe, **options)
    if recipe == "mel":
        images = _native.eeg_mel_spectrograms(arr, _native_mel_recipe(p, names, kept, filters, fs))
    else:
        seg = _index(p["nperseg"], "nperseg")
        overlap = seg // 8 if p["noverlap"] is None else _index(p["noverlap"], "noverlap")
        nfft = seg if p["nfft"] is None else _index(p["nfft"], "nfft")
        fmax = None if p["fmax"] is None else _real(p["fmax"], "fmax")
        spec = _spectrogram_plan(fs, p["window"], seg, overlap, nfft, p["detrend"], p["scaling"])
        images = _native.eeg_scipy_spectrograms(arr, names, kept, filters, spec, _real(p["amin"], "amin"), fmax)
    return ChainSpectrograms(images, CHAIN_NAMES)
