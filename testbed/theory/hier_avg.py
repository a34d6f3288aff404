"""Hier-AVG's bound, Zhou & Cong (2019) Theorem 3.2, (3.6) under condition (3.5).

Hier-AVG is two-level H-SGD analysed for IID data: P workers in groups of S average
locally every K_1 iterations and globally every K_2. Its bound has no divergence terms.

Readings: delta_{grad F, w} is stated in (0, K_2(K_2-1)/2 - 1] under (3.6) but in
(0, K_2(K_2-3)/2) in the proof's Lemma 2, and it is empty for K_2 <= 2; it is a slack in
the proof's Lemma 2 that the reader cannot measure, so it is taken as an argument in
[0, max(K_2(K_2-1)/2 - 1, 0)], default 0: the proof goes through at 0 (Lemma 2 with no
slack), which gives the strictest condition (3.5) and the smallest delta. The upward /
downward labels of the third term's two summands are ours (the paper names no split).
"""

from __future__ import annotations

import math

from testbed.theory._common import (
    REL_TOL,
    check_divides,
    count,
    is_number,
    nonnegative,
    optimality_gap_term,
    positive,
)
from testbed.theory.bounds import BoundTerms


def hier_avg_bound(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    n_workers: int,
    group_size: int,
    local_period: int,
    global_period: int,
    delta_grad: float = 0.0,
    f_gap: float | None = None,
    n_iterations: int | None = None,
) -> BoundTerms:
    """Hier-AVG Theorem 3.2, (3.6), under condition (3.5); IID data, so no divergence terms.

    Their P = ``n_workers``, S = ``group_size``, K_1 = ``local_period``, K_2 =
    ``global_period``; (3.6) contains the per-sample variance M only as M/B, which is the
    minibatch variance ``sigma2``. Its left side averages ||grad F||^2 over the N = T/K_2
    global models only. ``delta_grad`` is their delta_{grad F, w} in
    [0, K_2(K_2-1)/2 - 1]: unknowable in practice; 0 (the proof's Lemma 2 without slack)
    gives the strictest condition (3.5) and the smallest delta = L^2 gamma^2 (1 + delta_grad).
    The third term is split at its two summands: (K_2-K_1)(4K_2+K_1-3)/S is the drift of
    group averages between global rounds (upward), (K_1-1)(3K_2+K_1-2) the drift within a
    local period (downward).
    """
    gamma, L = positive("gamma", gamma), positive("L", L)
    sigma2 = nonnegative("sigma2", sigma2)
    P, S = count("n_workers", n_workers), count("group_size", group_size)
    if P % S:
        raise ValueError(f"group_size={S} must divide n_workers={P} (Hier-AVG assumes S | P)")
    K1, K2 = count("local_period", local_period), count("global_period", global_period)
    check_divides("local_period", K1, "global_period", K2)
    slack_max = max(K2 * (K2 - 1) / 2 - 1, 0.0)
    if not is_number(delta_grad) or not 0 <= delta_grad <= slack_max:
        raise ValueError(
            f"delta_grad={delta_grad!r} must lie in [0, K_2(K_2-1)/2 - 1] = [0, {slack_max:g}] for K_2={K2}"
        )
    x = L * gamma  # (3.5) and delta depend on gamma only through L gamma
    a = K2 * (K2 - 1) / 2 - 1 - delta_grad
    margin = 1 - x**2 * a - x * K2
    delta = x**2 * (1 + delta_grad)
    x_max = min(_largest_root(a, K2), 1 / math.sqrt(1 + delta_grad))
    condition = (
        f"(3.5) 1 - L^2 gamma^2 (K_2(K_2-1)/2 - 1 - delta_grad) - L gamma K_2 >= 0 and "
        f"delta = L^2 gamma^2 (1 + delta_grad) < 1, i.e. gamma < {x_max / L:.6g} "
        f"for L={L:g}, K_2={K2}, delta_grad={delta_grad:g}"
    )
    if margin < -REL_TOL or delta >= 1:
        raise ValueError(
            f"gamma={gamma:g} is outside Hier-AVG Theorem 3.2's condition {condition}: "
            f"1 - {x**2:.6g}*{a:g} - {x:.6g}*{K2} = {margin:.6g}, delta = {delta:.6g}"
        )
    gap = optimality_gap_term(f_gap, n_iterations, gamma)
    if n_iterations is not None and n_iterations % K2:
        raise ValueError(
            f"n_iterations={n_iterations} must be a multiple of global_period K_2={K2}: "
            "(3.6) counts N = T/K_2 global rounds"
        )
    scale = K2 / (K2 - delta)  # (3.6) divides by K_2 - delta where a plain bound has K_2
    third = L**2 * gamma**2 * sigma2 / 12 * scale
    return BoundTerms(
        theorem="Hier-AVG Theorem 3.2 (3.6)",
        condition=condition,
        gamma_max=x_max / L,
        # 2 E[F - F*] / (N (K_2 - delta) gamma) with N = T/K_2 is (2 f_gap / (gamma T)) K_2/(K_2 - delta)
        gap_term=gap * scale,
        sgd_noise_term=L * gamma * sigma2 * K2**2 / (P * (K2 - delta)),
        upward_noise_term=third * (K2 - K1) * (4 * K2 + K1 - 3) / S,
        upward_divergence_term=0.0,
        downward_noise_term=third * (K1 - 1) * (3 * K2 + K1 - 2),
        downward_divergence_term=0.0,
    )


def _largest_root(a: float, b: float) -> float:
    """Largest x >= 0 with 1 - a x^2 - b x >= 0 on [0, x] (b > 0); inf if it never fails."""
    if a > 0:
        return (-b + math.sqrt(b * b + 4 * a)) / (2 * a)
    if a == 0:
        return 1 / b
    disc = b * b + 4 * a  # a < 0: 1 + |a| x^2 - b x, negative between its roots if any
    return math.inf if disc < 0 else (b - math.sqrt(disc)) / (-2 * a)
