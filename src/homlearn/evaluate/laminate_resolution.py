"""Resolution study of the laminate RNOs (ours: paper 'rno' Fig. 10 does it for sections 3 and
5.2, not for the laminate of section 4): models trained on the paths stored at ``laminate.path.n_out``
steps, tested on the same test paths stored at other steps, next to the laminate's own law
integrated by backward Euler at each step (the classical reference, rno eq. 17-24).

The test histories come from one extra store of the case at the finest step count (same seed,
so the same paths and split; :func:`check_same_paths` refuses it otherwise), taken every
``fine / steps``-th time. An RNO of eq. 3 that represents elasto-viscoplasticity gives the same
error at every step (rno section 6: "flat across resolutions")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from homlearn.evaluate.history import _training_facts, _write_csv, laminate_law_rows  # noqa: E402
from homlearn.train.history import load_history, load_history_data, relative_errors  # noqa: E402

FIGURE = "fig10_laminate_resolution"


def fine_store_name(case: str, steps: Sequence[int]) -> str:
    """The extra store of ``case`` at the finest of ``steps``, next to ``laminate_<case>.zarr``."""
    return f"laminate_{case}_n{max(steps)}.zarr"


def check_same_paths(fine, train, fine_store, train_store) -> None:
    """The fine store must hold the training store's paths and split at the shared times."""
    n_fine, n_train = len(fine.t) - 1, len(train.t) - 1
    if n_fine % n_train:
        raise ValueError(f"{fine_store}: its {n_fine} stored steps are not a multiple of the {n_train} "
                         f"of {train_store}")
    r = n_fine // n_train
    same = (fine.x.shape[0] == train.x.shape[0] and np.array_equal(fine.x[:, ::r], train.x)
            and np.array_equal(fine.y[:, ::r], train.y) and np.array_equal(fine.subset(1), train.subset(1)))
    if not same:
        raise ValueError(f"{fine_store} does not hold the paths and split of {train_store} at their shared "
                         "times: solve both with the same laminate config apart from path.n_out")


def accumulated_plastic_strain(store) -> np.ndarray:
    """q of both layers (S, T, 2) on the store's solved paths."""
    import xarray as xr

    ds = xr.open_zarr(str(store))
    ok = ds["status"].values == 1
    return ds["accumulated_plastic_strain"].values[ok]


def relaxation_steps(mat, q: np.ndarray, dt: float) -> dict:
    """lambda dt (:func:`homlearn.solvers.analytic.laminate.relaxation_rate`, the overstress's
    decay rate at the step's mean plastic rate) over the layer-steps in plastic flow (q_dot above
    1e-3 q0_dot): median, 10th and 90th percentiles, and the fraction above forward Euler's
    stability limit 2. Much above 1, eq. 3 cannot follow the overstress in time: its step is a map
    of the grid. ``mat``: the store's LaminateMaterial; the rate has no hardening term."""
    from homlearn.solvers.analytic.laminate import relaxation_rate

    q_dot = np.diff(q, axis=1) / dt
    flow = q_dot > 1e-3 * mat.q0_dot
    lam_dt = (relaxation_rate(mat, q_dot) * dt)[flow]
    if not lam_dt.size:
        return {"relaxation_dt_median": 0.0, "relaxation_dt_p10": 0.0, "relaxation_dt_p90": 0.0,
                "beyond_euler_stability": 0.0}
    return {"relaxation_dt_median": float(np.median(lam_dt)), "relaxation_dt_p10": float(np.percentile(lam_dt, 10)),
            "relaxation_dt_p90": float(np.percentile(lam_dt, 90)),
            "beyond_euler_stability": float((lam_dt > 2.0).mean())}


