"""Evaluation of FLN / RLN-t / RLN on elastic_ls (paper 'rln' section 4.1) and the summary table.

Per contrast ratio, from the models trained by :func:`homlearn.train.rln.train_rln`
(``<models>/<variant>``, variants fln, rln_t, rln):

- MASE (eq. 28) of the last iterate for every test microstructure; mean and standard deviation
  per model (Table 1), also per iterate (how the error falls over the iterations);
- ``fig6_mase_histogram``: the MASE distributions (Fig. 6; the paper shows the RLN at CR 50);
- ``fig7_worst_slice``: RLN prediction, truth and absolute strain error on the (y, z) slice through
  the worst test voxel (Fig. 7);
- ``fig8_fln_iterates``, ``fig9_rln_t_iterates``, ``fig10_rln_iterates``: the iterates y_i and
  their differences Delta_i = y_i - y_{i-1} (y_0 = y^R) on that slice (Fig. 8-10; greys up to
  the true maximum; differences on a red (negative) / grey (positive) scale);
- inference time per microstructure on the CPU (and CUDA when present) against the FFT solver's
  time per microstructure on the same test cells in the same process (section 4.1 quotes 11 ms
  on a V100 against ~5 s per cell for FEA).

:func:`write_summary` writes ``results/summary/field_surrogates.md``: experiment, our metric,
paper value, data size, epochs, hardware.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from homlearn.models.rln import LABELS, VARIANTS  # noqa: E402
from homlearn.train.rln import load_rln, mase, mean_strain, predict_iterates, split_samples  # noqa: E402

ITERATE_FIGURES = {"fln": "fig8_fln_iterates", "rln_t": "fig9_rln_t_iterates", "rln": "fig10_rln_iterates"}
FIGURES = ("fig6_mase_histogram", "fig7_worst_slice", *ITERATE_FIGURES.values())
#: paper Table 1: test MASE mean and standard deviation (%) per contrast ratio
PAPER_TABLE1 = {10: {"fln": (4.98, 1.49), "rln_t": (1.81, 0.58), "rln": (1.21, 0.37)},
                50: {"fln": (9.23, 3.29), "rln_t": (4.26, 1.65), "rln": (2.92, 1.17)}}
PAPER_TIME = "RLN ~11 ms per microstructure (V100, 31^3) against ~5 s for FEA"


def paper_values(contrast: float) -> dict:
    return PAPER_TABLE1.get(int(round(contrast)), {})


def _test_pass(model, samples, batch_size: int, device) -> dict:
    """Per-sample MASE of every iterate, and the worst voxel (largest |error| of the last iterate)."""
    per_iter, worst = [], (-1.0, 0, (0, 0, 0))
    start = 0
    for pred, true in predict_iterates(model, samples, batch_size, device, last_only=False):
        per_iter.append(np.stack([mase(pred[:, i], true) for i in range(pred.shape[1])], axis=1))
        err = np.abs(pred[:, -1] - true)
        b = int(np.argmax(err.reshape(len(err), -1).max(axis=1)))
        if err[b].max() > worst[0]:
            worst = (float(err[b].max()), start + b, np.unravel_index(int(np.argmax(err[b])), err[b].shape))
        start += len(pred)
    return {"mase_iterates": np.concatenate(per_iter), "worst": worst}


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired comparison of two models' per-microstructure MASE on the same test cells: mean of
    a - b, its standard error, and the fraction of cells where a is better."""
    d = np.asarray(a) - np.asarray(b)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "standard_error": se, "fraction_first_better": float(np.mean(d < 0))}


def time_per_microstructure(store, models: Mapping[str, torch.nn.Module], samples, n_cells: int,
                            repeats: int = 3) -> dict:
    """Seconds per microstructure: the FFT solver (the store's material, tolerance and batching)
    and each model (one batch of ``n_cells``, best of ``repeats``), in this process; on CPU and,
    when present, on CUDA."""
    import zarr

    from homlearn.solvers.fft import IsotropicMaterial, solve_linear

    attrs = zarr.open_group(str(store), mode="r").attrs
    cfg, contrast = attrs["config"], float(attrs["contrast"])
    n = min(n_cells, len(samples))
    micro = np.stack([s["m"] for s in samples.__getitems__(range(n))])
    young = np.where(micro == 1, contrast * cfg["young_soft"], cfg["young_soft"]).astype(np.float64)
    E = np.zeros((3, 3))
    E[0, 0] = cfg["mean_strain_xx"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = {"n_cells": n, "grid": list(micro.shape[1:]), "torch_threads": torch.get_num_threads(), "devices": {}}
    for dev in devices:
        device = torch.device(dev)
        material = IsotropicMaterial.from_young_poisson(torch.from_numpy(young), cfg["poisson"]).to(device=device)
        row = {}
        for _ in range(2 if dev == "cuda" else 1):  # CUDA: the first call warms up
            t0 = time.perf_counter()
            solve_linear(material, E, micro.shape[1:], batch=n, tol=cfg["tol"], max_iter=cfg["max_iter"],
                         device=device)
            if dev == "cuda":
                torch.cuda.synchronize()
            row["fft_solver"] = (time.perf_counter() - t0) / n
        m = torch.as_tensor(micro, device=device)
        for name, model in models.items():
            model.to(device)
            best = float("inf")
            with torch.no_grad():
                for _ in range(repeats + 1):  # the first call warms up
                    t0 = time.perf_counter()
                    model(m)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - t0)
            row[name] = best / n
            model.to("cpu")
        out["devices"][dev] = row
    return out


