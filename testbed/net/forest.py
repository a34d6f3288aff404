"""The aggregation tree as level-ordered index arrays, and the forests priced together.

:class:`TreeIndex` lays the tree out level by level (a node's children are contiguous in
the next level); :class:`Forest` holds the index arrays of the disjoint subtrees under
the top servers of one level that complete an averaging at the same iteration, so one
round of numpy (or one SimPy run) prices all of them (:mod:`testbed.net.schedule`).
"""

from __future__ import annotations

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
        M = self.M
        nodes: list = [None] * (M + 1)
        seg: list = [None] * (M + 1)
        pp: list = [None] * (M + 1)
        root_of: list = [None] * (M + 1)
        nodes[l] = np.sort(np.array([self.server_pos[s][1] for s in sids], dtype=np.int64))
        root_of[l] = np.arange(len(nodes[l]))
        for d in range(l + 1, M + 1):
            cs, parents = self.child_start[d], nodes[d - 1]
            counts = cs[parents + 1] - cs[parents]
            nodes[d] = concat_ranges(cs[parents], counts)
            seg[d - 1] = segment_starts(counts)
            pp[d] = np.repeat(np.arange(len(parents)), counts)
            root_of[d] = root_of[d - 1][pp[d]]
        hops: list = [None] * (M + 1)
        hops_down: list = [None] * (M + 1)
        hop_seg: list = [None] * (M + 1)
        share: list = [None] * (M + 1)
        for d in range(l + 1, M + 1):
            p = self.hop_ptr[d]
            if self.single_link:
                hops[d] = hops_down[d] = self.hop_links[d][nodes[d]]
            else:  # a hop crosses routers: CSR, and reversed within each hop for the way down
                counts = p[nodes[d] + 1] - p[nodes[d]]
                hops[d] = self.hop_links[d][concat_ranges(p[nodes[d]], counts)]
                hops_down[d] = self.hop_links[d][concat_ranges(p[nodes[d]], counts, reverse=True)]
                hop_seg[d] = segment_starts(counts)
            rel = np.full(len(self.level_nodes[d]), -1, dtype=np.int64)
            rel[nodes[d]] = np.arange(len(nodes[d]))
            keep = rel[self.share_pos[d]] >= 0
            share[d] = (rel[self.share_pos[d][keep]], self.share_link[d][keep])
        full = [None] * l + [np.ones(len(nodes[d]), dtype=bool) for d in range(l, M + 1)]
        links = np.unique(np.concatenate(hops[l + 1 :]))
        worker_seg = np.flatnonzero(np.diff(root_of[M], prepend=-1))
        spans = [None] * l + [_as_slice(nodes[d]) for d in range(l, M + 1)]
        return Forest(tuple(sorted(sids, key=lambda s: self.server_pos[s][1])), l, nodes, spans, seg,
                      pp, root_of, worker_seg, hops, hops_down, hop_seg, share, links, full)


def _as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """A slice when the positions are one contiguous run (numpy views are cheaper)."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


@dataclass(frozen=True)
class Forest:
    """Geometry of the disjoint subtrees under top servers on one level. Lists are indexed
    by level d (None above the top level); a node's position within its level's forest
    arrays is what ``seg``, ``pp`` and the round arrays refer to."""

    roots: tuple  # server ids of the top servers, left to right
    level: int
    nodes: list  # d >= level: the forest's nodes as positions in the whole level (sorted)
    spans: list  # d >= level: nodes[d] as a slice where contiguous (cheap views of per-node arrays)
    seg: list  # d < M: start of each node's children in the forest's level d + 1
    pp: list  # d > level: each node's parent in the forest's level d - 1
    root_of: list  # which root (0..K-1) each node is under
    worker_seg: np.ndarray  # start of each root's workers in the forest's level M
    hops: list  # d > level: the hop link ids of the level's nodes (bottom first)
    hops_down: list  # the same, top first within each hop (the order of a download)
    hop_seg: list  # start of each node's hop in hops[d]; None when every hop is one link
    share: list  # d > level: (node, shared link index) pairs, for solo_rates_fit
    links: np.ndarray  # every link inside the forest, sorted
    full: list  # all-True activity masks (everyone takes part)

    @property
    def workers(self) -> slice | np.ndarray:
        """The forest's workers (positions in level M), as a slice where contiguous."""
        return self.spans[-1]

    def hop(self, d: int, i: int, *, up: bool) -> np.ndarray:
        """Link ids of node i's hop at level d, in the direction of travel."""
        flat = self.hops[d] if up else self.hops_down[d]
        if self.hop_seg[d] is None:
            return flat[i : i + 1]
        seg = self.hop_seg[d]
        return flat[seg[i] : seg[i + 1] if i + 1 < len(seg) else len(flat)]
