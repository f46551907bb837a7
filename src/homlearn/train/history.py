"""Train a history surrogate (RNO, its viscoelastic variant, GRU/LSTM) on a history dataset
through the shared trainer and save it with its config, dataset fingerprint and metrics.

Datasets (paper 'rno' sections 3-4):

- composite1d: mean strain -> stress, one model per number of segments N (``group=N``: the
  paths of that N's composite; paper: 300 train / 100 test per N);
- laminate: in-plane strain (11, 22, 12) -> in-plane stress (11, 22, 12), one store per Table 1
  case.

Training (the paper, section 2, gives Adam and the architecture but no learning rate, batch
size or epoch count): relative L2 loss (eq. 16), Adam with a cosine schedule, then full-batch
L-BFGS epochs (``train.lbfgs_epochs``; plain Adam reaches ~1% only slowly). The paper has no
validation split, so the training set itself is the monitored set ("val_loss" in history.csv is
the training error in eval mode): the best checkpoint is chosen without looking at the test
split, which gives the reported test error (eq. 16) alone.

    info = train_history(store, "composite1d", out_dir, model="rno", k=1, group=1,
                         hyper={"width": 100, "depth": 4}, train_cfg={...})
    model, info = load_history(out_dir)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from homlearn.train.batches import collate_tensors
from homlearn.train.losses import relative_l2_per_sample
from homlearn.train.record import fingerprint, run_id as make_run_id, run_ids, save_model_record
from homlearn.train.settings import TrainSettings
from homlearn.train.symmetry import augment, check_laminate
from homlearn.train.trainer import pick_device, train

EXEMPLARS = ("composite1d", "laminate")
#: model names of :func:`train_history`: the E-VP RNO (eq. 2-3), the VE RNO (eq. 7), GRU, LSTM
MODELS = ("rno", "rno_ve", "gru", "lstm")


@dataclass
class HistoryData:
    """Histories of one dataset (or one N of composite1d): inputs x (S, T, c_in), outputs y
    (S, T, c_out), times t (T,), split codes (0 train, 1 test) and the sample ids in the store;
    ``extra``: named (S, T, ...) arrays (composite1d: 'plastic_strain' = <eps_p>)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    split: np.ndarray
    ids: np.ndarray
    extra: dict

    def subset(self, code: int) -> np.ndarray:
        return np.flatnonzero(self.split == code)

    def samples(self, rows) -> list[dict]:
        """Trainer samples {'x', 't', 'y'} (float32) of ``rows``."""
        t = self.t.astype(np.float32)
        return [{"x": self.x[i].astype(np.float32), "t": t, "y": self.y[i].astype(np.float32)} for i in rows]

    def fingerprint(self) -> str:
        return fingerprint((self.ids, self.split, self.t, self.x, self.y))


def load_history_data(store, exemplar: str, group: int | None = None, fine: bool = False,
                      stride: int = 1) -> HistoryData:
    """The histories of ``store``; composite1d: only the samples with ``group`` segments;
    ``fine``: the solver-grid histories (composite1d ``*_fine``), every ``stride``-th time."""
    if exemplar not in EXEMPLARS:
        raise ValueError(f"unknown exemplar {exemplar!r}; allowed: {', '.join(EXEMPLARS)}")
    from homlearn.data.integrity import open_dataset

    ds = open_dataset(store)  # refuses a damaged store, naming it
    ids = np.arange(ds.sizes["sample"])
    if "status" in ds:
        ids = ids[ds["status"].values == 1]
    if exemplar == "composite1d":
        if group is not None:
            ids = ids[ds["n_segments"].values[ids] == int(group)]
        if not len(ids):
            raise ValueError(f"{store}: no finished composite1d samples with N = {group}")
        suffix = "_fine" if fine else ""
        if fine and "strain_fine" not in ds:
            raise ValueError(f"{store} has no fine histories (composite1d.store_fine: false)")
        sl = slice(None, None, stride)
        x = ds[f"strain{suffix}"].values[ids][:, sl, None]
        y = ds[f"stress{suffix}"].values[ids][:, sl, None]
        t = ds[f"time{suffix}"].values[sl]
        extra = {"plastic_strain": ds[f"plastic_strain{suffix}"].values[ids][:, sl]}
    else:
        if fine:
            raise ValueError("laminate stores keep the stored grid only")
        sl = slice(None, None, stride)
        x, y, t = ds["strain"].values[ids][:, sl], ds["stress"].values[ids][:, sl], ds["time"].values[sl]
        extra = {}
    return HistoryData(x, y, np.array(t), ds["split"].values[ids], ids, extra)  # t: a writable copy


