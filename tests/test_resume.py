"""A stage killed with SIGKILL resumes: nothing finished is redone, nothing is lost, and the
final store equals an uninterrupted run's. Training resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

ROOT = Path(__file__).resolve().parents[1]
CFG = {"heat2d": {"n_samples": 96, "seed": 5}, "dask": {"batch_size": 8, "progress": False}}


def _cli(*args):
    return [sys.executable, "-m", "homlearn.cli", *args, "--config-json", json.dumps(CFG)]


def _status_chunk_mtimes(store: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (store / "status" / "c").iterdir()}


def _assert_same_store(a: Path, b: Path):
    da, db = xr.open_zarr(a), xr.open_zarr(b)
    assert set(da.data_vars) == set(db.data_vars)
    for name in da.data_vars:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


def _kill_when_some_done(cmd, store: Path, min_done: int):
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            done = int(np.sum(zarr.open_group(store, mode="r")["status"][:] == 1))
        except Exception:
            done = 0
        if done >= min_done or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the stage finished before it could be killed: make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = zarr.open_group(store, mode="r")["status"][:]
    return status


def test_killed_stages_resume(tmp_path):
    ref_m, ref_d = tmp_path / "ref_m.zarr", tmp_path / "ref_d.zarr"
    subprocess.run(_cli("heat2d", "microstructure", str(ref_m)), cwd=ROOT, check=True)
    subprocess.run(_cli("heat2d", "solve", str(ref_m), str(ref_d)), cwd=ROOT, check=True)

    for stage, store, args in (
        ("microstructure", tmp_path / "m.zarr", ("heat2d", "microstructure", str(tmp_path / "m.zarr"))),
        ("solve", tmp_path / "d.zarr", ("heat2d", "solve", str(tmp_path / "m.zarr"), str(tmp_path / "d.zarr"))),
    ):
        status = _kill_when_some_done(_cli(*args), store, min_done=16)
        done_batches = [b for b in range(12) if np.all(status[b * 8:(b + 1) * 8] == 1)]
        assert 2 <= len(done_batches) < 12, f"{stage}: kill came at {len(done_batches)} done batches"
        before = _status_chunk_mtimes(store)
        summary = tmp_path / f"{stage}.json"
        subprocess.run(_cli(*args, "--summary", str(summary)), cwd=ROOT, check=True)
        rep = json.loads(summary.read_text())
        assert rep["samples_done"] == 96 and rep["samples_pending"] == 0
        assert rep["batches_run"] == 12 - len(done_batches)        # finished batches not redone
        after = _status_chunk_mtimes(store)
        for b in done_batches:                                     # and not rewritten
            assert after[str(b)] == before[str(b)], f"{stage}: batch {b} was written again"
    _assert_same_store(tmp_path / "m.zarr", ref_m)
    _assert_same_store(tmp_path / "d.zarr", ref_d)


def test_training_resumes_to_the_same_weights(heat2d_small, tmp_path):
    import torch

    from homlearn.data.graphs import load_heat2d_graphs
    from homlearn.models.gcnn import build_model, collate_graphs
    from homlearn.train.trainer import TrainSettings, train

    data = load_heat2d_graphs(heat2d_small["data"])
    xs, ys = data.fit_scalers()
    tr, te = data.samples(data.subset(0), xs, ys), data.samples(data.subset(1), xs, ys)
    settings = TrainSettings(max_epochs=6, patience=100, batch_size=8, seed=1, device="cpu")

    def fresh():
        torch.manual_seed(0)
        return build_model("rgcnn", in_features=2, n_out=1, extensive=(1,), intensive=(0,))

    full = fresh()
    train(full, tr, te, collate_graphs, settings, tmp_path / "full", progress=False)
    part = fresh()
    first = train(part, tr, te, collate_graphs, settings, tmp_path / "part", progress=False, stop_after_epochs=3)
    assert not first["finished"] and first["epochs"] == 3
    resumed = fresh()  # a new process would start from fresh weights and load last.pt
    second = train(resumed, tr, te, collate_graphs, settings, tmp_path / "part", progress=False)
    assert second["finished"] and second["epochs"] == 6
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    last_part = torch.load(tmp_path / "part" / "last.pt", weights_only=False)["model"]
    for k in last_full:
        torch.testing.assert_close(last_full[k], last_part[k], rtol=0, atol=0)


def test_changed_settings_do_not_resume_an_old_run(heat2d_small, tmp_path):
    """A rerun with other settings (Snakemake reruns on changed params) must not pick up the
    finished checkpoint of the previous run."""
    from homlearn.train.gcnn import train_gcnn

    hyper = {"n_filters": 4, "n_conv": 2, "n_dense": 2, "hidden": 8}
    cfg = {"lr": 1e-3, "batch_size": 16, "max_epochs": 3, "patience": 100, "seed": 0, "device": "cpu"}
    first = train_gcnn(heat2d_small["data"], "fgcnn", hyper, cfg, tmp_path, progress=False)
    assert first["training"]["epochs"] == 3
    first_history = (tmp_path / "history.csv").read_text()
    second = train_gcnn(heat2d_small["data"], "fgcnn", hyper, {**cfg, "lr": 3e-2}, tmp_path, progress=False)
    assert second["training"]["epochs"] == 3 and second["run_id"] != first["run_id"]
    second_history = (tmp_path / "history.csv").read_text()
    assert len(second_history.strip().splitlines()) == 1 + 3
    assert second_history != first_history  # trained anew with the new learning rate


def test_changed_seed_replaces_the_store_same_seed_resumes(tmp_path):
    """After a config change Snakemake reruns the stage: a store made from other settings must be
    rebuilt, not 'resumed' as if it were finished; the same settings resume with nothing to do."""
    from homlearn.config import validate_config
    from homlearn.datasets.heat2d import run_microstructure_stage

    def run(seed):
        cfg = validate_config({"heat2d": {"n_samples": 8, "seed": seed}, "dask": {"batch_size": 8, "progress": False}})
        rep = run_microstructure_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m.zarr", 1)
        return rep, xr.open_zarr(tmp_path / "m.zarr")["seed"].values.copy()

    rep1, seeds1 = run(1)
    rep_same, seeds_same = run(1)
    assert rep_same.batches_run == 0 and np.array_equal(seeds_same, seeds1)
    rep2, seeds2 = run(2)
    assert rep2.batches_run == 1 and rep2.samples_done == 8
    assert not np.any(seeds2 == seeds1)


def test_killed_dask_stage_leaves_no_workers_and_resumes(tmp_path):
    """SIGKILL the driver of a stage running on 2 Dask worker processes: the workers exit with
    it, and the rerun finishes only the unfinished batches."""
    import psutil

    cfg = {"heat2d": {"n_samples": 800, "seed": 4}, "dask": {"batch_size": 16, "progress": False}}
    store = tmp_path / "m.zarr"
    cmd = [sys.executable, "-m", "homlearn.cli", "heat2d", "microstructure", str(store), "--threads", "2",
           "--config-json", json.dumps(cfg)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, done = time.time() + 120, 0
    while time.time() < deadline and proc.poll() is None and done < 96:
        time.sleep(0.2)
        try:
            done = int(np.sum(zarr.open_group(store, mode="r")["status"][:] == 1))
        except Exception:
            done = 0
    assert proc.poll() is None, "the stage finished before it could be killed"
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"worker processes survived the driver: {alive}"
    status = zarr.open_group(store, mode="r")["status"][:]
    n_done_batches = sum(np.all(status[b * 16:(b + 1) * 16] == 1) for b in range(50))
    assert 0 < n_done_batches < 50
    summary = tmp_path / "summary.json"
    subprocess.run(cmd + ["--summary", str(summary)], cwd=ROOT, check=True, capture_output=True)
    rep = json.loads(summary.read_text())
    assert rep["samples_done"] == 800 and rep["batches_run"] == 50 - n_done_batches
