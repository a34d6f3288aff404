"""Wang et al. bound calculators: hand-computed values, the paper's reductions, refusals.

Expected values are worked out by hand (shown in the comments) as exact fractions, not by
calling the code under test.
"""

from fractions import Fraction as Fr
from itertools import product

import pytest

from testbed.theory.bounds import (
    corollary1_bound,
    multilevel_coefficients,
    theorem1_bound,
    theorem2_bound,
    theorem3_bound,
)
from testbed.theory.shapes import multilevel_shape, two_level_shape
from testbed.tree import AggregationTree

TERMS = (
    "gap_term", "sgd_noise_term", "upward_noise_term", "upward_divergence_term",
    "downward_noise_term", "downward_divergence_term",
)  # fmt: skip


def assert_terms(bound, expected: dict[str, Fr]) -> None:
    for name in TERMS:
        assert getattr(bound, name) == pytest.approx(float(expected[name]), rel=1e-12, abs=1e-15), name
    assert bound.total == pytest.approx(float(sum(expected.values())), rel=1e-12)
    assert bound.sgd_part == pytest.approx(float(expected["gap_term"] + expected["sgd_noise_term"]), rel=1e-12)


def assert_same_terms(a, b) -> None:
    for name in TERMS:
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12, abs=1e-15), name


# ------------------------------------------------------------------ Theorem 1


def test_theorem1_unequal_groups_by_hand():
    # n_i = (3, 5), I_i = (2, 5), G = 10, gamma = 1/200, L = 1, sigma2 = 1, eps^2 = 1/5,
    # eps_i^2 = (3/10, 1/10), f_gap = 2, T = 1000.  C gamma^2 L^2 = 40/3 / 40000 = 1/3000.
    b = theorem1_bound(
        gamma=0.005, L=1.0, sigma2=1.0, group_sizes=[3, 5], local_periods=[2, 5], global_period=10,
        upward_divergence=0.2, downward_divergences=[0.3, 0.1], f_gap=2.0, n_iterations=1000,
    )  # fmt: skip
    assert_terms(
        b,
        {
            "gap_term": Fr(4, 5),  # 2*2 / (1/200 * 1000)
            "sgd_noise_term": Fr(1, 1600),  # 1/200 / 8
            "upward_noise_term": Fr(1, 1200),  # 2/3000 * 10 * 1/8
            "upward_divergence_term": Fr(1, 50),  # 3/3000 * 100 * 1/5
            "downward_noise_term": Fr(1, 500),  # 2/3000 * (2*2 + 4*5)/8
            "downward_divergence_term": Fr(161, 80000),  # 1/1000 * (3/8*4*3/10 + 5/8*25/10)
        },
    )


def test_theorem1_three_groups_by_hand():
    # n_i = (4, 2, 2), I_i = (1, 2, 4), G = 8, gamma = 1/100, L = 2, sigma2 = 1/2,
    # eps^2 = 1/4, eps_i^2 = (1, 1/2, 0), no horizon.  C gamma^2 L^2 = 40/3 * 4/10000 = 2/375.
    b = theorem1_bound(
        gamma=0.01, L=2.0, sigma2=0.5, group_sizes=[4, 2, 2], local_periods=[1, 2, 4], global_period=8,
        upward_divergence=0.25, downward_divergences=[1.0, 0.5, 0.0],
    )  # fmt: skip
    assert_terms(
        b,
        {
            "gap_term": Fr(0),
            "sgd_noise_term": Fr(1, 800),  # 1/100 * 2 * 1/2 / 8
            "upward_noise_term": Fr(4, 375),  # 4/375 * 8 * 2/8 * 1/2
            "upward_divergence_term": Fr(32, 125),  # 6/375 * 64 * 1/4
            "downward_noise_term": Fr(3, 500),  # 4/375 * 1/2 * (3*1 + 1*2 + 1*4)/8
            "downward_divergence_term": Fr(2, 125),  # 6/375 * (4/8*1*1 + 2/8*4*1/2 + 0)
        },
    )


