"""The aggregation tree: which worker sits under which server, and each server's period.

A tree is written as nested lists of worker indices; every list is a server:

    [0, 1, 2, 3]                 one server level (the cloud): local SGD
    [[0, 1], [2, 3, 4]]          two levels: cloud over two local servers (Algorithm 1)
    [[[0, 1], [2]], [[3, 4], [5]]]   three levels

Level 0 is the cloud; server levels run 0..M-1 and the workers sit below level M-1.
Every worker must sit at the same depth (a lone worker under a level is written ``[k]``).

Periods come one entry per server level, top first. An entry is an int (every server of
that level) or a list with one int per server of that level, left to right, which is how
the per-group periods I_i of Algorithm 1 are written: ``periods=[10, [2, 5]]``.
A server's period must be a multiple of each of its child servers' periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

NestedTree = Union[int, Sequence["NestedTree"]]
PeriodSpec = Sequence[Union[int, Sequence[int]]]


@dataclass(frozen=True)
class Server:
    """One aggregation point. ``id`` is its position in ``AggregationTree.servers`` (pre-order)."""

    id: int
    level: int
    period: int
    parent: int | None
    children: tuple[int, ...]  # child server ids; empty at the bottom server level
    workers: tuple[int, ...]  # every worker in the subtree, in tree order


class AggregationTree:
    """A validated aggregation tree with per-server periods."""

    def __init__(self, tree: NestedTree, periods: PeriodSpec):
        if isinstance(tree, int) or not isinstance(tree, Sequence) or len(tree) == 0:
            raise ValueError(f"tree must be a non-empty (nested) list of worker indices, got {tree!r}")
        self.nested = _freeze(tree)
        self.n_levels = _depth(self.nested)
        _check_workers(self.nested)
        if not isinstance(periods, Sequence) or isinstance(periods, str):
            raise ValueError(f"periods must be a list with one entry per server level, got {periods!r}")
        if len(periods) != self.n_levels:
            raise ValueError(
                f"periods has {len(periods)} entries but the tree has {self.n_levels} server "
                f"level(s); give one period per level, top first (e.g. [G, I] for two levels)"
            )
        servers: list[Server] = []
        counters = [0] * self.n_levels  # position of the next server within its level

        def build(node: tuple, level: int, parent: int | None) -> int:
            sid = len(servers)
            servers.append(None)  # type: ignore[arg-type]  # placeholder keeps pre-order ids
            period = _period_for(periods, level, counters[level], self._level_size(level))
            counters[level] += 1
            children = tuple(build(c, level + 1, sid) for c in node) if level < self.n_levels - 1 else ()
            servers[sid] = Server(sid, level, period, parent, children, _leaves(node))
            return sid

        build(self.nested, 0, None)
        self.servers: tuple[Server, ...] = tuple(servers)
        self.n_workers = len(self.servers[0].workers)
        for s in self.servers:
            for c in s.children:
                child = self.servers[c]
                if s.period % child.period:
                    raise ValueError(
                        f"periods: level-{s.level} server {s.id} has period {s.period}, which is not "
                        f"a multiple of its level-{child.level} child server {child.id}'s period "
                        f"{child.period}; each period must be a multiple of the next level's"
                    )
        self._bottom = {w: s.id for s in self.servers if s.level == self.n_levels - 1 for w in s.workers}

    def _level_size(self, level: int) -> int:
        nodes = [self.nested]
        for _ in range(level):
            nodes = [c for n in nodes for c in n]
        return len(nodes)

    @property
    def periods(self) -> list[list[int]]:
        """Per level, the period of each server left to right."""
        return [[s.period for s in self.level(l)] for l in range(self.n_levels)]

    def level(self, l: int) -> list[Server]:
        return [s for s in self.servers if s.level == l]

    def bottom_server(self, worker: int) -> Server:
        """The lowest-level server a worker belongs to."""
        return self.servers[self._bottom[worker]]

    def ancestors(self, worker: int) -> list[Server]:
        """The servers above a worker, bottom first (ending at the cloud)."""
        out, s = [], self.bottom_server(worker)
        while True:
            out.append(s)
            if s.parent is None:
                return out
            s = self.servers[s.parent]

    def aggregating(self, t: int) -> list[Server]:
        """Servers whose period divides t (t = number of completed local iterations, >= 1)."""
        return [s for s in self.servers if t % s.period == 0]

    def top_aggregating(self, t: int) -> list[Server]:
        """The aggregating servers whose parent does not aggregate at t: their averages
        are what the workers end up holding. Children of an aggregating server always
        aggregate too (periods are multiples), so these subtrees are disjoint."""
        return [s for s in self.aggregating(t) if s.parent is None or t % self.servers[s.parent].period]

    def as_nested(self) -> list:
        """The tree as nested lists of worker indices: the form this class takes (and JSON holds)."""
        return _thaw(self.nested)

    def __repr__(self) -> str:
        return f"AggregationTree({self.as_nested()!r}, periods={self.periods!r})"


def _freeze(node: NestedTree) -> tuple | int:
    if isinstance(node, bool):
        raise ValueError(f"tree: worker index must be an int, got {node!r}")
    if isinstance(node, int):
        return node
    if hasattr(node, "__index__") and not isinstance(node, Sequence):  # numpy ints
        return int(node)
    if isinstance(node, Sequence) and not isinstance(node, str):
        if len(node) == 0:
            raise ValueError("tree: empty group; every server needs at least one worker")
        return tuple(_freeze(c) for c in node)
    raise ValueError(f"tree: expected a worker index or a list, got {node!r}")


def _thaw(node):
    return node if isinstance(node, int) else [_thaw(c) for c in node]


def _depth(node) -> int:
    if isinstance(node, int):
        return 0
    depths = {_depth(c) for c in node}
    if len(depths) > 1:
        raise ValueError(
            "tree: every worker must sit at the same depth; wrap a lone worker k as [k] "
            f"to give it a server of its own (got mixed depths in {_thaw(node)!r})"
        )
    return 1 + depths.pop()


def _leaves(node) -> tuple[int, ...]:
    return (node,) if isinstance(node, int) else tuple(w for c in node for w in _leaves(c))


def _check_workers(tree) -> None:
    workers = _leaves(tree)
    if any(w < 0 for w in workers):
        raise ValueError(f"tree: worker indices must be >= 0, got {sorted(w for w in workers if w < 0)}")
    seen: set[int] = set()
    dup = sorted({w for w in workers if w in seen or seen.add(w)})
    if dup:
        raise ValueError(f"tree: duplicate worker index(es) {dup}; each worker appears exactly once")
    missing = sorted(set(range(len(workers))) - seen)
    if missing:
        raise ValueError(
            f"tree: worker indices must be 0..{len(workers) - 1} without gaps; missing {missing}"
        )


def _period_for(periods: PeriodSpec, level: int, position: int, level_size: int) -> int:
    entry = periods[level]
    if isinstance(entry, Sequence) and not isinstance(entry, str):
        if len(entry) != level_size:
            raise ValueError(
                f"periods[{level}] lists {len(entry)} periods but level {level} has {level_size} servers"
            )
        entry = entry[position]
    if isinstance(entry, bool) or not isinstance(entry, int) and not hasattr(entry, "__index__"):
        raise ValueError(f"periods[{level}]: a period must be an int, got {entry!r}")
    if int(entry) < 1:
        raise ValueError(f"periods[{level}]: a period must be >= 1 local iteration, got {entry}")
    return int(entry)
