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
Models: ``rno`` (f and g MLPs, k internal variables, paper 5 x 200), ``rno_ve`` (the
viscoelastic RNO of eq. 7, which also feeds the stretch rate to f: rno Fig. 10's "VE") and
``pcanet`` (PCA of each component, 100 x 6 in the paper, SELU MLP).

Targets. With the papers' random stretch paths (all six components, volume changes of ~10%)
the mean stress is almost all elastic pressure (rms ~5.6 GPa against ~60 MPa for the
deviator on the r10 data), so a loss on the six stress components lets a model ignore the
history-dependent deviator entirely (measured: 5% total error, 125-160% deviatoric error, for
every k). ``target="split"`` (default) trains on the pressure p = -tr(sigma)/3 and the five
independent deviatoric components (rno section 5.1, eq. 28, there for 2D) with the loss
``relL2(p) + relL2(s)``; the RNO is then two disjoint RNOs (rno footnote 2), the pressure one
with no internal variable (the pressure is elastic: plastic flow and twinning are isochoric)
and the deviatoric one with k. ``target="stress"``: the six components and one loss. Metrics
are always on the six stress components (total), and on the deviator alone.

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

from homlearn.train.history import HistoryData, build_model, error_summary
from homlearn.train.batches import collate_tensors
from homlearn.train.record import fingerprint, run_id as make_run_id, run_ids, save_model_record, write_json
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import pick_device, train

TRAIN, VALIDATION, TEST = 0, 1, 2
MODELS = ("rno", "rno_ve", "pcanet")
RNOS = ("rno", "rno_ve")
TARGETS = ("split", "stress")


def split_targets(y: np.ndarray) -> np.ndarray:
    """Stress components (..., 6) -> (p, s_11, s_22, s_12, s_13, s_23): pressure and the
    independent deviatoric components (eq. 28; :func:`homlearn.models.rno.deviatoric_split`)."""
    p = -np.asarray(y)[..., :3].mean(-1, keepdims=True)
    return np.concatenate([p, y[..., :2] + p, y[..., 3:]], -1)


def stress_from_split(z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`split_targets`: sigma = s - p I as components (..., 6)."""
    p, s11, s22 = z[..., :1], z[..., 1:2], z[..., 2:3]
    return np.concatenate([s11 - p, s22 - p, -(s11 + s22) - p, z[..., 3:]], -1)


def split_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """relL2 of the pressure + relL2 of the deviator (the two parts learn independently)."""
    from homlearn.train.losses import relative_l2

    return relative_l2(pred[..., :1], y[..., :1]) + relative_l2(pred[..., 1:], y[..., 1:])


class SplitRNO(torch.nn.Module):
    """:class:`~homlearn.models.rno.PressureDeviatoricRNO` returning its parts (p, s) as one
    (B, T, 1 + 5) history (the layout of :func:`split_targets`)."""

    def __init__(self, c_in: int, k_pressure: int, k_deviatoric: int, **rno_kw):
        super().__init__()
        from homlearn.models.rno import PressureDeviatoricRNO

        self.rno = PressureDeviatoricRNO(c_in, 3, k_pressure, k_deviatoric, **rno_kw)

    def fit_scaling(self, x, y, t=None):
        self.rno.pressure.fit_scaling(x, y[..., :1], t)
        self.rno.deviatoric.fit_scaling(x, y[..., 1:], t)
        return self

    def forward(self, x, t):
        return torch.cat(self.rno.parts(x, t), -1)


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
    return MgTaylorData(x, ds["stress"].values[ids], np.array(ds["time"].values), ds["split"].values[ids], ids, {},
                        duration=float(ds.attrs["duration_s"]))


def training_rows(data: MgTaylorData, n_train: int) -> np.ndarray:
    """The first ``n_train`` paths of the train split (nested across sizes)."""
    tr = data.subset(TRAIN)
    if not 1 <= n_train <= len(tr):
        raise ValueError(f"rno.mg_taylor.train_sizes: {n_train} paths asked, the store has {len(tr)} training "
                         f"paths (1..{len(tr)} allowed)")
    return tr[:n_train]


def build_mg_model(model: str, n_time: int, k: int, hyper: Mapping[str, Any]) -> torch.nn.Module:
    """``rno`` / ``rno_ve`` (width, depth) or ``pcanet`` (r_in, r_out, hidden, scale) for 6 -> 6 components;
    ``hyper["target"]`` (default "stress") as in the module text. The model's ``target``
    attribute says which."""
    target = hyper.get("target", "stress")
    if target not in TARGETS:
        raise ValueError(f"rno.mg_taylor.target: {target!r} is not one of {list(TARGETS)}")
    if model in RNOS:
        net = (SplitRNO(6, 0, k, width=hyper.get("width", 100), depth=hyper.get("depth", 4),
                        rate_input=model == "rno_ve") if target == "split" else build_model(model, 6, 6, k, hyper))
    elif model == "pcanet":
        from homlearn.models.pcanet import PCANet

        net = PCANet(6, 6, n_time, r_in=hyper["r_in"], r_out=hyper["r_out"], hidden=tuple(hyper["hidden"]),
                     scale=hyper.get("scale", "whiten"))
    else:
        raise ValueError(f"unknown mg_taylor model {model!r}; allowed: {', '.join(MODELS)}")
    net.target = target
    return net


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
    hyper.setdefault("target", "split")
    torch.manual_seed(settings.seed)
    net = build_mg_model(model, len(data.t), k, hyper)
    split = hyper["target"] == "split"
    y_fit = split_targets(data.y) if split else data.y
    fitted = HistoryData(data.x, y_fit, data.t, data.split, data.ids, {})
    xt, yt = torch.as_tensor(np.array(data.x[tr])), torch.as_tensor(np.array(y_fit[tr]))
    if model in RNOS:
        net.fit_scaling(xt, yt, torch.as_tensor(np.array(data.t)))
    else:
        net.fit_pca(xt.float(), yt.float(), torch.as_tensor(np.array(data.t)))
    fp = fingerprint((data.ids[tr], data.t, data.x[tr], data.y[tr], data.ids[te]))
    rid, shorter = run_ids(settings, lambda key: make_run_id("mg_taylor", model, k, int(n_train), hyper, key, fp))
    monitored = va if len(va) else tr
    summary = train(net, fitted.samples(tr), fitted.samples(monitored), collate_tensors, settings, out,
                    progress=progress, run_id=rid, loss=split_loss if split else "relative_l2", extends=shorter)
    net.to("cpu")
    metrics = {}
    for name, rows in (("train", tr), ("validation", va), ("test", te)):
        if not len(rows):
            continue
        pred = predict_components(net, data.stretch(rows), data.t)
        err = relative_l2(pred, data.y[rows])
        dev = relative_l2(deviator(pred), deviator(data.y[rows]))
        metrics[name] = {**error_summary(err), "deviatoric_l2": float(dev.mean())}
    return save_model_record(
        out, model=model, hyperparameters={**hyper, "k": int(k)} if model in RNOS else hyper,
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
    tt = torch.from_numpy(np.array(t, dtype=np.float32))  # a copy: t may be a read-only store view
    out = []
    net.eval()
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            out.append(net(torch.as_tensor(x[s:s + batch_size], dtype=torch.float32), tt).double().numpy())
    out = np.concatenate(out)
    return stress_from_split(out) if getattr(net, "target", "stress") == "split" else out


def relative_l2(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-path relative L2 error over all axes after the first (rno eq. 16)."""
    p = np.asarray(pred).reshape(len(pred), -1)
    t = np.asarray(truth).reshape(len(truth), -1)
    return np.linalg.norm(p - t, axis=1) / np.linalg.norm(t, axis=1)


def deviator(stress: np.ndarray) -> np.ndarray:
    """Components (..., 6) of the deviatoric part of stress components (..., 6)."""
    out = np.array(stress, dtype=float, copy=True)
    out[..., :3] -= out[..., :3].mean(-1, keepdims=True)
    return out


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
