"""mg_taylor surrogate experiments (paper 'rno' 5.2, Fig. 8-9; 'pcanet' SI-C) on real small data:
the 3D J2 Johnson-Cook law (closed form, 1D equivalence, isotropy, least-squares recovery), the
data adapter against the store, the Taylor classical tests, the isotropy measure, and one
pass of training + evaluation on a tiny Taylor store (8 grains, 20 steps), plus the workflow DAG.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from homlearn.config import ConfigError, validate_config
from homlearn.datasets.mg_taylor_classical import (components, isochoric_uniaxial, polar_stretch, random_rotations,
                                                   rotate)
from homlearn.evaluate.mg_taylor import invariance_error, isotropy_of
from homlearn.loading.paths import identity_components, random_paths, symmetric_from_components
from homlearn.models.johnson_cook import (JohnsonCook1D, JohnsonCookJ2, JohnsonCookJ2Params, fit_johnson_cook_j2,
                                          hencky_strain)

ROOT = Path(__file__).resolve().parents[1]
T = np.linspace(0.0, 1e-5, 201)


def _random_stretch(n, seed=0, n_steps=100, max_value=0.1):
    p = random_paths(n, 6, max_value=max_value, n_steps=n_steps, seed=seed, start=identity_components(3))
    return symmetric_from_components(p.values, 3), p.t * 1e-5


def test_j2_return_map_closed_form_linear_hardening():
    """Isochoric uniaxial stretch (Hencky strain e diag(1, -1/2, -1/2)), linear hardening, no rate
    term: q = (3G e - A) / (3G + B) once yielded and sigma_11 - sigma_22 = 3G (e - q), no
    pressure, sigma_22 = sigma_33 (to 1e-9 of the stress). Hydrostatic stretch l I: elastic,
    sigma = K ln(l^3) / l^3 I."""
    p = JohnsonCookJ2Params(G=17000.0, K=45000.0, A=60.0, B=300.0, n=1.0, C=0.0)
    e = np.linspace(0.0, 0.05, 201)
    h = JohnsonCookJ2(p).simulate(isochoric_uniaxial(e), T)
    q = np.maximum(0.0, (3 * p.G * e - p.A) / (3 * p.G + p.B))
    s = h.stress[0]
    scale = np.abs(s).max()
    assert q[-1] > 0.04  # it yields early
    assert np.abs(h.accumulated[0] - q).max() <= 1e-12
    assert np.abs(s[:, 0, 0] - s[:, 1, 1] - 3 * p.G * (e - q)).max() <= 1e-9 * scale
    assert np.abs(s[:, 1, 1] - s[:, 2, 2]).max() <= 1e-9 * scale
    assert np.abs(np.trace(s, axis1=-2, axis2=-1)).max() <= 1e-9 * scale
    lam = np.linspace(1.0, 0.97, 11)
    hyd = JohnsonCookJ2(p)(lam[:, None, None] * np.eye(3), T[:11])[0]
    assert np.allclose(hyd, (p.K * np.log(lam ** 3) / lam ** 3)[:, None, None] * np.eye(3), rtol=0, atol=1e-9 * p.K)


def test_j2_equals_the_1d_law_on_isochoric_paths_with_rate_term():
    """On an isochoric tension-compression path the J2 radial return is the 1D Johnson-Cook law
    with E = 3G (rate term and power hardening included): sigma_11 - sigma_22 equals the 1D
    stress to 1e-10 relative."""
    p = JohnsonCookJ2Params(G=17000.0, K=45000.0, A=60.0, B=300.0, n=0.4, C=0.05, rate0=1e3)
    e = 0.04 * np.sin(3 * np.pi * np.linspace(0, 1, 201))
    s = JohnsonCookJ2(p)(isochoric_uniaxial(e), T)[0]
    one_d = JohnsonCook1D(p.scalar())(e, T)[0]
    assert np.abs(one_d).max() > 100
    assert np.abs(s[:, 0, 0] - s[:, 1, 1] - one_d).max() <= 1e-10 * np.abs(one_d).max()


def test_isotropy_measure_zero_for_j2_and_not_for_anisotropic_law():
    """invariance_error of the (isotropic) J2 law under random rotations: < 1e-12; of a linear
    law with a cubic stiffness (anisotropic): > 1%."""
    p = JohnsonCookJ2Params(G=17000.0, K=45000.0, A=60.0, B=300.0, n=0.4, C=0.05, rate0=1e3)
    U, t = _random_stretch(3)
    rots = random_rotations(6, 1).reshape(3, 2, 3, 3)

    def jc(stretch):
        return components(JohnsonCookJ2(p)(symmetric_from_components(stretch, 3), t))

    def cubic(stretch):  # small strain, cubic: C11 = 3, C12 = 1, C44 = 2 (2 C44 != C11 - C12)
        e = stretch - identity_components(3)
        out = e[..., :3] * 2.0 + e[..., :3].sum(-1, keepdims=True)
        return np.concatenate([out, 4.0 * e[..., 3:]], -1)

    assert isotropy_of(jc, components(U), rots).max() < 1e-12
    assert isotropy_of(cubic, components(U), rots).min() > 0.01
    # invariance_error itself: a response that rotates exactly gives zero
    S = jc(components(U))
    Sr = components(rotate(symmetric_from_components(S, 3)[:, None], rots))
    assert invariance_error(S, Sr, rots).max() < 1e-13


def test_j2_fit_recovers_its_own_parameters():
    """Uniaxial-type tests at three rates and one random path simulated by the J2 law; least
    squares from a start 20-50% off recovers G, K, A, B, n, C to 1e-5 relative."""
    true = JohnsonCookJ2Params(G=17000.0, K=45000.0, A=60.0, B=300.0, n=0.4, C=0.05, rate0=1e3)
    e = np.linspace(0.0, 0.08, 41)
    Ur, _ = _random_stretch(1, seed=4, n_steps=40)
    U = np.concatenate([np.stack([isochoric_uniaxial(e)] * 3), Ur])
    t = np.stack([T[:41], 10 * T[:41], 100 * T[:41], T[:41]])
    S = JohnsonCookJ2(true)(U, t)
    start = JohnsonCookJ2Params(G=21000.0, K=35000.0, A=40.0, B=400.0, n=0.6, C=0.03, rate0=1e3)
    fit, res = fit_johnson_cook_j2(U, S, t, start)
    assert res.success
    for name in ("G", "K", "A", "B", "n", "C"):
        assert abs(getattr(fit, name) / getattr(true, name) - 1) < 1e-5, (name, getattr(fit, name))


def test_hencky_and_polar():
    """ln U of a rotated diagonal stretch; F = R U with R a rotation and U symmetric (1e-12)."""
    R = random_rotations(1, 3)[0]
    U = R @ np.diag([1.1, 0.9, 1.05]) @ R.T
    assert np.allclose(hencky_strain(U), R @ np.diag(np.log([1.1, 0.9, 1.05])) @ R.T, atol=1e-12)
    F = R @ U
    R2, U2 = polar_stretch(F)
    assert np.allclose(R2, R, atol=1e-12) and np.allclose(U2, U, atol=1e-12)


# ----------------------------------------------------------------------------- tiny Taylor data

MG = {"n_grains": 8, "n_steps": 20, "n_stored": 5, "batch_size": 16,
      "cases": [{"name": "r10", "max_strain": 0.1, "intervals": "uniform", "n_paths": 16, "seed": 0}]}
RNO = {"k": [0, 1], "k_best": 1, "train_sizes": [6, 12], "width": 16, "depth": 2,
       "train": {"batch_size": 12, "max_epochs": 3, "lbfgs_epochs": 1, "lbfgs_max_iter": 3, "tensorboard": False,
                 "device": "cpu"},
       "pcanet": {"r_in": 4, "r_out": 4, "hidden": [16], "train": {"batch_size": 12, "max_epochs": 3,
                                                                    "tensorboard": False, "device": "cpu"}},
       "calibration": {"rates": [1000.0, 10000.0], "max_strain": 0.05},
       "isotropy": {"n_angles": 3, "n_paths": 2, "n_rotations": 1}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 16-path Taylor store (8 grains, 20 steps stored at 5) and its classical solves."""
    from homlearn.datasets.mg_taylor import run_solve_stage
    from homlearn.datasets.mg_taylor_classical import solve_classical, write_classical_store

    root = tmp_path_factory.mktemp("mgx")
    cfg = validate_config({"mg_taylor": MG, "rno": {"mg_taylor": RNO}, "dask": {"progress": False}})
    store = root / "mg_taylor_r10.zarr"
    rep = run_solve_stage(cfg["mg_taylor"], cfg["dask"], "r10", store, 1)
    assert rep.samples_done == 16
    res = solve_classical(cfg["mg_taylor"], "r10", store, cfg["rno"]["mg_taylor"])
    write_classical_store(root / "classical.zarr", res)
    return cfg, store, root, res