def test_theorem1_refuses_gamma_at_or_above_its_strict_condition():
    gamma_max = 1 / (2 * 6**0.5 * 10 * 1.0)
    kwargs = dict(L=1.0, sigma2=1.0, group_sizes=[2, 2], local_periods=2, global_period=10,
                  upward_divergence=0.0, downward_divergences=0.0)  # fmt: skip
    with pytest.raises(ValueError, match=r"Theorem 1's condition gamma < 1/\(2\*sqrt\(6\)\*G\*L\) = 1/\(2\*sqrt\(6\)\*10\*1\)"):
        theorem1_bound(gamma=gamma_max, **kwargs)
    assert theorem1_bound(gamma=gamma_max * (1 - 1e-9), **kwargs).gamma_max == pytest.approx(gamma_max)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"local_periods": [3, 2]}, "global_period=10 must be a multiple of local_periods\\[0\\]=3"),
        ({"downward_divergences": [0.1]}, "downward_divergences lists 1 values but there are 2 groups"),
        ({"group_sizes": []}, "at least one group"),
        ({"sigma2": -1.0}, "sigma2 must be a finite number >= 0"),
        ({"gamma": 0.0}, "gamma must be a finite number > 0"),
        ({"f_gap": 1.0}, "f_gap and n_iterations go together"),
    ],
)
def test_theorem1_rejects_bad_arguments_naming_them(override, match):
    kwargs = dict(gamma=0.001, L=1.0, sigma2=1.0, group_sizes=[2, 2], local_periods=[2, 5], global_period=10,
                  upward_divergence=0.0, downward_divergences=[0.0, 0.0])  # fmt: skip
    with pytest.raises(ValueError, match=match):
        theorem1_bound(**{**kwargs, **override})


# ---------------------------------------------------------------- Corollary 1


def test_corollary1_by_hand():
    # n = 8, P = 5, gamma = 1/100, L = 1, sigma2 = 1, eps~^2 = 1/4.  C gamma^2 L^2 = 1/750.
    b = corollary1_bound(gamma=0.01, L=1.0, sigma2=1.0, n_workers=8, period=5, global_divergence=0.25)
    assert_terms(
        b,
        {
            "gap_term": Fr(0),
            "sgd_noise_term": Fr(1, 800),
            "upward_noise_term": Fr(0),
            "upward_divergence_term": Fr(0),
            "downward_noise_term": Fr(7, 600),  # 2/750 * 7/8 * 5
            "downward_divergence_term": Fr(1, 40),  # 3/750 * 25 * 1/4
        },
    )


def test_corollary1_second_set_by_hand():
    # n = 4, P = 2, gamma = 1/50, L = 2, sigma2 = 3, eps~^2 = 2, f_gap = 5, T = 100.
    # C gamma^2 L^2 = 40/3 * 4/2500 = 8/375.
    b = corollary1_bound(
        gamma=0.02, L=2.0, sigma2=3.0, n_workers=4, period=2, global_divergence=2.0, f_gap=5.0, n_iterations=100
    )
    assert_terms(
        b,
        {
            "gap_term": Fr(5),  # 2*5 / (1/50 * 100)
            "sgd_noise_term": Fr(3, 100),  # 1/50 * 2 * 3 / 4
            "upward_noise_term": Fr(0),
            "upward_divergence_term": Fr(0),
            "downward_noise_term": Fr(24, 125),  # 16/375 * 3 * 3/4 * 2
            "downward_divergence_term": Fr(64, 125),  # 24/375 * 4 * 2
        },
    )


def test_corollary1_admits_gamma_at_its_boundary_and_refuses_beyond():
    gamma_max = 1 / (2 * 6**0.5 * 5 * 2.0)
    kwargs = dict(L=2.0, sigma2=1.0, n_workers=4, period=5, global_divergence=1.0)
    corollary1_bound(gamma=gamma_max, **kwargs)  # "<=": the boundary itself is allowed
    with pytest.raises(ValueError, match=r"Corollary 1's condition gamma <= 1/\(2\*sqrt\(6\)\*P\*L\).*= 0\.0204124"):
        corollary1_bound(gamma=gamma_max * 1.001, **kwargs)


@pytest.mark.parametrize("n, P, eps2", [(1, 1, 0.0), (4, 3, 0.7), (8, 5, 0.25), (10, 10, 2.0)])
def test_theorem1_with_one_group_is_corollary1(n, P, eps2):
    # N = 1: the upward divergence vanishes and the one group's downward divergence is eps~^2.
    common = dict(gamma=0.001, L=1.5, sigma2=0.8, f_gap=3.0, n_iterations=400)
    thm1 = theorem1_bound(group_sizes=[n], local_periods=[P], global_period=P, upward_divergence=0.0,
                          downward_divergences=[eps2], **common)  # fmt: skip
    cor1 = corollary1_bound(n_workers=n, period=P, global_divergence=eps2, **common)
    assert_same_terms(thm1, cor1)


