"""Weighted segment means over the worker dimension of stacked tensors, in place.

An aggregation replaces every member of a segment (a server's subtree) by the segment's
weighted average. The weights and segments come from :mod:`testbed.engine.aggregation`;
this module only moves the bytes, and picks the kernels by what is fast on the device:

* reduce: with few segments, one GEMM ``[segments, n] @ [n, numel]`` (reads the stack
  once at GEMM speed; the CPU's ``index_add_`` walks it row by row, ~3x slower on
  femnist_cnn's 32 x 6.6M weights); with many, ``index_add_``;
* write back: for large per-worker tensors, one broadcast copy per run of consecutive
  workers in the same segment (workers are numbered depth-first, so a subtree is
  usually one run); ``index_select`` into the stack costs ~4x more there (measured:
  244 ms vs 64 ms for 32 x 6.6M floats on the 2-core CPU); for small tensors, one
  ``index_select``/``index_put``, which beats a Python loop over runs.
"""

from __future__ import annotations

import numpy as np
import torch

_GEMM_SEGMENTS = 16  # beyond this the GEMM's mostly-zero weight matrix costs more than it saves
_RUN_COPY_NUMEL = 1 << 16  # per-worker elements from which copying run by run pays off


class Segments:
    """The averages of one plan, prepared once and applied to every tensor.

    ``segment[j]``: index of the average worker j receives (-1: untouched);
    ``weight[j]``: j's weight in it (0 for members that only receive)."""

    def __init__(self, segment: np.ndarray, weight: np.ndarray, n_segments: int, device: torch.device):
        self.n_segments = n_segments
        self.n = len(segment)
        members = np.flatnonzero(segment >= 0)
        self.covers_all = len(members) == self.n
        self.members = None if self.covers_all else torch.as_tensor(members, device=device)
        self.segment = torch.as_tensor(segment[members], device=device)  # per member
        self._weight = weight[members]
        # runs of consecutive members with the same segment: [start, stop, segment]
        self.runs: list[list[int]] = []
        for j, k in enumerate(segment.tolist()):
            if k >= 0 and self.runs and self.runs[-1][1] == j and self.runs[-1][2] == k:
                self.runs[-1][1] = j + 1
            elif k >= 0:
                self.runs.append([j, j + 1, k])
        self._dense: dict[torch.dtype, torch.Tensor] = {}
        self._device = device

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The segment averages [n_segments, ...] of ``t`` [n, ...]. Integer tensors (e.g.
        BatchNorm's num_batches_tracked) take the max, which averaging would not keep integral."""
        with torch.no_grad():
            if t.is_floating_point() and self.n_segments <= _GEMM_SEGMENTS:  # non-members: weight 0
                return torch.mm(self._dense_weights(t.dtype), t.reshape(self.n, -1)).view(self.n_segments, *t.shape[1:])
            src = t if self.members is None else t[self.members]
            out = torch.zeros((self.n_segments, *t.shape[1:]), dtype=t.dtype, device=t.device)
            if not t.is_floating_point():
                index = self.segment.view(-1, *[1] * (t.dim() - 1)).expand_as(src)
                return out.scatter_reduce_(0, index, src, "amax", include_self=False)
            w = torch.as_tensor(self._weight, dtype=t.dtype, device=t.device).view(-1, *[1] * (t.dim() - 1))
            return out.index_add_(0, self.segment, src * w)

    def average_(self, t: torch.Tensor) -> None:
        """Replace every member's slice of ``t`` by its segment's average."""
        self.write_(t, self.reduce(t))

    def write_(self, t: torch.Tensor, avg: torch.Tensor) -> None:
        """Replace every member's slice of ``t`` by its row of ``avg`` [n_segments, ...]
        (the averages, reduced here or across processes)."""
        with torch.no_grad():
            if t[0].numel() >= _RUN_COPY_NUMEL and t.is_contiguous():
                for a, b, k in self.runs:
                    t[a:b].copy_(avg[k].expand(b - a, *avg.shape[1:]))
            elif self.members is None:
                torch.index_select(avg, 0, self.segment, out=t)
            else:
                t[self.members] = avg[self.segment]

    def _dense_weights(self, dtype: torch.dtype) -> torch.Tensor:
        """[n_segments, n]: member j's weight in its segment's row, zero elsewhere."""
        if dtype not in self._dense:
            dense = torch.zeros((self.n_segments, self.n), dtype=dtype, device=self._device)
            cols = torch.arange(self.n, device=self._device) if self.members is None else self.members
            dense[self.segment, cols] = torch.as_tensor(self._weight, dtype=dtype, device=self._device)
            self._dense[dtype] = dense
        return self._dense[dtype]
