"""What an experiment resolves before it trains (topology, algorithms, dataset, device,
model size and compute time), so that bad input fails before any file is written; and
the files that describe it in its run folder."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from testbed.data import Dataset, FederatedData, federate, load_dataset
from testbed.device import resolve_device
from testbed.engine.augment import check_augment
from testbed.engine.world import current as current_world
from testbed.experiment import distributed, rundir
from testbed.experiment.algorithms import Algorithm, describe_algorithms, resolve_all
from testbed.experiment.cli import check_deadlines
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.keys import in_config_terms
from testbed.experiment.modelcost import measure_compute_ms, model_bytes, model_shape
from testbed.experiment.smoke import shrink_config, shrink_dataset
from testbed.experiment.stopping import check_stop_at_target
from testbed.models import build_model
from testbed.net import Topology, load_topology

log = logging.getLogger("testbed.experiment")


@dataclass(frozen=True)
class Setup:
    """Everything resolved before training starts (so bad input fails early)."""

    config: ExperimentConfig
    topology: Topology
    algorithms: list[Algorithm]
    dataset: Dataset
    device: torch.device
    model_bytes: int
    compute_ms: float | None  # None: each worker node's own compute_ms / compute_trace

    def model(self) -> torch.nn.Module:
        """A fresh model of the config's kind, shaped for the dataset."""
        return build_model(self.config.model, **model_shape(self.dataset))

    def federated(self, seed: int) -> FederatedData:
        """The dataset partitioned over the topology's workers and placed under its servers."""
        cfg = self.config
        return federate(self.dataset, self.topology.tree, seed, partition=cfg.partition, grouping=cfg.grouping,
                        batch_size=cfg.batch_size, device=self.device, shards_per_worker=cfg.shards_per_worker,
                        dirichlet_alpha=cfg.dirichlet_alpha,
                        source=f"dataset {cfg.dataset}" + (f" ({cfg.data_root})" if cfg.data_root else ""))


def prepare(config: ExperimentConfig) -> Setup:
    """Resolve topology, algorithms, dataset and model names; raises ValueError on bad input."""
    config = shrink_config(config)  # TESTBED_SMOKE: the README test's tiny budget
    topology = load_topology(config.topology, trace_overrides=config.trace_overrides)
    algorithms = resolve_all(config.algorithms, topology.tree)
    check_deadlines(config.deadline_s, topology, "deadline_s")
    n = topology.tree.n_workers
    options: dict[str, Any] = {}
    if config.dataset == "synthetic":
        options = dict(n_workers=n, alpha=config.synthetic_alpha, beta=config.synthetic_beta, seed=0)
    try:
        dataset = load_dataset(config.dataset, root=config.data_root or None, **options)
    except ValueError as err:  # the data layer names its own arguments; answer in config keys
        raise type(err)(in_config_terms(str(err), config.dataset)) from None
    dataset = shrink_dataset(dataset)
    check_stop_at_target(config.stop_at_target, dataset.x_test is not None, config.dataset)
    model = build_model(config.model, **model_shape(dataset))  # fails now on an unknown model name
    check_augment(config.augment, dataset.input_shape)
    device = resolve_device(config.device)
    if current_world():  # torchrun: each rank of a machine on its own GPU
        device = distributed.rank_device(current_world(), config, device, n)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        # cuBLAS needs a fixed workspace for reproducible GEMMs; set before the first CUDA call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    compute_ms = None if config.compute_ms == -1 else config.compute_ms
    if compute_ms == 0:
        compute_ms = measure_compute_ms(model, dataset, device, config.batch_size or 32)
        log.info("measured compute: %.3f ms per iteration per worker", compute_ms)
    size = config.priced_params * config.model_bytes_per_param or model_bytes(model, config.model_bytes_per_param)
    return Setup(config, topology, algorithms, dataset, device, size, compute_ms)


def write_static_files(run_dir: Path, setup: Setup, tag: str) -> None:
    """The files that describe the run before it trains (:func:`rundir.write_description`)."""
    info = {
        "config": setup.config.to_dict(), "preset": tag, "topology": setup.topology.name,
        "algorithms": describe_algorithms(setup.algorithms, setup.topology), "worker_nodes": list(setup.topology.worker_nodes),
        "model_params": sum(p.numel() for p in setup.model().parameters()),
        "model_bytes": setup.model_bytes, "priced_params": setup.config.priced_params or None,
        "compute_ms": setup.compute_ms,
        "round_costs": rundir.cost_structure(setup.topology, setup.model_bytes, setup.config).to_dict(),
        "device": str(setup.device), **rundir.provenance(),
    }
    rundir.write_description(run_dir, info, setup.topology)