def build_model(model: str, c_in: int, c_out: int, k: int, hyper: Mapping[str, Any]) -> torch.nn.Module:
    """``rno`` / ``rno_ve`` (width, depth; ``rno_ve`` feeds the strain rate to f, eq. 7, or with
    ``rate_step`` the increment over that fixed step) or ``gru`` / ``lstm`` (hidden, n_layers; k unused)."""
    from homlearn.models.history import build_history_model

    if model not in MODELS:
        raise ValueError(f"unknown history model {model!r}; allowed: {', '.join(MODELS)}")
    if model in ("rno", "rno_ve"):
        return build_history_model("rno", c_in=c_in, c_out=c_out, k=k, width=hyper.get("width", 100),
                                   depth=hyper.get("depth", 4), rate_input=model == "rno_ve",
                                   rate_step=hyper.get("rate_step") if model == "rno_ve" else None)
    return build_history_model(model, c_in=c_in, c_out=c_out, hidden=hyper.get("hidden", 100),
                               n_layers=hyper.get("n_layers", 2))


def transfer_weights(net: torch.nn.Module, init) -> torch.nn.Module:
    """Transfer learning (rno section 4.1, Fig. 3a, 3c-f: "using the trained RNO for MH as a
    starting point"): every weight and scaling of the trained model in directory ``init`` is
    copied into ``net`` (same architecture), so training starts from the source's function;
    nothing is frozen."""
    state = torch.load(Path(init) / "best.pt", map_location="cpu", weights_only=False)["model"]
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"transfer source {init} does not match this model's architecture (k, width, "
                         f"depth): {exc}") from None
    return net


def match_rno_size(model: str, c_in: int, c_out: int, hyper: Mapping[str, Any]) -> dict:
    """GRU/LSTM baseline hyperparameters: the hidden width whose parameter count is closest to
    the RNO (``width``, ``depth``, k = ``match_k``) it is compared with; ``n_layers`` (default 2)."""
    from homlearn.models.sequence import matched_hidden

    n_layers = int(hyper.get("n_layers", 2))
    rno = build_model("rno", c_in, c_out, int(hyper["match_k"]), hyper)
    n_rno = sum(p.numel() for p in rno.parameters())
    return {**hyper, "n_layers": n_layers, "hidden": matched_hidden(n_rno, c_in, c_out, n_layers, model),
            "rno_parameters": int(n_rno)}


