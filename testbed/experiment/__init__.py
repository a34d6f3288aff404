"""Experiments: algorithms compared on one topology, run folders, re-timing."""

from testbed.experiment.config import PRESETS, ExperimentConfig, preset

__all__ = ["PRESETS", "ExperimentConfig", "preset"]
