"""The RNO experiments of paper 'rno' on composite1d and laminate: metrics and figures from the
models trained by :func:`homlearn.train.history.train_history`.

Model directories (written by the Snakemake rules / ``homlearn history train``):

- composite1d: ``<models>/<model>_N<N>_k<k>`` (model ``rno`` or ``rno_ve``);
- laminate: ``<models>/<case>_k<k>`` (RNO).

composite1d (section 3): test error against k for each N (Fig. 1c), truth against prediction
(Fig. 1b), the learned internal variable against <eps_p> after the best affine map (the paper's
'scaled version') and after the best monotone map (any invertible change of variables leaves the RNO
unchanged, rno eq. 5; ours) (Fig. 1d), the learned f~ and g~ against the exact eq. 14-15 under
the monotone map (Fig. 1e-f), and the error of the E-VP and VE RNOs
trained at the stored resolution and tested on the fine histories at other resolutions (Fig. 10a).
laminate (section 4): test error against k for each Table 1 case (Fig. 3a) beside the laminate's
own law integrated at the RNO's step (the classical reference), and truth against prediction
(Fig. 3b).
"""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import zarr  # noqa: E402

from homlearn.config import validate_config  # noqa: E402
from homlearn.loading.paths import config_amplitude  # noqa: E402
from homlearn.train.history import load_history, load_history_data, relative_errors  # noqa: E402
from homlearn.train.losses import relative_l2_per_sample  # noqa: E402

C1D_FIGURES = ("fig1b_predictions", "fig1c_error_vs_k", "fig1d_internal_variable", "fig1ef_learned_f_g",
               "fig10a_resolution")
LAM_FIGURES = ("fig3a_error_vs_k", "fig3b_predictions")


def c1d_model_dir(models, model: str, n: int, k: int) -> Path:
    return Path(models) / f"{model}_N{n}_k{k}"


def lam_model_dir(models, case: str, k: int) -> Path:
    return Path(models) / f"{case}_k{k}"


def _write_csv(path, rows: Sequence[Mapping]) -> None:
    with open(path, "w", newline="") as fh:  # columns: every key of any row, in order of appearance
        w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
        w.writeheader()
        w.writerows(rows)


def _training_facts(info: Mapping) -> dict:
    tr = info["training"]
    return {"adam_epochs": tr.get("adam_epochs", tr["epochs"]), "lbfgs_epochs": tr.get("lbfgs_epochs", 0),
            "train_seconds": round(float(tr["seconds_total"]), 1), "n_train": info["metrics"]["train"]["n"],
            "n_test": info["metrics"]["test"]["n"], "symmetries": "+".join(info.get("symmetries", []))}


def paths_label(row: Mapping, steps: int) -> str:
    """The summary's data-size cell: train/test paths, and the symmetry images the training paths
    were joined by (homlearn.train.symmetry; our deviation) when there were any."""
    sym = row.get("symmetries", "")
    return (f"{row['n_train']}/{row['n_test']} paths" + (f" (+ their {sym} images, ours)" if sym else "")
            + f", {steps} steps")


# ----------------------------------------------------------------------------- composite1d


