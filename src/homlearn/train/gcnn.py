"""Train a GCNN-family model (or a pixel/voxel CNN baseline) on a dataset store and save it with
everything needed to use it: exemplar, data options, model structure, hyperparameters, scalers
(fitted on the training split), dataset fingerprint, metrics and the predictions.

Graph models (:func:`homlearn.models.gcnn.build_model`: fgcnn, rgcnn and, where present, ogcnn,
dgcnn, vgcnn) read :func:`homlearn.data.graphs.load_graphs` samples batched by ``collate_graphs``;
``cnn2d`` / ``cnn3d`` (:func:`homlearn.models.cnn.build_cnn`, imported only when asked for) read
:func:`homlearn.data.voxels.load_images` samples batched by ``collate_images``. Paper gcnn
section 6: early stopping on the 'test' role, every reported number on the held-out 'validation'
role (:mod:`homlearn.data.graphs` documents the roles of each store's splits).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from homlearn.data.graphs import SPLIT_ROLES, TEST, TRAIN, GraphDataset, MinMaxScaler
from homlearn.train.record import fingerprint, run_id as make_run_id, save_model_record, write_json
from homlearn.train.settings import TrainSettings
from homlearn.train.trainer import pick_device, predict, train

#: graph models that reduce their inputs to clusters and take ``extensive`` / ``intensive`` columns
REDUCING_MODELS = ("ogcnn", "dgcnn", "vgcnn", "rgcnn")
#: CNN baselines and the exemplar whose grid each one convolves
CNN_MODELS = {"cnn2d": "cp_grid2d", "cnn3d": "cp_grid3d"}
DATA_KEYS = ("orientation", "target_scaling")


def dataset_fingerprint(data: GraphDataset) -> str:
    """sha256 of what a model learns from: sample index, split, inputs and targets (a grid's one
    shared edge array once)."""
    edges = data.edges[:1] if data.shared_edges else data.edges
    return fingerprint((data.index, data.split, data.y, *data.x, *edges, *data.cell_grain))


def _key(model_name: str) -> str:
    return str(model_name).strip().lower()


def load_data(dataset_path: Path | str, model_name: str, exemplar: str | None = None,
              data_cfg: Mapping[str, Any] | None = None) -> GraphDataset:
    """The store's samples in the form ``model_name`` reads: graphs, or images for a CNN."""
    opts = dict(data_cfg or {})
    unknown = sorted(set(opts) - set(DATA_KEYS))
    if unknown:
        raise ValueError(f"unknown data key(s) {unknown}; allowed: {list(DATA_KEYS)}")
    orientation = opts.get("orientation", "auto")
    key = _key(model_name)
    if key in CNN_MODELS:
        from homlearn.data.voxels import load_images

        data = load_images(dataset_path, exemplar, orientation=orientation)
        if data.exemplar != CNN_MODELS[key]:
            raise ValueError(f"model {model_name!r} convolves {CNN_MODELS[key]} grids, the store holds {data.exemplar}")
        return data
    from homlearn.data.graphs import load_graphs

    return load_graphs(dataset_path, exemplar, orientation=orientation)


def _parts(model_name: str):
    """(builder, collate) of a model name, the CNN module imported only for a CNN."""
    key = _key(model_name)
    if key in CNN_MODELS:
        from homlearn.models.cnn import build_cnn, collate_images

        return (lambda n_in, n_out, structure, hyper: build_cnn(key, in_channels=n_in, n_out=n_out, **hyper),
                collate_images)
    from homlearn.models.gcnn import build_model, collate_graphs

    return (lambda n_in, n_out, structure, hyper: build_model(key, in_features=n_in, n_out=n_out, **structure,
                                                              **hyper), collate_graphs)


def _structure(model_name: str, data: GraphDataset) -> dict:
    if _key(model_name) in REDUCING_MODELS:
        return {"extensive": tuple(data.extensive), "intensive": tuple(data.intensive)}
    return {}


#: a run whose best early-stopping loss is above this fraction of the mean predictor's has not
#: left the plateau of predicting the training mean (a collapse: e.g. every ReLU unit of a
#: narrow convolution dead from the start); measured collapses sat at 0.99-1.0
COLLAPSE_FRACTION = 0.95


