"""Laminate studies of paper 'rno' section 4 beyond Fig. 3a-b: transfer learning from MH
(Fig. 3a, 3c-f), exponential hardening (Fig. 6a-c) and the auto-encoder of the layers' model
variables (Fig. 4a-b, 6d), from the models the rules trained.

Model directories:

- direct RNO ``<models>/<case>_k<k>`` (:func:`homlearn.evaluate.history.lam_model_dir`);
- RNO trained from the source's RNO of the same k: ``<models>/<case>_from_<source>_k<k>``;
- auto-encoder ``<ae_models>/<case>_m<latent>`` (:func:`homlearn.train.autoencoder.train_autoencoder`).

Each study writes ``metrics.json`` (``exemplar``: laminate_transfer, laminate_hardening,
laminate_autoencoder; rows in ``rows``), ``metrics.csv`` and its figures; :func:`summary_lines`
gives its rows of ``results/summary/history_surrogates.md``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from homlearn.evaluate.history import (  # noqa: E402
    _placeholder, _training_facts, _write_csv, lam_model_dir, laminate_prediction_figure, paths_label)
from homlearn.train.history import load_history, load_history_data, relative_errors  # noqa: E402

FIGURES = {
    "transfer": ("fig3a_transfer_error_vs_k", "fig3cf_direct_vs_transfer", "fig3_transfer_training_curves"),
    "hardening": ("fig6a_error_vs_k", "fig6b_direct_vs_transfer", "fig6_training_curves", "fig6c_predictions"),
    "autoencoder": ("fig4a_autoencoder_error", "fig4b_autoencoder_reconstruction",
                    "fig6d_autoencoder_error_hardening"),
}
_PAPER = {"transfer": ("3a", "3c-f"), "hardening": ("6a", "6b")}


def transfer_model_dir(models, case: str, source: str, k: int) -> Path:
    return Path(models) / f"{case}_from_{source}_k{k}"


def ae_model_dir(models, case: str, latent: int) -> Path:
    return Path(models) / f"{case}_m{latent}"


def ae_latents(case: str, latents: Sequence[int]) -> list[int]:
    """The latent sizes that apply to ``case``: at most its number of model variables (6, or 8
    with hardening)."""
    from homlearn.solvers.analytic.laminate import case as laminate_case

    return [int(m) for m in latents if m <= laminate_case(case).n_model_variables]


def _history(model_dir) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, training error in eval mode) from the trainer's history.csv."""
    with open(Path(model_dir) / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([int(r["epoch"]) for r in rows]), np.array([float(r["val_loss"]) for r in rows])


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- transfer learning


def evaluate_transfer(datasets, models, out_dir, source: str, cases: Sequence[str], ks: Sequence[int],
                      study: str = "transfer", example_case: str | None = None, n_examples: int = 8) -> dict:
    """Direct against transferred RNOs (study 'transfer': rno Fig. 3a, 3c-f; 'hardening': the -EH
    cases from the no-hardening source, Fig. 6a-c). Rows: every (case, k) trained directly (the
    source too) and from ``source``; a transferred row also has the source model's error on the
    case's test paths before any training (``source_on_test_relative_l2``)."""
    if study not in _PAPER:
        raise ValueError(f"study must be one of {sorted(_PAPER)}, got {study!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ks = sorted(int(k) for k in ks)
    rows = []

    def row(case, k, training, info, start=None):
        return {"model": "rno", "case": case, "k": k, "training": training,
                "source": source if training == "transfer" else "",
                "test_relative_l2": info["metrics"]["test"]["relative_l2"],
                "train_relative_l2": info["metrics"]["train"]["relative_l2"],
                "source_on_test_relative_l2": "" if start is None else start, **_training_facts(info)}

    for case in dict.fromkeys([source, *cases]):
        for k in ks:
            rows.append(row(case, k, "direct", load_history(lam_model_dir(models, case, k))[1]))
    for case in cases:
        data = load_history_data(Path(datasets) / f"laminate_{case}.zarr", "laminate")
        te = data.subset(1)
        for k in ks:
            src, _ = load_history(lam_model_dir(models, source, k))
            start = float(relative_errors(src, data.x[te], data.y[te], data.t).mean())
            rows.append(row(case, k, "transfer", load_history(transfer_model_dir(models, case, source, k))[1], start))
    err = {(r["case"], r["k"], r["training"]): r["test_relative_l2"] for r in rows}
    names = FIGURES[study]
    fa, fb = _PAPER[study]

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(ks, [err[(source, k, "direct")] for k in ks], "ko--", label=f"{source} (direct)")
    for j, case in enumerate(cases):
        ax.plot(ks, [err[(case, k, "transfer")] for k in ks], "o-", color=f"C{j}", label=f"{case} <- {source}")
    ax.set(yscale="log", xlabel="internal variables k", ylabel="test error (eq. 16)", xticks=ks,
           title=f"laminate: trained from {source} (rno Fig. {fa})")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    _save(fig, out / f"{names[0]}.png")

    fig, axes = plt.subplots(1, len(cases), figsize=(3.4 * len(cases) + 0.6, 3.4), squeeze=False)
    for ax, case in zip(axes[0], cases):
        ax.plot(ks, [err[(case, k, "direct")] for k in ks], "o-", label="direct")
        ax.plot(ks, [err[(case, k, "transfer")] for k in ks], "s--", label=f"<- {source}")
        start = [r["source_on_test_relative_l2"] for r in rows if r["case"] == case and r["training"] == "transfer"]
        ax.plot(ks, start, "x:", color="0.6", label=f"{source} model, untrained")
        ax.set(yscale="log", xlabel="k", xticks=ks, title=case)
    axes[0][0].set_ylabel("test error (eq. 16)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"direct training against transfer from {source} (rno Fig. {fb})", fontsize=9)
    _save(fig, out / f"{names[1]}.png")

    k_max = ks[-1]
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for j, case in enumerate(cases):
        for training, style in (("direct", "-"), ("transfer", "--")):
            d = (lam_model_dir(models, case, k_max) if training == "direct"
                 else transfer_model_dir(models, case, source, k_max))
            ep, loss = _history(d)
            label = f"{case} direct" if training == "direct" else f"{case} <- {source}"
            ax.plot(ep, loss, style, color=f"C{j}", label=label)
    ax.set(yscale="log", xlabel="epoch (Adam, then L-BFGS)", ylabel="training error (eq. 16)",
           title=f"training curves at k = {k_max}: direct (solid) and transferred (dashed)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    _save(fig, out / f"{names[2]}.png")

    if study == "hardening":
        case = example_case if example_case in cases else cases[-1]
        model, _ = load_history(transfer_model_dir(models, case, source, k_max))
        laminate_prediction_figure(
            model, Path(datasets) / f"laminate_{case}.zarr", out / f"{names[3]}.png",
            f"laminate {case} <- {source}, k = {k_max}: truth (solid) and RNO (dashed), test paths (rno Fig. 6c)",
            n_examples)
    metrics = {"exemplar": f"laminate_{study}", "datasets": str(datasets), "source": source, "cases": list(cases),
               "k": ks, "rows": rows}
    _write_csv(out / "metrics.csv", rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


# ----------------------------------------------------------------------------- auto-encoder


def evaluate_autoencoders(datasets, models, out_dir, cases: Sequence[str], latents: Sequence[int],
                          example_case: str = "M3", example_latent: int = 3, n_examples: int = 8) -> dict:
    """Reconstruction error (eq. 25) against the latent size for each case, with the PCA of the
    same size as the linear reference: Fig. 4a (no hardening), Fig. 6d (exponential
    hardening), and Fig. 4b (model variables and their reconstruction on test trajectories)."""
    from homlearn.train.autoencoder import load_autoencoder, load_model_variables

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        for m in ae_latents(case, latents):
            info = json.loads((ae_model_dir(models, case, m) / "model.json").read_text())
            mt, tr = info["metrics"], info["training"]
            rows.append({"case": case, "latent": m, "n_variables": len(info["variables"]),
                         "test_eq25": mt["test"]["eq25"], "test_relative_l2": mt["test"]["relative_l2"],
                         "pca_test_eq25": mt["pca_test"]["eq25"], "pca_test_relative_l2": mt["pca_test"]["relative_l2"],
                         "train_eq25": mt["train"]["eq25"], "test_points": mt["test"]["n_points"],
                         "test_points_eq25": mt["test"]["n_points_eq25"],
                         "n_train": info["n_train_trajectories"], "n_test": info["n_test_trajectories"],
                         "adam_epochs": tr.get("adam_epochs", tr["epochs"]), "lbfgs_epochs": tr.get("lbfgs_epochs", 0),
                         "train_seconds": round(float(tr["seconds_total"]), 1), "n_parameters": info["n_parameters"]})
    for name, want, fig_no in ((FIGURES["autoencoder"][0], 6, "4a"), (FIGURES["autoencoder"][2], 8, "6d")):
        sel = [c for c in cases if rows and any(r["case"] == c and r["n_variables"] == want for r in rows)]
        if not sel:
            _placeholder(out / f"{name}.png", f"no case with {want} model variables configured")
            continue
        fig, ax = plt.subplots(figsize=(5.2, 3.8))
        for j, case in enumerate(sel):
            rs = [r for r in rows if r["case"] == case]
            ax.plot([r["latent"] for r in rs], [r["test_eq25"] for r in rs], "o-", color=f"C{j}", label=case)
            ax.plot([r["latent"] for r in rs], [max(r["pca_test_eq25"], 1e-8) for r in rs], ":", color=f"C{j}")
        ax.set(yscale="log", xlabel="latent size m", ylabel="test reconstruction error (eq. 25)",
               title=f"auto-encoder (solid) and PCA (dotted) of the {want} model variables (rno Fig. {fig_no})")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
        _save(fig, out / f"{name}.png")
    if example_case in cases and example_latent in ae_latents(example_case, latents):
        model, info = load_autoencoder(ae_model_dir(models, example_case, example_latent))
        data = load_model_variables(Path(datasets) / f"laminate_{example_case}.zarr")
        te = np.flatnonzero(data.split == 1)[:n_examples]
        x = data.x[te]
        with torch.no_grad():
            rec = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
        n = x.shape[-1]
        fig, axes = plt.subplots(2, n // 2, figsize=(2.6 * (n // 2) + 0.6, 5.2))
        for v, ax in enumerate(axes.ravel()):
            for j in range(len(te)):
                ax.plot(x[j, :, v], color=f"C{j}", lw=1)
                ax.plot(rec[j, :, v], "--", color=f"C{j}", lw=1)
            ax.set_title(data.names[v], fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(f"{example_case}: model variables (solid) and their reconstruction with m = {example_latent} "
                     f"(dashed) on test trajectories against the stored step (rno Fig. 4b)", fontsize=9)
        _save(fig, out / f"{FIGURES['autoencoder'][1]}.png")
    else:
        _placeholder(out / f"{FIGURES['autoencoder'][1]}.png",
                     f"example {example_case}, m = {example_latent} not among the trained auto-encoders")
    metrics = {"exemplar": "laminate_autoencoder", "datasets": str(datasets), "rows": rows}
    if rows:
        _write_csv(out / "metrics.csv", rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


# ----------------------------------------------------------------------------- summary rows


def summary_lines(m: dict, hw: str) -> list[str]:
    """Rows of the history-surrogate summary table for a metrics.json of this module."""
    lines = []
    kind = m["exemplar"]
    if kind in ("laminate_transfer", "laminate_hardening"):
        rows, src = m["rows"], m["source"]
        paper = ("~1-1.5% at k = 3 from MH; direct training suggests k = 4 (Fig. 3a, 3c-f)"
                 if kind == "laminate_transfer" else
                 "4 variables needed (3 without hardening), error larger; transfer from MH-NH better (Fig. 6a-b)")
        for case in m["cases"]:
            parts = []
            for training in ("transfer", "direct"):
                rs = [r for r in rows if r["case"] == case and r["training"] == training]
                errs = ", ".join(f"k={r['k']}: {100 * r['test_relative_l2']:.2f}%" for r in rs)
                parts.append(f"{'<- ' + src if training == 'transfer' else 'direct'}: {errs}")
            r0, fig = rows[0], "Fig. 3c-f" if kind == "laminate_transfer" else "Fig. 6a-b"
            lines.append(f"| laminate {case} <- {src} vs direct ({fig}) "
                         f"| {'; '.join(parts)} | {paper} | {paths_label(r0, 100)} | "
                         f"{r0['adam_epochs']} + {r0['lbfgs_epochs']} | {hw} |")
    elif kind == "laminate_autoencoder":
        for case in dict.fromkeys(r["case"] for r in m["rows"]):
            rs = [r for r in m["rows"] if r["case"] == case]
            errs = ", ".join(f"m={r['latent']}: {100 * r['test_eq25']:.2f}% (PCA {100 * r['pca_test_eq25']:.2f}%)"
                             for r in rs)
            r0 = rs[0]
            paper = ("well approximated with m = 3 (Fig. 4a)" if r0["n_variables"] == 6
                     else "m = 4 needed (Fig. 6d)")
            lines.append(f"| laminate {case} auto-encoder of the {r0['n_variables']} model variables, eq. 25 "
                         f"| {errs} | {paper} | {r0['n_train']}/{r0['n_test']} trajectories x 100 steps | "
                         f"{r0['adam_epochs']} + {r0['lbfgs_epochs']} | {hw} |")
    return lines
