"""Model inputs: recipes, normalization (no leakage), augmentation, rebalancing, dataset, cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import pywt
import torch

from hms import augment, dsp, input_cache, recipes
from hms.competition import CompetitionData
from hms.config import ConfigError, build
from hms.dataset import EpochSampler, InputDataset, loader_kwargs, rebalanced_order
from hms.inputs import InputPipeline
from hms.labels import make_labels
from hms.windows import eeg_window, label_windows


@pytest.fixture
def eeg_native():
    return dsp.eeg_spectrograms


@pytest.fixture(scope="module")
def data(tiny_dataset):
    return CompetitionData(tiny_dataset)


@pytest.fixture(scope="module")
def labels(data):
    return make_labels(data.train, "eeg")


#: The raw-EEG input with a model that takes it.
RAW = {"input": "raw", "model": "efficientnet1d"}


def make(data, tmp_path, **overrides):
    return InputPipeline(build({"cache_dir": str(tmp_path / "cache"), **overrides}), data)


def random_sources(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "kaggle": rng.normal(0, 2, (n, 4, 100, 300)).astype(np.float32),
        "eeg": rng.normal(0, 1, (n, 4, 128, 256)).astype(np.float32),
    }


# --- recipes ----------------------------------------------------------------------------------


def test_kaggle_log_matches_seed_formula_and_chain_order():
    rng = np.random.default_rng(1)
    window = np.exp(rng.normal(0, 4, (2, 4, 100, 300))).astype(np.float32)
    window[0, 1, 5:9, 10:20] = np.nan
    out = recipes.kaggle_log(window, -4.0, 8.0)
    expected = np.log(np.clip(np.nan_to_num(window, nan=-1.0), math.exp(-4), math.exp(8)))
    # Files hold LL, RL, LP, RP; the recipe yields LL, LP, RL, RP.
    np.testing.assert_allclose(out, expected[:, [0, 2, 1, 3]], rtol=1e-5, atol=1e-5)
    assert out.min() >= -4 - 1e-5 and out.max() <= 8 + 1e-5
    assert np.all(out[0, 2, 5:9, 10:20] == pytest.approx(-4.0))  # NaN -> -1 -> clipped to e^lo
    with pytest.raises(ValueError, match=r"\(4, 100, 300\)"):
        recipes.kaggle_log(np.zeros((4, 100, 299)), -6, 10)


def test_kaggle_tiles_pad_rows_and_crop_centre_frames():
    logged = np.arange(4 * 100 * 300, dtype=np.float32).reshape(4, 100, 300)
    tiles = recipes.kaggle_tiles(logged)
    assert tiles.shape == (4, 128, 256)
    assert np.all(tiles[:, :14] == 0) and np.all(tiles[:, 114:] == 0)
    np.testing.assert_array_equal(tiles[:, 14:114], logged[:, :, 22:278])


def test_hemisphere_swap_constant_mirrors_left_and_right():
    assert recipes.CHAINS == ("LL", "LP", "RL", "RP")
    assert [recipes.CHAINS[i] for i in recipes.HEMISPHERE_SWAP] == ["RL", "RP", "LL", "LP"]


def test_wavelet_denoise_matches_pywt_and_removes_noise():
    rng = np.random.default_rng(0)
    t = np.arange(4096) / 200
    clean = 50 * np.sin(2 * np.pi * 2 * t)
    noisy = np.stack([clean + rng.normal(0, 10, t.size) for _ in range(3)])
    out = recipes.wavelet_denoise(noisy, "db8", level=None, sigma="mean")
    for channel in range(3):
        coeffs = pywt.wavedec(noisy[channel], "db8", mode="periodization")
        d = coeffs[-1]
        thr = np.mean(np.abs(d - d.mean())) / 0.6745 * np.sqrt(2 * np.log(t.size))
        coeffs[1:] = [pywt.threshold(c, value=thr, mode="hard") for c in coeffs[1:]]
        np.testing.assert_allclose(out[channel], pywt.waverec(coeffs, "db8", mode="periodization"), atol=1e-9)
    assert np.abs(out - clean).mean() < 0.6 * np.abs(noisy - clean).mean()
    with pytest.raises(ValueError, match="NaN"):
        recipes.wavelet_denoise(np.full(64, np.nan), "haar")


def test_fill_nan_with_channel_mean():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(recipes.fill_nan_with_channel_mean(x), [[1, 2, 3], [0, 0, 0]])


# --- shapes, dataset ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, shape",
    [
        ({"input": "kaggle"}, (1, 512, 512)),
        ({"input": "kaggle", "image_size": 64}, (1, 64, 64)),
        ({"input": "kaggle", "kaggle_layout": "tiles"}, (4, 128, 256)),
        ({"input": "eeg"}, (4, 128, 256)),
        ({"input": "eeg", "tile_layout": "stack"}, (1, 512, 256)),
        ({"input": "both"}, (8, 128, 256)),
        ({"input": "both", "tile_layout": "stack"}, (1, 512, 512)),
        (RAW, (16, 2000)),
        ({**RAW, "raw_montage": "banana18", "raw_rate": 200}, (18, 10_000)),
    ],
)
def test_input_shapes(data, labels, tmp_path, eeg_native, overrides, shape):
    pipeline = make(data, tmp_path, **overrides)
    assert pipeline.input_shape == shape and pipeline.in_chans == shape[0]
    item = InputDataset(pipeline, labels, split="train", augment=False)[1]
    assert item["input"].shape == shape and item["input"].dtype == torch.float32
    assert torch.isfinite(item["input"]).all()
    np.testing.assert_allclose(
        item["target"].numpy(), labels.iloc[1][[c for c in labels if c.endswith("_vote")]].to_numpy(float), rtol=1e-6
    )
    assert item["target"].dtype == torch.float32 and float(item["target"].sum()) == pytest.approx(1.0)
    assert float(item["n_votes"]) == labels["n_votes"].iloc[1] and item["index"].dtype == torch.int64


def test_test_split_items_have_zero_targets(data, tmp_path, eeg_native):
    pipeline = make(data, tmp_path, input="both")
    dataset = InputDataset(pipeline, data.test, split="test", augment=False)
    assert len(dataset) == len(data.test)
    item = dataset[2]
    assert item["input"].shape == (8, 128, 256)
    assert torch.count_nonzero(item["target"]) == 0 and float(item["n_votes"]) == 0 and int(item["index"]) == 2


def test_eeg_recipe_uses_the_labelled_50s_window_for_train_and_test(data, labels, tmp_path, eeg_native, monkeypatch):
    seen = []

    def spy(eeg, **kwargs):
        seen.append(np.array(eeg))
        return eeg_native(eeg, **kwargs)

    monkeypatch.setattr(dsp, "eeg_spectrograms", spy, raising=False)
    pipeline = make(data, tmp_path, input="eeg", cache=False)
    row = labels.iloc[3]
    InputDataset(pipeline, labels, split="train", augment=False)[3]
    recording = data.read_eeg("train", row["eeg_id"])
    np.testing.assert_array_equal(seen[-1][0], eeg_window(recording, row["eeg_label_offset_seconds"]))
    InputDataset(pipeline, data.test, split="test", augment=False)[0]
    assert seen[-1].shape == (1, 20, 10_000)
    np.testing.assert_array_equal(seen[-1][0], data.read_eeg("test", data.test["eeg_id"].iloc[0]))


def test_eeg_options_reach_the_native_call(data, labels, tmp_path, eeg_native, monkeypatch):
    calls = []

    def spy(eeg, **kwargs):
        calls.append((np.array(eeg), kwargs))
        return eeg_native(eeg, **kwargs)

    monkeypatch.setattr(dsp, "eeg_spectrograms", spy, raising=False)
    pipeline = make(
        data, tmp_path, input="eeg", cache=False, bandpass="0.5,20", notch=60, eeg_clip=5.0, eeg_recipe="scipy"
    )
    InputDataset(pipeline, labels, split="train", augment=False)[0]
    eeg, kwargs = calls[-1]
    assert kwargs == {"recipe": "scipy", "bandpass": (0.5, 20.0), "notch": 60.0}
    assert np.nanmax(np.abs(eeg)) <= 5.0


def test_labels_missing_a_column_is_named(data, labels, tmp_path):
    with pytest.raises(ValueError, match="n_votes"):
        InputDataset(make(data, tmp_path, input="kaggle"), labels.drop(columns="n_votes"), split="train", augment=False)


# --- normalization ------------------------------------------------------------------------------


def test_instance_normalization_standardizes_each_source(data, tmp_path):
    pipeline = make(data, tmp_path, input="both")
    sources = random_sources()
    sources["eeg"] = sources["eeg"] * 5 + 3
    out = pipeline.assemble(sources)
    kaggle_part = out[:, :4, 14:114, :]  # inside the padding
    assert out.shape == (3, 8, 128, 256)
    np.testing.assert_allclose(out[:, 4:].mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out[:, 4:].std(axis=(1, 2, 3)), 1, atol=1e-3)
    assert abs(kaggle_part.mean()) < 0.05 and 0.9 < kaggle_part.std() < 1.1


def _numpy_stats(pipeline, labels, source):
    rows = [pipeline.row_source(source, "train", r) for r in _rows(labels)]
    values = np.concatenate([r.ravel() for r in rows]).astype(np.float64)
    return values.mean(), values.std()


def _rows(labels):
    return label_windows(labels, "train")


def test_datawide_statistics_come_from_training_rows_only(data, labels, tmp_path, eeg_native):
    train, validation = labels.iloc[:12], labels.iloc[12:]
    pipeline = make(data, tmp_path, input="both", normalization="datawide")
    pipeline.fit(train, show_progress=False)
    for source in ("kaggle", "eeg"):
        mean, std = _numpy_stats(pipeline, train, source)
        assert pipeline.stats[source]["mean"] == pytest.approx(mean, rel=1e-6)
        assert pipeline.stats[source]["std"] == pytest.approx(std, rel=1e-6)
        assert pipeline.stats[source]["count"] == len(train) * (4 * 100 * 300 if source == "kaggle" else 4 * 128 * 256)
    # The validation rows are present in the same frame the caller holds, yet cannot move the
    # statistics; fitting on all rows would.
    everything = make(data, tmp_path, input="both", normalization="datawide")
    everything.fit(pd.concat([train, validation]), show_progress=False)
    assert everything.stats["kaggle"]["mean"] != pytest.approx(pipeline.stats["kaggle"]["mean"], rel=1e-9)
    # Validation items are normalized with the training statistics, unchanged.
    before = json.dumps(pipeline.state_dict())
    item = InputDataset(pipeline, validation, split="train", augment=False)[0]["input"].numpy()
    assert json.dumps(pipeline.state_dict()) == before
    raw = pipeline.row_source("eeg", "train", _rows(validation)[0])
    s = pipeline.stats["eeg"]
    np.testing.assert_allclose(item[4:], (raw - s["mean"]) / s["std"], rtol=1e-5, atol=1e-5)


def test_state_round_trip_rebuilds_identical_preprocessing(data, labels, tmp_path):
    pipeline = make(
        data, tmp_path, input="kaggle", kaggle_layout="tiles", normalization="datawide", clip_lo=-5, clip_hi=9
    )
    pipeline.fit(labels.iloc[:8], show_progress=False)
    state = json.loads(json.dumps(pipeline.state_dict()))
    rebuilt = InputPipeline.from_state(state, data)
    assert rebuilt.stats == pipeline.stats and rebuilt.params == pipeline.params
    a = InputDataset(pipeline, labels, split="train", augment=False)[10]["input"]
    b = InputDataset(rebuilt, labels, split="train", augment=False)[10]["input"]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="statistics"):
        InputPipeline.from_state({**state, "stats": None}, data)


def test_datawide_without_statistics_is_an_error(data, tmp_path):
    pipeline = make(data, tmp_path, input="kaggle", normalization="datawide")
    with pytest.raises(RuntimeError, match="fit"):
        pipeline.assemble(random_sources())


def test_instance_fit_is_a_no_op(data, labels, tmp_path):
    pipeline = make(data, tmp_path, input="kaggle")
    pipeline.fit(labels)
    assert pipeline.state_dict()["stats"] is None


# --- augmentation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"input": "both"},
        {"input": "both", "tile_layout": "stack"},
        {"input": "kaggle", "image_size": 64},
        {"input": "eeg", "tile_layout": "stack"},
    ],
)
def test_swap_equals_input_of_mirrored_sources(data, tmp_path, overrides):
    pipeline = make(data, tmp_path, **overrides)
    sources = random_sources()
    mirrored = {name: x[:, list(recipes.HEMISPHERE_SWAP)] for name, x in sources.items()}
    built = torch.from_numpy(pipeline.assemble(sources))
    swapped = pipeline.swap_hemispheres(built)
    np.testing.assert_allclose(swapped.numpy(), pipeline.assemble(mirrored), atol=1e-5)
    assert not torch.equal(swapped, built)
    assert torch.equal(pipeline.swap_hemispheres(swapped), built)
    np.testing.assert_array_equal(augment.swap_hemispheres(built.numpy(), pipeline.layout), swapped.numpy())


def test_swap_rejects_a_foreign_shape(data, tmp_path):
    with pytest.raises(ValueError, match=r"\(4, 128, 256\)"):
        make(data, tmp_path, input="eeg").swap_hemispheres(torch.zeros(2, 1, 64, 64))


def test_training_augmentation_swaps_only_when_asked(data, labels, tmp_path):
    plain = make(data, tmp_path, input="kaggle", kaggle_layout="tiles")
    always = make(data, tmp_path, input="kaggle", kaggle_layout="tiles", aug_swap_p=1.0)
    reference = InputDataset(plain, labels, split="train", augment=False)[4]["input"]
    assert torch.equal(InputDataset(always, labels, split="train", augment=False)[4]["input"], reference)
    swapped = InputDataset(always, labels, split="train", augment=True)[4]["input"]
    assert torch.equal(swapped, always.swap_hemispheres(reference[None])[0])


def test_masking_zeroes_one_band_on_every_chain():
    x = np.ones((4, 128, 256), dtype=np.float32)
    augment.mask_time_freq(x, np.random.default_rng(3), max_time=40, max_freq=20)
    zero_cols = np.flatnonzero((x == 0).all(axis=(0, 1)))
    zero_rows = np.flatnonzero((x == 0).all(axis=(0, 2)))
    assert 0 < len(zero_cols) <= 40 and 0 < len(zero_rows) <= 20
    assert np.all(np.diff(zero_cols) == 1) and np.all(np.diff(zero_rows) == 1)
    assert (x == 0).sum() == 4 * (len(zero_cols) * 128 + len(zero_rows) * 256 - len(zero_cols) * len(zero_rows))


def test_window_shift_stays_inside_the_recording_and_moves():
    rng = np.random.default_rng(0)
    starts = [augment.shifted_start(1000, 12_000, 10_000, 10.0, rng) for _ in range(200)]
    assert min(starts) == 0 and max(starts) == 2000 and len(set(starts)) > 3
    assert augment.shifted_start(1000, 12_000, 10_000, 0.0, rng) == 1000


def test_shift_augmentation_changes_the_eeg_window(data, labels, tmp_path, eeg_native, monkeypatch):
    seen = []
    monkeypatch.setattr(
        dsp,
        "eeg_spectrograms",
        lambda eeg, **kw: seen.append(np.array(eeg).reshape(-1, 20, 10_000)) or eeg_native(eeg, **kw),
        raising=False,
    )
    pipeline = make(data, tmp_path, input="eeg", aug_shift_s=20.0, aug_swap_p=0.0)
    torch.manual_seed(0)
    dataset = InputDataset(pipeline, labels, split="train", augment=True)
    row = labels.iloc[0]
    recording = data.read_eeg("train", row["eeg_id"])
    for _ in range(4):
        dataset[0]
    labelled = eeg_window(recording, row["eeg_label_offset_seconds"])
    assert any(not np.array_equal(w[0], labelled) for w in seen)
    for window in seen:  # every shifted window is a real 50-s stretch of the recording
        starts = [
            s for s in range(recording.shape[1] - 9_999) if np.array_equal(recording[0, s : s + 10], window[0, 0, :10])
        ]
        assert starts


def test_seeded_items_depend_on_their_seed_and_position_only(data, labels, tmp_path):
    """(seed, position) keys: the same item in any order and under any global RNG state."""
    pipeline = make(data, tmp_path, input="kaggle", kaggle_layout="tiles", aug_mask_p=1.0)
    dataset = InputDataset(pipeline, labels, split="train", augment=True)
    torch.manual_seed(0)
    first = [dataset[(11, p)]["input"] for p in (0, 1, 2)]
    torch.manual_seed(1)
    again = [dataset[(11, p)]["input"] for p in (2, 1, 0)][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(dataset[(12, 0)]["input"], first[0]), "another seed, other masks"
    assert dataset[(11, 1)]["index"].item() == 1


def test_epoch_sampler_yields_each_epochs_keys():
    sampler = EpochSampler(lambda e: [e, e + 1, e + 2], lambda e: 100 + e, 3)
    with pytest.raises(RuntimeError, match="set_epoch"):
        list(sampler)
    sampler.set_epoch(4)
    assert list(sampler) == [(104, 4), (104, 5), (104, 6)] and len(sampler) == 3
    sampler.set_epoch(0)
    assert list(sampler) == [(100, 0), (100, 1), (100, 2)]
    short = EpochSampler(lambda e: [0, 1], lambda e: 0, 3)
    short.set_epoch(0)
    with pytest.raises(RuntimeError, match="2 positions"):
        list(short)


def test_mixup_mixes_inputs_and_targets_alike():
    g = torch.Generator().manual_seed(0)
    batch = {
        "input": torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 1, 2, 2).clone(),
        "target": torch.eye(6)[:4],
        "n_votes": torch.tensor([1.0, 2.0, 3.0, 4.0]),
        "index": torch.arange(4),
    }
    mixed = augment.mixup(batch, alpha=0.4, p=1.0, generator=g)
    assert torch.allclose(mixed["target"].sum(dim=1), torch.ones(4))
    # Input value i encodes the row, so each mixed input must equal its target's weighting.
    assert torch.allclose(mixed["input"][:, 0, 0, 0], mixed["target"][:, :4] @ torch.arange(4.0), atol=1e-6)
    assert torch.allclose(mixed["n_votes"], mixed["target"][:, :4] @ torch.tensor([1.0, 2.0, 3.0, 4.0]), atol=1e-5)
    assert torch.equal(mixed["index"], batch["index"]) and torch.equal(batch["target"], torch.eye(6)[:4])
    again = augment.mixup(batch, alpha=0.4, p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again["input"], mixed["input"])
    assert augment.mixup(batch, alpha=0.0, p=1.0, generator=g) is batch


# --- rebalancing --------------------------------------------------------------------------------


def test_rebalance_weights_equalize_classes(labels):
    w = augment.rebalance_weights(labels, "consensus")
    per_class = pd.Series(w).groupby(labels["expert_consensus"].to_numpy()).sum()
    np.testing.assert_allclose(per_class.to_numpy(), 1.0)
    # Target mass: exact for one-hot targets, and a more even class mass for split votes.
    one_hot = labels.copy()
    votes = [c for c in labels if c.endswith("_vote")]
    one_hot[votes] = np.eye(6)[np.arange(len(labels)) % 3]
    w = augment.rebalance_weights(one_hot, "mass")
    np.testing.assert_allclose((w[:, None] * one_hot[votes].to_numpy()).sum(axis=0)[:3], 1.0)
    targets = labels[votes].to_numpy()
    mass = (augment.rebalance_weights(labels, "mass")[:, None] * targets).sum(axis=0)
    assert mass.max() / mass.min() < targets.sum(axis=0).max() / targets.sum(axis=0).min()
    assert augment.rebalance_weights(labels, "none") is None
    with pytest.raises(ValueError, match="rebalance"):
        augment.rebalance_weights(labels, "bogus")


def test_train_sampler_is_seeded_and_off_by_default(data, labels, tmp_path):
    assert rebalanced_order(labels, make(data, tmp_path).params["rebalance"], 0) is None
    first = rebalanced_order(labels, "consensus", 5)
    assert first == rebalanced_order(labels, "consensus", 5) and len(first) == len(labels)
    assert first != rebalanced_order(labels, "consensus", 6)


# --- config, cache, workers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"clip_lo": 3, "clip_hi": 2}, "clip_lo"),
        ({"bandpass": "20,5"}, "bandpass"),
        ({"image_size": 30}, "image_size"),
        ({"aug_swap_p": 1.5}, "aug_swap_p"),
        ({"wavelet": "nope"}, "wavelet"),
        ({"notch": 200}, "notch"),
        ({"aug_reverse_p": -0.1}, "aug_reverse_p"),
        ({"aug_drop_link_p": 2}, "aug_drop_link_p"),
        ({**RAW, "raw_bandpass": "5,1"}, "raw_bandpass"),
        ({**RAW, "raw_rate": 300}, "raw_rate"),
        ({**RAW, "raw_rate": 33.3}, "raw_rate"),
        ({**RAW, "raw_clip": 0}, "raw_clip"),
        ({**RAW, "raw_scale": -1}, "raw_scale"),
        ({**RAW, "raw_montage": "banana20"}, "raw_montage"),
        ({**RAW, "wavelet": "db4"}, "wavelet"),
        ({**RAW, "eeg_clip": 500}, "eeg_clip"),
    ],
)
def test_config_rejects_bad_input_settings(overrides, key):
    with pytest.raises(ConfigError, match=key):
        build(overrides)


def test_cache_is_used_and_keyed_by_every_parameter(data, labels, tmp_path):
    pipeline = make(data, tmp_path, input="kaggle", kaggle_layout="tiles")
    row = _rows(labels)[2]
    computed = pipeline.row_source("kaggle", "train", row)
    cache = pipeline.cache("kaggle")
    path = cache.path("train", row.spectrogram_id, row.spectrogram_offset)
    stored, _ = input_cache.decode_entry(path.read_bytes(), path)
    assert stored.dtype == np.float16 and stored.shape == computed.shape
    np.testing.assert_allclose(pipeline.row_source("kaggle", "train", row), computed, atol=1e-2)
    source = input_cache.source_identity(data.spectrogram_path("train", row.spectrogram_id))
    path.write_bytes(input_cache.encode_entry(np.full((4, 100, 300), 7), source))  # proves the next read is a hit
    assert np.all(pipeline.row_source("kaggle", "train", row) == 7)
    other = make(data, tmp_path, input="kaggle", kaggle_layout="tiles", clip_hi=9.0)
    assert other.cache("kaggle").folder != cache.folder
    assert np.all(other.row_source("kaggle", "train", row) <= 9.0)
    eeg_a = make(data, tmp_path, input="eeg").cache("eeg").folder
    for change in (
        {"bandpass": "0.5,20"},
        {"notch": 60},
        {"eeg_recipe": "scipy"},
        {"wavelet": "db8"},
        {"eeg_clip": 500},
    ):
        assert make(data, tmp_path, input="eeg", **change).cache("eeg").folder != eeg_a
    # Augmentation, layout and normalization settings do not change what is cached.
    assert make(data, tmp_path, input="eeg", aug_swap_p=0.1, tile_layout="stack").cache("eeg").folder == eeg_a


class _NativeThreads(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dsp.get_num_threads()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_share_the_native_threads(start_method, monkeypatch):
    """Each of n workers runs the native core on its share of the parent's threads (at least 1)."""
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    try:
        dsp.set_num_threads(4)
        kwargs = loader_kwargs(2)
        loader = torch.utils.data.DataLoader(
            _NativeThreads(), batch_size=1, multiprocessing_context=start_method, **kwargs
        )
        assert [int(b) for b in loader] == [2, 2, 2, 2]
        dsp.set_num_threads(1)
        loader = torch.utils.data.DataLoader(
            _NativeThreads(), batch_size=2, multiprocessing_context=start_method, **loader_kwargs(2)
        )
        assert [b.tolist() for b in loader] == [[1, 1], [1, 1]]
    finally:
        dsp.set_num_threads(None)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_with_worker_processes(data, labels, tmp_path, start_method):
    pipeline = make(data, tmp_path, input="kaggle", kaggle_layout="tiles")
    loader = torch.utils.data.DataLoader(
        InputDataset(pipeline, labels.iloc[:8], split="train", augment=True),
        batch_size=4,
        multiprocessing_context=start_method,
        **loader_kwargs(1),
    )
    batches = list(loader)
    assert [b["input"].shape for b in batches] == [(4, 4, 128, 256)] * 2
    assert torch.equal(torch.cat([b["index"] for b in batches]), torch.arange(8))