def plateau_loss(samples: list[dict], train_samples: list[dict]) -> float:
    """MSE (scaled targets) of predicting the training mean target on ``samples``: the loss of a
    collapsed model, against which :data:`COLLAPSE_FRACTION` is applied."""
    mean = np.mean([s["y"] for s in train_samples], axis=0)
    return float(np.mean([(np.asarray(s["y"]) - mean) ** 2 for s in samples]))


def train_gcnn(dataset_path: Path | str, model_name: str, hyper: Mapping[str, Any],
               train_cfg: Mapping[str, Any], out_dir: Path | str, progress: bool = True,
               exemplar: str | None = None, data_cfg: Mapping[str, Any] | None = None,
               collapse_restarts: int = 0) -> dict:
    """Train ``model_name`` on the store (``exemplar`` defaults to the store's); writes ``model.json``
    and ``predictions.npz`` (every split, physical units) to ``out_dir``.

    Early stopping watches the 'test' role (paper section 6); 'validation' is held out. Metrics:
    scalar targets :func:`regression_metrics`; histories :func:`history_metrics` (RMSE, relative
    RMSE and correlation over all steps and per step, paper Fig. 11), in the target's units.
    A run that ends on the mean-predictor plateau (:data:`COLLAPSE_FRACTION`) is retrained from
    seed + 1, ... up to ``collapse_restarts`` times; every attempt is recorded in ``model.json``
    (``attempts``, ``collapsed``), and finished attempts are not redone when a killed run resumes.
    """
    out = Path(out_dir)
    settings = TrainSettings.from_config(train_cfg)
    if int(collapse_restarts) < 0:
        raise ValueError(f"collapse_restarts must be >= 0, got {collapse_restarts}")
    torch.manual_seed(settings.seed)
    data = load_data(dataset_path, model_name, exemplar, data_cfg)
    build, collate = _parts(model_name)
    target_scaling = (data_cfg or {}).get("target_scaling", "minmax")
    x_scaler, y_scaler = data.fit_scalers(target_scaling)
    train_s = data.samples(data.subset(TRAIN), x_scaler, y_scaler)
    test_s = data.samples(data.subset(TEST), x_scaler, y_scaler)
    if not test_s:
        raise ValueError("the test split (used for early stopping) is empty: increase n_samples")
    structure = _structure(model_name, data)
    fp = dataset_fingerprint(data)
    plateau = plateau_loss(test_s, train_s)
    out.mkdir(parents=True, exist_ok=True)
    done_path = out / "attempts.json"
    finished = json.loads(done_path.read_text()) if done_path.exists() else {}
    attempts = []
    for attempt in range(int(collapse_restarts) + 1):
        run_settings = replace(settings, seed=settings.seed + attempt)
        # the scalers are part of what is trained: a checkpoint of other preprocessing must not resume
        rid = make_run_id(model_name, dict(hyper), run_settings.run_key(), fp, x_scaler.to_json(),
                          y_scaler.to_json())
        last = attempt == int(collapse_restarts)
        if rid in finished and finished[rid]["collapsed"] and not last:
            attempts.append(finished[rid])          # a collapsed attempt of a killed run: not redone
            continue
        torch.manual_seed(run_settings.seed)
        model = build(data.x[0].shape[1], data.n_out, structure, dict(hyper))
        summary = train(model, train_s, test_s, collate, run_settings, out, progress=progress, run_id=rid)
        record = {"seed": run_settings.seed, "best_val_loss": summary["best_val_loss"], "plateau_loss": plateau,
                  "epochs": summary["epochs"], "collapsed": bool(summary["best_val_loss"] > COLLAPSE_FRACTION * plateau)}
        attempts.append(record)
        finished[rid] = record
        write_json(done_path, finished)             # atomic: a kill never leaves half a record
        if not record["collapsed"]:
            break
        if not last:
            print(f"seed {run_settings.seed}: best loss {record['best_val_loss']:.4g} is the mean predictor's "
                  f"{plateau:.4g} (collapsed); retraining from seed {run_settings.seed + 1}")
    settings = run_settings
    device = pick_device(settings.device)
    metrics, preds = {}, {}
    for code, name in SPLIT_ROLES.items():
        ids = data.subset(code)
        if not ids:
            continue
        pred = y_scaler.inverse(predict(model, data.samples(ids, x_scaler, y_scaler), collate, device=device))
        preds[name], preds[f"{name}_index"] = pred, data.index[ids]
        metrics[name] = (regression_metrics(data.y[ids, 0], pred[:, 0]) if data.loading is None
                         else history_metrics(data.y[ids], pred, data.loading))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "predictions.npz", **preds)
    history = {} if data.loading is None else {"loading": data.loading.tolist(), "loading_name": "mean eps_xx"}
    return save_model_record(
        out, model=model_name, hyperparameters=hyper, train=settings.to_dict(), dataset=str(dataset_path),
        dataset_fingerprint=fp, run_id=rid, n_parameters=sum(p.numel() for p in model.parameters()),
        training=summary, metrics=metrics, features=list(data.feature_names),
        x_scaler=x_scaler.to_json(), y_scaler=y_scaler.to_json(), exemplar=data.exemplar,
        data=dict(data.options) | ({"target_scaling": target_scaling} if data.loading is not None else {}), structure={k: list(v) for k, v in structure.items()},
        feature_kinds={"extensive": list(data.extensive), "intensive": list(data.intensive)},
        target={"name": data.target, "units": data.units, "n_out": data.n_out}, splits=data.describe_splits(),
        attempts=attempts, collapsed=attempts[-1]["collapsed"], **history)


