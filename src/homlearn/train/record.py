"""What a trained model is saved with: run id, dataset fingerprint and ``model.json``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np


def fingerprint(arrays: Iterable[np.ndarray]) -> str:
    """sha256 over the bytes of ``arrays`` (in order): what a model learned from."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def store_fingerprint(ds, variables: Iterable[str], index: np.ndarray | None = None) -> str:
    """Fingerprint of ``variables`` of an xarray dataset (optionally samples ``index`` only),
    read one variable at a time."""
    arrays = []
    for name in variables:
        da = ds[name]
        if index is not None and "sample" in da.dims:
            da = da.isel(sample=np.asarray(index))
        arrays.append(da.values)
    return fingerprint(arrays)


def run_id(*parts: Any) -> str:
    """sha256 of what is being trained (model, hyperparameters, settings, data fingerprint)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def run_ids(settings, make: Callable[[dict], str]) -> tuple[str, tuple[str, ...]]:
    """``make(settings.run_key())`` and the ids of the same run with fewer L-BFGS epochs
    (:meth:`TrainSettings.shorter_runs`), whose checkpoints the trainer extends (``extends``):
    raising ``train.lbfgs_epochs`` carries a finished or killed run on instead of starting over."""
    return make(settings.run_key()), tuple(make(s.run_key()) for s in settings.shorter_runs())


def write_json(path: Path | str, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def save_model_record(out_dir: Path | str, *, model: str, hyperparameters: Mapping, train: Mapping,
                      dataset: str, dataset_fingerprint: str, run_id: str, n_parameters: int,
                      training: Mapping, metrics: Mapping, **extra: Any) -> dict:
    """Write ``model.json`` (model name and config, training settings, dataset and its
    fingerprint, run id, training summary, metrics, plus model-specific ``extra``) and return it."""
    info = {"model": model, "hyperparameters": dict(hyperparameters), "train": dict(train), **extra,
            "dataset": str(dataset), "dataset_fingerprint": dataset_fingerprint, "run_id": run_id,
            "n_parameters": int(n_parameters), "training": dict(training), "metrics": dict(metrics)}
    write_json(Path(out_dir) / "model.json", info)
    return info
