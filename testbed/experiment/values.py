"""Config values: parsed from ``--set key=text`` and type-checked against the config
dataclass's hints (bool, int, finite float, text, or a tuple of one of them)."""

from __future__ import annotations

import math
import re
import typing
from typing import Any


def shorten(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-6:]}"


def show(value: Any) -> str:
    """A value as an error message quotes it: its repr, shortened."""
    return shorten(repr(value))


def parse_value(key: str, text: str, hint: Any) -> Any:
    if is_tuple(hint):
        item_type = typing.get_args(hint)[0]
        # algorithm specs hold commas themselves (hsgd:50,5): a new spec starts with a letter
        parts = re.split(r",(?=\s*[A-Za-z])", text) if key == "algorithms" else text.split(",")
        return tuple(parse_value(key, part.strip(), item_type) for part in parts if part.strip())
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if hint is int:
            return int(text)
        if hint is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected a finite {hint.__name__}") from None
    return text


def value_text(value: Any) -> str:
    """A config value as ``--set key=text`` takes it (the inverse of :func:`parse_value`)."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def is_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple


def check_type(key: str, value: Any, hint: Any) -> None:
    if is_tuple(hint):
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, tuple):
            raise ValueError(f"{key}: expected a list of {item_type.__name__}, got {value!r}")
        for v in value:
            check_type(key, v, item_type)
        return
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ValueError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {show(value)}")
    if hint is float and not finite(value):
        raise ValueError(f"{key}: expected a finite float, got {show(value)}")


def finite(value: float | int) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False
