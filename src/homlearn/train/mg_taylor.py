"""Surrogates of the mg_taylor data (paper 'rno' section 5.2, Fig. 8; paper 'pcanet' 3D Taylor):
the data adapter, RNO and PCA-Net training through the shared trainer, and the Johnson-Cook
reference fitted to classical tests.

Adapter (:func:`load_mg_taylor_data`): a mg_taylor store -> input histories x = U - I (the six
stretch components of :data:`~homlearn.datasets.mg_taylor.PAIRS`, zero when undeformed: the
RNO's scaling keeps the undeformed state at zero), output histories y = grain-averaged Cauchy
stress (6 components, MPa), normalized times (0..1; the physical duration is ``duration``),
and the store's split codes (0 train, 1 validation, 2 test). Only finished paths (status 1).

Training (:func:`train_mg_taylor`): the first ``n_train`` paths of the train split (nested
subsets for the training-size study, Fig. 8b), relative L2 loss (rno eq. 16), Adam + optional
L-BFGS (the ``train`` block). The monitored set (best checkpoint) is the validation split
when it has paths, else the training set; the test split only gives the reported error.
Models: ``rno`` (f and g MLPs, k internal variables, paper 5 x 200) and ``pcanet`` (PCA of
each component, 100 x 6 in the paper, SELU MLP).

Johnson-Cook (:func:`fit_jc`): the 3D J2 law of :mod:`homlearn.models.johnson_cook` fitted by
least squares to the uniaxial stress tests of :mod:`homlearn.datasets.mg_taylor_classical`
(all six stress components of every test, each test's residual divided by its norm).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from homlearn.train.history import HistoryData, build_model, relative_errors
from homlearn.train.batches import collate_tensors
from homlearn.train.record import fingerprint, run_id as make_run_id, save_model_record, write_json
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import pick_device, train

TRAIN, VALIDATION, TEST = 0, 1, 2
MODELS = ("rno", "pcanet")


@dataclass
class MgTaylorData(HistoryData):
    """:class:`HistoryData` of a mg_taylor store (split codes 0 train, 1 validation, 2 test)
    with the physical duration of a path (s)."""

    duration: float = 1.0

    def stretch(self, rows=slice(None)) -> np.ndarray:
        """The stored stretch components U (x + I)."""
        from homlearn.loading.paths import identity_components

        return self.x[rows] + identity_components(3)


def load_mg_taylor_data(store) -> MgTaylorData:
    """Histories of the finished paths of a mg_taylor store (see the module text)."""
    import xarray as xr

    from homlearn.loading.paths import identity_components

    ds = xr.open_zarr(store, consolidated=None)
    if ds.attrs.get("exemplar") != "mg_taylor":
        raise ValueError(f"{store} is not a mg_taylor store (exemplar = {ds.attrs.get('exemplar')!r})")
    ids = np.flatnonzero(ds["status"].values == 1)
    if not len(ids):
        raise ValueError(f"{store}: no finished paths")
    x = ds["stretch"].values[ids] - identity_components(3)
    return MgTaylorData(x, ds["stress"].values[ids], ds["time"].values, ds["split"].values[ids], ids, {},
                        duration=float(ds.attrs["duration_s"]))


def training_rows(data: MgTaylorData, n_train: int) -> np.ndarray:
    """The first ``n_train`` paths of the train split (nested across sizes)."""
    tr = data.subset(TRAIN)
    if not 1 <= n_train <= len(tr):
        raise ValueError(f"rno.mg_taylor.train_sizes: {n_train} paths asked, the store has {len(tr)} training "
                         f"paths (1..{len(tr)} allowed)")
    return tr[:n_train]


def build_mg_model(model: str, n_time: int, k: int, hyper: Mapping[str, Any]) -> torch.nn.Module:
    """``rno`` (width, depth) or ``pcanet`` (r_in, r_out, hidden, scale) for 6 -> 6 components."""
    if model == "rno":
        return build_model("rno", 6, 6, k, hyper)
    if model == "pcanet":
        from homlearn.models.pcanet import PCANet

        return PCANet(6, 6, n_time, r_in=hyper["r_in"], r_out=hyper["r_out"], hidden=tuple(hyper["hidden"]),
                      scale=hyper.get("scale", "whiten"))
    raise ValueError(f"unknown mg_taylor model {model!r}; allowed: {', '.join(MODELS)}")


def pca_dimensions(hyper: Mapping[str, Any], n_time: int, n_train: int) -> dict:
    """PCA dimensions used: at most the stored times and the training paths (directions without
    training variance would be whitened by ~0 and blow up test inputs)."""
    return {**hyper, "r_in": min(hyper["r_in"], n_time, n_train), "r_out": min(hyper["r_out"], n_time, n_train)}


def train_mg_taylor(store, out_dir, *, model: str = "rno", k: int = 5, n_train: int,
                    hyper: Mapping[str, Any] | None = None, train_cfg: Mapping[str, Any] | None = None,
                    progress: bool = True) -> dict:
    """Train one RNO (k internal variables) or PCA-Net on ``n_train`` paths; writes ``model.json``
    (config, dataset fingerprint, training summary, train/test relative L2 errors, eq. 16)."""
    out = Path(out_dir)
    hyper = dict(hyper or {})
    settings = TrainSettings.from_config(train_cfg or {})
    data = load_mg_taylor_data(store)
    tr, va, te = training_rows(data, n_train), data.subset(VALIDATION), data.subset(TEST)
    if not len(te):
        raise ValueError(f"{store}: empty test split")
    if model == "pcanet":
        hyper = pca_dimensions(hyper, len(data.t), len(tr))
    torch.manual_seed(settings.seed)
    net = build_mg_model(model, len(data.t), k, hyper)
    xt, yt = torch.as_tensor(data.x[tr]), torch.as_tensor(data.y[tr])
    if model == "rno":
        net.fit_scaling(xt, yt, torch.as_tensor(data.t))
    else:
        net.fit_pca(xt.float(), yt.float(), torch.as_tensor(data.t))
    fp = fingerprint((data.ids[tr], data.t, data.x[tr], data.y[tr], data.ids[te]))
    rid = make_run_id("mg_taylor", model, k, int(n_train), hyper, settings.run_key(), fp)
    monitored = va if len(va) else tr
    summary = train(net, data.samples(tr), data.samples(monitored), collate_tensors, settings, out,
                    progress=progress, run_id=rid, loss="relative_l2")
    net.to("cpu")
    metrics = {}
    for name, rows in (("train", tr), ("validation", va), ("test", te)):
        if not len(rows):
            continue
        err = relative_errors(net, data.x[rows], data.y[rows], data.t)
        metrics[name] = {"n": int(len(rows)), "relative_l2": float(err.mean()),
                         "relative_l2_median": float(np.median(err)), "relative_l2_max": float(err.max())}
    return save_model_record(
        out, model=model, hyperparameters={**hyper, "k": int(k)} if model == "rno" else hyper,
        train=settings.to_dict(), dataset=str(store), dataset_fingerprint=fp, run_id=rid,
        n_parameters=sum(p.numel() for p in net.parameters()), training=summary, metrics=metrics,
        exemplar="mg_taylor", n_train=int(n_train), n_time=int(len(data.t)),
        monitored="validation" if len(va) else "train", device=str(pick_device(settings.device)))


def load_mg_model(model_dir, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The best checkpoint of a model trained by :func:`train_mg_taylor`, and its model.json."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    hyper = dict(info["hyperparameters"])
    k = hyper.pop("k", 0)
    net = build_mg_model(info["model"], info["n_time"], k, hyper)
    state = torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"]
    net.load_state_dict(state)
    return net.to(device).eval(), info


def predict_components(net: torch.nn.Module, stretch: np.ndarray, t: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """A trained surrogate's stress components (P, T, 6) for stretch components (P, T, 6)."""
    from homlearn.loading.paths import identity_components

    x = np.asarray(stretch) - identity_components(3)
    tt = torch.as_tensor(t, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            out.append(net(torch.as_tensor(x[s:s + batch_size], dtype=torch.float32), tt).double().numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------- Johnson-Cook


def fit_jc(classical_store, out_dir, cfg: Mapping[str, Any]) -> dict:
    """Fit the 3D J2 Johnson-Cook law to the uniaxial stress tests of ``classical_store``
    (``cfg``: rno.mg_taylor.calibration: rate0 and the initial parameters); writes ``model.json``
    with the parameters and each test's relative L2 error."""
    import xarray as xr

    from homlearn.loading.paths import symmetric_from_components
    from homlearn.models.johnson_cook import JohnsonCookJ2, JohnsonCookJ2Params, fit_johnson_cook_j2

    ds = xr.open_zarr(classical_store, consolidated=None)
    U = symmetric_from_components(ds["calibration_stretch"].values, 3)
    S = symmetric_from_components(ds["calibration_stress"].values, 3)
    t = ds["calibration_time"].values
    init = JohnsonCookJ2Params(**dict(cfg["initial"]), rate0=float(cfg["rate0"]))
    params, res = fit_johnson_cook_j2(U, S, t, init)
    pred = JohnsonCookJ2(params)(U, t)
    err = [float(np.linalg.norm(pred[i] - S[i]) / np.linalg.norm(S[i])) for i in range(len(U))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {"model": "johnson_cook_j2", "params": asdict(params), "young": params.young,
            "rates": ds["rate"].values.tolist(), "fit_relative_l2": err, "fit_success": bool(res.success),
            "fit_nfev": int(res.nfev), "classical_store": str(classical_store)}
    write_json(out / "model.json", info)
    return info


def load_jc(model_dir):
    from homlearn.models.johnson_cook import JohnsonCookJ2, JohnsonCookJ2Params

    info = json.loads((Path(model_dir) / "model.json").read_text())
    return JohnsonCookJ2(JohnsonCookJ2Params(**info["params"])), info


def jc_components(jc, stretch: np.ndarray, t_physical: np.ndarray) -> np.ndarray:
    """The Johnson-Cook law's stress components (P, T, 6) for stretch components (P, T, 6)."""
    from homlearn.datasets.mg_taylor_classical import components
    from homlearn.loading.paths import symmetric_from_components

    return components(jc(symmetric_from_components(np.asarray(stretch), 3), t_physical))