def affine_fit(learned: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``truth ~ a * learned + b`` over all points; returns (a, b, relative
    residual ||a l + b - truth|| / ||truth||)."""
    l, t = np.ravel(learned), np.ravel(truth)
    A = np.column_stack([l, np.ones_like(l)])
    (a, b), *_ = np.linalg.lstsq(A, t, rcond=None)
    res = float(np.linalg.norm(a * l + b - t) / max(np.linalg.norm(t), 1e-300))
    return float(a), float(b), res


def monotone_fit(learned: np.ndarray, truth: np.ndarray, knots: int = 40):
    """The best monotone map ``truth ~ phi(learned)`` over all points (increasing or decreasing,
    whichever fits better): isotonic least squares (scipy), smoothed into a monotone C1 interpolant
    (PCHIP) through its means on bins of ``learned`` so that ``phi'`` exists (Fig. 1e-f need it for
    g~). The bin edges are ``knots`` quantiles joined by ``knots`` uniform steps: quantiles alone
    leave the sparse tails to one bin (measured on composite1d N = 4, 6: 30% and 23% residual
    against 2.3% and 1.9% of the unsmoothed isotonic fit; with the joined edges 2.6% and 2.1%).
    Returns (phi, relative residual ||phi(l) - t|| / ||t||)."""
    from scipy.interpolate import PchipInterpolator
    from scipy.optimize import isotonic_regression

    l, t = np.ravel(learned).astype(float), np.ravel(truth).astype(float)
    o = np.argsort(l, kind="stable")
    fits = [isotonic_regression(t[o], increasing=inc).x for inc in (True, False)]
    iso = min(fits, key=lambda r: float(np.linalg.norm(r - t[o])))
    edges = np.unique(np.concatenate([np.quantile(l, np.linspace(0.0, 1.0, knots + 1)),
                                      np.linspace(l.min(), l.max(), knots + 1)]))
    if len(edges) < 3:
        raise ValueError("monotone_fit: the learned variable takes fewer than 3 distinct values")
    bins = np.clip(np.searchsorted(edges, l[o], side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(bins, minlength=len(edges) - 1)
    keep = count > 0
    kx = np.bincount(bins, l[o], len(edges) - 1)[keep] / count[keep]
    ky = np.bincount(bins, iso, len(edges) - 1)[keep] / count[keep]
    phi = PchipInterpolator(kx, ky, extrapolate=True)
    res = float(np.linalg.norm(phi(l) - t) / max(np.linalg.norm(t), 1e-300))
    return phi, res


def internal_variable_fits(store, models, segments: Sequence[int]) -> list[dict]:
    """Fig. 1d for every N with a k = 1 RNO: the residual of the learned xi against <eps_p> on the
    test paths after the best affine and the best monotone map."""
    rows = []
    for n in segments:
        model, _ = load_history(c1d_model_dir(models, "rno", n, 1))
        data = load_history_data(store, "composite1d", n)
        te = data.subset(1)
        _, xi = _internal(model, data.x[te], data.t)
        ep = data.extra["plastic_strain"][te]
        try:
            mono = monotone_fit(xi[..., 0], ep)[1]
        except ValueError:  # a dead internal variable (constant xi): no map to fit
            mono = None
        rows.append({"N": n, "affine_residual": affine_fit(xi[..., 0], ep)[2], "monotone_residual": mono,
                     "max_abs_plastic_strain": float(np.abs(ep).max(axis=1).mean())})
    return rows


def exact_f_g(store, n: int):
    """The exact eq. 14-15 of the composite with N = ``n`` segments: functions of eta = eps - xi."""
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=None)
    i = int(np.flatnonzero(ds["n_segments"].values == n)[0])
    E, m, s0 = (ds[v].values[i][:n] for v in ("young", "exponent", "yield_stress"))
    rate = float(ds.attrs.get("rate_constant", {}).get("value", 1.0))
    e_eff = 1.0 / np.mean(1.0 / E)

    def f(eta):
        return e_eff * eta

    def g(eta):
        eta = np.asarray(eta)[..., None]
        return np.mean(rate * np.sign(eta) * (e_eff * np.abs(eta) / s0) ** m, axis=-1)

    return f, g, {"young": E.tolist(), "exponent": m.tolist(), "yield_stress": s0.tolist(), "e_eff": float(e_eff)}


def _internal(model, x, t):
    with torch.no_grad():
        y, xi = model(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(t, dtype=torch.float32),
                      return_internal=True)
    return y.numpy(), xi.numpy()


def evaluate_composite1d(store, models, out_dir, segments: Sequence[int], ks: Sequence[int],
                         resolution: Mapping | None = None, n_examples: int = 3, baselines: Sequence[str] = ()) -> dict:
    """Metrics (``metrics.json``, ``metrics.csv``) and the figures :data:`C1D_FIGURES`;
    ``baselines``: GRU/LSTM models ``<models>/<name>_N<N>`` whose rows join the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, errors = [], {}
    for n in segments:
        for k in ks:
            _, info = load_history(c1d_model_dir(models, "rno", n, k))
            e = info["metrics"]["test"]["relative_l2"]
            errors[(n, k)] = e
            rows.append({"model": "rno", "N": n, "k": k, "test_relative_l2": e,
                         "train_relative_l2": info["metrics"]["train"]["relative_l2"], **_training_facts(info)})
    content = zarr.open_group(str(store), mode="r").attrs.get("content", {})
    metrics = {"exemplar": "composite1d", "store": str(store),
               **path_amplitude(content), "error_vs_k": rows,
               "baselines": baseline_rows(models, baselines, "N", segments, lambda name, n: f"{name}_N{n}")}

    # Fig. 1c
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for j, n in enumerate(segments):
        ax.plot(list(ks), [errors[(n, k)] for k in ks], "o-", color=f"C{j}", label=f"N = {n}")
        for r in metrics["baselines"]:
            if r["N"] == n:
                ax.axhline(r["test_relative_l2"], color=f"C{j}", ls=":", lw=1, label=f"{r['model']} N = {n}")
    ax.set_yscale("log")
    ax.set_xlabel("internal variables k")
    ax.set_ylabel("test error (eq. 16)")
    ax.set_xticks(list(ks))
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("composite1d: test error against k (rno Fig. 1c)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig1c_error_vs_k.png", dpi=120)
    plt.close(fig)

    # Fig. 1b, 1d, 1e-f: the smallest N with k = 1 (paper: N = 3 for 1b, homogeneous for 1d-f)
    k1 = 1 if 1 in ks else max(ks)
    n0 = min(segments)
    model, info = load_history(c1d_model_dir(models, "rno", n0, k1))
    data = load_history_data(store, "composite1d", n0)
    te = data.subset(1)
    y_pred, xi = _internal(model, data.x[te], data.t)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for j, i in enumerate(te[:n_examples]):
        axes[0].plot(data.t, data.x[i, :, 0], color=f"C{j}")
        axes[1].plot(data.t, data.y[i, :, 0], color=f"C{j}", label="truth" if j == 0 else None)
        axes[1].plot(data.t, y_pred[j, :, 0], "--", color=f"C{j}", label="RNO" if j == 0 else None)
    axes[0].set(xlabel="t (s)", ylabel="mean strain", title="inputs (Fig. 1a)")
    axes[1].set(xlabel="t (s)", ylabel="stress (GPa)", title=f"N = {n0}, k = {k1} (Fig. 1b)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig1b_predictions.png", dpi=120)
    plt.close(fig)

    ep = data.extra["plastic_strain"][te]
    if k1 == 1 and model.k == 1:
        a, b, res = affine_fit(xi[..., 0], ep)
        phi, res_mono = monotone_fit(xi[..., 0], ep)
        metrics["internal_variable_fit"] = {"N": n0, "k": 1, "a": a, "b": b, "relative_residual": res,
                                            "monotone_residual": res_mono}
        metrics["internal_variable_fits"] = internal_variable_fits(store, models, segments)
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for j in range(min(n_examples, len(te))):
            ax.plot(data.t, ep[j], color=f"C{j}", label="<eps_p>" if j == 0 else None)
            ax.plot(data.t, phi(xi[j, :, 0]), "--", color=f"C{j}", label="phi(xi), monotone" if j == 0 else None)
            ax.plot(data.t, a * xi[j, :, 0] + b, ":", color=f"C{j}", label="a xi + b, affine" if j == 0 else None)
        ax.set(xlabel="t (s)", ylabel="internal variable",
               title=f"N = {n0}: learned xi against <eps_p>, best monotone map (residual {100 * res_mono:.1f}%)"
                     f"\nand best affine map (residual {100 * res:.1f}%) (Fig. 1d)")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "fig1d_internal_variable.png", dpi=120)
        plt.close(fig)

        # Fig. 1e-f: eta = eps - phi(xi); learned f~ = the stress, learned g~ = d phi(xi)/dt =
        # phi'(xi) g / time_scale (the monotone map; the affine one is the paper's 'suitable scaling')
        f_ex, g_ex, mat = exact_f_g(store, n0)
        with torch.no_grad():
            xn = (torch.as_tensor(data.x[te], dtype=torch.float32) - model.x_shift) / model.x_scale
            g_raw = (model.g(torch.cat([xn, torch.as_tensor(xi)], -1))[..., 0] / model.time_scale).numpy()
        learned = {}
        for name, mapped, slope in (("monotone", phi(xi[..., 0]), phi.derivative()(xi[..., 0])),
                                    ("affine", a * xi[..., 0] + b, a)):
            eta = data.x[te, :, 0] - mapped
            g_true, f_true = g_ex(eta), f_ex(eta)
            learned[name] = {"eta": eta, "g": g_raw * slope,
                             "f_relative_l2": float(np.linalg.norm(y_pred[..., 0] - f_true) / np.linalg.norm(f_true)),
                             "g_relative_l2": float(np.linalg.norm(g_raw * slope - g_true) / np.linalg.norm(g_true))}
        eta, g_l = learned["monotone"]["eta"], learned["monotone"]["g"]
        grid = np.linspace(eta.min(), eta.max(), 200)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        axes[0].plot(eta.ravel(), y_pred[..., 0].ravel(), ".", color="0.6", ms=2, label="learned")
        axes[0].plot(grid, f_ex(grid), color="darkred", label="exact (eq. 14)")
        axes[1].plot(eta.ravel(), g_l.ravel(), ".", color="0.6", ms=2, label="learned")
        axes[1].plot(grid, g_ex(grid), color="darkred", label="exact (eq. 15)")
        axes[0].set(xlabel="eps - phi(xi)", ylabel="f~ (GPa)",
                    title=f"Fig. 1e (rel. L2 {100 * learned['monotone']['f_relative_l2']:.1f}%)")
        axes[1].set(xlabel="eps - phi(xi)", ylabel="g~ (1/s)",
                    title=f"Fig. 1f (rel. L2 {100 * learned['monotone']['g_relative_l2']:.1f}%)")
        for ax in axes:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "fig1ef_learned_f_g.png", dpi=120)
        plt.close(fig)
        metrics["learned_f"] = {"relative_l2": learned["monotone"]["f_relative_l2"], "map": "monotone",
                                "affine_relative_l2": learned["affine"]["f_relative_l2"]}
        metrics["learned_g"] = {"relative_l2": learned["monotone"]["g_relative_l2"], "map": "monotone",
                                "affine_relative_l2": learned["affine"]["g_relative_l2"], "material": mat}
    else:
        for name in ("fig1d_internal_variable", "fig1ef_learned_f_g"):
            _placeholder(out / f"{name}.png", "needs a k = 1 model")

    # Fig. 10a
    if resolution:
        metrics["resolution"] = resolution_study(store, models, resolution["segments"], resolution["k"],
                                                 resolution["steps"], resolution.get("models", ["rno", "rno_ve"]))
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name, label, style in (("rno", "E-VP (eq. 2)", "o-"), ("rno_ve", "VE (eq. 7)", "s-"),
                                   ("exact_eq3", "exact law (eq. 14-15) under eq. 3", "k--")):
            r = [row for row in metrics["resolution"]["rows"] if row["model"] == name]
            if r:
                ax.plot([row["steps"] for row in r], [row["test_relative_l2"] for row in r], style, label=label)
        ax.axvline(metrics["resolution"]["train_steps"], color="0.7", ls=":", label="training resolution")
        ax.set(xscale="log", yscale="log", xlabel="time steps of the test data", ylabel="test error (eq. 16)",
               title=f"composite1d N = {resolution['segments']}, k = {resolution['k']}, paths |eps| <= "
                     f"{metrics['path_max_strain']:.2f} (rno Fig. 10a)")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "fig10a_resolution.png", dpi=120)
        plt.close(fig)
        _write_csv(out / "resolution.csv", metrics["resolution"]["rows"])
    else:
        _placeholder(out / "fig10a_resolution.png", "no resolution study configured")
    _write_csv(out / "metrics.csv", rows + metrics["baselines"])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def baseline_rows(models, names: Sequence[str], key: str, groups: Sequence, dirname) -> list[dict]:
    """Table rows of the GRU/LSTM baselines (``<models>/dirname(name, group)``), with the
    parameter counts of the baseline and of the RNO it was sized against; k is empty."""
    rows = []
    for g in groups:
        for name in names:
            _, info = load_history(Path(models) / dirname(name, g))
            h = info["hyperparameters"]
            rows.append({"model": name, key: g, "k": "", "test_relative_l2": info["metrics"]["test"]["relative_l2"],
                         "train_relative_l2": info["metrics"]["train"]["relative_l2"], **_training_facts(info),
                         "n_parameters": info["n_parameters"], "hidden": h.get("hidden"),
                         "rno_parameters": h.get("rno_parameters"), "rno_k": h.get("match_k")})
    return rows


