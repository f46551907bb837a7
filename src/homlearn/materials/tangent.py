"""Algorithmic tangents as linear maps on voxel fields (what Newton-Krylov needs)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

__all__ = ["Tangent", "TensorTangent", "as_float64", "pick", "voxel"]


def as_float64(value) -> torch.Tensor:
    """Material parameters as tensors: Python numbers and numpy arrays become float64 (torch's
    default float32 would silently round them); floating tensors keep their dtype."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value
    return torch.as_tensor(value, dtype=torch.float64)


def pick(value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``value[index]`` for per-cell tensors; scalars (0-d) are shared by every cell."""
    return value[index] if value.ndim else value


def voxel(c: torch.Tensor) -> torch.Tensor:
    """A scalar stays a scalar; a field ``(B, *grid)`` gets two tensor axes ``(B, 1, 1, *grid)``."""
    return c[:, None, None] if c.ndim else c


class Tangent(ABC):
    """The interface of an algorithmic tangent: a linear map ``dx -> dstress`` on fields
    ``(B, d, d, *grid)`` with a cell selection. Every material's tangent implements both."""

    @abstractmethod
    def __call__(self, dx: torch.Tensor) -> torch.Tensor:
        """The stress increment of the field increment ``dx``."""

    @abstractmethod
    def select(self, index: torch.Tensor) -> "Tangent":
        """The tangent of the cells ``index``."""


class TensorTangent(Tangent):
    """A stored fourth-order tangent ``K`` of shape ``(B, d, d, d, d, *grid)``: ``dS_ij = K_ijkl dx_kl``."""

    def __init__(self, K: torch.Tensor):
        self.K = K

    def __call__(self, dx: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bijkl...,bkl...->bij...", self.K, dx)

    def select(self, index: torch.Tensor) -> "TensorTangent":
        return TensorTangent(self.K[index])
