"""Peers the testbed is compared with in `make bench` (bench/end_to_end.py).

* :class:`SequentialClients` (always available): federated training as the paper's code
  (Wang et al. 2022) runs it, reduced to its training loop: for every client in turn a
  ``copy.deepcopy`` of its group's model and a fresh ``torch.optim.SGD``, I local steps,
  groups averaged every I steps, everyone every G; no evaluation. Minibatches come
  from tensors already on the device, or (``data_loader=True``) through a shuffling
  ``DataLoader`` per client, as the paper's code reads them (without its image
  transforms, which cost more again).
* Flower's simulation (``flwr[simulation]``, FedAvg over Ray actors) runs in its own
  virtual environment, ``bench/.peers-venv``, through bench/flower_peer.py; without it the
  row is skipped with a note.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE / ".peers-venv" / "bin" / "python"


class SequentialClients:
    """One global period (G iterations) of two-level local SGD, one client at a time."""

    def __init__(self, model: nn.Module, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], groups: list[list[int]],
                 periods: tuple[int, int], batch_size: int, lr: float, momentum: float, device: torch.device,
                 data_loader: bool = False):  # fmt: skip
        self.model = copy.deepcopy(model).to(device).train()
        self.data = [(x.to(device), y.to(device)) for x, y in pairs]
        self.groups, (self.global_period, self.local_period) = groups, periods
        self.batch_size, self.lr, self.momentum = batch_size, lr, momentum
        self.generator = torch.Generator().manual_seed(0)
        self.loaders = None
        if data_loader:  # one endless shuffled stream of minibatches per client
            self.loaders = [_forever(DataLoader(TensorDataset(x, y), batch_size, shuffle=True, drop_last=True,
                                                generator=torch.Generator().manual_seed(j)))
                            for j, (x, y) in enumerate(pairs)]  # fmt: skip

    def round(self) -> None:
        group_models = [copy.deepcopy(self.model) for _ in self.groups]
        for _ in range(self.global_period // self.local_period):
            for group_model, members in zip(group_models, self.groups):
                states = [self._train_client(group_model, j) for j in members]
                group_model.load_state_dict(_average(states))
        self.model.load_state_dict(_average([m.state_dict() for m in group_models]))

    def _train_client(self, start: nn.Module, j: int) -> dict[str, torch.Tensor]:
        local = copy.deepcopy(start)
        opt = torch.optim.SGD(local.parameters(), lr=self.lr, momentum=self.momentum)
        x, y = self.data[j]
        for _ in range(self.local_period):
            if self.loaders is not None:
                xb, yb = (t.to(x.device) for t in next(self.loaders[j]))
            else:
                rows = torch.randint(0, len(x), (self.batch_size,), generator=self.generator).to(x.device)
                xb, yb = x[rows], y[rows]
            opt.zero_grad()
            F.cross_entropy(local(xb), yb).backward()
            opt.step()
        return local.state_dict()


def _forever(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


def _average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    out = {}
    for k, first in states[0].items():
        stacked = torch.stack([s[k] for s in states])
        out[k] = stacked.float().mean(0).to(first.dtype) if first.is_floating_point() else stacked.amax(0)
    return out


def flower_rate(case: dict, rounds: int) -> tuple[float | None, str]:
    """Samples/s of Flower's simulation on ``case`` (see bench/flower_peer.py), or None and
    the reason it could not run."""
    if not PEERS_PYTHON.exists():
        return None, "Flower not installed (bench/.peers-venv absent; see bench/README.md)"
    cmd = [str(PEERS_PYTHON), str(HERE / "flower_peer.py"), json.dumps(case), str(rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"Flower run failed: {tail[0][:160]}"
    return float(json.loads(done.stdout.strip().splitlines()[-1])["samples_per_s"]), "ok"
