"""Training losses, selected by name (``train.loss``): mean squared error and relative L2."""

from __future__ import annotations

from typing import Callable

import torch


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (paper gcnn section 6)."""
    return torch.nn.functional.mse_loss(pred, y)


def relative_l2(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ||pred - y|| / ||y||, norms over all but the batch dimension
    (papers pcanet eq. 26 and rno eq. 16)."""
    err = torch.linalg.vector_norm((pred - y).flatten(1), dim=1)
    ref = torch.linalg.vector_norm(y.flatten(1), dim=1)
    return torch.mean(err / ref.clamp_min(torch.finfo(ref.dtype).tiny))


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": mse, "relative_l2": relative_l2}


def get_loss(loss: str | Callable) -> Callable:
    """A loss by name, or ``loss`` itself when it is callable (e.g. a loss summed over iterates)."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; one of {sorted(LOSSES)}") from None
