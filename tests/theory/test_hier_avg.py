"""Hier-AVG Theorem 3.2 (3.6): hand-computed values, the stated reductions, condition (3.5)."""

from fractions import Fraction as Fr

import pytest

from testbed.theory.hier_avg import hier_avg_bound


def test_hier_avg_by_hand():
    # P = 8, S = 4, K_2 = 8, K_1 = 2, gamma = 1/100, L = 1, sigma2 = M/B = 1, delta_grad = 0.
    # delta = L^2 gamma^2 = 1/10000, K_2 - delta = 79999/10000.
    b = hier_avg_bound(gamma=0.01, L=1.0, sigma2=1.0, n_workers=8, group_size=4, local_period=2, global_period=8)
    third = Fr(2, 239997)  # L^2 gamma^2 sigma2 K_2 / (12 (K_2 - delta)) = 8/10000 / (12 * 79999/10000)
    assert b.gap_term == 0.0
    assert b.sgd_noise_term == pytest.approx(float(Fr(800, 79999)), rel=1e-12)  # 1/100 * 64 / (8 * 79999/10000)
    assert b.upward_noise_term == pytest.approx(float(third * 6 * 31 / 4), rel=1e-12)  # (K2-K1)(4K2+K1-3)/S
    assert b.downward_noise_term == pytest.approx(float(third * 1 * 24), rel=1e-12)  # (K1-1)(3K2+K1-2)
    assert b.upward_divergence_term == b.downward_divergence_term == 0.0


def test_hier_avg_second_set_by_hand():
    # P = 6, S = 3, K_2 = 6, K_1 = 3, gamma = 1/50, L = 1/2, sigma2 = 4, delta_grad = 2,
    # f_gap = 1, T = 60 (N = 10 global rounds).  L gamma = 1/100, delta = 3/10000,
    # K_2 - delta = 59997/10000.
    b = hier_avg_bound(gamma=0.02, L=0.5, sigma2=4.0, n_workers=6, group_size=3, local_period=3, global_period=6,
                       delta_grad=2.0, f_gap=1.0, n_iterations=60)  # fmt: skip
    expected = {
        "gap_term": Fr(100000, 59997),  # 2 / (10 * 59997/10000 * 1/50)
        "sgd_noise_term": Fr(2400, 59997),  # 1/100 * 4 * 36 / (6 * 59997/10000)
        "upward_noise_term": Fr(48, 59997),  # 2/59997 * 3 * 24 / 3
        "downward_noise_term": Fr(76, 59997),  # 2/59997 * 2 * 19
    }
    for name, value in expected.items():
        assert getattr(b, name) == pytest.approx(float(value), rel=1e-12), name
    assert b.total == pytest.approx(float(sum(expected.values())), rel=1e-12)


@pytest.mark.parametrize("K2, S", [(4, 2), (8, 4), (6, 3)])
def test_hier_avg_without_local_averaging_is_k_avg(K2, S):
    # Zhou & Cong after (3.6): K_1 = 1 and S = 1, or simply K_1 = K_2, give K-AVG.
    common = dict(gamma=0.005, L=1.0, sigma2=1.0, n_workers=12, global_period=K2)
    k_avg = hier_avg_bound(local_period=1, group_size=1, **common)
    assert hier_avg_bound(local_period=K2, group_size=S, **common).total == pytest.approx(k_avg.total, rel=1e-12)


def test_hier_avg_is_monotone_in_local_period_and_group_size():
    # Theorem 3.5: increasing in K_1, decreasing in S.
    common = dict(gamma=0.005, L=1.0, sigma2=1.0, n_workers=16, global_period=16)
    by_k1 = [hier_avg_bound(local_period=k1, group_size=4, **common).total for k1 in (1, 2, 4, 8, 16)]
    by_s = [hier_avg_bound(local_period=4, group_size=s, **common).total for s in (1, 2, 4, 8, 16)]
    assert by_k1 == sorted(by_k1) and by_s == sorted(by_s, reverse=True)


def test_hier_avg_refuses_gamma_outside_condition_3_5():
    kwargs = dict(L=1.0, sigma2=1.0, n_workers=8, group_size=4, local_period=2, global_period=8)
    # K_2 = 8: 1 - 27 x^2 - 8 x >= 0  <=>  x <= (-8 + sqrt(64 + 108))/54 = 0.0947199...
    with pytest.raises(ValueError, match=r"outside Hier-AVG Theorem 3\.2's condition \(3\.5\).*gamma < 0\.0947199"):
        hier_avg_bound(gamma=0.1, **kwargs)
    assert hier_avg_bound(gamma=0.0947, **kwargs).gamma_max == pytest.approx(0.09471988, rel=1e-6)
    with pytest.raises(ValueError, match=r"delta_grad=30 must lie in \[0, K_2\(K_2-1\)/2 - 1\] = \[0, 27\]"):
        hier_avg_bound(gamma=0.01, delta_grad=30, **kwargs)
    with pytest.raises(ValueError, match="n_iterations=100 must be a multiple of global_period K_2=8"):
        hier_avg_bound(gamma=0.01, f_gap=1.0, n_iterations=100, **kwargs)
    with pytest.raises(ValueError, match="group_size=3 must divide n_workers=8"):
        hier_avg_bound(gamma=0.01, **{**kwargs, "group_size": 3})
