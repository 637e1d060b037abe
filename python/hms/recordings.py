"""Clinical recordings: EDF, EDF+ and BDF files (and competition-style parquet) as the
competition's 19 scalp channels + EKG, in its channel order, in microvolts, at 200 Hz.

    read_recording(path, mapping=None, allow_missing=False) -> Recording

Channel labels are matched by these rules, in order:

1. a user mapping (``{file label: competition channel}``, e.g. from a TOML/JSON file via
   :func:`load_mapping`), matched case-insensitively;
2. the label, upper-cased, without a type prefix (``EEG``, ``ECG``, ``EKG``, ``POL``) and without a
   reference suffix (``-REF``, ``-LE``, ``-RE``, ``-AVG``, ``-AV``, ``-A1``, ``-A2``, ``-M1``,
   ``-M2``, ``-CZ``);
3. 10-10 names to the competition's 10-20 names: T7 -> T3, T8 -> T4, P7 -> T5, P8 -> T6; ``ECG``,
   ``ECG1``, ``EKG1`` -> EKG.

Two labels for one channel, a missing channel (unless ``allow_missing``: it is filled as flat
zeros, with a warning) and a bipolar-only recording (labels such as ``FP1-F7``: the montage needs
referential channels) are errors that name the file and the labels. EDF/BDF reading needs the
``[edf]`` extra (edfio). Physical units ``uV``/``µV``, ``mV``, ``V`` and ``nV`` are converted to
microvolts. Every channel must share one sampling rate; other rates than 200 Hz are resampled
(polyphase, :func:`hms.dsp.resample_poly`, equal to ``scipy.signal.resample_poly``). A
discontinuous EDF+D file is laid out on its true time axis: each data record at the onset its
time-keeping annotation gives (rounded to the nearest sample), the time between records as NaN,
i.e. a gap like the competition's NaN runs (the input recipes fill them, and window predictions
report the share of each window that is a gap); overlapping records are an error. NaN samples
(e.g. gaps in a parquet file) are kept, as for the competition's files.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from hms.schema import EEG_CHANNELS, SAMPLE_RATE

log = logging.getLogger(__name__)

ALIASES = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6", "ECG": "EKG", "ECG1": "EKG", "EKG1": "EKG"}
_PREFIX = re.compile(r"^(EEG|ECG|EKG|POL)[\s_:]+")
_SUFFIX = re.compile(r"[-_ ](REF|LE|RE|AVG|AV|A1|A2|M1|M2|CZ)$")
#: Physical units (upper case, micro signs as U) -> factor to microvolts.
UNITS = {"UV": 1.0, "MICROVOLT": 1.0, "MV": 1e3, "V": 1e6, "NV": 1e-3}
_COMPETITION_UPPER = {name.upper(): name for name in EEG_CHANNELS}


class RecordingError(ValueError):
    """A recording cannot be read as the competition's channels; the message names the file."""


@dataclass(frozen=True)
class Recording:
    """(20, samples) float32 microvolts at 200 Hz in :data:`EEG_CHANNELS` order."""

    data: np.ndarray
    source_rate: float  # the file's sampling rate before resampling
    missing: tuple[str, ...]  # channels filled as flat zeros (allow_missing)

    @property
    def seconds(self) -> float:
        return self.data.shape[1] / SAMPLE_RATE


def canonical_label(label: str) -> str:
    """A file's channel label by rules 2 and 3 of the module docstring (``EEG Fp1-REF`` ->
    ``FP1``, ``T7`` -> ``T3``); upper case, so compare with upper-cased competition names."""
    text = _PREFIX.sub("", label.strip().upper()).strip()
    text = _SUFFIX.sub("", text).strip()
    return ALIASES.get(text, text)


def _is_bipolar(label: str) -> bool:
    parts = canonical_label(label).split("-")
    return len(parts) == 2 and all(ALIASES.get(p, p) in _COMPETITION_UPPER for p in parts)


def load_mapping(path: str | os.PathLike) -> dict[str, str]:
    """A user mapping file: TOML (``"EEG 1" = "Fp1"``) or JSON (``{"EEG 1": "Fp1"}``)."""
    from hms.config import read_toml_or_json

    mapping = read_toml_or_json(Path(path), "channel mapping")
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise RecordingError(f"{path}: a channel mapping is a table of file label = competition channel")
    bad = sorted(v for v in mapping.values() if v.upper() not in _COMPETITION_UPPER)
    if bad:
        raise RecordingError(f"{path}: {bad} are not competition channels; expected some of {list(EEG_CHANNELS)}")
    return {str(k): v for k, v in mapping.items()}


