"""The dataset registry: ``load_dataset(name, root=None, **options)``."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from testbed.data.dataset import Dataset
from testbed.data.leaf import load_celeba, load_femnist
from testbed.data.synthetic import load_synthetic
from testbed.data.vision import load_cifar10, load_mnist, load_npz

#: name -> loader(root, **options). Every loader takes ``root`` first so callers need not
#: know which ones read files.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "synthetic": load_synthetic,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "femnist": load_femnist,
    "celeba": load_celeba,
    "npz": load_npz,
}
DATASET_NAMES: tuple[str, ...] = tuple(LOADERS)


def load_dataset(name: str, root: str | os.PathLike | None = None, **options: object) -> Dataset:
    """Load (or generate) a dataset by name.

    ``root`` is the data directory (default ``$TESTBED_DATA`` or ``~/.cache/testbed/data``);
    ``options`` go to the loader, e.g. ``load_dataset("synthetic", alpha=0.5, beta=0.5)``
    or ``load_dataset("npz", path="cifar10.npz")``. An unknown name or option is a
    ``ValueError`` that lists what is allowed.
    """
    loader = LOADERS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise ValueError(f"name: unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    allowed = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options: dataset {name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(allowed) or 'no options'}"
        )
    return loader(root, **options)
