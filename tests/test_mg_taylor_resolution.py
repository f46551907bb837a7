"""rno Fig. 10b on mg_taylor (homlearn.evaluate.mg_taylor_resolution) with real tiny Taylor stores:
the store with every solver step holds the training store's paths bitwise, the Taylor model
re-solved on them reproduces the stored stress and converges as its step shrinks, the study at
the training step reproduces each model's own test error, bad inputs are refused by name, and a
real Snakemake run of the target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from homlearn.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
MG = {"n_grains": 8, "n_steps": 20, "n_stored": 5, "batch_size": 16,
      "cases": [{"name": "r10", "max_strain": 0.1, "intervals": "uniform", "n_paths": 16, "seed": 0}]}
TRAIN = {"batch_size": 12, "max_epochs": 3, "lbfgs_epochs": 0, "tensorboard": False, "device": "cpu"}
RNO = {"k": [1], "k_best": 1, "train_sizes": [12], "width": 16, "depth": 2, "train": TRAIN,
       "pcanet": {"r_in": 4, "r_out": 4, "hidden": [16], "train": TRAIN},
       "resolution": {"k": [1], "models": ["rno", "rno_ve", "pcanet"], "steps": [5, 10, 20]}}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The 16-path case stored at 5 of its 20 solver steps, the same case with all 20 stored, and
    the models of the study trained on the first (3 Adam epochs each)."""
    from homlearn.datasets.mg_taylor import run_solve_stage
    from homlearn.train.mg_taylor import train_mg_taylor

    root = tmp_path_factory.mktemp("mgres")
    cfg = validate_config({"mg_taylor": MG, "rno": {"mg_taylor": RNO}, "dask": {"progress": False}})
    store, fine = root / "mg_taylor_r10.zarr", root / "mg_taylor_r10_n20.zarr"
    assert run_solve_stage(cfg["mg_taylor"], cfg["dask"], "r10", store, 1).samples_done == 16
    assert run_solve_stage({**cfg["mg_taylor"], "n_stored": 20}, cfg["dask"], "r10", fine, 1).samples_done == 16
    mg = cfg["rno"]["mg_taylor"]
    for name in ("rno", "rno_ve"):
        train_mg_taylor(store, root / "models" / f"{name}_k1_n12", model=name, k=1, n_train=12,
                        hyper={"width": 16, "depth": 2}, train_cfg=mg["train"], progress=False)
    train_mg_taylor(store, root / "models" / "pcanet_n12", model="pcanet", n_train=12,
                    hyper={k: mg["pcanet"][k] for k in ("r_in", "r_out", "hidden", "scale")},
                    train_cfg=mg["pcanet"]["train"], progress=False)
    return cfg, store, fine, root


def test_fine_store_holds_the_same_paths(stores, tmp_path):
    """Every 4th time of the 20-step store equals the 5-step store bitwise (paths, stress, split);
    a store of another seed is refused with both stores named."""
    from homlearn.datasets.mg_taylor import run_solve_stage
    from homlearn.evaluate.mg_taylor_resolution import check_same_paths
    from homlearn.train.mg_taylor import load_mg_taylor_data

    cfg, store, fine, _ = stores
    assert check_same_paths(load_mg_taylor_data(fine), load_mg_taylor_data(store), fine, store) == 4
    other = {**cfg["mg_taylor"], "n_stored": 20, "cases": [{**MG["cases"][0], "seed": 1}]}
    path = tmp_path / "mg_taylor_r10_n20.zarr"
    run_solve_stage(other, cfg["dask"], "r10", path, 1)
    with pytest.raises(ValueError, match=f"{path}.*paths and split of {store}"):
        check_same_paths(load_mg_taylor_data(path), load_mg_taylor_data(store), path, store)


def test_taylor_at_the_step_reproduces_the_store_and_converges(stores):
    """The Taylor model re-solved on the stored 20-step stretches gives the stored stress (1e-10 of
    its size: same solver, same steps); on every 2nd / 4th time (10 / 5 steps of twice / four
    times the length) its deviatoric error against the 20-step stress is nonzero and shrinks with
    the step (backward Euler converges)."""
    from homlearn.evaluate.mg_taylor_resolution import errors, taylor_at_step
    from homlearn.train.mg_taylor import load_mg_taylor_data

    cfg, _, fine, _ = stores
    d = load_mg_taylor_data(fine)
    U = d.stretch()
    same = taylor_at_step(cfg["mg_taylor"], U)
    assert np.abs(same - d.y).max() <= 1e-10 * np.abs(d.y).max()
    e10 = errors(taylor_at_step(cfg["mg_taylor"], U[:, ::2]), d.y[:, ::2])
    e5 = errors(taylor_at_step(cfg["mg_taylor"], U[:, ::4]), d.y[:, ::4])
    assert e5["failed"] == e10["failed"] == 0
    assert e5["deviatoric_l2"] > e10["deviatoric_l2"] > 1e-6


