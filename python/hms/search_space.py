"""Search spaces of :mod:`hms.tune`: a TOML (or JSON) file of Optuna parameters that set Config keys.

The default lives next to this module (``search_space_default.toml``; its header documents the
format). A space is checked when loaded, so a typo fails before any trial trains: every error
names the file and the entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hms import config

DEFAULT_SPACE_NAME = "search_space_default.toml"
TYPES = ("float", "int", "categorical")
_ALLOWED = {"type", "low", "high", "log", "step", "choices", "key", "index"}


class SearchSpaceError(ValueError):
    """A search-space file or entry is invalid; the message names it."""


@dataclass(frozen=True)
class Param:
    name: str  # the Optuna parameter name
    type: str
    key: str  # the Config key it sets
    index: int | None = None  # element of a list-valued key
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        low, high = float(self.low or 0), float(self.high or 0)  # both set for numeric parameters
        if self.type == "float":
            return trial.suggest_float(self.name, low, high, log=self.log, step=self.step)
        return trial.suggest_int(self.name, int(low), int(high), log=self.log, step=int(self.step or 1))


def default_space_path() -> Path:
    return Path(str(resources.files("hms").joinpath(DEFAULT_SPACE_NAME)))


def load_space(path: str | Path | None = None) -> list[Param]:
    """The parameters of ``path`` (default: the packaged default space), validated."""
    path = Path(path) if path is not None else default_space_path()
    try:
        data = config.read_toml_or_json(path, "search space")
    except config.ConfigError as exc:
        raise SearchSpaceError(str(exc)) from None
    return parse_space(data, str(path))


def parse_space(data: dict[str, Any], source: str = "search space") -> list[Param]:
    if not isinstance(data, dict) or not data:
        raise SearchSpaceError(f"{source}: expected one table per parameter, got {data!r}")
    params = [_parse_entry(name, entry, source) for name, entry in data.items()]
    _check_list_keys(params, source)
    return params


def _parse_entry(name: str, entry: Any, source: str) -> Param:
    where = f"{source}: [{name}]"
    if not isinstance(entry, dict):
        raise SearchSpaceError(f"{where} must be a table (type, low, high, log, choices, ...)")
    unknown = sorted(set(entry) - _ALLOWED)
    if unknown:
        raise SearchSpaceError(f"{where}: unknown field(s) {unknown} (allowed: {sorted(_ALLOWED)})")
    kind = entry.get("type")
    if kind not in TYPES:
        raise SearchSpaceError(f"{where}: type must be one of {TYPES}, got {kind!r}")
    key = entry.get("key", name)
    if key not in config.field_names():
        raise SearchSpaceError(f"{where}: '{key}' is not a config key")
    index = entry.get("index")
    if index is not None and (not isinstance(index, int) or index < 0):
        raise SearchSpaceError(f"{where}: index must be a non-negative integer, got {index!r}")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SearchSpaceError(f"{where}: categorical needs a non-empty list of choices")
        extra = sorted(set(entry) & {"low", "high", "log", "step"})
        if extra:
            raise SearchSpaceError(f"{where}: categorical takes choices, not {extra}")
        for choice in choices:  # each value must be one the Config accepts for that key
            _check_value(key, index, choice, where)
        return Param(name, kind, key, index, choices=tuple(choices))
    low, high = (_finite_number(entry.get(label), f"{where}: {label}") for label in ("low", "high"))
    log, step = bool(entry.get("log", False)), entry.get("step")
    if not low < high:
        raise SearchSpaceError(f"{where}: low must be < high, got {low} and {high}")
    if log and low <= 0:
        raise SearchSpaceError(f"{where}: log = true needs low > 0, got {low}")
    if step is not None and (log or not step > 0):
        raise SearchSpaceError(f"{where}: step must be > 0 and cannot be combined with log = true")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise SearchSpaceError(f"{where}: int range needs integer low and high, got {low} and {high}")
    for value in (low, high):
        _check_value(key, index, value, where)
    return Param(name, kind, key, index, float(low), float(high), log, step)


def _finite_number(value: Any, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SearchSpaceError(f"{what} must be a finite number, got {value!r}")
    return value


def _check_value(key: str, index: int | None, value: Any, where: str) -> None:
    """Fails early when the Config would refuse ``value`` for ``key`` on its own."""
    if index is not None:
        return  # list elements are checked together once the list is complete (apply_params)
    try:
        config._coerce(key, value, _hint(key))
    except config.ConfigError as exc:
        raise SearchSpaceError(f"{where}: {exc}") from None


def _hint(key: str) -> Any:
    import typing

    return typing.get_type_hints(config.Config)[key]


def _check_list_keys(params: list[Param], source: str) -> None:
    by_key: dict[str, list[int | None]] = {}
    for p in params:
        by_key.setdefault(p.key, []).append(p.index)
    for key, indices in by_key.items():
        if len(indices) > 1 and None in indices:
            raise SearchSpaceError(f"{source}: config key '{key}' is set by several entries")
        positions = sorted(i for i in indices if i is not None)
        if None not in indices and positions != list(range(len(indices))):
            raise SearchSpaceError(
                f"{source}: list key '{key}' needs entries for indices 0..{len(indices) - 1}, got {positions}"
            )


def apply_params(params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """Config overrides from Optuna parameter values (``{param name: value}``)."""
    overrides: dict[str, Any] = {}
    lists: dict[str, dict[int, Any]] = {}
    for p in params:
        if p.name not in values:
            continue
        if p.index is None:
            overrides[p.key] = values[p.name]
        else:
            lists.setdefault(p.key, {})[p.index] = values[p.name]
    for key, items in lists.items():
        overrides[key] = [items[i] for i in sorted(items)]
    return overrides