def exact_law_euler(store, n: int, strain: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Stress histories (S, T) of the exact eq. 14-15 of the composite with N = ``n`` segments,
    integrated by the RNO's own scheme (rno eq. 3: xi^j = xi^(j-1) + dt g(eps^j, xi^(j-1)), xi^0 = 0)
    on the grid ``time``: the error a perfect f and g would make at that resolution (the
    discretisation floor of eq. 3). Paths on which forward Euler diverges come back non-finite."""
    f, g, _ = exact_f_g(store, n)
    xi = np.zeros(len(strain))
    out = np.empty(strain.shape, dtype=np.float64)
    out[:, 0] = f(strain[:, 0] - xi)
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(1, strain.shape[1]):
            xi = xi + (time[j] - time[j - 1]) * g(strain[:, j] - xi)
            out[:, j] = f(strain[:, j] - xi)
    return out


def exact_law_rows(store, n: int, strain: np.ndarray, stress: np.ndarray, time: np.ndarray, steps: int) -> dict:
    """Resolution-study row of :func:`exact_law_euler` (eq. 16 against the solver's stress; a path
    on which forward Euler diverges counts as 100% and is counted in ``diverged``)."""
    pred = exact_law_euler(store, n, strain, time)
    err = relative_l2_per_sample(torch.as_tensor(pred), torch.as_tensor(stress, dtype=torch.float64)).numpy()
    bad = ~np.isfinite(err)
    err = np.where(bad, 1.0, np.minimum(err, 1.0))
    return {"model": "exact_eq3", "N": n, "k": None, "steps": steps, "test_relative_l2": float(err.mean()),
            "diverged": int(bad.sum())}


def resolution_study(store, models, n: int, k: int, steps: Sequence[int], names: Sequence[str]) -> dict:
    """Test error of the models trained at the stored resolution, on the test paths taken from
    the fine (solver) histories every ``n_fine / steps``-th time (steps must divide n_fine), and
    the same for the exact law under the RNO's forward Euler (model ``exact_eq3``, the floor of
    eq. 3 at each resolution; per-path errors capped at 100%)."""
    fine = load_history_data(store, "composite1d", n, fine=True)
    n_fine = len(fine.t) - 1
    te = fine.subset(1)
    bad = [s for s in steps if n_fine % s]
    if bad:
        raise ValueError(f"resolution steps {bad} must divide the fine grid's {n_fine} steps")
    x, y = fine.x[te], fine.y[te]
    rows = [exact_law_rows(store, n, x[:, ::n_fine // s, 0], y[:, ::n_fine // s, 0], fine.t[::n_fine // s], s)
            for s in steps]
    train_steps = None
    for name in names:
        model, info = load_history(c1d_model_dir(models, name, n, k))
        train_steps = info["n_time"] - 1
        for s in steps:
            err = relative_errors(model, x[:, ::n_fine // s], y[:, ::n_fine // s], fine.t[::n_fine // s])
            rows.append({"model": name, "N": n, "k": k, "steps": s, "test_relative_l2": float(err.mean())})
    return {"train_steps": train_steps, "fine_steps": n_fine, "rows": rows}


def _placeholder(path, text):
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------- laminate


LAM_COMPONENTS = ("11", "22", "12")


def component_errors(model, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> dict:
    """Test error (eq. 16) of each in-plane stress component alone, ``test_relative_l2_<ij>``:
    eq. 16 over all three is dominated by the normal stresses, while the shear of a laminate stays
    at the soft layer's shear yield (~50 MPa against ~600 MPa on M3)."""
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(t, dtype=torch.float32))
    y = torch.as_tensor(y, dtype=pred.dtype)
    return {f"test_relative_l2_{name}": float(relative_l2_per_sample(pred[..., c], y[..., c]).mean())
            for c, name in enumerate(LAM_COMPONENTS)}


