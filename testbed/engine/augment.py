"""The H-SGD paper code's CIFAR-10 augmentation, drawn per sample, applied on the device.

The paper's code loads CIFAR-10 through ``RandomHorizontalFlip()`` then ``RandomCrop(32,
padding=4)`` (torchvision, on each image before normalising). Here every sample of a
minibatch gets a flip bit and a crop corner drawn from the augmentation's own generator
(CPU, so every device agrees); the draws travel with the :class:`Batch`, so both engines
see the same images, and applying them is one gather over the stacked workers' batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUGMENTS = ("none", "crop_flip")
PAD = 4  # RandomCrop(32, padding=4)


@dataclass(frozen=True)
class CropFlip:
    """One draw per sample: its leading dims match the index it augments ([n, b])."""

    corner: torch.Tensor  # int64 [..., 2]: (row, col) of the crop in the padded image, 0 .. 2 * PAD
    flip: torch.Tensor  # bool [...]: mirror left-right first
    fill: torch.Tensor  # [C] the padding per channel: black, as torchvision pads before normalising

    def __getitem__(self, key) -> CropFlip:
        return CropFlip(self.corner[key], self.flip[key], self.fill)

    def t(self) -> CropFlip:
        """The first two dims swapped, for batch-major gathers."""
        return CropFlip(self.corner.transpose(0, 1), self.flip.t(), self.fill)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [..., C, H, W] (leading dims as the draws') flipped and cropped."""
        lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
        flat = x.reshape(-1, c, h, w)
        padded = self.fill.view(1, c, 1, 1).expand(len(flat), c, h + 2 * PAD, w + 2 * PAD).clone()
        padded[:, :, PAD:PAD + h, PAD:PAD + w] = flat
        corner, flip = self.corner.reshape(-1, 2), self.flip.reshape(-1)
        rows = corner[:, :1] + torch.arange(h, device=x.device)  # [m, H]
        cols = corner[:, 1:] + torch.arange(w, device=x.device)  # [m, W]
        # flipping before a crop at column j = cropping the unflipped image at its mirror
        cols = torch.where(flip[:, None], w + 2 * PAD - 1 - cols, cols)
        # one gather of flat pixel offsets: several times cheaper than a four-way advanced index
        pixel = (rows[:, :, None] * (w + 2 * PAD) + cols[:, None, :]).view(len(flat), 1, h * w)
        out = padded.view(len(flat), c, -1).gather(2, pixel.expand(-1, c, -1))
        return out.view(*lead, c, h, w)


class CropFlipSampler:
    """Draws a :class:`CropFlip` per minibatch from its own torch.Generator."""

    def __init__(self, images: torch.Tensor, seed: int):
        check_augment("crop_flip", tuple(images.shape[1:]))
        # a normalised channel's smallest value is black's (CIFAR-10 holds black pixels in every class)
        self.fill = images.amin((0, 2, 3))
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, shape: tuple[int, ...]) -> CropFlip:
        """Draws on the host (the caller moves them to the device)."""
        corner = torch.randint(0, 2 * PAD + 1, (*shape, 2), generator=self.generator)
        flip = torch.rand(shape, generator=self.generator) < 0.5
        return CropFlip(corner, flip, self.fill)


def check_augment(augment: str, sample_shape: tuple[int, ...] | None = None) -> None:
    """Refuse an unknown augmentation, or (shape given) crop_flip of samples that are not images."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment: must be one of {', '.join(AUGMENTS)}, got {augment!r}")
    if augment == "crop_flip" and sample_shape is not None and len(sample_shape) != 3:
        raise ValueError(f"augment: crop_flip needs image samples [C, H, W], got samples of shape {tuple(sample_shape)}")


def make_augment(augment: str, images: torch.Tensor, seed: int) -> CropFlipSampler | None:
    """The sampler of draws ``augment`` names (None: no augmentation)."""
    check_augment(augment)
    return CropFlipSampler(images, seed) if augment == "crop_flip" else None