def evaluate_resolution(datasets, models, out_dir, case: str, ks: Sequence[int], steps: Sequence[int],
                        family: str = "direct") -> dict:
    """Rows (model, k, steps, test_relative_l2) for the RNOs ``<models>/<case>_k<k>`` and for the
    law by backward Euler and SDIRK3 (``exact_be``, ``exact_sdirk3``) at every step of ``steps``,
    and the stiffness of each step (``stiffness``: :func:`relaxation_steps`);
    ``datasets``: the directory of ``laminate_<case>.zarr`` and :func:`fine_store_name`."""
    steps = sorted(int(s) for s in steps)
    fine_store = Path(datasets) / fine_store_name(case, steps)
    train_store = Path(datasets) / f"laminate_{case}.zarr"
    fine = load_history_data(fine_store, "laminate")
    n_fine = len(fine.t) - 1
    bad = [s for s in steps if n_fine % s]
    if bad:
        raise ValueError(f"rno.laminate.resolution.steps {bad} must divide the {n_fine} steps of {fine_store}")
    check_same_paths(fine, load_history_data(train_store, "laminate"), fine_store, train_store)
    te = fine.subset(1)
    x, y, t = fine.x[te], fine.y[te], np.asarray(fine.t)
    rows, train_steps = [], None
    from homlearn.datasets.laminate import store_material

    q, mat = accumulated_plastic_strain(fine_store), store_material(fine_store)
    for s in steps:
        r = n_fine // s
        for row in laminate_law_rows(fine_store, case, x[:, ::r], y[:, ::r], t[::r]):
            rows.append({k: row[k] for k in ("model", "case", "k", "steps", "test_relative_l2", "failed")})
        rows.append({"model": "stiffness", "case": case, "k": "", "steps": s,
                     **relaxation_steps(mat, q[:, ::r], t[r] - t[0])})
    for k in ks:
        model, info = load_history(Path(models) / f"{case}_k{k}")
        train_steps = info["n_time"] - 1
        facts = _training_facts(info)
        for s in steps:
            r = n_fine // s
            err = relative_errors(model, x[:, ::r], y[:, ::r], t[::r])
            rows.append({"model": "rno", "case": case, "k": int(k), "steps": s, "test_relative_l2": float(err.mean()),
                         "failed": int((~np.isfinite(err)).sum()), **facts})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure(rows, train_steps, case, family, out / f"{FIGURE}.png")
    metrics = {"exemplar": "laminate_resolution", "case": case, "models": family, "train_steps": train_steps,
               "fine_store": str(fine_store), "n_test": int(len(te)), "rows": rows,
               "summary_rows": summary_rows(rows, train_steps, case, family, len(te))}
    _write_csv(out / "metrics.csv", rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def figure(rows, train_steps, case, family, path) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ks = sorted({r["k"] for r in rows if r["model"] == "rno"})
    for j, k in enumerate(ks):
        rs = [r for r in rows if r["model"] == "rno" and r["k"] == k]
        ax.plot([r["steps"] for r in rs], [r["test_relative_l2"] for r in rs], "o-", color=f"C{j}",
                label=f"RNO k = {k}")
    rs = [r for r in rows if r["model"] == "exact_be"]
    ax.plot([r["steps"] for r in rs], [r["test_relative_l2"] for r in rs], "k--", lw=1,
            label="the law, backward Euler at the step")
    if train_steps:
        ax.axvline(train_steps, color="0.6", ls=":", lw=1, label=f"trained at {train_steps} steps")
    ax.set(xscale="log", yscale="log", xlabel="test steps", ylabel="test error (eq. 16)",
           title=f"laminate {case} ({family} RNOs): test error against resolution (ours; rno Fig. 10)")
    steps = sorted({r["steps"] for r in rows})
    ax.set_xticks(steps, [str(s) for s in steps], minor=False)
    ax.set_xticks([], minor=True)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_rows(rows, train_steps, case, family, n_test) -> list[dict]:
    """Rows of ``history_surrogates.md`` (read by its generic ``summary_rows`` branch)."""
    out = []
    for k in sorted({r["k"] for r in rows if r["model"] == "rno"}):
        rs = [r for r in rows if r["model"] == "rno" and r["k"] == k]
        out.append({"experiment": f"laminate {case} resolution, RNO k = {k} ({family}, "
                                  f"{rs[0]['symmetries'] or 'no'} symmetry images) trained at {train_steps} steps, "
                                  "test error vs test steps (ours; rno Fig. 10 is on sections 3, 5.2)",
                    "metric": ", ".join(f"{r['steps']}: {100 * r['test_relative_l2']:.2f}%" for r in rs),
                    "paper": "E-VP RNO flat across resolutions", "data": f"{rs[0]['n_train']}/{n_test} paths",
                    "epochs": f"{rs[0]['adam_epochs']} + {rs[0]['lbfgs_epochs']}"})
    rs = [r for r in rows if r["model"] == "stiffness"]
    out.append({"experiment": f"laminate {case}: overstress relaxation rate x step in plastic flow, median "
                              "(10th-90th percentile; share above forward Euler's stability limit 2)",
                "metric": ", ".join(f"{r['steps']}: {r['relaxation_dt_median']:.2f} ({r['relaxation_dt_p10']:.2f}-"
                                    f"{r['relaxation_dt_p90']:.2f}; {100 * r['beyond_euler_stability']:.0f}%)"
                                    for r in rs),
                "paper": "none (eq. 3 needs it well below 1 to follow time)", "data": "all solved paths",
                "epochs": "-"})
    rs = [r for r in rows if r["model"] == "exact_be"]
    out.append({"experiment": f"laminate {case} resolution, the law (eq. 17-24) by backward Euler at each step "
                              "(classical reference)",
                "metric": ", ".join(f"{r['steps']}: {100 * r['test_relative_l2']:.2f}%" for r in rs),
                "paper": "none", "data": f"{n_test} test paths", "epochs": "-"})
    return out
