"""The mg_taylor surrogate experiments (paper 'rno' section 5.2, Fig. 8a-d and 9; paper 'pcanet'
SI-C isotropy and the 3D Taylor rows of Table SI-2): metrics and figures from the models of
:mod:`homlearn.train.mg_taylor` and the Taylor solves of :mod:`homlearn.datasets.mg_taylor_classical`.

Model directories under ``models``: ``rno_k<k>_n<n>`` (RNO with k internal variables on n
training paths), ``pcanet_n<n>``, ``jc`` (the fitted 3D Johnson-Cook law).

- Fig. 8a: RNO test error against k (n = the largest training size), the PCA-Net and the
  Johnson-Cook law as horizontal lines.
- Fig. 8b: test error against training size: RNO (k = ``k_best``) and PCA-Net; the
  Johnson-Cook law (fitted to classical tests, not to the random paths) as a line.
- Fig. 8c-d: a test path's stretch and its stress, Taylor against the RNO.
- Fig. 9: classical paths, Taylor against RNO, PCA-Net and Johnson-Cook; relative L2 errors.
- Isotropy (SI-C): (a) uniaxial tension rotated by theta about x2: the tensile stress in the
  rotated frame, ``(R^T sigma R)_11``, for every theta (isotropic: the same for all theta);
  (b) random rotations of test paths: the invariance error
  ``||R^T S(R U R^T) R - S(U)|| / ||S(U)||`` of the Taylor model itself (nonzero: 128 grains
  are only nearly isotropic) and of each surrogate, and the surrogates' error on rotated paths.

Errors are relative L2 over time and the six components (rno eq. 16), averaged over paths.
``metrics.json`` carries ``summary_rows`` that :func:`homlearn.evaluate.history.write_summary` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from homlearn.datasets.mg_taylor_classical import components, rotation_about_x2  # noqa: E402
from homlearn.loading.paths import symmetric_from_components  # noqa: E402
from homlearn.train.mg_taylor import deviator, relative_l2  # noqa: E402,F401  (re-exported)

FIGURES = ("fig8a_error_vs_k", "fig8b_error_vs_size", "fig8cd_example", "fig9_classical", "figSI1_isotropy")
COMPONENT_NAMES = ("11", "22", "33", "12", "13", "23")
#: the component drawn for each classical path in Fig. 9
PATH_COMPONENT = {"uniaxial_tension": 0, "uniaxial_compression": 0, "load_unload": 0, "cyclic": 0,
                  "cavity_expansion": 1, "simple_shear": 3}


def rno_dir(models, k: int, n: int) -> Path:
    return Path(models) / f"rno_k{k}_n{n}"


def pcanet_dir(models, n: int) -> Path:
    return Path(models) / f"pcanet_n{n}"


def rotate_back(stress: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Components of ``R^T S R`` for stress components (..., T, 6) and rotations (..., 3, 3)."""
    S = symmetric_from_components(stress, 3)
    R = np.asarray(rotations)[..., None, :, :]
    return components(np.swapaxes(R, -1, -2) @ S @ R)


