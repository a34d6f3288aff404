"""Model registry: parameter counts (checked against hand arithmetic), shapes, vmap-ability, seeds."""

import copy

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from testbed.models import MODEL_NAMES, build_model, count_parameters

# Every count below is worked out by hand: conv = c_in * c_out * k * k (+ c_out bias),
# linear = n_in * n_out + n_out, BatchNorm = 2 * C (weight and bias; running stats are buffers).
EXPECTED = {
    # conv 3x3: 3*64*9+64 = 1,792 | 64*128*9+128 = 73,856 | 128*256*9+256 = 295,168
    # | 256*256*9+256 = 590,080 | 256*512*9+512 = 1,180,160 | 3 x (512*512*9+512) = 3 x 2,359,808
    # sum 9,220,480; classifier 512*10+10 = 5,130  ->  9,225,610
    ("vgg11", ()): 9_225_610,
    # batch_norm: the 8 conv biases go (64+128+256+256+4*512 = 2,752) and BN adds 2*2,752 = 5,504
    # 9,225,610 - 2,752 + 5,504 = 9,228,362
    ("vgg11", (("batch_norm", True),)): 9_228_362,
    # torchvision's ImageNet VGG-11: the same 8 convs 9,220,480; 7*7*512*4096+4096 = 102,764,544
    # | 4096*4096+4096 = 16,781,312 | 4096*1000+1000 = 4,097,000  ->  132,863,336
    ("vgg11_imagenet", ()): 132_863_336,
    # stem 3*64*9 + BN 128 = 1,856
    # stage 1: 2 blocks x (2 x 64*64*9 + 2 x BN 128) = 2 x 73,984 = 147,968
    # stage 2: block 1 64*128*9 + 128*128*9 + 2 x 256 + shortcut 64*128 + 256 = 230,144;
    #          block 2 2 x 147,456 + 512 = 295,424                            -> 525,568
    # stage 3: 128*256*9 + 256*256*9 + 1,024 + 128*256 + 512 = 919,040; 2 x 589,824 + 1,024 = 1,180,672
    #                                                                          -> 2,099,712
    # stage 4: 256*512*9 + 512*512*9 + 2,048 + 256*512 + 1,024 = 3,673,088; 2 x 2,359,296 + 2,048
    #          = 4,720,640                                                     -> 8,393,728
    # fc 512*10+10 = 5,130; total 1,856 + 147,968 + 525,568 + 2,099,712 + 8,393,728 + 5,130 = 11,173,962
    ("resnet18", ()): 11_173_962,
    # 3*6*25+6 = 456 | 6*16*25+16 = 2,416 | 16*5*5*120+120 = 48,120 | 120*84+84 = 10,164 | 84*10+10 = 850
    ("cifar_cnn", ()): 62_006,
    # 1*32*25+32 = 832 | 32*64*25+64 = 51,264 | 7*7*64*2048+2048 = 6,424,576 | 2048*62+62 = 127,038
    ("femnist_cnn", ()): 6_603_710,
    # conv 3*32*9+32 = 896, then 3 x (32*32*9+32) = 3 x 9,248; BN 4 x 64 = 256;
    # 84 -> 42 -> 21 -> 11 -> 6, dense 6*6*32*2+2 = 2,306; 896 + 27,744 + 256 + 2,306 = 31,202
    ("celeba_cnn", ()): 31_202,
    # FedAvg's MNIST 2NN: 784*200+200 = 157,000 | 200*200+200 = 40,200 | 200*10+10 = 2,010
    ("mlp", ()): 199_210,
    # 784*10+10
    ("logreg", ()): 7_850,
    # Synthetic: 60*10+10
    ("logreg", (("in_features", 60),)): 610,
    # mlp on Synthetic, one hidden layer of 32: 60*32+32 = 1,952 | 32*10+10 = 330
    ("mlp", (("in_features", 60), ("hidden", (32,)))): 2_282,
}


@pytest.mark.parametrize("key", list(EXPECTED), ids=[f"{n}{dict(o)}" for n, o in EXPECTED])
def test_parameter_counts(key):
    name, options = key
    with torch.device("meta"):  # shapes only: the 132.9M-parameter VGG-11 allocates nothing
        assert count_parameters(build_model(name, **dict(options))) == EXPECTED[key]