def relative_errors(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, t: np.ndarray,
                    batch_size: int = 512) -> np.ndarray:
    """Per-sample relative L2 errors (paper 'rno' eq. 16) of ``model`` on histories (S, T, c)."""
    model.eval()
    out = []
    tt = torch.as_tensor(np.array(t), dtype=torch.float32)
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[s:s + batch_size], dtype=torch.float32)
            yb = torch.as_tensor(y[s:s + batch_size], dtype=torch.float32)
            out.append(relative_l2_per_sample(model(xb, tt), yb).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def error_summary(err: np.ndarray) -> dict:
    """Mean, median and max of per-sample relative L2 errors (eq. 16), with the sample count."""
    return {"n": int(len(err)), "relative_l2": float(err.mean()),
            "relative_l2_median": float(np.median(err)), "relative_l2_max": float(err.max())}


def split_metrics(model: torch.nn.Module, data, splits: Mapping[str, np.ndarray]) -> dict:
    """:func:`error_summary` of ``model`` on each named split of rows of ``data`` (``x``, ``y``, ``t``)."""
    return {name: error_summary(relative_errors(model, data.x[rows], data.y[rows], data.t))
            for name, rows in splits.items()}


def train_history(store, exemplar: str, out_dir, *, model: str = "rno", k: int = 1, group: int | None = None,
                  hyper: Mapping[str, Any] | None = None, train_cfg: Mapping[str, Any] | None = None,
                  init: Path | str | None = None, symmetries: Sequence[str] = (), progress: bool = True) -> dict:
    """Train one model and write ``model.json`` (config, dataset fingerprint, training summary,
    metrics: train and test relative L2 error, eq. 16). ``init``: a trained model directory of
    the same architecture whose weights start the training (transfer learning, rno Fig. 3).
    ``symmetries``: names of :data:`homlearn.train.symmetry.SYMMETRIES`; the training paths are
    joined by their images under the group they generate (our deviation; the metrics stay on the
    stored paths)."""
    out = Path(out_dir)
    hyper = dict(hyper or {})
    settings = TrainSettings.from_config({"loss": "relative_l2", **(train_cfg or {})})  # eq. 16 unless asked
    data = load_history_data(store, exemplar, group)
    tr, te = data.subset(0), data.subset(1)
    if not len(tr) or not len(te):
        raise ValueError(f"{store}: empty train ({len(tr)}) or test ({len(te)}) split")
    if model in ("gru", "lstm") and "match_k" in hyper:
        hyper = match_rno_size(model, data.x.shape[-1], data.y.shape[-1], hyper)
    if exemplar == "laminate" and symmetries:
        import zarr

        check_laminate(symmetries, dict(zarr.open_group(str(store), mode="r").attrs).get("material", {}), str(store))
    x_fit, y_fit = augment(data.x[tr], data.y[tr], symmetries)
    torch.manual_seed(settings.seed)
    net = build_model(model, data.x.shape[-1], data.y.shape[-1], k, hyper)
    xt, yt = torch.as_tensor(np.array(x_fit)), torch.as_tensor(np.array(y_fit))
    net.fit_scaling(xt, yt, torch.as_tensor(np.array(data.t)))
    init_fp = None
    if init is not None:
        transfer_weights(net, init)
        # the run is named by the source's weights, not its directory: a source trained on (or
        # retrained) gives a new run that starts from its new weights instead of resuming the old one
        init_fp = fingerprint(v.detach().cpu().numpy() for v in net.state_dict().values())
    fp = data.fingerprint()
    run_hyper = dict(hyper, symmetries=list(symmetries)) if symmetries else dict(hyper)
    rid, shorter = run_ids(settings, lambda key: make_run_id(model, k, group, run_hyper, key, fp, init_fp))
    t32 = data.t.astype(np.float32)
    train_samples = [{"x": xs.astype(np.float32), "t": t32, "y": ys.astype(np.float32)}
                     for xs, ys in zip(x_fit, y_fit)]
    summary = train(net, train_samples, train_samples, collate_tensors, settings, out, progress=progress,
                    run_id=rid, extends=shorter)
    net.to("cpu")
    metrics = split_metrics(net, data, {"train": tr, "test": te})
    return save_model_record(
        out, model=model, hyperparameters={**hyper, "k": int(k)}, train=settings.to_dict(), dataset=str(store),
        dataset_fingerprint=fp, run_id=rid, n_parameters=sum(p.numel() for p in net.parameters()),
        training=summary, metrics=metrics, exemplar=exemplar, group=group, n_time=int(len(data.t)),
        init=str(init) if init else None, init_fingerprint=init_fp, symmetries=list(symmetries),
        n_train_paths=int(len(x_fit)), c_in=int(data.x.shape[-1]), c_out=int(data.y.shape[-1]),
        device=str(pick_device(settings.device)))


def load_history(model_dir, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The best checkpoint of a model trained by :func:`train_history`, and its model.json."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    hyper = dict(info["hyperparameters"])
    k = hyper.pop("k")
    net = build_model(info["model"], info["c_in"], info["c_out"], k, hyper)
    net.load_state_dict(torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"])
    return net.to(device).eval(), info