def test_show_sample_renders_a_png(data, tmp_path, eeg_native, capsys):
    from hms import show_sample

    out = tmp_path / "sample.png"
    argv = ["--data-dir", str(data.root), "--row", "2", "--out", str(out), "input=both", f"cache_dir={tmp_path}"]
    assert show_sample.main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert str(out) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        show_sample.main(argv[:3] + ["999", "--out", str(tmp_path / "x.png"), f"cache_dir={tmp_path}"])
    assert not (tmp_path / "x.png").exists()
    by_id = tmp_path / "by_id.png"
    eeg_id = int(make_labels(data.train, "eeg")["eeg_id"].iloc[2])
    assert (
        show_sample.main(
            ["--data-dir", str(data.root), "--eeg-id", str(eeg_id), "--out", str(by_id), f"cache_dir={tmp_path}"]
        )
        == 0
    )
    assert by_id.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(by_id) in capsys.readouterr().out


# --- raw EEG ----------------------------------------------------------------------------------

#: Left/right mirror of the electrodes (the midline ones stay).
MIRROR = {a: b for pair in (("Fp1", "Fp2"), ("F3", "F4"), ("C3", "C4"), ("P3", "P4"), ("F7", "F8"), ("T3", "T4"),
          ("T5", "T6"), ("O1", "O2")) for a, b in (pair, pair[::-1])}  # fmt: skip


