"""Pixel (2D) and voxel (3D) CNN baselines for the structured-grid exemplars cp_grid2d/3d (paper
'gcnn' section 6 and 6.3, ref. [33]: the CNN whose kernels are "richer", 3^d independent weights
per kernel against the GCNN's two).

``n_conv`` convolutions with ``n_filters`` channels, kernel ``kernel_size`` (3, odd), ReLU, and
periodic (circular) padding, since the unit cells are periodic; global average pooling over the
grid gives the features ``F_a`` (the analogue of eq. 18), and the same heads as the GCNNs
(:mod:`homlearn.models.heads`). Defaults are the GCNNs' (16 filters, 2 convolutions, 3 dense).
With circular padding the convolution stack commutes with periodic shifts of the image and the
pooled features are invariant to them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from homlearn.models.heads import build_head
from homlearn.models.hyper import check_hyperparameters, require_int

__all__ = ["ImageBatch", "collate_images", "PixelCNN", "CNN_MODELS", "build_cnn"]


@dataclass
class ImageBatch:
    """Images ``(B, C, *grid)`` and optional targets ``(B, n_out)``."""

    image: torch.Tensor
    y: torch.Tensor | None = None

    @property
    def n_graphs(self) -> int:
        """Batch size (named as in :class:`homlearn.models.gcnn.GraphBatch`)."""
        return int(self.image.shape[0])

    def to(self, device=None, dtype: torch.dtype | None = None) -> "ImageBatch":
        """Move to ``device``; optionally cast ``image`` and ``y`` to ``dtype``."""
        y = None if self.y is None else self.y.to(device=device, dtype=dtype or self.y.dtype)
        return replace(self, image=self.image.to(device=device, dtype=dtype or self.image.dtype), y=y)


def collate_images(samples: Sequence[dict]) -> ImageBatch:
    """Stack samples ``{"image": (C, *grid) float, "y": (n_out,) float (optional)}`` of one shape
    (2D or 3D grids) into an :class:`ImageBatch` (float32)."""
    if len(samples) == 0:
        raise ValueError("collate_images needs at least one sample")
    images = [np.asarray(s["image"], dtype=np.float32) for s in samples]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"samples disagree on the image shape (C, *grid): {sorted(shapes)}")
    if images[0].ndim not in (3, 4):
        raise ValueError(f"'image' must be (C, nx, ny) or (C, nx, ny, nz), got shape {images[0].shape}")
    has_y = ["y" in s and s["y"] is not None for s in samples]
    if any(has_y) and not all(has_y):
        raise ValueError("either all samples or none must carry a target 'y'")
    y = None
    if all(has_y):
        ys = [np.asarray(s["y"], dtype=np.float32).reshape(-1) for s in samples]
        if len({len(v) for v in ys}) != 1:
            raise ValueError("all targets 'y' must have the same length")
        y = torch.from_numpy(np.stack(ys))
    return ImageBatch(image=torch.from_numpy(np.stack(images)), y=y)


class PixelCNN(nn.Module):
    """``dim``-D CNN: ``n_conv`` x (circular conv, ReLU), global average pooling, head."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        n_filters: int = 16,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        hidden: int = 32,
        kernel_size: int = 3,
        head: str = "mlp",
        lstm_hidden: int = 32,
        n_mix: int = 16,
    ):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        in_channels = require_int("in_channels", in_channels)
        n_filters, n_conv = require_int("n_filters", n_filters), require_int("n_conv", n_conv)
        kernel_size = require_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred periodic kernel), got {kernel_size}")
        self.dim = dim
        conv = nn.Conv2d if dim == 2 else nn.Conv3d
        chans = [in_channels] + [n_filters] * n_conv
        self.convs = nn.ModuleList(conv(chans[i], chans[i + 1], kernel_size, padding=kernel_size // 2,
                                        padding_mode="circular") for i in range(n_conv))
        self.head = build_head(head, n_filters, n_out, n_dense, hidden, lstm_hidden, n_mix)

    def _image(self, batch) -> torch.Tensor:
        image = batch.image if isinstance(batch, ImageBatch) else batch
        if image.ndim != self.dim + 2 or image.shape[1] != self.convs[0].in_channels:
            raise ValueError(f"expected images (B, {self.convs[0].in_channels}, *grid) with {self.dim} grid axes, "
                             f"got shape {tuple(image.shape)}")
        return image

    def layer_maps(self, batch: ImageBatch | torch.Tensor) -> list[torch.Tensor]:
        """Output of every convolution of the stack, ``n_conv`` x ``(B, n_filters, *grid)`` (paper Fig. 16)."""
        z = self._image(batch)
        maps = []
        for conv in self.convs:
            z = torch.relu(conv(z))
            maps.append(z)
        return maps

    def feature_maps(self, batch: ImageBatch | torch.Tensor) -> torch.Tensor:
        """Output of the convolution stack ``(B, n_filters, *grid)`` (filter maps, paper Fig. 16)."""
        return self.layer_maps(batch)[-1]

    def global_features(self, batch: ImageBatch | torch.Tensor) -> torch.Tensor:
        """``F_a``: the grid average of each filter map, ``(B, n_filters)``."""
        return self.feature_maps(batch).mean(dim=tuple(range(2, 2 + self.dim)))

    def forward(self, batch: ImageBatch | torch.Tensor) -> torch.Tensor:
        return self.head(self.global_features(batch))


CNN_MODELS = {"cnn2d": 2, "cnn3d": 3}


def build_cnn(name: str, in_channels: int, n_out: int = 1, **hyper) -> PixelCNN:
    """``cnn2d`` or ``cnn3d`` (case-insensitive) with the :class:`PixelCNN` keyword arguments
    (``n_filters``, ``n_conv``, ``n_dense``, ``hidden``, ``kernel_size``, ``head``,
    ``lstm_hidden``, ``n_mix``)."""
    key = str(name).strip().lower()
    if key not in CNN_MODELS:
        raise ValueError(f"unknown CNN {name!r}; allowed names: {', '.join(sorted(CNN_MODELS))}")
    check_hyperparameters(key, PixelCNN, hyper, fixed=("in_channels", "dim", "n_out"))
    return PixelCNN(in_channels, CNN_MODELS[key], n_out=n_out, **hyper)