# ------------------------------------------------------------------ Theorem 2


def test_theorem2_by_hand():
    # n = 8, N = 2, G = 10, I = 2, gamma = 1/200, L = 1, sigma2 = 1, eps~^2 = 1/2.
    # C gamma^2 L^2 = 1/3000; (N-1)/(n-1) = 1/7.
    b = theorem2_bound(gamma=0.005, L=1.0, sigma2=1.0, n_workers=8, n_groups=2, local_period=2, global_period=10,
                       global_divergence=0.5)  # fmt: skip
    assert_terms(
        b,
        {
            "gap_term": Fr(0),
            "sgd_noise_term": Fr(1, 1600),
            "upward_noise_term": Fr(1, 1200),  # 2/3000 * 1/8 * 10
            "upward_divergence_term": Fr(1, 140),  # 3/3000 * 1/7 * 100 * 1/2
            "downward_noise_term": Fr(1, 1000),  # 2/3000 * 6/8 * 2
            "downward_divergence_term": Fr(3, 1750),  # 3/3000 * 6/7 * 4 * 1/2
        },
    )


def test_theorem2_second_set_by_hand():
    # n = 12, N = 3, G = 6, I = 3, gamma = 1/100, L = 1/2, sigma2 = 2, eps~^2 = 3, f_gap = 1,
    # T = 500.  C gamma^2 L^2 = 40/3 / 10000 / 4 = 1/3000; (N-1)/(n-1) = 2/11.
    b = theorem2_bound(gamma=0.01, L=0.5, sigma2=2.0, n_workers=12, n_groups=3, local_period=3, global_period=6,
                       global_divergence=3.0, f_gap=1.0, n_iterations=500)  # fmt: skip
    assert_terms(
        b,
        {
            "gap_term": Fr(2, 5),  # 2 / (1/100 * 500)
            "sgd_noise_term": Fr(1, 1200),  # 1/100 * 1/2 * 2 / 12
            "upward_noise_term": Fr(1, 750),  # 2/3000 * 2/12 * 6 * 2
            "upward_divergence_term": Fr(27, 1375),  # 1/1000 * 2/11 * 36 * 3
            "downward_noise_term": Fr(3, 1000),  # 2/3000 * 9/12 * 3 * 2
            "downward_divergence_term": Fr(243, 11000),  # 1/1000 * 9/11 * 9 * 3
        },
    )


def test_theorem2_refuses_gamma_above_its_condition_and_unequal_groups():
    kwargs = dict(L=1.0, sigma2=1.0, n_workers=8, n_groups=2, local_period=2, global_period=10, global_divergence=0.5)
    with pytest.raises(ValueError, match=r"gamma=0\.05 is outside Theorem 2's condition gamma <= .* = 0\.0204124"):
        theorem2_bound(gamma=0.05, **kwargs)
    theorem2_bound(gamma=1 / (2 * 6**0.5 * 10), **kwargs)  # the boundary is admitted
    with pytest.raises(ValueError, match="n_groups=3 must divide n_workers=8"):
        theorem2_bound(gamma=0.001, **{**kwargs, "n_groups": 3})
    with pytest.raises(ValueError, match="global_period=10 must be a multiple of local_period=3"):
        theorem2_bound(gamma=0.001, **{**kwargs, "local_period": 3})


