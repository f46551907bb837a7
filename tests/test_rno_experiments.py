"""RNO experiments of paper 'rno' (homlearn.train.history, homlearn.evaluate.history) on real
small data: the session's single-N composite1d store and k = 1 RNO (conftest ``c1d_tiny_store``,
``c1d_tiny_rno``: E = 1 GPa, n = 3, sigma0 = 0.3 GPa, slow enough relaxation for forward Euler
at 50 steps), shared with test_history_models.py so the RNO is trained once per session."""

from __future__ import annotations

import json

import pytest

from homlearn.config import ConfigError, validate_config


@pytest.fixture(scope="module")
def c1d_models(c1d_tiny_rno, c1d_tiny_store):
    """The session's k = 1 E-VP RNO (conftest ``c1d_tiny_rno``: 30 train / 10 test paths at 100
    steps, 50 Adam + 15 L-BFGS epochs through train_history); a k = 0 RNO and a k = 1 VE RNO
    trained briefly beside it (the evaluation only needs them to exist)."""
    from homlearn.train.history import train_history

    models, info = c1d_tiny_rno
    hyper = {"width": 100, "depth": 4}
    short = {"lr": 1e-3, "batch_size": 30, "max_epochs": 5, "lbfgs_epochs": 1, "lbfgs_max_iter": 5,
             "loss": "relative_l2", "device": "cpu", "tensorboard": False, "patience": 100000}
    infos = {"k1": info}
    infos["k0"] = train_history(c1d_tiny_store, "composite1d", models / "rno_N1_k0", model="rno", k=0, group=1,
                                hyper=hyper, train_cfg=short, progress=False)
    infos["ve"] = train_history(c1d_tiny_store, "composite1d", models / "rno_ve_N1_k1", model="rno_ve", k=1, group=1,
                                hyper=hyper, train_cfg=short, progress=False)
    return models, infos


def test_rno_k1_reaches_2_percent_through_the_shared_trainer(c1d_models):
    """Adam (50 full-batch epochs) + 15 L-BFGS epochs: test error (eq. 16) under 2%; model.json
    holds config, fingerprint, epochs of both phases and the metrics."""
    models, infos = c1d_models
    info = infos["k1"]
    print("k=1 composite1d:", info["metrics"], info["training"]["seconds_total"])
    assert info["metrics"]["test"]["relative_l2"] < 0.02
    assert info["metrics"]["train"]["n"] == 30 and info["metrics"]["test"]["n"] == 10
    assert info["training"]["adam_epochs"] == 50 and info["training"]["lbfgs_epochs"] == 15
    assert len(info["dataset_fingerprint"]) == 64 and info["hyperparameters"]["k"] == 1
    assert json.loads((models / "rno_N1_k1" / "model.json").read_text()) == info


