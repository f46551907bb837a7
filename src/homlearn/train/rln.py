"""Train FLN / RLN-t / RLN (paper 'rln' section 3) on an elastic_ls store through the shared trainer.

Data: the voxel microstructure (1 = hard phase) and eps_xx, read lazily from the Zarr store
(:class:`homlearn.data.lazy.ZarrSamples`); strains are normalised by the prescribed mean strain
(section 3.2), so the target has mean 1. Splits are the store's (40/20/40 train/validation/test).

Loss (section 3.2): the calibration loss summed over the iterates with uniform weights,
``L = sum_i w_i MSE(y_i, y*)``, ``w_i = 1``; the same loss is monitored on the validation split
and the epoch with the lowest validation loss is kept (section 4). Adam with cosine annealing
(section 4; the paper gives neither learning rate nor batch size: config ``rln.train``).
Metric: MASE (eq. 28), ``100 <|y_pred - y_true|> / y^R`` per microstructure.

    info = train_rln("results/datasets/elastic_ls_cr10.zarr", "results/rln/cr10/models/rln", "rln",
                     hyper={"iterations": 5, "history": 2, "channels": 23}, train_cfg={...})
    model, info = load_rln("results/rln/cr10/models/rln")
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from homlearn.data.lazy import ZarrSamples
from homlearn.models.rln import VARIANTS, build_rln
from homlearn.train.batches import collate_tensors, iterate_batches
from homlearn.train.record import fingerprint, run_id as make_run_id, save_model_record
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import pick_device, train

SPLITS = {"train": 0, "validation": 1, "test": 2}
FIELDS = {"m": "microstructure", "y": "strain_xx"}


def iterate_mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Calibration loss of section 3.2: sum over iterates i of MSE(y_i, y*), uniform weights.
    ``pred`` (B, N, X, Y, Z) iterates, ``y`` (B, X, Y, Z) target."""
    if pred.ndim != y.ndim + 1 or pred.shape[2:] != y.shape[1:]:
        raise ValueError(f"expected iterates (B, N, ...) and target (B, ...), got {tuple(pred.shape)}, "
                         f"{tuple(y.shape)}")
    return (pred - y.unsqueeze(1)).pow(2).mean(dim=(0, *range(2, pred.ndim))).sum()


def mase(pred: torch.Tensor | np.ndarray, true: torch.Tensor | np.ndarray, mean: float = 1.0) -> np.ndarray:
    """Mean absolute strain error (paper eq. 28) per sample, in percent of the mean strain ``mean``:
    ``100 / S sum_voxels |pred - true| / y^R`` of (B, X, Y, Z) fields."""
    diff = np.abs(np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64))
    return 100.0 * diff.reshape(len(diff), -1).mean(axis=1) / abs(mean)


def mean_strain(store) -> float:
    """The prescribed eps_xx of an elastic_ls store (its config)."""
    import zarr

    return float(zarr.open_group(str(store), mode="r").attrs["config"]["mean_strain_xx"])


class _Normalise:
    """Sample transform: strain / mean strain (picklable for DataLoader workers)."""

    def __init__(self, scale: float):
        self.scale = scale

    def __call__(self, s: dict) -> dict:
        return {"m": s["m"], "y": (s["y"] / self.scale).astype(np.float32)}


def split_samples(store, split: str) -> ZarrSamples:
    """The finished samples of one split (train, validation, test), lazily, normalised targets."""
    import xarray as xr

    ds = xr.open_zarr(str(store), consolidated=None, chunks=None)
    code = SPLITS[split]
    ids = np.flatnonzero((ds["split"].values == code) & (ds["status"].values == 1))
    return ZarrSamples(store, FIELDS, ids, transform=_Normalise(mean_strain(store)))


def _blocks(samples: ZarrSamples, block: int = 256) -> Iterator[np.ndarray]:
    yield samples.index
    for s in range(0, len(samples), block):
        batch = samples.__getitems__(range(s, min(s + block, len(samples))))
        yield np.stack([b["m"] for b in batch])
        yield np.stack([b["y"] for b in batch])


def data_fingerprint(*parts: ZarrSamples) -> str:
    """sha256 of the sample ids, microstructures and targets, read block by block."""
    return fingerprint(a for p in parts for a in _blocks(p))


def predict_iterates(model: torch.nn.Module, samples, batch_size: int = 16, device="cpu",
                     last_only: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(iterates, targets) per batch, normalised; iterates (B, X, Y, Z) (last) or (B, N, X, Y, Z)."""
    model.eval()
    with torch.no_grad():
        for batch in iterate_batches(samples, batch_size, collate_tensors):
            y = model(batch["m"].to(device)).float().cpu().numpy()
            yield (y[:, -1] if last_only else y), batch["y"].numpy()


def split_mase(model: torch.nn.Module, samples, batch_size: int = 16, device="cpu") -> np.ndarray:
    """MASE (eq. 28) of the last iterate for every sample of ``samples`` (normalised: y^R = 1)."""
    out = [mase(p, t) for p, t in predict_iterates(model, samples, batch_size, device)]
    return np.concatenate(out) if out else np.zeros(0)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def train_rln(store, out_dir, variant: str, *, hyper: Mapping[str, Any] | None = None,
              train_cfg: Mapping[str, Any] | None = None, progress: bool = True) -> dict:
    """Train one variant ('fln', 'rln_t', 'rln') and write ``model.json`` (config, data
    fingerprint, training summary, validation and test MASE)."""
    out = Path(out_dir)
    hyper = {"iterations": 5, "history": 2, "channels": 23, **dict(hyper or {})}
    if variant not in VARIANTS:
        raise ValueError(f"unknown RLN variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    settings = TrainSettings.from_config(train_cfg or {})
    if settings.loss != "mse":
        raise ValueError(f"config key 'rln.train.loss': {settings.loss!r}; the RLN's calibration loss is the MSE "
                         "summed over the iterates (paper section 3.2): only 'mse' is allowed")
    data = {name: split_samples(store, name) for name in SPLITS}
    for name, s in data.items():
        if not len(s):
            raise ValueError(f"{store}: no finished samples in the {name} split")
    torch.manual_seed(settings.seed)
    net = build_rln(variant, **hyper)
    fp = data_fingerprint(*data.values())
    rid = make_run_id("rln", variant, hyper, settings.run_key(), fp)
    summary = train(net, data["train"], data["validation"], collate_tensors, settings, out, progress=progress,
                    run_id=rid, loss=iterate_mse, eval_batch_size=settings.batch_size)
    device = pick_device(settings.device)
    metrics = {}
    for name in ("validation", "test"):
        err = split_mase(net, data[name], settings.batch_size, device)
        metrics[name] = {"n": int(len(err)), "mase_mean": float(err.mean()), "mase_std": float(err.std()),
                         "mase_median": float(np.median(err)), "mase_max": float(err.max())}
    grid = list(data["train"].dataset["microstructure"].shape[1:])
    return save_model_record(
        out, model=variant, hyperparameters=hyper, train=settings.to_dict(), dataset=str(store),
        dataset_fingerprint=fp, run_id=rid, n_parameters=sum(p.numel() for p in net.parameters()),
        training=summary, metrics=metrics, exemplar="elastic_ls", grid=grid,
        contrast=float(data["train"].dataset.attrs["contrast"]),
        n_samples={name: int(len(s)) for name, s in data.items()},
        device=str(device), hardware=device_description(device))


def load_rln(model_dir, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The best checkpoint of a model trained by :func:`train_rln`, and its model.json."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    net = build_rln(info["model"], **info["hyperparameters"])
    net.load_state_dict(torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"])
    return net.to(device).eval(), info
