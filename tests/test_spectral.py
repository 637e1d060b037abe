"""Parity of the native STFT, spectrogram, mel and decibel functions with librosa and scipy, and
their refusals of bad input."""

import warnings

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import dsp

librosa = pytest.importorskip("librosa")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def assert_close(actual, expected, rtol, floor=0.0):
    """Elementwise rtol, with an absolute floor at rtol * 1e-3 of the largest magnitude (values
    far below the peak carry only the references' own rounding), or ``floor`` if larger. A float32
    reference rounds every element to within a few float32 epsilons of its largest value (its FFT
    mixes all bins), so the floor is at least 4 eps of that for float32."""
    assert actual.shape == expected.shape
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    own_rounding = 4 * float(np.finfo(expected.dtype).eps) * scale if expected.dtype == np.float32 else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=max(rtol * 1e-3 * scale, floor, own_rounding))


def signal(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 40 + 5).astype(dtype)


# --- windows -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [
        "hann",
        "hamming",
        "blackman",
        "boxcar",
        "bartlett",
        "tukey",
        ("tukey", 0.25),
        ("tukey", 1.0),
        ("tukey", 0.0),
        ("kaiser", 8.0),
        "cosine",
        ("gaussian", 7.0),
    ],
)
@pytest.mark.parametrize("n", [1, 2, 7, 128, 255])
def test_get_window_equals_scipy(window, n):
    expected = ss.get_window(window, n, fftbins=True)
    np.testing.assert_allclose(dsp.get_window(window, n), expected, rtol=1e-13, atol=1e-15)


# --- stft ----------------------------------------------------------------------------------------

STFT_CASES = [
    dict(n_fft=512, hop_length=128),
    dict(n_fft=1024, hop_length=39, win_length=128),  # the EEG recipe's framing
    dict(n_fft=255, hop_length=7, win_length=100, pad_mode="reflect"),  # odd n_fft
    dict(n_fft=64, hop_length=13, center=False, window="hamming"),
    dict(n_fft=100, hop_length=25, win_length=99, window=("tukey", 0.3), pad_mode="edge"),
    dict(n_fft=32, hop_length=32, window="blackman", pad_mode="symmetric"),
    dict(n_fft=16, window=np.arange(1.0, 17.0)),  # explicit, asymmetric window; hop n_fft // 4
    dict(n_fft=128, hop_length=10, window=("kaiser", 5.0)),  # a window only scipy knows
]


@pytest.mark.parametrize("kwargs", STFT_CASES, ids=range(len(STFT_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1001, 4096])
def test_stft_equals_librosa(kwargs, dtype, n):
    x = signal((2, n), dtype, seed=n)
    got = dsp.stft(x, **kwargs)
    expected = librosa.stft(x, **kwargs)
    assert got.dtype == expected.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    assert_close(got, expected, rtol=1e-5)


def test_stft_signal_shorter_than_the_window_when_centred():
    x = signal(300, seed=1)
    assert_close(dsp.stft(x, n_fft=512, hop_length=64), librosa.stft(x, n_fft=512, hop_length=64), 1e-5)
    # Reflection repeats for pads longer than the signal, as numpy.pad does.
    x = signal(5, seed=2)
    for mode in ("reflect", "edge", "symmetric"):
        np.testing.assert_allclose(
            dsp.stft(x, n_fft=16, hop_length=2, pad_mode=mode),
            np.fft.rfft(
                librosa.util.frame(np.pad(x, 8, mode=mode), frame_length=16, hop_length=2).T
                * ss.get_window("hann", 16),
                axis=-1,
            ).T,
            rtol=1e-10,
            atol=1e-10,
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b[:, ::2],
        lambda b: b[:, ::-1],
        lambda b: np.asfortranarray(b),
        lambda b: b.T.copy().T,
        lambda b: b.reshape(2, 3, -1),
    ],
    ids=["strided", "reversed", "fortran", "transposed-copy", "batch-3d"],
)
def test_stft_any_layout_and_batch_shape(make):
    x = make(signal((6, 3000), np.float32, seed=3))
    got = dsp.stft(x, n_fft=256, hop_length=50, win_length=200)
    expected = librosa.stft(np.ascontiguousarray(x), n_fft=256, hop_length=50, win_length=200)
    assert got.shape == expected.shape
    assert_close(got, expected, 1e-5)


