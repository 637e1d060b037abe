"""Signal processing for EEG and spectrograms: typed wrappers over the native Rust core.

Every function takes float32 or float64 arrays of any leading shape (integers and bools are
converted to float64), computes in float64, and returns the input's float dtype. Bad input raises
``ValueError`` or ``TypeError`` naming the argument. The native work runs in parallel with the GIL
released; set ``RAYON_NUM_THREADS`` to bound its threads.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal as _signal

from hms import _native

__all__ = [
    "RunningStats",
    "butter_sos",
    "clip_log",
    "instance_normalize",
    "notch_sos",
    "sosfiltfilt",
    "sosfilt_zi",
    "sos_padlen",
]

FloatArray = NDArray[np.floating[Any]]

_BTYPES = {
    "lowpass": "lowpass", "low": "lowpass", "lp": "lowpass",
    "highpass": "highpass", "high": "highpass", "hp": "highpass",
    "bandpass": "bandpass", "band": "bandpass", "bp": "bandpass", "pass": "bandpass",
    "bandstop": "bandstop", "stop": "bandstop", "bs": "bandstop",
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
    if kind in "iub":
        arr = arr.astype(np.float64)
    elif kind == "f":
        if arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        elif arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


def _normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(f"{name}={axis} is out of bounds for an array of {ndim} dimensions")
    return ax % ndim


def _finite_number(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _check_fs_and_freqs(freqs: Sequence[float], fs: Any, name: str) -> float:
    fs_ = _finite_number(fs, "fs")
    if fs_ <= 0:
        raise ValueError(f"fs must be positive, got {fs_}")
    for f in freqs:
        if not 0 < f < fs_ / 2:
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
    freqs = np.atleast_1d(np.asarray(cutoff, dtype=np.float64)) if np.ndim(cutoff) <= 1 else None
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
    b, a = _signal.iirnotch(f, q_, fs=float(fs))
    return _signal.tf2sos(b, a)


def _as_sos(sos: ArrayLike) -> NDArray[np.float64]:
    arr = as_float_array(sos, "sos")
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise ValueError(f"sos must have shape (n_sections, 6), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


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


def clip_log(
    x: ArrayLike,
    lo: float = math.exp(-6),
    hi: float = math.exp(10),
    nan: float = -1.0,
    out: FloatArray | None = None,
) -> FloatArray:
    """``np.log(np.clip(np.nan_to_num(x, nan=nan), lo, hi))`` in one pass; in place with ``out=x``.

    ``+inf``/``-inf`` end up at ``hi``/``lo`` as with ``nan_to_num``. ``out`` must have ``x``'s
    shape and float dtype and be C-contiguous and writeable."""
    arr = as_float_array(x, "x", allow_empty=True)
    lo_, hi_, nan_ = (_finite_number(v, n) for v, n in ((lo, "lo"), (hi, "hi"), (nan, "nan")))
    if out is None:
        return _native.clip_log(arr, lo_, hi_, nan_)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != arr.shape or out.dtype != arr.dtype:
        raise ValueError(f"out must have x's shape {arr.shape} and dtype {arr.dtype}, got {out.shape} {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writeable")
    if out is not arr:
        np.copyto(out, arr)
    _native.clip_log_inplace(out, lo_, hi_, nan_)
    return out


def instance_normalize(x: ArrayLike, axes: int | Sequence[int], eps: float = 1e-6) -> FloatArray:
    """Standardizes each instance: ``(x - mean) / (std + eps)`` with mean and population std taken
    over ``axes`` (e.g. ``(-2, -1)`` for a batch of images), computed in float64.

    Raises ValueError for NaN/inf in an instance, or a constant instance with ``eps=0``."""
    arr = as_float_array(x, "x")
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension")
    axes_seq = (axes,) if np.ndim(axes) == 0 else tuple(axes)  # type: ignore[arg-type]
    if not axes_seq:
        raise ValueError("axes must name at least one axis")
    norm = tuple(_normalize_axis(a, arr.ndim, "axes") for a in axes_seq)
    if len(set(norm)) != len(norm):
        raise ValueError(f"axes contains a repeated axis: {axes!r}")
    eps_ = _finite_number(eps, "eps")
    if eps_ < 0:
        raise ValueError(f"eps must be >= 0, got {eps_}")
    inner = tuple(range(arr.ndim - len(norm), arr.ndim))
    moved = np.moveaxis(arr, norm, inner)
    instance_size = math.prod(moved.shape[len(moved.shape) - len(norm):])
    flat = moved.reshape(-1, instance_size)
    out = _native.instance_normalize(flat, eps_).reshape(moved.shape)
    return np.moveaxis(out, inner, norm)


# Columns of the native state (see rust/stats.rs, Moments).
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
        if axis is not None:
            axis = operator.index(axis)
        self.axis = axis
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
