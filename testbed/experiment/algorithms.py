"""Algorithm specs: which servers of the topology aggregate, and how often.

Every algorithm is multi-level H-SGD over a subset of the topology's server levels; the
servers of the levels left out only relay traffic. So local SGD on a three-level
topology sends every worker's model through the edge and regional servers to the cloud,
while H-SGD averages at the edge first and sends one model per group up.

    local:P            local SGD: only the cloud aggregates, every P iterations
    hsgd               the topology's own periods at every level
    hsgd:P1,P2,P3      one period per topology server level, top first
    hsgd:G,I@0,2       the cloud (level 0) every G and level-2 servers every I
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from testbed.net.rules import MAX_PERIOD
from testbed.tree import AggregationTree


@dataclass(frozen=True)
class Algorithm:
    """One algorithm resolved on a topology."""

    spec: str  # as the user wrote it
    label: str  # for the report
    tree: AggregationTree  # the algorithm's aggregation tree over the topology's workers
    server_topology_ids: tuple[int, ...]  # algorithm server id -> the topology tree's server id
    same_schedule_as: str | None = None  # spec of an earlier algorithm with this very schedule: trained once

    @property
    def global_period(self) -> int:
        return self.tree.servers[0].period

    @property
    def is_local_sgd(self) -> bool:
        return self.tree.n_levels == 1


USAGE = "use auto, local:P, hsgd, hsgd:P1,P2,... or hsgd:G,I@0,2"


@dataclass(frozen=True)
class Spec:
    """The syntax of one algorithm spec; whether it fits a topology is :func:`resolve`'s to say."""

    name: str  # 'auto', 'local' or 'hsgd'
    periods: tuple[int, ...] = ()  # (): the topology's own
    levels: tuple[int, ...] = ()  # topology server levels; (): the top len(periods) (local SGD: the cloud)


def parse_spec(spec: str) -> Spec:
    """Parse one spec; raises ValueError naming the spec and the rule."""
    text = spec.strip()
    if text in ("auto", "hsgd"):
        return Spec(text)
    name, sep, arg = text.partition(":")
    if name not in ("local", "hsgd") or not sep:
        raise ValueError(f"algorithms: {spec!r} is not an algorithm spec; {USAGE}")
    period_text, at, level_text = arg.partition("@")
    periods = _spec_ints(spec, "periods", period_text, 1, MAX_PERIOD)
    if name == "local" and (at or len(periods) != 1):
        raise ValueError(f"algorithms: {spec!r}: local SGD takes one period, local:P")
    levels = _spec_ints(spec, "levels", level_text, 0, 99) if at else ()
    return Spec(name, periods, (0,) if name == "local" else levels)


def _spec_ints(spec: str, what: str, text: str, low: int, high: int) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() and len(p) < 12 and low <= int(p) <= high for p in parts):
        raise ValueError(
            f"algorithms: {spec!r}: {what} must be comma-separated integers from {low} to {high:_}, "
            f"got {text!r}; {USAGE}"
        )
    return tuple(int(p) for p in parts)


def resolve(spec: str, topology_tree: AggregationTree) -> Algorithm:
    """Parse one spec against the topology's aggregation tree."""
    parsed = parse_spec(spec)
    levels_total = topology_tree.n_levels
    if parsed.name == "local":
        return _collapse(spec, f"local SGD P={parsed.periods[0]}", topology_tree, (0,), list(parsed.periods))
    if parsed.name == "auto":
        raise ValueError(f"algorithm {spec!r}: 'auto' names several algorithms; resolve_all expands it")
    if not parsed.periods:
        keep = tuple(range(levels_total))
        return _collapse(spec, "H-SGD " + _label_periods(topology_tree.periods), topology_tree, keep, None)
    periods = list(parsed.periods)
    keep = parsed.levels or tuple(range(len(periods)))
    if len(keep) != len(periods):
        raise ValueError(f"algorithm {spec!r}: {len(periods)} periods for {len(keep)} levels")
    if keep[0] != 0 or list(keep) != sorted(set(keep)) or keep[-1] >= levels_total:
        raise ValueError(
            f"algorithm {spec!r}: levels must start at 0 (the cloud), increase, and be < {levels_total} "
            f"(the topology's server levels)"
        )
    where = "" if keep == tuple(range(levels_total)) else " @ levels " + ",".join(map(str, keep))
    return _collapse(spec, f"H-SGD ({','.join(map(str, periods))}){where}", topology_tree, keep, periods)


