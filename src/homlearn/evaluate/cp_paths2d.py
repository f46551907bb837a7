"""The cp_paths2d surrogate experiments: paper 'pcanet' Fig. 1a, 1d, 1e-g, 2 and paper 'rno' Fig.
7b-c, from the models of :func:`homlearn.train.cp_paths2d.train_cp_paths2d`.

Model directories under ``models``: ``pcanet_n<n>`` (PCA-Net on the first n training paths) and
``rno_<part>_k<k>`` (part ``pressure`` or ``deviatoric``). Each experiment writes its figure(s)
and ``metrics_<experiment>.json`` with ``summary_rows`` (experiment, our metric, paper value,
data size, epochs, hardware) for :func:`homlearn.evaluate.history.write_summary`.

- ``fig1a``: PCA-Net test error against the training size (end of training) and against the
  epochs (the weights at ``pcanet.epochs_at``).
- ``fig1d``: the largest PCA-Net, trained at ``train_steps``, on the test paths at
  ``pcanet.resolution_steps`` (histories interpolated to its grid and back,
  :class:`~homlearn.models.pcanet.PCANet`), beside the RNO of ``rno.example_k`` (forward Euler
  at each resolution); and the error of the output PCA alone against its dimension.
- ``fig7bc``: test error of the deviatoric and the pressure RNOs against k ('rno' Fig. 7b-c) and
  an example deviatoric prediction (Fig. 7e).
- ``fig1eg``: the named paths (uniaxial, load-unload, cavity; solved by
  :func:`homlearn.datasets.cp_paths2d_named.solve_named_paths`) against both surrogates.
- ``fig2``: causality. (a) five paths equal to a test path up to ``causality.t_split`` T, then
  diverging; (b) isochoric uniaxial ramps held from t_i on. Metric: the largest difference of
  the predicted stresses of two paths at times where their inputs agree, relative to the largest
  stress; zero for a causal model (the RNO, by construction), measured for PCA-Net.

Errors are relative L2 over time of the Frobenius norm of the stress (pcanet sec. 2.2, rno eq. 16).
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from homlearn.data.path_histories import (from_mandel, input_components, load_path_histories,  # noqa: E402
                                          polar)
from homlearn.train.cp_paths2d import load_cp_paths2d_model  # noqa: E402

EXPERIMENTS = {
    "fig1a": ("fig1a_error_vs_size_epochs",),
    "fig1d": ("fig1d_resolution",),
    "fig7bc": ("fig7bc_error_vs_k", "fig7e_deviatoric_prediction"),
    "fig1eg": ("fig1eg_named_paths",),
    "fig2": ("fig2_causality",),
}


def pcanet_dir(models, n: int) -> Path:
    return Path(models) / f"pcanet_n{n}"


def rno_dir(models, part: str, k: int) -> Path:
    return Path(models) / f"rno_{part}_k{k}"


# ----------------------------------------------------------------------------- predictions


def _tensor(c: np.ndarray) -> np.ndarray:
    """Mandel components (..., 3) -> symmetric (..., 2, 2)."""
    p = from_mandel(c)
    return np.stack([np.stack([p[..., 0], p[..., 2]], -1), np.stack([p[..., 2], p[..., 1]], -1)], -2)


def _run(model, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(t, dtype=torch.float32)).double().numpy()


def predict_pcanet(model, info: Mapping, F: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cauchy stress (S, T, 2, 2) predicted by a PCA-Net for mean-F histories (S, T, 2, 2) at
    times t (any grid of the training interval), rotated back from the stretch frame."""
    sig = _tensor(_run(model, input_components(F, info["input"]), t))
    if info["input"] == "U":
        R = polar(F)[0]
        sig = R @ sig @ np.swapaxes(R, -1, -2)
    return sig


