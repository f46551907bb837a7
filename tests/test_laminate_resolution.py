"""Resolution study of the laminate RNOs (homlearn.evaluate.laminate_resolution; ours, as rno
Fig. 10) on real tiny MH stores: 20 paths (16 train / 4 test) solved on 200 SDIRK3 steps and
stored at 20 (the training store) and at 40 (the fine store), one tiny RNO (f, g 2 x 16, 3 Adam
epochs: the study only needs a trained model, not a good one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {"lr": 1e-3, "batch_size": 16, "max_epochs": 3, "lbfgs_epochs": 0, "loss": "relative_l2", "device": "cpu",
        "tensorboard": False, "patience": 100000}


def _solve(store, n_out, seed=0):
    from homlearn.config import validate_config
    from homlearn.datasets.laminate import run_solve_stage

    cfg = validate_config({"laminate": {"n_trajectories": 20, "batch_size": 20, "seed": seed,
                                        "path": {"n_steps": 200, "n_out": n_out}}, "dask": {"progress": False}})
    assert run_solve_stage(cfg["laminate"], cfg["dask"], "MH", store, 1).samples_done == 20


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from homlearn.train.history import train_history

    root = tmp_path_factory.mktemp("laminate_resolution")
    _solve(root / "datasets" / "laminate_MH.zarr", 20)
    _solve(root / "datasets" / "laminate_MH_n40.zarr", 40)
    info = train_history(root / "datasets" / "laminate_MH.zarr", "laminate", root / "models" / "MH_k2", k=2,
                         hyper={"width": 16, "depth": 2}, train_cfg=TINY, progress=False)
    return root, info


def test_resolution_rows_figure_and_summary(study, tmp_path):
    """At the training steps the fine store, taken every second time, gives the model's own test
    error (same paths, same split; 1e-5 for float32 on another batch layout); backward Euler's
    error halves with the step (order 1: ratio 1.6-2.4 from 10 to 20 to 40 steps), and so does
    the overstress relaxation rate x step in plastic flow (the step's mean plastic rate barely
    changes with the step)."""
    from homlearn.evaluate.history import write_summary
    from homlearn.evaluate.laminate_resolution import evaluate_resolution

    root, info = study
    m = evaluate_resolution(root / "datasets", root / "models", tmp_path, "MH", [2], [10, 20, 40], "direct")
    rno = {r["steps"]: r["test_relative_l2"] for r in m["rows"] if r["model"] == "rno"}
    be = {r["steps"]: r["test_relative_l2"] for r in m["rows"] if r["model"] == "exact_be"}
    assert m["train_steps"] == 20 and m["n_test"] == 4 and sorted(rno) == [10, 20, 40]
    assert rno[20] == pytest.approx(info["metrics"]["test"]["relative_l2"], abs=1e-5)
    assert all(np.isfinite(v) for v in rno.values())
    assert 1.6 < be[10] / be[20] < 2.4 and 1.6 < be[20] / be[40] < 2.4, be
    stiff = {r["steps"]: r for r in m["rows"] if r["model"] == "stiffness"}
    lam_dt = {s: r["relaxation_dt_median"] for s, r in stiff.items()}
    assert lam_dt[40] > 0 and 1.6 < lam_dt[10] / lam_dt[20] < 2.4 and 1.6 < lam_dt[20] / lam_dt[40] < 2.4, lam_dt
    assert all(r["relaxation_dt_p10"] <= r["relaxation_dt_median"] <= r["relaxation_dt_p90"] for r in stiff.values())
    assert (tmp_path / "fig10_laminate_resolution.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "metrics.json").read_text())["exemplar"] == "laminate_resolution"
    text = write_summary(tmp_path / "summary.md", [tmp_path / "metrics.json"])
    assert "laminate MH resolution, RNO k = 2 (direct, no symmetry images) trained at 20 steps" in text
    assert f"20: {100 * rno[20]:.2f}%" in text and f"40: {100 * be[40]:.2f}%" in text


def test_a_fine_store_of_other_paths_or_steps_is_refused(study, tmp_path):
    from homlearn.evaluate.laminate_resolution import evaluate_resolution

    root, _ = study
    with pytest.raises(ValueError, match=r"steps \[30\] must divide the 40 steps of .*laminate_MH_n40.zarr"):
        evaluate_resolution(root / "datasets", root / "models", tmp_path, "MH", [2], [30, 40])
    other = tmp_path / "datasets"
    other.mkdir()
    (other / "laminate_MH.zarr").symlink_to(root / "datasets" / "laminate_MH.zarr")
    _solve(other / "laminate_MH_n40.zarr", 40, seed=1)
    with pytest.raises(ValueError, match=r"laminate_MH_n40.zarr does not hold the paths and split of .*laminate_MH.zarr"):
        evaluate_resolution(other, root / "models", tmp_path / "out", "MH", [2], [20, 40])


def test_bad_resolution_config_is_refused_with_its_key():
    from homlearn.config import ConfigError, validate_config

    lam = {"cases": ["MH"], "k": [3], "augmented": {"cases": ["MH"], "k": [3, 6]}}
    with pytest.raises(ConfigError, match=r"rno.laminate.resolution.steps': every step must divide the largest \(400\)"):
        validate_config({"rno": {"laminate": {**lam, "resolution": {"k": [3], "steps": [150, 400]}}}})
    with pytest.raises(ConfigError, match=r"the largest \(300\) must divide laminate.path.n_steps \(2000\)"):
        validate_config({"laminate": {"path": {"n_steps": 2000, "n_out": 100}},
                         "rno": {"laminate": {**lam, "resolution": {"k": [3], "steps": [100, 300]}}}})
    with pytest.raises(ConfigError, match=r"resolution.case': 'M3' is not one of rno.laminate.augmented.cases"):
        validate_config({"rno": {"laminate": {**lam, "resolution": {"case": "M3", "k": [3]}}}})
    with pytest.raises(ConfigError, match=r"resolution.k': \[6\] must be among rno.laminate.k \[3\]"):
        validate_config({"rno": {"laminate": {**lam, "resolution": {"models": "direct", "k": [6]}}}})
    validate_config({"rno": {"laminate": {**lam, "resolution": {"k": [3, 6]}}}})  # augmented k: accepted


def test_snakemake_runs_the_fine_store_and_the_study(tmp_path):
    """A real run of rno_laminate_resolution on a tiny config (5 paths, mirror-augmented RNOs
    1 x 8, 2 epochs): one extra solve at n_out = max(steps) into laminate_MH_n40.zarr, only the
    RNO of resolution.k trained, the evaluation's metrics, figure and summary rows written."""
    res = tmp_path / "results"
    cfg = {"results": str(res),
           "laminate": {"cases": ["MH"], "n_trajectories": 5, "batch_size": 5, "path": {"n_steps": 200, "n_out": 20}},
           "rno": {"laminate": {"cases": ["MH"], "k": [1, 2], "width": 8, "depth": 1,
                                "train": {"max_epochs": 2, "lbfgs_epochs": 0, "batch_size": 4, "device": "cpu"},
                                "augmented": {"cases": ["MH"], "k": [1, 2], "train": {"max_epochs": 2, "lbfgs_epochs": 0,
                                                                                  "batch_size": 4, "device": "cpu"}},
                                "resolution": {"models": "augmented", "case": "MH", "k": [2], "steps": [10, 20, 40]}}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = subprocess.run([sys.executable, "-m", "snakemake", "rno_laminate_resolution", "-p", "--cores", "1",
                          "--configfile", str(path)], cwd=ROOT, capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for job, count in (("laminate_solve", 1), ("laminate_solve_resolution", 1), ("rno_laminate_augmented_train", 1),
                       ("rno_laminate_resolution_evaluate", 1)):
        assert any(line.split() == [job, str(count)] for line in out.splitlines()), (job, out[-2500:])
    assert '"n_out": 40' in out and (res / "datasets" / "laminate_MH_n40.zarr").is_dir()
    assert not (res / "rno" / "laminate" / "augmented" / "models" / "MH_k1").exists()
    m = json.loads((res / "rno" / "laminate" / "resolution" / "metrics.json").read_text())
    assert m["train_steps"] == 20 and {r["steps"] for r in m["rows"]} == {10, 20, 40}
    assert [r["experiment"].split(" (")[0] for r in m["summary_rows"]] == [
        "laminate MH resolution, RNO k = 2", "laminate MH: overstress relaxation rate x step in plastic flow, median",
        "laminate MH resolution, the law"]
    assert (res / "rno" / "laminate" / "resolution" / "fig10_laminate_resolution.png").stat().st_size > 10_000
