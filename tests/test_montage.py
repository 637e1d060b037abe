"""The bipolar montage and the EEG-to-spectrogram recipes against numpy+librosa/scipy references
written here, on the real EEG fixture and on synthetic EEG."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import dsp

librosa = pytest.importorskip("librosa")
pd = pytest.importorskip("pandas")

CHANNELS = [
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz", "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6",
    "O2", "EKG",
]  # fmt: skip
CHAINS = {
    "LL": ["Fp1", "F7", "T3", "T5", "O1"],
    "LP": ["Fp1", "F3", "C3", "P3", "O1"],
    "RL": ["Fp2", "F8", "T4", "T6", "O2"],
    "RP": ["Fp2", "F4", "C4", "P4", "O2"],
}
FIXTURE = Path(__file__).resolve().parents[1] / "shared" / "fixtures" / "hms-real" / "train_eegs" / "1000913311.parquet"
if not FIXTURE.exists():
    FIXTURE = Path("/work/shared/fixtures/hms-real/train_eegs/1000913311.parquet")


def filled_difference(eeg, a, b):
    """The public recipe's per-difference NaN fill, on a (samples, channels) DataFrame."""
    x = eeg[a].values - eeg[b].values
    if np.isnan(x).mean() < 1:
        x = np.nan_to_num(x, nan=np.nanmean(x))
    else:
        x[:] = 0
    return x


