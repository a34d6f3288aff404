"""Convergence-bound calculators for H-SGD: Wang et al. (2022) Theorems 1-3 and Corollary 1.

Each calculator is a pure function of the theorem's constants. It returns the bound on the
averaged squared gradient norm split into its terms (a frozen :class:`BoundTerms`) and
refuses, with a ``ValueError`` quoting the condition with the numbers plugged in, a
learning rate outside the theorem's condition.

Notation follows Wang et al.: ``n`` workers in ``N`` groups of sizes ``n_i``, global period
``G``, local period(s) ``I`` (``I_i``), learning rate ``gamma``, smoothness ``L`` (5), and
``sigma2`` = sigma^2, the variance of one worker's minibatch gradient (6). Divergences are
passed *squared*, as they enter the bounds: ``eps^2`` (7), ``eps_i^2`` (8), ``eps~^2`` (9).

``f_gap`` is f(w^0) - f^* and ``n_iterations`` is T. Both may be omitted together: the
gap term 2 f_gap / (gamma T) is then reported as 0, the T -> infinity limit of the bound.
For a non-negative loss, f(w^0) itself is a valid (conservative) ``f_gap``.

Readings chosen where the printed text contradicts the paper's own proofs and remarks:

1. (11b)-(11c) as printed lack the factor L^2 carried by (12) and (15). Corollary 1 is
   stated as Theorem 1 at N = 1 and Theorem 2 as its expectation over random groupings,
   and both have C gamma^2 L^2; the missing L^2 is also dimensionally required (gamma ~ 1/L).
   ``theorem1_bound`` includes L^2.
2. In Theorem 3, A_1(l) and A_2(l) as printed do not reduce to Theorem 2 at M = 2, which
   Remark 6 asserts: at l = 1 they give (1 - 1/n) P_1 and P_1^2. The reading consistent
   with Remark 6, Lemma 3 and (23)-(24) modulates the downward part of level l by
   P_{l+1}, the period at which a level-l server averages its subtree, and uses the
   level's n_l servers:
       A_1(l) = P_1 (n_l - 1)/n + P_{l+1} (1 - n_l/n),   [(n_l - 1)/n = 1/prod_{j>l} N_j - 1/n]
       A_2(l) = P_1^2 (n_l - 1)/(n - 1) + P_{l+1}^2 (1 - (n_l - 1)/(n - 1)),
   with n_l = N_1 ... N_l. At M = 2 this is exactly (15) with G = P_1, I = P_2, N = N_1,
   and at every l it is (15)'s factors for the two-level cut of the tree at level l
   (N = n_l groups, fully averaged every P_{l+1}, globally every P_1).
   The printed "P_l is an integer multiple of P_{l-1}" is read as P_l | P_{l-1}, since
   P_1 > P_2 > ... > P_M.
3. (N - 1)/(n - 1) is 0/0 at n = 1; it is taken as 0 (one worker has no divergence).

Each learning-rate condition is applied as printed: strict (<) for Theorem 1, <= for
Corollary 1 and Theorems 2-3.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

from testbed.theory._common import (
    REL_TOL,
    check_divides,
    count,
    nonnegative,
    optimality_gap_term,
    positive,
    upward_share,
)

C_WANG = 40.0 / 3.0  # the constant C of Theorems 1-3 and Corollary 1


@dataclass(frozen=True)
class BoundTerms:
    """A bound on the averaged squared gradient norm, term by term.

    SGD part = gap + sgd_noise; upward part = what the global period (or, for Hier-AVG,
    the drift of group averages) contributes; downward part = what the local periods
    contribute. ``total`` is their sum.
    """

    theorem: str  # the result and its equation numbers
    condition: str  # the learning-rate condition, with its numbers
    gamma_max: float  # the largest learning rate the condition admits (supremum if strict)
    gap_term: float  # 2 (f^0 - f^*) / (gamma T); 0.0 when T is not given (T -> infinity)
    sgd_noise_term: float  # gamma L sigma^2 / n (Hier-AVG: its second term)
    upward_noise_term: float  # sigma^2 term modulated by G (P_1; Hier-AVG: K_2 - K_1)
    upward_divergence_term: float  # divergence term modulated by G^2 (P_1^2)
    downward_noise_term: float  # sigma^2 term modulated by I (P_{l+1}; Hier-AVG: K_1 - 1)
    downward_divergence_term: float  # divergence term modulated by I^2 (P_{l+1}^2)

    @property
    def sgd_part(self) -> float:
        return self.gap_term + self.sgd_noise_term

    @property
    def upward_part(self) -> float:
        return self.upward_noise_term + self.upward_divergence_term

    @property
    def downward_part(self) -> float:
        return self.downward_noise_term + self.downward_divergence_term

    @property
    def total(self) -> float:
        return self.sgd_part + self.upward_part + self.downward_part

    def as_dict(self) -> dict[str, float]:
        """Every term and part as floats, for a metrics row or a table."""
        names = (
            "gamma_max", "gap_term", "sgd_noise_term", "upward_noise_term",
            "upward_divergence_term", "downward_noise_term", "downward_divergence_term",
            "sgd_part", "upward_part", "downward_part", "total",
        )  # fmt: skip
        return {name: float(getattr(self, name)) for name in names}


# ---------------------------------------------------------------------- helpers


def _check_period_condition(
    theorem: str, gamma: float, L: float, period: int, period_name: str, strict: bool
) -> tuple[str, float]:
    """gamma < or <= 1/(2 sqrt(6) period L): the condition of Theorems 1-3 and Corollary 1."""
    gamma_max = 1.0 / (2.0 * math.sqrt(6.0) * period * L)
    op = "<" if strict else "<="
    condition = (
        f"gamma {op} 1/(2*sqrt(6)*{period_name}*L) = 1/(2*sqrt(6)*{period}*{L:g}) = {gamma_max:.6g}"
    )
    holds = gamma < gamma_max if strict else gamma <= gamma_max * (1.0 + REL_TOL)
    if not holds:
        raise ValueError(f"gamma={gamma:g} is outside {theorem}'s condition {condition}")
    return condition, gamma_max


def _per_group(name: str, value: float | Sequence[float], n_groups: int, check: Callable) -> list:
    """One value per group (a sequence or array), or a single value broadcast to every group."""
    if isinstance(value, numbers.Real):
        return [check(name, value)] * n_groups
    try:
        values = list(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be a number or one number per group, got {value!r}") from None
    if len(values) != n_groups:
        raise ValueError(f"{name} lists {len(values)} values but there are {n_groups} groups")
    return [check(f"{name}[{i}]", v) for i, v in enumerate(values)]


# ------------------------------------------------------------------- H-SGD (Wang et al.)


def theorem1_bound(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    group_sizes: Sequence[int],
    local_periods: int | Sequence[int],
    global_period: int,
    upward_divergence: float,
    downward_divergences: float | Sequence[float],
    f_gap: float | None = None,
    n_iterations: int | None = None,
) -> BoundTerms:
    """Theorem 1, (11a)-(11c): fixed grouping, per-group sizes n_i and local periods I_i.

    ``upward_divergence`` is eps^2 of (7); ``downward_divergences`` the eps_i^2 of (8), one
    per group or one for all. Condition: gamma < 1/(2 sqrt(6) G L). The printed (11b)-(11c)
    lack L^2; it is restored (see the module docstring, reading 1).
    """
    gamma, L = positive("gamma", gamma), positive("L", L)
    sigma2 = nonnegative("sigma2", sigma2)
    sizes = [count(f"group_sizes[{i}]", s) for i, s in enumerate(group_sizes)]
    if not sizes:
        raise ValueError("group_sizes must list at least one group size n_i")
    n_groups, n = len(sizes), sum(sizes)
    periods = _per_group("local_periods", local_periods, n_groups, count)
    downs = _per_group("downward_divergences", downward_divergences, n_groups, nonnegative)
    G = count("global_period", global_period)
    for i, I_i in enumerate(periods):
        check_divides(f"local_periods[{i}]", I_i, "global_period", G)
    eps2_up = nonnegative("upward_divergence", upward_divergence)
    condition, gamma_max = _check_period_condition("Theorem 1", gamma, L, G, "G", strict=True)
    c = C_WANG * gamma**2 * L**2
    return BoundTerms(
        theorem="Theorem 1 (11a)-(11c), fixed grouping",
        condition=condition,
        gamma_max=gamma_max,
        gap_term=optimality_gap_term(f_gap, n_iterations, gamma),
        sgd_noise_term=gamma * L * sigma2 / n,
        upward_noise_term=2 * c * G * (n_groups - 1) / n * sigma2,
        upward_divergence_term=3 * c * G**2 * eps2_up,
        downward_noise_term=2 * c * sigma2 * sum((s - 1) * I for s, I in zip(sizes, periods)) / n,
        downward_divergence_term=3 * c * sum(s / n * I**2 * e for s, I, e in zip(sizes, periods, downs)),
    )


def corollary1_bound(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    n_workers: int,
    period: int,
    global_divergence: float,
    f_gap: float | None = None,
    n_iterations: int | None = None,
) -> BoundTerms:
    """Corollary 1, (12): local SGD with period P, i.e. Theorem 1 at N = 1.

    With one group the upward divergence vanishes and the group's downward divergence is
    the global one (the note after (9)), so the P-terms are reported as the downward part.
    Condition: gamma <= 1/(2 sqrt(6) P L).
    """
    gamma, L = positive("gamma", gamma), positive("L", L)
    sigma2 = nonnegative("sigma2", sigma2)
    n, P = count("n_workers", n_workers), count("period", period)
    eps2 = nonnegative("global_divergence", global_divergence)
    condition, gamma_max = _check_period_condition("Corollary 1", gamma, L, P, "P", strict=False)
    c = C_WANG * gamma**2 * L**2
    return BoundTerms(
        theorem="Corollary 1 (12), local SGD",
        condition=condition,
        gamma_max=gamma_max,
        gap_term=optimality_gap_term(f_gap, n_iterations, gamma),
        sgd_noise_term=gamma * L * sigma2 / n,
        upward_noise_term=0.0,
        upward_divergence_term=0.0,
        downward_noise_term=2 * c * sigma2 * (1 - 1 / n) * P,
        downward_divergence_term=3 * c * P**2 * eps2,
    )


def theorem2_bound(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    n_workers: int,
    n_groups: int,
    local_period: int,
    global_period: int,
    global_divergence: float,
    f_gap: float | None = None,
    n_iterations: int | None = None,
) -> BoundTerms:
    """Theorem 2, (15): uniformly random grouping into N equal groups, one local period I.

    The bound holds in expectation over the grouping. Condition: gamma <= 1/(2 sqrt(6) G L).
    """
    gamma, L = positive("gamma", gamma), positive("L", L)
    sigma2 = nonnegative("sigma2", sigma2)
    n, N = count("n_workers", n_workers), count("n_groups", n_groups)
    if n % N:
        raise ValueError(f"n_groups={N} must divide n_workers={n}: Theorem 2 takes equal groups n_i = n/N")
    I, G = count("local_period", local_period), count("global_period", global_period)
    check_divides("local_period", I, "global_period", G)
    eps2 = nonnegative("global_divergence", global_divergence)
    condition, gamma_max = _check_period_condition("Theorem 2", gamma, L, G, "G", strict=False)
    c = C_WANG * gamma**2 * L**2
    share = float(upward_share(N, n))
    return BoundTerms(
        theorem="Theorem 2 (15), random grouping",
        condition=condition,
        gamma_max=gamma_max,
        gap_term=optimality_gap_term(f_gap, n_iterations, gamma),
        sgd_noise_term=gamma * L * sigma2 / n,
        upward_noise_term=2 * c * (N - 1) / n * G * sigma2,
        upward_divergence_term=3 * c * share * G**2 * eps2,
        downward_noise_term=2 * c * (1 - N / n) * I * sigma2,
        downward_divergence_term=3 * c * (1 - share) * I**2 * eps2,
    )


@dataclass(frozen=True)
class LevelCoefficients:
    """A_1(l) and A_2(l) of Theorem 3, each split into its upward (P_1) and downward part."""

    level: int  # l = 1 .. M-1 (level of the local servers)
    n_servers: int  # n_l = N_1 ... N_l
    A1_upward: Fraction  # P_1 (n_l - 1)/n
    A1_downward: Fraction  # P_{l+1} (1 - n_l/n)
    A2_upward: Fraction  # P_1^2 (n_l - 1)/(n - 1)
    A2_downward: Fraction  # P_{l+1}^2 (1 - (n_l - 1)/(n - 1))

    @property
    def A1(self) -> Fraction:
        return self.A1_upward + self.A1_downward

    @property
    def A2(self) -> Fraction:
        return self.A2_upward + self.A2_downward


def multilevel_coefficients(branching: Sequence[int], periods: Sequence[int]) -> tuple[LevelCoefficients, ...]:
    """A_1(l), A_2(l) of (22) for l = 1..M-1, exact (reading 2 of the module docstring).

    ``branching`` = (N_1, ..., N_M): children per server, top first (N_M workers per
    bottom server); ``periods`` = (P_1, ..., P_M), top first, each dividing the one before.
    """
    Ns = [count(f"branching[{i}]", v) for i, v in enumerate(branching)]
    Ps = [count(f"periods[{i}]", v) for i, v in enumerate(periods)]
    if len(Ns) < 2:
        raise ValueError(
            f"branching must give N_1..N_M for M >= 2 levels, got {len(Ns)}; "
            "one level is local SGD (Corollary 1)"
        )
    if len(Ps) != len(Ns):
        raise ValueError(f"periods lists {len(Ps)} values but branching has M={len(Ns)} levels; give P_1..P_M")
    for l in range(1, len(Ps)):
        check_divides(f"periods[{l}] (P_{l + 1})", Ps[l], f"periods[{l - 1}] (P_{l})", Ps[l - 1])
    n = math.prod(Ns)
    out, n_l = [], 1
    for l in range(1, len(Ns)):
        n_l *= Ns[l - 1]
        share = upward_share(n_l, n)
        P_1, P_down = Ps[0], Ps[l]  # Ps[l] is P_{l+1}: the level-l servers' own period
        out.append(
            LevelCoefficients(
                level=l,
                n_servers=n_l,
                A1_upward=P_1 * Fraction(n_l - 1, n),
                A1_downward=P_down * (1 - Fraction(n_l, n)),
                A2_upward=P_1**2 * share,
                A2_downward=P_down**2 * (1 - share),
            )
        )
    return tuple(out)


def theorem3_bound(
    *,
    gamma: float,
    L: float,
    sigma2: float,
    branching: Sequence[int],
    periods: Sequence[int],
    global_divergence: float,
    f_gap: float | None = None,
    n_iterations: int | None = None,
) -> BoundTerms:
    """Theorem 3, (22): M-level H-SGD with uniformly random grouping.

    ``branching`` = (N_1..N_M), ``periods`` = (P_1..P_M); n = N_1 ... N_M. The averaged
    level terms C gamma^2 L^2 /(M-1) sum_l [2 A_1(l) sigma^2 + 3 A_2(l) eps~^2] are split
    into the P_1 (upward) and P_{l+1} (downward) parts of A_1, A_2 (see reading 2).
    Condition: gamma <= 1/(2 sqrt(6) P_1 L).
    """
    gamma, L = positive("gamma", gamma), positive("L", L)
    sigma2 = nonnegative("sigma2", sigma2)
    eps2 = nonnegative("global_divergence", global_divergence)
    levels = multilevel_coefficients(branching, periods)
    n, P_1 = math.prod(branching), int(periods[0])
    condition, gamma_max = _check_period_condition("Theorem 3", gamma, L, P_1, "P_1", strict=False)
    c = C_WANG * gamma**2 * L**2 / len(levels)  # len(levels) = M - 1
    return BoundTerms(
        theorem="Theorem 3 (22), multi-level random grouping",
        condition=condition,
        gamma_max=gamma_max,
        gap_term=optimality_gap_term(f_gap, n_iterations, gamma),
        sgd_noise_term=gamma * L * sigma2 / n,
        upward_noise_term=2 * c * float(sum(lv.A1_upward for lv in levels)) * sigma2,
        upward_divergence_term=3 * c * float(sum(lv.A2_upward for lv in levels)) * eps2,
        downward_noise_term=2 * c * float(sum(lv.A1_downward for lv in levels)) * sigma2,
        downward_divergence_term=3 * c * float(sum(lv.A2_downward for lv in levels)) * eps2,
    )