def test_study_at_the_training_step_is_each_models_test_error(stores, tmp_path):
    """At the training step (5) every model's row equals its own model.json test error (1e-6);
    rows for every model and step, the Taylor rows only below the 20 solver steps; figure,
    csv and summary rows written; steps that do not divide the fine store are refused."""
    from homlearn.evaluate.history import write_summary
    from homlearn.evaluate.mg_taylor_resolution import FIGURE, evaluate_resolution

    cfg, store, fine, root = stores
    mg = cfg["rno"]["mg_taylor"]
    m = evaluate_resolution(store, fine, root / "models", tmp_path / "out", mg, cfg["mg_taylor"])
    assert m["train_steps"] == 5 and m["fine_steps"] == 20
    assert sorted((r["model"], r["steps"]) for r in m["rows"]) == sorted(
        [("taylor", 5), ("taylor", 10)] + [(name, s) for name in ("rno", "rno_ve", "pcanet") for s in (5, 10, 20)])
    for name, d in (("rno", "rno_k1_n12"), ("rno_ve", "rno_ve_k1_n12"), ("pcanet", "pcanet_n12")):
        own = json.loads((root / "models" / d / "model.json").read_text())["metrics"]["test"]
        row = next(r for r in m["rows"] if r["model"] == name and r["steps"] == 5)
        assert row["test_relative_l2"] == pytest.approx(own["relative_l2"], rel=1e-6)
        assert row["deviatoric_l2"] == pytest.approx(own["deviatoric_l2"], rel=1e-6)
        assert all(np.isfinite(r["test_relative_l2"]) for r in m["rows"] if r["model"] == name)
    assert (tmp_path / "out" / f"{FIGURE}.png").stat().st_size > 1000
    assert (tmp_path / "out" / "metrics.csv").read_text().startswith("model,")
    text = write_summary(tmp_path / "summary.md", [tmp_path / "out" / "metrics.json"])
    assert "rno Fig. 10b" in text and "VE RNO (eq. 7) k = 1" in text and "Taylor model solved at the test step" in text
    with pytest.raises(ValueError, match=r"resolution.steps \[3\] must divide the 20 steps"):
        evaluate_resolution(store, fine, root / "models", tmp_path / "bad",
                            {**mg, "resolution": {**mg["resolution"], "steps": [3, 5]}}, cfg["mg_taylor"])


def test_resolution_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"rno.mg_taylor.resolution.steps.*divide mg_taylor.n_steps \(20\)"):
        validate_config({"mg_taylor": MG, "rno": {"mg_taylor": {"resolution": {"k": [1], "steps": [5, 8]}}}})
    with pytest.raises(ConfigError, match="rno.mg_taylor.resolution"):
        validate_config({"rno": {"mg_taylor": {"resolution": {"k": [1], "models": ["gru"]}}}})
    # off (no k): the steps are not checked against the solver steps
    validate_config({"mg_taylor": MG, "rno": {"mg_taylor": {"resolution": {"steps": [5, 8]}}}})


def test_snakemake_runs_rno_mg_taylor_resolution(tmp_path):
    """A real run of the named target on the tiny config: both stores solved, the three models
    trained, the study evaluated; a second dry run has nothing to do."""
    import yaml

    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "mg_taylor": MG, "rno": {"mg_taylor": RNO},
                                       "dask": {"progress": False}}))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "rno_mg_taylor_resolution", "--configfile", str(cfgfile)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    m = json.loads((tmp_path / "r" / "rno" / "mg_taylor" / "resolution" / "metrics.json").read_text())
    assert m["train_steps"] == 5 and m["fine_steps"] == 20 and m["n_test"] > 0
    assert {r["model"] for r in m["rows"]} == {"rno", "rno_ve", "pcanet", "taylor"}
    assert (tmp_path / "r" / "datasets" / "mg_taylor_r10_n20.zarr").is_dir()
    dry = subprocess.run(cmd + ["-n"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-1500:]


def test_snakemake_plans_no_extra_store_when_every_step_is_stored(tmp_path):
    """With n_stored = n_steps the training store is the test store: no mg_taylor_solve_fine job."""
    import yaml

    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({"results": str(tmp_path / "r"), "mg_taylor": {**MG, "n_stored": 20},
                                       "rno": {"mg_taylor": RNO}}))
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "rno_mg_taylor_resolution",
                          "--configfile", str(cfgfile)], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-2000:]
    counts = {line.split()[0]: int(line.split()[1]) for line in dry.stdout.splitlines() if len(line.split()) == 2
              and line.split()[1].isdigit()}
    assert counts.get("mg_taylor_solve") == 1 and "mg_taylor_solve_fine" not in counts, dry.stdout[-1500:]
    assert counts.get("rno_mg_taylor_train_rno") == 2 and counts.get("rno_mg_taylor_train_pcanet") == 1
