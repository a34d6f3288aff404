"""testbed.simulate against hand-written transcriptions of the papers' algorithms."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import testbed
from testbed.engine import MinibatchSampler, WorkerData

DIM, CLASSES = 4, 3


def workers(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(m, DIM, generator=g) + j, torch.randint(0, CLASSES, (m,), generator=g)) for j, m in enumerate(sizes)]


def linear_model():
    torch.manual_seed(0)
    return nn.Linear(DIM, CLASSES)


def local_gradient(W, b, x, y):
    W, b = W.clone().requires_grad_(), b.clone().requires_grad_()
    F.cross_entropy(x @ W.T + b, y).backward()
    return W.grad, b.grad


def algorithm_1(data, groups, I, G, T, lr, batches=None):
    """Algorithm 1 of Wang et al. (2022), line by line, for a linear softmax model.
    ``batches(t)`` gives each worker's sample indices at step t (None: full batch)."""
    model = linear_model()
    w = {j: [model.weight.detach().clone(), model.bias.detach().clone()] for j in range(len(data))}
    N = len(groups)
    for t in range(T):
        rows = batches(t) if batches else None
        for i, V_i in enumerate(groups):  # for each group i, in parallel
            for j in V_i:  # for each worker j in V_i, in parallel
                x, y = data[j]
                if rows is not None:
                    x, y = x[rows[j]], y[rows[j]]
                g = local_gradient(*w[j], x, y)  # compute g(w_j^t, zeta_j^t)
                w[j] = [p - lr * gp for p, gp in zip(w[j], g)]  # w_j^{t+1} <- w_j^t - gamma g
        w_bar_i = {}
        for i, V_i in enumerate(groups):
            if (t + 1) % I[i] == 0:  # if I_i | t+1
                w_bar_i[i] = [sum(w[j][k] for j in V_i) / len(V_i) for k in range(2)]  # local aggregate
                if (t + 1) % G != 0:  # if G does not divide t+1: distribute
                    for j in V_i:
                        w[j] = [p.clone() for p in w_bar_i[i]]
        if (t + 1) % G == 0:  # global aggregate and distribute
            w_bar = [sum(w_bar_i[i][k] for i in range(N)) / N for k in range(2)]
            for j in w:
                w[j] = [p.clone() for p in w_bar]
    return w


def sampler_rows(data, batch_size, seed):
    """The minibatch rows simulate() draws for a seed (its documented sampling rule)."""
    sampler_seed = int(np.random.SeedSequence(seed).spawn(2)[0].generate_state(1)[0])
    stacked = WorkerData.stack(data, torch.device("cpu"))
    sampler = MinibatchSampler(stacked, batch_size, sampler_seed)
    blocks = [sampler.next().index - stacked.offsets[:, None] for _ in range(400)]
    return lambda t: blocks[t]