def test_adapter_arrays_equal_the_store(tiny):
    import xarray as xr

    from homlearn.train.mg_taylor import TEST, TRAIN, load_mg_taylor_data, split_targets, stress_from_split, training_rows

    cfg, store, _, _ = tiny
    ds = xr.open_zarr(store)
    d = load_mg_taylor_data(store)
    assert np.array_equal(d.ids, np.flatnonzero(ds.status.values == 1))
    assert np.array_equal(d.stretch(), ds.stretch.values[d.ids]) or np.allclose(d.stretch(), ds.stretch.values[d.ids],
                                                                                  rtol=0, atol=1e-15)
    assert np.array_equal(d.x + identity_components(3), d.stretch()) and np.all(d.x[:, 0] == 0)
    assert np.array_equal(d.y, ds.stress.values[d.ids]) and d.y.shape == (16, 6, 6)
    assert np.array_equal(d.t, ds.time.values) and np.array_equal(d.split, ds.split.values[d.ids])
    assert d.duration == cfg["mg_taylor"]["duration"]
    tr = d.subset(TRAIN)
    assert np.array_equal(training_rows(d, 5), tr[:5]) and len(d.subset(TEST)) > 0
    z = split_targets(d.y)  # pressure and independent deviator (eq. 28), and back
    assert np.allclose(z[..., 0], -np.trace(symmetric_from_components(d.y, 3), axis1=-2, axis2=-1) / 3, atol=1e-9)
    assert np.allclose(stress_from_split(z), d.y, rtol=0, atol=1e-9 * np.abs(d.y).max())
    with pytest.raises(ValueError, match="rno.mg_taylor.train_sizes"):
        training_rows(d, len(tr) + 1)