def _slice_figure(path, title, rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]], dict]]) -> None:
    ncol = max(len(panels) for _, panels, _ in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * ncol + 0.6, 2.3 * len(rows)), squeeze=False)
    for r, (ylabel, panels, style) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels):
                ax.axis("off")
                continue
            name, img = panels[c]
            im = ax.imshow(img, origin="lower", **style)
            ax.set_title(name, fontsize=8)
            if c == 0:
                ax.set_ylabel(ylabel, fontsize=8)
        fig.colorbar(im, ax=list(axes[r]), shrink=0.8)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_rln(store, models_dir, out_dir, batch_size: int = 16, timing_cells: int = 8,
                 device: str = "auto") -> dict:
    """``metrics.json``, ``metrics.csv`` (Table 1 analogue) and :data:`FIGURES` for one store;
    the test pass runs on ``device`` (auto: CUDA when present)."""
    from homlearn.train.trainer import pick_device

    dev = pick_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    test = split_samples(store, "test")
    eps = mean_strain(store)
    contrast = float(test.dataset.attrs["contrast"])
    paper = paper_values(contrast)
    models, infos, passes = {}, {}, {}
    for v in VARIANTS:
        models[v], infos[v] = load_rln(Path(models_dir) / v, dev)
        passes[v] = _test_pass(models[v], test, batch_size, dev)
        models[v].to("cpu")
    rows, table = {}, []
    for v in VARIANTS:
        e = passes[v]["mase_iterates"]
        info, tr = infos[v], infos[v]["training"]
        rows[v] = {"model": LABELS[v], "n_parameters": info["n_parameters"], "mase_mean": float(e[:, -1].mean()),
                   "mase_std": float(e[:, -1].std()), "mase_median": float(np.median(e[:, -1])),
                   "mase_max": float(e[:, -1].max()), "mase_per_iterate": e.mean(axis=0).tolist(),
                   "paper_mase_mean": paper.get(v, (None, None))[0], "paper_mase_std": paper.get(v, (None, None))[1],
                   "epochs": tr["epochs"], "best_epoch": tr["best_epoch"], "train_seconds": tr["seconds_total"],
                   "n_samples": info["n_samples"], "grid": info["grid"], "hardware": info.get("hardware", "")}
        table.append({k: rows[v][k] for k in ("model", "n_parameters", "mase_mean", "mase_std", "paper_mase_mean",
                                              "paper_mase_std", "epochs", "train_seconds")})
    order = [rows[v]["mase_mean"] for v in ("rln", "rln_t", "fln")]
    metrics = {"exemplar": "elastic_ls", "store": str(store), "contrast": contrast, "mean_strain": eps,
               "device": str(dev), "n_test": len(test), "models": rows,
               "ordering_rln_lt_rln_t_lt_fln": bool(order[0] < order[1] < order[2]),
               "mase_test": {v: passes[v]["mase_iterates"][:, -1].tolist() for v in VARIANTS}}
    metrics["paired"] = {f"{a}-{b}": paired_difference(metrics["mase_test"][a], metrics["mase_test"][b])
                         for a, b in (("rln", "rln_t"), ("rln_t", "fln"))}
    with open(out / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)

    # Fig. 6: MASE distributions
    fig, ax = plt.subplots(figsize=(5, 3.5))
    allv = np.concatenate([passes[v]["mase_iterates"][:, -1] for v in VARIANTS])
    bins = np.linspace(0, allv.max() * 1.02, 30)
    for v in VARIANTS:
        e = passes[v]["mase_iterates"][:, -1]
        ax.hist(e, bins=bins, histtype="step", lw=1.5, label=f"{LABELS[v]}: {e.mean():.2f}% $\\pm$ {e.std():.2f}%")
    ax.set_xlabel("MASE (%), eq. 28")
    ax.set_ylabel("test microstructures")
    ax.legend(fontsize=7)
    ax.set_title(f"MASE distribution, CR = {contrast:g} (rln Fig. 6)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig6_mase_histogram.png", dpi=120)
    plt.close(fig)

    # Fig. 7: worst test voxel of the RLN, (y, z) slice through it
    _, sample, (ix, iy, iz) = passes["rln"]["worst"]
    one = test.__getitems__([sample])
    true = one[0]["y"]
    m = torch.as_tensor(one[0]["m"])[None]
    iterates = {}
    with torch.no_grad():
        for v in VARIANTS:
            iterates[v] = models[v](m)[0].numpy()
    pred = iterates["rln"][-1]
    vmax = float(true.max())
    grey = {"cmap": "Greys", "vmin": 0.0, "vmax": vmax}
    ase = 100 * np.abs(pred - true)
    metrics["worst"] = {"test_position": int(sample), "store_sample": int(test.index[sample]),
                        "voxel": [int(ix), int(iy), int(iz)], "ase_percent": float(ase[ix, iy, iz]),
                        "mase_rln": float(passes["rln"]["mase_iterates"][sample, -1])}
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
    for ax, (name, img, style) in zip(axes, [("RLN / mean", pred[ix], grey), ("truth (FFT) / mean", true[ix], grey),
                                             ("ASE (%)", ase[ix], {"cmap": "magma"}),
                                             ("phase (1 = hard)", one[0]["m"][ix], {"cmap": "viridis", "vmin": 0,
                                                                                    "vmax": 1})]):
        fig.colorbar(ax.imshow(img, origin="lower", **style), ax=ax, shrink=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"worst RLN test voxel: sample {test.index[sample]}, (y, z) slice x = {ix} "
                 f"(rln Fig. 7, CR = {contrast:g})", fontsize=9)
    fig.savefig(out / "fig7_worst_slice.png", dpi=120)
    plt.close(fig)

    # Fig. 8-10: iterates and their differences on the same slice
    for v, name in ITERATE_FIGURES.items():
        ys = iterates[v]
        deltas = np.diff(np.concatenate([np.ones_like(ys[:1]), ys]), axis=0)
        d = float(np.abs(deltas[:, ix]).max()) or 1.0
        _slice_figure(out / f"{name}.png",
                      f"{LABELS[v]} iterates and differences, sample {test.index[sample]}, x = {ix} "
                      f"(rln Fig. {name[3:name.index('_')]}, CR = {contrast:g})",
                      [("y_i / mean", [(f"y_{i + 1}", ys[i, ix]) for i in range(len(ys))] + [("truth", true[ix])],
                        grey),
                       ("Delta_i / mean", [(f"Delta_{i + 1}", deltas[i, ix]) for i in range(len(ys))],
                        {"cmap": "RdGy", "vmin": -d, "vmax": d})])

    metrics["timing"] = time_per_microstructure(store, models, test, timing_cells)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _hardware_note() -> str:
    import os
    import platform

    dev = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{dev}, {os.cpu_count()} cores ({platform.machine()})"


