"""Batches for the trainer: iteration in a given sample order, collation, device moves, and the
convention that turns a batch into (prediction, target).

A training set is any sized, integer-indexable collection of samples (a list of dicts in memory,
or a lazy :class:`homlearn.data.lazy.ZarrSamples`); when it has ``__getitems__`` (torch's batched
fetch) a whole batch is read at once, so a lazy store is read chunk by chunk, not per sample.
A ``collate`` function turns a list of samples into one batch:

- graph samples: :func:`homlearn.models.gcnn.collate_graphs` (a ``GraphBatch`` with ``.y``);
- fixed-shape samples (histories ``(T, ...)``, fields): :func:`collate_tensors`, a dict of
  tensors with a leading batch dimension ``(B, T, ...)``.

:func:`default_forward` calls the model on a batch: a batch with attribute ``y`` is passed whole
(``model(batch)``, target ``batch.y``); a mapping is passed as keyword arguments without its
``"y"`` (``model(x=..., dt=...)``, target ``batch["y"]``); a tuple ``(x, y)`` as ``model(x)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterator

import numpy as np
import torch


def collate_tensors(samples: Sequence[Mapping[str, Any]], dtype: torch.dtype = torch.float32) -> dict:
    """Stack each key of equally shaped samples into a tensor ``(B, ...)``; floating arrays are
    cast to ``dtype``, integer ones kept."""
    if not samples:
        raise ValueError("collate_tensors needs at least one sample")
    out = {}
    for key in samples[0]:
        t = torch.as_tensor(np.stack([np.asarray(s[key]) for s in samples]))
        out[key] = t.to(dtype) if t.is_floating_point() else t
    return out


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move tensors (also inside mappings, tuples and objects with ``.to``) to ``device``."""
    if isinstance(batch, torch.Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def split_batch(batch: Any) -> tuple[Callable[[Callable], Any], Any]:
    """``(call, target)``: ``call(model)`` runs the model on the batch's inputs."""
    if hasattr(batch, "y") and not isinstance(batch, (Mapping, tuple, list, torch.Tensor)):
        return (lambda m: m(batch)), batch.y
    if isinstance(batch, Mapping):
        inputs = {k: v for k, v in batch.items() if k != "y"}
        return (lambda m: m(**inputs)), batch.get("y")
    if isinstance(batch, (tuple, list)):
        return (lambda m: m(batch[0])), (batch[1] if len(batch) > 1 else None)
    return (lambda m: m(batch)), None


def default_forward(model: Callable, batch: Any) -> tuple[Any, Any]:
    """(prediction, target) of ``model`` on ``batch`` (see the module docstring)."""
    call, target = split_batch(batch)
    return call(model), target


def batch_len(target: Any) -> int:
    """Samples in a batch, from its target (or prediction): leading dimension."""
    if isinstance(target, (list, tuple)):
        target = target[0]
    return int(target.shape[0])


def fetch(data: Sequence, ids: np.ndarray) -> list:
    """Samples ``ids`` of ``data``, in one batched read when the dataset supports it."""
    if hasattr(data, "__getitems__"):
        return list(data.__getitems__([int(i) for i in ids]))
    return [data[int(i)] for i in ids]


def iterate_batches(data: Sequence, batch_size: int, collate: Callable,
                    order: np.ndarray | None = None) -> Iterator[Any]:
    """Collated batches of ``data`` in ``order`` (default: stored order)."""
    order = np.arange(len(data)) if order is None else np.asarray(order)
    for s in range(0, len(order), batch_size):
        yield collate(fetch(data, order[s:s + batch_size]))


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The batch order of ``epoch``: a permutation seeded by (seed, epoch) alone, so a resumed
    run draws the same order as an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).permutation(n)
