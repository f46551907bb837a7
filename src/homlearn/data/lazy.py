"""Samples read lazily from a Zarr store through xarray, for datasets that do not fit in memory.

:class:`ZarrSamples` is a ``torch.utils.data.Dataset``: ``ds[i]`` is one sample (a dict of numpy
arrays), and ``ds.__getitems__(ids)`` (torch's batched fetch, used by the trainer and by
``DataLoader``) reads a whole batch with one orthogonal selection per variable, so each Zarr chunk
a batch touches is read once. Nothing is kept in memory between batches. A shuffled order touches
up to one chunk per sample of a batch; small sample chunks (the writers' ``batch_size``) keep that
cheap.

    train = ZarrSamples("results/datasets/composite1d.zarr", {"x": "strain", "y": "stress"},
                        index=np.flatnonzero(split == 0))
    train_model(model, train, val, collate_tensors, settings, out)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr


class ZarrSamples(torch.utils.data.Dataset):
    """Samples ``index`` of a store: ``fields`` maps sample keys to store variables.

    A variable with a ``sample`` dimension gives each sample its own slice; one without (e.g. a
    shared ``time`` axis) is the same array in every sample. Floating arrays are cast to
    ``dtype``; ``transform(sample) -> sample`` (e.g. scaling) is applied after reading.
    """

    def __init__(self, store: Path | str, fields: Mapping[str, str], index: Sequence[int] | None = None,
                 transform: Callable[[dict], dict] | None = None, dtype=np.float32):
        self.store = str(store)
        self.fields = dict(fields)
        self.transform = transform
        self.dtype = dtype
        self._ds = None
        n = self.dataset.sizes["sample"]
        self.index = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
        if len(self.index) and (self.index.min() < 0 or self.index.max() >= n):
            raise IndexError(f"sample index out of range 0..{n - 1}")

    @property
    def dataset(self) -> xr.Dataset:
        """The store, opened lazily (no dask; reads happen on indexing)."""
        if self._ds is None:  # structure and chunk files checked; a truncated chunk fails on its read
            from homlearn.data.integrity import open_dataset

            self._ds = open_dataset(self.store, decode=False, chunks=None)
        return self._ds

    def __getstate__(self):  # DataLoader workers reopen the store themselves
        return {**self.__dict__, "_ds": None}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, positions: Sequence[int]) -> list[dict]:
        ids = self.index[np.asarray(positions, dtype=np.int64)]
        uniq, inverse = np.unique(ids, return_inverse=True)  # sorted: chunk-ordered reads
        arrays = {}
        for key, name in self.fields.items():
            da = self.dataset[name]
            if "sample" in da.dims:
                da = da.transpose("sample", ...)
                arrays[key] = self._cast(da.isel(sample=uniq).values)[inverse]
            else:
                arrays[key] = np.broadcast_to(self._cast(da.values), (len(ids), *da.shape))
        samples = [{k: a[j] for k, a in arrays.items()} for j in range(len(ids))]
        return [self.transform(s) for s in samples] if self.transform else samples

    def _cast(self, a: np.ndarray) -> np.ndarray:
        return a.astype(self.dtype) if np.issubdtype(a.dtype, np.floating) else a

    def load(self) -> list[dict]:
        """All samples in memory (the same dicts the lazy path yields)."""
        return self.__getitems__(range(len(self)))