@pytest.mark.parametrize("engine", ["batched", "loop"])
@pytest.mark.parametrize("batch_size", [None, 3], ids=["full-batch", "minibatch"])
def test_simulate_matches_algorithm_1_transcription(engine, batch_size):
    data = workers([6, 8, 5, 7, 9])
    groups, I, G, T = [[0, 1], [2, 3, 4]], [2, 3], 6, 24
    batches = sampler_rows(data, batch_size, seed=5) if batch_size else None
    expected = algorithm_1(data, groups, I, G, T, lr=0.1, batches=batches)
    result = testbed.simulate(linear_model(), data, groups, [G, I], iterations=T, lr=0.1, batch_size=batch_size, seed=5, engine=engine, device="cpu")
    torch.testing.assert_close(result.global_state["weight"], expected[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.global_state["bias"], expected[0][1], rtol=1e-5, atol=1e-6)


def test_flat_tree_is_local_sgd():
    data, P, T, lr = workers([5, 5, 5, 5]), 4, 20, 0.2
    model = linear_model()
    w = [[model.weight.detach().clone(), model.bias.detach().clone()] for _ in data]
    for t in range(1, T + 1):
        w = [[p - lr * g for p, g in zip(wj, local_gradient(*wj, *data[j]))] for j, wj in enumerate(w)]
        if t % P == 0:
            avg = [sum(wj[k] for wj in w) / len(w) for k in range(2)]
            w = [[p.clone() for p in avg] for _ in w]
    flat = testbed.simulate(linear_model(), data, [0, 1, 2, 3], [P], iterations=T, lr=lr, device="cpu")
    one_group = testbed.simulate(linear_model(), data, [[0, 1, 2, 3]], [P, P], iterations=T, lr=lr, device="cpu")
    torch.testing.assert_close(flat.global_state["weight"], w[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one_group.global_state["weight"], flat.global_state["weight"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weighting, sizes", [("uniform", [6, 6, 6, 6]), ("samples", [3, 6, 9, 5])])
def test_period_one_with_full_batches_is_gradient_descent_on_pooled_data(weighting, sizes):
    data, T, lr = workers(sizes), 30, 0.3
    model = linear_model()
    x = torch.cat([d[0] for d in data])
    y = torch.cat([d[1] for d in data])
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(T):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    result = testbed.simulate(linear_model(), data, [0, 1, 2, 3], [1], iterations=T, lr=lr, weighting=weighting, device="cpu")
    torch.testing.assert_close(result.global_state["weight"], model.weight.detach(), rtol=1e-5, atol=1e-6)


def test_metrics_and_federated_object_input():
    class Federated:
        worker_data = workers([10, 12, 8, 9])
        test_data = workers([40])[0]

    result = testbed.simulate(linear_model(), Federated(), [[0, 1], [2, 3]], [4, 2], iterations=12, lr=0.1, batch_size=4, eval_every=4)
    assert list(result.metrics.columns) == ["iteration", "worker_loss", "global_train_loss", "test_loss", "test_acc"]
    assert list(result.metrics.iteration) == [4, 8, 12]
    assert result.metrics.test_acc.between(0, 1).all()
    model = linear_model()
    model.load_state_dict(result.global_state)  # a plain state_dict of the template


def test_callbacks_see_every_step_and_can_add_columns():
    seen = []

    class Recorder(testbed.Callback):
        def on_step(self, step):
            seen.append((step.t, list(step.aggregating_servers)))

        def on_eval(self, row):
            row["extra"] = row["iteration"] * 2

    result = testbed.simulate(linear_model(), workers([4] * 4), [[0, 1], [2, 3]], [4, 2], iterations=4, lr=0.1, eval_every=2, callbacks=[Recorder()])
    assert seen == [(1, []), (2, [1, 2]), (3, []), (4, [0])]
    assert list(result.metrics.extra) == [4, 8]


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(lr=0), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(iterations=0), "iterations"),
        (dict(batch_size=0), "batch_size"),
        (dict(participation=0.0), "participation"),
        (dict(participation=1.5), "participation"),
        (dict(momentum=1.0), "momentum"),
        (dict(weighting="median"), "weighting"),
        (dict(engine="gpu"), "engine"),
        (dict(tree=[]), "tree"),
        (dict(tree=[[0, 1], [1, 2]]), "duplicate"),
        (dict(tree=[[0, 1], [3, 4]]), "missing"),
        (dict(periods=[0, 1]), "periods"),
        (dict(periods=[3, 2]), "not a multiple"),
        (dict(periods=None), "periods"),
        (dict(worker_data=workers([3, 3, 3])), "worker_data"),
        (dict(worker_data=workers([3, 0, 3, 3])), "worker_data\\[1\\]"),
        (dict(device="tpu-ish"), "device"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(overrides, match):
    kwargs = dict(model=linear_model(), worker_data=workers([3, 3, 3, 3]), tree=[[0, 1], [2, 3]], periods=[4, 2], iterations=4, lr=0.1)
    kwargs.update(overrides)
    with pytest.raises(ValueError, match=match):
        testbed.simulate(**kwargs)


def test_a_nan_loss_stops_the_run_with_a_status_row():
    data = workers([6, 6, 6, 6])
    data[2] = (data[2][0] * float("nan"), data[2][1])  # one worker's data is corrupt
    result = testbed.simulate(linear_model(), data, [[0, 1], [2, 3]], [4, 2], iterations=40, lr=0.1, eval_every=5)
    last = result.metrics.iloc[-1]
    # found without a device sync per step: at the first aggregation point (t=2), before
    # the average would spread it; the status names the first non-finite iteration
    assert len(result.metrics) == 1 and last.iteration == 2
    assert last.status.startswith("diverged: training loss is nan at iteration 1 (worker 2)")
    assert result.extras["status"] == last.status


def test_an_infinite_loss_is_caught_as_divergence():
    def loss(out, y):  # finite for a few steps, then infinite
        per_sample = F.cross_entropy(out, y, reduction="none")
        return per_sample * torch.where(per_sample < 0.9, float("inf"), 1.0)

    result = testbed.simulate(linear_model(), workers([6, 6, 6, 6]), [0, 1, 2, 3], [2], iterations=500, lr=0.5, loss=loss, eval_every=50)
    assert "training loss is inf" in result.extras["status"]
    assert result.metrics.iteration.iloc[-1] < 500


def test_global_train_loss_is_the_global_models_loss_on_a_fixed_sample():
    """One class per worker: each local model fits its own class (small worker_loss) while
    the global average does not; global_train_loss is the global model's, and the sample
    is drawn once per seed (same seed: same numbers; the sample size changes the estimate)."""
    data = [(torch.randn(30, 6) + 3 * torch.eye(6)[c % 6], torch.full((30,), c % 6)) for c in range(6)]
    kwargs = dict(tree=[0, 1, 2, 3, 4, 5], periods=[50], iterations=50, lr=0.5, batch_size=8, eval_every=25,
                  eval_data=data[0], device="cpu", seed=1)

    def linear():
        torch.manual_seed(0)  # the same initial model every time
        return nn.Linear(6, 6)

    a = testbed.simulate(linear(), data, **kwargs)
    b = testbed.simulate(linear(), data, **kwargs)
    assert a.metrics.global_train_loss.tolist() == b.metrics.global_train_loss.tolist()
    before_round = a.metrics.set_index("iteration").loc[25]
    assert before_round.worker_loss < 0.5 * before_round.global_train_loss
    # full sample: exactly the global model's mean cross-entropy over every worker's data
    full = testbed.simulate(linear(), data, train_eval_samples=10_000, **kwargs)
    model = nn.Linear(6, 6)
    model.load_state_dict(full.global_state)
    with torch.no_grad():
        expected = np.mean([float(F.cross_entropy(model(x), y)) for x, y in data])
    assert full.metrics.global_train_loss.iloc[-1] == pytest.approx(expected, rel=1e-5)
    off = testbed.simulate(linear(), data, train_eval_samples=0, **kwargs)
    assert "global_train_loss" not in off.metrics.columns
