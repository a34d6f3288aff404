"""The papers' theory next to the measured curves.

``bounds``: Wang et al. (2022) Theorems 1-3 and Corollary 1 term by term;
``hier_avg``: Zhou & Cong (2019) Theorem 3.2; ``sandwich``: the checks (16), (17), (23), (24).
``divergence``: global / upward / downward gradient divergences (7)-(10) of an aggregation
tree at one model, the noise sigma^2 (6), and Lemmas 1-3's predicted random-grouping split.
``cli``: ``testbed bound``.
"""

from testbed.theory.bounds import (
    C_WANG,
    BoundTerms,
    LevelCoefficients,
    corollary1_bound,
    multilevel_coefficients,
    theorem1_bound,
    theorem2_bound,
    theorem3_bound,
)
from testbed.theory.hier_avg import hier_avg_bound
from testbed.theory.sandwich import (
    Sandwich,
    sandwich_divergence,
    sandwich_multilevel_divergence,
    sandwich_multilevel_noise,
    sandwich_noise,
)
from testbed.theory.shapes import TwoLevelShape, multilevel_shape, two_level_shape

# divergence measures models (torch): loaded on first use, so `testbed bound` starts fast
_DIVERGENCE = ("Divergences", "LevelDivergence", "NoiseEstimate", "RandomSplit", "estimate_sigma2",
               "expected_random_split", "measure_divergences", "random_equal_tree")


def __getattr__(name: str):
    if name not in _DIVERGENCE:
        raise AttributeError(f"module 'testbed.theory' has no attribute {name!r}")
    from testbed.theory import divergence

    return getattr(divergence, name)

__all__ = [
    "C_WANG",
    "BoundTerms",
    "Divergences",
    "LevelCoefficients",
    "LevelDivergence",
    "NoiseEstimate",
    "RandomSplit",
    "Sandwich",
    "TwoLevelShape",
    "corollary1_bound",
    "estimate_sigma2",
    "expected_random_split",
    "hier_avg_bound",
    "measure_divergences",
    "multilevel_coefficients",
    "multilevel_shape",
    "random_equal_tree",
    "sandwich_divergence",
    "sandwich_multilevel_divergence",
    "sandwich_multilevel_noise",
    "sandwich_noise",
    "theorem1_bound",
    "theorem2_bound",
    "theorem3_bound",
    "two_level_shape",
]