def test_classical_tests_are_uniaxial_and_consistent(tiny):
    """Calibration: the stress is uniaxial (in U's frame along R^T e1: two principal stresses
    < 1e-6 of the third), U lateral < 1 and axial log strain = rate t (to 5e-5: U is F's stretch);
    theta = 0 of the isotropy
    sweep is the uniaxial tension path (same stress to 1e-10); classical paths start unloaded."""
    cfg, _, _, res = tiny
    cal = res["calibration"]
    for i, rate in enumerate(cal["rate"]):
        w = np.linalg.eigvalsh(symmetric_from_components(cal["stress"][i], 3))
        assert np.abs(w[:, :2]).max() <= 1e-6 * w[:, 2].max() and w[-1, 2] > 0
        # F_11 = exp(rate t); U = (F^T F)^1/2 differs from F by the aggregate's small shear
        assert np.allclose(np.log(cal["stretch"][i, :, 0]), rate * cal["time"][i], rtol=0, atol=1e-3 * 0.05)
        assert np.all(cal["stretch"][i, 1:, 1:3] < 1.0)
    assert cal["stress"][1, -1, 0] > 1.5 * cal["stress"][0, -1, 0]  # rate sensitive (m = 0.5)
    k = res["path_names"].index("uniaxial_tension")
    assert np.allclose(res["theta"]["stress"][0], res["classical"]["stress"][k], rtol=0,
                       atol=1e-10 * np.abs(res["classical"]["stress"][k]).max())
    assert np.all(res["classical"]["stress"][:, 0] == 0)


