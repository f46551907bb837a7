"""Content hash of a Zarr store: what the store holds, not how its chunk files are encoded.

Two stores have the same hash when every array has the same name, dtype, shape, dimension names
and values (NaN payloads and signed zeros included: bytes of the decoded values are hashed).
Compression settings, chunk-file order, metadata consolidation and attributes (versions, run
times) do not enter. Used to check that a resumed, a cluster or a multi-worker run gives the
dataset of an uninterrupted local run (DESIGN section 4), and by ``homlearn store hash``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import zarr


def variable_hashes(store: Path | str | zarr.Group) -> dict[str, str]:
    """SHA-256 of each array's decoded values (read chunk row by chunk row), by array name."""
    group = store if isinstance(store, zarr.Group) else zarr.open_group(store, mode="r")
    out = {}
    for name, arr in sorted(group.arrays()):
        h = hashlib.sha256()
        head = {"dtype": str(arr.dtype), "shape": list(arr.shape),
                "dims": list(arr.metadata.dimension_names or ())}
        h.update(json.dumps(head, sort_keys=True).encode())
        if arr.ndim == 0:
            h.update(np.ascontiguousarray(arr[()]).tobytes())
        else:
            step = max(1, arr.chunks[0])
            for start in range(0, arr.shape[0], step):
                h.update(np.ascontiguousarray(arr[start:start + step]).tobytes())
        out[name] = h.hexdigest()
    return out


def content_hash(store: Path | str | zarr.Group) -> str:
    """One SHA-256 over :func:`variable_hashes` (names and hashes, sorted)."""
    return hashlib.sha256(json.dumps(variable_hashes(store), sort_keys=True).encode()).hexdigest()
