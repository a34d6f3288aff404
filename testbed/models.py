"""The model registry: ``build_model(name, ...)`` for the papers' and LEAF's models.

Every model is built from plain modules only (Conv2d, Linear, BatchNorm2d, MaxPool2d,
ReLU, Flatten, AdaptiveAvgPool2d), with no in-place activations, no ``.view`` and no
data-dependent Python control flow, so the engine can run many copies at once with
``torch.func.functional_call`` under ``torch.func.vmap`` over stacked weights.

Parameter counts (default sizes) are checked in ``tests/test_models.py`` against the
arithmetic written out there: vgg11 9,225,610 (9,228,362 with BatchNorm), vgg11_imagenet
132,863,336, resnet18 11,173,962, cifar_cnn 62,006, femnist_cnn 6,603,710, celeba_cnn 31,202, mlp on MNIST
199,210, logreg on Synthetic 610.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

# --------------------------------------------------------------------------- CIFAR models


def vgg11(num_classes: int, in_channels: int, input_size: int, *, batch_norm: bool = False) -> nn.Module:
    """VGG-11 for 32x32 inputs (config A of Simonyan & Zisserman): 8 conv 3x3 layers and
    one linear classifier, as in the usual CIFAR ports; optional BatchNorm after each conv."""
    cfg = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if not isinstance(v, int):  # "M": a 2x2 max-pool
            layers.append(nn.MaxPool2d(2))
            continue
        # With BatchNorm right after, a conv bias is redundant (BN's shift absorbs it).
        layers.append(nn.Conv2d(c, v, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        c = v
    side = input_size // 32
    _check_size("vgg11", input_size, side >= 1, "at least 32")
    layers += [nn.Flatten(), nn.Linear(512 * side * side, num_classes)]
    return nn.Sequential(*layers)


IMAGENET_CLASSES = 1000


def vgg11_imagenet(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """torchvision's ImageNet VGG-11 (132,863,336 parameters), as the H-SGD paper's code
    trains it on CIFAR-10 (``torchvision.models.vgg11()``, shapes unchanged): 1,000 outputs
    whatever the dataset's classes (its labels index the first logits), and the 7x7
    adaptive average pool repeats a 32x32 image's 1x1 feature map, so 32x32 inputs need no
    other change. Built from torchvision's modules, so the initial weights are drawn as
    torchvision draws them; its two Dropout(0.5) layers are left out (they hold no
    parameters, and the stacked engines draw no dropout masks)."""
    from torchvision.models import vgg11 as torchvision_vgg11

    _check_size("vgg11_imagenet", input_size, input_size >= 32, "at least 32")
    if in_channels != 3:
        raise ValueError(f"in_channels: model 'vgg11_imagenet' takes RGB images (3 channels), got {in_channels}")
    if num_classes > IMAGENET_CLASSES:
        raise ValueError(f"num_classes: model 'vgg11_imagenet' has {IMAGENET_CLASSES} outputs, got {num_classes} classes")
    net = torchvision_vgg11(weights=None)
    layers = [*net.features, net.avgpool, nn.Flatten(), *net.classifier]
    # in-place ReLUs would break vmap's functional calls
    return nn.Sequential(*(nn.ReLU() if isinstance(m, nn.ReLU) else m for m in layers if not isinstance(m, nn.Dropout)))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BatchNorm, plus a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, batch_norm: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_norm(c_in, c_out, 3, stride, batch_norm),
            nn.ReLU(),
            *_conv_norm(c_out, c_out, 3, 1, batch_norm),
        )
        # Built once from the shapes, so forward has no branch on the data.
        project = stride != 1 or c_in != c_out
        self.shortcut = (
            nn.Sequential(*_conv_norm(c_in, c_out, 1, stride, batch_norm)) if project else nn.Identity()
        )
        self.out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


def _conv_norm(c_in: int, c_out: int, k: int, stride: int, batch_norm: bool) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=not batch_norm)
    return [conv, nn.BatchNorm2d(c_out)] if batch_norm else [conv]


def resnet18(num_classes: int, in_channels: int, input_size: int, *, batch_norm: bool = True) -> nn.Module:
    """ResNet-18, CIFAR variant (He et al. 2016 as ported for 32x32 inputs): a 3x3 stem with
    no max-pool, four stages of two basic blocks (64, 128, 256, 512), global average pool."""
    _check_size("resnet18", input_size, input_size >= 8, "at least 8")
    layers: list[nn.Module] = [*_conv_norm(in_channels, 64, 3, 1, batch_norm), nn.ReLU()]
    c = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(c, width, stride, batch_norm), BasicBlock(width, width, 1, batch_norm)]
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def cifar_cnn(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """The small LeNet-style CNN of the H-SGD paper code: conv 6@5x5, pool, conv 16@5x5,
    pool, dense 120, 84, classes."""
    side = ((input_size - 4) // 2 - 4) // 2
    _check_size("cifar_cnn", input_size, side >= 1, "at least 16")
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )  # fmt: skip


# --------------------------------------------------------------------------- LEAF models


def femnist_cnn(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LEAF's FEMNIST CNN: conv 32@5x5 'same', pool 2, conv 64@5x5 'same', pool 2, dense 2048."""
    side = input_size // 4
    _check_size("femnist_cnn", input_size, side >= 1, "at least 4")
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 2048), nn.ReLU(),
        nn.Linear(2048, num_classes),
    )  # fmt: skip