def map_channels(
    labels: list[str], path: str | os.PathLike, mapping: dict[str, str] | None = None, allow_missing: bool = False
) -> list[int | None]:
    """For each competition channel, the index of the file's label that holds it (None: missing,
    when ``allow_missing``)."""
    user = {k.strip().upper(): v.upper() for k, v in (mapping or {}).items()}
    found: dict[str, list[str]] = {}
    index: dict[str, int] = {}
    for i, label in enumerate(labels):
        name = user.get(label.strip().upper(), canonical_label(label))
        if name in _COMPETITION_UPPER:
            found.setdefault(name, []).append(label)
            index.setdefault(name, i)
    twice = {_COMPETITION_UPPER[k]: v for k, v in found.items() if len(v) > 1}
    if twice:
        raise RecordingError(f"{path}: several labels for one channel: {twice}; pass a mapping to choose")
    missing = [c for c in EEG_CHANNELS if c.upper() not in index]
    if missing and not index and any(_is_bipolar(label) for label in labels):
        raise RecordingError(
            f"{path}: a bipolar recording (labels such as {[lb for lb in labels if _is_bipolar(lb)][:3]}); "
            "the double-banana montage is computed from referential channels, which it does not have"
        )
    if missing and not allow_missing:
        raise RecordingError(
            f"{path}: channel(s) {missing} not found among its labels {labels}; pass a mapping "
            "(file label = channel) or allow missing channels to fill them as flat"
        )
    if missing:
        log.warning("%s: channel(s) %s not found; filled as flat zeros", path, missing)
    return [index.get(c.upper()) for c in EEG_CHANNELS]


def microvolt_factor(unit: str) -> float | None:
    """The factor from a physical unit to microvolts (``uV``, ``µV``, ``mV``, ``V``, ``nV``);
    None for a unit that is not a voltage."""
    key = unit.strip().replace("\u00b5", "u").replace("\u03bc", "u").upper()
    return UNITS.get(key)


