"""heat2d evaluation: validation metrics of the surrogates and mixture rules, and the paper's figures
(gcnn Fig. 2 microstructures and temperature fields, Fig. 3 mixture rules against the truth,
Fig. 13a error distributions, plus parity plots and training curves)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.tri import Triangulation  # noqa: E402

from homlearn.data.store import STATUS_DONE, read_ragged  # noqa: E402

LABELS = {"fgcnn": "fGCNN", "rgcnn": "rGCNN", "gradient_rule": "mixture, uniform gradient (eq. 6)",
          "flux_rule": "mixture, uniform flux (eq. 7)"}


def evaluate_heat2d(dataset_path, model_dirs: Mapping[str, Path | str], out_dir,
                    n_examples: int = 4) -> dict:
    """Write ``metrics.json`` and the figures to ``out_dir``; return the metrics."""
    from homlearn.data.graphs import load_heat2d_graphs
    from homlearn.models.gcnn import collate_graphs
    from homlearn.train.gcnn import load_gcnn, regression_metrics
    from homlearn.train.trainer import predict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = xr.open_zarr(dataset_path, consolidated=None)
    data = load_heat2d_graphs(dataset_path)
    val = data.subset(2) or data.subset(1)
    split_name = "validation" if data.subset(2) else "test"
    idx = data.index[val]
    truth = data.y[val, 0]
    preds = {}
    infos = {}
    for name, mdir in model_dirs.items():
        model, xs, ys, info = load_gcnn(mdir)
        preds[name] = ys.inverse(predict(model, data.samples(val, xs, ys), collate_graphs))[:, 0]
        infos[name] = info
    preds["gradient_rule"] = ds["kbar_gradient_rule"].values[idx]
    preds["flux_rule"] = ds["kbar_flux_rule"].values[idx]
    status = ds["status"].values
    first = next(iter(infos.values()), {})
    metrics = {
        "exemplar": "heat2d", "splits": {k: v.get("n") for k, v in (first.get("splits") or {}).items()},
        "split": split_name, "n_samples": int(len(status)), "n_done": int(np.sum(status == STATUS_DONE)),
        "n_failed": int(np.sum(status < 0)),
        "models": {name: regression_metrics(truth, p) for name, p in preds.items()},
        "training": {name: {k: info["training"][k] for k in ("epochs", "best_epoch", "best_val_loss", "device")}
                     | {"n_parameters": info["n_parameters"], "max_epochs": info["train"]["max_epochs"]}
                     for name, info in infos.items()},
        "bounds_hold": bool(np.all((ds["kbar_lower"].values[idx] <= truth + 1e-12)
                                   & (truth <= ds["kbar_upper"].values[idx] + 1e-12))),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _metrics_table(out / "metrics.csv", metrics)
    _fig_microstructures(ds, data.index[:n_examples], out / "fig2_microstructures.png")
    _fig_mixture(truth, preds, out / "fig3b_mixture_rules.png")
    _fig_parity(truth, preds, out / "fig13_parity.png")
    _fig_errors(truth, preds, out / "fig13a_error_distribution.png")
    _fig_training(model_dirs, out / "training_curves.png")
    return metrics


def summary_lines(metrics: Mapping) -> list[str]:
    """Rows of the field summary table for heat2d's ``metrics.json`` (Fig. 13a: every surrogate and
    mixture rule on the held-out split, and the rGCNN / fGCNN ratio the paper calls on par)."""
    split = metrics.get("splits") or {}
    size = ("/".join(str(split.get(k, "?")) for k in ("train", "test", "validation")) + " samples (train/test/"
            "validation)") if split else f"{metrics.get('n_done', '?')} samples"
    lines = []
    for name, r in metrics["models"].items():
        t = metrics.get("training", {}).get(name)
        epochs = f"{t['epochs']} (best {t['best_epoch']})" if t else "- (closed form)"
        lines.append(f"| heat2d, {LABELS.get(name, name)} ({name}) kbar (gcnn Fig. 13a) | RMSE {r['rmse']:.3g} "
                     f"({100 * r['relative_rmse']:.2f}%), R^2 {r['r2']:.3f} on the {metrics['split']} split | "
                     f"figure only | {size} | {epochs} | {t['device'] if t else '-'} |")
    m = metrics["models"]
    if "fgcnn" in m and "rgcnn" in m:
        lines.append(f"| heat2d, rGCNN against fGCNN (gcnn Fig. 13a, sec. 6.2) | RMSE ratio rgcnn/fgcnn "
                     f"{m['rgcnn']['rmse'] / m['fgcnn']['rmse']:.2f} | rGCNN on par with the fGCNN | as above | "
                     f"as above | as above |")
    return lines


def _metrics_table(path, metrics):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "n", "rmse", "relative_rmse", "mae", "correlation", "r2"])
        for name, m in metrics["models"].items():
            w.writerow([LABELS.get(name, name), m["n"], f"{m['rmse']:.4g}", f"{m['relative_rmse']:.4g}",
                        f"{m['mae']:.4g}", f"{m['correlation']:.4f}", f"{m['r2']:.4f}"])


def _fig_microstructures(ds, samples, path):
    """Paper Fig. 2: grains (orientation) and temperature field of a few samples."""
    n = len(samples)
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n + 1.2, 6.0), squeeze=False, layout="constrained")
    for j, s in enumerate(samples):
        pts, tri = read_ragged(ds, "point_xy", s), read_ragged(ds, "cell_nodes", s)
        angle, temp = read_ragged(ds, "cell_angle", s), read_ragged(ds, "temperature", s)
        grain = read_ragged(ds, "cell_grain", s)
        t = Triangulation(pts[:, 0], pts[:, 1], tri)
        im0 = axes[0, j].tripcolor(t, facecolors=angle, cmap="twilight", vmin=0, vmax=np.pi, edgecolors="none")
        axes[0, j].add_collection(_grain_boundaries(pts, tri, grain))
        im1 = axes[1, j].tripcolor(t, temp, shading="gouraud", cmap="coolwarm", vmin=0, vmax=1)
        axes[1, j].add_collection(_grain_boundaries(pts, tri, grain))
        kbar = float(ds["kbar"].values[s, 0])
        axes[0, j].set_title(f"sample {s}: {len(tri)} cells, {grain.max() + 1} grains", fontsize=9)
        axes[1, j].set_title(f"temperature, kbar_x = {kbar:.4f}", fontsize=9)
        for ax in axes[:, j]:
            ax.set_aspect("equal")
            ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im0, ax=axes[0].tolist(), label="orientation angle (rad)", shrink=0.8)
    fig.colorbar(im1, ax=axes[1].tolist(), label="temperature", shrink=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _grain_boundaries(pts, tri, grain):
    """Mesh edges whose two triangles belong to different grains, plus the outer boundary."""
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    owner = np.tile(grain, 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, owner = edges[order], owner[order]
    same_as_next = np.all(edges[1:] == edges[:-1], axis=1)
    interior = np.flatnonzero(same_as_next)
    boundary = interior[owner[interior] != owner[interior + 1]]
    return LineCollection(pts[edges[boundary]], colors="k", linewidths=0.8)


def _fig_mixture(truth, preds, path):
    """Paper Fig. 3b: mixture-rule estimates against the computed effective conductivity."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, marker in (("gradient_rule", "^"), ("flux_rule", "v")):
        ax.scatter(truth, preds[name], s=10, marker=marker, alpha=0.7, label=LABELS[name])
    _diag(ax, truth, preds["gradient_rule"], preds["flux_rule"])
    ax.set_xlabel(r"$\bar\kappa_x$ (FEM)")
    ax.set_ylabel(r"mixture estimate of $\bar\kappa_x$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_parity(truth, preds, path):
    names = list(preds)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.scatter(truth, preds[name], s=8, alpha=0.7)
        _diag(ax, truth, preds[name])
        r = np.corrcoef(truth, preds[name])[0, 1]
        rmse = np.sqrt(np.mean((preds[name] - truth) ** 2))
        ax.set_title(f"{LABELS.get(name, name)}\nRMSE {rmse:.2e}, r {r:.3f}", fontsize=9)
        ax.set_xlabel("truth")
        ax.set_ylabel("prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_errors(truth, preds, path):
    """Paper Fig. 13a: distribution of the prediction error on held-out samples."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    errs = {name: p - truth for name, p in preds.items()}
    lim = max(np.max(np.abs(e)) for e in errs.values())
    bins = np.linspace(-lim, lim, 41)
    for name, e in errs.items():
        ax.hist(e, bins=bins, histtype="step", linewidth=1.5, label=LABELS.get(name, name))
    ax.set_xlabel(r"error in $\bar\kappa_x$")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_training(model_dirs, path):
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, mdir in model_dirs.items():
        hist = Path(mdir) / "history.csv"
        if not hist.exists():
            continue
        rows = list(csv.DictReader(open(hist)))
        ep = [int(r["epoch"]) for r in rows]
        ax.semilogy(ep, [float(r["train_loss"]) for r in rows], label=f"{LABELS.get(name, name)} train")
        ax.semilogy(ep, [float(r["val_loss"]) for r in rows], "--",  # early stopping on the test split
                    label=f"{LABELS.get(name, name)} test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _diag(ax, *arrays):
    lo = min(np.min(a) for a in arrays)
    hi = max(np.max(a) for a in arrays)
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)


def evaluate_sensitivity(runs: Mapping[str, Path | str], out_dir) -> dict:
    """Fig. 12a (section 6.2): validation RMSE of kbar against N_filters for the fGCNN and for the
    rGCNN at fixed N_features. ``runs`` maps ``<model>_f<filters>_s<seed>`` to a trained model
    directory; the metrics are the ones its training recorded on the held-out validation split
    (:func:`homlearn.evaluate.sensitivity.evaluate_sweep`; collapsed: R^2 < 0.05)."""
    from homlearn.evaluate.sensitivity import evaluate_sweep

    out = Path(out_dir)
    return evaluate_sweep(runs, out / "sensitivity", out / "fig12a_sensitivity.png", labels=LABELS,
                          ylabel="validation RMSE of kbar", title="heat2d: sensitivity to N_filters (gcnn Fig. 12a)",
                          collapsed=lambda val: val["r2"] < 0.05,
                          experiment={"exemplar": "heat2d", "figure": "Fig. 12a", "units": "(kbar)",
                                      "paper_finding": "fGCNN improves up to 2-3 features, then flat; the rGCNN "
                                                       "(N_features 3) matches it from N_filters = N_features"})