def predict_rno(pressure, deviatoric, F: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cauchy stress ``-p I + s`` (S, T, 2, 2) of the two RNOs of 'rno' sec. 5.1 (eq. 28)."""
    x = input_components(F, "F")
    p, s = _run(pressure, x, t)[..., 0], _run(deviatoric, x, t)
    return np.stack([np.stack([s[..., 0] - p, s[..., 1]], -1), np.stack([s[..., 1], -s[..., 0] - p], -1)], -2)


def stress_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(S,) relative L2 errors over time of the Frobenius norm of (S, T, 2, 2) stress histories."""
    num = ((pred - truth) ** 2).sum(axis=(1, 2, 3))
    return np.sqrt(num / np.maximum((truth ** 2).sum(axis=(1, 2, 3)), np.finfo(float).tiny))


def causality_violation(pred: np.ndarray, agree_until: np.ndarray) -> float:
    """Largest |sigma_a(t) - sigma_b(t)| (Frobenius) over path pairs (a, b) and the time indices
    ``t <= agree_until[a, b]`` where their inputs agree, over the largest |sigma|; 0 if causal."""
    scale = np.sqrt((pred ** 2).sum(axis=(-2, -1))).max()
    worst = 0.0
    for a, b in combinations(range(len(pred)), 2):
        n = int(agree_until[a, b]) + 1
        d = np.sqrt(((pred[a, :n] - pred[b, :n]) ** 2).sum(axis=(-2, -1))).max()
        worst = max(worst, float(d))
    return worst / max(float(scale), np.finfo(float).tiny)


def agreement_index(F: np.ndarray, atol: float = 0.0) -> np.ndarray:
    """(P, P): the last time index up to which paths a and b have equal inputs (from t = 0)."""
    P = len(F)
    out = np.full((P, P), len(F[0]) - 1)
    for a, b in combinations(range(P), 2):
        diff = np.abs(F[a] - F[b]).reshape(len(F[a]), -1).max(1) > atol
        out[a, b] = out[b, a] = (int(np.argmax(diff)) - 1) if diff.any() else len(F[a]) - 1
    return out


# ----------------------------------------------------------------------------- helpers


def _facts(info: Mapping, store_cfg: Mapping) -> dict:
    tr = info["training"]
    return {"n_train": info["metrics"]["train"]["n"], "n_test": info["metrics"]["test"]["n"],
            "adam_epochs": tr.get("adam_epochs", tr["epochs"]), "lbfgs_epochs": tr.get("lbfgs_epochs", 0),
            "train_seconds": round(float(tr["seconds_total"]), 1), "hardware": info.get("hardware", info["device"]),
            "grid": store_cfg.get("grid"), "n_grains": store_cfg.get("n_grains"), "train_steps": info["train_steps"]}


def _data_text(f: Mapping) -> str:
    return (f"{f['n_train']}/{f['n_test']} paths, {f['grid']}x{f['grid']} cell, {f['n_grains']} grains, "
            f"{f['train_steps']} steps")


def _epochs_text(f: Mapping) -> str:
    return f"{f['adam_epochs']} + {f['lbfgs_epochs']}" if f["lbfgs_epochs"] else f"{f['adam_epochs']}"


def _store_cfg(store) -> dict:
    import xarray as xr

    return dict(xr.open_zarr(store, consolidated=None).attrs.get("config", {}))


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write(out: Path, name: str, metrics: dict) -> dict:
    (out / f"metrics_{name}.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _rno_pair(models, k: int):
    p, pinfo = load_cp_paths2d_model(rno_dir(models, "pressure", k))
    s, sinfo = load_cp_paths2d_model(rno_dir(models, "deviatoric", k))
    return p, s, pinfo, sinfo


# ----------------------------------------------------------------------------- experiments


def fig1a(store, models, out, cfg: Mapping[str, Any]) -> dict:
    """PCA-Net test error against training size and epochs ('pcanet' Fig. 1a)."""
    sizes = sorted(cfg["pcanet"]["train_sizes"])
    scfg = _store_cfg(store)
    rows, curves = [], {}
    for n in sizes:
        _, info = load_cp_paths2d_model(pcanet_dir(models, n))
        f = _facts(info, scfg)
        rows.append({"n_train": n, "test_relative_l2": info["metrics"]["test"]["relative_l2"],
                     "train_relative_l2": info["metrics"]["train"]["relative_l2"], **f})
        curves[n] = info["test_at_epochs"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for n in sizes:
        c = curves[n]
        axes[0].plot([r["epoch"] for r in c], [r["test_relative_l2"] for r in c], "o-", label=f"{n} paths")
    axes[0].set(xlabel="epochs", ylabel="test error", yscale="log", title="test error against epochs")
    axes[0].legend(fontsize=7)
    axes[1].plot(sizes, [r["test_relative_l2"] for r in rows], "o-", label="test")
    axes[1].plot(sizes, [r["train_relative_l2"] for r in rows], "s--", label="train")
    axes[1].set(xlabel="training paths", ylabel="relative L2 error", xscale="log", yscale="log",
                title=f"after {rows[-1]['adam_epochs']} epochs")
    axes[1].legend(fontsize=7)
    fig.suptitle("cp_paths2d PCA-Net (pcanet Fig. 1a)", fontsize=9)
    _save(fig, Path(out) / "fig1a_error_vs_size_epochs.png")
    last = rows[-1]
    errs = ", ".join(f"{r['n_train']}: {100 * r['test_relative_l2']:.1f}%" for r in rows)
    summary = [{"experiment": "cp_paths2d PCA-Net test error vs training paths (pcanet Fig. 1a)",
                "metric": errs, "paper": "5% at 3,200 training paths, 400 epochs (64x64, 200 steps)",
                "data": _data_text(last), "epochs": _epochs_text(last), "hardware": last["hardware"]}]
    ep = ", ".join(f"{r['epoch']}: {100 * r['test_relative_l2']:.1f}%" for r in curves[sizes[-1]])
    summary.append({"experiment": f"cp_paths2d PCA-Net test error vs epochs, {sizes[-1]} paths (pcanet Fig. 1a)",
                    "metric": ep, "paper": "decreasing with epochs, 5% at 400 (3,200 paths)",
                    "data": _data_text(last), "epochs": _epochs_text(last), "hardware": last["hardware"]})
    return _write(Path(out), "fig1a", {"exemplar": "cp_paths2d", "experiment": "fig1a", "rows": rows,
                                       "epochs_curves": {str(n): curves[n] for n in sizes}, "summary_rows": summary})


def fig1d(store, models, out, cfg: Mapping[str, Any]) -> dict:
    """PCA-Net (and the example RNO) at other test resolutions; PCA error against dimension."""
    from homlearn.models.pca import ComponentPCA

    p = cfg["pcanet"]
    n_max = max(p["train_sizes"])
    net, info = load_cp_paths2d_model(pcanet_dir(models, n_max))
    k = cfg["rno"]["example_k"]
    pm, sm, _, _ = _rno_pair(models, k)
    rows = []
    for steps in sorted(p["resolution_steps"]):
        d = load_path_histories(store, info["input"], "stress", steps, key="surrogates_cp_paths2d.pcanet.resolution_steps")
        te = d.subset(1)
        F, sig, t = d.extra["F"][te], d.extra["stress"][te], d.t
        rows.append({"steps": steps,
                     "pcanet": float(stress_errors(predict_pcanet(net, info, F, t), sig).mean()),
                     f"rno_k{k}": float(stress_errors(predict_rno(pm, sm, F, t), sig).mean())})
    # PCA alone ('pcanet' Fig. 1d): fit on the PCA-Net's training paths at its resolution
    d = load_path_histories(store, info["input"], "stress", cfg["train_steps"])
    tr, te = d.subset(0)[:n_max], d.subset(1)
    pca_rows = []
    for r in sorted(p["pca_dims"]):
        if r > len(d.t):
            continue
        res = {}
        for name, arr in (("output", d.y), ("input", d.x)):
            pca = ComponentPCA(len(d.t), arr.shape[-1], r).double().fit(torch.as_tensor(arr[tr]))
            rec = pca.reconstruct(torch.as_tensor(arr[te])).numpy()
            num = ((rec - arr[te]) ** 2).sum(axis=(1, 2))
            res[name] = float(np.sqrt(num / (arr[te] ** 2).sum(axis=(1, 2))).mean())
        pca_rows.append({"dim": r, "pca_output_relative_l2": res["output"], "pca_input_relative_l2": res["input"]})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    s = [r["steps"] for r in rows]
    axes[0].plot(s, [r["pcanet"] for r in rows], "o-", label=f"PCA-Net ({n_max} paths)")
    axes[0].plot(s, [r[f"rno_k{k}"] for r in rows], "s-", label=f"RNO k = {k}")
    axes[0].axvline(cfg["train_steps"], color="0.6", ls=":", label="training resolution")
    axes[0].set(xscale="log", yscale="log", xlabel="time steps of the test data", ylabel="test error",
                title="trained at one resolution, tested at others")
    axes[0].legend(fontsize=7)
    if pca_rows:
        dims = [r["dim"] for r in pca_rows]
        axes[1].plot(dims, [r["pca_output_relative_l2"] for r in pca_rows], "o-", label="PCA of the stress")
        axes[1].plot(dims, [r["pca_input_relative_l2"] for r in pca_rows], "s-", label="PCA of the stretch")
    axes[1].axhline(info["metrics"]["test"]["relative_l2"], color="C3", ls="--", label="PCA-Net test error")
    axes[1].set(xscale="log", yscale="log", xlabel="PCA dimension per component", ylabel="test error",
                title=f"PCA alone ({cfg['train_steps']} steps)")
    axes[1].legend(fontsize=7)
    fig.suptitle("cp_paths2d resolution (pcanet Fig. 1d)", fontsize=9)
    _save(fig, Path(out) / "fig1d_resolution.png")
    f = _facts(info, _store_cfg(store))
    errs = ", ".join(f"{r['steps']}: {100 * r['pcanet']:.1f}%" for r in rows)
    rerrs = ", ".join(f"{r['steps']}: {100 * r[f'rno_k{k}']:.1f}%" for r in rows)
    summary = [{"experiment": f"cp_paths2d PCA-Net trained at {cfg['train_steps']} steps, test error vs test "
                "steps (pcanet Fig. 1d)", "metric": errs,
                "paper": "independent of resolution, 50-1000 steps (trained at 200)",
                "data": _data_text(f), "epochs": _epochs_text(f), "hardware": f["hardware"]},
               {"experiment": f"cp_paths2d RNO k = {k} (pressure + deviatoric) at the same test steps",
                "metric": rerrs, "paper": "(not in pcanet; rno Fig. 10b on 3D Taylor data: flat)",
                "data": _data_text(f), "epochs": "see Fig. 7 rows", "hardware": f["hardware"]}]
    if pca_rows:
        pe = ", ".join(f"{r['dim']}: {100 * r['pca_output_relative_l2']:.2f}%" for r in pca_rows)
        summary.append({"experiment": "cp_paths2d PCA of the stress alone vs dimension (pcanet Fig. 1d)",
                        "metric": pe, "paper": "0.13% at 32 (Table SI-2 case 1); net error a few times it",
                        "data": _data_text(f), "epochs": "-", "hardware": f["hardware"]})
    return _write(Path(out), "fig1d", {"exemplar": "cp_paths2d", "experiment": "fig1d", "train_steps": cfg["train_steps"],
                                       "n_train": n_max, "rows": rows, "pca": pca_rows, "summary_rows": summary})


def fig7bc(store, models, out, cfg: Mapping[str, Any]) -> dict:
    """Deviatoric and pressure RNO test errors against k ('rno' Fig. 7b-c), example (Fig. 7e)."""
    ks = sorted(cfg["rno"]["k"])
    scfg = _store_cfg(store)
    rows = []
    for part in ("deviatoric", "pressure"):
        for k in ks:
            _, info = load_cp_paths2d_model(rno_dir(models, part, k))
            rows.append({"part": part, "k": k, "test_relative_l2": info["metrics"]["test"]["relative_l2"],
                         "train_relative_l2": info["metrics"]["train"]["relative_l2"], **_facts(info, scfg)})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, part, tag in ((axes[0], "deviatoric", "b"), (axes[1], "pressure", "c")):
        rs = [r for r in rows if r["part"] == part]
        ax.plot(ks, [r["test_relative_l2"] for r in rs], "o-", label=f"case {scfg.get('case', 'PH')}, test")
        ax.plot(ks, [r["train_relative_l2"] for r in rs], "s--", color="0.5", label="train")
        ax.set(yscale="log", xlabel="internal variables k", ylabel="relative L2 error", xticks=ks,
               title=f"{part} stress (rno Fig. 7{tag})")
        ax.legend(fontsize=7)
    _save(fig, Path(out) / "fig7bc_error_vs_k.png")
    k = cfg["rno"]["example_k"]
    sm, sinfo = load_cp_paths2d_model(rno_dir(models, "deviatoric", k))
    d = load_path_histories(store, "F", "deviatoric", cfg["train_steps"])
    te = d.subset(1)[:3]
    pred = _run(sm, d.x[te], d.t)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for j in range(len(te)):
        axes[0].plot(d.t, d.extra["F"][te[j], :, 0, 0], color=f"C{j}", label="F11" if j == 0 else None)
        axes[0].plot(d.t, d.extra["F"][te[j], :, 1, 1], ":", color=f"C{j}", label="F22" if j == 0 else None)
        axes[0].plot(d.t, d.extra["F"][te[j], :, 0, 1], "--", color=f"C{j}", label="F12" if j == 0 else None)
        for c, name in ((0, "s11"), (1, "s12")):
            axes[1 + c].plot(d.t, d.y[te[j], :, c], color=f"C{j}", label="truth" if j == 0 else None)
            axes[1 + c].plot(d.t, pred[j, :, c], "--", color=f"C{j}", label=f"RNO k = {k}" if j == 0 else None)
            axes[1 + c].set(xlabel="t (s)", ylabel=f"{name} (MPa)")
    axes[0].set(xlabel="t (s)", ylabel="mean F", title="test inputs (rno Fig. 7d)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    axes[1].set_title("deviatoric stress (rno Fig. 7e)", fontsize=9)
    _save(fig, Path(out) / "fig7e_deviatoric_prediction.png")
    summary = []
    for part, paper in (("deviatoric", "large at k = 0, small at k = 1-2, no gain beyond 2 (PH, P1-P3)"),
                        ("pressure", "small, independent of k (no history dependence)")):
        rs = [r for r in rows if r["part"] == part]
        summary.append({"experiment": f"cp_paths2d RNO {part} test error vs k (rno Fig. 7{'b' if part == 'deviatoric' else 'c'})",
                        "metric": ", ".join(f"k={r['k']}: {100 * r['test_relative_l2']:.2f}%" for r in rs),
                        "paper": paper, "data": _data_text(rs[0]), "epochs": _epochs_text(rs[0]),
                        "hardware": rs[0]["hardware"]})
    return _write(Path(out), "fig7bc", {"exemplar": "cp_paths2d", "experiment": "fig7bc", "rows": rows,
                                        "summary_rows": summary})


def fig1eg(store, models, named, out, cfg: Mapping[str, Any]) -> dict:
    """The named paths (pcanet Fig. 1e-g): solved truth against PCA-Net and RNO predictions."""
    from homlearn.datasets.cp_paths2d_named import NAMES, load_named_paths
    from homlearn.data.path_histories import check_steps

    ds = load_named_paths(named)
    if np.any(ds["status"].values != 0):
        raise ValueError(f"{named}: a named path did not converge (status {ds['status'].values.tolist()})")
    n_max = max(cfg["pcanet"]["train_sizes"])
    net, info = load_cp_paths2d_model(pcanet_dir(models, n_max))
    k = cfg["rno"]["example_k"]
    pm, sm, _, _ = _rno_pair(models, k)
    stride = check_steps(ds.sizes["step"] - 1, cfg["train_steps"], "surrogates_cp_paths2d.train_steps")
    t = ds["time"].values[::stride]
    F, sig = ds["F"].values[:, ::stride], ds["stress"].values[:, ::stride]
    preds = {"PCA-Net": predict_pcanet(net, info, F, t), f"RNO k = {k}": predict_rno(pm, sm, F, t)}
    errs = {m: stress_errors(p, sig) for m, p in preds.items()}
    titles = {"uniaxial": "uniaxial (Fig. 1e)", "load_unload": "load-unload (Fig. 1f)", "cavity": "cavity / shear (Fig. 1g)"}
    fig, axes = plt.subplots(1, len(NAMES), figsize=(12, 3.4))
    for i, name in enumerate(NAMES):
        ax = axes[i]
        for c, (a, b, lab) in enumerate(((0, 0, "sigma11"), (1, 1, "sigma22"))):
            ax.plot(t, sig[i, :, a, b], color=f"C{c}", label=f"{lab} truth")
            for m, ls in zip(preds, ("--", ":")):
                ax.plot(t, preds[m][i, :, a, b], ls, color=f"C{c}", label=f"{lab} {m}")
        ax.set(xlabel="t (s)", ylabel="Cauchy stress (MPa)",
               title=f"{titles[name]}: PCA-Net {100 * errs['PCA-Net'][i]:.0f}%, RNO {100 * errs[f'RNO k = {k}'][i]:.0f}%")
        ax.title.set_fontsize(8)
    axes[0].legend(fontsize=6)
    _save(fig, Path(out) / "fig1eg_named_paths.png")
    rows = [{"path": name, **{m: float(errs[m][i]) for m in preds}} for i, name in enumerate(NAMES)]
    f = _facts(info, _store_cfg(store))
    paper = {"uniaxial": "9% (Table SI-2 case 3)", "load_unload": "10% (case 4)", "cavity": "8% (case 5)"}
    summary = [{"experiment": f"cp_paths2d named path {r['path']} (pcanet Fig. 1{'efg'[i]})",
                "metric": ", ".join(f"{m}: {100 * r[m]:.1f}%" for m in preds), "paper": f"PCA-Net {paper[r['path']]}",
                "data": _data_text(f) + f"; amplitude {ds.attrs.get('amplitude')}", "epochs": _epochs_text(f),
                "hardware": f["hardware"]} for i, r in enumerate(rows)]
    return _write(Path(out), "fig1eg", {"exemplar": "cp_paths2d", "experiment": "fig1eg", "rows": rows,
                                        "summary_rows": summary})


def causality_paths(store, cfg: Mapping[str, Any]) -> dict:
    """F histories (P, T, 2, 2) on the training grid and times of the two causality sets of
    'pcanet' Fig. 2: ``diverging`` (a test path, then random branches after t_split T) and
    ``ramp_hold`` (isochoric uniaxial ramps to t_i, then held)."""
    from homlearn.loading.paths import (Paths, diverging_paths, identity_components, isochoric_lateral, ramp_hold,
                                        symmetric_from_components, upper_triangular_from_components)

    c = cfg["causality"]
    scfg = _store_cfg(store)
    d = load_path_histories(store, "F", "stress", cfg["train_steps"])
    t = d.t
    T = float(t[-1])
    base_F = d.extra["F"][d.subset(1)[0]]
    base = Paths(t=t.copy(), values=np.stack([base_F[:, 0, 0], base_F[:, 1, 1], base_F[:, 0, 1]], -1)[None])
    k = int(round(c["t_split"] * (len(t) - 1)))
    div = diverging_paths(base, float(t[k]), c["n_paths"], c["seed"],
                          max_value=scfg.get("max_strain", 0.1) / np.sqrt(T))
    ramp = isochoric_lateral(ramp_hold(len(t) - 1, T, c["amplitude"] / T, [h * T for h in c["hold_fractions"]],
                                       components=3, start=identity_components(2)), 2)
    return {"t": t, "t_split": float(t[k]), "t_holds": [h * T for h in c["hold_fractions"]],
            "diverging": upper_triangular_from_components(div.values, 2),
            "ramp_hold": symmetric_from_components(ramp.values, 2)}


def fig2(store, models, out, cfg: Mapping[str, Any]) -> dict:
    """Causality of PCA-Net and RNO on diverging and ramp-and-hold paths ('pcanet' Fig. 2)."""
    n_max = max(cfg["pcanet"]["train_sizes"])
    net, info = load_cp_paths2d_model(pcanet_dir(models, n_max))
    k = cfg["rno"]["example_k"]
    pm, sm, _, _ = _rno_pair(models, k)
    cp = causality_paths(store, cfg)
    t = cp["t"]
    res, preds = {}, {}
    for name in ("diverging", "ramp_hold"):
        F = cp[name]
        agree = agreement_index(F)
        for m, p in (("PCA-Net", predict_pcanet(net, info, F, t)), (f"RNO k = {k}", predict_rno(pm, sm, F, t))):
            preds[(name, m)] = p
            res[(name, m)] = causality_violation(p, agree)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    for j, name in enumerate(("diverging", "ramp_hold")):
        for i, m in enumerate(("PCA-Net", f"RNO k = {k}")):
            ax = axes[i, j]
            p = preds[(name, m)]
            for q in range(len(p)):
                ax.plot(t, p[q, :, 0, 0], color=f"C{q}")
            for tv in ([cp["t_split"]] if name == "diverging" else cp["t_holds"]):
                ax.axvline(tv, color="0.7", ls=":")
            ax.set(xlabel="t (s)", ylabel="predicted sigma11 (MPa)",
                   title=f"{m}, {'(a) diverging after t*' if name == 'diverging' else '(b) ramp, held from t_i'}: "
                         f"change before divergence {100 * res[(name, m)]:.2g}%")
            ax.title.set_fontsize(8)
    fig.suptitle("cp_paths2d causality (pcanet Fig. 2)", fontsize=9)
    _save(fig, Path(out) / "fig2_causality.png")
    rows = [{"paths": name, "model": m, "relative_change_before_divergence": v} for (name, m), v in res.items()]
    f = _facts(info, _store_cfg(store))
    summary = [{"experiment": f"cp_paths2d causality, {name.replace('_', '-')} paths (pcanet Fig. 2"
                f"{'a' if name == 'diverging' else 'b'}): largest stress change before the inputs diverge",
                "metric": ", ".join(f"{r['model']}: {100 * r['relative_change_before_divergence']:.2g}%"
                                    for r in rows if r["paths"] == name),
                "paper": "PCA-Net: identical before divergence (figure only); RNO: causal by construction",
                "data": _data_text(f), "epochs": _epochs_text(f), "hardware": f["hardware"]}
               for name in ("diverging", "ramp_hold")]
    return _write(Path(out), "fig2", {"exemplar": "cp_paths2d", "experiment": "fig2", "rows": rows,
                                      "t_split": cp["t_split"], "t_holds": cp["t_holds"], "summary_rows": summary})


def run_experiment(name: str, store, models, out, cfg: Mapping[str, Any], named=None) -> dict:
    """One experiment of :data:`EXPERIMENTS` (``fig1eg`` needs the ``named`` path store)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown cp_paths2d experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    Path(out).mkdir(parents=True, exist_ok=True)
    if name == "fig1eg":
        if named is None:
            raise ValueError("fig1eg needs the named-path store (--named)")
        return fig1eg(store, models, named, out, cfg)
    return {"fig1a": fig1a, "fig1d": fig1d, "fig7bc": fig7bc, "fig2": fig2}[name](store, models, out, cfg)
