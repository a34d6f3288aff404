"""The aggregation tree as level-ordered index arrays, and the forests priced together.

:class:`TreeIndex` lays the tree out level by level (a node's children are contiguous in
the next level); :class:`Forest` holds the index arrays of the disjoint subtrees under
the top servers of one level that complete an averaging at the same iteration, so one
round of numpy (or one SimPy run) prices all of them (:mod:`testbed.net.schedule`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .topology import Topology


def concat_ranges(starts: np.ndarray, counts: np.ndarray, *, reverse: bool = False) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without a
    Python loop; ``reverse``: each range backwards."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    if reverse:
        return np.repeat(starts + ends - 1, counts) - np.arange(total)
    return np.repeat(starts - ends + counts, counts) + np.arange(total)


def segment_starts(counts: np.ndarray) -> np.ndarray:
    """Segment starts of consecutive segments of the given lengths."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


class TreeIndex:
    """Level-ordered arrays of the aggregation tree. Level d < M holds servers (left to
    right), level M the workers; a node's children are contiguous in the next level."""

    def __init__(self, topo: Topology):
        tree = topo.tree
        self.M = M = tree.n_levels
        self.n_workers = tree.n_workers
        self.level_nodes: list[list[str]] = []
        self.server_pos: dict[int, tuple[int, int]] = {}
        for d in range(M):
            servers = tree.level(d)
            self.level_nodes.append([topo.server_nodes[s.id] for s in servers])
            for pos, s in enumerate(servers):
                self.server_pos[s.id] = (d, pos)
        self.level_nodes.append(list(topo.worker_nodes))
        pos_of = [{n: i for i, n in enumerate(nodes)} for nodes in self.level_nodes]
        self.child_start: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        for d in range(1, M + 1):
            pp = np.array([pos_of[d - 1][topo.agg_parent[n]] for n in self.level_nodes[d]], dtype=np.int64)
            if np.any(np.diff(pp) < 0):
                raise AssertionError("children must be contiguous in level order")
            counts = np.bincount(pp, minlength=len(self.level_nodes[d - 1]))
            self.child_start.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        # hops: uplink links of each node, bottom first, as CSR per level
        self.hop_ptr: list[np.ndarray] = [np.zeros(2, dtype=np.int64)]
        self.hop_links: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        uses = np.zeros(len(topo.links), dtype=np.int64)
        for d in range(1, M + 1):
            ups = [topo.uplink(n) for n in self.level_nodes[d]]
            self.hop_ptr.append(np.concatenate([[0], np.cumsum([len(u) for u in ups])]).astype(np.int64))
            flat = np.array([l for u in ups for l in u], dtype=np.int64)
            self.hop_links.append(flat)
            np.add.at(uses, flat, 1)
        self.single_link = all(np.all(np.diff(p) == 1) for p in self.hop_ptr[1:])
        # links crossed by two or more hops (behind a router); all their users are siblings
        self.shared_links = np.flatnonzero(uses > 1)
        self.links_shared = bool(len(self.shared_links))
        compact = np.full(len(uses), -1, dtype=np.int64)
        compact[self.shared_links] = np.arange(len(self.shared_links))
        # per level: (node position, shared link index) pairs, sorted by position
        self.share_pos: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        self.share_link: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        for d in range(1, M + 1):
            pos = np.repeat(np.arange(len(self.level_nodes[d])), np.diff(self.hop_ptr[d]))
            keep = compact[self.hop_links[d]] >= 0
            self.share_pos.append(pos[keep])
            self.share_link.append(compact[self.hop_links[d]][keep])

    def forest(self, sids: Sequence[int]) -> "Forest":
        """Index arrays of the subtrees of servers ``sids`` (one level, disjoint), left to right."""
        levels = {self.server_pos[s][0] for s in sids}
        if len(levels) != 1:
            raise ValueError(f"a forest's top servers must share one level, got servers {list(sids)}")
        (l,) = levels
        nodes = np.sort(np.array([self.server_pos[s][1] for s in sids], dtype=np.int64))
        root_of = np.arange(len(nodes))
        built: list[ForestLevel] = []
        for d in range(l, self.M + 1):
            parent = hops = hops_down = hop_seg = share = None
            if d > l:
                cs, parents = self.child_start[d], nodes
                counts = cs[parents + 1] - cs[parents]
                nodes = concat_ranges(cs[parents], counts)
                built[-1] = dataclasses.replace(built[-1], children=segment_starts(counts))
                parent = np.repeat(np.arange(len(parents)), counts)
                root_of = root_of[parent]
                hops, hops_down, hop_seg, share = self._hops(d, nodes)
            built.append(ForestLevel(nodes, _as_slice(nodes), root_of, np.ones(len(nodes), dtype=bool), None, parent,
                                     hops, hops_down, hop_seg, share))
        links = np.unique(np.concatenate([lv.hops for lv in built[1:]]))
        worker_seg = np.flatnonzero(np.diff(root_of, prepend=-1))
        return Forest(tuple(sorted(sids, key=lambda s: self.server_pos[s][1])), l, tuple(built), worker_seg, links)

    def _hops(self, d: int, nodes: np.ndarray) -> tuple:
        """The hop links of level d's ``nodes`` (up and down order, CSR starts or None) and
        their (node, shared link index) pairs."""
        p = self.hop_ptr[d]
        hop_seg = None
        if self.single_link:
            hops = hops_down = self.hop_links[d][nodes]
        else:  # a hop crosses routers: CSR, and reversed within each hop for the way down
            counts = p[nodes + 1] - p[nodes]
            hops = self.hop_links[d][concat_ranges(p[nodes], counts)]
            hops_down = self.hop_links[d][concat_ranges(p[nodes], counts, reverse=True)]
            hop_seg = segment_starts(counts)
        rel = np.full(len(self.level_nodes[d]), -1, dtype=np.int64)
        rel[nodes] = np.arange(len(nodes))
        keep = rel[self.share_pos[d]] >= 0
        return hops, hops_down, hop_seg, (rel[self.share_pos[d][keep]], self.share_link[d][keep])


