"""hms.models: timm factory, presets, safe local weight loading."""

from __future__ import annotations

import pickle

import pytest
import timm
import torch

from hms import CLASSES
from hms.config import PRESETS, Config, ConfigError, build
from hms.models import ModelError, PooledInput, create_model, create_model_from_config, load_pretrained, read_state_dict

TINY = "test_resnet"  # timm's own tiny test architecture: fast on CPU


def test_presets_are_timm_models():
    assert set(PRESETS) == {"resnet34d", "efficientnet_b0", "efficientnet_b1"}
    for name in PRESETS:
        assert timm.is_model(name), name


def test_preset_applies_the_seed_settings_under_the_command_line(tmp_path):
    cfg = build({"preset": "efficientnet_b1"})
    assert (cfg.model, cfg.input, cfg.grouping, cfg.beta1, cfg.drop_rate) == (
        "efficientnet_b1",
        "kaggle",
        "spectrogram",
        0.5,
        0.18,
    )
    assert cfg.normalization == "datawide" and cfg.input_pool == 1
    # The file and the command line override the preset; the preset may come from the file.
    (tmp_path / "run.toml").write_text('preset = "resnet34d"\nlr = 5e-4\n')
    cfg = build({"epochs": 3}, tmp_path / "run.toml")
    assert (cfg.model, cfg.lr, cfg.epochs, cfg.beta1) == ("resnet34d", 5e-4, 3, 0.5)
    with pytest.raises(ConfigError, match="did you mean 'resnet34d'"):
        build({"preset": "resnet34"})


@pytest.mark.parametrize("in_chans", [1, 4, 8])
def test_create_model_has_six_outputs_and_in_chans(in_chans):
    model = create_model(TINY, in_chans, drop_rate=0.3)
    out = model(torch.randn(2, in_chans, 32, 64))
    assert out.shape == (2, len(CLASSES))
    assert model.drop_rate == pytest.approx(0.3)


def test_create_model_from_config_uses_model_section():
    cfg = Config(model=TINY, drop_rate=0.2, drop_path_rate=0.1, input_pool=1)
    model = create_model_from_config(cfg, 4)
    assert model.drop_rate == pytest.approx(0.2)
    assert any(type(m).__name__ == "DropPath" for m in model.modules())


def test_input_pool_averages_the_input_before_the_backbone():
    torch.manual_seed(0)
    model = create_model_from_config(Config(model=TINY, input_pool=2), 4).eval()
    assert isinstance(model, PooledInput)
    torch.nn.init.normal_(model.backbone.get_classifier().weight)  # a non-constant head
    x = torch.randn(2, 4, 32, 64)
    expected = model.backbone(torch.nn.functional.avg_pool2d(x, 2))
    torch.testing.assert_close(model(x), expected)


def test_unknown_model_names_the_model_and_suggests():
    with pytest.raises(ModelError, match="resnet1888.*similar"):
        create_model("resnet1888", 4)
    with pytest.raises(ModelError, match="'no_such_net'"):
        create_model("no_such_net", 4)


def test_pretrained_is_off_by_default():
    assert Config().pretrained is False
    assert Config().weights is None


def _three_channel_weights(tmp_path, suffix=".pth", nest=None):
    source = timm.create_model(TINY, in_chans=3, num_classes=1000)
    state = source.state_dict()
    if nest:
        state = {nest: {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return source, path


@pytest.mark.parametrize("suffix,nest", [(".pth", None), (".pth", "state_dict"), (".safetensors", None)])
def test_local_weights_adapt_first_conv_and_skip_classifier(tmp_path, suffix, nest):
    source, path = _three_channel_weights(tmp_path, suffix, nest)
    model = create_model(TINY, 1, weights=path)
    own, theirs = model.state_dict(), source.state_dict()
    conv_key = next(k for k, v in own.items() if v.ndim == 4)
    # timm's adapt_input_conv: RGB filters summed for one input channel.
    assert torch.allclose(own[conv_key], theirs[conv_key].sum(dim=1, keepdim=True))
    body = [k for k in own if k != conv_key and own[k].shape == theirs[k].shape and own[k].dtype.is_floating_point]
    assert body and all(torch.equal(own[k], theirs[k]) for k in body)
    head = [k for k in own if k != conv_key and own[k].shape != theirs[k].shape]
    assert head, "the 1000-class head must have been skipped"
    assert own[head[0]].shape[0] == len(CLASSES)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran while loading weights",))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Payload()}, f)
    with pytest.raises(ModelError, match="weights_only"):
        read_state_dict(path)


def test_weights_of_another_architecture_are_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"nothing.like.this": torch.zeros(3)}, path)
    with pytest.raises(ModelError, match="matches no parameter"):
        load_pretrained(create_model(TINY, 4), path)


def test_missing_weights_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        create_model(TINY, 4, weights=tmp_path / "absent.pth")