def write_summary(path, metrics_files: Sequence[Path | str]) -> str:
    """``field_surrogates.md``: one row per model and contrast (Table 1), the ordering check and
    the timings, each with data size, epochs and hardware."""
    lines = ["# Field surrogates (paper 'rln'): our numbers against the paper's", "",
             "MASE = eq. 28 (percent of the mean strain) over the test microstructures, mean +- standard deviation. "
             "Paper: 20,480 cells of 31^3 split 8192/4096/8192, 60 epochs on a V100. "
             f"Summary written on: {_hardware_note()}.", "",
             "| experiment | our metric | paper value | data size (train/val/test) | epochs | hardware |",
             "| --- | --- | --- | --- | --- | --- |"]
    for mf in metrics_files:
        mf = Path(mf)
        if not mf.exists():
            continue
        m = json.loads(mf.read_text())
        cr = m["contrast"]
        for v in VARIANTS:
            r = m["models"][v]
            n = r["n_samples"]
            size = f"{n['train']}/{n['validation']}/{n['test']} cells of {'x'.join(map(str, r['grid']))}"
            paper = (f"{r['paper_mase_mean']:.2f}% +- {r['paper_mase_std']:.2f}%" if r["paper_mase_mean"] is not None
                     else "-")
            lines.append(f"| elastic_ls CR {cr:g}, {r['model']} test MASE (Table 1) | {r['mase_mean']:.2f}% +- "
                         f"{r['mase_std']:.2f}% | {paper} | {size} | {r['epochs']} (best {r['best_epoch']}, "
                         f"{r['train_seconds'] / 60:.1f} min) | {r['hardware']} |")
        ok = "holds" if m["ordering_rln_lt_rln_t_lt_fln"] else "does NOT hold"
        means = ", ".join(f"{m['models'][v]['model']} {m['models'][v]['mase_mean']:.2f}%"
                          for v in ("rln", "rln_t", "fln"))
        paired = "; ".join(f"{' - '.join(LABELS[v] for v in k.split('-'))}: {d['mean']:+.2f} +- "
                           f"{d['standard_error']:.2f} (paired, SE)"
                           for k, d in m.get("paired", {}).items())
        lines.append(f"| elastic_ls CR {cr:g}, ordering RLN < RLN-t < FLN | {ok} ({means}; {paired}) | holds | "
                     f"as above | as above | as above |")
        t = m["timing"]
        for dev, row in t["devices"].items():
            nets = ", ".join(f"{LABELS[v]} {1e3 * row[v]:.1f} ms" for v in VARIANTS)
            lines.append(f"| elastic_ls CR {cr:g}, time per microstructure ({dev}, batch of {t['n_cells']}, "
                         f"{t['torch_threads']} torch thread(s)) | {nets}; FFT solver {1e3 * row['fft_solver']:.1f} ms "
                         f"| {PAPER_TIME} | {'x'.join(map(str, t['grid']))} cells | - | {dev} |")
    text = "\n".join(lines) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text
