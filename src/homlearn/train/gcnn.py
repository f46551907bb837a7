"""Train a GCNN-family model on a graph dataset store and save it with everything needed to use it:
hyperparameters, scalers (fitted on the training split), dataset fingerprint and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from homlearn.data.graphs import GraphDataset, MinMaxScaler, load_heat2d_graphs
from homlearn.train.record import fingerprint, run_id as make_run_id, save_model_record
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import pick_device, predict, train


def dataset_fingerprint(data: GraphDataset) -> str:
    """sha256 of what a model learns from: sample index, split, inputs and targets."""
    return fingerprint((data.index, data.split, data.y, *data.x, *data.edges, *data.cell_grain))


def train_gcnn(dataset_path: Path | str, model_name: str, hyper: Mapping[str, Any],
               train_cfg: Mapping[str, Any], out_dir: Path | str, progress: bool = True) -> dict:
    """Train ``model_name`` ("fgcnn" | "rgcnn") on the heat2d dataset; writes ``model.json``.

    Early stopping watches the 'test' split (code 1, paper section 6); the 'validation' split
    (code 2) is held out for the evaluation.
    """
    from homlearn.models.gcnn import build_model, collate_graphs

    out = Path(out_dir)
    settings = TrainSettings.from_config(train_cfg)
    torch.manual_seed(settings.seed)
    data = load_heat2d_graphs(dataset_path)
    x_scaler, y_scaler = data.fit_scalers()
    train_s = data.samples(data.subset(0), x_scaler, y_scaler)
    test_s = data.samples(data.subset(1), x_scaler, y_scaler)
    if not test_s:
        raise ValueError("the test split (used for early stopping) is empty: increase n_samples")
    model = build_model(model_name, in_features=data.x[0].shape[1], n_out=data.y.shape[1],
                        **_structure_kwargs(model_name, data), **hyper)
    fp = dataset_fingerprint(data)
    rid = make_run_id(model_name, dict(hyper), settings.run_key(), fp)
    summary = train(model, train_s, test_s, collate_graphs, settings, out, progress=progress, run_id=rid)
    device = pick_device(settings.device)
    metrics = {}
    for code, name in ((0, "train"), (1, "test"), (2, "validation")):
        ids = data.subset(code)
        if not ids:
            continue
        pred = y_scaler.inverse(predict(model, data.samples(ids, x_scaler, y_scaler), collate_graphs,
                                        device=device))
        metrics[name] = regression_metrics(data.y[ids, 0], pred[:, 0])
    return save_model_record(
        out, model=model_name, hyperparameters=hyper, train=settings.to_dict(), dataset=str(dataset_path),
        dataset_fingerprint=fp, run_id=rid, n_parameters=sum(p.numel() for p in model.parameters()),
        training=summary, metrics=metrics, features=list(data.feature_names),
        x_scaler=x_scaler.to_json(), y_scaler=y_scaler.to_json())


def _structure_kwargs(model_name: str, data: GraphDataset) -> dict:
    if model_name == "rgcnn":
        return {"extensive": data.extensive, "intensive": data.intensive}
    return {}


def load_gcnn(model_dir: Path | str, device="cpu"):
    """The best checkpoint of a trained model, with its scalers."""
    from homlearn.models.gcnn import build_model

    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    n_in = len(info["features"])
    kwargs = {}
    if info["model"] == "rgcnn":
        from homlearn.data.graphs import HEAT2D_FEATURES
        kinds = [k for n, k in HEAT2D_FEATURES if n in info["features"]]
        kwargs = {"extensive": tuple(i for i, k in enumerate(kinds) if k == "extensive"),
                  "intensive": tuple(i for i, k in enumerate(kinds) if k == "intensive")}
    model = build_model(info["model"], in_features=n_in, n_out=len(info["y_scaler"]["lo"]),
                        **kwargs, **info["hyperparameters"])
    model.load_state_dict(torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"])
    model.to(device).eval()
    return model, MinMaxScaler.from_json(info["x_scaler"]), MinMaxScaler.from_json(info["y_scaler"]), info


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict:
    """RMSE, relative RMSE, mean absolute error, Pearson correlation and R^2 (skill against
    predicting the mean: 0 for a model that learned nothing)."""
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    err = pred - truth
    rmse = float(np.sqrt(np.mean(err ** 2)))
    corr = float(np.corrcoef(truth, pred)[0, 1]) if len(truth) > 1 and np.std(pred) > 0 else float("nan")
    return {"n": int(len(truth)), "rmse": rmse, "relative_rmse": rmse / float(np.sqrt(np.mean(truth ** 2))),
            "mae": float(np.mean(np.abs(err))), "max_abs_error": float(np.max(np.abs(err))),
            "correlation": corr, "r2": 1.0 - float(np.mean(err ** 2) / np.var(truth)) if np.var(truth) > 0
            else float("nan")}
