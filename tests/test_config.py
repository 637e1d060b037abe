"""hms.config: defaults, file and command-line overrides, validation, unknown keys."""

from __future__ import annotations

import argparse
import json

import pytest

from hms import config
from hms.config import Config, ConfigError

REQUIRED_NAMES = (
    "model", "epochs", "n_folds", "folds", "batch_size", "lr", "input", "normalization", "data_dir", "run_dir",
    "seed", "device",
)  # fmt: skip


def _parse(argv):
    parser = argparse.ArgumentParser(prog="test")
    config.add_config_arguments(parser)
    return config.parse_args(parser, argv)


def test_required_option_names_exist():
    names = config.field_names()
    for name in REQUIRED_NAMES:
        assert name in names


def test_command_line_forms_are_equivalent():
    _, a = _parse(["--model", "resnet34d", "--lr=0.002", "epochs=3", "--n-folds", "4", "--folds", "0,2"])
    assert (a.model, a.lr, a.epochs, a.n_folds, a.folds) == ("resnet34d", 0.002, 3, 4, [0, 2])


def test_an_option_value_may_contain_an_equals_sign():
    _, cfg = _parse(["--run_dir", "runs/lr=3e-3", "--data-dir", "data/a=b", "lr=3e-3"])
    assert (cfg.run_dir, cfg.data_dir, cfg.lr) == ("runs/lr=3e-3", "data/a=b", 3e-3)
    _, cfg = _parse(["--run_dir=runs/x=1", "epochs=2"])
    assert (cfg.run_dir, cfg.epochs) == ("runs/x=1", 2)


def test_one_spelling_per_key_and_boolean_switches():
    """--data_dir, --data-dir, data_dir= and data-dir= are one option; a boolean key is a switch
    (--tta, --no-progress) that also takes an explicit value (--tta false)."""
    for argv in (["--data_dir", "d"], ["--data-dir", "d"], ["data_dir=d"], ["data-dir=d"], ["--data-dir=d"]):
        assert _parse(argv)[1].data_dir == "d", argv
    _, cfg = _parse(["--tta", "input=both", "--no-progress", "--channels-last", "false", "epochs=2"])
    assert (cfg.tta, cfg.input, cfg.progress, cfg.channels_last, cfg.epochs) == (True, "both", False, False, 2)
    _, cfg = _parse(["--no-tta", "--progress"])
    assert (cfg.tta, cfg.progress) == (False, True)


def test_help_shows_types_choices_and_defaults(capsys):
    with pytest.raises(SystemExit):
        _parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--data-dir TEXT" in text and "--epochs INT" in text and "--lr FLOAT" in text
    assert "--input {kaggle,eeg,both,raw}" in text and "[default: eeg]" in text
    assert "--bandpass FLOAT,..." in text and "--tta [BOOL]" in text


def test_a_choice_outside_the_list_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["--input", "wave"])
    assert exc.value.code == 2 and "invalid choice: 'wave'" in capsys.readouterr().err


def test_flags_take_no_value():
    parser = argparse.ArgumentParser(prog="test")
    parser.add_argument("--dry-run", action="store_true")
    config.add_config_arguments(parser)
    args, cfg = config.parse_args(parser, ["--dry-run", "epochs=2"])
    assert args.dry_run and cfg.epochs == 2


def test_file_then_command_line_precedence(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "efficientnet_b0"\nepochs = 7\nscheduler = "onecycle"\n')
    _, cfg = _parse(["--config", str(path), "epochs=2"])
    assert (cfg.model, cfg.epochs, cfg.scheduler) == ("efficientnet_b0", 2, "onecycle")


def test_unknown_key_on_command_line_names_closest(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["--epocs", "3"])
    assert exc.value.code == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err


def test_unknown_key_in_file_names_file_and_closest(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"stage2_epoch": 1}))
    with pytest.raises(ConfigError, match=r"stage2_epoch.*bad.json.*stage2_epochs"):
        config.load_file(path)


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        ({"epochs": "three"}, "epochs must be an integer"),
        ({"lr": -1}, "lr must be > 0"),
        ({"scheduler": "linear"}, "scheduler must be one of"),
        ({"folds": [0, 5], "n_folds": 5}, "folds must be distinct"),
        ({"min_lr": 0.01, "lr": 0.001}, "min_lr"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"stage2_epochs": -1}, "stage2_epochs"),
        ({"stage2_lr": 0}, "stage2_lr must be > 0"),
        ({"device": "tpu"}, "device must be one of"),
        ({"amp": "fp8"}, "amp must be one of"),
        ({"clip_hi": 800}, r"clip_hi must be in \[-80.0, 80.0\]"),  # e^800 overflowed mid-training
        ({"clip_lo": -1e6}, "clip_lo must be in"),
        ({"seed": "1e30"}, "seed must be an integer of magnitude at most"),  # overflowed in torch
        ({"seed": 2**40}, r"seed must be in \[0, 4294967295\]"),
        ({"seed": -1}, "seed must be in"),
        ({"lr": 1e10}, "lr must be at most 10"),  # a NaN loss with a traceback before
        ({"stage2_lr": 100}, "stage2_lr must be at most 10"),
        ({"epochs": "99999999999999999999"}, "epochs must be an integer of magnitude at most"),
    ],
)
def test_bad_values_name_the_key(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.build(overrides)


def test_resolved_config_round_trips_through_json():
    cfg = Config(model="resnet34d", folds=[1], stage2_lr=1e-4)
    assert config.build(json.loads(json.dumps(config.to_dict(cfg)))) == cfg