def mel_reference(eeg, filters=()):
    """The public notebook's recipe (with its chain names corrected), (4, 128, 256)."""
    middle = (len(eeg) - 10_000) // 2
    eeg = eeg.iloc[middle : middle + 10_000]
    img = np.zeros((4, 128, 256), dtype=np.float32)
    for k, cols in enumerate(CHAINS.values()):
        for kk in range(4):
            x = filled_difference(eeg, cols[kk], cols[kk + 1])
            for sos in filters:
                x = ss.sosfiltfilt(sos, x).astype(x.dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mel = librosa.feature.melspectrogram(
                    y=x, sr=200, hop_length=len(x) // 256, n_fft=1024, n_mels=128, fmin=0, fmax=20, win_length=128
                )
            width = (mel.shape[1] // 32) * 32
            db = librosa.power_to_db(mel, ref=np.max).astype(np.float32)[:, :width]
            img[k] += (db + 40) / 40
        img[k] /= 4.0
    return img


def scipy_reference(eeg, n_samples, amin=1e-10, **kw):
    middle = (len(eeg) - n_samples) // 2
    eeg = eeg.iloc[middle : middle + n_samples].astype(np.float64)  # as the native core: in float64
    out = []
    for cols in CHAINS.values():
        logs = [
            np.log(np.maximum(ss.spectrogram(filled_difference(eeg, a, b), **kw)[2], amin))
            for a, b in zip(cols[:-1], cols[1:])
        ]
        out.append(np.mean(logs, axis=0))
    return np.stack(out)


@pytest.fixture(scope="module")
def real_eeg():
    if not FIXTURE.exists():
        pytest.skip("real EEG fixture not available")
    return pd.read_parquet(FIXTURE)


def synthetic_eeg(n, seed=0, dtype=np.float32):
    """(n, 20) microvolt-scale EEG: rhythms, noise, drift, and a few spikes of thousands."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 200
    x = (
        rng.standard_normal((n, 20)) * 15
        + 40 * np.sin(2 * np.pi * rng.uniform(0.5, 15, 20) * t[:, None])
        + rng.uniform(-50, 50, 20)
        + 10 * t[:, None]
    )
    x[rng.integers(0, n, 5), rng.integers(0, 20, 5)] = 3000.0
    return pd.DataFrame(x.astype(dtype), columns=CHANNELS)


# --- montage -------------------------------------------------------------------------------------


def test_constants_match_the_competition():
    assert dsp.CHAIN_NAMES == ("LL", "LP", "RL", "RP")
    pairs = [p for cols in CHAINS.values() for p in zip(cols[:-1], cols[1:])]
    assert list(dsp.BIPOLAR_PAIRS) == pairs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bipolar_montage_in_competition_order(dtype):
    eeg = synthetic_eeg(500, seed=1, dtype=dtype).to_numpy().T.copy()
    eeg[3, 10:20] = np.nan
    got = dsp.bipolar_montage(eeg)
    expected = np.stack([eeg[CHANNELS.index(a)] - eeg[CHANNELS.index(b)] for a, b in dsp.BIPOLAR_PAIRS])
    assert got.dtype == dtype and got.shape == (16, 500)
    np.testing.assert_array_equal(got, expected)  # NaN where a channel is NaN


def test_bipolar_montage_by_names_batch_and_dataframe():
    df = synthetic_eeg(300, seed=2)
    batch = np.stack([df.to_numpy().T, -df.to_numpy().T])  # (2, 20, 300)
    expected = dsp.bipolar_montage(batch)
    assert expected.shape == (2, 16, 300)
    np.testing.assert_array_equal(expected[1], -expected[0])
    order = np.random.default_rng(3).permutation(20)
    shuffled = batch[:, order]
    names = [CHANNELS[i].upper() for i in order]
    names[names.index("T3")] = "T7"  # 10-10 name
    np.testing.assert_array_equal(dsp.bipolar_montage(shuffled, channels=names), expected)
    np.testing.assert_array_equal(dsp.bipolar_montage(df), expected[0])  # DataFrame: (samples, channels)
    np.testing.assert_array_equal(dsp.bipolar_montage(batch[:, :, ::-1])[..., ::-1], expected)  # strided


@pytest.mark.parametrize(
    "eeg, channels, error, match",
    [
        (np.zeros((19, 100)), None, ValueError, "20 channels"),
        (np.zeros((100, 20)), None, ValueError, "20 channels"),
        (np.zeros(100), None, ValueError, r"shape \(\.\.\., channels, samples\)"),
        (np.zeros((3, 100)), ["Fp1", "F7", "T3"], ValueError, "channels lacks"),
        (np.zeros((2, 100)), CHANNELS, ValueError, "names 20 channels, but eeg has 2"),
        (np.zeros((20, 100)), CHANNELS[:19] + ["Fp1"], ValueError, "more than once"),
        (np.zeros((20, 100)), "Fp1", TypeError, "channels must be a sequence"),
        (np.zeros((20, 100), complex), None, TypeError, "eeg must be real"),
    ],
)
def test_bipolar_montage_refuses_bad_channels(eeg, channels, error, match):
    with pytest.raises(error, match=match):
        dsp.bipolar_montage(eeg, channels=channels)
    assert dsp.bipolar_montage(np.ones((20, 4))).shape == (16, 4)


# --- the mel recipe ------------------------------------------------------------------------------


def test_mel_recipe_equals_the_public_recipe_on_real_eeg(real_eeg):
    expected = mel_reference(real_eeg)
    got = dsp.eeg_spectrograms(real_eeg.to_numpy().T)
    assert got.names == ("LL", "LP", "RL", "RP")
    assert got.images.shape == (4, 128, 256) and got.images.dtype == np.float32
    assert np.abs(got.images - expected).max() < 1e-4
    # The DataFrame itself, and float64 EEG, give the same images.
    np.testing.assert_array_equal(dsp.eeg_spectrograms(real_eeg).images, got.images)
    f64 = dsp.eeg_spectrograms(real_eeg.to_numpy(np.float64).T).images
    assert f64.dtype == np.float64 and np.abs(f64 - expected).max() < 1e-4


def test_mel_recipe_fills_gaps_per_difference(real_eeg):
    eeg = real_eeg.copy()
    eeg.iloc[2000:2600, :] = np.nan  # the usual gap, on all channels at once
    eeg.iloc[7000:7100, 4] = np.nan  # one channel only (F7)
    eeg["Fp2"] = np.nan  # a dead electrode: its differences are all NaN -> zeros
    got = dsp.eeg_spectrograms(eeg.to_numpy().T).images
    assert np.all(np.isfinite(got))
    assert np.abs(got - mel_reference(eeg)).max() < 1e-4


def test_mel_recipe_batch_crop_and_layout():
    dfs = [synthetic_eeg(12_001, seed=s) for s in range(3)]
    batch = np.stack([d.to_numpy().T for d in dfs]).reshape(3, 1, 20, 12_001)
    got = dsp.eeg_spectrograms(batch).images
    assert got.shape == (3, 1, 4, 128, 256)
    for i in (0, 2):
        assert np.abs(got[i, 0] - mel_reference(dfs[i])).max() < 1e-4
    strided = np.asfortranarray(batch[:, 0])  # same values, other memory order
    np.testing.assert_allclose(dsp.eeg_spectrograms(strided).images, got[:, 0], atol=1e-6)


def test_mel_recipe_with_band_pass_and_notch():
    df = synthetic_eeg(10_000, seed=4)
    sos = [ss.butter(4, (0.5, 40.0), "bandpass", fs=200, output="sos"), ss.tf2sos(*ss.iirnotch(60.0, 30.0, fs=200))]
    got = dsp.eeg_spectrograms(df, bandpass=(0.5, 40.0), notch=60.0).images
    assert np.abs(got - mel_reference(df, filters=sos)).max() < 1e-4
    assert not np.allclose(got, dsp.eeg_spectrograms(df).images, atol=1e-2)


def test_mel_recipe_parameters_are_settable():
    df = synthetic_eeg(4000, seed=5, dtype=np.float64)
    got = dsp.eeg_spectrograms(
        df, n_samples=3000, n_mels=64, fmax=30.0, hop_length=20, width_multiple=8, top_db=60.0, offset=0.0, scale=1.0
    ).images
    x = df.to_numpy().T[:, 500:3500]
    diffs = dsp.bipolar_montage(x)
    mel = librosa.feature.melspectrogram(
        y=diffs, sr=200, n_fft=1024, hop_length=20, win_length=128, n_mels=64, fmin=0, fmax=30
    )
    db = np.stack([librosa.power_to_db(m, ref=np.max, top_db=60.0) for m in mel])
    width = mel.shape[-1] // 8 * 8
    expected = db[..., :width].reshape(4, 4, 64, width).mean(axis=1)
    assert got.shape == (4, 64, width)
    np.testing.assert_allclose(got, expected, atol=1e-8)


# --- the scipy recipe ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [dict(), dict(nperseg=400, noverlap=360, nfft=1024, window="hann", detrend="linear", scaling="spectrum")]
)
def test_scipy_recipe_equals_reference(real_eeg, kw):
    eeg = real_eeg.copy()
    eeg.iloc[100:300, :] = np.nan
    got = dsp.eeg_spectrograms(eeg, recipe="scipy", **kw).images
    expected = scipy_reference(eeg, 10_000, fs=200.0, **{"window": ("tukey", 0.25), **kw})
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_scipy_recipe_fmax_keeps_the_low_bins():
    df = synthetic_eeg(6000, seed=6, dtype=np.float64)
    full = dsp.eeg_spectrograms(df, recipe="scipy", n_samples=None, nfft=1024).images
    low = dsp.eeg_spectrograms(df, recipe="scipy", n_samples=None, nfft=1024, fmax=20.0).images
    assert low.shape[-2] == 103  # 0 .. 19.92 Hz in steps of 200/1024
    np.testing.assert_array_equal(low, full[..., :103, :])
    np.testing.assert_allclose(full, scipy_reference(df, 6000, fs=200.0, nperseg=256, nfft=1024), atol=1e-9)


# --- bad input -----------------------------------------------------------------------------------

EEG = np.zeros((20, 10_000), np.float32)

BAD = [
    (dict(recipe="stft"), ValueError, "recipe must be 'mel' or 'scipy'"),
    (dict(nperseg=128), TypeError, "recipe 'mel' has no parameter nperseg"),
    (dict(recipe="scipy", n_mels=12), TypeError, "no parameter n_mels"),
    (dict(n_samples=20_000), ValueError, "fewer than n_samples=20000"),
    (dict(n_samples=0), ValueError, "n_samples must be at least 1"),
    (dict(fmax=150.0), ValueError, "fmax must not exceed sr/2"),
    (dict(n_fft=64), ValueError, "win_length must not exceed n_fft"),
    (dict(fs=np.nan), ValueError, "fs must be finite"),
    (dict(top_db=np.inf), ValueError, "top_db must be finite"),
    (dict(scale=0.0), ValueError, "scale"),
    (dict(width_multiple=300), ValueError, "width_multiple=300"),
    (dict(n_samples=200), ValueError, "hop_length"),
    (dict(bandpass=(40.0, 0.5)), ValueError, "increasing"),
    (dict(bandpass=5.0), ValueError, "bandpass must be a pair"),
    (dict(notch=120.0), ValueError, "freq must lie strictly between"),
    (
        dict(n_samples=20, bandpass=(0.5, 40.0), hop_length=1, win_length=8, n_fft=16, width_multiple=1),
        ValueError,
        "filters need more than",
    ),
    (dict(recipe="scipy", nperseg=20_000, n_samples=None), ValueError, "fewer than nperseg"),
    (dict(recipe="scipy", fmax=-1.0), ValueError, "keeps no frequency bin"),
    (dict(recipe="scipy", detrend="cubic"), ValueError, "detrend"),
    (dict(window="nonsense"), ValueError, "window"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD, ids=range(len(BAD)))
def test_eeg_spectrograms_refuses_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        dsp.eeg_spectrograms(EEG, **kwargs)
    assert dsp.eeg_spectrograms(EEG[:, :2560], n_samples=None, recipe="scipy").images.shape == (4, 129, 11)


def test_eeg_with_inf_is_refused():
    eeg = EEG.copy()
    eeg[5, 100] = np.inf
    with pytest.raises(ValueError, match="eeg contains inf"):
        dsp.eeg_spectrograms(eeg)


# --- fuzzing -------------------------------------------------------------------------------------


@settings(max_examples=12, deadline=None)
@given(
    batch=st.lists(st.integers(1, 2), min_size=0, max_size=2),
    n=st.integers(2600, 4000),
    n_samples=st.one_of(st.none(), st.integers(2560, 2600)),
    dtype=st.sampled_from([np.float32, np.float64]),
    reverse=st.booleans(),
    nan_run=st.integers(0, 2000),
    seed=st.integers(0, 2**31),
)
def test_mel_recipe_fuzz(batch, n, n_samples, dtype, reverse, nan_run, seed):
    rng = np.random.default_rng(seed)
    full = (rng.standard_normal((*batch, 20, n)) * 30).astype(dtype)
    start = rng.integers(0, n)
    full[..., start : start + nan_run] = np.nan
    eeg = full[..., ::-1] if reverse else full
    got = dsp.eeg_spectrograms(eeg, n_samples=n_samples).images
    kept = n if n_samples is None else n_samples
    width = (1 + kept // (kept // 256)) // 32 * 32
    assert got.shape == (*batch, 4, 128, width) and got.dtype == dtype
    assert np.all(np.isfinite(got))
    # One recording of the batch against the reference, cropped the same way.
    one = np.ascontiguousarray(eeg.reshape(-1, 20, n)[-1]).T
    kept_df = pd.DataFrame(one[(n - kept) // 2 : (n - kept) // 2 + kept], columns=CHANNELS)
    expected = np.zeros((4, 128, width))
    for k, cols in enumerate(CHAINS.values()):
        for a, b in zip(cols[:-1], cols[1:]):
            x = filled_difference(kept_df, a, b)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mel = librosa.feature.melspectrogram(
                    y=x, sr=200, hop_length=kept // 256, n_fft=1024, n_mels=128, fmin=0, fmax=20, win_length=128
                )
            expected[k] += (librosa.power_to_db(mel, ref=np.max)[:, :width] + 40) / 160
    assert np.abs(got.reshape(-1, 4, 128, width)[-1] - expected).max() < 1e-4


def test_recipes_of_eeg_whose_power_overflows():
    """Differences whose power spectrogram leaves its type are scaled by a power of two: the mel
    images (decibels relative to the maximum) are those of the unscaled EEG, the scipy recipe's log
    power is shifted by 2 ln(scale)."""
    df = synthetic_eeg(6000, seed=3, dtype=np.float64)
    x = df.to_numpy().T
    expected = dsp.eeg_spectrograms(x.astype(np.float32), n_samples=5000).images
    loud = dsp.eeg_spectrograms((x * 1e18).astype(np.float32), n_samples=5000).images
    np.testing.assert_allclose(loud, expected, atol=1e-4)
    np.testing.assert_allclose(
        dsp.eeg_spectrograms(x * 1e200, n_samples=5000).images,
        dsp.eeg_spectrograms(x, n_samples=5000).images,
        atol=1e-9,
    )
    base = dsp.eeg_spectrograms(x, recipe="scipy", n_samples=None).images
    shifted = dsp.eeg_spectrograms(x * 1e300, recipe="scipy", n_samples=None).images
    assert np.isfinite(shifted).all()
    np.testing.assert_allclose(shifted - 2 * np.log(1e300), base, atol=1e-8 * 2 * np.log(1e300))
    # Without a floor, amin cannot follow the scale below float64's normal range: refused, named.
    with pytest.raises(ValueError, match="eeg: differences up to .* overflow the float64 power spectrogram"):
        dsp.eeg_spectrograms(x * 1e300, n_samples=5000, top_db=None)
