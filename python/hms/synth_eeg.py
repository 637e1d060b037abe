"""Signal models of the synthetic dataset: EEG background, EKG, artifacts, class patterns, and
the Kaggle-style spectrogram computed from the EEG.

All signals are in microvolts at 200 Hz, channels in :data:`hms.schema.EEG_CHANNELS` order (19
scalp channels, then EKG). Amplitudes are calibrated so that bipolar derivations have the real
files' order of magnitude (about 15-30 uV std, spectrogram values ~10 at 1 Hz down to ~0.05 at
20 Hz) and referential channels share a large common-mode component, as real ones do.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft

from hms.schema import (
    BIPOLAR_CHAINS,
    EEG_CHANNELS,
    REGIONS,
    SAMPLE_RATE,
    SPEC_FFT_SIZE,
    SPEC_FRAME_SECONDS,
    SPEC_FREQ_BINS,
)

FS = SAMPLE_RATE
N_SCALP = 19
PATTERNS = ("seizure", "lpd", "gpd", "lrda", "grda", "other")

# Approximate 10-20 positions on a unit disc (x: left -1 .. right +1, y: occiput -1 .. nose +1).
ELECTRODE_XY = {
    "Fp1": (-0.31, 0.95), "F3": (-0.40, 0.50), "C3": (-0.50, 0.0), "P3": (-0.40, -0.50),
    "F7": (-0.81, 0.59), "T3": (-1.00, 0.0), "T5": (-0.81, -0.59), "O1": (-0.31, -0.95),
    "Fz": (0.0, 0.45), "Cz": (0.0, 0.0), "Pz": (0.0, -0.45), "Fp2": (0.31, 0.95),
    "F4": (0.40, 0.50), "C4": (0.50, 0.0), "P4": (0.40, -0.50), "F8": (0.81, 0.59),
    "T4": (1.00, 0.0), "T6": (0.81, -0.59), "O2": (0.31, -0.95),
}  # fmt: skip
XY = np.array([ELECTRODE_XY[name] for name in EEG_CHANNELS[:N_SCALP]])
_DISTANCE = np.linalg.norm(XY[:, None, :] - XY[None, :, :], axis=-1)
# Neighbouring electrodes see overlapping sources: exponential spatial correlation.
_SPATIAL_MIX = np.linalg.cholesky(np.exp(-_DISTANCE / 0.45) + 1e-9 * np.eye(N_SCALP)).astype(np.float32)


def _channel_weights(names_to_weight: dict[str, float]) -> np.ndarray:
    weights = np.zeros(N_SCALP)
    for name, w in names_to_weight.items():
        weights[EEG_CHANNELS.index(name)] = w
    return weights


_BLINK_FIELD = _channel_weights(
    {"Fp1": 1.0, "Fp2": 1.0, "F7": 0.45, "F8": 0.45, "F3": 0.45, "F4": 0.45, "Fz": 0.4,
     "C3": 0.1, "C4": 0.1, "Cz": 0.1, "T3": 0.1, "T4": 0.1}
)  # fmt: skip
_SACCADE_FIELD = _channel_weights({"F7": 1.0, "F8": -1.0, "Fp1": 0.4, "Fp2": -0.4, "T3": 0.2, "T4": -0.2})
_MUSCLE_FIELD = _channel_weights(
    {"T3": 1.0, "T4": 1.0, "F7": 0.9, "F8": 0.9, "T5": 0.6, "T6": 0.6, "Fp1": 0.4, "Fp2": 0.4,
     "F3": 0.2, "F4": 0.2, "O1": 0.2, "O2": 0.2}
)  # fmt: skip


@dataclass(frozen=True)
class PatientTraits:
    """What stays the same across one patient's recordings."""

    amplitude: float  # scale of the background (1.0: typical adult)
    spectral_exponent: float  # background power ~ 1 / f**exponent
    alpha_hz: float
    alpha_gain: float  # posterior alpha rhythm, relative to background
    heart_bpm: float  # 50..110
    ekg_gain: float  # R-wave amplitude on the EKG channel (uV)
    ekg_leak: np.ndarray  # (19,) uV of R-wave leaking into each scalp channel
    line_noise: float  # 60 Hz amplitude on the EKG lead (uV)
    blink_rate: float  # per second
    muscle_rate: float  # bursts per second

    @staticmethod
    def draw(rng: np.random.Generator) -> PatientTraits:
        leak_pattern = rng.normal(0.0, 1.0, N_SCALP) * (1.0 + 0.8 * (np.abs(XY[:, 0]) > 0.7))
        return PatientTraits(
            amplitude=float(rng.lognormal(0.0, 0.25)),
            spectral_exponent=float(rng.uniform(1.7, 2.3)),
            alpha_hz=float(rng.uniform(7.5, 11.0)),
            alpha_gain=float(rng.uniform(0.0, 1.0) ** 1.5),
            heart_bpm=float(rng.uniform(50.0, 110.0)),
            ekg_gain=float(rng.uniform(300.0, 1500.0)),
            ekg_leak=leak_pattern * float(rng.uniform(1.0, 6.0)),
            line_noise=float(rng.choice([0.0, rng.uniform(5.0, 400.0)])),
            blink_rate=float(rng.uniform(0.0, 0.3)),
            muscle_rate=float(rng.uniform(0.002, 0.04)),
        )