def load_gcnn(model_dir: Path | str, device="cpu"):
    """The best checkpoint of a trained model (any model of :func:`train_gcnn`), with its scalers."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    structure = info.get("structure")
    if structure is None:  # records written before the exemplar was stored: heat2d
        structure = {}
        if _key(info["model"]) in REDUCING_MODELS:
            from homlearn.data.graphs import HEAT2D_FEATURES
            kinds = [k for n, k in HEAT2D_FEATURES if n in info["features"]]
            structure = {"extensive": [i for i, k in enumerate(kinds) if k == "extensive"],
                         "intensive": [i for i, k in enumerate(kinds) if k == "intensive"]}
    build, _ = _parts(info["model"])
    model = build(len(info["features"]), len(info["y_scaler"]["lo"]), {k: tuple(v) for k, v in structure.items()},
                  info["hyperparameters"])
    model.load_state_dict(torch.load(model_dir / "best.pt", map_location=device, weights_only=False)["model"])
    model.to(device).eval()
    return model, MinMaxScaler.from_json(info["x_scaler"]), MinMaxScaler.from_json(info["y_scaler"]), info


def predict_store(model_dir: Path | str, dataset_path: Path | str, role: int | str = "validation",
                  device="cpu") -> tuple[np.ndarray, np.ndarray, GraphDataset]:
    """(prediction, truth, data) of a saved model on one split role of a store, physical units,
    read with the model's exemplar and data options."""
    model, xs, ys, info = load_gcnn(model_dir, device)
    data = load_data(dataset_path, info["model"], info.get("exemplar", "heat2d"), info.get("data"))
    ids = data.subset(role)
    _, collate = _parts(info["model"])
    pred = ys.inverse(predict(model, data.samples(ids, xs, ys), collate, device=device))
    return pred, data.y[ids], data


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


def history_metrics(truth: np.ndarray, pred: np.ndarray, loading: np.ndarray) -> dict:
    """Errors of histories ``(S, T)``: :func:`regression_metrics` over every value (``n`` = samples,
    ``n_values`` = values), and per step (paper Fig. 11): ``rmse``, ``relative_rmse`` (against the
    step's RMS truth) and ``correlation`` (Pearson over the samples; NaN where a side is constant),
    with the ``strain`` of each step."""
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    if truth.shape != pred.shape or truth.ndim != 2:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} must be equal (samples, steps)")
    err = pred - truth
    rmse_t = np.sqrt(np.mean(err ** 2, axis=0))
    rms_t = np.sqrt(np.mean(truth ** 2, axis=0))
    corr_t = [float(np.corrcoef(truth[:, t], pred[:, t])[0, 1])
              if len(truth) > 1 and np.std(pred[:, t]) > 0 and np.std(truth[:, t]) > 0 else float("nan")
              for t in range(truth.shape[1])]
    pooled = regression_metrics(truth.ravel(), pred.ravel())
    return pooled | {"n": int(truth.shape[0]), "n_values": int(truth.size),
                     "per_step": {"strain": np.asarray(loading, float).tolist(), "rmse": rmse_t.tolist(),
                                  "relative_rmse": (rmse_t / np.where(rms_t > 0, rms_t, np.nan)).tolist(),
                                  "correlation": corr_t}}
