"""A real Snakemake run of a tiny config: microstructures, solves on Dask (2 workers), dataset,
fGCNN and rGCNN training, evaluation, and the HTML report; elastic_ls and viscoelastic3d datasets."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from homlearn.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_snakemake_end_to_end(tmp_path):
    out = tmp_path / "results"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "results": str(out),
        "dask": {"batch_size": 16, "progress": False},
        "heat2d": {"n_samples": 64, "seed": 11,
                   "train": {"max_epochs": 8, "patience": 8, "batch_size": 16},
                   "report": {"n_examples": 2},
                   "sensitivity": {"filters": [1, 4], "seeds": [0],
                                   "train": {"max_epochs": 3, "patience": 3, "batch_size": 16}}},
        "elastic_ls": {"n_design_points": 2, "per_point": 2, "grid": 10, "batch_size": 2, "contrasts": [10]},
        "cp_grid": {"n_steps": 10, "record_strains": [0.002], "batch_size": 2,
                    "grid2d": {"n_samples": 2, "grid": 10}, "grid3d": {"n_samples": 2, "grid": 6}},
        "cp_paths2d": {"grid": 4, "n_grains": 2, "n_paths": 2, "n_steps": 10, "n_stored": 5, "max_strain": 0.01,
                       "batch_size": 2},
        "viscoelastic3d": {"n_samples": 2, "target_cells": 1500, "max_cells": 8000, "curvature_points": 8,
                           "loading": {"n_steps": 5}, "batch_size": 1},
        "composite1d": {"segments": [1, 2], "paths_per_n": 2, "batch_size": 4, "path": {"n_steps": 100, "n_out": 20}},
        "laminate": {"cases": ["M1"], "n_trajectories": 4, "batch_size": 4, "path": {"n_steps": 100, "n_out": 20}},
        "mg_taylor": {"n_grains": 4, "n_steps": 20, "n_stored": 10, "batch_size": 2,
                      "cases": [{"name": "r10", "max_strain": 0.1, "intervals": "uniform", "n_paths": 2, "seed": 0},
                                {"name": "r50", "max_strain": 0.5, "intervals": "uniform", "n_paths": 2, "seed": 2}]},
    }))
    snake = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(cfg)]
    run = subprocess.run(snake, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    metrics = json.loads((out / "heat2d" / "metrics.json").read_text())
    assert metrics["n_done"] == 64 and metrics["n_failed"] == 0 and metrics["bounds_hold"]
    for name in ("fgcnn", "rgcnn", "gradient_rule", "flux_rule"):
        m = metrics["models"][name]
        assert m["n"] > 0 and m["rmse"] > 0 and m["rmse"] < 0.5
    for fig in ("fig2_microstructures", "fig3b_mixture_rules", "fig13_parity", "fig13a_error_distribution"):
        assert (out / "heat2d" / f"{fig}.png").stat().st_size > 10_000
    el = json.loads((out / "elastic_ls" / "solve_cr10.json").read_text())
    assert el["samples_done"] == 4 and el["samples_failed"] == 0
    for dim in ("2d", "3d"):
        cp = json.loads((out / "cp_grid" / f"solve_{dim}.json").read_text())
        assert cp["samples_done"] == 2 and cp["samples_failed"] == 0
    cq = json.loads((out / "cp_paths2d" / "solve.json").read_text())
    assert cq["samples_done"] == 2 and cq["samples_failed"] == 0
    ve = json.loads((out / "viscoelastic3d" / "solve.json").read_text())
    assert ve["samples_done"] == 2 and ve["samples_failed"] == 0
    assert "mesh_failures_retried" in json.loads((out / "viscoelastic3d" / "microstructure.json").read_text())
    for summary, n in ((out / "composite1d" / "solve.json", 4), (out / "laminate" / "solve_M1.json", 4)):
        rep = json.loads(summary.read_text())
        assert rep["samples_done"] == n and rep["samples_failed"] == 0, rep
    for case in ("r10", "r50"):
        mg = json.loads((out / "mg_taylor" / f"solve_{case}.json").read_text())
        assert mg["samples_done"] == 2 and mg["samples_failed"] == 0
        assert (out / "datasets" / f"mg_taylor_{case}.zarr").is_dir()
    solve = json.loads((out / "heat2d" / "solve.json").read_text())
    assert solve["samples_done"] == 64
    model = json.loads((out / "heat2d" / "models" / "rgcnn" / "model.json").read_text())
    assert len(model["dataset_fingerprint"]) == 64 and model["training"]["epochs"] == 8
    history = (out / "heat2d" / "models" / "rgcnn" / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,val_loss,lr,seconds" and len(history) == 1 + 8

    again = subprocess.run(snake + ["-n"], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # Fig. 12a sweep (a named target): one model per (model, N_filters, seed), from the same dataset
    sens = subprocess.run(snake[:5] + ["heat2d_sensitivity"] + snake[5:], cwd=ROOT, capture_output=True, text=True)
    assert sens.returncode == 0, sens.stderr[-4000:]
    assert "heat2d_solve" not in sens.stdout + sens.stderr
    rows = json.loads((out / "heat2d" / "sensitivity" / "metrics.json").read_text())["runs"]
    assert sorted((r["model"], r["n_filters"]) for r in rows) == [("fgcnn", 1), ("fgcnn", 4), ("rgcnn", 1),
                                                                  ("rgcnn", 4)]
    assert all(r["epochs"] == 3 and r["rmse"] > 0 and r["n_dense"] == 2 for r in rows)
    assert {r["n_features"] for r in rows if r["model"] == "rgcnn"} == {3}
    assert {r["n_features"] for r in rows if r["model"] == "fgcnn"} == {1, 4}
    assert (out / "heat2d" / "fig12a_sensitivity.png").stat().st_size > 10_000
    # summary rows: heat2d's (written by `all`) and the sweep's, with the paper's findings beside ours
    rows = [ln for ln in (out / "summary" / "field_surrogates_heat2d.md").read_text().splitlines()
            if ln.startswith("| heat2d")]
    assert len(rows) == 5 and "rGCNN on par with the fGCNN" in rows[-1]
    sweep_md = out / "summary" / "sweep.md"
    assert main(["gcnn", "summary", str(sweep_md), str(out / "heat2d" / "sensitivity" / "metrics.json")]) == 0
    sweep = [ln for ln in sweep_md.read_text().splitlines() if ln.startswith("| heat2d, Fig. 12a")]
    assert len(sweep) == 2 and all("1: " in r and "4: " in r and "(patience" in r for r in sweep)

    # a changed learning rate retrains and re-evaluates, and leaves the datasets alone
    cfg2 = tmp_path / "tiny-lr.yaml"
    tiny = yaml.safe_load(cfg.read_text())
    tiny["heat2d"]["train"]["lr"] = 0.002
    cfg2.write_text(yaml.safe_dump(tiny))
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", str(cfg2)],
                         cwd=ROOT, capture_output=True, text=True)
    jobs = dry.stdout + dry.stderr
    assert dry.returncode == 0 and "heat2d_train" in jobs and "heat2d_evaluate" in jobs, jobs[-2000:]
    assert "heat2d_microstructure" not in jobs and "heat2d_solve" not in jobs, jobs[-2000:]
    assert "viscoelastic3d_" not in jobs, jobs[-2000:]
    assert "composite1d_solve" not in jobs and "laminate_solve" not in jobs, jobs[-2000:]

    report = subprocess.run(snake + ["--report", str(out / "report.html")], cwd=ROOT, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (out / "report.html").read_text(errors="ignore")
    assert len(html) > 100_000 and "fig13_parity" in html

    # the GPU request (placement, not result) changes nothing that was computed
    cfg3 = tmp_path / "tiny-gpu.yaml"
    tiny = yaml.safe_load(cfg.read_text())
    tiny["heat2d"]["train"]["gpu"] = 0
    cfg3.write_text(yaml.safe_dump(tiny))
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", str(cfg3)],
                         cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-2000:]