def _as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """A slice when the positions are one contiguous run (numpy views are cheaper)."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


@dataclass(frozen=True)
class ForestLevel:
    """One level d of a forest (d from the top servers' level down to the workers). A node's
    position within these arrays is what the round arrays of level d refer to."""

    nodes: np.ndarray  # the forest's nodes as positions in the whole level (sorted)
    span: slice | np.ndarray  # nodes as a slice where contiguous (cheap views of per-node arrays)
    root_of: np.ndarray  # which root (0..K-1) each node is under
    everyone: np.ndarray  # all True: the activity of the level when everyone takes part
    children: np.ndarray | None  # start of each node's children in level d + 1 (None for the workers)
    parent: np.ndarray | None  # each node's parent in level d - 1 (None at the top)
    hops: np.ndarray | None  # the hop link ids of the nodes, bottom first (None at the top)
    hops_down: np.ndarray | None  # the same, top first within each hop (the order of a download)
    hop_seg: np.ndarray | None  # start of each node's hop in hops; None when every hop is one link
    share: tuple[np.ndarray, np.ndarray] | None  # (node, shared link index) pairs, for solo_rates_fit


@dataclass(frozen=True)
class Forest:
    """Geometry of the disjoint subtrees under top servers on one level: ``forest[d]`` is
    level d's :class:`ForestLevel`, for d from ``level`` down to the workers."""

    roots: tuple  # server ids of the top servers, left to right
    level: int
    levels: tuple[ForestLevel, ...]  # levels[d - level]
    worker_seg: np.ndarray  # start of each root's workers in the forest's worker level
    links: np.ndarray  # every link inside the forest, sorted

    def __getitem__(self, d: int) -> ForestLevel:
        if d < self.level:
            raise IndexError(f"level {d} is above the forest's top level {self.level}")
        return self.levels[d - self.level]

    @property
    def workers(self) -> slice | np.ndarray:
        """The forest's workers (positions in level M), as a slice where contiguous."""
        return self.levels[-1].span

    def hop(self, d: int, i: int, *, up: bool) -> np.ndarray:
        """Link ids of node i's hop at level d, in the direction of travel."""
        level = self[d]
        flat = level.hops if up else level.hops_down
        if level.hop_seg is None:
            return flat[i : i + 1]
        seg = level.hop_seg
        return flat[seg[i] : seg[i + 1] if i + 1 < len(seg) else len(flat)]
