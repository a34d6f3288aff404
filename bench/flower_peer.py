"""Flower's simulation on a bench case: FedAvg over Ray actors, every client every round,
the same model, local steps, batch size and learning rate; no evaluation.

    bench/.peers-venv/bin/python bench/flower_peer.py '<case json>' ROUNDS

Runs in its own virtual environment (``flwr[simulation]``; see bench/README.md), and is
called by bench/end_to_end.py. One actor per core, one torch thread each (the faster
Flower setting on a small CPU). Prints ``{"samples_per_s": ...}``: the training samples
of rounds 2..ROUNDS over the time between the first and the last aggregation, so Ray's
start-up and the first round's warm-up are left out.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # for the actors
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.common import Context, ndarrays_to_parameters  # noqa: E402
from flwr.server import ServerApp, ServerAppComponents, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from testbed.models import build_model  # noqa: E402


def make_model(case: dict) -> torch.nn.Module:
    shape = case["shape"]
    if len(shape) == 3:
        return build_model(case["model"], num_classes=case["classes"], in_channels=shape[0], input_size=shape[1], seed=0)
    return build_model(case["model"], num_classes=case["classes"], in_features=shape[0], seed=0)


class Client(NumPyClient):
    def __init__(self, case: dict, client_id: int):
        g = torch.Generator().manual_seed(client_id)
        m = 4 * case["b"]
        self.x = torch.randn(m, *case["shape"], generator=g)
        self.y = torch.randint(0, case["classes"], (m,), generator=g)
        self.case, self.model = case, make_model(case)
        self.generator = g

    def fit(self, parameters, config):
        with torch.no_grad():
            for p, new in zip(self.model.state_dict().values(), parameters):
                p.copy_(torch.from_numpy(new))
        opt = torch.optim.SGD(self.model.parameters(), lr=self.case["lr"], momentum=self.case["momentum"])
        self.model.train()
        for _ in range(self.case["local_steps"]):
            rows = torch.randint(0, len(self.x), (self.case["b"],), generator=self.generator)
            opt.zero_grad()
            F.cross_entropy(self.model(self.x[rows]), self.y[rows]).backward()
            opt.step()
        return [t.detach().numpy() for t in self.model.state_dict().values()], len(self.x), {}


class TimedFedAvg(FedAvg):
    """FedAvg that notes when each round's aggregation happens."""

    stamps: list[float] = []

    def aggregate_fit(self, server_round, results, failures):
        out = super().aggregate_fit(server_round, results, failures)
        TimedFedAvg.stamps.append(time.perf_counter())
        return out


def main() -> None:
    case, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
    n = case["n"]
    initial = [t.numpy() for t in make_model(case).state_dict().values()]

    def client_fn(context: Context):
        torch.set_num_threads(1)
        return Client(case, int(context.node_config["partition-id"])).to_client()

    def server_fn(context: Context):
        strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_available_clients=n,
                               initial_parameters=ndarrays_to_parameters(initial))  # fmt: skip
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(
        server_app=ServerApp(server_fn=server_fn), client_app=ClientApp(client_fn=client_fn), num_supernodes=n,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )  # fmt: skip
    stamps = TimedFedAvg.stamps
    if len(stamps) < 2:
        raise SystemExit(f"flower_peer: {len(stamps)} aggregation(s) recorded, need 2 or more rounds")
    samples = (len(stamps) - 1) * n * case["local_steps"] * case["b"]
    print(json.dumps({"samples_per_s": samples / (stamps[-1] - stamps[0]), "rounds": len(stamps)}))


if __name__ == "__main__":
    main()
