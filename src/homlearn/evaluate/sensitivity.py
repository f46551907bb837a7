"""Sensitivity of the validation error to the network width (paper gcnn section 6.2, Fig. 12), shared
by heat2d (Fig. 12a: kbar) and cp_grid2d (Fig. 12b: sigma_xx histories).

A sweep is a set of trained model directories named ``<model>_f<N_filters>_s<seed>``; each row is
read from the metrics its training recorded on the held-out validation role (``test`` when a
store has none). The figure shows, per model, every seed (points), the best seed (solid) and the
mean over seeds (dashed) against ``N_filters`` (log2 axis).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["sweep_rows", "plot_sweep", "evaluate_sweep", "summary_lines"]


def sweep_rows(runs: Mapping[str, Path | str], collapsed: Callable[[dict], bool],
               extra: Callable[[dict], dict] | None = None) -> list[dict]:
    """One row per run (sorted by model, N_filters, seed): widths, parameter count, epochs, the
    validation RMSE and R^2, ``extra(validation_metrics)`` and ``collapsed(validation_metrics)``
    (a net that only predicts the ensemble mean)."""
    rows = []
    for key, mdir in runs.items():
        info = json.loads((Path(mdir) / "model.json").read_text())
        model, f, s = key.rsplit("_", 2)
        if not (f[:1] == "f" and f[1:].isdigit() and s[:1] == "s" and s[1:].isdigit()):
            raise ValueError(f"sweep run {key!r} is not named <model>_f<filters>_s<seed>")
        val = info["metrics"].get("validation") or info["metrics"]["test"]
        hyper = info["hyperparameters"]
        rows.append({"model": model, "n_filters": int(f[1:]), "seed": int(s[1:]),
                     "n_features": hyper.get("n_features", int(f[1:])), "n_dense": hyper["n_dense"],
                     "n_parameters": info["n_parameters"], "epochs": info["training"]["epochs"],
                     "best_epoch": info["training"]["best_epoch"], "rmse": val["rmse"], "r2": val["r2"]}
                    | (extra(val) if extra else {}) | {"collapsed": bool(collapsed(val))})
    if not rows:
        raise ValueError("no sweep runs given")
    rows.sort(key=lambda r: (r["model"], r["n_filters"], r["seed"]))
    return rows


def plot_sweep(rows: list[dict], path: Path | str, labels: Mapping[str, str], ylabel: str, title: str) -> dict:
    """Validation RMSE against N_filters per model; returns ``{model: {N_filters: best/mean RMSE}}``."""
    summary = {}
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
        mine = [r for r in rows if r["model"] == model]
        color = f"C{i}"
        filters = sorted({r["n_filters"] for r in mine})
        best = [min(r["rmse"] for r in mine if r["n_filters"] == f) for f in filters]
        mean = [float(np.mean([r["rmse"] for r in mine if r["n_filters"] == f])) for f in filters]
        label = labels.get(model, model)
        if model == "rgcnn":
            fixed = {r["n_features"] for r in mine}
            tied = all(r["n_features"] == r["n_filters"] for r in mine)
            label += " (N_features = N_filters)" if tied else f" (N_features = {sorted(fixed)[0]})"
        ax.plot(filters, best, "o-", color=color, label=f"{label}, best seed")
        ax.plot(filters, mean, "--", color=color, alpha=0.6, label="mean over seeds")
        ax.scatter([r["n_filters"] for r in mine], [r["rmse"] for r in mine], s=10, color=color, alpha=0.4)
        summary[model] = {str(f): {"best_rmse": b, "mean_rmse": m} for f, b, m in zip(filters, best, mean)}
    ax.set_xscale("log", base=2)
    ticks = sorted({r["n_filters"] for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("N_filters")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return summary


def evaluate_sweep(runs: Mapping[str, Path | str], table_dir: Path | str, figure: Path | str, *,
                   labels: Mapping[str, str], ylabel: str, title: str, collapsed: Callable[[dict], bool],
                   extra: Callable[[dict], dict] | None = None, experiment: Mapping | None = None) -> dict:
    """Rows (:func:`sweep_rows`) to ``table_dir/metrics.csv`` and ``metrics.json`` (with the
    per-model summary, ``experiment``: what the sweep is and the paper's finding, and the data
    size, epoch budget and hardware of the runs), the figure (:func:`plot_sweep`) to ``figure``;
    returns the metrics."""
    rows = sweep_rows(runs, collapsed, extra)
    first = json.loads((Path(next(iter(runs.values()))) / "model.json").read_text())
    run_info = {"splits": {k: v.get("n") for k, v in (first.get("splits") or {}).items()},
                "max_epochs": first["train"]["max_epochs"], "patience": first["train"]["patience"],
                "devices": sorted({json.loads((Path(d) / "model.json").read_text())["training"]["device"]
                                   for d in runs.values()})}
    table_dir = Path(table_dir)
    table_dir.mkdir(parents=True, exist_ok=True)
    with open(table_dir / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    metrics = {"runs": rows, "summary": plot_sweep(rows, figure, labels, ylabel, title),
               "experiment": dict(experiment or {}), "run_info": run_info}
    (table_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def summary_lines(metrics: Mapping, labels: Mapping[str, str]) -> list[str]:
    """Rows of the field summary table (experiment, our metric, paper value, data size, epochs,
    hardware) for one sweep's ``metrics.json``: per model, the best-seed validation RMSE at each
    N_filters (``*``: every seed of that width collapsed to the ensemble mean)."""
    ex, info = metrics.get("experiment") or {}, metrics.get("run_info") or {}
    if not ex:
        raise ValueError("sweep metrics without 'experiment' (written before session 7): re-run its evaluation")
    split = info.get("splits") or {}
    size = "/".join(str(split.get(k, "?")) for k in ("train", "test", "validation"))
    lines = []
    for model, by_width in metrics["summary"].items():
        dead = {r["n_filters"] for r in metrics["runs"] if r["model"] == model and r["collapsed"]}
        alive = {r["n_filters"] for r in metrics["runs"] if r["model"] == model and not r["collapsed"]}
        seeds = len({r["seed"] for r in metrics["runs"] if r["model"] == model})
        cells = ", ".join(f"{w}: {v['best_rmse']:.3g}{'*' if int(w) in dead - alive else ''}"
                          for w, v in by_width.items())
        lines.append(f"| {ex['exemplar']}, {ex['figure']} sensitivity, {labels.get(model, model)} ({model}): "
                     f"validation RMSE against N_filters | {cells} {ex['units']} (best of {seeds} seed(s)) | "
                     f"{ex['paper_finding']} | {size} samples (train/test/validation) | <= {info.get('max_epochs')} "
                     f"(patience {info.get('patience')}) | {', '.join(info.get('devices', []))} |")
    return lines


def evaluate_cp_grid2d_sensitivity(runs: Mapping[str, Path | str], out_dir: Path | str) -> dict:
    """Fig. 12b (section 6.2): validation RMSE of the sigma_xx histories (MPa, all steps) against
    ``N_features = N_filters`` for the fGCNN and the rGCNN, ``N_dense = 1``. Writes
    ``metrics.csv``, ``metrics.json`` and ``fig12b_sensitivity.png`` to ``out_dir``. Collapsed: the
    mean over the steps of the per-step correlation with the truth is below 0.2 (or undefined,
    a constant prediction): the net predicts about the ensemble mean history."""
    from homlearn.evaluate.gcnn import LABELS

    def mean_corr(val):
        c = np.asarray(val["per_step"]["correlation"], float)
        return float(np.nanmean(c)) if np.any(np.isfinite(c)) else float("nan")

    out = Path(out_dir)
    return evaluate_sweep(runs, out, out / "fig12b_sensitivity.png", labels=LABELS,
                          ylabel="validation RMSE of sigma_xx (MPa)",
                          title="cp_grid2d: sensitivity to N_features = N_filters (gcnn Fig. 12b)",
                          collapsed=lambda val: not mean_corr(val) >= 0.2,
                          extra=lambda val: {"rmse_final": float(val["per_step"]["rmse"][-1]),
                                             "mean_step_correlation": mean_corr(val)},
                          experiment={"exemplar": "cp_grid2d", "figure": "Fig. 12b", "units": "MPa",
                                      "paper_finding": "improvement levels off at N_features >= 4 (fGCNN and "
                                                       "rGCNN, N_features = N_filters, N_dense 1)"})
