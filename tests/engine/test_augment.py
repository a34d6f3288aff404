"""augment=crop_flip: the paper code's flip and padded crop, per sample, the same in both engines."""

import copy
import functools

import pytest
import torch

import testbed
from testbed.engine import ENGINES, BatchedEngine, MinibatchSampler, WorkerData
from testbed.engine.augment import PAD, CropFlipSampler, make_augment
from testbed.simulate import Callback

CPU = torch.device("cpu")


def images(n, rows=6, shape=(2, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(rows + j, *shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (rows + j,), generator=g))
            for j in range(n)]  # fmt: skip


def reference(img, flip, corner, fill):
    """torchvision's order on one image: RandomHorizontalFlip, then RandomCrop(padding=4) with black."""
    if flip:
        img = img.flip(-1)
    c, h, w = img.shape
    padded = fill.view(c, 1, 1).repeat(1, h + 2 * PAD, w + 2 * PAD)
    padded[:, PAD:PAD + h, PAD:PAD + w] = img
    r, s = corner.tolist()
    return padded[:, r:r + h, s:s + w]


def test_each_sample_is_flipped_then_cropped_from_the_black_padded_image():
    x = torch.randn(3, 7, 3, 12, 10)
    sampler = CropFlipSampler(x.flatten(0, 1), seed=0)
    draws = sampler.draw((3, 7))
    out = draws.apply(x)
    assert out.shape == x.shape
    torch.testing.assert_close(sampler.fill, x.amin((0, 1, 3, 4)))  # black: the darkest value per channel
    for i in range(3):
        for j in range(7):
            assert torch.equal(out[i, j], reference(x[i, j], draws.flip[i, j], draws.corner[i, j], sampler.fill)), (i, j)
    # batch-major draws (the fused path's layout) give the same images
    assert torch.equal(draws.t().apply(x.transpose(0, 1)).transpose(0, 1), out)


def test_draws_are_a_function_of_the_seed_and_cover_every_crop():
    x = torch.randn(4, 1, 8, 8)
    a, b, c = (CropFlipSampler(x, seed=s).draw((50, 40)) for s in (5, 5, 6))
    assert torch.equal(a.corner, b.corner) and torch.equal(a.flip, b.flip)
    assert not torch.equal(a.corner, c.corner)
    assert set(a.corner.unique().tolist()) == set(range(2 * PAD + 1))
    assert 0.45 < a.flip.float().mean() < 0.55


def test_augmentation_draws_leave_the_minibatch_indices_alone():
    data = WorkerData.stack(images(3), CPU)
    plain = MinibatchSampler(data, 4, seed=2)
    augmented = MinibatchSampler(data, 4, seed=2, augment="crop_flip", augment_seed=9)
    for _ in range(3):
        p, a = plain.next(), augmented.next()
        assert torch.equal(p.index, a.index) and p.augment is None and a.augment.flip.shape == (3, 4)


def test_only_images_and_known_names_are_taken():
    with pytest.raises(ValueError, match=r"crop_flip needs image samples \[C, H, W\], got samples of shape \(60,\)"):
        make_augment("crop_flip", torch.zeros(5, 60), seed=0)
    with pytest.raises(ValueError, match="augment: must be one of none, crop_flip, got 'mixup'"):
        make_augment("mixup", torch.zeros(5, 3, 8, 8), seed=0)
    assert make_augment("none", torch.zeros(5, 60), seed=0) is None


def small_cnn():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))  # fmt: skip
    return net.double()


def train(engine="batched", **kwargs):
    settings = dict(model=small_cnn(), worker_data=images(6), tree=[[0, 1, 2], [3, 4, 5]], periods=[6, 2],
                    iterations=12, lr=0.05, batch_size=4, momentum=0.5, seed=3, device="cpu", engine=engine)  # fmt: skip
    return testbed.simulate(**{**settings, **kwargs})


@pytest.mark.parametrize("path", ["fused", "vmap"])
def test_batched_engine_trains_on_the_same_augmented_images_as_the_loop(path, monkeypatch):
    monkeypatch.setitem(ENGINES, "batched", functools.partial(BatchedEngine, path=path))
    batched, loop = train("batched", augment="crop_flip"), train("loop", augment="crop_flip")
    for k, v in loop.global_state.items():
        torch.testing.assert_close(batched.global_state[k], v, rtol=1e-9, atol=1e-9, msg=lambda m: f"{k}: {m}")
    plain = train("batched")
    assert not torch.equal(plain.global_state["0.weight"], batched.global_state["0.weight"])  # it did augment


def test_augmented_runs_repeat_and_resume_exactly():
    class Snapshot(Callback):
        def on_start(self, run):
            self.run = run

        def after_iteration(self, t):
            if t == 5:
                self.state = copy.deepcopy(self.run.state_dict())

    snapshot = Snapshot()
    full = train(augment="crop_flip", callbacks=[snapshot])
    again = train(augment="crop_flip")
    resumed = train(augment="crop_flip", resume=snapshot.state)
    for k, v in full.global_state.items():
        assert torch.equal(again.global_state[k], v) and torch.equal(resumed.global_state[k], v), k