def raw_windows(n=2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 20, 10_000)) * 60).astype(np.float32)


def test_raw_source_is_the_native_recipe_of_the_labelled_window(data, labels, tmp_path):
    options = {"raw_montage": "banana18", "raw_rate": 50, "raw_scaling": "standardize", "raw_bandpass": "1,30"}
    pipeline = make(data, tmp_path, **RAW, **options, notch=60, raw_demean=False)
    assert pipeline.input_shape == (18, 2500) and pipeline.layout == "sequence"
    row = label_windows(labels.iloc[[3]], "train")[0]
    window = eeg_window(data.read_eeg("train", row.eeg_id), row.eeg_offset)
    recipe = dsp.eeg_raw_recipe(
        montage="banana18", bandpass=(1.0, 30.0), notch=60.0, fs=200.0, rate=50.0, demean=False,
        normalize="standardize", clip=1024.0, scale=32.0,
    )  # fmt: skip
    expected = dsp.eeg_raw_inputs(window, recipe)
    got = pipeline.row_source("raw", "train", row)
    assert got.shape == (18, 2500)
    np.testing.assert_array_equal(got, expected.astype(np.float16).astype(np.float32))  # the cache's rounding
    np.testing.assert_array_equal(pipeline.cache("raw").load("train", row.eeg_id, row.eeg_offset), got)


