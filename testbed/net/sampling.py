"""Samplers that turn a trace into a stream of values, each with its own generator.

Both samplers produce a sequence that depends only on the trace and the generator, never
on how the draws are chunked: ``draw(3)`` gives the same values as three ``draw(1)``.
That lets :class:`SamplerBank` draw the next value of many samplers in one numpy call
(one per link of a 1000-worker topology) and still match what each sampler alone
would have produced.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from .traces import Trace

BOOTSTRAP_BLOCK = 256  # indices drawn per refill; fixed so sequences are reproducible


class Sampler(Protocol):
    trace: Trace

    def draw(self, k: int = 1) -> np.ndarray: ...


class ReplaySampler:
    """Replays the trace in order from a random offset, wrapping around at the end."""

    def __init__(self, trace: Trace, rng: np.random.Generator):
        self.trace = trace
        self._values = trace.values
        # the only random choice: where in the recording this link starts
        self.offset = int(rng.integers(len(trace)))
        self._pos = self.offset

    def draw(self, k: int = 1) -> np.ndarray:
        """The next ``k`` values."""
        n = len(self._values)
        idx = (self._pos + np.arange(k)) % n
        self._pos = (self._pos + k) % n
        return self._values[idx]

    def __call__(self) -> float:
        """The next value (ns.py-style delay function)."""
        return float(self.draw(1)[0])


class BootstrapSampler:
    """Draws values uniformly with replacement (an i.i.d. bootstrap of the trace)."""

    def __init__(self, trace: Trace, rng: np.random.Generator):
        self.trace = trace
        self._values = trace.values
        self._rng = rng
        self._buf = np.empty(0, dtype=np.int64)
        self._cursor = 0

    def _refill(self) -> None:
        # whole blocks, so the index stream does not depend on how draws are chunked
        self._buf = self._rng.integers(0, len(self._values), size=BOOTSTRAP_BLOCK)
        self._cursor = 0

    def draw(self, k: int = 1) -> np.ndarray:
        """The next ``k`` values."""
        out = np.empty(k)
        done = 0
        while done < k:
            if self._cursor >= len(self._buf):
                self._refill()
            take = min(k - done, len(self._buf) - self._cursor)
            out[done : done + take] = self._values[self._buf[self._cursor : self._cursor + take]]
            self._cursor += take
            done += take
        return out

    def __call__(self) -> float:
        return float(self.draw(1)[0])


SAMPLERS = {"replay": ReplaySampler, "bootstrap": BootstrapSampler}


def make_sampler(kind: str, trace: Trace, rng: np.random.Generator) -> ReplaySampler | BootstrapSampler:
    """``kind`` is 'replay' or 'bootstrap'."""
    try:
        return SAMPLERS[kind](trace, rng)
    except KeyError:
        raise ValueError(f"sampling must be one of {sorted(SAMPLERS)}, got {kind!r}") from None


class SamplerBank:
    """Many samplers of one kind drawn together. The bank takes over the samplers: after
    construction draw only through the bank. Values are identical to per-sampler draws."""

    def __init__(self, samplers: Sequence[ReplaySampler | BootstrapSampler]):
        kinds = {type(s) for s in samplers}
        if len(kinds) > 1:
            raise ValueError("a SamplerBank holds samplers of one kind (all replay or all bootstrap)")
        self._samplers = list(samplers)
        self.size = len(samplers)
        self._replay = kinds == {ReplaySampler} or not samplers
        lengths = np.array([len(s.trace) for s in samplers], dtype=np.int64)
        self._len = lengths
        self._base = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if samplers else lengths
        self._values = np.concatenate([s.trace.values for s in samplers]) if samplers else np.empty(0)
        if self._replay:
            self._pos = np.array([s._pos for s in samplers], dtype=np.int64)
        else:
            self._buf = np.zeros((self.size, BOOTSTRAP_BLOCK), dtype=np.int64)
            self._cursor = np.full(self.size, BOOTSTRAP_BLOCK, dtype=np.int64)
            for m, s in enumerate(samplers):
                if s._cursor < len(s._buf):  # carry over a partly used block
                    rest = s._buf[s._cursor :]
                    self._buf[m, BOOTSTRAP_BLOCK - len(rest) :] = rest
                    self._cursor[m] = BOOTSTRAP_BLOCK - len(rest)

    def draw(self, members: np.ndarray, *, unique: bool = False) -> np.ndarray:
        """One value per entry of ``members`` (sampler indices). A member listed twice
        gets its next two values, in array order. ``unique=True`` promises no repeats."""
        members = np.asarray(members, dtype=np.int64)
        if unique or len(members) <= 1:
            return self._draw_unique(members)
        order = np.argsort(members, kind="stable")
        sm = members[order]
        start = np.ones(len(sm), dtype=bool)
        start[1:] = sm[1:] != sm[:-1]
        first = np.maximum.accumulate(np.where(start, np.arange(len(sm)), 0))
        rank = np.empty(len(sm), dtype=np.int64)
        rank[order] = np.arange(len(sm)) - first
        out = np.empty(len(members))
        for r in range(int(rank.max()) + 1):  # the r-th draw of each repeated member
            sel = np.flatnonzero(rank == r)
            out[sel] = self._draw_unique(members[sel])
        return out

    def _draw_unique(self, m: np.ndarray) -> np.ndarray:
        if self._replay:
            pos = self._pos[m]
            self._pos[m] = (pos + 1) % self._len[m]
            return self._values[self._base[m] + pos]
        cur = self._cursor[m]
        for j in np.flatnonzero(cur >= BOOTSTRAP_BLOCK):
            k = int(m[j])
            s = self._samplers[k]
            self._buf[k] = s._rng.integers(0, len(s._values), size=BOOTSTRAP_BLOCK)
            cur[j] = 0
        self._cursor[m] = cur + 1
        return self._values[self._base[m] + self._buf[m, cur]]


def spawn_generators(seed_seq: np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    """``n`` independent generators, the i-th always from the i-th spawned child."""
    return [np.random.default_rng(s) for s in seed_seq.spawn(n)]