def spec_levels(spec: str, n_levels: int) -> tuple[int, ...]:
    """The topology server levels a spec aggregates at, given how many levels the
    algorithm has: ``local:P`` the cloud, ``...@0,2`` the listed ones, else the top ``n_levels``."""
    return parse_spec(spec).levels or tuple(range(n_levels))


def default_specs(topology_tree: AggregationTree) -> list[str]:
    """The comparison an experiment makes by default: the topology's H-SGD, local SGD with
    its finest and coarsest period (the paper's sandwich) and its two-level variants."""
    per_level = [max(p) for p in topology_tree.periods]
    finest, coarsest = min(min(p) for p in topology_tree.periods), per_level[0]
    specs = ["hsgd", f"local:{finest}", f"local:{coarsest}"]
    if topology_tree.n_levels > 2:
        specs += [f"hsgd:{coarsest},{per_level[l]}@0,{l}" for l in range(1, topology_tree.n_levels)]
    return list(dict.fromkeys(specs))


def resolve_all(specs: tuple[str, ...], topology_tree: AggregationTree) -> list[Algorithm]:
    expanded = [s for spec in specs for s in (default_specs(topology_tree) if spec == "auto" else [spec])]
    algorithms = [resolve(s, topology_tree) for s in dict.fromkeys(expanded)]
    labels = [a.label for a in algorithms]
    if len(set(labels)) != len(labels):
        raise ValueError(f"algorithms: two specs describe the same algorithm ({labels})")
    return _mark_same_schedules(algorithms)


def _mark_same_schedules(algorithms: list[Algorithm]) -> list[Algorithm]:
    """Two algorithms that aggregate the same workers at the same servers with the same
    periods (on star: H-SGD (10) and local SGD P=10) train and price identically: the
    later one is trained once, as the earlier, and says so in its label."""
    first: dict[str, Algorithm] = {}
    marked = []
    for a in algorithms:
        key = repr((a.tree.as_nested(), a.tree.periods, a.server_topology_ids))
        twin = first.setdefault(key, a)
        if twin is not a:
            a = dataclasses.replace(a, label=f"{a.label} (same schedule as {twin.label})", same_schedule_as=twin.spec)
        marked.append(a)
    return marked


def describe_algorithms(algorithms: list[Algorithm], topology) -> list[dict[str, Any]]:
    """config.json's record of each algorithm as resolved on the topology."""
    return [
        {
            "spec": a.spec, "label": a.label, "tree": a.tree.as_nested(), "periods": a.tree.periods,
            "server_nodes": [topology.server_nodes[i] for i in a.server_topology_ids],
            "is_local_sgd": a.is_local_sgd, "global_period": a.global_period, "same_schedule_as": a.same_schedule_as,
        }
        for a in algorithms
    ]


def _collapse(spec: str, label: str, tree: AggregationTree, keep: tuple[int, ...], periods: list[int] | None) -> Algorithm:
    """Drop the server levels not in ``keep``: their children join the nearest kept ancestor."""

    def items(server_id: int) -> list:
        s = tree.servers[server_id]
        inner = [x for c in s.children for x in items(c)] if s.children else list(s.workers)
        return [inner] if s.level in keep else inner

    nested = items(0)[0]
    kept = [s for s in tree.servers if s.level in keep]
    if periods is None:
        period_spec = [[s.period for s in kept if s.level == l] for l in keep]
    else:
        period_spec = list(periods)
    try:
        algo_tree = AggregationTree(nested, period_spec)
    except ValueError as err:
        raise ValueError(f"algorithm {spec!r}: {err}") from None
    return Algorithm(spec, label, algo_tree, tuple(s.id for s in kept))


def _label_periods(periods: list[list[int]]) -> str:
    return "(" + ",".join(str(p[0]) if len(set(p)) == 1 else "/".join(map(str, p)) for p in periods) + ")"