def celeba_cnn(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LEAF's CelebA CNN: 4 x [conv 32@3x3 'same', BatchNorm, max-pool 2 'same', ReLU], dense.

    ``ceil_mode=True`` reproduces TensorFlow's 'same' pooling: 84 -> 42 -> 21 -> 11 -> 6.
    """
    layers: list[nn.Module] = []
    c, side = in_channels, input_size
    for _ in range(4):
        layers += [
            nn.Conv2d(c, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.ReLU(),
        ]
        c, side = 32, math.ceil(side / 2)
    layers += [nn.Flatten(), nn.Linear(32 * side * side, num_classes)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- small models


def mlp(num_classes: int, in_features: int, *, hidden: Sequence[int] = (200, 200)) -> nn.Module:
    """Fully connected ReLU network (default: FedAvg's MNIST 2NN, two hidden layers of 200)."""
    widths = [in_features, *hidden]
    if any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be a list of positive ints, got {hidden!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*layers)


def logreg(num_classes: int, in_features: int) -> nn.Module:
    """Multinomial logistic regression (FedProx's model for Synthetic and MNIST)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


# --------------------------------------------------------------------------- registry

#: name -> (builder, default (num_classes, in_channels, input_size))
_MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int]]] = {
    "vgg11": (vgg11, (10, 3, 32)),
    "vgg11_imagenet": (vgg11_imagenet, (10, 3, 32)),
    "resnet18": (resnet18, (10, 3, 32)),
    "cifar_cnn": (cifar_cnn, (10, 3, 32)),
    "femnist_cnn": (femnist_cnn, (62, 1, 28)),
    "celeba_cnn": (celeba_cnn, (2, 3, 84)),
    "mlp": (mlp, (10, 1, 28)),
    "logreg": (logreg, (10, 1, 28)),
}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)
_FLAT = ("mlp", "logreg")  # models that take a flat feature vector


def build_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    seed: int | None = None,
    **options: object,
) -> nn.Module:
    """Build a model by name.

    ``num_classes``, ``in_channels`` and ``input_size`` (height = width) default to the
    model's own dataset: 10/3/32 for the CIFAR models, 62/1/28 for femnist_cnn, 2/3/84
    for celeba_cnn, 10/1/28 for mlp and logreg. ``input_shape`` (one sample's shape, e.g.
    ``FederatedData.input_shape``: ``(3, 32, 32)`` or ``(60,)``) sets them all at once;
    mlp and logreg also take ``in_features``. ``seed`` makes the initial weights a
    function of the seed alone (the global torch RNG is left as it was). Other
    ``options`` go to the model (``batch_norm`` for vgg11 / resnet18, ``hidden`` for mlp).
    """
    entry = _MODELS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"model: unknown model name {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    builder, (d_classes, d_channels, d_size) = entry
    num_classes = d_classes if num_classes is None else num_classes
    in_channels = d_channels if in_channels is None else in_channels
    input_size = d_size if input_size is None else input_size
    in_features = options.pop("in_features", None) if name in _FLAT else None
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if name in _FLAT:
            in_features = math.prod(shape)
        elif len(shape) == 3 and shape[1] == shape[2]:
            in_channels, input_size = shape[0], shape[1]
        else:
            raise ValueError(f"input_shape: model {name!r} takes square images (C, H, H), got {shape}")
    for arg, value in (
        ("num_classes", num_classes),
        ("in_channels", in_channels),
        ("input_size", input_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    allowed = [p for p, v in inspect.signature(builder).parameters.items() if v.kind is v.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options: model {name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(allowed + (['in_features'] if name in _FLAT else [])) or 'no options'}"
        )
    if name in _FLAT:
        in_features = in_channels * input_size * input_size if in_features is None else in_features
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        args: tuple = (num_classes, in_features)
    else:
        args = (num_classes, in_channels, input_size)
    if seed is None:
        return builder(*args, **options)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(seed)
        return builder(*args, **options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (buffers such as BatchNorm running stats not included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_size(name: str, input_size: int, ok: bool, rule: str) -> None:
    if not ok:
        raise ValueError(f"input_size: model {name!r} needs inputs of side {rule}, got {input_size}")
