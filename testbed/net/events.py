"""The event log of a priced run: every transfer, barrier and aggregation round.

Rounds are stored as references to their timing arrays (cheap while pricing); rows are
built only when the log is read, as a list of :class:`Event` or a pandas DataFrame.

Bytes add up: ``size_bytes`` is set on transfer rows only (up/down), ``round_bytes`` on
aggregate rows only (the sum of that round's transfers), so summing either column over
a log gives the bytes moved; barrier rows carry neither (NaN).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .forest import Forest, TreeIndex
from .schedule import RoundTimes
from .topology import Topology

KINDS = ("up", "down", "barrier", "aggregate")
_UP, _DOWN, _BARRIER, _AGG = range(4)
_COLUMNS = ("t", "kind", "level", "node", "peer", "start_s", "end_s", "size_bytes", "round_bytes")
FRAME_COLUMNS = ("t", "kind", "level", "tier", "node", "peer", "start_s", "end_s", "size_bytes", "round_bytes")


class Event(NamedTuple):
    """One record of the event log. ``level`` is the level of the round's top server in
    the clock's tree and ``tier`` its name in the topology (``edge``, ``cloud``, ``level_2``).
    up/down: a transfer of ``size_bytes`` over ``node``'s hop to/from its aggregation parent ``peer``;
    barrier: server ``node`` from its first to its last participating child's arrival;
    aggregate: a whole round at top server ``node``, first send to last delivery, moving ``round_bytes``."""

    t: int
    kind: str
    level: int
    tier: str
    node: str
    peer: str
    start_s: float
    end_s: float
    size_bytes: float  # NaN except on up/down rows
    round_bytes: float  # NaN except on aggregate rows


class EventLog:
    """Per-round records; ``full=False`` keeps only one aggregate record per round."""

    def __init__(self, topo: Topology, idx: TreeIndex, model_bytes: float, *, full: bool = True):
        self._idx = idx
        self.model_bytes = model_bytes
        self.full = full
        # global node ids: servers by AggregationTree id, then workers
        pos = {name: i for i, name in enumerate(topo.server_nodes)}
        self._gid = [np.array([pos[nm] for nm in idx.level_nodes[d]], dtype=np.int64) for d in range(idx.M)]
        self._gid.append(len(topo.server_nodes) + np.arange(topo.n_workers, dtype=np.int64))
        self._names = list(topo.server_nodes) + list(topo.worker_nodes)
        self._tiers = list(topo.tiers)
        self._rounds: list[tuple] = []  # (t, forest, activity, RoundTimes)
        self._cache: list[Event] | None = None

    def append(self, t: int, forest: Forest, active: list, tm: RoundTimes) -> None:
        self._rounds.append((t, forest, active, tm))
        self._cache = None

    @property
    def events(self) -> list[Event]:
        """Round by round in iteration order; within a round: up transfers (workers
        first), barriers, down transfers (top first), then the aggregate record."""
        if self._cache is None:
            cols = self._columns()
            self._cache = [
                Event(int(t), KINDS[k], int(lv), self._tiers[lv], self._names[n], self._names[p] if p >= 0 else "", s, e, b, r)
                for t, k, lv, n, p, s, e, b, r in zip(*(cols[c].tolist() for c in _COLUMNS), strict=True)
            ]
        return self._cache

    def frame(self):
        """The log as a pandas DataFrame (columns as :class:`Event`'s fields)."""
        import pandas as pd  # only when asked for

        cols = self._columns()
        names = np.array(self._names + [""], dtype=object)
        frame = {c: cols[c] for c in _COLUMNS}
        frame["kind"] = np.array(KINDS, dtype=object)[cols["kind"]]
        frame["tier"] = np.array(self._tiers, dtype=object)[cols["level"]]
        frame["node"] = names[cols["node"]]
        frame["peer"] = names[cols["peer"]]  # -1 -> ""
        return pd.DataFrame({c: frame[c] for c in FRAME_COLUMNS})

    def _rows(self, t: int, forest: Forest, active: list, tm: RoundTimes) -> np.ndarray:
        """The forest's records, subtree by subtree (each in the order of :attr:`events`),
        with a last row holding the subtree's first worker (to order subtrees across forests)."""
        M, l = self._idx.M, forest.level
        size, none = self.model_bytes, np.nan
        blocks, roots = [], []

        def block(kind: int, d: int, sel: np.ndarray, start, end, size_b, round_b, peer: bool = True) -> None:
            rows = np.empty((len(_COLUMNS), len(sel)))  # filled row by row: scalars broadcast (hot path)
            rows[0], rows[1], rows[2] = t, kind, l
            rows[3] = self._gid[d][forest[d].nodes[sel]]
            rows[4] = self._gid[d - 1][forest[d - 1].nodes[forest[d].parent[sel]]] if peer else -1
            rows[5], rows[6], rows[7], rows[8] = start[sel], end[sel], size_b, round_b
            blocks.append(rows)
            roots.append(forest[d].root_of[sel])

        if self.full:
            for d in range(M, l, -1):
                block(_UP, d, np.flatnonzero(active[d]), tm.up_start[d], tm.up_end[d], size, none)
            for d in range(M - 1, l - 1, -1):
                sel = np.flatnonzero(active[d])
                block(_BARRIER, d, sel, tm.first_arrival[d], tm.barrier[d], none, none, peer=False)
            for d in range(l + 1, M + 1):
                block(_DOWN, d, np.arange(len(forest[d].nodes)), tm.down_start[d], tm.down_end[d], size, none)
        # one aggregate record per subtree: first send to last delivery, all bytes moved
        moved = np.zeros(len(forest.roots))
        for d in range(l + 1, M + 1):
            moved += np.bincount(forest[d].root_of, weights=active[d] + 1.0, minlength=len(moved))  # up + down
        first = np.fmin.reduceat(np.where(active[M], tm.up_start[M], np.nan), forest.worker_seg)
        last = np.maximum.reduceat(tm.down_end[M], forest.worker_seg)
        block(_AGG, l, np.arange(len(forest.roots)), first, last, none, size * moved, peer=False)
        order = np.argsort(np.concatenate(roots), kind="stable")
        rows = np.concatenate(blocks, axis=1)[:, order]
        first_worker = forest[M].nodes[forest.worker_seg][np.concatenate(roots)[order]]
        return np.concatenate([rows, first_worker[None].astype(float)])

    def _columns(self) -> dict[str, np.ndarray]:
        rows = [self._rows(*entry) for entry in self._rounds]
        data = np.concatenate(rows, axis=1) if rows else np.empty((len(_COLUMNS) + 1, 0))
        t, first_worker = data[0], data[-1]
        # forests of one iteration on different levels interleave left to right
        if np.any((np.diff(t) == 0) & (np.diff(first_worker) < 0)):
            data = data[:, np.lexsort((first_worker, t))]
        out = {c: data[i] for i, c in enumerate(_COLUMNS)}
        for c in ("t", "kind", "level", "node", "peer"):
            out[c] = out[c].astype(np.int64)
        return out
