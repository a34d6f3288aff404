"""Gradient divergences at one model, split by an aggregation tree; and the gradient noise.

Pure math on per-worker full gradients ``grads`` (numpy array or torch tensor
``[n_workers, dim]``, row j = worker j of the tree), after Wang et al.:

* global divergence (9):    sum_j p_j ||grad F_j - grad f||^2,
* upward divergence (7):    sum_s p_s ||grad f_s - grad f||^2 over the servers s of a level,
* downward divergence (8):  sum_{j in s} (p_j / p_s) ||grad F_j - grad f_s||^2 per server s,

where f = sum_j p_j F_j and f_s = sum_{j in s} (p_j / p_s) F_j with p_s = sum_{j in s} p_j.
With uniform weights p_j = 1/n (the default) these are exactly (1), (3), (7)-(9) (other
weights, e.g. by local data size, are our generalisation; (10) still holds exactly); for a
multi-level tree they are, level by level, the quantities of Lemma 3 (20)-(21) behind
A_1(l), A_2(l) in Theorem 3: every level is compared with the global f above and with the
workers below. Per level, the partition identity (10) reads
global = upward + sum_s p_s downward_s, for any positive weights; its residual is reported.

Also the noise sigma^2 of (6) from minibatch gradients, and the split of the global
divergence that Lemmas 1-3 predict under uniformly random equal-size grouping.
Everything is computed in float64 on the gradients' own device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

from testbed.tree import AggregationTree, NestedTree

Gradients = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class LevelDivergence:
    """Upward and downward divergences of one server level of the tree."""

    level: int  # tree level l (1 = the servers right below the cloud)
    server_ids: tuple[int, ...]  # AggregationTree server ids, left to right
    masses: tuple[float, ...]  # p_s per server: n_s/n with uniform weights
    upward: float  # (7); Lemma 3 (20) at level l
    downward: tuple[float, ...]  # (8) per server; Lemma 3 (21)
    downward_mean: float  # sum_s p_s downward_s: second term of (10), left side of (14)
    partition_residual: float  # |global - upward - downward_mean| / global, identity (10)


@dataclass(frozen=True)
class Divergences:
    """All divergences at one model. ``levels`` is empty for a one-level tree (local SGD)."""

    n_workers: int
    global_divergence: float  # (9)
    levels: tuple[LevelDivergence, ...]  # one per local-server level, top first

    @property
    def upward(self) -> float:
        """Two-level upward divergence (7); 0 for local SGD (N = 1, note after (9))."""
        return self.levels[0].upward if self.levels else 0.0

    @property
    def downward(self) -> tuple[float, ...]:
        """Two-level per-group downward divergences (8); (global,) for local SGD."""
        return self.levels[0].downward if self.levels else (self.global_divergence,)

    @property
    def partition_residual(self) -> float:
        """The worst relative residual of identity (10) over the levels."""
        return max((lv.partition_residual for lv in self.levels), default=0.0)

    def as_dict(self) -> dict[str, float]:
        """Flat metrics row: div_global, div_up_l{l}, div_down_l{l} (weighted mean),
        div_down_l{l}_g{k} (k-th server of level l, left to right), partition_residual_l{l}."""
        row = {"div_global": self.global_divergence}
        for lv in self.levels:
            row[f"div_up_l{lv.level}"] = lv.upward
            row[f"div_down_l{lv.level}"] = lv.downward_mean
            for k, value in enumerate(lv.downward):
                row[f"div_down_l{lv.level}_g{k}"] = value
            row[f"partition_residual_l{lv.level}"] = lv.partition_residual
        return row


def measure_divergences(
    grads: Gradients | Sequence[torch.Tensor],
    tree: AggregationTree | NestedTree,
    weights: Sequence[float] | Gradients | None = None,
) -> Divergences:
    """Global (9), upward (7) and downward (8) divergences of every server level, with (10).

    ``grads``: one full local gradient per worker, ``[n_workers, dim]`` or a list of
    ``[dim]`` tensors. ``tree``: an AggregationTree or a nested list of worker indices
    (``[[0, 1], [2, 3]]``; periods do not matter here). ``weights``: per-worker p_j > 0
    (normalised here), uniform if None.
    """
    g = _as_float64("grads", grads, ndim=2)
    tree = _as_tree(tree)
    if g.shape[0] != tree.n_workers:
        raise ValueError(
            f"grads has {g.shape[0]} rows but the tree has {tree.n_workers} workers; give one row per worker"
        )
    p = _weights(weights, tree.n_workers, g.device)
    grad_f = p @ g
    global_div = float(p @ _sq_dist(g, grad_f))
    levels = tuple(_level(g, p, grad_f, global_div, tree, l) for l in range(1, tree.n_levels))
    return Divergences(n_workers=tree.n_workers, global_divergence=global_div, levels=levels)


def _level(
    g: torch.Tensor, p: torch.Tensor, grad_f: torch.Tensor, global_div: float, tree: AggregationTree, level: int
) -> LevelDivergence:
    servers = tree.level(level)
    masses, ups, downs = [], [], []
    for s in servers:
        idx = torch.tensor(s.workers, device=g.device)
        p_s = p[idx]
        mass = p_s.sum()
        grad_fs = (p_s @ g[idx]) / mass
        masses.append(float(mass))
        ups.append(float(torch.sum((grad_fs - grad_f) ** 2)))
        downs.append(float(p_s @ _sq_dist(g[idx], grad_fs) / mass))
    upward = sum(m * u for m, u in zip(masses, ups))
    downward_mean = sum(m * d for m, d in zip(masses, downs))
    gap = abs(global_div - upward - downward_mean)
    return LevelDivergence(
        level=level,
        server_ids=tuple(s.id for s in servers),
        masses=tuple(masses),
        upward=upward,
        downward=tuple(downs),
        downward_mean=downward_mean,
        # relative where it can be: identical gradients make every divergence 0
        partition_residual=gap / global_div if global_div > 0 else gap,
    )


@dataclass(frozen=True)
class NoiseEstimate:
    """Estimate of E||g(w; zeta) - grad F_j(w)||^2, the quantity sigma^2 bounds in (6)."""

    per_worker: tuple[float, ...]
    n_minibatches: int  # minibatch gradients per worker
    reference: str  # "full gradient" (known grad F_j) or "sample mean" (estimated)

    @property
    def sigma2(self) -> float:
        """max over workers: (6) must hold for every j."""
        return max(self.per_worker)

    @property
    def sigma2_mean(self) -> float:
        return sum(self.per_worker) / len(self.per_worker)

    def as_dict(self) -> dict[str, float]:
        return {"sigma2": self.sigma2, "sigma2_mean": self.sigma2_mean}


def estimate_sigma2(
    minibatch_grads: Gradients | Sequence[torch.Tensor], full_grads: Gradients | Sequence[torch.Tensor] | None = None
) -> NoiseEstimate:
    """sigma^2 of (6) from K independent minibatch gradients per worker at the same model.

    ``minibatch_grads``: ``[n_workers, K, dim]`` (or ``[K, dim]`` for one worker). With
    ``full_grads`` (``[n_workers, dim]``) the estimate is mean_k ||g_k - grad F_j||^2
    (unbiased, K >= 1); without, the sample variance sum_k ||g_k - g_bar||^2 / (K - 1)
    (unbiased, K >= 2). Minibatches must be drawn independently at the same model.
    """
    mb = _as_float64("minibatch_grads", minibatch_grads, ndim=None)
    if mb.ndim == 2:
        mb = mb.unsqueeze(0)
    if mb.ndim != 3:
        raise ValueError(
            f"minibatch_grads must be [n_workers, K, dim] or [K, dim], got shape {tuple(mb.shape)}"
        )
    n_workers, K, _ = mb.shape
    if full_grads is not None:
        full = _as_float64("full_grads", full_grads, ndim=None).to(mb.device)
        full = full.reshape(1, -1) if full.ndim == 1 else full
        if full.shape != (n_workers, mb.shape[2]):
            raise ValueError(
                f"full_grads has shape {tuple(full.shape)}; expected [n_workers, dim] = [{n_workers}, {mb.shape[2]}]"
            )
        per_worker = torch.sum((mb - full[:, None, :]) ** 2, dim=2).mean(dim=1)
        reference = "full gradient"
    else:
        if K < 2:
            raise ValueError(
                f"minibatch_grads has K={K} minibatch(es) per worker; the sample variance needs K >= 2"
            )
        per_worker = torch.sum((mb - mb.mean(dim=1, keepdim=True)) ** 2, dim=2).sum(dim=1) / (K - 1)
        reference = "sample mean"
    return NoiseEstimate(tuple(float(v) for v in per_worker), n_minibatches=K, reference=reference)


# ------------------------------------------------------- random grouping (Lemmas 1-3)


@dataclass(frozen=True)
class RandomSplit:
    """Expected split of the global divergence under uniformly random equal grouping."""

    upward_share: float  # (n_l - 1)/(n - 1)
    upward: float  # (13); (20) at level l
    downward: float  # (14); (21) at level l


def expected_random_split(global_divergence: float, n_workers: int, n_servers: int) -> RandomSplit:
    """Lemma 1 (13), Lemma 2 (14), Lemma 3 (20)-(21): E_S of the upward / downward divergence.

    The lemmas state "<= (N-1)/(n-1) eps~^2" with eps~^2 the Assumption-2 bound; with
    ``global_divergence`` the divergence (9) at the same model they hold with equality
    (a group is a sample of n/N workers drawn without replacement, whose mean deviates by
    (N-1)/(n-1) times the population variance on average), and below it for any larger
    eps~^2. ``n_servers`` is N (two levels) or n_l (level l); it must divide n. (20) as
    printed multiplies eps~, not eps~^2: a typo, as (13), (21) and (22) all use eps~^2.
    """
    if n_workers < 1 or n_servers < 1 or n_workers % n_servers:
        raise ValueError(
            f"n_servers={n_servers} must divide n_workers={n_workers} (equal-size random groups, both >= 1)"
        )
    if global_divergence < 0:
        raise ValueError(f"global_divergence must be >= 0, got {global_divergence}")
    share = 0.0 if n_workers == 1 else (n_servers - 1) / (n_workers - 1)
    return RandomSplit(share, share * global_divergence, (1 - share) * global_divergence)


def random_equal_tree(branching: Sequence[int], rng: np.random.Generator) -> list:
    """A uniformly random tree of shape (N_1, ..., N_M): the grouping S of Theorems 2-3.

    n = N_1 ... N_M workers are shuffled and dealt out left to right; ``(2, 3)`` gives two
    groups of three, ``(4,)`` one cloud over four workers.
    """
    if not branching or any(int(b) != b or b < 1 for b in branching):
        raise ValueError(f"branching must be a non-empty list of integers >= 1, got {list(branching)!r}")
    workers = [int(w) for w in rng.permutation(int(np.prod(branching)))]
    return _deal(workers, [int(b) for b in branching])


def _deal(workers: list[int], branching: list[int]) -> list:
    if len(branching) == 1:
        return workers
    size = len(workers) // branching[0]
    return [_deal(workers[k * size : (k + 1) * size], branching[1:]) for k in range(branching[0])]


# ---------------------------------------------------------------------------- helpers


def _as_float64(name: str, x: Gradients | Sequence[torch.Tensor], ndim: int | None) -> torch.Tensor:
    if torch.is_tensor(x):
        t = x.detach()
    elif isinstance(x, Sequence) and x and all(torch.is_tensor(row) for row in x):
        t = torch.stack([row.detach() for row in x])  # one tensor per worker, e.g. flattened grads
    else:
        t = torch.as_tensor(np.asarray(x))
    t = t.to(torch.float64)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions ([n_workers, dim]), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def _as_tree(tree: AggregationTree | NestedTree) -> AggregationTree:
    if isinstance(tree, AggregationTree):
        return tree
    depth, node = 0, tree
    while isinstance(node, Sequence) and not isinstance(node, str) and len(node):
        depth, node = depth + 1, node[0]
    return AggregationTree(tree, [1] * max(depth, 1))  # periods are irrelevant to divergences


def _weights(weights: Sequence[float] | Gradients | None, n_workers: int, device: torch.device) -> torch.Tensor:
    if weights is None:
        return torch.full((n_workers,), 1.0 / n_workers, dtype=torch.float64, device=device)
    w = _as_float64("weights", weights, ndim=1).to(device)
    if w.shape[0] != n_workers:
        raise ValueError(f"weights has {w.shape[0]} entries but there are {n_workers} workers")
    if bool((w <= 0).any()):
        raise ValueError(f"weights must all be > 0 (p_j of f = sum_j p_j F_j), got {w.tolist()}")
    return w / w.sum()


def _sq_dist(rows: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """||row - center||^2 per row."""
    return torch.sum((rows - center) ** 2, dim=1)
