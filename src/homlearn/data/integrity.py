"""Integrity check of a dataset store before it is used (for training, evaluation, export).

Zarr reads a missing chunk file as fill values without complaint, and a truncated one fails deep
inside a codec with no path in the message. ``verify_store`` makes both loud, naming the store:

* the group and its ``layout`` attribute open, and every array has the shape the layout implies;
* ``status`` decodes and holds only known codes (``STATUS_CODES``);
* every batch that was written (any sample not pending) has every chunk file of every per-sample
  and ragged array, non-empty (stores record ``empty_chunks_written``: their writers store
  all-fill chunks too, so a missing file is always a loss);
* with ``require_done`` (the default), no sample is pending: a finished stage leaves none (a stage
  with failed tasks exits non-zero), so one that reads as pending lost its status chunk;
* ragged offsets and counts of finished samples stay inside their batch's block;
* with ``decode`` (the default), every chunk decodes (zstd frames are checksummed in new stores).

``open_dataset`` is the one entry the training code uses: verify, then ``xarray.open_zarr``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import zarr

from homlearn.data.store import STATUS_CODES, STATUS_DONE, STATUS_PENDING, layout_of

MAX_LISTED = 8


class StoreIntegrityError(RuntimeError):
    """A store that is corrupted, truncated or incomplete; the message names it and what is wrong."""

    def __init__(self, path, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        listed = "\n  - ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        super().__init__(f"{path}: corrupted or incomplete dataset store ({len(problems)} problem(s)); "
                         f"rebuild it (delete it and rerun its stage):\n  - {listed}{more}")


def verify_store(path: Path | str, decode: bool = True, require_done: bool = True) -> None:
    """Raise :class:`StoreIntegrityError` naming ``path`` if the store is damaged (see module doc)."""
    path = Path(path)
    try:
        group = zarr.open_group(path, mode="r")
        arrays = dict(group.arrays())
    except Exception as exc:  # missing or unreadable zarr.json
        raise StoreIntegrityError(path, [f"cannot open the group: {type(exc).__name__}: {exc}"]) from exc
    problems: list[str] = []
    if "layout" in group.attrs and "status" in arrays:
        problems += _check_layout(path, group, arrays, require_done)
    if decode and not problems:
        problems += _check_decode(arrays)
    if problems:
        raise StoreIntegrityError(path, problems)


def open_dataset(path: Path | str, decode: bool = True, require_done: bool = True, **open_kwargs):
    """``xarray.open_zarr`` of a verified store (:func:`verify_store` first)."""
    import xarray as xr

    verify_store(path, decode=decode, require_done=require_done)
    open_kwargs.setdefault("consolidated", None)
    return xr.open_zarr(path, **open_kwargs)


def _check_layout(path: Path, group: zarr.Group, arrays: dict, require_done: bool) -> list[str]:
    problems = []
    try:
        lay = layout_of(group)
    except (KeyError, TypeError) as exc:
        return [f"layout attribute unreadable: {exc}"]
    try:
        status = np.asarray(arrays["status"][:])
    except Exception as exc:
        return [f"status does not decode: {type(exc).__name__}: {exc}"]
    if status.shape != (lay.n_samples,):
        return [f"status has shape {status.shape}, the layout says ({lay.n_samples},)"]
    unknown = sorted(set(np.unique(status).tolist()) - set(STATUS_CODES))
    if unknown:
        problems.append(f"status holds unknown codes {unknown}")
    written = [b for b in range(lay.n_batches) if np.any(status[lay.batch_samples(b)] != STATUS_PENDING)]
    complete = bool(group.attrs.get("empty_chunks_written", False))
    for name, arr in sorted(arrays.items()):
        dims = tuple(arr.metadata.dimension_names or ())
        if not dims or (dims[0] != "sample" and dims[0] not in lay.capacity):
            continue
        want = lay.length(dims[0])
        if arr.shape[0] != want or arr.chunks[0] != lay.chunk(dims[0]):
            problems.append(f"{name}: shape {arr.shape} / chunks {arr.chunks} do not match the layout "
                            f"({want} rows in chunks of {lay.chunk(dims[0])})")
            continue
        if complete:
            problems += _missing_chunks(path, name, arr, written)
    pending = np.flatnonzero(status == STATUS_PENDING)
    if require_done and len(pending):
        problems.append(f"{len(pending)} sample(s) still pending (e.g. {pending[:5].tolist()}): the stage did not "
                        "finish or a status chunk was lost; rerun the stage")
    for dim in lay.capacity:
        problems += _check_offsets(arrays, lay, dim, status)
    return problems


def _missing_chunks(path: Path, name: str, arr, batches: list[int]) -> list[str]:
    """Chunk files of ``batches`` (chunk row b along the first axis) that are absent or empty."""
    rest = [range(-(-s // c)) for s, c in zip(arr.shape[1:], arr.chunks[1:])]
    out = []
    for b in batches:
        for tail in itertools.product(*rest):
            key = arr.metadata.encode_chunk_key((b, *tail))
            f = path / name / key
            if not f.is_file():
                out.append(f"{name}: chunk {key} of written batch {b} is missing ({f})")
            elif f.stat().st_size == 0:
                out.append(f"{name}: chunk {key} of written batch {b} is empty ({f})")
    return out


def _check_offsets(arrays: dict, lay, dim: str, status: np.ndarray) -> list[str]:
    off, cnt = arrays.get(f"{dim}_offset"), arrays.get(f"{dim}_count")
    if off is None or cnt is None:
        return [f"{dim}_offset / {dim}_count missing"]
    try:
        off, cnt = np.asarray(off[:]), np.asarray(cnt[:])
    except Exception as exc:
        return [f"{dim}_offset / {dim}_count do not decode: {type(exc).__name__}: {exc}"]
    done = np.flatnonzero(status == STATUS_DONE)
    size = lay.batch_size * lay.capacity[dim]
    start = (done // lay.batch_size) * size
    bad = done[(off[done] < start) | (off[done] + cnt[done] > start + size) | (cnt[done] < 0)]
    return [f"{dim}_offset/{dim}_count of finished samples {bad[:5].tolist()} point outside their batch's block"] \
        if len(bad) else []


def _check_decode(arrays: dict) -> list[str]:
    out = []
    for name, arr in sorted(arrays.items()):
        step = arr.chunks[0] if arr.ndim else 1
        for start in range(0, arr.shape[0] if arr.ndim else 1, step):
            try:
                arr[start:start + step] if arr.ndim else arr[()]
            except Exception as exc:
                out.append(f"{name}: rows [{start}:{start + step}) do not decode: {type(exc).__name__}: {exc}")
    return out