def test_stft_of_integers_is_float64():
    x = (np.arange(600) % 23).astype(np.int16)
    got = dsp.stft(x, n_fft=64, hop_length=16)
    assert got.dtype == np.complex128
    assert_close(got, librosa.stft(x.astype(np.float64), n_fft=64, hop_length=16), 1e-10)


# --- scipy spectrogram ---------------------------------------------------------------------------

SPEC_CASES = [
    dict(),  # scipy's defaults: tukey 0.25, nperseg 256, noverlap 32
    dict(fs=200.0, nperseg=200, noverlap=150, nfft=256),
    dict(fs=200.0, nperseg=128, noverlap=0, window="hann", detrend="linear", scaling="spectrum"),
    dict(fs=3.5, nperseg=101, noverlap=50, nfft=203, detrend=False),  # odd nfft
    dict(fs=100.0, window=np.hanning(64), noverlap=16),  # array window sets nperseg
    dict(fs=100.0, nperseg=64, window=("kaiser", 3.0), detrend="constant", scaling="spectrum"),
]


@pytest.mark.parametrize("kwargs", SPEC_CASES, ids=range(len(SPEC_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectrogram_equals_scipy(kwargs, dtype):
    x = signal((3, 2501), dtype, seed=4)
    f, t, s = dsp.spectrogram(x, **kwargs)
    f2, t2, s2 = ss.spectrogram(x, **kwargs)
    np.testing.assert_allclose(f, f2, rtol=1e-14)
    np.testing.assert_allclose(t, t2, rtol=1e-14)
    assert s.dtype == s2.dtype == dtype
    assert_close(s, s2, 1e-5)


def test_spectrogram_strided_and_batched():
    base = signal((4, 2, 5000), np.float64, seed=5)
    x = base[:, :, ::-2]
    f, t, s = dsp.spectrogram(x, fs=200, nperseg=256, noverlap=200)
    assert s.shape == (4, 2, 129, len(t))
    assert_close(s, ss.spectrogram(x, fs=200, nperseg=256, noverlap=200)[2], 1e-10)


# --- mel filterbank, mel spectrogram -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sr=200, n_fft=1024, n_mels=128, fmin=0, fmax=20),
        dict(sr=22050, n_fft=2048),
        dict(sr=16000, n_fft=400, n_mels=40, fmin=50, fmax=7600, htk=True),
        dict(sr=8000, n_fft=511, n_mels=20, norm=None),
        dict(sr=44100, n_fft=4096, n_mels=256, fmin=20, fmax=18000),
    ],
)
def test_mel_filterbank_equals_librosa(kwargs):
    got = dsp.mel_filterbank(**kwargs)
    expected = librosa.filters.mel(**kwargs)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


MEL_CASES = [
    dict(sr=200, n_fft=1024, hop_length=39, win_length=128, n_mels=128, fmin=0, fmax=20),  # band DFT path
    dict(sr=22050),  # librosa's defaults: FFT path
    dict(sr=200, n_fft=256, hop_length=20, win_length=101, n_mels=32, fmin=0.5, fmax=40, power=1.0),
    dict(sr=200, n_fft=512, hop_length=64, win_length=64, n_mels=64, fmax=30, window="hamming", center=False),
    dict(sr=1000, n_fft=300, hop_length=17, n_mels=48, fmax=500, htk=True, norm=None, pad_mode="reflect"),
]


@pytest.mark.parametrize("kwargs", MEL_CASES, ids=range(len(MEL_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_melspectrogram_equals_librosa(kwargs, dtype):
    x = signal((2, 5001), dtype, seed=6)
    got = dsp.melspectrogram(x, **kwargs)
    expected = librosa.feature.melspectrogram(y=x, **kwargs)
    assert got.dtype == expected.dtype == dtype
    # float32: both sides' float32 rounding, relative to each spectrogram's peak.
    assert_close(got, expected, 1e-4 if dtype == np.float32 else 1e-6)


def test_melspectrogram_band_path_elementwise_in_float64():
    # Elementwise (no absolute floor) down to 80 dB below the peak.
    x = signal(10_000, np.float64, seed=7)
    kw = dict(sr=200, n_fft=1024, hop_length=39, win_length=128, n_mels=128, fmin=0, fmax=20)
    got, expected = dsp.melspectrogram(x, **kw), librosa.feature.melspectrogram(y=x, **kw)
    mask = expected > expected.max() * 1e-8
    np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-9)


# --- power_to_db ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kwargs", [dict(), dict(ref=1.0), dict(ref=np.max, top_db=None), dict(ref=3.5, amin=1e-5, top_db=40.0)]
)
def test_power_to_db_per_spectrogram(kwargs, dtype):
    rng = np.random.default_rng(8)
    s = (rng.random((3, 2, 40, 30)) ** 8 * 10.0 ** rng.integers(-3, 6, (3, 2, 1, 1))).astype(dtype)
    s[0, 0, :3] = 0.0
    got = dsp.power_to_db(s, **kwargs)
    lib_kwargs = {"ref": np.max, **kwargs}
    expected = np.stack([[librosa.power_to_db(b, **lib_kwargs) for b in a] for a in s])
    assert got.dtype == expected.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    if "top_db" not in kwargs:
        # The floor is 80 dB below each spectrogram's own maximum.
        spread = got.max(axis=(-2, -1)) - got.min(axis=(-2, -1))
        assert np.all(spread <= 80.0 + 1e-4) and np.any(np.abs(spread - 80.0) < 1e-4)


def test_power_to_db_propagates_nan_per_spectrogram():
    s = np.ones((2, 4, 4))
    s[1, 2, 2] = np.nan
    got = dsp.power_to_db(s)
    assert np.all(np.isnan(got[1])) and np.all(got[0] == 0.0)


# --- bad input -----------------------------------------------------------------------------------

X = np.zeros(2000)

BAD = [
    (dsp.stft, (X,), dict(n_fft=0), ValueError, "n_fft must be at least 1"),
    (dsp.stft, (X,), dict(n_fft=64, win_length=128), ValueError, "win_length must not exceed n_fft"),
    (dsp.stft, (X,), dict(n_fft=64, hop_length=0), ValueError, "hop_length must be at least 1"),
    (dsp.stft, (X,), dict(n_fft=64, hop_length=2.5), TypeError, "hop_length must be an integer"),
    (dsp.stft, (X,), dict(n_fft=64, pad_mode="wrap"), ValueError, "pad_mode"),
    (dsp.stft, (X,), dict(n_fft=64, window="nonsense"), ValueError, "window"),
    (dsp.stft, (X,), dict(n_fft=64, window=np.ones(10)), ValueError, "window must have 64 values"),
    (dsp.stft, (np.zeros(10),), dict(n_fft=64, center=False), ValueError, "10 samples.*n_fft=64"),
    (dsp.stft, (np.r_[X[:10], np.nan, X[:10]],), dict(n_fft=8), ValueError, "x contains NaN or inf"),
    (dsp.stft, (np.zeros(100, complex),), dict(n_fft=8), TypeError, "x must be real"),
    (dsp.stft, (np.zeros((3, 0)),), dict(n_fft=8), ValueError, "x is empty"),
    (dsp.stft, (np.float64(3.0),), dict(n_fft=8), ValueError, "x must have at least one dimension"),
    (dsp.spectrogram, (X,), dict(fs=np.nan), ValueError, "fs must be finite"),
    (dsp.spectrogram, (X,), dict(fs=0.0), ValueError, "fs must be positive"),
    (dsp.spectrogram, (X,), dict(nperseg=64, noverlap=64), ValueError, "noverlap must be less than nperseg"),
    (dsp.spectrogram, (X,), dict(nperseg=64, nfft=32), ValueError, "nfft must be at least nperseg"),
    (dsp.spectrogram, (X[:100],), dict(nperseg=128), ValueError, "100 samples.*nperseg=128"),
    (dsp.spectrogram, (X,), dict(detrend="quadratic"), ValueError, "detrend"),
    (dsp.spectrogram, (X,), dict(scaling="psd"), ValueError, "scaling"),
    (dsp.spectrogram, (X,), dict(window=np.ones(64), nperseg=32), ValueError, "nperseg=32 differs"),
    (dsp.mel_filterbank, (200, 1024), dict(fmax=150), ValueError, "fmax must not exceed sr/2"),
    (dsp.mel_filterbank, (200, 1024), dict(fmin=30, fmax=20), ValueError, "fmax must exceed fmin"),
    (dsp.mel_filterbank, (np.inf, 1024), dict(), ValueError, "sr must be finite"),
    (dsp.mel_filterbank, (200, 1024), dict(n_mels=0), ValueError, "n_mels must be at least 1"),
    (dsp.mel_filterbank, (200, 1024), dict(fmin=-1.0), ValueError, "fmin must be >= 0"),
    (dsp.mel_filterbank, (200, 1024), dict(norm="l2"), ValueError, "norm"),
    (dsp.melspectrogram, (X,), dict(sr=200, fmax=101), ValueError, "fmax must not exceed sr/2"),
    (dsp.melspectrogram, (X,), dict(sr=200, n_fft=64, win_length=65), ValueError, "win_length"),
    (dsp.melspectrogram, (X,), dict(sr=200, power=0.0), ValueError, "power must be positive"),
    (dsp.melspectrogram, (X,), dict(sr=200, power=np.nan), ValueError, "power must be finite"),
    (dsp.melspectrogram, (X,), dict(sr=200, fmin=float("inf")), ValueError, "fmin must be finite"),
    (dsp.melspectrogram, (X[:100],), dict(sr=200, n_fft=512, center=False), ValueError, "100 samples"),
    (dsp.melspectrogram, (X.astype(object),), dict(sr=200), TypeError, "x must be a numeric array"),
    (dsp.power_to_db, (np.ones(5),), dict(), ValueError, "S must have at least two dimensions"),
    (dsp.power_to_db, (np.ones((2, 2)),), dict(amin=0.0), ValueError, "amin must be positive"),
    (dsp.power_to_db, (np.ones((2, 2)),), dict(top_db=-1.0), ValueError, "top_db must be non-negative"),
    (dsp.power_to_db, (np.ones((2, 2)),), dict(ref="min"), ValueError, "ref must be"),
    (dsp.power_to_db, (np.ones((2, 2)),), dict(ref=np.nan), ValueError, "ref must be finite"),
    (dsp.get_window, ("hann", 0), dict(), ValueError, "n must be at least 1"),
]


@pytest.mark.parametrize(
    "func, args, kwargs, error, match", BAD, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_input_raises_naming_the_argument(func, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        func(*args, **kwargs)
    # The interpreter and the native core stay usable.
    assert dsp.stft(np.ones(64), n_fft=16, hop_length=4).shape == (9, 17)


# --- fuzzing -------------------------------------------------------------------------------------
# spectrogram and melspectrogram against scipy/librosa on random arguments: the fuzz suite
# (tests/_fuzz_worker.py, run by test_fuzz_dsp.py).


@settings(max_examples=40, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n=st.integers(1, 700),
    n_fft=st.integers(2, 300),
    hop=st.integers(1, 80),
    win_frac=st.floats(0.05, 1.0),
    center=st.booleans(),
    pad_mode=st.sampled_from(["constant", "reflect", "edge"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    step=st.integers(1, 3),
    reverse=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_stft_fuzz(batch, n, n_fft, hop, win_frac, center, pad_mode, dtype, step, reverse, seed):
    full = signal((*batch, n * step), dtype, seed)
    x = full[..., ::-step] if reverse else full[..., ::step]
    win = max(1, int(n_fft * win_frac))
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=win, center=center, pad_mode=pad_mode)
    if not center and n < n_fft:
        with pytest.raises(ValueError, match="n_fft"):
            dsp.stft(x, **kw)
        return
    if center and pad_mode == "reflect" and n < 2:
        return  # numpy.pad cannot reflect a single sample; we repeat it (as edge)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = librosa.stft(np.ascontiguousarray(x), **kw)
    got = dsp.stft(x, **kw)
    assert got.dtype == expected.dtype
    assert_close(got, expected, 1e-5)


def test_power_to_db_amin_below_the_dtypes_range():
    """An amin that float32 rounds to 0 is float32's smallest value, not log(0) - log(0) = NaN."""
    for dtype in (np.float32, np.float64):
        got = dsp.power_to_db(np.zeros((2, 3), dtype), amin=5e-324, top_db=None)
        assert got.dtype == dtype and np.all(got == 0.0)
    s = np.array([[1.0, 0.0]], np.float32)
    np.testing.assert_allclose(dsp.power_to_db(s, amin=1e-50, top_db=None), [[0.0, 10 * np.log10(1e-45)]], rtol=1e-2)