@pytest.mark.parametrize("n, N, I, G", [(8, 2, 2, 10), (12, 3, 3, 6), (6, 6, 1, 4), (9, 1, 3, 9)])
def test_theorem2_is_theorem1_averaged_over_random_groupings(n, N, I, G):
    # Lemmas 1-2: E_S eps^2 = (N-1)/(n-1) eps~^2 and E_S mean_i eps_i^2 = the rest; (11b)-(11c)
    # are linear in them, so Theorem 1 fed the expected split is Theorem 2 (with the L^2 restored).
    eps2 = 0.9
    share = (N - 1) / (n - 1)
    common = dict(gamma=0.002, L=1.3, sigma2=0.6)
    thm1 = theorem1_bound(group_sizes=[n // N] * N, local_periods=I, global_period=G,
                          upward_divergence=share * eps2, downward_divergences=(1 - share) * eps2, **common)  # fmt: skip
    thm2 = theorem2_bound(n_workers=n, n_groups=N, local_period=I, global_period=G, global_divergence=eps2, **common)
    assert_same_terms(thm1, thm2)


@pytest.mark.parametrize("n, P", [(4, 2), (8, 5), (12, 12)])
def test_theorem2_with_one_or_n_groups_is_local_sgd(n, P):
    # Note after (9): N = 1 is local SGD with the local period, N = n with the global one.
    common = dict(gamma=0.001, L=1.0, sigma2=0.5, f_gap=1.0, n_iterations=100)
    as_one = theorem2_bound(n_workers=n, n_groups=1, local_period=P, global_period=2 * P, global_divergence=0.4, **common)
    assert as_one.total == pytest.approx(corollary1_bound(n_workers=n, period=P, global_divergence=0.4, **common).total)
    as_n = theorem2_bound(n_workers=n, n_groups=n, local_period=1, global_period=P, global_divergence=0.4, **common)
    assert as_n.total == pytest.approx(corollary1_bound(n_workers=n, period=P, global_divergence=0.4, **common).total)
    assert as_n.downward_part == 0.0


# ------------------------------------------------------------------ Theorem 3


def test_theorem3_three_levels_by_hand():
    # N = (2, 2, 3), n = 12, P = (20, 10, 2), gamma = 1/500, L = 1, sigma2 = 1, eps~^2 = 1/2.
    # l=1: n_1 = 2: A1 = 20/12 + 10*10/12 = 5/3 + 25/3; A2 = 400/11 + 100*10/11.
    # l=2: n_2 = 4: A1 = 20*3/12 + 2*8/12 = 5 + 4/3;    A2 = 400*3/11 + 4*8/11.
    # C gamma^2 L^2 / (M-1) = 40/3 / 250000 / 2 = 1/37500.
    b = theorem3_bound(gamma=0.002, L=1.0, sigma2=1.0, branching=[2, 2, 3], periods=[20, 10, 2], global_divergence=0.5)
    assert_terms(
        b,
        {
            "gap_term": Fr(0),
            "sgd_noise_term": Fr(1, 6000),  # 1/500 / 12
            "upward_noise_term": Fr(2, 5625),  # 2/37500 * (5/3 + 5)
            "upward_divergence_term": Fr(8, 1375),  # 3/37500 * 1600/11 * 1/2
            "downward_noise_term": Fr(29, 56250),  # 2/37500 * (25/3 + 4/3)
            "downward_divergence_term": Fr(129, 34375),  # 3/37500 * 1032/11 * 1/2
        },
    )


def test_theorem3_second_set_by_hand():
    # N = (2, 3, 2), n = 12, P = (12, 6, 3), gamma = 1/300, L = 2, sigma2 = 1/2, eps~^2 = 2,
    # f_gap = 3, T = 600.
    # l=1: n_1 = 2: A1 = 12/12 + 6*10/12 = 1 + 5;   A2 = 144/11 + 36*10/11.
    # l=2: n_2 = 6: A1 = 12*5/12 + 3*6/12 = 5 + 3/2; A2 = 144*5/11 + 9*6/11.
    # C gamma^2 L^2 / (M-1) = 40/3 * 4/90000 / 2 = 1/3375.
    b = theorem3_bound(gamma=1 / 300, L=2.0, sigma2=0.5, branching=[2, 3, 2], periods=[12, 6, 3],
                       global_divergence=2.0, f_gap=3.0, n_iterations=600)  # fmt: skip
    assert_terms(
        b,
        {
            "gap_term": Fr(3),  # 2*3 / (1/300 * 600)
            "sgd_noise_term": Fr(1, 3600),  # 1/300 * 2 * 1/2 / 12
            "upward_noise_term": Fr(2, 1125),  # 2/3375 * 6 * 1/2
            "upward_divergence_term": Fr(5184, 37125),  # 3/3375 * 864/11 * 2
            "downward_noise_term": Fr(13, 6750),  # 2/3375 * 13/2 * 1/2
            "downward_divergence_term": Fr(2484, 37125),  # 3/3375 * 414/11 * 2
        },
    )


@pytest.mark.parametrize(
    "n, N, I, G", [(8, 2, 2, 10), (12, 3, 3, 6), (12, 4, 1, 12), (6, 2, 5, 5), (16, 8, 2, 8), (5, 5, 1, 3)]
)
def test_theorem3_with_two_levels_is_theorem2(n, N, I, G):
    # Remark 6: M = 2, N_1 = N, N_2 = n/N, P_1 = G, P_2 = I.
    common = dict(gamma=0.001, L=1.2, sigma2=0.7, global_divergence=1.1, f_gap=2.0, n_iterations=300)
    thm3 = theorem3_bound(branching=[N, n // N], periods=[G, I], **common)
    thm2 = theorem2_bound(n_workers=n, n_groups=N, local_period=I, global_period=G, **common)
    assert_same_terms(thm3, thm2)


def test_printed_A1_would_not_reduce_to_theorem2_but_the_chosen_reading_does():
    # Printed: A_1(1) = P_1 (1/(N_1 N_2) - 1/n) + P_1 (1 - 1/(N_1 N_2)) = (1 - 1/n) P_1 at M = 2,
    # whereas (15) has (N-1)/n G + (1 - N/n) I.  n = 8, N = 2, G = 10, I = 2.
    printed = Fr(10) * (1 - Fr(1, 8))
    theorem2_factor = Fr(1, 8) * 10 + (1 - Fr(2, 8)) * 2
    (level,) = multilevel_coefficients([2, 4], [10, 2])
    assert printed != theorem2_factor
    assert level.A1 == theorem2_factor
    assert level.A2 == Fr(1, 7) * 100 + Fr(6, 7) * 4


def test_theorem3_refusals():
    kwargs = dict(L=1.0, sigma2=1.0, branching=[2, 2, 3], periods=[20, 10, 2], global_divergence=0.5)
    with pytest.raises(ValueError, match=r"Theorem 3's condition gamma <= 1/\(2\*sqrt\(6\)\*P_1\*L\) = 1/\(2\*sqrt\(6\)\*20\*1\)"):
        theorem3_bound(gamma=0.011, **kwargs)
    with pytest.raises(ValueError, match=r"periods\[1\] \(P_2\)=10 must be a multiple of periods\[2\] \(P_3\)=3"):
        theorem3_bound(gamma=0.001, **{**kwargs, "periods": [20, 10, 3]})
    with pytest.raises(ValueError, match="M >= 2 levels"):
        theorem3_bound(gamma=0.001, **{**kwargs, "branching": [4], "periods": [4]})
    with pytest.raises(ValueError, match="periods lists 2 values but branching has M=3"):
        theorem3_bound(gamma=0.001, **{**kwargs, "periods": [20, 10]})


# -------------------------------------------------------------- shapes from a tree


def test_two_level_shape_reads_group_sizes_and_periods():
    shape = two_level_shape(AggregationTree([[0, 1], [2, 3, 4]], [10, [2, 5]]))
    assert (shape.group_sizes, shape.local_periods, shape.global_period) == ((2, 3), (2, 5), 10)
    with pytest.raises(ValueError, match="need exactly 2"):
        two_level_shape(AggregationTree([[[0], [1]], [[2], [3]]], [4, 2, 1]))


def test_multilevel_shape_reads_branching_and_periods():
    tree = AggregationTree([[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]], [20, 10, 2])
    assert multilevel_shape(tree) == ((2, 2, 3), (20, 10, 2))
    with pytest.raises(ValueError, match="tree level 1: servers have fan-outs \\[1, 2\\]"):
        multilevel_shape(AggregationTree([[[0], [1]], [[2]]], [4, 2, 1]))


def test_bounds_grow_with_the_global_period_over_a_grid():
    # Sanity across a grid: at fixed gamma every period-driven term is monotone in G.
    for n, N, I in product([4, 8], [1, 2, 4], [1, 2]):
        totals = [
            theorem2_bound(gamma=1e-4, L=1.0, sigma2=1.0, n_workers=n, n_groups=N, local_period=I,
                           global_period=I * m, global_divergence=1.0).total
            for m in (1, 2, 4)
        ]  # fmt: skip
        assert totals == sorted(totals)
