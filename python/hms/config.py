"""One typed configuration for the whole pipeline, with file and command-line overrides.

Precedence: dataclass defaults < ``--config FILE`` (TOML or JSON) < command-line overrides, given
as ``key=value``, ``--key value`` or ``--key=value`` (``-`` and ``_`` are interchangeable). An
unknown key or a bad value is an error naming the key (and the closest valid key). The fully
resolved config is what a run directory records (``config.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

SCHEDULERS = ("cosine", "onecycle", "plateau", "step")
#: clip_lo and clip_hi are natural logs of float32 spectrogram powers: e^87 is near float32's maximum.
CLIP_LOG_LIMIT = 80.0
MAX_LR = 10.0
MAX_SEED = 2**32 - 1
#: Integers beyond this are not exact as floats; an integer option larger than it is refused.
_MAX_EXACT_INT = 2**53


#: The seed design's ensemble members with its settings: Kaggle spectrograms as one 512 x 512
#: image, labels grouped per spectrogram, AdamW(betas=(0.5, 0.999), weight_decay=0.01), cosine
#: schedule; the EfficientNet-B1 values are its Optuna results (dropout, data-wide normalization,
#: lr). ``preset=NAME`` applies them under the config file and the command line.
PRESETS: dict[str, dict[str, Any]] = {
    name: {
        "model": name,
        "input": "kaggle",
        "kaggle_layout": "image",
        "image_size": 512,
        "input_pool": 1,
        "grouping": "spectrogram",
        "normalization": "instance",
        "lr": 1e-3,
        "beta1": 0.5,
        "beta2": 0.999,
        "weight_decay": 0.01,
        "scheduler": "cosine",
        **extra,
    }
    for name, extra in {
        "resnet34d": {},
        "efficientnet_b0": {},
        "efficientnet_b1": {"drop_rate": 0.18, "normalization": "datawide", "lr": 1.37e-3},
    }.items()
}


class ConfigError(ValueError):
    """A config key or value is invalid; the message names it."""


def _opt(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class Config:
    # --- data ---------------------------------------------------------------------------------
    data_dir: str | None = _opt(None, "competition folder; default: the synthetic set (made on first use)")
    grouping: Literal["eeg", "spectrogram", "row"] = _opt("eeg", "one sample per eeg_id, spectrogram_id or label row")
    n_folds: int = _opt(5, "K of the patient-grouped K-fold cross-validation")
    folds: list[int] | None = _opt(None, "train only these folds, e.g. 0,2 (default: all)")
    # --- model inputs ---------------------------------------------------------------------------
    input: Literal["kaggle", "eeg", "both", "raw"] = _opt(
        "eeg", "input recipe: Kaggle spectrograms, EEG spectrograms, both, or the raw bipolar EEG (raw_* options)"
    )
    normalization: Literal["instance", "datawide", "none"] = _opt(
        "instance", "per-sample or training-data-wide standardization, or none (the recipe's own scale)"
    )
    # Fields below: hms.inputs (documented in its module docstring).
    clip_lo: float = _opt(-6.0, "Kaggle spectrograms: clip to e^clip_lo before the log (seed: 'lowpass')")
    clip_hi: float = _opt(10.0, "Kaggle spectrograms: clip to e^clip_hi before the log (seed: 'highpass')")
    kaggle_layout: Literal["image", "tiles"] = _opt(
        "image", "input=kaggle: one resized image_size^2 image (seed) or 4 region tiles"
    )
    image_size: int = _opt(512, "side of the kaggle 'image' layout (a multiple of 4)")
    tile_layout: Literal["channels", "stack"] = _opt(
        "channels", "128 x 256 tiles as channels (4 or 8 x 128 x 256) or stacked into one 512-row image"
    )
    eeg_recipe: Literal["mel", "scipy"] = _opt("mel", "EEG chain spectrogram recipe of hms.dsp.eeg_spectrograms")
    bandpass: list[float] | None = _opt(None, "EEG band-pass [low, high] in Hz, e.g. 0.5,20 (default: off)")
    notch: float | None = _opt(None, "EEG notch frequency in Hz, e.g. 60 (default: off)")
    wavelet: str | None = _opt(None, "EEG wavelet denoising with this pywt wavelet, e.g. db8 (default: off)")
    wavelet_level: int | None = _opt(None, "wavelet decomposition level (default: pywt's maximum)")
    wavelet_sigma: Literal["mean", "median"] = _opt(
        "median", "noise estimate from the finest details: mean (as circulated) or median absolute deviation"
    )
    eeg_clip: float | None = _opt(None, "clip raw EEG to +-this many microvolts (default: off)")
    raw_montage: Literal["banana16", "banana18"] = _opt(
        "banana16", "input=raw: the 16 double-banana links, or 18 with Fz-Cz and Cz-Pz"
    )
    raw_bandpass: list[float] | None = _opt(
        [0.5, 20.0], "input=raw: zero-phase band-pass [low, high] in Hz (none: off)"
    )
    raw_rate: float = _opt(40.0, "input=raw: sampling rate after anti-aliased resampling, in Hz (200: none)")
    raw_demean: bool = _opt(True, "input=raw: subtract each link's mean")
    raw_scaling: Literal["clip", "standardize", "none"] = _opt(
        "clip", "input=raw: clip to +-raw_clip then divide by raw_scale, standardize each link, or neither"
    )
    raw_clip: float = _opt(1024.0, "input=raw: clip limit in microvolts (raw_scaling=clip)")
    raw_scale: float = _opt(32.0, "input=raw: divisor after clipping (raw_scaling=clip)")
    rebalance: Literal["none", "consensus", "mass"] = _opt(
        "none", "training sampler weights: none, by consensus class, or by target mass"
    )
    aug_shift_s: float = _opt(0.0, "train: random shift of the 50-s EEG window by up to +-this many seconds")
    aug_swap_p: float = _opt(0.5, "train: probability of a left/right hemisphere swap")
    aug_mask_p: float = _opt(0.0, "train: probability of time and frequency masking (input=raw: a time cutout)")
    aug_mask_time: int = _opt(32, "widest time mask in frames of 1/256 of the window (about 0.2 s)")
    aug_mask_freq: int = _opt(16, "widest frequency mask in bins")
    aug_reverse_p: float = _opt(0.0, "train, input=raw: probability of reversing the window in time")
    aug_drop_chain_p: float = _opt(0.0, "train, input=raw: probability of zeroing one random chain")
    aug_drop_link_p: float = _opt(0.0, "train, input=raw: probability of zeroing each link")
    mixup_alpha: float = _opt(0.0, "mixup Beta(alpha, alpha) in training batches (0: off)")
    mixup_p: float = _opt(0.5, "probability that a training batch is mixed")
    cache: bool = _opt(True, "cache preprocessed Kaggle windows and EEG spectrograms (hms prepare)")
    cache_dir: str | None = _opt(None, "input cache folder (default: $HMS_CACHE_DIR or ~/.cache/hms, /inputs)")
    # --- model ----------------------------------------------------------------------------------
    preset: str | None = _opt(None, f"start from the seed design's settings for one member: {', '.join(PRESETS)}")
    model: str = _opt("resnet10t", "any timm model name (presets: resnet34d, efficientnet_b0, efficientnet_b1)")
    pretrained: bool = _opt(False, "download timm's pretrained weights (needs network)")
    weights: str | None = _opt(None, "local pretrained weights file (.pth/.safetensors), loaded safely")
    drop_rate: float = _opt(0.0, "dropout before the classifier")
    drop_path_rate: float = _opt(0.0, "stochastic depth rate")
    input_pool: int = _opt(
        2,
        "average-pool the input by this factor before the backbone (1: full resolution; the default 2 keeps CPU runs fast)",
    )
    # --- optimization ---------------------------------------------------------------------------
    epochs: int = _opt(8, "epochs of stage 1 (all rows)")
    batch_size: int = _opt(
        32,
        "samples per optimizer step (before accumulation) and process: under torchrun the global batch is batch_size x processes (lr is not rescaled)",
    )
    lr: float = _opt(3e-3, "peak learning rate")
    beta1: float = _opt(0.9, "AdamW beta1")
    beta2: float = _opt(0.999, "AdamW beta2")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    scheduler: Literal["cosine", "onecycle", "plateau", "step"] = _opt("cosine", "learning-rate schedule")
    warmup_epochs: float = _opt(0.0, "linear warm-up length in epochs")
    grad_clip: float | None = _opt(None, "clip gradients to this global norm")
    accum_steps: int = _opt(1, "gradient accumulation steps")
    min_lr: float = _opt(1e-6, "final learning rate of the cosine and one-cycle schedules")
    lr_decay: float = _opt(0.5, "lr factor of the step schedule (every step_epochs) and of plateau cuts")
    step_epochs: int = _opt(2, "step schedule: epochs between lr cuts")
    plateau_patience: int = _opt(1, "plateau schedule: epochs without improvement before an lr cut")
    loss_vote_weights: bool = _opt(False, "weight each sample's KL by its vote count")
    vote_schedule: Literal["none", "decay", "switch"] = _opt(
        "none",
        "stage 1 by vote count: decay (rows under stage2_min_votes lose loss weight over the epochs, to votes/min_votes) or switch (only rows with >= stage2_min_votes from vote_switch_epoch on)",
    )
    vote_switch_epoch: int = _opt(
        4, "vote_schedule=switch: the stage-1 epoch (0-based) from which only high-vote rows are drawn"
    )
    stage2_epochs: int = _opt(2, "epochs of stage 2: fine-tuning on samples with >= stage2_min_votes (0: off)")
    stage2_min_votes: int = _opt(10, "vote threshold of stage 2 and of the high-vote CV subset")
    stage2_lr: float | None = _opt(None, "peak lr of stage 2 (default: lr / 10)")
    # --- training -------------------------------------------------------------------------------
    seed: int = _opt(42, "seed of folds, initialization, sampling and augmentation")
    device: Literal["auto", "cpu", "cuda", "mps"] = _opt("auto", "where to train (auto: cuda, then mps, then cpu)")
    amp: Literal["auto", "off", "bf16", "fp16"] = _opt("auto", "mixed precision on CUDA (auto: bf16 where supported)")
    channels_last: bool = _opt(True, "channels_last memory format on CUDA")
    num_workers: int = _opt(0, "DataLoader worker processes")
    patience: int | None = _opt(None, "early stopping patience in epochs (default: off)")
    eval_batch_size: int | None = _opt(None, "validation batch size (default: 2 x batch_size)")
    tta: bool = _opt(False, "validation: average predictions with the hemisphere-swapped input")
    deterministic: bool = _opt(True, "deterministic algorithms where the device supports them")
    progress: bool = _opt(True, "tqdm progress bars for folds, epochs and batches")
    dist_timeout_s: float = _opt(
        600.0,
        "torchrun: seconds a process waits for the others in a collective (e.g. on a dead or hung peer) before failing",
    )
    folds_parallel: int = _opt(
        1,
        "train this many folds at once, in worker processes (one GPU each, round-robin; on CPU the cores are shared); 1: one after another",
    )
    # --- run ------------------------------------------------------------------------------------
    run_dir: str | None = _opt(None, "run directory (default: runs/<model>-<input>-<time>)")

    def __post_init__(self) -> None:
        validate(self)


def _positive(cfg: Config, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value!r}")


def validate(cfg: Config) -> None:
    """Checks types, choices and ranges; raises ConfigError naming the key."""
    hints = typing.get_type_hints(Config)
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        setattr(cfg, f.name, _coerce(f.name, value, hints[f.name]))
    _positive(
        cfg, "n_folds", "epochs", "batch_size", "lr", "accum_steps", "grad_clip", "dist_timeout_s", "folds_parallel"
    )
    if cfg.n_folds < 2:
        raise ConfigError(f"n_folds must be >= 2, got {cfg.n_folds}")
    if cfg.folds is not None:
        bad = [f for f in cfg.folds if not 0 <= f < cfg.n_folds]
        if bad or not cfg.folds or len(set(cfg.folds)) != len(cfg.folds):
            raise ConfigError(f"folds must be distinct fold indices in 0..{cfg.n_folds - 1}, got {cfg.folds}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.preset is not None and cfg.preset not in PRESETS:
        close = difflib.get_close_matches(cfg.preset, list(PRESETS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {cfg.preset!r}{hint}")
    if cfg.input_pool < 1:
        raise ConfigError(f"input_pool must be >= 1, got {cfg.input_pool}")
    for name in ("drop_rate", "drop_path_rate"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.weight_decay < 0 or cfg.warmup_epochs < 0 or cfg.num_workers < 0:
        raise ConfigError("weight_decay, warmup_epochs and num_workers must be >= 0")
    if cfg.patience is not None and cfg.patience < 1:
        raise ConfigError(f"patience must be >= 1, got {cfg.patience}")
    # Training / optimization fields (hms.train).
    _positive(cfg, "lr_decay", "step_epochs", "plateau_patience", "stage2_lr", "eval_batch_size")
    for name in ("lr", "stage2_lr"):
        if (getattr(cfg, name) or 0) > MAX_LR:
            raise ConfigError(
                f"{name} must be at most {MAX_LR:g} (training diverges far below), got {getattr(cfg, name)}"
            )
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}] (numpy's and torch's seed range), got {cfg.seed}")
    if not 0 <= cfg.min_lr < cfg.lr:
        raise ConfigError(f"min_lr must be in [0, lr={cfg.lr}), got {cfg.min_lr}")
    if cfg.lr_decay >= 1:
        raise ConfigError(f"lr_decay must be in (0, 1), got {cfg.lr_decay}")
    if cfg.stage2_epochs < 0 or cfg.stage2_min_votes < 1:
        raise ConfigError(
            f"stage2_epochs must be >= 0 and stage2_min_votes >= 1, got {cfg.stage2_epochs}, {cfg.stage2_min_votes}"
        )
    # model inputs
    for name in ("clip_lo", "clip_hi"):  # e^value must be a normal float32, like the spectrograms
        if not -CLIP_LOG_LIMIT <= getattr(cfg, name) <= CLIP_LOG_LIMIT:
            raise ConfigError(
                f"{name} must be in [-{CLIP_LOG_LIMIT}, {CLIP_LOG_LIMIT}] (e^{name} within float32), "
                f"got {getattr(cfg, name)}"
            )
    if not cfg.clip_lo < cfg.clip_hi:
        raise ConfigError(f"clip_lo must be < clip_hi, got {cfg.clip_lo} and {cfg.clip_hi}")
    if cfg.image_size < 4 or cfg.image_size % 4:
        raise ConfigError(f"image_size must be a positive multiple of 4, got {cfg.image_size}")
    if cfg.bandpass is not None and not (len(cfg.bandpass) == 2 and 0 < cfg.bandpass[0] < cfg.bandpass[1] < 100):
        raise ConfigError(f"bandpass must be [low, high] with 0 < low < high < 100 Hz, got {cfg.bandpass}")
    if cfg.notch is not None and not 0 < cfg.notch < 100:
        raise ConfigError(f"notch must be between 0 and 100 Hz, got {cfg.notch}")
    if cfg.wavelet is not None:
        import pywt

        if cfg.wavelet not in pywt.wavelist(kind="discrete"):
            close = difflib.get_close_matches(cfg.wavelet, pywt.wavelist(kind="discrete"), n=1)
            raise ConfigError(
                f"wavelet {cfg.wavelet!r} is not a discrete pywt wavelet"
                + (f" (did you mean '{close[0]}'?)" if close else "")
            )
    _positive(cfg, "wavelet_level", "eeg_clip")
    _validate_raw_input(cfg)
    for name in ("aug_swap_p", "aug_mask_p", "mixup_p", "aug_reverse_p", "aug_drop_chain_p", "aug_drop_link_p"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ConfigError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    if cfg.aug_shift_s < 0 or cfg.mixup_alpha < 0 or cfg.aug_mask_time < 0 or cfg.aug_mask_freq < 0:
        raise ConfigError("aug_shift_s, aug_mask_time, aug_mask_freq and mixup_alpha must be >= 0")
    if cfg.vote_schedule == "switch" and not 0 < cfg.vote_switch_epoch < cfg.epochs:
        raise ConfigError(
            f"vote_switch_epoch must be in 1..epochs-1={cfg.epochs - 1} with vote_schedule=switch, "
            f"got {cfg.vote_switch_epoch}"
        )


#: Options of the spectrogram recipes that the raw recipe does not take (it has raw_* instead).
_SPECTROGRAM_ONLY = ("bandpass", "wavelet", "eeg_clip")


def check_model_takes_input(cfg: Config) -> None:
    """Raw-EEG models take input=raw only, timm models the spectrogram inputs. Checked by
    :func:`build` and the model factory, not by every Config: an input pipeline's Config carries
    the input options only (its model field is the default)."""
    from hms.raw_models import is_raw_model  # torch: imported only when a model is checked

    if is_raw_model(cfg.model) != (cfg.input == "raw"):
        want = "a raw-EEG model (efficientnet1d, wavenet, raw2d-<timm name>)" if cfg.input == "raw" else "a timm model"
        raise ConfigError(f"model {cfg.model!r} does not take input={cfg.input!r}; it needs {want}")


def _validate_raw_input(cfg: Config) -> None:
    """The raw recipe's options."""
    if cfg.input != "raw":
        return
    given = [name for name in _SPECTROGRAM_ONLY if getattr(cfg, name) is not None]
    if given:
        raise ConfigError(f"input=raw does not use {given}; its options are raw_bandpass, raw_clip, raw_scaling, ...")
    band = cfg.raw_bandpass
    if band is not None and not (len(band) == 2 and 0 < band[0] < band[1] < 100):
        raise ConfigError(f"raw_bandpass must be [low, high] with 0 < low < high < 100 Hz, got {band}")
    ratio = Fraction(cfg.raw_rate / 200.0).limit_denominator(1000)
    if not 0 < cfg.raw_rate <= 200 or abs(float(ratio) * 200.0 - cfg.raw_rate) > 1e-9 * cfg.raw_rate:
        raise ConfigError(
            f"raw_rate must be in (0, 200] Hz and 200 * a fraction p/q with q <= 1000, got {cfg.raw_rate}"
        )
    _positive(cfg, "raw_clip", "raw_scale")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to the field's type (strings from the command line included)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is list:
        (item,) = args
        if isinstance(value, str):
            text = value.strip().strip("[]")
            value = [v for v in (p.strip() for p in text.split(",")) if v]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return [_coerce(name, v, item) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if isinstance(value, int):
            exact = value
        else:
            try:
                as_float = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be an integer, got {value!r}") from None
            if not as_float.is_integer():
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            exact = int(value) if isinstance(value, str) and value.strip().lstrip("+-").isdigit() else int(as_float)
        if abs(exact) > _MAX_EXACT_INT:
            raise ConfigError(f"{name} must be an integer of magnitude at most 2**53, got {value!r}")
        return exact
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if result != result or result in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be finite, got {value!r}")
        return result
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported config type {hint}")  # pragma: no cover


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


_FIELD_NAMES = frozenset(field_names())


def _check_keys(keys: typing.Iterable[str], source: str) -> None:
    names = field_names()
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{key}' in {source}{hint}")


def parse_overrides(tokens: Sequence[str], source: str = "the command line") -> dict[str, str]:
    """``key=value`` tokens as {key: value} (``-`` in keys read as ``_``); ConfigError names a
    token that is not ``key=value`` or an unknown key."""
    overrides = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise ConfigError(f"expected key=value on {source}, got {token!r}")
        overrides[key.replace("-", "_")] = value
    _check_keys(overrides, source)
    return overrides


def read_toml_or_json(path: str | Path, what: str = "config file") -> Any:
    """The parsed content of a TOML file (JSON for a .json suffix); ConfigError names the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None


def load_file(path: str | Path) -> dict[str, Any]:
    """Reads a TOML or JSON config file into a dict of overrides (keys checked)."""
    data = read_toml_or_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of key = value")
    _check_keys(data, str(path))
    return data


def build(overrides: dict[str, Any] | None = None, config_file: str | Path | None = None) -> Config:
    """Defaults, then the ``preset`` (named in either), then the file, then ``overrides``; validated."""
    from_file = load_file(config_file) if config_file is not None else {}
    overrides = dict(overrides or {})
    _check_keys(overrides, "overrides")
    preset = overrides.get("preset", from_file.get("preset"))
    values: dict[str, Any] = dict(PRESETS.get(preset, {})) if isinstance(preset, str) else {}
    values.update(from_file)
    values.update(overrides)
    cfg = Config(**values)
    check_model_takes_input(cfg)
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_toml(values: dict[str, Any]) -> str:
    """TOML text for flat config values (None values are left out: absent means default None)."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


BOOL_WORDS = ("true", "false", "1", "0", "yes", "no", "on", "off")


def option_name(key: str) -> str:
    """The command-line spelling of a config key: ``--data-dir`` for ``data_dir``."""
    return "--" + key.replace("_", "-")


def _normalize_argv(argv: list[str], flags: frozenset[str] = frozenset()) -> list[str]:
    """``key=value`` tokens become ``--key=value``, and config keys take their one spelling
    (``--data_dir`` and ``data-dir=`` become ``--data-dir``). The token after an option that takes
    a value is that value, kept as is (``--run-dir runs/lr=3e-3``); ``flags`` take none, and a
    boolean config option (``--tta``) takes the next token only if it is a boolean word."""
    booleans = {option_name(name) for name, hint in typing.get_type_hints(Config).items() if hint is bool}
    out: list[str] = []
    pending: str | None = None  # an option whose value may be the next token
    for token in argv:
        if pending is not None:
            option, pending = pending, None
            if option not in booleans or token.lower() in BOOL_WORDS:
                out.append(token)  # the option's value, kept as is
                continue
        if not token.startswith("-") and "=" in token:
            token = "--" + token
        if token.startswith("--"):
            key, eq, rest = token[2:].partition("=")
            name = key.replace("-", "_")
            negated = name.startswith("no_") and name[3:] in _FIELD_NAMES
            if name in _FIELD_NAMES or negated:
                token = option_name(name) + eq + rest
            if not eq and not negated and token not in flags:
                pending = token
        out.append(token)
    return out


def _flag_options(parser: argparse.ArgumentParser) -> frozenset[str]:
    """The parser's long options that take no value (e.g. --help)."""
    return frozenset(
        option
        for action in parser._actions
        if action.nargs == 0
        for option in action.option_strings
        if option.startswith("--")
    )


def _metavar(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _metavar(next(a for a in args if a is not type(None)))
    if origin is list:
        return f"{_metavar(args[0])},..."
    return {int: "INT", float: "FLOAT", bool: "BOOL"}.get(hint, "TEXT")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--config`` and one ``--<key>`` option per config field (help lists them all, with
    their type or choices and default); a boolean key also has ``--no-<key>``."""
    parser.allow_abbrev = False  # a misspelt key must be an error, not a prefix match
    parser.add_argument("--config", metavar="FILE", help="TOML or JSON config file (overridden by the options below)")
    group = parser.add_argument_group("config options (also as key=value)")
    hints = typing.get_type_hints(Config)
    for f in fields(Config):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        hint = hints[f.name]
        choices = get_args(hint) if get_origin(hint) is Literal else None
        help_text = f.metadata.get("help", "")
        if "default" not in help_text:
            help_text += f" [default: {default}]"
        if hint is bool:
            help_text += f"; {option_name('no_' + f.name)} sets it to false"
            group.add_argument(
                option_name(f.name),
                dest=f"cfg_{f.name}",
                nargs="?",
                const="true",
                default=argparse.SUPPRESS,
                metavar="BOOL",
                help=help_text,
            )
            group.add_argument(
                option_name("no_" + f.name),
                dest=f"cfg_{f.name}",
                action="store_const",
                const="false",
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )
            continue
        group.add_argument(
            option_name(f.name),
            dest=f"cfg_{f.name}",
            default=argparse.SUPPRESS,
            choices=choices,
            metavar=None if choices else _metavar(hint),
            help=help_text,
        )


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Config]:
    """Parses the command line into (namespace of the other options, resolved Config)."""
    argv = _normalize_argv(list(sys.argv[1:] if argv is None else argv), _flag_options(parser))
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        names = field_names()
        token = unknown[0]
        key = token[2:].split("=")[0] if token.startswith("--") else token
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parser.error(f"unknown option '{token}'{hint}")
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    try:
        cfg = build(overrides, args.config)
    except ConfigError as exc:
        parser.error(str(exc))
    return args, cfg
