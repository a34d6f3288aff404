"""FedProx's Synthetic(alpha, beta) federated dataset, generated from a seed.

Li et al. 2020, "Federated Optimization in Heterogeneous Networks", Section 5.1 and their
``generate_synthetic``: device k has its own softmax-regression model and its own input
distribution,

    u_k ~ N(0, alpha),  W_k ~ N(u_k, 1) [60 x 10],  b_k ~ N(u_k, 1) [10]
    B_k ~ N(0, beta),   v_k ~ N(B_k, 1) [60],        x ~ N(v_k, Sigma), Sigma = diag(j^-1.2)
    y = argmax(softmax(x W_k + b_k))

so ``alpha`` controls how much the devices' models differ and ``beta`` how much their
inputs differ (N(m, s) with s the standard deviation, as numpy draws it in their code).
Device sample counts are lognormal(4, 2) + 50 as in their code, capped at
``max_samples`` (default 1000) so the default dataset stays a few thousand samples;
``max_samples=None`` gives their uncapped heavy tail. Each device keeps its first
``1 - test_fraction`` of samples for training (their 90/10 split); ``writers`` records the
device of every sample, so the ``natural`` partition reproduces their heterogeneity.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from testbed.data.dataset import Dataset

logger = logging.getLogger(__name__)

DIMENSION = 60
NUM_CLASSES = 10


def load_synthetic(
    root: object = None,
    *,
    n_workers: int = 30,
    alpha: float = 1.0,
    beta: float = 1.0,
    iid: bool = False,
    samples_log_mean: float = 4.0,
    samples_log_sigma: float = 2.0,
    min_samples: int = 50,
    max_samples: int | None = 1000,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """Generate Synthetic(alpha, beta) with ``n_workers`` devices; ``root`` is ignored (no files).

    ``iid=True`` is FedProx's Synthetic-IID: one model and one input distribution for all
    devices (alpha and beta are then unused).
    """
    del root  # nothing is read or written; the argument exists so every loader is called alike
    _check_options(n_workers, alpha, beta, samples_log_sigma, min_samples, max_samples, test_fraction)
    rng = np.random.default_rng(seed)

    counts = rng.lognormal(samples_log_mean, samples_log_sigma, n_workers).astype(np.int64) + min_samples
    if max_samples is not None:
        counts = np.minimum(counts, max_samples)
    # Sigma = diag(j^-1.2), j = 1..60: we draw x = v + sqrt(diag) * z, the same law as their
    # multivariate_normal with a diagonal covariance but without a 60x60 factorisation.
    scale = np.arange(1, DIMENSION + 1, dtype=np.float64) ** -0.6

    u = rng.normal(0.0, alpha, n_workers)
    big_b = rng.normal(0.0, beta, n_workers)
    shared_w = rng.normal(0.0, 1.0, (DIMENSION, NUM_CLASSES))
    shared_b = rng.normal(0.0, 1.0, NUM_CLASSES)

    xs_train, ys_train, ids_train, xs_test, ys_test, ids_test = [], [], [], [], [], []
    for k in range(n_workers):
        if iid:
            w, b, v = shared_w, shared_b, np.zeros(DIMENSION)
        else:
            w = rng.normal(u[k], 1.0, (DIMENSION, NUM_CLASSES))
            b = rng.normal(u[k], 1.0, NUM_CLASSES)
            v = rng.normal(big_b[k], 1.0, DIMENSION)
        x = v + scale * rng.standard_normal((int(counts[k]), DIMENSION))
        y = np.argmax(x @ w + b, axis=1)  # argmax of the softmax = argmax of the logits
        n_train = int((1.0 - test_fraction) * counts[k])
        xs_train.append(x[:n_train])
        ys_train.append(y[:n_train])
        ids_train.append(np.full(n_train, k, dtype=np.int64))
        xs_test.append(x[n_train:])
        ys_test.append(y[n_train:])
        ids_test.append(np.full(len(x) - n_train, k, dtype=np.int64))

    ds = Dataset(
        name="synthetic",
        x_train=torch.from_numpy(np.concatenate(xs_train).astype(np.float32)),
        y_train=torch.from_numpy(np.concatenate(ys_train).astype(np.int64)),
        x_test=torch.from_numpy(np.concatenate(xs_test).astype(np.float32)),
        y_test=torch.from_numpy(np.concatenate(ys_test).astype(np.int64)),
        num_classes=NUM_CLASSES,
        writers=np.concatenate(ids_train),
        test_writers=np.concatenate(ids_test),
    )
    logger.debug("generated %r (alpha=%s, beta=%s, iid=%s, seed=%s)", ds, alpha, beta, iid, seed)
    return ds


def _check_options(
    n_workers: int,
    alpha: float,
    beta: float,
    samples_log_sigma: float,
    min_samples: int,
    max_samples: int | None,
    test_fraction: float,
) -> None:
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    for name, value in (("alpha", alpha), ("beta", beta), ("samples_log_sigma", samples_log_sigma)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0 (a standard deviation), got {value!r}")
    if not isinstance(min_samples, int) or min_samples < 2:
        raise ValueError(
            f"min_samples must be an int >= 2 (each device needs a train sample), got {min_samples!r}"
        )
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < min_samples):
        raise ValueError(
            f"max_samples must be None or an int >= min_samples ({min_samples}), got {max_samples!r}"
        )
    if not 0.0 <= test_fraction < 0.5:
        raise ValueError(f"test_fraction must be in [0, 0.5), got {test_fraction!r}")