LAM_INTEGRATORS = {"be": "backward Euler", "sdirk3": "SDIRK3"}


def exact_laminate_law(store, strain: np.ndarray, time: np.ndarray, method: str) -> np.ndarray:
    """Stress histories (S, T, 3) of the laminate's own law (rno eq. 17-24, Table 1 case and
    hardening of ``store``) integrated on the RNO's grid ``time`` by ``method``: ``be`` is one
    backward-Euler return mapping per step, what a finite-element code does with the exact
    physics; ``sdirk3`` takes its stage strains from a cubic spline through the grid values. Paths
    whose Newton iterations fail come back NaN. Not a floor of the RNO, which learns the map of
    the stored steps themselves, but the classical reference at the same step."""
    from homlearn.datasets.laminate import store_material
    from homlearn.solvers.analytic.laminate import solve

    return solve(store_material(store), np.asarray(time, dtype=np.float64), np.asarray(strain, dtype=np.float64), method=method).stress


def laminate_law_rows(store, case: str, strain: np.ndarray, stress: np.ndarray, time: np.ndarray) -> list[dict]:
    """Rows of :func:`exact_laminate_law` for every method of :data:`LAM_INTEGRATORS`: eq. 16
    against the solver's stress, over all components and per component (a failed path counts
    as 100% and is counted in ``failed``)."""
    def err(p, y):
        e = relative_l2_per_sample(p, y).numpy()
        return np.where(np.isfinite(e), e, 1.0)

    rows = []
    truth = torch.as_tensor(stress, dtype=torch.float64)
    for method in LAM_INTEGRATORS:
        pred = torch.as_tensor(exact_laminate_law(store, strain, time, method))
        rows.append({"model": f"exact_{method}", "case": case, "k": "", "steps": len(time) - 1,
                     "test_relative_l2": float(err(pred, truth).mean()),
                     "failed": int((~torch.isfinite(pred).all(dim=(1, 2))).sum()),
                     **{f"test_relative_l2_{name}": float(err(pred[..., c], truth[..., c]).mean())
                        for c, name in enumerate(LAM_COMPONENTS)}})
    return rows


