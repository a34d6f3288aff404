"""The sandwich inequalities (16), (17), (23), (24)."""

import math
from fractions import Fraction as Fr
from itertools import product

import pytest

from testbed.theory.sandwich import (
    sandwich_divergence,
    sandwich_multilevel_divergence,
    sandwich_multilevel_noise,
    sandwich_noise,
)


def test_two_level_sandwich_by_hand():
    # n = 8, N = 2, I = 2, G = 10:
    # (16) 7/8 * 2 <= 1/8 * 10 + 6/8 * 2 <= 7/8 * 10;  (17) 4 <= 1/7 * 100 + 6/7 * 4 <= 100.
    s16, s17 = sandwich_noise(8, 2, 2, 10), sandwich_divergence(8, 2, 2, 10)
    assert (s16.lower, s16.middle, s16.upper, s16.holds) == (Fr(7, 4), Fr(11, 4), Fr(35, 4), True)
    assert (s17.lower, s17.middle, s17.upper, s17.holds) == (Fr(4), Fr(124, 7), Fr(100), True)
    assert s16.as_dict() == {"lower": 1.75, "middle": 2.75, "upper": 8.75, "holds": True}


def _divisors(k: int) -> list[int]:
    return [d for d in range(1, k + 1) if k % d == 0]


def test_two_level_sandwich_holds_over_a_grid():
    checked = 0
    for n, G in product(range(1, 17), range(1, 13)):
        for N, I in product(_divisors(n), _divisors(G)):
            for check in (sandwich_noise(n, N, I, G), sandwich_divergence(n, N, I, G)):
                assert check.holds, (check.equation, n, N, I, G)
                checked += 1
    assert checked > 1000


def test_two_level_sandwich_is_tight_at_the_ends():
    # N = 1 is local SGD with period I (lower end), N = n with period G (upper end).
    assert sandwich_noise(6, 1, 2, 8).middle == sandwich_noise(6, 1, 2, 8).lower
    assert sandwich_noise(6, 6, 2, 8).middle == sandwich_noise(6, 6, 2, 8).upper
    assert sandwich_divergence(6, 1, 2, 8).middle == 4 and sandwich_divergence(6, 6, 2, 8).middle == 64


def _period_chains(levels: int, top: int) -> list[list[int]]:
    """Every P_1 = top > ... with each period dividing the previous one."""
    if levels == 1:
        return [[top]]
    return [[top] + rest for d in _divisors(top) for rest in _period_chains(levels - 1, d)]


def test_multilevel_sandwich_holds_over_a_grid():
    checked = 0
    for M in (2, 3, 4):
        for branching in product([1, 2, 3], repeat=M):
            for periods in _period_chains(M, 12):
                for check in (
                    sandwich_multilevel_noise(branching, periods),
                    sandwich_multilevel_divergence(branching, periods),
                ):
                    assert check.holds, (check.equation, branching, periods)
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize("n, N, I, G", [(8, 2, 2, 10), (12, 3, 3, 6), (9, 9, 1, 4)])
def test_multilevel_sandwich_at_two_levels_is_the_two_level_one(n, N, I, G):
    assert sandwich_multilevel_noise([N, n // N], [G, I]).middle == sandwich_noise(n, N, I, G).middle
    assert sandwich_multilevel_divergence([N, n // N], [G, I]).middle == sandwich_divergence(n, N, I, G).middle


def test_multilevel_sandwich_by_hand():
    # N = (2, 2, 3), P = (20, 10, 2), n = 12: mean A_1 = (10 + 19/3)/2 = 49/6 between
    # 11/12 * 2 and 11/12 * 20; mean A_2 = (1400/11 + 1232/11)/2 = 1316/11 between 4 and 400.
    s23 = sandwich_multilevel_noise([2, 2, 3], [20, 10, 2])
    s24 = sandwich_multilevel_divergence([2, 2, 3], [20, 10, 2])
    assert (s23.lower, s23.middle, s23.upper) == (Fr(11, 6), Fr(49, 6), Fr(55, 3))
    assert (s24.lower, s24.middle, s24.upper) == (Fr(4), Fr(1316, 11), Fr(400))
    assert math.isclose(float(s24.middle), 119.636363, rel_tol=1e-6)


def test_sandwich_rejects_unequal_groups_and_non_nested_periods():
    with pytest.raises(ValueError, match="n_groups=3 must divide n_workers=8"):
        sandwich_noise(8, 3, 2, 10)
    with pytest.raises(ValueError, match="global_period=10 must be a multiple of local_period=4"):
        sandwich_divergence(8, 2, 4, 10)