@dataclass(frozen=True)
class PatternEvent:
    """A class pattern present in [start_s, stop_s) of a recording."""

    pattern: int  # index into PATTERNS
    start_s: float
    stop_s: float
    strength: float  # 0 (barely there) .. 1 (textbook)
    side: int  # 0 left, 1 right: the hemisphere of lateralized patterns and seizure onset


# ---------------------------------------------------------------------------------------------
# Small building blocks
# ---------------------------------------------------------------------------------------------


def colored_noise(rng: np.random.Generator, n_signals: int, n: int, power) -> np.ndarray:
    """Gaussian noise (n_signals, n) float32 with power spectrum shape ``power(freqs)``, unit std.

    Drawn directly in the frequency domain (complex Gaussian bins shaped by sqrt(power), then
    one inverse FFT): the same stationary process as filtering white noise, at half the cost.
    """
    n_fft = scipy.fft.next_fast_len(n, real=True)  # a length with a large prime factor is slow
    freqs = scipy.fft.rfftfreq(n_fft, 1.0 / FS)
    amplitude = np.sqrt(power(freqs)).astype(np.float32)
    amplitude[0] = 0.0  # no DC: offsets are added explicitly
    # E|X_k|^2 = 2 a_k^2 for each half-spectrum bin, counted twice in the full spectrum.
    amplitude *= n_fft / (2.0 * np.sqrt(np.sum(amplitude.astype(np.float64) ** 2)))
    # Only bins with non-negligible power get random draws: narrow-band sources cost little.
    strong = np.flatnonzero(amplitude > 1e-4 * amplitude.max())
    used = slice(int(strong[0]), int(strong[-1]) + 1)
    shape = (n_signals, used.stop - used.start)
    spectrum = np.zeros((n_signals, len(freqs)), dtype=np.complex64)
    bins = spectrum[:, used]
    bins.real = rng.standard_normal(shape, dtype=np.float32)
    bins.imag = rng.standard_normal(shape, dtype=np.float32)
    bins *= amplitude[used]
    return scipy.fft.irfft(spectrum, n_fft, axis=-1, workers=1)[:, :n]


def slow_envelope(rng: np.random.Generator, n: int, seconds: float, depth: float) -> np.ndarray:
    """A positive envelope 1 +- depth that wanders on a time scale of ``seconds``."""
    knots = max(2, int(n / FS / seconds) + 2)
    values = rng.normal(0.0, 1.0, knots)
    wander = np.interp(np.arange(n), np.linspace(0, n - 1, knots), values)
    return np.clip(1.0 + depth * wander, 0.05, None).astype(np.float32)


def _gaussian(t: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / sigma) ** 2)