def resample_to_rate(x: np.ndarray, rate: float, path: str | os.PathLike = "") -> np.ndarray:
    """(channels, samples) at ``rate`` Hz -> the same at 200 Hz (polyphase, the zero-phase FIR of
    ``scipy.signal.resample_poly``, natively: :func:`hms.dsp.resample_poly`); NaN stays NaN
    around its position."""
    if not math.isfinite(rate) or rate <= 0:
        raise RecordingError(f"{path}: sampling rate must be positive, got {rate}")
    ratio = Fraction(SAMPLE_RATE) / Fraction(rate).limit_denominator(10_000)
    if ratio == 1:
        return x.astype(np.float32, copy=False)
    from hms import dsp

    nan = np.isnan(x)
    # Gaps are filled with zeros first: a NaN would spread over the filter's length (its
    # window's outputs), and is put back below at the outputs nearest to it instead.
    filled = np.where(nan, 0.0, x)
    out = dsp.resample_poly(filled, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)
    if nan.any():  # a resampled gap stays a gap (at the nearest output samples)
        # floor(i / ratio), exactly: in integers.
        positions = np.minimum(np.arange(out.shape[-1]) * ratio.denominator // ratio.numerator, x.shape[-1] - 1)
        out[nan[:, positions]] = np.nan
    return out


def read_recording(
    path: str | os.PathLike, *, mapping: dict[str, str] | None = None, allow_missing: bool = False
) -> Recording:
    """The recording at ``path`` (``.edf``, ``.bdf`` or ``.parquet``) as the competition's 20
    channels in microvolts at 200 Hz; see the module docstring for the rules."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        from hms.readers import read_eeg

        return Recording(read_eeg(path, min_rows=1), float(SAMPLE_RATE), ())
    if suffix not in (".edf", ".bdf"):
        raise RecordingError(f"{path}: unknown recording format {suffix!r}; expected .edf, .bdf or .parquet")
    labels, signals, rate = _read_edf(path)
    columns = map_channels(labels, path, mapping, allow_missing)
    length = len(next(iter(signals)))
    data = np.zeros((len(EEG_CHANNELS), length), dtype=np.float64)
    for row, column in enumerate(columns):
        if column is not None:
            data[row] = signals[column]
    missing = tuple(c for c, col in zip(EEG_CHANNELS, columns) if col is None)
    return Recording(resample_to_rate(data, rate, path), rate, missing)


def _read_edf(path: Path) -> tuple[list[str], list[np.ndarray], float]:
    """(labels, signals in microvolts, the shared sampling rate) of the EEG-like signals of an
    EDF/BDF file (annotations and signals in other units are left out)."""
    try:
        import edfio
    except ImportError:
        raise NotImplementedError(f"{path}: reading EDF/BDF needs the edf extra (pip install 'hms-eeg[edf]')") from None
    reader = edfio.read_bdf if path.suffix.lower() == ".bdf" else edfio.read_edf
    try:
        edf = reader(path)
        signals: list[Any] = list(edf.signals)
        continuous = edf.is_continuous
    except Exception as exc:  # edfio raises ValueError, UnicodeDecodeError, struct errors... on bad headers
        raise RecordingError(
            f"{path}: not a readable {path.suffix[1:].upper()} file ({type(exc).__name__}: {exc})"
        ) from None
    labels, data, rates = [], [], set()
    for signal in signals:
        factor = microvolt_factor(signal.physical_dimension)
        if factor is None:
            continue  # not a voltage: e.g. SpO2, a trigger or a photic channel
        labels.append(signal.label)
        data.append(np.asarray(signal.data, dtype=np.float64) * factor)
        rates.add(float(signal.sampling_frequency))
    if not labels:
        raise RecordingError(
            f"{path}: no voltage channels (labels {[s.label for s in signals]}, units "
            f"{[s.physical_dimension for s in signals]}); expected uV, mV, V or nV"
        )
    if len(rates) > 1:
        raise RecordingError(f"{path}: channels at several sampling rates {sorted(rates)}; hms needs one")
    rate = rates.pop()
    if not continuous:
        data = list(_on_time_axis(np.stack(data), _record_onsets(path), rate, path))
    return labels, data, rate


def _record_onsets(path: Path) -> tuple[np.ndarray, float]:
    """(onset in seconds of every data record, the record duration) of an EDF+/BDF+ file, from
    the first time-keeping annotation of each record's annotation signal (read from the file's
    header and records directly: the reader has already checked the header)."""
    width = 3 if path.suffix.lower() == ".bdf" else 2
    with path.open("rb") as f:
        fixed = f.read(256)
        n_signals, duration = int(fixed[252:256]), float(fixed[244:252])
        signal_header = f.read(256 * n_signals)

        def field(offset: int, size: int) -> list[bytes]:  # one of the header's per-signal fields
            return [signal_header[offset * n_signals + i * size :][:size] for i in range(n_signals)]

        labels = [label.decode("latin-1").strip() for label in field(0, 16)]
        samples = [int(n) for n in field(216, 8)]
        annotations = [i for i, label in enumerate(labels) if label in ("EDF Annotations", "BDF Annotations")]
        if not annotations:
            raise RecordingError(f"{path}: a discontinuous recording without time-keeping annotations")
        record_bytes = sum(samples) * width
        before = sum(samples[: annotations[0]]) * width
        size = path.stat().st_size - 256 * (n_signals + 1)
        onsets = []
        for record in range(size // record_bytes):
            f.seek(256 * (n_signals + 1) + record * record_bytes + before)
            tal = f.read(samples[annotations[0]] * width)
            try:
                onsets.append(float(tal.split(b"\x14", 1)[0].decode("ascii")))
            except (UnicodeDecodeError, ValueError):
                raise RecordingError(f"{path}: data record {record} has no time-keeping onset ({tal[:20]!r})") from None
    return np.array(onsets), duration


def _on_time_axis(data: np.ndarray, onsets_duration: tuple[np.ndarray, float], rate: float, path: Path) -> np.ndarray:
    """(channels, records x samples per record) of an EDF+D file -> (channels, samples) with each
    record at its onset and NaN between records."""
    onsets, duration = onsets_duration
    per_record = int(round(duration * rate))
    if per_record * len(onsets) != data.shape[1]:
        raise RecordingError(f"{path}: {len(onsets)} data records of {per_record} samples, but {data.shape[1]} samples")
    starts = np.round((onsets - onsets[0]) * rate).astype(np.int64)
    overlap = np.flatnonzero(np.diff(starts) < per_record)
    if len(overlap):
        k = int(overlap[0]) + 1
        raise RecordingError(
            f"{path}: data record {k} starts at {onsets[k]:g} s, before record {k - 1} ends "
            f"({onsets[k - 1]:g} s + {duration:g} s)"
        )
    out = np.full((data.shape[0], int(starts[-1]) + per_record), np.nan)
    index = (starts[:, None] + np.arange(per_record)).ravel()
    out[:, index] = data
    return out
