"""Losses and error measures of the history surrogates.

``relative_l2`` is the test error of paper 'rno' eq. 16 (and the 'pcanet' test error, section
2.2): per sample ``(int |pred - y|^2 dt / int |y|^2 dt)^(1/2)`` over time and components,
averaged over the samples. On a uniform grid the dt cancel and the integrals are sums; for
non-uniform grids pass quadrature ``weights``.
"""

from __future__ import annotations

import torch

__all__ = ["relative_l2", "relative_l2_per_sample"]


def relative_l2_per_sample(pred: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                           eps: float = 0.0) -> torch.Tensor:
    """(B,) relative L2 errors of (B, T, ...) histories; ``weights`` (T,) or (B, T) quadrature
    weights of the time integral (None: uniform); ``eps`` guards an all-zero target."""
    if pred.shape != y.shape:
        raise ValueError(f"pred and y must have the same shape, got {tuple(pred.shape)} and {tuple(y.shape)}")
    if pred.ndim < 2:
        raise ValueError(f"expected (B, T, ...) histories, got shape {tuple(pred.shape)}")
    err = (pred - y).pow(2).reshape(y.shape[0], y.shape[1], -1).sum(-1)
    ref = y.pow(2).reshape(y.shape[0], y.shape[1], -1).sum(-1)
    if weights is not None:
        w = weights.to(err.dtype)
        err, ref = err * w, ref * w
    return torch.sqrt(err.sum(1) / (ref.sum(1) + eps))


def relative_l2(pred: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                eps: float = 0.0) -> torch.Tensor:
    """Mean over the batch of :func:`relative_l2_per_sample` (paper 'rno' eq. 16)."""
    return relative_l2_per_sample(pred, y, weights, eps).mean()
