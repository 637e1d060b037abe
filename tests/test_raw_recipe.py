"""The raw-EEG input recipe (``dsp.eeg_raw_recipe`` / ``dsp.eeg_raw_inputs``) against the same
recipe written step by step with numpy and scipy."""

import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.signal as ss

from hms import _native, dsp

CHANNELS = [
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz", "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6",
    "O2", "EKG",
]  # fmt: skip
DEFAULTS = dict(
    n_samples=10_000,
    montage="banana16",
    bandpass=(0.5, 20.0),
    filter_order=4,
    notch=None,
    notch_q=30.0,
    fs=200.0,
    rate=40.0,
    demean=True,
    normalize="clip",
    clip=1024.0,
    scale=32.0,
    eps=1e-6,
)


def reference(eeg, channels=CHANNELS, **options):
    """The recipe with numpy and scipy, one step at a time, in float64."""
    p = {**DEFAULTS, **options}
    x = np.asarray(eeg, dtype=np.float64)
    n = x.shape[-1]
    kept = n if p["n_samples"] is None else p["n_samples"]
    start = (n - kept) // 2
    x = x[..., start : start + kept]
    pairs = list(dsp.BIPOLAR_PAIRS) + ([("Fz", "Cz"), ("Cz", "Pz")] if p["montage"] == "banana18" else [])
    index = {c: i for i, c in enumerate(channels)}
    d = np.stack([x[..., index[a], :] - x[..., index[b], :] for a, b in pairs], axis=-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an all-NaN difference
        fill = np.nan_to_num(np.nanmean(d, axis=-1, keepdims=True), nan=0.0)
    d = np.where(np.isnan(d), fill, d)
    if p["bandpass"] is not None:
        sos = ss.butter(p["filter_order"], p["bandpass"], "bandpass", fs=p["fs"], output="sos")
        d = ss.sosfiltfilt(sos, d, axis=-1)
    if p["notch"] is not None:
        d = ss.sosfiltfilt(ss.tf2sos(*ss.iirnotch(p["notch"], p["notch_q"], fs=p["fs"])), d, axis=-1)
    ratio = Fraction(p["rate"] / p["fs"]).limit_denominator(1000)
    if ratio != 1:
        d = ss.resample_poly(d, ratio.numerator, ratio.denominator, axis=-1)
    if p["demean"]:
        d = d - d.mean(axis=-1, keepdims=True)
    if p["normalize"] == "clip":
        d = np.clip(d, -p["clip"], p["clip"]) / p["scale"]
    elif p["normalize"] == "standardize":
        d = (d - d.mean(axis=-1, keepdims=True)) / (d.std(axis=-1, keepdims=True) + p["eps"])
    return d.astype(np.float32)


def eeg(shape, n, seed=0, dtype=np.float32):
    """EEG-like windows (*shape, 20, n): rhythms, noise, offsets, drift and a few large spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 200
    x = (
        rng.standard_normal((*shape, 20, n)) * 15
        + 40 * np.sin(2 * np.pi * rng.uniform(0.5, 30, (*shape, 20, 1)) * t)
        + rng.uniform(-50, 50, (*shape, 20, 1))
        + 5 * t
    )
    flat = x.reshape(-1, n)
    flat[rng.integers(0, flat.shape[0], 4), rng.integers(0, n, 4)] = 3000.0
    return x.astype(dtype)


def gapped(x, seed=1):
    """NaN gaps, scattered NaN, an all-NaN channel (Fp2), a flat link (F7 = Fp1) and a constant
    channel (O1)."""
    x = x.copy()
    rng = np.random.default_rng(seed)
    x[..., 3, 2000:2600] = np.nan
    x[..., 5, rng.integers(0, x.shape[-1], 50)] = np.nan
    x[..., CHANNELS.index("Fp2"), :] = np.nan
    x[..., CHANNELS.index("F7"), :] = x[..., CHANNELS.index("Fp1"), :]
    x[..., CHANNELS.index("O1"), :] = 250.0
    return x


def assert_parity(got, expected):
    """float32 outputs of a float64 computation: 1e-5 relative, and 1e-5 of the output's scale."""
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.isfinite(got).all()
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
@pytest.mark.parametrize("montage", ["banana16", "banana18"])
@pytest.mark.parametrize("normalize", ["clip", "standardize", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_recipe_equals_numpy_scipy(batch, montage, normalize, dtype):
    x = gapped(eeg(batch, 10_600, seed=len(batch), dtype=dtype))
    recipe = dsp.eeg_raw_recipe(montage=montage, normalize=normalize)
    got = dsp.eeg_raw_inputs(x, recipe)
    n_links = 16 if montage == "banana16" else 18
    assert got.shape == (*batch, n_links, 2000) and recipe.n_links == n_links and recipe.ratio == (1, 5)
    assert_parity(got, reference(x, montage=montage, normalize=normalize))


@pytest.mark.parametrize(
    "options",
    [
        dict(bandpass=None),
        dict(notch=60.0),
        dict(bandpass=(1.0, 40.0), notch=50.0, notch_q=20.0, filter_order=2),
        dict(rate=50.0),
        dict(rate=200.0),
        dict(rate=64.0),
        dict(rate=400.0, bandpass=(0.5, 70.0)),
        dict(fs=256.0, rate=200.0, bandpass=(0.5, 100.0)),
        dict(n_samples=None),
        dict(n_samples=3001),
        dict(demean=False),
        dict(demean=False, normalize="none"),
        dict(clip=100.0, scale=10.0),
        dict(normalize="standardize", eps=1.0),
    ],
)
def test_recipe_options_equal_numpy_scipy(options):
    x = gapped(eeg((2,), 10_000, seed=3))
    got = dsp.eeg_raw_inputs(x, dsp.eeg_raw_recipe(**options))
    assert_parity(got, reference(x, **options))


def test_channels_in_another_order():
    x = eeg((2,), 10_000, seed=4)
    order = np.random.default_rng(0).permutation(20)
    names = [CHANNELS[i].upper() for i in order]
    names[names.index("T3")] = "T7"  # 10-10 names stand for 10-20 ones
    got = dsp.eeg_raw_inputs(x[:, order], dsp.eeg_raw_recipe(channels=names, montage="banana18"))
    np.testing.assert_array_equal(got, dsp.eeg_raw_inputs(x, dsp.eeg_raw_recipe(montage="banana18")))
    # Fewer channels, if the montage's are there.
    keep = [c for c in CHANNELS if c != "EKG"]
    recipe = dsp.eeg_raw_recipe(channels=keep)
    np.testing.assert_array_equal(dsp.eeg_raw_inputs(x[:, :19], recipe), dsp.eeg_raw_inputs(x, dsp.eeg_raw_recipe()))


def test_strided_and_integer_windows():
    x = eeg((4,), 10_000, seed=5, dtype=np.float64)
    recipe = dsp.eeg_raw_recipe()
    expected = dsp.eeg_raw_inputs(np.ascontiguousarray(x[::2]), recipe)
    np.testing.assert_array_equal(dsp.eeg_raw_inputs(x[::2], recipe), expected)
    fortran = np.asfortranarray(x)
    np.testing.assert_array_equal(dsp.eeg_raw_inputs(fortran, recipe), dsp.eeg_raw_inputs(x, recipe))
    ints = np.round(x).astype(np.int32)
    assert_parity(dsp.eeg_raw_inputs(ints, recipe), reference(ints))


def test_flat_and_empty_links():
    x = eeg((), 10_000, seed=6)
    x[CHANNELS.index("Fp2")] = np.nan  # Fp2-F8 and Fp2-F4: all NaN, filled with zeros
    x[CHANNELS.index("F7")] = x[CHANNELS.index("Fp1")]  # Fp1-F7: exactly zero
    for normalize in ("clip", "standardize", "none"):
        got = dsp.eeg_raw_inputs(x, dsp.eeg_raw_recipe(normalize=normalize))
        for link in (0, 8, 12):
            assert np.all(got[link] == 0.0), (normalize, link)
        assert np.abs(got).max() > 0


def test_rates_that_are_not_small_ratios_are_refused():
    for rate, fs in ((40.004, 200.0), (200.0, 199.9), (np.pi * 10, 200.0)):
        with pytest.raises(ValueError, match=r"rate: rate / fs = .* is not a ratio up / down of integers"):
            dsp.eeg_raw_recipe(rate=rate, fs=fs, bandpass=None)
    assert dsp.eeg_raw_recipe(rate=200.0 / 3, bandpass=None).ratio == (1, 3)
    assert dsp.eeg_raw_recipe(rate=999.0, fs=1000.0, bandpass=None).ratio == (999, 1000)


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(rate=0.0), ValueError, "rate must be positive"),
        (dict(rate=np.inf), ValueError, "rate must be finite"),
        (dict(rate="fast"), TypeError, "rate must be a real number"),
        (dict(fs=-1.0, bandpass=None), ValueError, "fs must be positive"),
        (dict(fs=0.0), ValueError, "fs must be positive"),
        (dict(montage="banana"), ValueError, "montage must be 'banana16' or 'banana18'"),
        (dict(montage=16), TypeError, "montage must be a string"),
        (dict(normalize="zscore"), ValueError, "normalize must be 'clip', 'standardize' or 'none'"),
        (dict(normalize=None), TypeError, "normalize must be a string"),
        (dict(clip=0.0), ValueError, "clip must be positive"),
        (dict(clip=np.nan), ValueError, "clip must be finite"),
        (dict(scale=0.0), ValueError, "scale must be finite and nonzero"),
        (dict(normalize="standardize", eps=0.0), ValueError, "eps must be a normal positive float"),
        (dict(normalize="standardize", eps=1e-310), ValueError, "eps must be a normal positive float"),
        (dict(n_samples=0), ValueError, "n_samples must be at least 1"),
        (dict(n_samples=-5), ValueError, "n_samples must be a non-negative integer"),
        (dict(n_samples=2.5), TypeError, "n_samples must be an integer"),
        (dict(bandpass=(20.0, 0.5)), ValueError, "bandpass=.*increasing"),
        (dict(bandpass=(0.5, 100.0)), ValueError, "bandpass=.*cutoff must lie strictly between 0 and fs/2"),
        (dict(bandpass=5.0), ValueError, "bandpass must be a pair"),
        (dict(filter_order=0), ValueError, "filter_order=0.*order must be between 1 and 24"),
        (dict(notch=150.0), ValueError, "notch=150.0.*freq must lie strictly between"),
        (dict(notch=60.0, notch_q=0.0), ValueError, "notch_q=0.0.*q must be positive"),
        (dict(channels=CHANNELS[:18]), ValueError, "channels lacks O2"),
        (dict(channels=["Fp1"] * 20), ValueError, "channels names Fp1 more than once"),
        (dict(channels="Fp1"), TypeError, "channels must be a sequence of channel names"),
    ],
)
def test_bad_recipes_are_named(options, error, match):
    with pytest.raises(error, match=match):
        dsp.eeg_raw_recipe(**options)


