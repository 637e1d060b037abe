"""Raw-EEG models (hms.raw_models) through hms.models.create_model: shapes, size, heads,
dropout and stochastic depth, local weights, chain structure, and that they learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hms import config
from hms.models import ModelError, PooledInput, create_model, create_model_from_config
from hms.raw_models import N_CHAINS, RAW_MODELS, EfficientNet1d, GeM, RawAsImage

SAMPLES = 2000  # 50 s at 40 Hz
#: Every family of raw-EEG models: the 1-D models and a timm backbone on the raw EEG as an image.
RAW_NAMES = [*RAW_MODELS, "raw2d-resnet10t"]


@pytest.mark.parametrize("links", [16, 18])
@pytest.mark.parametrize("name", RAW_NAMES)
def test_six_logits_for_any_length_and_uniform_at_start(name, links):
    model = create_model(name, links).eval()
    for samples in (SAMPLES, 1234):
        with torch.no_grad():
            logits = model(torch.randn(3, links, samples))
        assert logits.shape == (3, 6)
        # Zero head: every sample starts at the uniform prediction (KL about 1.1 at most).
        np.testing.assert_allclose(logits.softmax(1).numpy(), 1 / 6, atol=1e-6)


def test_efficientnet1d_has_the_published_size():
    n_params = sum(p.numel() for p in create_model("efficientnet1d", 16).parameters())
    assert 0.8e6 < n_params < 1.1e6, n_params


@pytest.mark.parametrize("name", list(RAW_MODELS))
@pytest.mark.parametrize("links", [4, 17, 20])
def test_channels_must_be_the_montages_links(name, links):
    with pytest.raises(ValueError, match="16 double-banana links or 18"):
        create_model(name, links)


def test_central_chain_is_a_fifth_chain_of_its_own():
    """With 18 links the central pair (channels 16, 17) is the efficientnet1d's fifth row and the
    wavenet's fifth chain: a change there reaches no other chain's features."""
    model = EfficientNet1d(18).eval()
    assert model.chains == 5
    x = torch.randn(1, 18, 256)
    y = x.clone()
    y[0, 16:] += 1.0
    pad = lambda t: torch.nn.functional.pad(t, (0, 0, 0, 2)).reshape(1, 5, 4, -1).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        changed = (model.stem(pad(x)) - model.stem(pad(y))).abs().sum(dim=(0, 1, 3))
    assert changed[4] > 0 and changed[:4].sum() == 0
    wavenet = create_model("wavenet", 18).eval()
    torch.nn.init.normal_(wavenet.get_classifier().weight)
    features = {}
    wavenet.classifier.register_forward_hook(lambda m, i, o: features.setdefault(len(features), i[0].clone()))
    with torch.no_grad():
        wavenet(x), wavenet(y)
    per_chain = (features[0] - features[1]).reshape(5, -1).abs().sum(dim=1)
    assert per_chain[4] > 0 and per_chain[:4].sum() == 0


def test_raw_as_image_stacks_segments_as_rows():
    """(C, T) becomes (C x R, T / R), about square, each row a consecutive segment of one link."""
    x = torch.arange(2 * 16 * 2000, dtype=torch.float32).reshape(2, 16, 2000)
    image = RawAsImage.to_image(x)
    rows = round((2000 / 16) ** 0.5)
    assert image.shape == (2, 1, 16 * rows, -(-2000 // rows))
    width = image.shape[-1]
    torch.testing.assert_close(image[1, 0, 0], x[1, 0, :width])  # link 0's first segment
    torch.testing.assert_close(image[1, 0, 1], x[1, 0, width : 2 * width])  # ... then its second
    torch.testing.assert_close(image[1, 0, rows], x[1, 1, :width])  # link 1 starts a block
    assert image[0, 0, rows - 1, -1] == 0  # the time axis padded with zeros to R x width


def test_efficientnet1d_convolves_within_chains_and_mixes_neighbours():
    """A change in one chain's links reaches the stem's output of that chain only; the (3, 1)
    mixers spread it to the neighbouring chains."""
    model = EfficientNet1d(16).eval()
    x = torch.randn(1, 16, 256)
    y = x.clone()
    y[0, 4:8] += 1.0  # chain 1 (channels 4..7)
    links = model.links
    as_image = lambda t: t.reshape(1, N_CHAINS, links, -1).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        changed = (model.stem(as_image(x)) - model.stem(as_image(y))).abs().sum(dim=(0, 1, 3))
        assert changed[1] > 0 and changed[[0, 2, 3]].sum() == 0
        mixed = (model.blocks[:2](model.stem(as_image(x))) - model.blocks[:2](model.stem(as_image(y)))).abs()
        assert (mixed.sum(dim=(0, 1, 3))[[0, 2]] > 0).all()


def test_gem_between_average_and_max():
    x = torch.rand(2, 3, 4, 5) + 0.1
    gem = GeM(p=3.0)
    pooled = gem(x)
    assert ((x.mean(dim=(2, 3)) <= pooled + 1e-6) & (pooled <= x.amax(dim=(2, 3)) + 1e-6)).all()
    gem.p.data.fill_(1.0)
    torch.testing.assert_close(gem(x), x.mean(dim=(2, 3)))


def test_dropout_and_drop_path_act_in_training_only():
    model = create_model("efficientnet1d", 16, drop_rate=0.5, drop_path_rate=0.5)
    torch.nn.init.normal_(model.get_classifier().weight)  # a non-zero head shows the dropout
    x = torch.randn(4, 16, 512)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", list(RAW_MODELS))
def test_local_weights_round_trip(name, tmp_path):
    trained = create_model(name, 16)
    for p in trained.parameters():
        torch.nn.init.normal_(p, std=0.01)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    loaded = create_model(name, 16, weights=tmp_path / "w.pt")
    for (key, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), key
    with pytest.raises(ModelError, match="no published pretrained weights"):
        create_model(name, 16, pretrained=True)


@pytest.mark.parametrize("name", RAW_NAMES)
def test_learns_which_chain_carries_a_rhythm(name):
    """Class = the chain holding a 2 Hz rhythm (of 4): 40 Adam steps on 5-s samples go well
    below chance on fresh samples."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def batch(n):
        y = rng.integers(0, N_CHAINS, n)
        x = rng.standard_normal((n, 16, 200)).astype(np.float32) * 0.5
        t = np.arange(200) / 40.0
        for i, chain in enumerate(y):
            x[i, 4 * chain : 4 * chain + 4] += np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, 6.3))
        return torch.from_numpy(x), torch.from_numpy(y)

    model = create_model(name, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        x, y = batch(16)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y = batch(128)
    with torch.no_grad():
        held_out = torch.nn.functional.cross_entropy(model(x), y).item()
    assert held_out < 0.5 * np.log(6), held_out


@pytest.mark.parametrize("name", RAW_NAMES)
def test_config_matches_models_to_inputs(name):
    with pytest.raises(config.ConfigError, match="does not take input='eeg'; it needs a timm model"):
        config.build({"model": name})
    with pytest.raises(config.ConfigError, match="does not take input='raw'; it needs a raw-EEG model"):
        config.build({"input": "raw"})
    model = create_model_from_config(config.build({"model": name, "input": "raw", "input_pool": 4}), 16)
    assert not isinstance(model, PooledInput)  # input_pool does not apply to the raw EEG
    with torch.no_grad():
        assert model(torch.randn(2, 16, SAMPLES)).shape == (2, 6)
