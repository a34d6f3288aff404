import pytest
import torch
from torch import nn

import testbed
from testbed.theory.probe import DivergenceProbe

TREE = [[[0, 1], [2]], [[3, 4], [5, 6, 7]]]


def workers(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(30, 5, generator=g) + 0.5 * j, torch.randint(0, 3, (30,), generator=g) if j % 2 else torch.zeros(30, dtype=torch.long)) for j in range(8)]


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3))


def test_measured_divergences_satisfy_the_partition_identity():
    kw = dict(tree=TREE, periods=[8, 4, 2], iterations=24, lr=0.1, batch_size=4, eval_every=8, seed=1)
    plain = testbed.simulate(model(), workers(), **kw)
    probed = testbed.simulate(model(), workers(), callbacks=[DivergenceProbe(every=1)], **kw)
    rows = probed.metrics
    for level in (1, 2):
        assert (rows[f"partition_residual_l{level}"] < 1e-6).all()  # identity (10), relative
        assert (rows[f"div_up_l{level}"] > 0).all()
    assert (rows.div_global > 0).all() and (rows.sigma2 > 0).all() and (rows.grad_norm2 > 0).all()
    # the deeper the level, the more of the global divergence is upward (Lemma 3's direction)
    assert (rows.div_up_l2 >= rows.div_up_l1 - 1e-9).all()
    # probing draws from its own generator: training is unchanged
    torch.testing.assert_close(plain.global_state, probed.global_state, rtol=0, atol=0)


def test_probe_every_k_evaluations_and_bad_interval():
    result = testbed.simulate(model(), workers(), TREE, [8, 4, 2], iterations=32, lr=0.1, eval_every=8, callbacks=[DivergenceProbe(every=2)])
    assert result.metrics.div_global.notna().tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="divergence_every"):
        DivergenceProbe(every=0)
