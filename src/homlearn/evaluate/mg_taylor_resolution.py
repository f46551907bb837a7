"""Resolution study on the mg_taylor data (paper 'rno' section 6, Fig. 10b): the elasto-viscoplastic
RNO (eq. 2-3, ``rno``), the viscoelastic RNO (eq. 7, ``rno_ve``) and the PCA-Net (``pcanet``; its
histories are interpolated to its grid and back, 'pcanet' Fig. 1d), all trained on the paths stored
at ``mg_taylor.n_stored`` steps, tested on the same test paths taken every ``n_steps / steps``-th
solver step (paper: trained at 200 of 1000 steps, tested at 50-1000).

The test histories come from one extra store of the case that keeps every solver step
(``n_stored = n_steps``; same seed, so the same paths and split, :func:`check_same_paths`).
Next to the models, the classical reference: the Taylor model itself solved on the test paths with
the test step as its time step (backward Euler per grain at ``duration / steps``), against the
solver-step histories; zero at ``n_steps`` by construction, so only coarser steps are solved.

Errors are rno eq. 16 over the six stress components and over the deviator alone (the random-path
stress is ~99% elastic pressure, which every model gets at any step; the history lives in the
deviator). Paper: the E-VP RNO flat across resolutions, the VE RNO small only at its training step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from homlearn.train.mg_taylor import TEST, deviator, load_mg_model, load_mg_taylor_data, predict_components, relative_l2  # noqa: E402

FIGURE = "fig10b_resolution"
LABELS = {"rno": "E-VP RNO (eq. 2)", "rno_ve": "VE RNO (eq. 7)", "pcanet": "PCA-Net", "taylor": "Taylor model at the step"}


def model_dir(models, name: str, k: int | None, n: int) -> Path:
    """``rno_k<k>_n<n>``, ``rno_ve_k<k>_n<n>`` or ``pcanet_n<n>`` under ``models``."""
    return Path(models) / (f"pcanet_n{n}" if name == "pcanet" else f"{name}_k{k}_n{n}")


def check_same_paths(fine, coarse, fine_store, store) -> int:
    """The fine store must hold the training store's finished paths and split at their shared
    times; returns the stride between them."""
    n_fine, n = len(fine.t) - 1, len(coarse.t) - 1
    if n_fine % n:
        raise ValueError(f"{fine_store}: its {n_fine} stored steps are not a multiple of the {n} of {store}")
    r = n_fine // n
    same = (np.array_equal(fine.ids, coarse.ids) and np.array_equal(fine.split, coarse.split)
            and np.array_equal(fine.t[::r], coarse.t) and np.array_equal(fine.x[:, ::r], coarse.x)
            and np.array_equal(fine.y[:, ::r], coarse.y))
    if not same:
        raise ValueError(f"{fine_store} does not hold the paths and split of {store} at their shared times: "
                         "solve both with the same mg_taylor config apart from n_stored")
    return r


def errors(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Mean eq. 16 over the six components and over the deviator; paths whose prediction is not
    finite count as 100% and are counted in ``failed``."""
    tot, dev = relative_l2(pred, truth), relative_l2(deviator(pred), deviator(truth))
    bad = ~(np.isfinite(tot) & np.isfinite(dev))
    return {"test_relative_l2": float(np.where(bad, 1.0, tot).mean()),
            "deviatoric_l2": float(np.where(bad, 1.0, dev).mean()), "failed": int(bad.sum())}


def taylor_at_step(cfg: Mapping[str, Any], stretch: np.ndarray) -> np.ndarray:
    """Stress components (P, T, 6) of the Taylor model solved on stretch components (P, T, 6)
    with their own T - 1 steps; NaN for a path whose local Newton iterations fail."""
    from homlearn.datasets.mg_taylor import solve_stretch
    from homlearn.datasets.mg_taylor_classical import components
    from homlearn.loading.paths import symmetric_from_components
    from homlearn.solvers.fft import SolveStatus

    res, _ = solve_stretch(cfg, symmetric_from_components(stretch, 3))
    out = components(res.mean_stress.cpu().numpy())
    out[res.status.cpu().numpy() != SolveStatus.CONVERGED] = np.nan
    return out


