"""Evaluation of the GCNN family and the CNN baselines on the stress-history exemplars
(paper gcnn section 6): RMSE and correlation coefficient against strain for every variant
(Fig. 11), error distributions (Fig. 13b), example histories, the ordering of the variants and
the rows of ``results/summary/field_surrogates.md``.

Every number is computed on the held-out 'validation' role (paper section 6), in MPa.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"ogcnn": "original", "fgcnn": "full", "dgcnn": "down", "vgcnn": "vee", "rgcnn": "reduced",
          "cnn2d": "CNN", "cnn3d": "CNN"}
PAPER_SECTION = {"cp_grid2d": "polycrystal 2D (Fig. 12b-13b)", "cp_grid3d": "polycrystal 3D (Fig. 11a, c)",
                 "viscoelastic3d": "composite (Fig. 11b, d)"}
#: Fig. 11 / section 6.1, qualitative: what the paper finds for each exemplar
PAPER_FINDING = {
    "cp_grid3d": "down and reduced on par with full; down < reduced < vee; original worst",
    "viscoelastic3d": "down and reduced better than full; down < reduced < vee; original worst",
    "cp_grid2d": "reduced on par with full (Fig. 13b), slightly better, less biased",
}


def evaluate_gcnn(exemplar: str, dataset_path, model_dirs: Mapping[str, Path | str], out_dir,
                  n_examples: int = 4) -> dict:
    """Predict the validation role with every model, write ``metrics.json`` and the figures to
    ``out_dir``; return the metrics."""
    from homlearn.train.gcnn import history_metrics, predict_store

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preds, truth, infos, strain = {}, None, {}, None
    for name, mdir in model_dirs.items():
        pred, y, data = predict_store(mdir, dataset_path, "validation")
        if truth is None:
            truth, strain, index = y, np.asarray(data.loading, float), data.index[data.subset("validation")]
            train_mean = data.y[data.subset("train")].mean(axis=0)
            linear_pred, linear_features = linear_average_reference(data)
        elif y.shape != truth.shape or not np.array_equal(y, truth):
            raise ValueError(f"model {name!r} was evaluated on other validation samples than the first model")
        preds[name] = pred
        infos[name] = json.loads((Path(mdir) / "model.json").read_text())
    if truth is None:
        raise ValueError("no models to evaluate")
    models = {}
    for name, pred in preds.items():
        m = history_metrics(truth, pred, strain)
        info = infos[name]
        per_sample = np.sqrt(np.mean((pred - truth) ** 2, axis=1))
        models[name] = {
            "label": LABELS.get(name, name), "rmse": m["rmse"], "relative_rmse": m["relative_rmse"],
            "correlation": m["correlation"], "rmse_final": float(m["per_step"]["rmse"][-1]),
            "mean_step_correlation": float(np.nanmean(m["per_step"]["correlation"])),
            "per_sample_rmse": {"mean": float(per_sample.mean()), "p90": float(np.percentile(per_sample, 90)),
                                "max": float(per_sample.max())},
            "bias_final": float(np.mean(pred[:, -1] - truth[:, -1])),
            "per_step": m["per_step"], "n_parameters": info["n_parameters"],
            "epochs": info["training"]["epochs"], "best_epoch": info["training"]["best_epoch"],
            "train_seconds": info["training"].get("seconds_this_call"), "device": info["training"]["device"],
            "hyperparameters": info["hyperparameters"], "splits": info.get("splits"),
            "collapsed": bool(info.get("collapsed", False)), "attempts": len(info.get("attempts", [])) or 1,
        }
    # the references every model must beat: the training mean history (blind to the microstructure)
    # and a mixture-rule-like least-squares linear map of the volume-averaged inputs
    mean_history = _reference(truth, np.broadcast_to(train_mean, truth.shape), strain)
    linear_average = _reference(truth, linear_pred, strain) | {"features": linear_features}
    rmse = {n: m["rmse"] for n, m in models.items()}
    checks = {f"beat_{key}": {n: bool(v < ref["rmse"]) for n, v in rmse.items()}
              for key, ref in (("mean_history", mean_history), ("linear_average", linear_average))}
    if all(v in rmse for v in ("dgcnn", "rgcnn", "vgcnn")):
        checks["down_lt_reduced_lt_vee"] = bool(rmse["dgcnn"] < rmse["rgcnn"] < rmse["vgcnn"])
    if "ogcnn" in rmse and len(rmse) > 1:
        checks["original_worst"] = bool(rmse["ogcnn"] >= max(v for k, v in rmse.items() if k != "ogcnn"))
    if "fgcnn" in rmse:
        for v in ("dgcnn", "rgcnn"):
            if v in rmse:
                checks[f"{v}_over_full"] = rmse[v] / rmse["fgcnn"]
    metrics = {"exemplar": exemplar, "paper": PAPER_SECTION.get(exemplar, exemplar),
               "paper_finding": PAPER_FINDING.get(exemplar, ""), "units": "MPa", "split": "validation",
               "n_validation": int(truth.shape[0]), "n_steps": int(truth.shape[1]),
               "truth_rms": float(np.sqrt(np.mean(truth ** 2))), "mean_history": mean_history,
               "linear_average": linear_average, "models": models, "checks": checks}
    _fig_vs_strain(exemplar, strain, models, out / f"fig11_{exemplar}.png", mean_history["per_step_rmse"],
                   linear_average["per_step_rmse"])
    _fig_error_distribution(exemplar, truth, preds, out / f"fig13_{exemplar}_error_distribution.png")
    _fig_examples(exemplar, strain, truth, preds, index, n_examples, out / f"{exemplar}_examples.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


#: the reference predictors of every evaluation: metrics key -> how the summary names it
REFERENCES = {"mean_history": "training mean history (reference: no microstructure)",
              "linear_average": "linear map of the volume-averaged inputs (reference: a mixture rule)"}


def _reference(truth, pred, strain) -> dict:
    """RMSE (all steps, relative, final step, per step) of a reference predictor."""
    from homlearn.train.gcnn import history_metrics

    m = history_metrics(truth, pred, strain)
    return {"rmse": m["rmse"], "relative_rmse": m["relative_rmse"], "rmse_final": float(m["per_step"]["rmse"][-1]),
            "per_step_rmse": m["per_step"]["rmse"]}


def linear_average_reference(data) -> tuple[np.ndarray, list[str]]:
    """Validation-role histories predicted by a least-squares affine map, fitted on the training
    role, from each sample's volume-averaged intensive inputs (orientation tensor components,
    phase: the inclusion volume fraction) to its history: the data-driven analogue of a mixture
    rule (paper gcnn sec. 2, eq. 5-7), which sees the composition but not the arrangement."""
    vol = data.extensive[0]
    cols = list(data.intensive)

    def averages(ids):
        xs = [np.asarray(data.x[k], dtype=np.float64) for k in ids]
        return np.stack([(x[:, cols] * x[:, [vol]]).sum(0) / x[:, vol].sum() for x in xs])

    def design(ids):
        return np.column_stack([np.ones(len(ids)), averages(ids)])

    train, val = data.subset("train"), data.subset("validation")
    coef, *_ = np.linalg.lstsq(design(train), data.y[train], rcond=None)
    return design(val) @ coef, [data.feature_names[c] for c in cols]


def _order(names):
    key = ["ogcnn", "fgcnn", "dgcnn", "vgcnn", "rgcnn", "cnn2d", "cnn3d"]
    return sorted(names, key=lambda n: key.index(n) if n in key else len(key))


def _fig_vs_strain(exemplar, strain, models, path, mean_rmse=None, linear_rmse=None):
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    pct = 100 * np.asarray(strain)
    if mean_rmse is not None:
        a.plot(pct, mean_rmse, "k--", lw=1, label="training mean history")
    if linear_rmse is not None:
        a.plot(pct, linear_rmse, "k:", lw=1, label="linear in volume averages")
    for name in _order(models):
        m = models[name]["per_step"]
        a.plot(pct, m["rmse"], label=LABELS.get(name, name))
        b.plot(pct, m["correlation"], label=LABELS.get(name, name))
    a.set_xlabel("mean strain eps_xx (%)")
    a.set_ylabel("validation RMSE of sigma_xx (MPa)")
    b.set_xlabel("mean strain eps_xx (%)")
    b.set_ylabel("correlation coefficient")
    a.set_title(f"{exemplar}: RMSE against strain", fontsize=10)
    b.set_title(f"{exemplar}: correlation against strain", fontsize=10)
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_error_distribution(exemplar, truth, preds, path):
    """Fig. 13b analogue: the distribution of the signed error of sigma_xx over all validation
    samples and steps, per model."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    errs = {n: (p - truth).ravel() for n, p in preds.items()}
    lim = max(float(np.percentile(np.abs(e), 99)) for e in errs.values()) or 1.0
    bins = np.linspace(-lim, lim, 61)
    for name in _order(errs):
        ax.hist(errs[name], bins=bins, histtype="step", density=True, label=LABELS.get(name, name))
    ax.set_xlabel("prediction - truth of sigma_xx (MPa)")
    ax.set_ylabel("density")
    ax.set_title(f"{exemplar}: error distribution (gcnn Fig. 13b)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_examples(exemplar, strain, truth, preds, index, n, path):
    n = min(n, truth.shape[0])
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    pct = 100 * np.asarray(strain)
    for j, ax in enumerate(axes[0]):
        ax.plot(pct, truth[j], "k-", lw=2, label="solver")
        for name in _order(preds):
            ax.plot(pct, preds[name][j], lw=1, label=LABELS.get(name, name))
        ax.set_title(f"sample {int(index[j])}", fontsize=9)
        ax.set_xlabel("eps_xx (%)")
    axes[0][0].set_ylabel("sigma_xx (MPa)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{exemplar}: validation histories", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_lines(metrics_files) -> list[str]:
    """Rows of ``field_surrogates.md`` (experiment, our metric, paper value, data size, epochs,
    hardware) for the GCNN experiments: each file is an exemplar's ``metrics.json`` (Fig. 11,
    13b), a Fig. 12 sweep's, or heat2d's (Fig. 13a)."""
    from homlearn.evaluate import heat2d, sensitivity

    lines = []
    for mf in map(Path, metrics_files):
        if not mf.exists():
            continue
        m = json.loads(mf.read_text())
        if "runs" in m:                                  # a Fig. 12 sweep
            lines += sensitivity.summary_lines(m, LABELS | heat2d.LABELS)
            continue
        if "gradient_rule" in m.get("models", {}):       # heat2d's surrogates and mixture rules
            lines += heat2d.summary_lines(m)
            continue
        ex = m["exemplar"]
        for name in _order(m["models"]):
            r = m["models"][name]
            n = r["splits"] or {}
            size = "/".join(str(n.get(k, {}).get("n", "?")) for k in ("train", "test", "validation"))
            mins = f", {r['train_seconds'] / 60:.1f} min" if r.get("train_seconds") else ""
            tries = r.get("attempts", 1)
            fate = (f", COLLAPSED to the mean history in all {tries} seeds" if r.get("collapsed")
                    else f", retrained: {tries - 1} earlier seed(s) collapsed" if tries > 1 else "")
            lines.append(f"| {ex}, {LABELS.get(name, name)} ({name}) sigma_xx history (gcnn {m['paper']}) | "
                         f"RMSE {r['rmse']:.3g} MPa ({100 * r['relative_rmse']:.2f}%), at final strain "
                         f"{r['rmse_final']:.3g} MPa, mean correlation over strain {r['mean_step_correlation']:.3f}"
                         f"{fate} | figure only | {size} samples (train/test/validation) | {r['epochs']} (best "
                         f"{r['best_epoch']}{mins}) | {r['device']} |")
        for key, label in REFERENCES.items():
            if key in m:
                b = m[key]
                what = label.replace("inputs", ", ".join(b["features"])) if "features" in b else label
                lines.append(f"| {ex}, {what} | RMSE {b['rmse']:.3g} MPa ({100 * b['relative_rmse']:.2f}%), at "
                             f"final strain {b['rmse_final']:.3g} MPa | - | as above | - | - |")
        c = {k: v for k, v in m["checks"].items() if not k.startswith("beat_")}
        if c:
            parts = []
            if "down_lt_reduced_lt_vee" in c:
                parts.append("down < reduced < vee " + ("holds" if c["down_lt_reduced_lt_vee"] else "does NOT hold"))
            if "original_worst" in c:
                parts.append("original worst " + ("holds" if c["original_worst"] else "does NOT hold"))
            parts += [f"{k.split('_')[0]}/full RMSE {v:.2f}" for k, v in c.items() if k.endswith("_over_full")]
            for key, label in REFERENCES.items():
                worse = [LABELS.get(n, n) for n, ok in m["checks"].get(f"beat_{key}", {}).items() if not ok]
                if worse:
                    parts.append(f"not below the {label.split(' (')[0]}: {', '.join(worse)}")
            lines.append(f"| {ex}, ordering of the variants (gcnn Fig. 11, sec. 6.1) | {'; '.join(parts)} | "
                         f"{m['paper_finding']} | as above | as above | as above |")
    return lines


def write_summary(path, metrics_files) -> str:
    """``field_surrogates_gcnn.md``: the GCNN experiments' table (same columns as every summary)."""
    import torch

    hw = f"{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU only"
    lines = ["# Graph and pixel surrogates (paper 'gcnn'): our numbers against the paper's", "",
             "Errors on the held-out validation samples: sigma_xx histories in uniaxial tension in MPa "
             "(relative: against the RMS of the true values), heat2d's effective conductivity kbar as it is "
             "stored. The paper gives curves and distributions (Fig. 11-13), not numbers: 'paper value' states "
             "its finding. Paper sizes: heat2d 10,000, cp_grid2d 12,000, cp_grid3d 10,000, viscoelastic3d 3,000 "
             f"samples, up to 1,000 epochs (8-32 GPU-hours per model). Summary written on: {hw}.", "",
             "| experiment | our metric | paper value | data size | epochs | hardware |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += summary_lines(metrics_files)
    text = "\n".join(lines) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text
