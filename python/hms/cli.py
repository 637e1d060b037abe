"""What the commands share: parsing a config-based command line and showing its output."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hms import config, progress
from hms.config import Config


def parse_config_command(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, Config]:
    """(other options, resolved Config) of a command built on the Config, with its progress bars
    and log lines turned on as the config says."""
    args, cfg = config.parse_args(parser, argv)
    progress.configure(progress=cfg.progress)
    return args, cfg
