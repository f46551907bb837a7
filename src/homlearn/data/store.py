"""Zarr v3 dataset stores written by many processes, read through xarray (DESIGN section 4).

Layout
------
* Per-sample variables have a leading ``sample`` dimension chunked by the batch size, so one
  Dask task (one batch) owns exactly one chunk.
* Ragged variables (meshes and graphs of different sizes: ``cell``, ``point``, ``edge``,
  ``grain``) are stored flat. Each batch owns one block of ``batch_size * capacity`` rows of the
  flat dimension, which is exactly one chunk; inside its block a batch packs its samples
  contiguously, and ``<dim>_offset[sample]`` / ``<dim>_count[sample]`` locate each sample.
  The unused tail of a block is never read and compresses to nothing.
* ``status[sample]``: 0 pending, 1 done, negative = failed with a code (``STATUS_CODES``).
  A batch writes its data first and its status last, so a killed stage resumes by redoing
  exactly the batches that still have pending samples.

Zarr v3 has no locks: a write that covers part of a chunk (or, for sharded arrays, of a shard)
from two processes silently loses data. `write_block` therefore refuses any region that is not
made of whole chunks/shards.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import zarr

STATUS_PENDING = 0
STATUS_DONE = 1
STATUS_INADMISSIBLE = -5
STATUS_CODES = {
    0: "pending",
    1: "done",
    -1: "meshing failed",
    -2: "solver failed or did not converge",
    -3: "mesh larger than the storage capacity (max_cells)",
    -4: "input sample missing or failed upstream",
    -5: "input path not admissible (e.g. a stretch that is not positive definite)",
    -9: "unexpected error",
}


# zarr's default codec (zstd level 0) with the frame checksum on: a damaged chunk fails to decode
CHECKSUMMED_ZSTD = zarr.codecs.ZstdCodec(level=0, checksum=True)
# Every chunk a writer touches is stored, all-fill ones too, so that a chunk file missing from a
# written batch is always a loss (homlearn.data.integrity); zarr skips them by default.
zarr.config.set({"array.write_empty_chunks": True})


class RegionError(ValueError):
    """A write that does not cover whole chunks/shards (it could silently lose rows in zarr v3)."""


@dataclass(frozen=True)
class Variable:
    """One stored variable: its dimensions (first one ``sample`` or a ragged dim), dtype, attrs."""

    dims: tuple[str, ...]
    dtype: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    fill_value: Any = 0


@dataclass(frozen=True)
class Layout:
    """Sizes of a store: samples, batch size, per-sample capacity of each ragged dimension,
    and the lengths of the fixed trailing dimensions (e.g. ``component``: 2)."""

    n_samples: int
    batch_size: int
    capacity: Mapping[str, int]
    fixed: Mapping[str, int] = field(default_factory=dict)

    @property
    def n_batches(self) -> int:
        return -(-self.n_samples // self.batch_size)

    def batch_samples(self, batch: int) -> slice:
        return slice(batch * self.batch_size, min((batch + 1) * self.batch_size, self.n_samples))

    def block(self, dim: str, batch: int) -> slice:
        size = self.batch_size * self.capacity[dim]
        return slice(batch * size, (batch + 1) * size)

    def length(self, dim: str) -> int:
        if dim == "sample":
            return self.n_samples
        if dim in self.capacity:
            return self.n_batches * self.batch_size * self.capacity[dim]
        return self.fixed[dim]

    def chunk(self, dim: str) -> int:
        if dim == "sample":
            return self.batch_size
        if dim in self.capacity:
            return self.batch_size * self.capacity[dim]
        return self.fixed[dim]


def create_store(path: Path | str, layout: Layout, variables: Mapping[str, Variable],
                 attrs: Mapping[str, Any] | None = None, overwrite: bool = False,
                 content: Mapping[str, Any] | None = None, replace_stale: bool = False) -> zarr.Group:
    """Create a store with the full shape of every variable, plus status and ragged offsets.

    ``content`` is what determines the stored values (seeds, sizes, material constants). An
    existing store with the same layout and content is opened as it is (resume). One made from
    other settings is stale: it is replaced when ``replace_stale`` (a rerun after a config
    change), an error otherwise. ``overwrite`` always starts afresh.
    """
    path = Path(path)
    content = json.loads(json.dumps(dict(content or {})))  # as it reads back from the attrs
    if path.exists() and not overwrite:
        group = zarr.open_group(path, mode="r+")
        stored = (group.attrs.get("layout"), group.attrs.get("content", {}))
        wanted = (_layout_attrs(layout), content)
        if stored == wanted:
            return group
        changed = sorted(k for k in set(stored[1]) | set(content) if stored[1].get(k) != content.get(k))
        what = f"layout {stored[0]} -> {wanted[0]}" if stored[0] != wanted[0] else f"settings {changed}"
        if not replace_stale:
            raise ValueError(f"{path} exists but was made with other {what}; delete it or use "
                             "another results folder")
        print(f"{path}: made with other {what}; replacing it", file=sys.stderr)
        overwrite = True
    if overwrite and path.exists():
        shutil.rmtree(path)
    group = zarr.open_group(path, mode="w", zarr_format=3)
    all_vars = dict(variables)
    all_vars["status"] = Variable(("sample",), "int8", {
        "long_name": "sample status", "codes": {str(k): v for k, v in STATUS_CODES.items()}})
    for dim in layout.capacity:
        all_vars[f"{dim}_offset"] = Variable(("sample",), "int64",
                                             {"long_name": f"first row of each sample along '{dim}'"})
        all_vars[f"{dim}_count"] = Variable(("sample",), "int32",
                                            {"long_name": f"rows of each sample along '{dim}'"})
    for name, var in all_vars.items():
        shape = tuple(layout.length(d) for d in var.dims)
        chunks = tuple(layout.chunk(d) for d in var.dims)
        arr = group.create_array(name, shape=shape, chunks=chunks, dtype=var.dtype,
                                 fill_value=var.fill_value, dimension_names=var.dims,
                                 compressors=CHECKSUMMED_ZSTD)
        arr.attrs.update(dict(var.attrs))
    group.attrs.update(dict(attrs or {}))
    group.attrs["layout"] = _layout_attrs(layout)
    group.attrs["content"] = content
    group.attrs["empty_chunks_written"] = True  # writers store all-fill chunks: a missing one is a loss
    return group


def _layout_attrs(layout: Layout) -> dict:
    return {"n_samples": layout.n_samples, "batch_size": layout.batch_size,
            "capacity": dict(layout.capacity), "fixed": dict(layout.fixed)}


def layout_of(group: zarr.Group) -> Layout:
    a = group.attrs["layout"]
    return Layout(a["n_samples"], a["batch_size"], a["capacity"], a.get("fixed", {}))


def write_block(array: zarr.Array, region: tuple[slice, ...] | slice, data: np.ndarray) -> None:
    """Write ``data`` to ``region`` of ``array``, refusing regions that are not whole chunks."""
    region = region if isinstance(region, tuple) else (region,)
    region = region + (slice(None),) * (array.ndim - len(region))
    shards = getattr(array, "shards", None)
    unit = shards if shards is not None else array.chunks
    for axis, (sl, size, step) in enumerate(zip(region, array.shape, unit)):
        start, stop, stride = sl.indices(size)
        if stride != 1:
            raise RegionError(f"{array.name}: strided region on axis {axis} is not allowed")
        if start % step or (stop % step and stop != size):
            raise RegionError(
                f"{array.name}: region [{start}:{stop}) on axis {axis} does not cover whole "
                f"chunks/shards of {step}; zarr v3 can silently lose rows on such writes")
    array[region] = data


class BatchWriter:
    """Collects one batch's samples (per-sample and ragged arrays) and writes whole blocks."""

    def __init__(self, group: zarr.Group, batch: int):
        self.group = group
        self.layout = layout_of(group)
        self.batch = batch
        self.samples = self.layout.batch_samples(batch)
        n = self.samples.stop - self.samples.start
        self.status = np.zeros(n, dtype=np.int8)
        self._ragged: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._per_sample: dict[str, dict[int, np.ndarray]] = {}
        self._count = {d: np.zeros(n, dtype=np.int32) for d in self.layout.capacity}
        self._arrays = dict(group.arrays())

    def add(self, local: int, per_sample: Mapping[str, Any], ragged: Mapping[str, np.ndarray]) -> None:
        """Record sample ``local`` (0-based within the batch) as done."""
        for dim, cap in self.layout.capacity.items():
            rows = {len(v) for k, v in ragged.items() if self._arrays[k].metadata.dimension_names[0] == dim}
            if len(rows) > 1:
                raise ValueError(f"ragged variables along '{dim}' disagree on the row count: {rows}")
            if rows:
                nrow = rows.pop()
                if nrow > cap:
                    raise CapacityError(f"{nrow} rows along '{dim}' exceed the capacity {cap}")
                self._count[dim][local] = nrow
        for name, value in ragged.items():
            self._ragged.setdefault(name, []).append((local, np.asarray(value)))
        for name, value in per_sample.items():
            self._per_sample.setdefault(name, {})[local] = np.asarray(value)
        self.status[local] = STATUS_DONE

    def fail(self, local: int, code: int) -> None:
        self.status[local] = code

    def flush(self) -> None:
        """Write every variable of the batch, then the status last."""
        g, lay, b = self._arrays, self.layout, self.batch
        n = len(self.status)
        offsets = {}
        for dim, counts in self._count.items():
            block = lay.block(dim, b)
            offsets[dim] = block.start + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            write_block(g[f"{dim}_offset"], self.samples, offsets[dim])
            write_block(g[f"{dim}_count"], self.samples, counts)
        for name, items in self._ragged.items():
            arr = g[name]
            dim = arr.metadata.dimension_names[0]
            block = lay.block(dim, b)
            buf = np.full((block.stop - block.start,) + arr.shape[1:], arr.fill_value, dtype=arr.dtype)
            for local, value in items:
                start = offsets[dim][local] - block.start
                buf[start:start + len(value)] = value
            write_block(arr, block, buf)
        for name, items in self._per_sample.items():
            arr = g[name]
            buf = np.full((n,) + arr.shape[1:], arr.fill_value, dtype=arr.dtype)
            for local, value in items.items():
                buf[local] = value
            write_block(arr, self.samples, buf)
        write_block(g["status"], self.samples, self.status)


class CapacityError(ValueError):
    """A sample has more rows along a ragged dimension than the store has room for."""


def pending_batches(group: zarr.Group) -> list[int]:
    """Batches that still hold pending samples (what a resumed stage has to do)."""
    lay = layout_of(group)
    status = group["status"][:]
    return [b for b in range(lay.n_batches) if np.any(status[lay.batch_samples(b)] == STATUS_PENDING)]


def read_ragged(group_or_ds, name: str, sample: int) -> np.ndarray:
    """One sample's rows of a ragged variable (works on a zarr group or an xarray Dataset)."""
    dim = _first_dim(group_or_ds, name)
    start = int(group_or_ds[f"{dim}_offset"][sample])
    count = int(group_or_ds[f"{dim}_count"][sample])
    return np.asarray(group_or_ds[name][start:start + count])


def _first_dim(group_or_ds, name: str) -> str:
    var = group_or_ds[name]
    if hasattr(var, "dims"):
        return var.dims[0]
    return var.metadata.dimension_names[0]
