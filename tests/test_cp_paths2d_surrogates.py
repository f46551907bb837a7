"""cp_paths2d surrogate experiments (pcanet Fig. 1a, 1d, 1e-g, 2; rno Fig. 7b-c) on a real tiny
cp_paths2d store (4x4 cell, 2 grains, 12 paths of 20 solver steps stored at every step, FFT
crystal plasticity), solved here.

Checks: the adapter's arrays are the store's (F - I to 1e-15, Mandel stress to 1e-12, pressure
equal to the stored one to 1e-12 of its size, -p I + s = sigma to 1e-12, R U = F to 1e-12, the
stretch-frame stress has the Frobenius norm of sigma to 1e-12); the path solver given a stored F
reproduces its stored stress to 1e-7 (the batch-independence tolerance of the dataset); the named
paths are isochoric to 1e-12; a PCA-Net trained at 10 steps evaluates at 5 and 20 steps and at
20 steps equals its 10-step output at the shared times to 1e-5; the RNO changes its prediction
before the inputs diverge by under 1e-6 (round-off) while the PCA-Net does by more than 1e-4;
every experiment writes its figures and summary rows; bad config is refused naming the key;
a Snakemake dry run of the named target plans every model and experiment.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from homlearn.config import ConfigError, validate_config

N_STEPS = 20


def _cfg(**sur):
    base = {"train_steps": 10,
            "pcanet": {"n_components": 6, "hidden": [32, 32], "train_sizes": [5, 9], "epochs_at": [5, 40],
                       "resolution_steps": [5, 10, 20], "pca_dims": [2, 6],
                       "train": {"max_epochs": 40, "lr": 1e-3, "batch_size": 9, "device": "cpu", "tensorboard": False}},
            "rno": {"k": [0, 1], "example_k": 1, "width": 16, "depth": 2, "n_train": 0,
                    "train": {"max_epochs": 3, "batch_size": 9, "device": "cpu", "tensorboard": False}},
            "causality": {"t_split": 0.5, "n_paths": 3, "hold_fractions": [0.3, 0.6, 1.0]}}
    base.update(sur)
    return validate_config({"cp_paths2d": {"grid": 4, "n_grains": 2, "n_paths": 12, "n_steps": N_STEPS,
                                           "n_stored": N_STEPS, "max_strain": 0.02, "batch_size": 12, "device": "cpu",
                                           "split": {"fractions": [0.75, 0.0, 0.25]}},
                            "dask": {"progress": False}, "surrogates_cp_paths2d": base})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from homlearn.datasets.cp_paths2d import run_solve_stage

    cfg = _cfg()
    root = tmp_path_factory.mktemp("cp_sur")
    rep = run_solve_stage(cfg["cp_paths2d"], cfg["dask"], root / "cp.zarr", 1)
    assert rep.samples_done == 12
    return cfg, root / "cp.zarr", root


@pytest.fixture(scope="module")
def models(tiny):
    """PCA-Nets on 5 and 9 training paths, pressure and deviatoric RNOs for k = 0, 1."""
    from homlearn.train.cp_paths2d import train_cp_paths2d

    cfg, store, root = tiny
    sur = cfg["surrogates_cp_paths2d"]
    out = root / "models"
    infos = {f"pcanet_n{n}": train_cp_paths2d(store, out / f"pcanet_n{n}", "pcanet", sur, n_train=n, progress=False)
             for n in sur["pcanet"]["train_sizes"]}
    for part in ("pressure", "deviatoric"):
        for k in sur["rno"]["k"]:
            infos[f"rno_{part}_k{k}"] = train_cp_paths2d(store, out / f"rno_{part}_k{k}", f"rno_{part}", sur, k=k,
                                                         progress=False)
    return out, infos


def test_adapter_arrays_equal_the_store(tiny):
    from homlearn.data.path_histories import load_path_histories, polar

    _, store, _ = tiny
    ds = xr.open_zarr(store)
    F, sig = ds["F"].values, ds["stress"].values
    d = load_path_histories(store, "F", "stress")
    assert d.x.shape == (12, N_STEPS + 1, 3) and np.array_equal(d.t, ds["time"].values[0])
    assert np.abs(d.x - np.stack([F[..., 0, 0] - 1, F[..., 1, 1] - 1, F[..., 0, 1]], -1)).max() <= 1e-15
    shear = 0.5 * (sig[..., 0, 1] + sig[..., 1, 0])        # stored sigma is symmetric to solver tolerance
    assert np.abs(d.y - np.stack([sig[..., 0, 0], sig[..., 1, 1], np.sqrt(2) * shear], -1)).max() \
        <= 1e-12 * np.abs(sig).max()
    store_split = ds["split"].values
    assert np.array_equal(d.split == 1, store_split == 2) and np.array_equal(d.split == 0, store_split == 0)
    p = load_path_histories(store, "F", "pressure").y[..., 0]
    s = load_path_histories(store, "F", "deviatoric").y
    assert np.abs(p - ds["pressure"].values).max() <= 1e-12 * np.abs(p).max()
    rebuilt = np.stack([np.stack([s[..., 0] - p, s[..., 1]], -1), np.stack([s[..., 1], -s[..., 0] - p], -1)], -2)
    assert np.abs(rebuilt - 0.5 * (sig + np.swapaxes(sig, -1, -2))).max() <= 1e-12 * np.abs(sig).max()
    R, U = polar(F)
    assert np.abs(R @ U - F).max() <= 1e-12 and np.abs(U - np.swapaxes(U, -1, -2)).max() <= 1e-15
    u = load_path_histories(store, "U", "stress", steps=10)
    assert u.x.shape == (12, 11, 3) and np.array_equal(u.t, d.t[::2])
    ratio = np.linalg.norm(u.y, axis=-1) / np.maximum(np.linalg.norm(d.y[:, ::2], axis=-1), 1e-300)
    assert np.abs(ratio[:, 1:] - 1).max() <= 1e-12          # rotation keeps the Frobenius norm
    with pytest.raises(ValueError, match="surrogates_cp_paths2d.train_steps"):
        load_path_histories(store, "U", "stress", steps=7)


def test_path_solver_reproduces_a_stored_path_and_named_paths_are_isochoric(tiny):
    from homlearn.datasets.cp_paths2d import solve_deformation_paths
    from homlearn.datasets.cp_paths2d_named import named_stretch_paths

    cfg, store, _ = tiny
    cp = cfg["cp_paths2d"]
    ds = xr.open_zarr(store)
    i = int(np.flatnonzero(ds["cutbacks"].values == ds["cutbacks"].values.max())[0])  # the hardest path
    Fm, sigma, res = solve_deformation_paths(cp, ds["F"].values[i:i + 1])
    stored = ds["stress"].values[i]
    assert int(res.status[0]) == 0
    assert np.abs(sigma[0] - stored).max() <= 1e-7 * np.abs(stored).max()
    assert np.abs(stored).max() > 100.0                    # the path yields (tau0 = 100 MPa)
    t, U = named_stretch_paths(cp, 0.1)
    assert U.shape == (3, N_STEPS + 1, 2, 2) and np.allclose(t, np.linspace(0, cp["t_final"], N_STEPS + 1))
    assert np.abs(np.linalg.det(U) - 1).max() <= 1e-12 and np.all(U[:, :, 0, 1] == 0)
    assert U[0, -1, 0, 0] == pytest.approx(1.1, abs=1e-12) and U[2, -1, 1, 1] == pytest.approx(1.1, abs=1e-12)
    assert U[1, N_STEPS // 2, 0, 0] == pytest.approx(1.1, abs=1e-12) and U[1, -1, 0, 0] == pytest.approx(1.0)


def test_pcanet_trained_at_one_resolution_evaluates_at_others(tiny, models):
    from homlearn.data.path_histories import load_path_histories
    from homlearn.evaluate.cp_paths2d import predict_pcanet, stress_errors
    from homlearn.train.cp_paths2d import load_cp_paths2d_model

    _, store, _ = tiny
    out, infos = models
    info = infos["pcanet_n9"]
    assert info["n_time"] == 11 and info["metrics"]["train"]["n"] == 9 and info["metrics"]["test"]["n"] == 3
    curve = info["test_at_epochs"]
    assert [r["epoch"] for r in curve] == [5, 40] and curve[1]["train_relative_l2"] < curve[0]["train_relative_l2"]
    print("PCA-Net n=9:", info["metrics"], curve)
    net, info = load_cp_paths2d_model(out / "pcanet_n9")
    preds, errs = {}, {}
    for steps in (5, 10, 20):
        d = load_path_histories(store, "U", "stress", steps)
        te = d.subset(1)
        preds[steps] = predict_pcanet(net, info, d.extra["F"][te], d.t)
        errs[steps] = float(stress_errors(preds[steps], d.extra["stress"][te]).mean())
        assert preds[steps].shape == (3, steps + 1, 2, 2) and np.isfinite(preds[steps]).all()
    print("PCA-Net test error at 5/10/20 steps:", errs)
    assert np.abs(preds[20][:, ::2] - preds[10]).max() <= 1e-5 * np.abs(preds[10]).max()
    assert errs[10] == pytest.approx(info["metrics"]["test"]["relative_l2"], rel=1e-4)


def test_rno_is_causal_to_round_off_pcanet_is_not(tiny, models):
    from homlearn.evaluate.cp_paths2d import (agreement_index, causality_paths, causality_violation,
                                              predict_pcanet, predict_rno)
    from homlearn.train.cp_paths2d import load_cp_paths2d_model

    cfg, store, _ = tiny
    out, _ = models
    cp = causality_paths(store, cfg["surrogates_cp_paths2d"])
    F, t = cp["diverging"], cp["t"]
    agree = agreement_index(F)
    assert agree[0, 1] == 5 and np.all(np.abs(F[:, :6] - F[:1, :6]) == 0) and np.abs(F[0, 6:] - F[1, 6:]).max() > 0
    pm, _ = load_cp_paths2d_model(out / "rno_pressure_k1")
    sm, _ = load_cp_paths2d_model(out / "rno_deviatoric_k1")
    rno = causality_violation(predict_rno(pm, sm, F, t), agree)
    net, info = load_cp_paths2d_model(out / "pcanet_n9")
    pca = causality_violation(predict_pcanet(net, info, F, t), agree)
    print(f"causality: RNO {rno:.2e}, PCA-Net {pca:.2e}")
    assert rno <= 1e-6 and pca > 1e-4
    ramp = cp["ramp_hold"]
    assert np.abs(np.linalg.det(ramp) - 1).max() <= 1e-12
    assert causality_violation(predict_rno(pm, sm, ramp, t), agreement_index(ramp)) <= 1e-6


def test_experiments_write_figures_metrics_and_summary(tiny, models, tmp_path):
    from homlearn.datasets.cp_paths2d_named import NAMES, solve_named_paths
    from homlearn.evaluate.cp_paths2d import EXPERIMENTS, run_experiment
    from homlearn.evaluate.history import write_summary

    cfg, store, root = tiny
    out, _ = models
    sur = cfg["surrogates_cp_paths2d"]
    named = tmp_path / "named.zarr"
    rep = solve_named_paths(cfg["cp_paths2d"], 0.02, named, "cpu")
    assert rep["status"] == [0, 0, 0] and rep["paths"] == list(NAMES)
    sig = xr.open_zarr(named, consolidated=False)["stress"].values
    assert sig[0, -1, 0, 0] > 0 > sig[0, -1, 1, 1]          # stretched along 1, shortened along 2
    files = []
    for name, figures in EXPERIMENTS.items():
        m = run_experiment(name, store, out, tmp_path, sur, named=named)
        for f in figures:
            assert (tmp_path / f"{f}.png").stat().st_size > 5000
        assert json.loads((tmp_path / f"metrics_{name}.json").read_text()) == m and m["summary_rows"]
        files.append(tmp_path / f"metrics_{name}.json")
    d = json.loads((tmp_path / "metrics_fig1d.json").read_text())
    assert [r["steps"] for r in d["rows"]] == [5, 10, 20] and [r["dim"] for r in d["pca"]] == [2, 6]
    assert d["pca"][1]["pca_output_relative_l2"] < d["pca"][0]["pca_output_relative_l2"]
    c = {(r["paths"], r["model"]): r["relative_change_before_divergence"]
         for r in json.loads((tmp_path / "metrics_fig2.json").read_text())["rows"]}
    assert c[("diverging", "RNO k = 1")] <= 1e-6
    text = write_summary(tmp_path / "summary.md", files)
    assert "pcanet Fig. 1a" in text and "rno Fig. 7b" in text and "Table SI-2" in text and "4x4 cell" in text


def test_bad_config_is_refused_with_its_key(tiny):
    from homlearn.train.cp_paths2d import train_cp_paths2d

    with pytest.raises(ConfigError, match="surrogates_cp_paths2d.rno.example_k"):
        validate_config({"surrogates_cp_paths2d": {"rno": {"k": [0, 1], "example_k": 3}}})
    with pytest.raises(ConfigError, match="learning_rate"):
        validate_config({"surrogates_cp_paths2d": {"pcanet": {"train": {"learning_rate": 1}}}})
    cfg, store, root = tiny
    sur = _cfg(pcanet={**cfg["surrogates_cp_paths2d"]["pcanet"], "n_components": 12})["surrogates_cp_paths2d"]
    with pytest.raises(ValueError, match="surrogates_cp_paths2d.pcanet.n_components"):
        train_cp_paths2d(store, root / "bad", "pcanet", sur, progress=False)
    with pytest.raises(ValueError, match="training split has 9"):
        train_cp_paths2d(store, root / "bad", "pcanet", cfg["surrogates_cp_paths2d"], n_train=50, progress=False)


def test_rules_plan_every_model_and_experiment(tmp_path):
    """A Snakemake dry run of the default config: the surrogates_cp_paths2d target plans every
    PCA-Net training size, every RNO (part, k), the named-path solve and the experiments."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    snake = [sys.executable, "-m", "snakemake", "surrogates_cp_paths2d", "-n", "--cores", "1",
             "--config", f"results={tmp_path}"]
    run = subprocess.run(snake, cwd=root, capture_output=True, text=True)
    jobs = run.stdout + run.stderr
    assert run.returncode == 0, jobs[-3000:]
    counts = dict(line.split()[:2] for line in jobs.splitlines() if line.split()[:1] and line.split()[0] in (
        "pcanet_cp_paths2d_train", "rno_cp_paths2d_train", "cp_paths2d_named_solve", "surrogates_cp_paths2d_fig1a",
        "surrogates_cp_paths2d_fig7bc", "surrogates_cp_paths2d_summary"))
    assert counts == {"pcanet_cp_paths2d_train": "2", "rno_cp_paths2d_train": "6", "cp_paths2d_named_solve": "1",
                      "surrogates_cp_paths2d_fig1a": "1", "surrogates_cp_paths2d_fig7bc": "1",
                      "surrogates_cp_paths2d_summary": "1"}, jobs[-3000:]