def evaluate_resolution(store, fine_store, models, out_dir, cfg: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> dict:
    """Rows (model, k, steps, test_relative_l2, deviatoric_l2) of every model of ``cfg``
    (rno.mg_taylor: ``resolution.models`` / ``resolution.k`` / ``resolution.steps``, trained on
    ``max(train_sizes)`` paths) and of the Taylor model at each step; ``data_cfg``: the mg_taylor
    config of both stores (for the Taylor solves). Writes metrics.json, metrics.csv and the figure."""
    from homlearn.evaluate.history import _training_facts, _write_csv

    res = cfg["resolution"]
    steps = sorted(int(s) for s in res["steps"])
    n_train = max(cfg["train_sizes"])
    fine, coarse = load_mg_taylor_data(fine_store), load_mg_taylor_data(store)
    n_fine = len(fine.t) - 1
    bad = [s for s in steps if n_fine % s]
    if bad:
        raise ValueError(f"rno.mg_taylor.resolution.steps {bad} must divide the {n_fine} steps of {fine_store}")
    check_same_paths(fine, coarse, fine_store, store)
    train_steps = len(coarse.t) - 1
    te = fine.subset(TEST)
    U, Y, t = fine.stretch(te), fine.y[te], np.asarray(fine.t)
    rows = []
    for s in steps:
        r = n_fine // s
        if s < n_fine:
            rows.append({"model": "taylor", "k": "", "steps": s, **errors(taylor_at_step(data_cfg, U[:, ::r]), Y[:, ::r])})
    names = [(m, k) for m in res["models"] if m != "pcanet" for k in res["k"]]
    names += [("pcanet", None)] if "pcanet" in res["models"] else []
    for name, k in names:
        net, info = load_mg_model(model_dir(models, name, k, n_train))
        facts = _training_facts(info)
        for s in steps:
            r = n_fine // s
            rows.append({"model": name, "k": "" if k is None else int(k), "steps": s,
                         **errors(predict_components(net, U[:, ::r], t[::r]), Y[:, ::r]),
                         "n_train": n_train, "adam_epochs": facts["adam_epochs"], "lbfgs_epochs": facts["lbfgs_epochs"]})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure(rows, train_steps, cfg["case"], out / f"{FIGURE}.png")
    metrics = {"exemplar": "mg_taylor_resolution", "case": cfg["case"], "train_steps": train_steps,
               "fine_steps": n_fine, "fine_store": str(fine_store), "n_test": int(len(te)), "rows": rows,
               "summary_rows": summary_rows(rows, train_steps, cfg["case"], len(te))}
    _write_csv(out / "metrics.csv", rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _curves(rows):
    keys = dict.fromkeys((r["model"], r["k"]) for r in rows)
    for model, k in keys:
        yield model, k, [r for r in rows if r["model"] == model and r["k"] == k]


def figure(rows, train_steps, case, path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    for ax, key, what in zip(axes, ("test_relative_l2", "deviatoric_l2"), ("six components", "deviator")):
        for j, (model, k, rs) in enumerate(_curves(rows)):
            label = LABELS[model] + (f", k = {k}" if k != "" else "")
            style = dict(color="k", ls="--", lw=1) if model == "taylor" else dict(color=f"C{j}", marker="o")
            ax.plot([r["steps"] for r in rs], [r[key] for r in rs], label=label, **style)
        ax.axvline(train_steps, color="0.6", ls=":", lw=1, label=f"trained at {train_steps} steps")
        steps = sorted({r["steps"] for r in rows})
        ax.set(xscale="log", yscale="log", xlabel="test steps", ylabel=f"test error (eq. 16), {what}")
        ax.set_xticks(steps, [str(s) for s in steps], minor=False)
        ax.set_xticks([], minor=True)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"mg_taylor {case}: trained at one resolution, tested at others (rno Fig. 10b)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_rows(rows, train_steps, case, n_test) -> list[dict]:
    """Rows of ``history_surrogates_mg_taylor.md`` (its generic ``summary_rows`` branch)."""
    def series(rs, key):
        return ", ".join(f"{r['steps']}: {100 * r[key]:.1f}%" for r in rs)

    paper = {"rno": "flat across 50-1000 steps", "rno_ve": "small at the training step only",
             "pcanet": "flat (pcanet Fig. 1d, on 2D data)"}
    out = []
    for model, k, rs in _curves(rows):
        if model == "taylor":
            out.append({"experiment": f"mg_taylor {case} resolution: the Taylor model solved at the test step "
                                      "(classical reference; deviator / six components)",
                        "metric": f"{series(rs, 'deviatoric_l2')} / {series(rs, 'test_relative_l2')}",
                        "paper": "none", "data": f"{n_test} test paths", "epochs": "-"})
            continue
        out.append({"experiment": f"mg_taylor {case} resolution (rno Fig. 10b): {LABELS[model]}"
                                  + (f" k = {k}" if k != "" else "") + f" trained at {train_steps} steps, deviator / "
                                  "six components vs test steps",
                    "metric": f"{series(rs, 'deviatoric_l2')} / {series(rs, 'test_relative_l2')}",
                    "paper": paper[model], "data": f"{rs[0]['n_train']}/{n_test} paths",
                    "epochs": f"{rs[0]['adam_epochs']} + {rs[0]['lbfgs_epochs']}"})
    return out
