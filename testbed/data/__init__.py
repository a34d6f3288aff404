"""Datasets, partitions over workers, grouping of workers under servers, partition summaries.

ds = load_dataset("synthetic", alpha=1.0, beta=1.0)        # or mnist, cifar10, femnist, celeba, npz
fed = make_federated(ds, n_workers=30, scheme="natural")     # iid | shards | dirichlet | natural
fed = federate(ds, tree, seed=0, partition="natural", grouping="group-iid")  # partitioned, then placed under the servers
groups = group_workers(fed.labels_per_worker(), [10, 10, 10], "group-iid", rng, ds.num_classes)
partition_summary(fed.labels_per_worker(), ds.num_classes, groups)
"""

from testbed.data.dataset import CHANNEL_STATS, Dataset, DatasetUnavailable, default_cache_dir
from testbed.data.datasets import DATASET_NAMES, load_dataset
from testbed.data.federated import FederatedData, make_federated
from testbed.data.grouping import STRATEGIES, group_workers
from testbed.data.partition import SCHEMES, partition
from testbed.data.placement import federate
from testbed.data.summary import label_counts, partition_summary, total_variation

__all__ = [
    "CHANNEL_STATS",
    "DATASET_NAMES",
    "Dataset",
    "DatasetUnavailable",
    "FederatedData",
    "SCHEMES",
    "STRATEGIES",
    "default_cache_dir",
    "federate",
    "group_workers",
    "label_counts",
    "load_dataset",
    "make_federated",
    "partition",
    "partition_summary",
    "total_variation",
]
