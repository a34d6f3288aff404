"""Config files: a JSON object of :class:`ExperimentConfig` keys, read strictly.

NaN, Infinity, numbers that overflow a float and integers with absurd digit counts are
refused like every other bad value, naming the file and line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from testbed.experiment.values import shorten as _shorten


def read_config_file(path: str | Path, what: str = "--config takes a JSON or TOML file of config keys") -> dict[str, Any]:
    """The keys of a config file (a JSON object, or a TOML file of ExperimentConfig keys:
    ``*.toml``), strictly read: NaN, Infinity and numbers that overflow are refused, like
    every other bad value, with the file named; so are FIFOs and devices, which would
    block or never end. ``what``: what the file should be, for refusals."""
    from testbed.files import read_input_text

    path = Path(path)
    text = read_input_text(path, what)
    if path.suffix.lower() == ".toml":
        return _read_toml(path, text)
    try:
        values = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int,
                            object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON ({err.msg})") from None
    except _BadNumber as err:
        line = text[: (text.rfind if err.last else text.find)(err.token)].count("\n") + 1
        raise ValueError(f"{path}: line {line}: {err}") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply; a config is one JSON object of keys") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object of config keys, got {type(values).__name__}")
    return values


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (json keeps the last of a repeated key)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _BadNumber(f'"{key}"', f"key {key!r} is given twice; give each key once", last=True)
        seen[key] = value
    return seen


class _BadNumber(ValueError):
    def __init__(self, token: str, message: str, last: bool = False):
        super().__init__(message)
        self.token, self.last = token, last  # last: the token's last occurrence is the bad one


def _refuse_constant(name: str) -> Any:
    raise _BadNumber(name, f"{name} is not a number a config may hold; numbers must be finite")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _BadNumber(token, f"{_shorten(token)} is too large for a float; numbers must be finite")
    return value


def _bounded_int(token: str) -> int:
    digits = len(token.lstrip("-"))
    if digits > 1000:  # Python refuses to convert more than 4300 digits; no key wants a tenth of that
        raise _BadNumber(token, f"{_shorten(token)} has {digits} digits; no key takes an integer that long")
    return int(token)


def _read_toml(path: Path, text: str) -> dict[str, Any]:
    import tomllib

    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML ({err})") from None
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{path}: {key} = {value} is not a number a config may hold; numbers must be finite")
    return values
