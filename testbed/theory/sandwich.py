"""The sandwich inequalities of Wang et al.: (16)-(17) for two levels, (23)-(24) for M levels.

Each H-SGD coefficient of sigma^2 and of eps~^2 lies between the local-SGD coefficients
for the shortest and the longest period, so the H-SGD bound lies between two local-SGD
bounds. Evaluated exactly (integer inputs, rational arithmetic), so ``holds`` has no
rounding tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from testbed.theory._common import check_divides, count, upward_share
from testbed.theory.bounds import multilevel_coefficients


@dataclass(frozen=True)
class Sandwich:
    """``lower <= middle <= upper``, evaluated exactly in rational arithmetic."""

    equation: str
    lower: Fraction  # local SGD with the shortest period
    middle: Fraction  # the H-SGD coefficient
    upper: Fraction  # local SGD with the longest period

    @property
    def holds(self) -> bool:
        return self.lower <= self.middle <= self.upper

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "lower": float(self.lower),
            "middle": float(self.middle),
            "upper": float(self.upper),
            "holds": self.holds,
        }


def _two_level_args(
    n_workers: int, n_groups: int, local_period: int, global_period: int
) -> tuple[int, int, int, int]:
    n, N = count("n_workers", n_workers), count("n_groups", n_groups)
    if n % N:
        raise ValueError(f"n_groups={N} must divide n_workers={n} (equal random groups)")
    I, G = count("local_period", local_period), count("global_period", global_period)
    check_divides("local_period", I, "global_period", G)
    return n, N, I, G


def sandwich_noise(n_workers: int, n_groups: int, local_period: int, global_period: int) -> Sandwich:
    """(16): (1-1/n) I <= (N-1)/n G + (1-N/n) I <= (1-1/n) G, the sigma^2 factors of (15)."""
    n, N, I, G = _two_level_args(n_workers, n_groups, local_period, global_period)
    q = 1 - Fraction(1, n)
    middle = Fraction(N - 1, n) * G + (1 - Fraction(N, n)) * I
    return Sandwich("(16)", q * I, middle, q * G)


def sandwich_divergence(n_workers: int, n_groups: int, local_period: int, global_period: int) -> Sandwich:
    """(17): I^2 <= (N-1)/(n-1) G^2 + (1-(N-1)/(n-1)) I^2 <= G^2, the eps~^2 factors of (15)."""
    n, N, I, G = _two_level_args(n_workers, n_groups, local_period, global_period)
    share = upward_share(N, n)
    return Sandwich("(17)", Fraction(I**2), share * G**2 + (1 - share) * I**2, Fraction(G**2))


def sandwich_multilevel_noise(branching: Sequence[int], periods: Sequence[int]) -> Sandwich:
    """(23): (1-1/n) P_M <= mean_l A_1(l) <= (1-1/n) P_1."""
    levels = multilevel_coefficients(branching, periods)
    q = 1 - Fraction(1, math.prod(branching))
    mean = sum((lv.A1 for lv in levels), Fraction(0)) / len(levels)
    return Sandwich("(23)", q * int(periods[-1]), mean, q * int(periods[0]))


def sandwich_multilevel_divergence(branching: Sequence[int], periods: Sequence[int]) -> Sandwich:
    """(24): P_M^2 <= mean_l A_2(l) <= P_1^2."""
    levels = multilevel_coefficients(branching, periods)
    mean = sum((lv.A2 for lv in levels), Fraction(0)) / len(levels)
    return Sandwich("(24)", Fraction(int(periods[-1]) ** 2), mean, Fraction(int(periods[0]) ** 2))
