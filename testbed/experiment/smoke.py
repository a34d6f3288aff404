"""``TESTBED_SMOKE=1``: every experiment on a tiny budget, so that a test can run each of
the README's commands in minutes. The run folder records the shrunk config: a smoke run
is never mistaken for a result.

It keeps the first seed, at most :data:`ITERATIONS` iterations with an evaluation every
:data:`EVAL_EVERY`, minibatches of at most :data:`BATCH_SIZE`, no divergence probe, and
evaluates on the first :data:`TEST_SAMPLES` test samples (a full test set through VGG-11
costs more than the whole smoke run).
"""

from __future__ import annotations

import dataclasses
import logging
import os

ENV = "TESTBED_SMOKE"
ITERATIONS = 10
EVAL_EVERY = 5
BATCH_SIZE = 4
TEST_SAMPLES = 256

log = logging.getLogger("testbed.experiment")


def smoke_enabled() -> bool:
    return os.environ.get(ENV, "").strip() not in ("", "0")


def shrink_config(config):
    """The config on the smoke budget (unchanged unless TESTBED_SMOKE is set)."""
    if not smoke_enabled():
        return config
    log.warning("%s is set: a smoke run (%d iterations, one seed, %d test samples), not a result",
                ENV, ITERATIONS, TEST_SAMPLES)
    return dataclasses.replace(
        config, iterations=min(config.iterations, ITERATIONS), eval_every=min(config.eval_every, EVAL_EVERY),
        seeds=config.seeds[:1], batch_size=min(config.batch_size or BATCH_SIZE, BATCH_SIZE), divergence_every=0,
    )


def shrink_dataset(dataset):
    """The dataset with its test split cut to TEST_SAMPLES (unchanged unless TESTBED_SMOKE is set)."""
    if not smoke_enabled() or dataset.y_test is None or len(dataset.y_test) <= TEST_SAMPLES:
        return dataset
    cut = slice(0, TEST_SAMPLES)
    return dataclasses.replace(dataset, x_test=dataset.x_test[cut], y_test=dataset.y_test[cut],
                               test_writers=None if dataset.test_writers is None else dataset.test_writers[cut])