def test_train_fit_evaluate_and_summary(tiny, tmp_path):
    """RNO (k = 0, 1; pressure/deviator split) and PCA-Net through the shared trainer, the J2 Johnson-Cook fit, the
    evaluation (figures, metrics, summary rows) and the summary table. The Taylor model with 8
    grains is anisotropic (invariance error > 1e-4), the J2 law is not (< 1e-10)."""
    from homlearn.evaluate.history import write_summary
    from homlearn.evaluate.mg_taylor import FIGURES, evaluate_mg_taylor
    from homlearn.train.mg_taylor import fit_jc, load_mg_model, train_mg_taylor

    cfg, store, root, _ = tiny
    mg = cfg["rno"]["mg_taylor"]
    models = tmp_path / "models"
    for k, n in ((0, 12), (1, 12), (1, 6)):
        info = train_mg_taylor(store, models / f"rno_k{k}_n{n}", model="rno", k=k, n_train=n,
                               hyper={"width": 16, "depth": 2}, train_cfg=mg["train"], progress=False)
        assert info["metrics"]["train"]["n"] == n and info["training"]["lbfgs_epochs"] == 1
    for n in (6, 12):
        info = train_mg_taylor(store, models / f"pcanet_n{n}", model="pcanet", n_train=n,
                               hyper={k: mg["pcanet"][k] for k in ("r_in", "r_out", "hidden", "scale")},
                               train_cfg=mg["pcanet"]["train"], progress=False)
    rno, info = load_mg_model(models / "rno_k1_n12")  # default target: pressure RNO (k = 0) + deviatoric RNO (k)
    assert info["hyperparameters"]["target"] == "split"
    assert rno.rno.pressure.k == 0 and rno.rno.deviatoric.k == 1 and rno.rno.deviatoric.c_out == 5
    assert 0 < info["metrics"]["test"]["deviatoric_l2"]
    net, info = load_mg_model(models / "pcanet_n12")
    assert info["hyperparameters"]["r_in"] == 4 and net.pca_in.n_components == 4
    jc = fit_jc(root / "classical.zarr", models / "jc", mg["calibration"])
    assert jc["fit_success"] and max(jc["fit_relative_l2"]) < 0.5
    m = evaluate_mg_taylor(store, root / "classical.zarr", models, tmp_path / "out", mg)
    for name in FIGURES:
        assert (tmp_path / "out" / f"{name}.png").stat().st_size > 1000
    assert [r["k"] for r in m["error_vs_k"]] == [0, 1]
    assert [(r["model"], r["n_train"]) for r in m["error_vs_size"]] == [("rno", 6), ("rno", 12), ("pcanet", 6),
                                                                      ("pcanet", 12)]
    iso = m["isotropy"]
    assert iso["invariance_error"]["Johnson-Cook"] < 1e-10 and iso["invariance_error"]["Taylor"] > 1e-4
    assert iso["theta_spread"]["Johnson-Cook"] < 1e-10
    assert 0 < m["johnson_cook"]["test_relative_l2"] < 5
    text = write_summary(tmp_path / "summary.md", [tmp_path / "out" / "metrics.json"])
    assert "mg_taylor RNO error vs k (rno Fig. 8a)" in text and "pcanet SI-C" in text
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["exemplar"] == "mg_taylor"


def test_config_errors_name_the_key():
    from homlearn.cli_mg_taylor import _section

    with pytest.raises(ConfigError, match="rno.mg_taylor.k_best"):
        validate_config({"rno": {"mg_taylor": {"k_best": -1}}})
    cfg = validate_config({"mg_taylor": MG, "rno": {"mg_taylor": {"case": "r50"}}})
    with pytest.raises(ConfigError, match="'rno.mg_taylor.case'"):
        _section(cfg)


def test_snakemake_dag_of_rno_mg_taylor(tmp_path):
    """The named target plans one training job per distinct model (k sweep at the largest size,
    sizes at k_best, PCA-Net per size), the classical solve, the fit and the evaluation."""
    import yaml

    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "mg_taylor": MG, "rno": {"mg_taylor": RNO}}))
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "rno_mg_taylor", "--configfile",
                          str(cfgfile)], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-2000:]
    out = dry.stdout
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
              if line.startswith("rno_mg_taylor") and len(line.split()) == 2}
    assert counts == {"rno_mg_taylor_classical": 1, "rno_mg_taylor_train_pcanet": 2, "rno_mg_taylor_train_rno": 3,
                      "rno_mg_taylor_jc": 1, "rno_mg_taylor_evaluate": 1, "rno_mg_taylor": 1}, out[-1500:]