def test_vgg11_imagenet_is_torchvisions_vgg11_with_its_initial_weights():
    """The paper code's model: torchvision's shapes and initialisation, 1,000 outputs on 32x32
    CIFAR images, no dropout (parameter-free), no in-place ReLU (vmap)."""
    from torchvision.models import vgg11

    torch.manual_seed(3)
    theirs = vgg11(weights=None)
    ours = build_model("vgg11_imagenet", seed=3)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), theirs.parameters()))
    assert not any(isinstance(m, torch.nn.Dropout) or getattr(m, "inplace", False) for m in ours.modules())
    assert ours(torch.zeros(2, 3, 32, 32)).shape == (2, 1000)


def test_vgg11_imagenet_takes_the_batched_engines_fused_path():
    from testbed.engine.fused import FusedForward

    with torch.device("meta"):  # tracing and checking the layers allocate nothing
        fused = FusedForward(build_model("vgg11_imagenet"))
    assert len(fused.sinkable_weights) == 3  # the three linear layers write their gradients straight into SGD's buffers


def test_vgg11_imagenet_prices_the_papers_531_mb_as_the_paper_preset_does():
    from testbed.experiment.config import preset
    from testbed.experiment.modelcost import model_bytes

    paper = preset("paper")
    with torch.device("meta"):
        priced = model_bytes(build_model("vgg11_imagenet"), paper.model_bytes_per_param)
    assert priced == paper.priced_params * paper.model_bytes_per_param == 531_453_344


def test_every_registered_model_has_a_count():
    assert {name for name, _ in EXPECTED} == set(MODEL_NAMES)


def _input(model_name: str, batch: int) -> torch.Tensor:
    shape = {"femnist_cnn": (1, 28, 28), "celeba_cnn": (3, 84, 84), "mlp": (1, 28, 28), "logreg": (1, 28, 28)}
    return torch.randn(batch, *shape.get(model_name, (3, 32, 32)), generator=torch.Generator().manual_seed(0))


# the 531 MB ImageNet VGG-11 takes seconds and gigabytes per copy on a CPU
HEAVY = {"vgg11_imagenet"}
LIGHT_MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in MODEL_NAMES]


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_forward_shapes(name):
    model = build_model(name, seed=0)
    classes = {"femnist_cnn": 62, "celeba_cnn": 2, "vgg11_imagenet": 1000}.get(name, 10)
    assert model(_input(name, 3)).shape == (3, classes)


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_runs_under_vmap_over_stacked_weights(name):
    # What the batched engine does: stack n copies' parameters and buffers, then run
    # functional_call under vmap (train mode, so BatchNorm updates its stacked running stats).
    copies = [build_model(name, seed=s) for s in range(2)]
    reference = [copy.deepcopy(m) for m in copies]
    params, buffers = stack_module_state(copies)
    base = copy.deepcopy(copies[0]).to("meta")
    x = torch.stack([_input(name, 2), _input(name, 2) * 0.5])

    def run(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    out = vmap(run)(params, buffers, x)
    for i, m in enumerate(reference):
        assert torch.allclose(out[i], m(x[i]), atol=1e-4, rtol=1e-4)
        for key, buf in m.named_buffers():
            if buf.is_floating_point():
                assert torch.allclose(buffers[key][i], buf, atol=1e-5)


def test_seed_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b = build_model("cifar_cnn", seed=7), build_model("cifar_cnn", seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = build_model("cifar_cnn", seed=8)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_input_shape_and_sizes():
    assert count_parameters(build_model("logreg", input_shape=(60,))) == 610
    assert count_parameters(build_model("femnist_cnn", input_shape=(1, 28, 28), num_classes=62)) == 6_603_710
    grey = build_model("cifar_cnn", in_channels=1, input_size=28)  # LeNet on MNIST: 16*4*4 features
    assert grey(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert build_model("vgg11", input_size=64)(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


@pytest.mark.parametrize(
    "args, kwargs, word",
    [
        (("transformer",), {}, "model"),
        (("vgg11",), {"dropout": 0.5}, "dropout"),
        (("cifar_cnn",), {"num_classes": 0}, "num_classes"),
        (("cifar_cnn",), {"input_size": 8}, "input_size"),
        (("vgg11",), {"input_size": 16}, "input_size"),
        (("vgg11_imagenet",), {"input_size": 16}, "input_size"),
        (("vgg11_imagenet",), {"in_channels": 1}, "in_channels"),
        (("vgg11_imagenet",), {"num_classes": 1001}, "num_classes"),
        (("femnist_cnn",), {"input_shape": (1, 28, 20)}, "input_shape"),
        (("mlp",), {"hidden": (0,)}, "hidden"),
        (("logreg",), {"in_features": -1}, "in_features"),
    ],
)
def test_bad_arguments_name_the_argument(args, kwargs, word):
    with pytest.raises(ValueError, match=word):
        build_model(*args, **kwargs)
