"""The event log of a priced run: every transfer, barrier and aggregation round.

Rounds are stored as references to their timing arrays (cheap while pricing); rows are
built only when the log is read, as a list of :class:`Event` or a pandas DataFrame.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .schedule import RoundTimes, Subtree, TreeIndex
from .topology import Topology

KINDS = ("up", "down", "barrier", "aggregate")
_UP, _DOWN, _BARRIER, _AGG = range(4)
_COLUMNS = ("t", "kind", "level", "node", "peer", "start_s", "end_s", "size_bytes")


class Event(NamedTuple):
    """One record of the event log. ``level`` is the level of the round's top server.
    up/down: a transfer over ``node``'s hop to/from its aggregation parent ``peer``;
    barrier: server ``node`` from its first to its last participating child's arrival;
    aggregate: a whole round at top server ``node``, first send to last delivery."""

    t: int
    kind: str
    level: int
    node: str
    peer: str
    start_s: float
    end_s: float
    size_bytes: float


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
        self._rounds: list[tuple] = []  # (t, subtree, activity, RoundTimes)
        self._cache: list[Event] | None = None

    def append(self, t: int, sub: Subtree, active: list, tm: RoundTimes) -> None:
        self._rounds.append((t, sub, active, tm))
        self._cache = None

    @property
    def events(self) -> list[Event]:
        """Round by round in iteration order; within a round: up transfers (workers
        first), barriers, down transfers (top first), then the aggregate record."""
        if self._cache is None:
            cols = self._columns()
            self._cache = [
                Event(int(t), KINDS[k], int(lv), self._names[n], self._names[p] if p >= 0 else "", s, e, b)
                for t, k, lv, n, p, s, e, b in zip(*(cols[c].tolist() for c in _COLUMNS), strict=True)
            ]
        return self._cache

    def frame(self):
        """The log as a pandas DataFrame (columns as :class:`Event`'s fields)."""
        import pandas as pd  # only when asked for

        cols = self._columns()
        names = np.array(self._names + [""], dtype=object)
        frame = {c: cols[c] for c in _COLUMNS}
        frame["kind"] = np.array(KINDS, dtype=object)[cols["kind"]]
        frame["node"] = names[cols["node"]]
        frame["peer"] = names[cols["peer"]]  # -1 -> ""
        return pd.DataFrame(frame)

    def _rows(self, t: int, sub: Subtree, active: list, tm: RoundTimes) -> np.ndarray:
        M, l, r = self._idx.M, sub.level, sub.ranges
        size = self.model_bytes
        blocks = []

        def block(kind: int, d: int, sel: np.ndarray, start, end, size_b, peer: bool = True) -> None:
            k = len(sel)
            node = self._gid[d][r[d][0] + sel]
            pp = self._gid[d - 1][r[d - 1][0] + sub.pp[d][sel]] if peer else np.full(k, -1)
            blocks.append(np.stack([np.full(k, t), np.full(k, kind), np.full(k, l), node, pp,
                                    start[sel], end[sel], np.broadcast_to(size_b, k)]))

        n_up = sum(int(active[d].sum()) for d in range(l + 1, M + 1))
        n_down = sum(r[d][1] - r[d][0] for d in range(l + 1, M + 1))
        if self.full:
            for d in range(M, l, -1):
                block(_UP, d, np.flatnonzero(active[d]), tm.up_start[d], tm.up_end[d], size)
            for d in range(M - 1, l - 1, -1):
                kids = np.add.reduceat(active[d + 1].astype(float), sub.seg[d])
                sel = np.flatnonzero(active[d])
                block(_BARRIER, d, sel, tm.first_arrival[d], tm.barrier[d], size * kids[sel], peer=False)
            for d in range(l + 1, M + 1):
                block(_DOWN, d, np.arange(r[d][1] - r[d][0]), tm.down_start[d], tm.down_end[d], size)
        on = active[M]
        agg = [t, _AGG, l, self._gid[l][r[l][0]], -1, float(np.min(tm.up_start[M][on])),
               float(np.max(tm.down_end[M])), size * (n_up + n_down)]
        blocks.append(np.array(agg, dtype=float)[:, None])
        return np.concatenate(blocks, axis=1)

    def _columns(self) -> dict[str, np.ndarray]:
        rows = [self._rows(*entry) for entry in self._rounds]
        data = np.concatenate(rows, axis=1) if rows else np.empty((len(_COLUMNS), 0))
        out = {c: data[i] for i, c in enumerate(_COLUMNS)}
        for c in ("t", "kind", "level", "node", "peer"):
            out[c] = out[c].astype(np.int64)
        return out