def test_composite1d_experiment_writes_metrics_and_figures(c1d_tiny_store, c1d_models, tmp_path):
    """The evaluation: error vs k table, affine fit of the internal variable (Fig. 1d), learned g,
    and the resolution study on the fine histories (trained at 100 steps, tested at 50..400)."""
    from homlearn.evaluate.history import C1D_FIGURES, evaluate_composite1d, write_summary

    models, _ = c1d_models
    res = {"segments": 1, "k": 1, "steps": [50, 100, 200, 400], "models": ["rno", "rno_ve"]}
    m = evaluate_composite1d(c1d_tiny_store, models, tmp_path, [1], [0, 1], res)
    for name in C1D_FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert (tmp_path / "metrics.csv").exists() and json.loads((tmp_path / "metrics.json").read_text()) == m
    assert [r["k"] for r in m["error_vs_k"]] == [0, 1]
    fit = m["internal_variable_fit"]
    assert fit["relative_residual"] < 0.2  # a learned xi is an affine image of <eps_p>
    # a monotone map includes the affine ones (up to the PCHIP smoothing of the isotonic fit)
    assert fit["monotone_residual"] <= fit["relative_residual"] + 0.01
    assert [f["N"] for f in m["internal_variable_fits"]] == [1]
    assert m["internal_variable_fits"][0]["monotone_residual"] == pytest.approx(fit["monotone_residual"])
    assert m["learned_f"]["map"] == "monotone" and m["learned_f"]["relative_l2"] < 0.2
    rows = {(r["model"], r["steps"]): r["test_relative_l2"] for r in m["resolution"]["rows"]}
    assert m["resolution"]["train_steps"] == 100 and len(rows) == 12
    print("resolution:", rows)
    assert rows[("rno", 50)] < 0.03 and rows[("rno", 400)] < 0.03  # E-VP: other resolutions too
    # the exact law under eq. 3 (the floor): first-order convergence (measured 2.55/1.25/0.62/0.31%)
    floor = [rows[("exact_eq3", s)] for s in (50, 100, 200, 400)]
    assert floor[0] < 0.03 and all(1.6 < a / b < 2.4 for a, b in zip(floor, floor[1:])), floor
    text = write_summary(tmp_path / "summary.md", [tmp_path / "metrics.json"])
    # the tiny store's F_max = 0.33 paths (|eps| up to 1.04) are labelled; the default amplitude
    # (|eps| <= 33%: F_max = 0.33 / sqrt(10 intervals x 1 s)) is not
    assert m["path_max_value"] == 0.33 and m["path_max_strain"] == pytest.approx(0.33 * 10 ** 0.5)
    assert "composite1d (paths max strain 1.04) N = 1" in text and "Fig. 10a" in text and "exact eq. 14-15 under" in text
    default = {**m, "path_max_value": 0.33 / 10 ** 0.5, "path_max_strain": 0.33}
    (tmp_path / "default.json").write_text(json.dumps(default))
    assert "| composite1d N = 1, error vs k" in write_summary(tmp_path / "s2.md", [tmp_path / "default.json"])


def test_monotone_fit_recovers_invertible_maps_and_not_others():
    """Fig. 1d's monotone map: an increasing or decreasing nonlinear image of the truth is recovered
    to < 0.5% (the affine map leaves 16-52%), with phi' within 5% of the exact slope in the
    interior; a non-monotone relation is not (> 50%); a constant learned variable is refused."""
    import numpy as np

    from homlearn.evaluate.history import affine_fit, monotone_fit

    rng = np.random.default_rng(0)
    l = rng.uniform(-1.0, 1.0, (50, 200))
    for truth, slope in ((0.01 * (np.exp(3 * l) - 1), 0.03 * np.exp(3 * l)), (-l ** 3 - l, -3 * l ** 2 - 1)):
        phi, res = monotone_fit(l, truth)
        assert res < 0.005 and affine_fit(l, truth)[2] > 0.15, res
        inner = np.abs(l) < 0.9
        assert np.allclose(phi.derivative()(l[inner]), slope[inner], rtol=0.05, atol=0.02 * np.abs(slope).max())
    assert monotone_fit(l, np.cos(3 * l))[1] > 0.5
    with pytest.raises(ValueError, match="fewer than 3 distinct"):
        monotone_fit(np.zeros((5, 10)), l[:5, :10])


def test_wrong_rno_training_key_is_refused_with_its_name():
    with pytest.raises(ConfigError, match="learning_rate"):
        validate_config({"rno": {"composite1d": {"train": {"learning_rate": 0.1}}}})
    with pytest.raises(ConfigError, match="rno.composite1d.resolution.k"):
        validate_config({"rno": {"composite1d": {"k": [0, 2]}}})
    cfg = validate_config({})["rno"]
    assert (cfg["composite1d"]["width"], cfg["laminate"]["width"], cfg["composite1d"]["train"]["loss"]) == \
        (100, 200, "relative_l2")


def test_resolution_steps_that_do_not_divide_the_fine_grid_are_refused(c1d_tiny_store, tmp_path):
    from homlearn.evaluate.history import resolution_study

    with pytest.raises(ValueError, match=r"resolution steps \[30, 300\] must divide the fine grid's 400 steps"):
        resolution_study(c1d_tiny_store, tmp_path, 1, 1, [50, 30, 300], ["rno"])