@pytest.mark.parametrize("montage", ["banana16", "banana18"])
def test_raw_swap_equals_the_input_of_the_mirrored_recording(data, tmp_path, montage):
    from hms.schema import EEG_CHANNELS

    pipeline = make(data, tmp_path, **RAW, raw_montage=montage)
    eeg = raw_windows()
    mirrored = eeg[:, [EEG_CHANNELS.index(MIRROR.get(c, c)) for c in EEG_CHANNELS]]
    built = torch.from_numpy(pipeline.transform_windows(eeg=eeg))
    swapped = pipeline.swap_hemispheres(built)
    np.testing.assert_allclose(swapped.numpy(), pipeline.transform_windows(eeg=mirrored), atol=1e-6)
    assert not torch.equal(swapped, built) and torch.equal(pipeline.swap_hemispheres(swapped), built)


def test_raw_normalization_none_instance_and_datawide(data, labels, tmp_path):
    eeg = raw_windows()
    scaled = make(data, tmp_path, **RAW, normalization="none").transform_windows(eeg=eeg)
    np.testing.assert_array_equal(scaled, dsp.eeg_raw_inputs(eeg, dsp.eeg_raw_recipe()))  # the recipe's defaults
    instance = make(data, tmp_path, **RAW).transform_windows(eeg=eeg)
    np.testing.assert_allclose(instance.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(instance.std(axis=(1, 2)), 1, atol=1e-4)
    datawide = make(data, tmp_path, **RAW, normalization="datawide")
    datawide.fit(labels.iloc[:6], show_progress=False)
    stats = datawide.stats["raw"]
    rows = [datawide.row_source("raw", "train", w) for w in label_windows(labels.iloc[:6], "train")]
    assert stats["mean"] == pytest.approx(np.mean(rows), abs=1e-6) and stats["std"] == pytest.approx(np.std(rows))


def test_raw_augmentations_each_do_what_they_say(data, labels, tmp_path):
    def item(augment=True, **aug):
        pipeline = make(data, tmp_path, **RAW, normalization="none", aug_swap_p=0.0, **aug)
        return InputDataset(pipeline, labels, split="train", augment=augment)[(5, 2)]["input"].numpy()

    reference = item(augment=False)
    np.testing.assert_array_equal(item(), reference)  # nothing asked, nothing changed
    np.testing.assert_array_equal(item(aug_reverse_p=1.0), reference[:, ::-1])
    chain = item(aug_drop_chain_p=1.0)
    zero_rows = np.flatnonzero((chain == 0).all(axis=1))
    assert len(zero_rows) == 4 and zero_rows[0] % 4 == 0 and np.all(np.diff(zero_rows) == 1)
    np.testing.assert_array_equal(np.delete(chain, zero_rows, 0), np.delete(reference, zero_rows, 0))
    links = item(aug_drop_link_p=0.5)
    dropped = (links == 0).all(axis=1)
    assert 0 < dropped.sum() < 16
    np.testing.assert_array_equal(links[~dropped], reference[~dropped])
    cut = item(aug_mask_p=1.0, aug_mask_time=64)
    zero_cols = np.flatnonzero((cut == 0).all(axis=0))
    assert 0 < len(zero_cols) <= 64 * 2000 / 256 and np.all(np.diff(zero_cols) == 1)
    np.testing.assert_array_equal(np.delete(cut, zero_cols, 1), np.delete(reference, zero_cols, 1))
    shifting = make(data, tmp_path, **RAW, normalization="none", aug_swap_p=0.0, aug_shift_s=20.0)
    dataset = InputDataset(shifting, labels, split="train", augment=True)
    assert any(not np.array_equal(dataset[(seed, 2)]["input"].numpy(), reference) for seed in range(6))


def test_drop_links_zeroes_whole_chains_or_single_links():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        x = np.ones((18, 50), dtype=np.float32)
        augment.drop_links(x, rng, 1.0, 0.0)
        rows = tuple(np.flatnonzero((x == 0).all(axis=1)))
        seen.add(rows)
    assert seen == {(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15), (16, 17)}
    x = np.ones((16, 50), dtype=np.float32)
    augment.drop_links(x, rng, 0.0, 0.0)
    assert (x == 1).all()
