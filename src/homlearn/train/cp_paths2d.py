"""Train the history surrogates of the cp_paths2d experiments through the shared trainer.

- ``pcanet``: PCA-Net ('pcanet' eq. 25-26), stretch U -> Cauchy stress in the stretch frame,
  ``n_components`` PCA components per tensor component in and out (paper 32 x 3; at most
  n_train - 1, the rank of the centred training data, for small training sets), hidden widths
  :data:`~homlearn.models.pcanet.DEFAULT_HIDDEN` by default; trained on the first ``n_train``
  paths of the training split (nested subsets for 'pcanet' Fig. 1a).
- ``rno_pressure`` / ``rno_deviatoric``: the two independent RNOs of 'rno' sec. 5.1 (eq. 28,
  footnote 2), F - I -> p and F - I -> (s11, s12), k internal variables, f and g 4 x 100 SELU.

Loss: relative L2 of the histories ('rno' eq. 16; 'pcanet' sec. 2.2 test error). As in
:mod:`homlearn.train.history`, the monitored set is the training set (the papers have no
validation split), so the test split gives the reported error alone. ``test_at_epochs``
('pcanet' Fig. 1a, error against epochs): the run stops at those epochs (the trainer's
``stop_after_epochs``), the test error of the current weights is recorded, and training resumes
from its checkpoint, bit for bit as an uninterrupted run; the test data never steer training.

    info = train_cp_paths2d(store, out_dir, "pcanet", cfg["surrogates_cp_paths2d"], n_train=40)
    model, info = load_cp_paths2d_model(out_dir)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from homlearn.data.path_histories import load_path_histories
from homlearn.train.batches import collate_tensors
from homlearn.train.history import relative_errors, split_metrics
from homlearn.train.record import run_id as make_run_id, save_model_record
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import pick_device, train

MODELS = ("pcanet", "rno_pressure", "rno_deviatoric")
#: (input, output) of each model, see :mod:`homlearn.data.path_histories`
IO = {"rno_pressure": ("F", "pressure"), "rno_deviatoric": ("F", "deviatoric")}


def model_io(model: str, cfg: Mapping[str, Any]) -> tuple[str, str]:
    if model not in MODELS:
        raise ValueError(f"unknown cp_paths2d surrogate {model!r}; allowed: {', '.join(MODELS)}")
    return (cfg["pcanet"]["input"], "stress") if model == "pcanet" else IO[model]


def build(model: str, hyper: Mapping[str, Any]) -> torch.nn.Module:
    """A PCA-Net or an RNO from its recorded hyperparameters."""
    from homlearn.models.pcanet import PCANet
    from homlearn.models.rno import RNO

    h = dict(hyper)
    if model == "pcanet":
        r = h["n_components"]
        return PCANet(h["c_in"], h["c_out"], h["n_time"], r_in=r, r_out=r, hidden=tuple(h["hidden"]),
                      scale=h["scale"])
    return RNO(h["c_in"], h["c_out"], h["k"], width=h["width"], depth=h["depth"])


def _hyper(model: str, cfg: Mapping[str, Any], c_in: int, c_out: int, n_time: int, k: int | None,
           n_train: int) -> dict:
    if model == "pcanet":
        p = cfg["pcanet"]
        if p["n_components"] > n_time:
            raise ValueError(f"config key 'surrogates_cp_paths2d.pcanet.n_components' ({p['n_components']}) "
                             f"exceeds the {n_time} times of the training histories (train_steps + 1)")
        # at most the rank of the centred training data (n_train - 1): the other basis vectors carry
        # no training variance, and whitening would blow up a test path's coefficients along them
        r = max(1, min(p["n_components"], n_train - 1))
        return {"c_in": c_in, "c_out": c_out, "n_time": n_time, "n_components": r,
                "n_components_asked": p["n_components"], "hidden": list(p["hidden"]), "scale": p["scale"],
                "input": p["input"]}
    if k is None:
        raise ValueError(f"{model} needs k (internal variables)")
    r = cfg["rno"]
    return {"c_in": c_in, "c_out": c_out, "k": int(k), "width": r["width"], "depth": r["depth"]}


def _test_error(net, data, rows) -> float:
    return float(relative_errors(net, data.x[rows], data.y[rows], data.t).mean())


def _epochs_done(out: Path, rid: str) -> int:
    """Epochs in the checkpoint ``last.pt`` of run ``rid`` (0 if none)."""
    from homlearn.train.checkpoint import load_run

    ckpt = load_run(out / "last.pt", rid, "cpu")
    return 0 if ckpt is None else int(ckpt["state"]["epoch"])


def _epochs_curve(net, data, tr, te, samples, settings, out: Path, rid: str, progress: bool, epochs) -> list[dict]:
    """Train up to each epoch of ``epochs`` in turn and record the train and test errors of the
    weights at that epoch (``epochs_curve.json``, kept across a resumed run of the same run id)."""
    path = out / "epochs_curve.json"
    rows = []
    if path.exists():
        old = json.loads(path.read_text())
        rows = old["rows"] if old.get("run_id") == rid else []
    recorded = {r["epoch"] for r in rows}
    for e in sorted(set(epochs)):
        if e > settings.max_epochs:
            raise ValueError(f"config key 'surrogates_cp_paths2d.pcanet.epochs_at': {e} exceeds "
                             f"train.max_epochs ({settings.max_epochs})")
        if e in recorded:
            continue
        ahead = e - _epochs_done(out, rid)
        if ahead <= 0:  # the checkpoint is already past e (a run resumed late): no record
            continue
        train(net, samples, samples, collate_tensors, settings, out, progress=progress, run_id=rid,
              loss="relative_l2", stop_after_epochs=ahead)
        net.to("cpu")
        rows.append({"epoch": e, "test_relative_l2": _test_error(net, data, te),
                     "train_relative_l2": _test_error(net, data, tr)})
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": rid, "rows": rows}, indent=2))
    return sorted(rows, key=lambda r: r["epoch"])


def train_cp_paths2d(store, out_dir, model: str, cfg: Mapping[str, Any], *, k: int | None = None,
                     n_train: int | None = None, progress: bool = True) -> dict:
    """Train one surrogate on a cp_paths2d store and write ``model.json`` (hyperparameters, data
    size, training summary, train/test relative L2, test error at ``pcanet.epochs_at`` for PCA-Net).

    ``cfg``: the ``surrogates_cp_paths2d`` config block. ``n_train``: paths of the training split
    to use (the first ones; None or 0: all; PCA-Net default: all, RNO: ``rno.n_train``)."""
    from homlearn.evaluate.history import hardware

    inp, outp = model_io(model, cfg)
    part = cfg["pcanet"] if model == "pcanet" else cfg["rno"]
    settings = TrainSettings.from_config(part["train"])
    data = load_path_histories(store, inp, outp, cfg["train_steps"])
    tr_all, te = data.subset(0), data.subset(1)
    if n_train is None and model != "pcanet":
        n_train = cfg["rno"]["n_train"]
    n_train = len(tr_all) if not n_train else int(n_train)
    if n_train > len(tr_all):
        raise ValueError(f"{store}: {n_train} training paths asked for, the training split has {len(tr_all)}")
    if not len(te):
        raise ValueError(f"{store}: the test split is empty")
    tr = tr_all[:n_train]
    hyper = _hyper(model, cfg, data.x.shape[-1], data.y.shape[-1], len(data.t), k, len(tr))
    torch.manual_seed(settings.seed)
    net = build(model, hyper)
    xt, yt = torch.as_tensor(data.x[tr]), torch.as_tensor(data.y[tr])
    tt = torch.as_tensor(data.t)
    if model == "pcanet":
        net.fit_pca(xt.float(), yt.float(), tt)
    else:
        net.fit_scaling(xt, yt, tt)
    fp = data.fingerprint()
    rid = make_run_id(model, hyper, settings.run_key(), fp, [int(i) for i in data.ids[tr]])
    samples = data.samples(tr)
    out = Path(out_dir)
    at_epochs = _epochs_curve(net, data, tr, te, samples, settings, out, rid, progress,
                              cfg["pcanet"]["epochs_at"] if model == "pcanet" else ())
    summary = train(net, samples, samples, collate_tensors, settings, out, progress=progress, run_id=rid,
                    loss="relative_l2")
    net.to("cpu")
    metrics = split_metrics(net, data, {"train": tr, "test": te})
    return save_model_record(
        out, model=model, hyperparameters=hyper, train=settings.to_dict(), dataset=str(store),
        dataset_fingerprint=fp, run_id=rid, n_parameters=sum(p.numel() for p in net.parameters()),
        training=summary, metrics=metrics, exemplar="cp_paths2d", input=inp, output=outp,
        n_time=int(len(data.t)), train_steps=int(cfg["train_steps"]), test_at_epochs=at_epochs,
        device=str(pick_device(settings.device)), hardware=hardware())


def load_cp_paths2d_model(model_dir, device="cpu") -> tuple[torch.nn.Module, dict]:
    """The best checkpoint of a model trained by :func:`train_cp_paths2d`, and its model.json."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    net = build(info["model"], info["hyperparameters"])
    net.load_state_dict(torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"])
    return net.to(device).eval(), info
