"""Argument checks and the shared first term of the bounds; errors name the argument and the rule."""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

REL_TOL = 1e-12  # slack on "<=" conditions so a gamma typed at the boundary is admitted


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def positive(name: str, value: float) -> float:
    if not is_number(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def nonnegative(name: str, value: float) -> float:
    if not is_number(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def count(name: str, value: int) -> int:
    if not is_number(value) or value != int(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_divides(inner_name: str, inner: int, outer_name: str, outer: int) -> None:
    if outer % inner:
        raise ValueError(
            f"{outer_name}={outer} must be a multiple of {inner_name}={inner} "
            "(aggregation periods nest: each period divides the one above it)"
        )


def upward_share(n_servers: int, n_workers: int) -> Fraction:
    """(N - 1)/(n - 1): the expected upward share of the global divergence, Lemmas 1 and 3."""
    if n_workers == 1:
        return Fraction(0)  # one worker: no divergence to share (0/0 in the paper)
    return Fraction(n_servers - 1, n_workers - 1)


def optimality_gap_term(f_gap: float | None, n_iterations: int | None, gamma: float) -> float:
    """2 (f^0 - f^*) / (gamma T), the first term of (11a), (12), (15), (22) and (3.6)."""
    if f_gap is None and n_iterations is None:
        return 0.0  # the T -> infinity limit: what remains is the bound's floor
    if f_gap is None or n_iterations is None:
        raise ValueError(
            "f_gap and n_iterations go together: give both (f^0 - f^* and T) or neither "
            f"(gap term taken at T -> infinity); got f_gap={f_gap!r}, n_iterations={n_iterations!r}"
        )
    return 2.0 * nonnegative("f_gap", f_gap) / (gamma * count("n_iterations", n_iterations))