def invariance_error(reference: np.ndarray, rotated: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(P, M) ``||R^T S(R U R^T) R - S(U)|| / ||S(U)||`` from the responses to the paths
    (P, T, 6) and to their rotations (P, M, T, 6) by ``rotations`` (P, M, 3, 3): zero for an
    isotropic material law."""
    back = rotate_back(rotated, rotations)
    P, M = back.shape[:2]
    ref = np.broadcast_to(np.asarray(reference)[:, None], back.shape)
    return relative_l2(back.reshape(P * M, -1), ref.reshape(P * M, -1)).reshape(P, M)


def isotropy_of(predict: Callable[[np.ndarray], np.ndarray], stretch: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """:func:`invariance_error` of a model ``predict``: stretch components (N, T, 6) -> stress
    components (N, T, 6), on paths ``stretch`` (P, T, 6) and rotations (P, M, 3, 3)."""
    P, M = rotations.shape[:2]
    U = symmetric_from_components(stretch, 3)
    R = rotations[:, :, None]
    Ur = components(R @ U[:, None] @ np.swapaxes(R, -1, -2)).reshape(P * M, *stretch.shape[1:])
    return invariance_error(predict(stretch), predict(Ur).reshape(P, M, *stretch.shape[1:]), rotations)


def _facts(info: Mapping) -> dict:
    tr = info["training"]
    return {"adam_epochs": tr.get("adam_epochs", tr["epochs"]), "lbfgs_epochs": tr.get("lbfgs_epochs", 0),
            "train_seconds": round(float(tr["seconds_total"]), 1), "n_train": info["metrics"]["train"]["n"],
            "n_test": info["metrics"]["test"]["n"], "device": info.get("device", "cpu")}


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_mg_taylor(store, classical_store, models, out_dir, cfg: Mapping[str, Any]) -> dict:
    """Metrics (``metrics.json``) and the figures :data:`FIGURES`; ``cfg``: rno.mg_taylor."""
    import xarray as xr

    from homlearn.train.mg_taylor import TEST, jc_components, load_jc, load_mg_model, load_mg_taylor_data, \
        predict_components

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mg_taylor_data(store)
    te = data.subset(TEST)
    U_te, y_te, t = data.stretch(te), data.y[te], data.t
    sizes, ks, kb = sorted(cfg["train_sizes"]), list(cfg["k"]), cfg["k_best"]
    n_max = sizes[-1]
    jc, jc_info = load_jc(Path(models) / "jc")
    T_phys = t * data.duration

    def jc_pred(stretch):
        return jc_components(jc, stretch, T_phys)

    dev_te = deviator(y_te)

    def dev_error(pred):  # the plastic part: the mean stress is mostly elastic pressure
        return float(relative_l2(deviator(pred), dev_te).mean())

    jc_y = jc_pred(U_te)
    jc_err = relative_l2(jc_y, y_te)
    metrics: dict[str, Any] = {"exemplar": "mg_taylor", "store": str(store), "case": cfg["case"],
                               "n_time": int(len(t)), "duration_s": data.duration,
                               "stress_rms_MPa": {"pressure": float(np.sqrt((y_te[..., :3].mean(-1) ** 2).mean())),
                                                  "deviator": float(np.sqrt((dev_te ** 2).mean()))},
                               "johnson_cook": {**jc_info, "test_relative_l2": float(jc_err.mean()),
                                                "test_deviatoric_l2": dev_error(jc_y)}}

    # Fig. 8a: error against k
    rows_k = []
    for k in ks:
        net, info = load_mg_model(rno_dir(models, k, n_max))
        rows_k.append({"model": "rno", "k": k, "n_train": n_max, "test_relative_l2": info["metrics"]["test"]["relative_l2"],
                       "test_deviatoric_l2": dev_error(predict_components(net, U_te, t)),
                       "train_relative_l2": info["metrics"]["train"]["relative_l2"], **_facts(info)})
    rows_n = []
    for name, path_of in (("rno", lambda n: rno_dir(models, kb, n)), ("pcanet", lambda n: pcanet_dir(models, n))):
        for n in sizes:
            net, info = load_mg_model(path_of(n))
            rows_n.append({"model": name, "k": kb if name == "rno" else None, "n_train": n,
                           "test_relative_l2": info["metrics"]["test"]["relative_l2"],
                           "test_deviatoric_l2": dev_error(predict_components(net, U_te, t)),
                           "train_relative_l2": info["metrics"]["train"]["relative_l2"], **_facts(info)})
    metrics["error_vs_k"], metrics["error_vs_size"] = rows_k, rows_n
    pca_max = next(r for r in rows_n if r["model"] == "pcanet" and r["n_train"] == n_max)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(ks, [r["test_relative_l2"] for r in rows_k], "o-", label=f"RNO ({n_max} paths)")
    ax.plot(ks, [r["test_deviatoric_l2"] for r in rows_k], "o:", color="C0", mfc="none", label="RNO, deviator only")
    ax.axhline(pca_max["test_relative_l2"], color="C1", ls="--", label=f"PCA-Net ({n_max} paths)")
    ax.axhline(jc_err.mean(), color="C3", ls=":", label="Johnson-Cook (classical fit)")
    ax.set(yscale="log", xlabel="internal variables k", ylabel="test error (eq. 16)", xticks=ks,
           title="mg_taylor: test error against k (rno Fig. 8a)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    _save(fig, out / "fig8a_error_vs_k.png")

    # Fig. 8b: error against training size (the inset's PCA-Net and JC on the same axes)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, label, style in (("rno", f"RNO k = {kb}", "o-"), ("pcanet", "PCA-Net", "s--")):
        r = [row for row in rows_n if row["model"] == name]
        ax.plot([row["n_train"] for row in r], [row["test_relative_l2"] for row in r], style, label=label)
    ax.axhline(jc_err.mean(), color="C3", ls=":", label="Johnson-Cook (classical fit)")
    ax.set(xscale="log", yscale="log", xlabel="training paths", ylabel="test error (eq. 16)",
           title="mg_taylor: test error against training size (rno Fig. 8b)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    _save(fig, out / "fig8b_error_vs_size.png")

    # Fig. 8c-d: a typical test path
    rno, _ = load_mg_model(rno_dir(models, kb, n_max))
    pca, _ = load_mg_model(pcanet_dir(models, n_max))

    def rno_pred(stretch):
        return predict_components(rno, stretch, t)

    def pca_pred(stretch):
        return predict_components(pca, stretch, t)

    y_rno = rno_pred(U_te)
    err_rno = relative_l2(y_rno, y_te)
    i = int(np.argsort(err_rno)[len(err_rno) // 2])  # the median path
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for c, name in enumerate(COMPONENT_NAMES):
        axes[0].plot(t, U_te[i, :, c], color=f"C{c}", label=f"U_{name}")
        axes[1].plot(t, y_te[i, :, c], color=f"C{c}", label=f"sigma_{name}")
        axes[1].plot(t, y_rno[i, :, c], "--", color=f"C{c}")
    axes[0].set(xlabel="t / T", ylabel="stretch U", title="test input (Fig. 8c)")
    axes[1].set(xlabel="t / T", ylabel="Cauchy stress (MPa)",
                title=f"Taylor (solid) and RNO k = {kb} (dashed), error {100 * err_rno[i]:.1f}% (Fig. 8d)")
    axes[1].title.set_fontsize(9)
    for a in axes:
        a.legend(fontsize=6, ncol=2)
    _save(fig, out / "fig8cd_example.png")

    # Fig. 9: classical paths
    cl = xr.open_zarr(classical_store, consolidated=None)
    names = [str(n) for n in cl["path"].values]
    Uc, yc = cl["path_stretch"].values, cl["path_stress"].values
    preds = {"RNO": rno_pred(Uc), "PCA-Net": pca_pred(Uc), "Johnson-Cook": jc_pred(Uc)}
    errs = {m: relative_l2(p, yc) for m, p in preds.items()}
    devs = {m: relative_l2(deviator(p), deviator(yc)) for m, p in preds.items()}  # the paths are isochoric
    metrics["classical"] = {"paths": names, **{m: dict(zip(names, map(float, e))) for m, e in errs.items()},
                            "mean": {m: float(e.mean()) for m, e in errs.items()},
                            "deviatoric": {m: dict(zip(names, map(float, e))) for m, e in devs.items()},
                            "deviatoric_mean": {m: float(e.mean()) for m, e in devs.items()}}
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    for j, (name, ax) in enumerate(zip(names, axes.ravel())):
        c = PATH_COMPONENT.get(name, 0)
        ax.plot(t, yc[j, :, c], "k-", lw=2, label="Taylor")
        for m, style in (("RNO", "C0--"), ("PCA-Net", "C1-."), ("Johnson-Cook", "C3:")):
            ax.plot(t, preds[m][j, :, c], style, label=f"{m} {100 * errs[m][j]:.0f}% (dev. {100 * devs[m][j]:.0f}%)")
        ax.set(xlabel="t / T", ylabel=f"sigma_{COMPONENT_NAMES[c]} (MPa)", title=name.replace("_", " "))
        ax.legend(fontsize=7)
    fig.suptitle(f"classical paths (rno Fig. 9): RNO k = {kb}, PCA-Net, Johnson-Cook; errors over all components "
                 "(and of the deviator alone: the pressure errors are absolute offsets of models trained on "
                 "GPa pressures)", fontsize=8)
    _save(fig, out / "fig9_classical.png")

    # Isotropy (pcanet SI-C)
    thetas = cl["theta"].values
    Ut, yt = cl["theta_stretch"].values, cl["theta_stress"].values
    Rt = np.stack([rotation_about_x2(th) for th in thetas])
    tens = {"Taylor": rotate_back(yt, Rt)[:, :, 0]}
    for m, f in (("RNO", rno_pred), ("PCA-Net", pca_pred), ("Johnson-Cook", jc_pred)):
        tens[m] = rotate_back(f(Ut), Rt)[:, :, 0]

    def spread(v):  # (max - min) / mean of the final tensile stress over theta
        return float((v[:, -1].max() - v[:, -1].min()) / abs(v[:, -1].mean()))

    rot = cl["rotated_matrix"].values
    Ur, yr = cl["rotated_stretch"].values, cl["rotated_stress"].values
    sample = cl["rotated_sample"].values
    pos = {int(s): j for j, s in enumerate(data.ids)}
    rows = np.array([pos[int(s)] for s in sample])
    U0, y0 = data.stretch(rows), data.y[rows]
    P, M = rot.shape[:2]
    iso = {"theta_deg": np.degrees(thetas).tolist(),
           "final_tensile_stress": {m: v[:, -1].tolist() for m, v in tens.items()},
           "theta_spread": {m: spread(v) for m, v in tens.items()},
           "invariance_error": {"Taylor": float(invariance_error(y0, yr, rot).mean())},
           "rotated_test_error": {}, "unrotated_test_error": {}, "n_paths": int(P), "n_rotations": int(M)}
    for m, f in (("RNO", rno_pred), ("PCA-Net", pca_pred), ("Johnson-Cook", jc_pred)):
        iso["invariance_error"][m] = float(isotropy_of(f, U0, rot).mean())
        iso["rotated_test_error"][m] = float(relative_l2(f(Ur.reshape(P * M, *Ur.shape[2:])),
                                                         yr.reshape(P * M, *yr.shape[2:])).mean())
        iso["unrotated_test_error"][m] = float(relative_l2(f(U0), y0).mean())
    metrics["isotropy"] = iso
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    strain = np.log(Ut[0, :, 0])  # the unrotated path's axial log strain (theta = 0)
    for j in range(len(thetas)):
        axes[0].plot(strain, tens["Taylor"][j], color="0.6", lw=1, label="Taylor" if j == 0 else None)
        axes[0].plot(strain, tens["RNO"][j], "C0--", lw=1, label=f"RNO k = {kb}" if j == 0 else None)
    axes[0].set(xlabel="axial log strain in the rotated frame", ylabel="tensile stress (MPa)",
                title=f"uniaxial tension rotated about x2, theta = 0..{np.degrees(thetas[-1]):.0f} deg (SI-1b)")
    axes[0].title.set_fontsize(8)
    axes[0].legend(fontsize=7)
    ms = list(iso["invariance_error"])
    axes[1].bar(np.arange(len(ms)) - 0.2, [iso["invariance_error"][m] for m in ms], 0.4, label="invariance error")
    axes[1].bar(np.arange(1, len(ms)) + 0.2, [iso["rotated_test_error"][m] for m in ms[1:]], 0.4,
                label="error on rotated test paths")
    axes[1].set(xticks=range(len(ms)), xticklabels=ms, yscale="symlog", ylabel="relative L2",
                title=f"{P} test paths x {M} random rotations")
    axes[1].set_yscale("symlog", linthresh=1e-3)
    axes[1].title.set_fontsize(8)
    axes[1].legend(fontsize=7)
    _save(fig, out / "figSI1_isotropy.png")

    metrics["summary_rows"] = summary_rows(metrics, cfg)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def summary_rows(m: Mapping, cfg: Mapping) -> list[dict]:
    """Rows of the lead's summary table (experiment, metric, paper value, data, epochs, hardware)."""
    rk, rn = m["error_vs_k"], m["error_vs_size"]
    r0 = rk[0]
    data = f"{r0['n_train']}/{r0['n_test']} paths, {m['n_time'] - 1} steps, case {m['case']}"
    ep = f"{r0['adam_epochs']} + {r0['lbfgs_epochs']}"
    hw = r0["device"].upper() if r0["device"] != "cpu" else "CPU"
    best = min(rk, key=lambda r: r["test_relative_l2"])
    rows = [{"experiment": "mg_taylor RNO error vs k (rno Fig. 8a)",
             "metric": ", ".join(f"k={r['k']}: {100 * r['test_relative_l2']:.1f}%" for r in rk)
             + f" (best k = {best['k']}); deviator only: "
             + ", ".join(f"{100 * r['test_deviatoric_l2']:.0f}%" for r in rk),
             "paper": "large at k = 0, saturating at k = 5; below PCA-Net (30000 paths)",
             "data": data, "epochs": ep, "hardware": hw}]
    for name, label in (("rno", f"RNO k = {cfg['k_best']}"), ("pcanet", "PCA-Net")):
        rs = [r for r in rn if r["model"] == name]
        rows.append({"experiment": f"mg_taylor {label} error vs training size (rno Fig. 8b)",
                     "metric": ", ".join(f"n={r['n_train']}: {100 * r['test_relative_l2']:.1f}% "
                                         f"(deviator {100 * r['test_deviatoric_l2']:.0f}%)" for r in rs),
                     "paper": "RNO below PCA-Net at equal or smaller size; 2400 paths 'excellent'"
                     if name == "rno" else "PCA-Net 3D Taylor 10%: 5% at 3200 paths (pcanet Table SI-2 case 11)",
                     "data": f"{', '.join(str(r['n_train']) for r in rs)}/{rs[0]['n_test']} paths",
                     "epochs": f"{rs[0]['adam_epochs']} + {rs[0]['lbfgs_epochs']}", "hardware": hw})
    jc = m["johnson_cook"]
    rows.append({"experiment": "mg_taylor Johnson-Cook (J2) fit to classical tests, on random test paths "
                               "(rno Fig. 8b inset)",
                 "metric": f"{100 * jc['test_relative_l2']:.1f}% (deviator {100 * jc['test_deviatoric_l2']:.0f}%; "
                           f"fit error on its uniaxial tests "
                           f"{', '.join(f'{100 * e:.1f}%' for e in jc['fit_relative_l2'])})",
                 "paper": "~40%", "data": f"uniaxial stress at {', '.join(f'{r:g}' for r in jc['rates'])} /s",
                 "epochs": "least squares", "hardware": "CPU"})
    cl = m["classical"]
    rows.append({"experiment": f"mg_taylor classical paths, RNO k = {cfg['k_best']} (rno Fig. 9)",
                 "metric": f"mean {100 * cl['mean']['RNO']:.1f}% (" + ", ".join(
                     f"{p}: {100 * cl['RNO'][p]:.0f}%" for p in cl["paths"]) + f"); PCA-Net "
                     f"{100 * cl['mean']['PCA-Net']:.1f}%, JC {100 * cl['mean']['Johnson-Cook']:.1f}%; deviator only: "
                     + ", ".join(f"{m} {100 * v:.0f}%" for m, v in cl["deviatoric_mean"].items()),
                 "paper": "~8% (RNO), JC worse", "data": f"{len(cl['paths'])} paths", "epochs": ep, "hardware": hw})
    iso = m["isotropy"]
    rows.append({"experiment": "mg_taylor isotropy (pcanet SI-C)",
                 "metric": "invariance error Taylor {:.1f}%, RNO {:.1f}%, PCA-Net {:.1f}%; theta spread of the "
                           "tensile stress Taylor {:.1f}%, RNO {:.1f}%".format(
                               100 * iso["invariance_error"]["Taylor"], 100 * iso["invariance_error"]["RNO"],
                               100 * iso["invariance_error"]["PCA-Net"], 100 * iso["theta_spread"]["Taylor"],
                               100 * iso["theta_spread"]["RNO"]),
                 "paper": "tensile stress about the same for every theta",
                 "data": f"{iso['n_paths']} test paths x {iso['n_rotations']} rotations, "
                         f"{len(iso['theta_deg'])} angles", "epochs": ep, "hardware": hw})
    return rows