def laminate_prediction_figure(model, store, path, title: str, n_examples: int = 8) -> None:
    """Truth (solid) and prediction (dashed) of the three in-plane stresses on the first test paths."""
    data = load_history_data(store, "laminate")
    te = data.subset(1)[:n_examples]
    with torch.no_grad():
        pred = model(torch.as_tensor(data.x[te], dtype=torch.float32),
                     torch.as_tensor(np.array(data.t), dtype=torch.float32)).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for c, name in enumerate(("11", "22", "12")):
        for j in range(len(te)):
            axes[c].plot(data.t, data.y[te[j], :, c], color=f"C{j}")
            axes[c].plot(data.t, pred[j, :, c], "--", color=f"C{j}")
        axes[c].set(xlabel="t (s)", ylabel=f"sigma_{name} (MPa)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_laminate(datasets, models, out_dir, cases: Sequence[str], ks: Sequence[int],
                      example_case: str | None = None, n_examples: int = 4, baselines: Sequence[str] = ()) -> dict:
    """Metrics and figures :data:`LAM_FIGURES`; ``datasets``: the directory of
    ``laminate_<case>.zarr``; ``baselines``: GRU/LSTM models ``<models>/<name>_<case>``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, errors, classical = [], {}, []
    for case in cases:
        store = Path(datasets) / f"laminate_{case}.zarr"
        data = load_history_data(store, "laminate")
        te = data.subset(1)
        classical += laminate_law_rows(store, case, data.x[te], data.y[te], data.t)
        for k in ks:
            model, info = load_history(lam_model_dir(models, case, k))
            errors[(case, k)] = info["metrics"]["test"]["relative_l2"]
            rows.append({"model": "rno", "case": case, "k": k, "test_relative_l2": errors[(case, k)],
                         "train_relative_l2": info["metrics"]["train"]["relative_l2"], **_training_facts(info),
                         **component_errors(model, data.x[te], data.y[te], data.t)})
    base = baseline_rows(models, baselines, "case", cases, lambda name, case: f"{name}_{case}")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for j, case in enumerate(cases):
        ax.plot(list(ks), [errors[(case, k)] for k in ks], "o-", color=f"C{j}", label=case)
        for r in classical:
            if r["case"] == case and r["model"] == "exact_be":
                ax.axhline(r["test_relative_l2"], color=f"C{j}", ls="--", lw=1,
                           label=f"{case} law, backward Euler at the RNO's step")
        for r in base:
            if r["case"] == case:
                ax.axhline(r["test_relative_l2"], color=f"C{j}", ls=":", lw=1, label=f"{r['model']} {case}")
    ax.set(yscale="log", xlabel="internal variables k", ylabel="test error (eq. 16)",
           title="laminate: test error against k (rno Fig. 3a, direct training)")
    ax.title.set_fontsize(9)
    ax.set_xticks(list(ks))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig3a_error_vs_k.png", dpi=120)
    plt.close(fig)

    case = example_case if example_case in cases else cases[-1]
    k = max(ks)
    model, _ = load_history(lam_model_dir(models, case, k))
    laminate_prediction_figure(
        model, Path(datasets) / f"laminate_{case}.zarr", out / "fig3b_predictions.png",
        f"laminate {case}, k = {k}: truth (solid) and RNO (dashed), test paths (rno Fig. 3b)", n_examples)
    content = zarr.open_group(str(Path(datasets) / f"laminate_{cases[0]}.zarr"), mode="r").attrs.get("content", {})
    metrics = {"exemplar": "laminate", "datasets": str(datasets),
               **path_amplitude(content), "error_vs_k": rows, "baselines": base,
               "classical": classical}
    _write_csv(out / "metrics.csv", rows + classical + base)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


# ----------------------------------------------------------------------------- summary


def hardware() -> str:
    import os

    dev = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{dev}, {os.cpu_count()} cores ({platform.machine()}), torch threads {torch.get_num_threads()}"


def _baseline_summary(m: Mapping, hw: str) -> list[str]:
    """Summary rows of the GRU/LSTM baselines of a composite1d or laminate metrics.json."""
    lines = []
    for r in m.get("baselines", []):
        where = f"composite1d N = {r['N']}" if m["exemplar"] == "composite1d" else f"laminate {r['case']}"
        steps = 200 if m["exemplar"] == "composite1d" else 100
        lines.append(f"| {where}, {r['model'].upper()} baseline ({r['n_parameters']} parameters, hidden {r['hidden']}; "
                     f"RNO k = {r['rno_k']}: {r['rno_parameters']}) | {100 * r['test_relative_l2']:.2f}% | none "
                     f"(classical reference; section 1 cites LSTM/GRU surrogates) | {r['n_train']}/{r['n_test']} "
                     f"paths, {steps} steps | {r['adam_epochs']} + {r['lbfgs_epochs']} | {hw} |")
    return lines


def path_amplitude(content: dict) -> dict:
    """The strain-path amplitude of a store's config ``content``: F_max (``path_max_value``) and
    the bound it puts on |eps| (``path_max_strain`` = F_max sqrt(M T), see
    :func:`homlearn.loading.paths.knot_amplitude`); empty for a store without a path block."""
    p = content.get("path", {})
    if not p:
        return {}
    fmax = config_amplitude(p)
    return {"path_max_value": fmax, "path_max_strain": fmax * float(np.sqrt(p["n_intervals"] * p["t_final"]))}


def _amplitude_label(metrics: dict, section: str) -> str:
    """'' for the default path amplitude of ``section``, else ' (paths max strain X)'."""
    bound = metrics.get("path_max_strain")
    default = validate_config({})[section]["path"]["max_strain"]
    return "" if bound is None or abs(bound - default) < 1e-9 * default else f" (paths max strain {bound:.2f})"


def write_summary(path, metrics_files: Sequence[Path | str]) -> str:
    """``history_surrogates.md``: experiment, our metric, paper value, data size, epochs, hardware."""
    lines = ["# History surrogates (paper 'rno'): our numbers against the paper's", "",
             "Test error = mean relative L2 error over the test paths (rno eq. 16). Epochs: Adam + "
             "full-batch L-BFGS epochs (up to 20 iterations each). Hardware: where the summary was written "
             f"({hardware()}); training ran on the device named in each model.json.", "",
             "| experiment | our metric | paper value | data size (train/test) | epochs | hardware |",
             "| --- | --- | --- | --- | --- | --- |"]
    hw = "CPU" if not torch.cuda.is_available() else "GPU"
    classical_done = set()
    for mf in metrics_files:
        mf = Path(mf)
        if not mf.exists():
            continue
        m = json.loads(mf.read_text())
        if m["exemplar"] == "composite1d":
            rows = m["error_vs_k"]
            c1d = "composite1d" + _amplitude_label(m, "composite1d")
            for n in sorted({r["N"] for r in rows}):
                rs = [r for r in rows if r["N"] == n]
                errs = ", ".join(f"k={r['k']}: {100 * r['test_relative_l2']:.2f}%" for r in rs)
                r0 = rs[0]
                lines.append(f"| {c1d} N = {n}, error vs k (Fig. 1c) | {errs} | k = 1 as good as any "
                             f"larger k; k = 0 large | {r0['n_train']}/{r0['n_test']} paths, 200 steps | "
                             f"{r0['adam_epochs']} + {r0['lbfgs_epochs']} | {hw} |")
            if "internal_variable_fits" in m:
                fits = ", ".join(f"N={f['N']}: {100 * f['affine_residual']:.1f}% / "
                                 + ("-" if f["monotone_residual"] is None else f"{100 * f['monotone_residual']:.1f}%")
                                 for f in m["internal_variable_fits"])
                lines.append(f"| {c1d}, learned xi vs <eps_p> (Fig. 1d), residual after the best affine / "
                             f"monotone map (the RNO is invariant under any invertible map, eq. 5) | {fits} | "
                             f"'a scaled version' (figure only) | test paths | - | {hw} |")
            elif "internal_variable_fit" in m:
                f = m["internal_variable_fit"]
                lines.append(f"| {c1d} N = {f['N']}, learned xi vs <eps_p> (Fig. 1d) | affine-map residual "
                             f"{100 * f['relative_residual']:.1f}% | 'a scaled version' (figure only) | test paths "
                             f"| - | {hw} |")
            for fn, eq in (("f", "1e"), ("g", "1f")):
                lf = m.get(f"learned_{fn}")
                if lf:
                    how = (f"relative L2 {100 * lf['relative_l2']:.1f}% under the monotone map "
                           f"({100 * lf['affine_relative_l2']:.1f}% under the affine one)" if lf.get("map") == "monotone"
                           else f"relative L2 {100 * lf['relative_l2']:.1f}%")
                    n0 = m.get("internal_variable_fit", {}).get("N", 1)
                    lines.append(f"| {c1d} N = {n0}, learned {fn}~ vs exact (Fig. {eq}) | {how} on the test "
                                 f"points | 'reasonable accuracy' (figure only) | test paths | - | {hw} |")
            if "resolution" in m:
                res = m["resolution"]
                for name, label in (("rno", "E-VP RNO"), ("rno_ve", "VE RNO"), ("exact_eq3", "exact law")):
                    rs = [r for r in res["rows"] if r["model"] == name]
                    if rs:
                        errs = ", ".join(f"{r['steps']}: {100 * r['test_relative_l2']:.2f}%"
                                         + (f" ({r['diverged']} diverged)" if r.get("diverged") else "")
                                         for r in rs)
                        if name == "exact_eq3":
                            lines.append(f"| {c1d} resolution, exact eq. 14-15 under the RNO's forward "
                                         f"Euler (eq. 3), the floor of any eq. 3 model (Fig. 10a) | {errs} | - | "
                                         f"N = {rs[0]['N']} test paths | - | {hw} |")
                            continue
                        paper = ("flat across resolutions" if name == "rno"
                                 else "small at 200 steps, large elsewhere")
                        lines.append(f"| {c1d} resolution, {label} trained at {res['train_steps']} "
                                     f"steps (Fig. 10a) | {errs} | {paper} | N = {rs[0]['N']} test paths | "
                                     f"see Fig. 1c row | {hw} |")
        elif m["exemplar"] == "laminate":
            rows = m["error_vs_k"]
            lam = "laminate" + _amplitude_label(m, "laminate")
            for case in dict.fromkeys(r["case"] for r in rows):
                rs = [r for r in rows if r["case"] == case]
                errs = ", ".join(f"k={r['k']}: {100 * r['test_relative_l2']:.2f}%" for r in rs)
                if "test_relative_l2_12" in rs[-1]:
                    errs += f" (k={rs[-1]['k']} per component: " + ", ".join(
                        f"{c}: {100 * rs[-1][f'test_relative_l2_{c}']:.1f}%" for c in LAM_COMPONENTS) + ")"
                r0 = rs[0]
                how = f"direct, on {r0['symmetries']}-augmented paths (ours)" if r0.get("symmetries") else "direct"
                lines.append(f"| {lam} {case}, error vs k (Fig. 3a, {how}) | {errs} | ~1-1.5% at k = 3 "
                             f"(640/160 paths) | {paths_label(r0, 100)} | "
                             f"{r0['adam_epochs']} + {r0['lbfgs_epochs']} | {hw} |")
            for r in m.get("classical", []):
                if (r["case"], r["model"]) in classical_done:  # an augmented study evaluates the same law
                    continue
                classical_done.add((r["case"], r["model"]))
                lines.append(f"| {lam} {r['case']}, the laminate's own law (eq. 17-24) integrated at the RNO's "
                             f"{r['steps']} steps by {LAM_INTEGRATORS[r['model'].removeprefix('exact_')]} (classical "
                             f"reference) | {100 * r['test_relative_l2']:.2f}% (11: {100 * r['test_relative_l2_11']:.1f}%, "
                             f"22: {100 * r['test_relative_l2_22']:.1f}%, 12: {100 * r['test_relative_l2_12']:.1f}%)"
                             + (f", {r['failed']} paths failed" if r["failed"] else "")
                             + f" | none | test paths | - | {hw} |")
        elif m["exemplar"] in ("laminate_transfer", "laminate_hardening", "laminate_autoencoder"):
            from homlearn.evaluate.laminate_studies import summary_lines

            lines += summary_lines(m, hw)
        lines += _baseline_summary(m, hw)
        for r in m.get("summary_rows", []):  # experiments that word their own rows (e.g. cp_paths2d)
            lines.append(f"| {r['experiment']} | {r['metric']} | {r['paper']} | {r['data']} | {r['epochs']} | "
                         f"{r.get('hardware', hw)} |")
    text = "\n".join(lines) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text
