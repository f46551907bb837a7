"""Auto-encoders of the laminate's model variables (paper 'rno' section 4.1, Fig. 4a-b; section
4.2, Fig. 6d-e): how many variables the layers' state really needs, against the RNO's k.

Data (``load_model_variables``): every stored time after t = 0 of every trajectory is one point
(paper: 800 trajectories x 100 steps = 8 x 10^4 points, 640 trajectories' points train, 160
test; the trajectory split is the store's). A point is the layers' plastic strains
(eps_p 11, 22, 12 of the '+' and '-' layers: 6 variables; no hardening) and, with exponential
hardening, also their accumulated plastic strains q+ and q- (8 variables, Fig. 6d).

Error (eq. 25): the mean over test points of |x - x_hat| / |x| (l2 norm of the point). It is
undefined at x = 0 (the elastic steps before the first yield) and dominated by the absolute
error just after it (MH: |x| ~ 1e-10 a step after yield gave eq. 25 ~ 1e5 over the training
points): points with |x| below 1% of the training points' RMS norm (``EQ25_FLOOR``; ~0.3% of the
points of the default MH store) are left out of that mean, their count is recorded.
``relative_l2`` is the aggregate (sum |x - x_hat|^2 / sum |x|^2)^(1/2) over all points.
A PCA of the same training points (centred, m components) is the linear reference: its error
is zero at m = the dimension of the smallest linear subspace holding the data.

Training (the paper gives no optimiser settings for the auto-encoder): the shared trainer, loss =
squared reconstruction error of a point relative to the mean squared training point
(|x - x_hat|^2 / <|x|^2>, the norm of eq. 25), averaged over the points of a batch; a batch is
``batch_size`` whole training trajectories (their points; cheaper to collate than single
points), Adam then full-batch L-BFGS; the monitored set is the training set, as for the RNO (no
validation split in the paper).

    info = train_autoencoder("results/datasets/laminate_M3.zarr", out_dir, latent=3)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from homlearn.train.batches import collate_tensors
from homlearn.train.record import fingerprint, run_id as make_run_id, run_ids, save_model_record
from homlearn.train.settings import TrainSettings

LAYERS = ("+", "-")
EQ25_FLOOR = 0.01  #: eq. 25 leaves out points with |x| < EQ25_FLOOR * RMS |x| of the training points
COMPONENTS = ("11", "22", "12")


@dataclass
class ModelVariables:
    """Model variables of one laminate store: ``x`` (S, T, n) on the stored times after t = 0,
    ``split`` (S,) 0 train / 1 test, ``names`` (n,), the case and its hardening."""

    x: np.ndarray
    split: np.ndarray
    names: list[str]
    case: str
    hardening: str

    def points(self, code: int) -> np.ndarray:
        """(P, n) points of the trajectories with split ``code``."""
        return self.x[self.split == code].reshape(-1, self.x.shape[-1])


def load_model_variables(store) -> ModelVariables:
    """The model variables of a laminate store (see the module docstring)."""
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=None)
    ids = np.arange(ds.sizes["sample"])
    if "status" in ds:
        ids = ids[ds["status"].values == 1]
    if not len(ids):
        raise ValueError(f"{store}: no finished laminate samples")
    material = ds.attrs.get("material", {})
    hardening = material.get("hardening", "none")
    ep = ds["plastic_strain"].values[ids][:, 1:]                      # (S, T, layer, component)
    parts = [ep.reshape(ep.shape[0], ep.shape[1], -1)]
    names = [f"eps_p{c}{layer}" for layer in LAYERS for c in COMPONENTS]
    if hardening != "none":  # q enters the flow stress: 8 model variables (LaminateMaterial.n_model_variables)
        parts.append(ds["accumulated_plastic_strain"].values[ids][:, 1:])
        names += [f"q{layer}" for layer in LAYERS]
    return ModelVariables(np.concatenate(parts, axis=-1), ds["split"].values[ids], names,
                          material.get("name", ds.attrs.get("case", "?")), hardening)


def reconstruction_errors(x: np.ndarray, x_hat: np.ndarray, floor: float = 0.0) -> dict:
    """eq. 25 over the points with |x| > ``floor`` (and > 0), and the aggregate relative L2 error
    over all points."""
    x, x_hat = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
    diff = np.linalg.norm(x - x_hat, axis=-1)
    norm = np.linalg.norm(x, axis=-1)
    used = (norm > floor) & (norm > 0)
    return {"eq25": float(np.mean(diff[used] / norm[used])) if used.any() else float("nan"),
            "relative_l2": float(np.sqrt(np.sum(diff ** 2) / max(np.sum(norm ** 2), 1e-300))),
            "n_points": int(len(x)), "n_points_eq25": int(used.sum()), "floor": float(floor)}


def pca_reconstruction(train: np.ndarray, test: np.ndarray, m: int) -> np.ndarray:
    """Test points projected on the m leading principal directions of the (centred) training points."""
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:m]
    return mean + (test - mean) @ basis.T @ basis


class RelativeSquaredError:
    """Loss: mean over the points of a batch (..., n) of |x_hat - x|^2 / ref, ref = mean |x|^2 of
    the training points."""

    def __init__(self, ref: float):
        self.ref = float(ref)

    def __call__(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (pred - y).pow(2).sum(-1).mean() / self.ref


def train_autoencoder(store, out_dir, *, latent: int, width: int = 50, depth: int = 1,
                      train_cfg: Mapping[str, Any] | None = None, progress: bool = True) -> dict:
    """Train one auto-encoder with ``latent`` reduced variables on the store's training points;
    write ``model.json`` with the test errors (eq. 25, relative L2) of it and of the PCA with the
    same number of components."""
    from homlearn.models.autoencoder import AutoEncoder
    from homlearn.train.trainer import pick_device, train

    out = Path(out_dir)
    settings = TrainSettings.from_config(train_cfg or {})
    if settings.loss != "mse":
        raise ValueError(f"training key 'loss' of the auto-encoder must be 'mse' (the squared reconstruction "
                         f"error relative to the mean squared training point), got {settings.loss!r}")
    data = load_model_variables(store)
    tr, te = data.points(0), data.points(1)
    if not len(tr) or not len(te):
        raise ValueError(f"{store}: empty train ({len(tr)}) or test ({len(te)}) split")
    n = tr.shape[1]
    torch.manual_seed(settings.seed)
    net = AutoEncoder(n, latent, width, depth).fit_scaling(torch.as_tensor(tr))
    samples = [{"x": s, "y": s} for s in data.x[data.split == 0].astype(np.float32)]  # one per trajectory
    ref = float(np.mean(np.sum(tr ** 2, axis=1)))
    fp = fingerprint((data.x, data.split))
    hyper = {"latent": int(latent), "width": int(width), "depth": int(depth)}
    rid, shorter = run_ids(settings, lambda key: make_run_id("autoencoder", hyper, key, fp))
    summary = train(net, samples, samples, collate_tensors, settings, out, progress=progress, run_id=rid,
                    loss=RelativeSquaredError(ref), extends=shorter)
    net.to("cpu").eval()
    metrics = {}
    floor = EQ25_FLOOR * float(np.sqrt(ref))
    for name, pts in (("train", tr), ("test", te)):
        with torch.no_grad():
            rec = net(torch.as_tensor(pts, dtype=torch.float32)).numpy()
        metrics[name] = reconstruction_errors(pts, rec, floor)
    metrics["pca_test"] = reconstruction_errors(te, pca_reconstruction(tr, te, latent), floor)
    return save_model_record(
        out, model="autoencoder", hyperparameters=hyper, train=settings.to_dict(), dataset=str(store),
        dataset_fingerprint=fp, run_id=rid, n_parameters=sum(p.numel() for p in net.parameters()),
        training=summary, metrics=metrics, case=data.case, hardening=data.hardening, variables=data.names,
        n_train_trajectories=int(np.sum(data.split == 0)), n_test_trajectories=int(np.sum(data.split == 1)),
        device=str(pick_device(settings.device)))


def load_autoencoder(model_dir, device="cpu"):
    """The best checkpoint of :func:`train_autoencoder` and its model.json."""
    from homlearn.models.autoencoder import AutoEncoder

    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    h = info["hyperparameters"]
    net = AutoEncoder(len(info["variables"]), h["latent"], h["width"], h["depth"])
    net.load_state_dict(torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"])
    return net.to(device).eval(), info
