"""`testbed bound THEOREM ...`: print a convergence bound's terms as a small table.

Examples::

    testbed bound theorem2 --n 8 --N 2 --periods 10 2 --gamma 0.005 --L 1 --sigma2 1 --eps2 0.5
    testbed bound theorem1 --group-sizes 3 5 --periods 10 2,5 --gamma 0.005 --L 1 --sigma2 1 \\
        --up-eps2 0.2 --down-eps2 0.3 0.1
    testbed bound theorem3 --N 2 2 3 --periods 20 10 2 --gamma 0.002 --L 1 --sigma2 1 --eps2 0.5
    testbed bound corollary1 --n 8 --periods 5 --gamma 0.01 --L 1 --sigma2 1 --eps2 0.5
    testbed bound hier-avg --n 8 --N 2 --periods 8 2 --gamma 0.01 --L 1 --sigma2 1

Periods are given top first, as in ``AggregationTree``: ``G I`` for two levels (Theorem 1
takes ``I_1,I_2,...`` for per-group local periods), ``P_1 .. P_M`` for Theorem 3, ``P``
for Corollary 1, ``K_2 K_1`` for Hier-AVG. Without ``--f-gap`` and ``--T`` the gap term
2 (f^0 - f^*) / (gamma T) is shown at T -> infinity (0).
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

from testbed.theory import bounds, sandwich
from testbed.theory.bounds import BoundTerms
from testbed.theory.hier_avg import hier_avg_bound
from testbed.theory.sandwich import Sandwich

THEOREMS = ("theorem1", "theorem2", "theorem3", "corollary1", "hier-avg")

# Flags each theorem reads besides the common --gamma --L --sigma2 --f-gap --T; any other
# flag given is an error rather than silently ignored.
_FLAGS: dict[str, set[str]] = {
    "theorem1": {"n", "N", "group_sizes", "periods", "up_eps2", "down_eps2"},
    "theorem2": {"n", "N", "periods", "eps2", "eps"},
    "theorem3": {"N", "periods", "eps2", "eps"},
    "corollary1": {"n", "periods", "eps2", "eps"},
    "hier-avg": {"n", "N", "periods", "delta_grad"},
}
_OPTIONAL = ("n", "N", "group_sizes", "periods", "up_eps2", "down_eps2", "eps2", "eps", "delta_grad")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `testbed bound` to the top-level parser."""
    p = subparsers.add_parser(
        "bound",
        help="print a convergence bound's terms (Wang et al. Theorems 1-3, Corollary 1; Hier-AVG (3.6))",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("theorem", choices=THEOREMS, metavar="THEOREM", help=" | ".join(THEOREMS))
    add = p.add_argument
    add("--n", type=int, help="number of workers n (Hier-AVG: P)")
    add("--N", type=int, nargs="+", help="number of groups N; theorem3: N_1 .. N_M, top first")
    add("--group-sizes", type=int, nargs="+", metavar="n_i", help="theorem1: n_1 .. n_N (default: n/N each)")
    add("--periods", nargs="+", metavar="P", help="top first: G I | P_1 .. P_M | P | K_2 K_1 (theorem1: I_1,I_2,..)")
    add("--gamma", type=float, required=True, help="learning rate gamma")
    add("--L", type=float, required=True, help="smoothness constant L of (5)")
    add("--sigma2", type=float, required=True, help="minibatch gradient variance sigma^2 of (6)")
    eps = p.add_mutually_exclusive_group()
    eps.add_argument("--eps2", type=float, help="global divergence eps~^2 of (9)")
    eps.add_argument("--eps", type=float, help="global divergence as eps~ (squared here)")
    add("--up-eps2", type=float, help="theorem1: upward divergence eps^2 of (7)")
    add("--down-eps2", type=float, nargs="+", metavar="EPS2", help="theorem1: downward eps_i^2 of (8), one or one per group")
    add("--delta-grad", type=float, help="hier-avg: delta_{grad F, w} of (3.5)-(3.6) (default 0)")
    add("--f-gap", type=float, help="f(w^0) - f^* (with --T)")
    add("--T", type=int, help="number of local iterations T (with --f-gap)")
    p.set_defaults(func=run_bound)


def run_bound(args: argparse.Namespace) -> int:
    for flag in _OPTIONAL:
        if getattr(args, flag) is not None and flag not in _FLAGS[args.theorem]:
            name = f"--{flag.replace('_', '-')}"
            raise ValueError(f"{name} does not apply to {args.theorem}; it takes {_flag_list(args.theorem)}")
    terms, sandwiches, setting = _COMPUTE[args.theorem](args)
    print(_render(terms, sandwiches, setting, args))
    return 0


# ------------------------------------------------------------------ per theorem


def _theorem1(args) -> tuple[BoundTerms, list[Sandwich], str]:
    if args.group_sizes is not None:
        sizes = args.group_sizes
        if args.N is not None and args.N != [len(sizes)]:
            raise ValueError(f"--N {args.N} disagrees with --group-sizes, which lists {len(sizes)} groups")
        if args.n is not None and args.n != sum(sizes):
            raise ValueError(f"--n {args.n} disagrees with --group-sizes, which sum to {sum(sizes)}")
    else:
        n, N = _need(args, "n"), _single(args, "N")
        if n % N:
            raise ValueError(f"--N {N} does not divide --n {n}; give --group-sizes for unequal groups")
        sizes = [n // N] * N
    G, local = _periods(args, 2)
    local_periods = _int_list("--periods (local)", local)
    down = _need(args, "down_eps2")
    terms = bounds.theorem1_bound(
        gamma=args.gamma, L=args.L, sigma2=args.sigma2, group_sizes=sizes,
        local_periods=local_periods[0] if len(local_periods) == 1 else local_periods,
        global_period=_int("--periods (G)", G), upward_divergence=_need(args, "up_eps2"),
        downward_divergences=down[0] if len(down) == 1 else down,
        f_gap=args.f_gap, n_iterations=args.T,
    )  # fmt: skip
    setting = f"n_i={sizes}  G={G}  I_i={local}  eps^2={args.up_eps2:g}  eps_i^2={down}"
    return terms, [], setting


def _theorem2(args) -> tuple[BoundTerms, list[Sandwich], str]:
    n, N = _need(args, "n"), _single(args, "N")
    G, I = (_int(f"--periods ({name})", v) for name, v in zip("GI", _periods(args, 2)))
    eps2 = _eps2(args)
    terms = bounds.theorem2_bound(
        gamma=args.gamma, L=args.L, sigma2=args.sigma2, n_workers=n, n_groups=N, local_period=I,
        global_period=G, global_divergence=eps2, f_gap=args.f_gap, n_iterations=args.T,
    )  # fmt: skip
    sandwiches = [sandwich.sandwich_noise(n, N, I, G), sandwich.sandwich_divergence(n, N, I, G)]
    return terms, sandwiches, f"n={n}  N={N}  G={G}  I={I}  eps~^2={eps2:g}"


def _theorem3(args) -> tuple[BoundTerms, list[Sandwich], str]:
    branching = _need(args, "N")
    periods = [_int(f"--periods (P_{l + 1})", v) for l, v in enumerate(_periods(args, len(branching)))]
    eps2 = _eps2(args)
    terms = bounds.theorem3_bound(
        gamma=args.gamma, L=args.L, sigma2=args.sigma2, branching=branching, periods=periods,
        global_divergence=eps2, f_gap=args.f_gap, n_iterations=args.T,
    )  # fmt: skip
    sandwiches = [
        sandwich.sandwich_multilevel_noise(branching, periods),
        sandwich.sandwich_multilevel_divergence(branching, periods),
    ]
    setting = f"N_l={branching}  n={math.prod(branching)}  P_l={periods}  eps~^2={eps2:g}"
    return terms, sandwiches, setting


def _corollary1(args) -> tuple[BoundTerms, list[Sandwich], str]:
    n = _need(args, "n")
    (P,) = (_int("--periods (P)", v) for v in _periods(args, 1))
    eps2 = _eps2(args)
    terms = bounds.corollary1_bound(
        gamma=args.gamma, L=args.L, sigma2=args.sigma2, n_workers=n, period=P,
        global_divergence=eps2, f_gap=args.f_gap, n_iterations=args.T,
    )  # fmt: skip
    return terms, [], f"n={n}  P={P}  eps~^2={eps2:g}"


def _hier_avg(args) -> tuple[BoundTerms, list[Sandwich], str]:
    n, N = _need(args, "n"), _single(args, "N")
    if n % N:
        raise ValueError(f"--N {N} does not divide --n {n}: Hier-AVG groups have S = n/N workers")
    K2, K1 = (_int(f"--periods ({name})", v) for name, v in zip(("K_2", "K_1"), _periods(args, 2)))
    delta_grad = 0.0 if args.delta_grad is None else args.delta_grad
    terms = hier_avg_bound(
        gamma=args.gamma, L=args.L, sigma2=args.sigma2, n_workers=n, group_size=n // N,
        local_period=K1, global_period=K2, delta_grad=delta_grad, f_gap=args.f_gap, n_iterations=args.T,
    )  # fmt: skip
    return terms, [], f"P={n}  S={n // N}  K_2={K2}  K_1={K1}  delta_grad={delta_grad:g}  (sigma2 = M/B)"


_COMPUTE: dict[str, Callable[[argparse.Namespace], tuple[BoundTerms, list[Sandwich], str]]] = {
    "theorem1": _theorem1,
    "theorem2": _theorem2,
    "theorem3": _theorem3,
    "corollary1": _corollary1,
    "hier-avg": _hier_avg,
}


# ---------------------------------------------------------------------- parsing


def _flag_list(theorem: str) -> str:
    flags = sorted(f"--{f.replace('_', '-')}" for f in _FLAGS[theorem])
    return " ".join(flags) + " --gamma --L --sigma2 [--f-gap --T]"


def _need(args: argparse.Namespace, flag: str):
    value = getattr(args, flag)
    if value is None:
        raise ValueError(f"{args.theorem} needs --{flag.replace('_', '-')}; it takes {_flag_list(args.theorem)}")
    return value


def _single(args: argparse.Namespace, flag: str) -> int:
    values = _need(args, flag)
    if len(values) != 1:
        raise ValueError(f"{args.theorem} takes one value for --{flag}, got {values} (several are for theorem3)")
    return values[0]


def _periods(args: argparse.Namespace, count: int) -> list[str]:
    periods = _need(args, "periods")
    if len(periods) != count:
        expected = {"theorem1": "G I", "theorem2": "G I", "corollary1": "P", "hier-avg": "K_2 K_1"}
        shape = expected.get(args.theorem, f"P_1 .. P_{count} (one per level, as --N)")
        raise ValueError(f"--periods takes {count} value(s) for {args.theorem} ({shape}), got {periods}")
    return periods


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer number of local iterations, got {text!r}") from None


def _int_list(name: str, text: str) -> list[int]:
    return [_int(name, part) for part in text.split(",")]


def _eps2(args: argparse.Namespace) -> float:
    if args.eps is not None:
        return args.eps**2
    if args.eps2 is None:
        raise ValueError(f"{args.theorem} needs the global divergence: --eps2 (eps~^2) or --eps (eps~)")
    return args.eps2


# ---------------------------------------------------------------------- output


def _render(terms: BoundTerms, sandwiches: list[Sandwich], setting: str, args: argparse.Namespace) -> str:
    horizon = (
        f"f0-f*={args.f_gap:g}  T={args.T}"
        if args.T is not None
        else "no --f-gap/--T: gap term at T -> infinity"
    )
    lines = [
        terms.theorem,
        f"  {setting}",
        f"  gamma={args.gamma:g}  L={args.L:g}  sigma2={args.sigma2:g}  {horizon}",
        f"  condition: {terms.condition}: holds",
        "",
        f"  {'part':<10}{'term':<22}{'value':>14}",
    ]
    rows = [
        ("SGD", "2(f0-f*)/(gamma T)", terms.gap_term),
        ("SGD", "noise", terms.sgd_noise_term),
        ("upward", "noise (sigma2)", terms.upward_noise_term),
        ("upward", "divergence", terms.upward_divergence_term),
        ("downward", "noise (sigma2)", terms.downward_noise_term),
        ("downward", "divergence", terms.downward_divergence_term),
    ]
    lines += [f"  {part:<10}{name:<22}{value:>14.6g}" for part, name, value in rows]
    lines.append(f"  {'-' * 46}")
    parts = [
        ("SGD part", terms.sgd_part),
        ("upward part", terms.upward_part),
        ("downward part", terms.downward_part),
        ("total", terms.total),
    ]
    lines += [f"  {name:<32}{value:>14.6g}" for name, value in parts]
    for s in sandwiches:
        verdict = "holds" if s.holds else "VIOLATED"
        bounds_text = f"{float(s.lower):.6g} <= {float(s.middle):.6g} <= {float(s.upper):.6g}"
        lines.append(f"  sandwich {s.equation}: {bounds_text}  {verdict}")
    return "\n".join(lines)