def place_events(
    n: int, times_s: np.ndarray, amplitudes: np.ndarray, template: np.ndarray, zero_index: int
) -> np.ndarray:
    """A signal (n,) holding ``amplitude * template`` at each event time.

    ``template[zero_index]`` lands on the event's sample. Events are sparse (a few per second at
    most), so adding slices beats a full-length convolution.
    """
    out = np.zeros(n, dtype=np.float32)
    length = len(template)
    for time_s, amplitude in zip(np.asarray(times_s), np.asarray(amplitudes)):
        first = int(round(time_s * FS)) - zero_index
        lo, hi = max(first, 0), min(first + length, n)
        if lo < hi and amplitude != 0.0:
            out[lo:hi] += amplitude * template[lo - first : hi - first]
    return out


def _poisson_times(rng: np.random.Generator, rate: float, seconds: float) -> np.ndarray:
    return np.sort(rng.uniform(0.0, seconds, rng.poisson(rate * seconds)))


def _taper(n: int, start: int, stop: int, ramp: int) -> np.ndarray:
    """0 outside [start, stop), 1 inside, raised-cosine ramps of ``ramp`` samples inside."""
    window = np.zeros(n, dtype=np.float32)
    start, stop = max(start, 0), min(stop, n)
    if stop <= start:
        return window
    window[start:stop] = 1.0
    ramp = min(ramp, (stop - start) // 2)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp))
        window[start : start + ramp] = rise
        window[stop - ramp : stop] = rise[::-1]
    return window


# ---------------------------------------------------------------------------------------------
# Background, EKG, artifacts
# ---------------------------------------------------------------------------------------------


def background(rng: np.random.Generator, traits: PatientTraits, n: int) -> np.ndarray:
    """Scalp background (19, n): spatially correlated 1/f noise, posterior alpha, common mode."""
    knee = 0.4  # Hz; keeps the lowest frequencies finite

    def one_over_f(f):
        return 1.0 / (np.maximum(f, 0.05) ** traits.spectral_exponent + knee**traits.spectral_exponent)

    local = _SPATIAL_MIX @ colored_noise(rng, N_SCALP, n, one_over_f)
    local *= 5.5 * traits.amplitude * slow_envelope(rng, n, 20.0, 0.25)
    # Electrode drift (sweat, impedance changes) below 0.5 Hz: most of a real bipolar trace's
    # variance, little of its 1-20 Hz power.
    drift = colored_noise(rng, N_SCALP, n, lambda f: (f < 0.5) / np.maximum(f, 0.02) ** 2)
    # Referential recordings share the reference's signal; bipolar derivations cancel it.
    common = colored_noise(rng, 1, n, one_over_f)[0] * 40.0 * traits.amplitude
    alpha_band = lambda f: _gaussian(f, traits.alpha_hz, 0.6)  # noqa: E731
    alpha = colored_noise(rng, 2, n, alpha_band) * slow_envelope(rng, n, 4.0, 0.6)
    posterior = np.clip(0.3 - XY[:, 1], 0.0, None)  # strongest at O1/O2, absent frontally
    alpha_field = np.stack([posterior * (XY[:, 0] <= 0.05), posterior * (XY[:, 0] >= -0.05)], axis=1)
    scalp = local + 10.0 * drift + common[None, :]
    scalp += (10.0 * traits.alpha_gain * traits.amplitude) * (alpha_field.astype(np.float32) @ alpha)
    scalp += rng.normal(0.0, 20.0, (N_SCALP, 1))  # electrode offsets
    return scalp


def ekg_waveform(rng: np.random.Generator, traits: PatientTraits, n: int) -> np.ndarray:
    """Unit-amplitude (R = 1) PQRST complexes at the patient's heart rate, with variability."""
    seconds = n / FS
    n_beats = int(seconds * traits.heart_bpm / 60.0) + 4
    rr = 60.0 / traits.heart_bpm * (1.0 + 0.03 * rng.standard_normal(n_beats))
    rr *= 1.0 + 0.05 * np.sin(2 * np.pi * 0.1 * np.cumsum(rr))  # respiratory sinus arrhythmia
    beats = rng.uniform(0.0, rr[0]) + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    t = np.arange(-0.4, 0.6, 1.0 / FS)
    template = (
        0.12 * _gaussian(t, -0.18, 0.025) - 0.12 * _gaussian(t, -0.03, 0.008)
        + 1.0 * _gaussian(t, 0.0, 0.010) - 0.25 * _gaussian(t, 0.03, 0.008)
        + 0.30 * _gaussian(t, 0.26, 0.045)
    )  # fmt: skip
    return place_events(n, beats, np.ones(len(beats)), template, int(0.4 * FS))


def add_artifacts(rng: np.random.Generator, traits: PatientTraits, scalp: np.ndarray, rate_boost: float = 1.0) -> None:
    """Eye blinks, lateral eye movements and muscle bursts, added in place."""
    n = scalp.shape[1]
    seconds = n / FS
    t = np.arange(-0.5, 0.5, 1.0 / FS)
    blinks = _poisson_times(rng, traits.blink_rate * rate_boost, seconds)
    blink_wave = place_events(n, blinks, rng.uniform(80.0, 250.0, len(blinks)), _gaussian(t, 0.0, 0.09), int(0.5 * FS))
    scalp += _BLINK_FIELD[:, None] * blink_wave[None, :]
    saccades = _poisson_times(rng, 0.02 * rate_boost, seconds)
    durations = rng.uniform(0.4, 2.0, len(saccades))
    amplitudes = rng.uniform(40.0, 100.0, len(saccades)) * rng.choice([-1, 1], len(saccades))
    smoothed = np.zeros(n, dtype=np.float32)
    for start_s, duration_s, amplitude in zip(saccades, durations, amplitudes):
        # Gaze held to one side for a while: a smoothed box.
        a, b = int(start_s * FS), min(n, int((start_s + duration_s) * FS))
        smoothed[a:b] += amplitude * _taper(b - a, 0, b - a, int(0.08 * FS))
    scalp += _SACCADE_FIELD[:, None] * smoothed[None, :]
    for start in _poisson_times(rng, traits.muscle_rate * rate_boost, seconds):
        add_muscle_burst(rng, scalp, start, float(rng.uniform(0.5, 4.0)), float(rng.uniform(5.0, 30.0)))


def add_muscle_burst(
    rng: np.random.Generator, scalp: np.ndarray, start_s: float, seconds: float, amplitude: float
) -> None:
    """Broadband 20-70 Hz activity on temporal and frontal channels, added in place."""
    a = int(start_s * FS)
    b = min(scalp.shape[1], a + int(seconds * FS))
    if b - a < 4:
        return
    noise = np.diff(rng.standard_normal((N_SCALP, b - a + 1)), axis=1)  # differencing: high-pass
    side = rng.uniform(0.3, 1.0, 2)
    lateral = np.where(XY[:, 0] < 0, side[0], side[1])
    scalp[:, a:b] += (amplitude * _MUSCLE_FIELD * lateral)[:, None] * noise * _taper(b - a, 0, b - a, 20)


def ekg_and_leak(rng: np.random.Generator, traits: PatientTraits, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The EKG channel (n,) and the cardiac field leaking into the scalp (19, n)."""
    qrs = ekg_waveform(rng, traits, n)
    t = np.arange(n) / FS
    ekg = traits.ekg_gain * qrs
    ekg += 60.0 * slow_envelope(rng, n, 5.0, 1.0) - 60.0  # baseline wander
    ekg += traits.line_noise * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi))
    ekg += rng.normal(0.0, 4.0, n) + rng.normal(0.0, 500.0)
    return ekg, traits.ekg_leak.astype(np.float32)[:, None] * qrs[None, :]


# ---------------------------------------------------------------------------------------------
# Class patterns
# ---------------------------------------------------------------------------------------------


def focal_field(rng: np.random.Generator, side: int) -> np.ndarray:
    """Weights (19,) of a field centred on one hemisphere, near zero on the other."""
    sign = -1.0 if side == 0 else 1.0
    focus = np.array([sign * rng.uniform(0.45, 0.95), rng.uniform(-0.6, 0.6)])
    sigma = rng.uniform(0.45, 0.7)
    weights = np.exp(-0.5 * np.sum((XY - focus) ** 2, axis=1) / sigma**2)
    weights *= np.where(XY[:, 0] * sign < -0.05, 0.1, 1.0)  # the other hemisphere barely sees it
    return weights * rng.uniform(0.85, 1.15, N_SCALP)


def generalized_field(rng: np.random.Generator) -> np.ndarray:
    """Weights (19,) of a bilateral synchronous field, usually frontally predominant."""
    direction = 1.0 if rng.random() < 0.8 else -1.0
    # A steep anterior-posterior gradient: a uniform field would cancel in bipolar derivations,
    # while real generalized patterns are plainly visible in them.
    gradient = ((1.0 + direction * XY[:, 1]) / 2.0) ** 2
    return (0.15 + 0.85 * gradient) * rng.uniform(0.8, 1.2, N_SCALP)


def _phase(frequency_hz: np.ndarray) -> np.ndarray:
    return 2 * np.pi * np.cumsum(frequency_hz) / FS


def periodic_discharges(
    rng: np.random.Generator, n: int, rate_hz: float, strength: float, triphasic: bool
) -> np.ndarray:
    """A train (n,) of sharp discharges (peak about -1) repeating at ``rate_hz`` with jitter."""
    seconds = n / FS
    period = 1.0 / rate_hz
    times = np.arange(rng.uniform(0, period), seconds, period)
    times = times + rng.normal(0.0, 0.06 * period, len(times))
    present = rng.random(len(times)) < 0.55 + 0.45 * strength  # weak patterns are intermittent
    t = np.arange(-0.3, 0.5, 1.0 / FS)
    sharp = rng.uniform(0.012, 0.03)
    template = -_gaussian(t, 0.0, sharp) + rng.uniform(0.3, 0.5) * _gaussian(t, 0.13, rng.uniform(0.06, 0.1))
    if triphasic:
        template += 0.3 * _gaussian(t, -0.05, 0.02) + 0.2 * _gaussian(t, 0.06, 0.025)
    amplitudes = rng.uniform(0.7, 1.3, len(times)) * present
    return place_events(n, times, amplitudes, template, int(0.3 * FS))


def rhythmic_delta(rng: np.random.Generator, n: int, frequency_hz: float, strength: float) -> np.ndarray:
    """Rhythmic delta (n,) around ``frequency_hz``, waxing and waning, peak about 1."""
    frequency = frequency_hz * slow_envelope(rng, n, 5.0, 0.06)
    phase = _phase(frequency)
    wave = np.sin(phase) + 0.25 * np.sin(2 * phase + 0.6)  # slightly sharpened, asymmetric
    waning = slow_envelope(rng, n, 3.0, 0.9 - 0.5 * strength)
    return wave * np.clip(waning, 0.0, 1.5) / 1.2


def add_pattern(rng: np.random.Generator, scalp: np.ndarray, event: PatternEvent, traits: PatientTraits) -> None:
    """Add an event's class pattern to the scalp channels (in place), with 1-s soft edges."""
    n_total = scalp.shape[1]
    a, b = int(event.start_s * FS), min(int(event.stop_s * FS), n_total)
    n = b - a
    if n <= 0:
        return
    name = PATTERNS[event.pattern]
    # Visible amplitude grows with strength; even textbook patterns vary between patients.
    gain = (0.25 + 0.75 * event.strength) * rng.uniform(0.8, 1.25) * traits.amplitude
    edge = _taper(n, 0, n, FS)
    if name in ("lpd", "gpd"):
        rate = rng.uniform(0.5, 1.6) if name == "lpd" else rng.uniform(0.7, 2.2)
        field = focal_field(rng, event.side) if name == "lpd" else generalized_field(rng)
        wave = periodic_discharges(rng, n, rate, event.strength, triphasic=name == "gpd" and rng.random() < 0.5)
        scalp[:, a:b] += (gain * rng.uniform(60.0, 160.0)) * field[:, None] * (wave * edge)[None, :]
    elif name in ("lrda", "grda"):
        frequency = rng.uniform(1.0, 2.5) if name == "lrda" else rng.uniform(1.2, 3.0)
        field = focal_field(rng, event.side) if name == "lrda" else generalized_field(rng)
        wave = rhythmic_delta(rng, n, frequency, event.strength)
        scalp[:, a:b] += (gain * rng.uniform(50.0, 130.0)) * field[:, None] * (wave * edge)[None, :]
    elif name == "seizure":
        _add_seizure(rng, scalp[:, a:b], event, gain, edge)
    else:
        _add_nonspecific(rng, scalp[:, a:b], traits, edge)


def _add_seizure(rng, segment: np.ndarray, event: PatternEvent, gain: float, edge: np.ndarray) -> None:
    n = segment.shape[1]
    progress = np.linspace(0.0, 1.0, n)
    # Evolution: the discharge frequency changes (usually slowing) while amplitude builds up
    # and the field spreads from the onset hemisphere to both.
    f_start = rng.uniform(3.5, 9.0)
    f_end = rng.uniform(1.5, 4.0) if rng.random() < 0.8 else rng.uniform(f_start, 12.0)
    frequency = (f_start + (f_end - f_start) * progress) * slow_envelope(rng, n, 4.0, 0.04)
    phase = _phase(frequency)
    wave = np.sin(phase) + 0.5 * np.sin(2 * phase + 0.3) + 0.25 * np.sin(3 * phase + 0.6)
    amplitude = (0.35 + 0.65 * progress) * np.clip(slow_envelope(rng, n, 4.0, 0.2), 0.3, 1.5)
    spread = np.clip(progress * rng.uniform(0.0, 1.8), 0.0, 1.0)
    focal, general = focal_field(rng, event.side), generalized_field(rng)
    fields = focal[:, None] * (1.0 - spread)[None, :] + general[:, None] * spread[None, :]
    segment += (gain * rng.uniform(45.0, 110.0)) * fields * (wave * amplitude * edge)[None, :]
    if rng.random() < 0.5:  # seizures often bring muscle artifact
        add_muscle_burst(rng, segment, rng.uniform(0.0, n / FS / 2), n / FS / 2, 10.0 + 20.0 * event.strength)


def _add_nonspecific(rng, segment: np.ndarray, traits: PatientTraits, edge: np.ndarray) -> None:
    """'Other': background with polymorphic (non-rhythmic) slowing and/or extra artifacts."""
    n = segment.shape[1]
    choice = rng.random()
    if choice < 0.45:
        slow = colored_noise(rng, 1, n, lambda f: (f > 0.3) * (f < 3.5) / np.maximum(f, 0.3))[0]
        slow /= slow.std() + 1e-12
        field = focal_field(rng, int(rng.integers(2))) if rng.random() < 0.5 else generalized_field(rng)
        segment += rng.uniform(15.0, 45.0) * traits.amplitude * field[:, None] * (slow * edge)[None, :]
    if choice > 0.3:
        add_artifacts(rng, traits, segment, rate_boost=3.0)


# ---------------------------------------------------------------------------------------------
# A whole recording and its Kaggle spectrogram
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingFaults:
    """Technical problems of a recording: NaN gaps (all channels at once), a flat or noisy lead."""

    nan_gaps_s: tuple[tuple[float, float], ...] = ()
    flat_channel: int | None = None
    noisy_channel: int | None = None


def synthesize_recording(
    rng: np.random.Generator,
    traits: PatientTraits,
    seconds: float,
    events: list[PatternEvent] | tuple[PatternEvent, ...] = (),
    faults: RecordingFaults = RecordingFaults(),
) -> np.ndarray:
    """A full recording (20, seconds*200) float32 in microvolts, EEG_CHANNELS order."""
    n = int(round(seconds * FS))
    scalp = background(rng, traits, n)
    ekg, leak = ekg_and_leak(rng, traits, n)
    scalp += leak
    add_artifacts(rng, traits, scalp)
    for event in events:
        add_pattern(rng, scalp, event, traits)
    t = np.arange(n) / FS
    line = np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    scalp += rng.uniform(0.0, 3.0, (N_SCALP, 1)).astype(np.float32) * line[None, :]
    if faults.flat_channel is not None:
        scalp[faults.flat_channel] = rng.normal(0.0, 0.3, n)
    if faults.noisy_channel is not None:
        scalp[faults.noisy_channel] += rng.standard_normal(n) * rng.uniform(80.0, 300.0)
    recording = np.concatenate([scalp, ekg[None, :]], axis=0)
    for start_s, stop_s in faults.nan_gaps_s:
        recording[:, int(start_s * FS) : int(stop_s * FS)] = np.nan
    return recording


def bipolar_region_signals(eeg: np.ndarray) -> np.ndarray:
    """The 16 double-banana differences (4 regions x 4, REGIONS order): (4, 4, n)."""
    index = {name: i for i, name in enumerate(EEG_CHANNELS)}
    return np.stack([np.stack([eeg[index[a]] - eeg[index[b]] for a, b in BIPOLAR_CHAINS[r]]) for r in REGIONS])


@functools.cache
def _spectrogram_basis() -> np.ndarray:
    """Hann-windowed DFT rows of the 100 kept bins of a 1024-point FFT, for a 400-sample frame:
    (400, 200) float32, cosine then sine parts. One matrix product replaces 1024-point FFTs of
    mostly zero padding, of which only 100 bins would be kept."""
    frame = SPEC_FRAME_SECONDS * FS
    window = np.hanning(frame + 1)[:-1]
    angle = 2 * np.pi * np.outer(np.arange(frame), SPEC_FREQ_BINS) / SPEC_FFT_SIZE
    basis = np.concatenate([np.cos(angle), np.sin(angle)], axis=1) * window[:, None]
    # One-sided power density in uV^2/Hz, folded into the basis (squared below).
    return (basis * np.sqrt(2.0 / (FS * np.sum(window**2)))).astype(np.float32)


def kaggle_spectrogram(eeg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle-style spectrogram of an EEG (20, n): values (4, 100, n_frames) float32 and times.

    Frame i covers seconds [2i, 2i+2) and is stamped ``time = 2i + 1``. Per bipolar difference:
    mean-removed Hann-windowed frame, 1024-point DFT, one-sided power density (uV^2/Hz); the 4
    differences of a region are averaged, and bins 3..102 (0.59..19.92 Hz) kept. Values are
    rounded to 0.01 like the real files'. Frames touching a NaN sample are NaN.
    """
    frame = SPEC_FRAME_SECONDS * FS
    n_frames = eeg.shape[1] // frame
    diffs = bipolar_region_signals(eeg[:, : n_frames * frame])
    frames = diffs.reshape(len(REGIONS), 4, n_frames, frame).astype(np.float32)
    gap = np.asarray(np.isnan(frames).any(axis=(1, 3)))
    frames = np.nan_to_num(frames)  # gap frames are overwritten with NaN below
    frames -= frames.mean(axis=-1, keepdims=True)
    projected = frames @ _spectrogram_basis()  # (regions, 4, frames, 200)
    n_bins = len(SPEC_FREQ_BINS)
    density = projected[..., :n_bins] ** 2 + projected[..., n_bins:] ** 2
    values = density.mean(axis=1).transpose(0, 2, 1)  # (regions, freqs, frames)
    values = np.round(values, 2).astype(np.float32)
    values[np.broadcast_to(gap[:, None, :], values.shape)] = np.nan
    times = np.arange(n_frames, dtype=np.int64) * SPEC_FRAME_SECONDS + 1
    return values, times
