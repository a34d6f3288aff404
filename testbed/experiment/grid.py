"""Sweep grids: config keys, each with the values a sweep tries, and the points they span.

On the command line a key and its values are ``--grid KEY=V1|V2|...``: values are
separated by ``|`` and each is written exactly as ``--set KEY=V`` takes it, so a value may
hold commas (``--grid "algorithms=local:5,hsgd:50,5|local:10"`` is two points, each with
its own list of algorithms). In a grid file (JSON or TOML, read as strictly as a config
file) each key holds a list of values: numbers, booleans, lists, or the text ``--set``
takes (``lr = [0.05, 0.1]``, ``algorithms = ["local:5,hsgd:50,5", ["local:10"]]``).

Every value is checked against the base config on its own, then every point as a whole,
so a bad value or a bad combination is refused before anything runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.experiment.config import ExperimentConfig
from testbed.experiment.values import is_tuple, value_text
from testbed.paths import safe_name

MAX_POINTS = 10_000
"""Most points a sweep may span: beyond any study, and a typo (one key too many) stops here."""
SEPARATOR = "|"
_HINTS = typing.get_type_hints(ExperimentConfig)


@dataclass(frozen=True)
class Axis:
    """One key of the grid and the values the sweep tries, typed as the config holds them."""

    key: str
    values: tuple[Any, ...]
    where: str  # where the key was given, for messages: "--grid lr" or "sweep.toml: lr"

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(value_text(v) for v in self.values)


@dataclass(frozen=True)
class Point:
    """One config of the sweep."""

    name: str  # its folder: the index, then the grid values (a plain file name)
    values: tuple[tuple[str, str], ...]  # (key, value as --set takes it), in grid order
    config: ExperimentConfig


def parse_grid_args(items: list[str], base: ExperimentConfig) -> list[Axis]:
    """The axes of ``--grid KEY=V1|V2`` arguments."""
    axes = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--grid {item!r}: expected KEY=V1{SEPARATOR}V2{SEPARATOR}...")
        where = f"--grid {key}"
        texts = [t.strip() for t in text.split(SEPARATOR)]
        if not text.strip():
            raise ValueError(f"{where}: no values; give KEY=V1{SEPARATOR}V2{SEPARATOR}...")
        if "" in texts:
            raise ValueError(f"{where}={text}: an empty value between '{SEPARATOR}'; separate values by one '{SEPARATOR}'")
        axes.append(_axis(base, key, texts, where, "--grid "))
    return axes


def read_grid_file(path: str | Path, base: ExperimentConfig) -> list[Axis]:
    """The axes of a grid file: a JSON object or TOML table of key = [values]."""
    from testbed.experiment.configfile import read_config_file

    axes = []
    for key, values in read_config_file(path, "--grid-file takes a JSON or TOML file of key = [values]").items():
        where = f"{path}: {key}"
        if not isinstance(values, list):
            raise ValueError(f"{where}: expected a list of the values to try, got {value_text(values)!r}")
        if not values:
            raise ValueError(f"{where}: no values; give a list of the values to try")
        axes.append(_axis(base, key, values, where, f"{path}: "))
    return axes


def _axis(base: ExperimentConfig, key: str, raws: list[Any], where: str, prefix: str) -> Axis:
    if key not in _HINTS:
        raise ValueError(f"{where}: unknown key; allowed: {', '.join(sorted(_HINTS))}")
    return Axis(key, tuple(_value(base, key, raw, prefix) for raw in raws), where)


def _value(base: ExperimentConfig, key: str, raw: Any, prefix: str) -> Any:
    """``raw`` (text as --set takes it, or a JSON/TOML value) as the config holds it,
    checked on the base config; refusals start with ``prefix`` ("--grid " or "FILE: ")."""
    try:
        if isinstance(raw, str):
            config = base.with_overrides([f"{key}={raw}"])
        else:  # a number for a list key (seeds = [0, 1]) is a one-item list
            one = [raw] if is_tuple(_HINTS[key]) and not isinstance(raw, list) else raw
            config = ExperimentConfig.from_dict({**base.to_dict(), key: one}, where="config")
    except ValueError as err:  # said in --set's (or a config's) words: say it of the grid's value
        text = str(err).removeprefix("--set ").removeprefix("config: ")
        given = f"{key}={value_text(raw) if not isinstance(raw, str) else raw}"
        if not text.startswith(f"{key}="):
            text = f"{given}: {text.removeprefix(f'{key}: ')}"
        raise ValueError(prefix + text) from None
    return getattr(config, key)


def grid_points(base: ExperimentConfig, axes: list[Axis]) -> list[Point]:
    """Every combination of the axes' values over ``base``, first axis slowest; refuses an
    empty grid, a key given twice, a value given twice and a combination the config refuses."""
    if not axes:
        raise ValueError(f"sweep: empty grid; give --grid KEY=V1{SEPARATOR}V2 (or --grid-file FILE) for at least one key")
    seen: dict[str, Axis] = {}
    for axis in axes:
        if axis.key in seen:
            raise ValueError(f"{axis.where}: the key is also given as {seen[axis.key].where}; give each key once, "
                             f"with all its values")
        seen[axis.key] = axis
        texts = axis.texts
        twice = next((t for k, t in enumerate(texts) if t in texts[:k]), None)
        if twice is not None:
            raise ValueError(f"{axis.where}: the value {twice} is given twice (as the config reads it); "
                             f"each point must differ")
    count = math.prod(len(a.values) for a in axes)
    if count > MAX_POINTS:
        raise ValueError(f"sweep: the grid spans {count:_} points; at most {MAX_POINTS:_} are allowed")
    if count < 2:
        raise ValueError(f"sweep: the grid spans {count} point; a sweep needs two or more (one run: testbed experiment)")
    width = len(str(count - 1))
    points = []
    for index, combo in enumerate(itertools.product(*(a.values for a in axes))):
        values = tuple((a.key, value_text(v)) for a, v in zip(axes, combo))
        name = safe_name(f"{index:0{width}d}-" + "-".join(f"{k}_{t}" for k, t in values))
        try:
            config = dataclasses.replace(base, **{a.key: v for a, v in zip(axes, combo)})
        except ValueError as err:
            raise ValueError(f"sweep: point {name}: {err}") from None
        points.append(Point(name, values, config))
    return points
