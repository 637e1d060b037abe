"""Model factory: timm backbones with a six-class head, presets, safe local weight loading.

Any timm model name works (``timm.list_models()``); the seed design's ensemble members are
config presets (:data:`hms.config.PRESETS`). Pretrained weights come
from timm's hub only with ``pretrained=True`` (needs network), or from a local file via
``weights`` (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with ``weights_only=True``, so
a file cannot run code when loaded).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, cast

import timm
import torch
from torch import nn

from hms import CLASSES
from hms.config import check_model_takes_input
from hms.raw_models import RAW_MODELS, RawAsImage, image_backbone


class ModelError(ValueError):
    """A model name, weights file or checkpoint does not fit; the message names it."""


def create_model(
    name: str,
    in_chans: int,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    input_pool: int = 1,
) -> nn.Module:
    """A timm ``name`` backbone, or a raw-EEG model (:data:`hms.raw_models.RAW_MODELS`, or
    ``raw2d-<timm name>``: the raw EEG as one image for that backbone), with ``in_chans`` input
    channels (raw: bipolar links) and a six-class linear head starting at zero; with
    ``input_pool > 1`` an image input is average-pooled by that factor first (not raw input)."""
    if name in RAW_MODELS:
        if pretrained:
            raise ModelError(f"model {name!r} has no published pretrained weights; pass weights=FILE or train it")
        model: nn.Module = RAW_MODELS[name](in_chans, len(CLASSES), drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        _zero_classifier(model)
        if weights is not None:
            load_pretrained(model, weights)
        return model
    backbone = image_backbone(name)
    if backbone is not None:
        # The raw window becomes one single-channel image; local weights load into the backbone
        # (its first convolution adapted to one channel, as for any image input).
        return RawAsImage(
            create_model(
                backbone, 1, pretrained=pretrained, weights=weights, drop_rate=drop_rate, drop_path_rate=drop_path_rate
            )
        )
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, [*RAW_MODELS, *timm.list_models()], n=5, cutoff=0.7)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ModelError(f"model: unknown timm model {name!r}{hint}")
    kwargs: dict[str, Any] = dict(in_chans=in_chans, num_classes=len(CLASSES), drop_rate=drop_rate)
    if drop_path_rate:
        # Not every architecture takes drop_path_rate; only pass it when asked for.
        kwargs["drop_path_rate"] = drop_path_rate
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r} rejects these settings ({exc})") from exc
    _zero_classifier(model)
    if weights is not None:
        load_pretrained(model, weights)
    return PooledInput(model, input_pool) if input_pool > 1 else model


class PooledInput(nn.Module):
    """Average-pools the input before the backbone: 4x fewer pixels per factor 2, for runs where
    compute, not resolution, is the limit (the CPU default)."""

    def __init__(self, backbone: nn.Module, factor: int):
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AvgPool2d(factor, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.pool(x))


def _zero_classifier(model: nn.Module) -> None:
    """Zero the new head: training starts from the uniform prediction (KL about 1.1) instead of
    random confident logits, which made small-data runs start with losses of 3-5."""
    head = cast(Any, model).get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, nn.Linear):
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)


def create_model_from_config(cfg, in_chans: int) -> nn.Module:
    """:func:`create_model` with the model section of a :class:`hms.config.Config`, its model
    checked against its input (raw-EEG models take input=raw)."""
    check_model_takes_input(cfg)
    return create_model(
        cfg.model,
        in_chans,
        pretrained=cfg.pretrained,
        weights=cfg.weights,
        drop_rate=cfg.drop_rate,
        drop_path_rate=cfg.drop_path_rate,
        input_pool=cfg.input_pool,
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without executing code from it.

    Accepts a bare state dict or one nested under ``state_dict``/``model``/``state_dict_ema``
    (timm and common trainer checkpoints); a ``module.`` prefix (DataParallel/DDP) is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights: {path}: file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors come in many types
            raise ModelError(f"weights: {path} cannot be loaded safely (weights_only=True): {exc}") from exc
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"weights: {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load local pretrained weights into ``model`` like timm's pretrained loading does.

    The first convolution is adapted when the file's input channels differ (timm's
    ``adapt_input_conv``: summed/repeated RGB filters), and a classifier of another class count
    is skipped (it stays freshly initialized). Returns the keys that were skipped or missing;
    a file that matches no parameter at all is an error (wrong architecture).
    """
    from timm.models import adapt_input_conv

    state = read_state_dict(path)
    own = model.state_dict()
    first_conv = _first_conv_weight_key(model)
    loaded: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, tensor in state.items():
        target = own.get(key)
        if target is None:
            skipped.append(key)
            continue
        if key == first_conv and tensor.ndim == 4 and tensor.shape[1] != target.shape[1]:
            tensor = adapt_input_conv(target.shape[1], tensor)
        if tensor.shape != target.shape:
            skipped.append(key)
            continue
        loaded[key] = tensor
    if not loaded:
        raise ModelError(f"weights: {path} matches no parameter of the model (another architecture?)")
    missing = [k for k in own if k not in loaded]
    model.load_state_dict(loaded, strict=False)
    return {"skipped": skipped, "missing": missing}


def _first_conv_weight_key(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"{name}.weight"
    return None