def test_bad_windows_are_named():
    recipe = dsp.eeg_raw_recipe()
    x = eeg((2,), 10_000)
    loud = x.copy()
    loud[1, 4, 5000] = np.inf  # F7: Fp1-F7 and F7-T3 are infinite there
    cases = [
        (x[..., :9999], ValueError, "eeg has 9999 samples, fewer than n_samples=10000"),
        (x[:, :19], ValueError, "eeg has 19 channels on axis -2, but the recipe's channels name 20"),
        (x[0, 0], ValueError, r"eeg must have shape \(..., channels, samples\)"),
        (np.zeros((0, 20, 10_000), np.float32), ValueError, "eeg is empty"),
        (x.astype(np.complex64), TypeError, "complex"),
        (loud, ValueError, "eeg contains inf"),
    ]
    for eeg_, error, match in cases:
        with pytest.raises(error, match=match):
            dsp.eeg_raw_inputs(eeg_, recipe)
    with pytest.raises(
        ValueError, match=r"eeg has 20 samples to filter, but the band-pass/notch filters need more than 27"
    ):
        dsp.eeg_raw_inputs(x[..., :20], dsp.eeg_raw_recipe(n_samples=None))
    with pytest.raises(TypeError, match="recipe must be an eeg_raw_recipe"):
        dsp.eeg_raw_inputs(x, dsp.eeg_mel_recipe())
    # The raw binding checks its recipe's type too.
    with pytest.raises(TypeError):
        _native.eeg_raw_inputs(x, dsp.eeg_mel_recipe())


def test_one_call_per_batch_is_the_stack_of_single_windows():
    x = gapped(eeg((5,), 10_000, seed=8))
    recipe = dsp.eeg_raw_recipe(normalize="standardize")
    batch = dsp.eeg_raw_inputs(x, recipe)
    for i in range(5):
        np.testing.assert_array_equal(batch[i], dsp.eeg_raw_inputs(x[i], recipe))
