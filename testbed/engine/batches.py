"""Worker data stacked on the device, and the minibatches every engine draws from it.

Both engines draw the same index blocks from the same generator, so their models can be
compared exactly. A minibatch is sampled i.i.d. with replacement from the worker's local
data (the paper's zeta_j ~ D_j); ``batch_size=None`` uses the whole local set every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from testbed.engine.augment import CropFlip, make_augment


@dataclass(frozen=True)
class WorkerData:
    """All workers' samples in one tensor; worker j owns rows offsets[j] : offsets[j] + counts[j]."""

    x: torch.Tensor
    y: torch.Tensor
    offsets: torch.Tensor  # int64 [n]
    counts: torch.Tensor  # int64 [n]

    @classmethod
    def stack(cls, pairs: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> WorkerData:
        if not pairs:
            raise ValueError("worker_data: need at least one worker's (x, y)")
        for j, (x, y) in enumerate(pairs):
            if len(x) == 0:
                raise ValueError(f"worker_data[{j}]: worker has no samples")
            if len(x) != len(y):
                raise ValueError(f"worker_data[{j}]: x has {len(x)} rows but y has {len(y)}")
        counts = torch.tensor([len(x) for x, _ in pairs], dtype=torch.int64)
        offsets = torch.cumsum(counts, 0) - counts
        x = torch.cat([torch.as_tensor(x) for x, _ in pairs]).to(device)
        y = torch.cat([torch.as_tensor(y) for _, y in pairs]).to(device)
        return cls(x, y, offsets.to(device), counts.to(device))

    @property
    def n_workers(self) -> int:
        return len(self.counts)


@dataclass(frozen=True)
class Batch:
    """One step's samples for every worker: global row indices and per-sample loss weights.

    Each worker's loss is ``sum(weight * per_sample_loss)`` over its row; the weights sum
    to one per worker, so padding rows (full batches of unequal size) carry weight zero.
    """

    index: torch.Tensor  # int64 [n, b] rows of WorkerData.x
    weight: torch.Tensor  # float [n, b]
    padded: bool = False  # known on the host: some rows carry zero-weight padding
    augment: CropFlip | None = None  # per-sample augmentation draws [n, b]

    def __getitem__(self, key) -> Batch:
        """Some workers' (and samples') part of the batch."""
        augment = None if self.augment is None else self.augment[key]
        return Batch(self.index[key], self.weight[key], self.padded, augment)


def gather(x: torch.Tensor, index: torch.Tensor, augment: CropFlip | None) -> torch.Tensor:
    """The samples ``x[index]``, augmented by draws shaped like ``index``."""
    return x[index] if augment is None else augment.apply(x[index])


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` without a host-device synchronisation: a plain copy from
    pageable memory waits for the GPU's stream; one from pinned memory is queued."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class MinibatchSampler:
    """Draws a Batch per step from its own torch.Generator (CPU, so every device agrees);
    ``augment`` (:data:`testbed.engine.augment.AUGMENTS`) adds draws from another, seeded
    with ``augment_seed``."""

    def __init__(self, data: WorkerData, batch_size: int | None, seed: int, augment: str = "none", augment_seed: int = 0):
        self.data = data
        self.batch_size = batch_size
        self.augment = make_augment(augment, data.x, augment_seed)
        self.generator = torch.Generator().manual_seed(seed)
        counts = data.counts.cpu()
        self._counts = counts
        self._offsets = data.offsets.cpu()
        if batch_size is None:  # the full local set, padded to the largest worker
            width = int(counts.max())
            local = torch.arange(width).expand(len(counts), width)
            valid = local < counts[:, None]
            index = self._offsets[:, None] + torch.minimum(local, counts[:, None] - 1)
            weight = valid.float() / counts[:, None].float()
            self._full = Batch(index.to(data.x.device), weight.to(data.x.device), padded=not bool(valid.all()))

    def get_state(self) -> dict[str, torch.Tensor | None]:
        """The generators' states, for checkpoints (without augmentation, exactly what
        checkpoints held before it existed)."""
        state = {"sampler": self.generator.get_state()}
        if self.augment is not None:
            state["augment"] = self.augment.generator.get_state()
        return state

    def set_state(self, state: dict[str, torch.Tensor | None]) -> None:
        self.generator.set_state(state["sampler"])
        if self.augment is not None:
            self.augment.generator.set_state(state["augment"])

    @property
    def equal_sizes(self) -> bool:
        return bool((self._counts == self._counts[0]).all())

    def next(self) -> Batch:
        batch = self._draw()
        if self.augment is None:
            return batch
        draws = self.augment.draw(tuple(batch.index.shape))
        device = self.data.x.device
        return Batch(batch.index, batch.weight, batch.padded,
                     CropFlip(to_device(draws.corner, device), to_device(draws.flip, device), draws.fill))  # fmt: skip

    def _draw(self) -> Batch:
        if self.batch_size is None:
            return self._full
        u = torch.rand((len(self._counts), self.batch_size), generator=self.generator, dtype=torch.float64)
        local = (u * self._counts[:, None]).long()
        index = to_device(self._offsets[:, None] + local, self.data.x.device)
        weight = torch.full(index.shape, 1.0 / self.batch_size, device=self.data.x.device)
        return Batch(index, weight)
