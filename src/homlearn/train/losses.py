"""Training losses, selected by name (``train.loss``): mean squared error and relative L2."""

from __future__ import annotations

from typing import Callable

import torch


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (paper gcnn section 6)."""
    return torch.nn.functional.mse_loss(pred, y)


def relative_l2_per_sample(pred: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                           eps: float = 0.0) -> torch.Tensor:
    """(B,) relative L2 errors ``(int |pred - y|^2 dt / int |y|^2 dt)^(1/2)`` of (B, T, ...)
    histories over time and components (papers rno eq. 16, pcanet eq. 26); ``weights`` (T,) or
    (B, T): quadrature weights of the time integral (None: uniform, the dt cancel); ``eps``
    guards an all-zero target."""
    if pred.shape != y.shape:
        raise ValueError(f"pred and y must have the same shape, got {tuple(pred.shape)} and {tuple(y.shape)}")
    if pred.ndim < 2:
        raise ValueError(f"expected (B, T, ...) histories, got shape {tuple(pred.shape)}")
    err = (pred - y).pow(2).reshape(y.shape[0], y.shape[1], -1).sum(-1)
    ref = y.pow(2).reshape(y.shape[0], y.shape[1], -1).sum(-1)
    if weights is not None:
        w = weights.to(err.dtype)
        err, ref = err * w, ref * w
    return torch.sqrt(err.sum(1) / (ref.sum(1) + eps).clamp_min(torch.finfo(ref.dtype).tiny))


def relative_l2(pred: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None,
                eps: float = 0.0) -> torch.Tensor:
    """Mean over the batch of :func:`relative_l2_per_sample`."""
    return relative_l2_per_sample(pred, y, weights, eps).mean()


def relative_l2_components(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over samples and output components (last axis) of eq. 16 for each component alone, so a
    component counts whatever its magnitude (the laminate's shear stress is ~10x below its normal
    stresses, and eq. 16 over all of them hardly sees it). Histories (B, T, c); a component whose
    target is zero over a whole history counts its squared prediction against the smallest float."""
    if pred.shape != y.shape or pred.ndim != 3:
        raise ValueError(f"expected two (B, T, c) histories of one shape, got {tuple(pred.shape)} and {tuple(y.shape)}")
    err = (pred - y).pow(2).sum(1)
    ref = y.pow(2).sum(1).clamp_min(torch.finfo(y.dtype).tiny)
    return torch.sqrt(err / ref).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse, "relative_l2": relative_l2, "relative_l2_components": relative_l2_components}


def get_loss(loss: str | Callable) -> Callable:
    """A loss by name, or ``loss`` itself when it is callable (e.g. a loss summed over iterates)."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; one of {sorted(LOSSES)}") from None
