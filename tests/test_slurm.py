"""The workflow on a real SLURM (one node on localhost: 2 CPUs, one fake GPU; tests/slurm_testbed.py).

`snakemake --profile workflow/profiles/slurm` runs a tiny config: the composite1d solve stage
(a one-CPU driver job whose Dask workers are SLURM jobs of their own, dask.cluster: slurm) and one
RNO training rule asking for the GPU. Mid-stage the test cancels the solve job with scancel;
the profile's retries resubmit it and the stage resumes. The dataset and the trained model must
equal those of a local run of the same config, bit for bit.
"""

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr

from slurm_testbed import jobs, one_node_cluster

ROOT = Path(__file__).resolve().parents[1]
N_PATHS, BATCH = 8, 2  # 4 batches, one Dask task each


def tiny_config(results: Path, dask: dict) -> dict:
    return {
        "results": str(results),
        "dask": {"progress": False, **dask},
        "composite1d": {"segments": [1], "paths_per_n": N_PATHS, "batch_size": BATCH, "seed": 3,
                        "path": {"n_steps": 100, "n_out": 20}},
        "rno": {"composite1d": {"segments": [1], "k": [1], "width": 16, "depth": 2,
                                "resolution": {"steps": [20, 100]},
                                "train": {"max_epochs": 3, "lbfgs_epochs": 1, "batch_size": 4, "gpu": 1}}},
    }


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    with one_node_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def _done_batches(store: Path) -> list[int]:
    try:
        status = zarr.open_group(store, mode="r")["status"][:]
    except Exception:  # not created yet
        return []
    return [b for b in range(N_PATHS // BATCH) if np.all(status[b * BATCH:(b + 1) * BATCH] == 1)]


def _status_mtimes(store: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (store / "status" / "c").iterdir()}


def _running_solve_job() -> dict | None:
    for j in jobs():
        if "composite1d_solve" in j.get("Comment", "") and j.get("JobState") == "RUNNING":
            return j
    return None


def test_slurm_pipeline_equals_local_run_and_resumes_after_scancel(slurm, tmp_path):
    results = tmp_path / "slurm"
    cfg = tiny_config(results, {"cluster": "slurm", "slurm": {
        "cores": 1, "memory": "1GB", "walltime": "00:10:00", "lifetime_stagger": "10s",
        "maximum_jobs": 1, "death_timeout": 15, "log_directory": str(tmp_path / "dask_logs")}})
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    model_dir = results / "rno" / "composite1d" / "models" / "rno_N1_k1"
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "--configfile", str(cfg_file),
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-logdir", str(tmp_path / "slurm_logs"), "--slurm-keep-successful-logs",
           str(model_dir / "model.json")]
    log = tmp_path / "snakemake.log"
    store = results / "datasets" / "composite1d.zarr"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        try:
            # cancel the solve job once its workers have finished a batch, before they finish all
            deadline, job = time.time() + 300, None
            while time.time() < deadline and proc.poll() is None and not (job and _done_batches(store)):
                job = job or (store.exists() and _running_solve_job())  # known before its first batch ends
                time.sleep(0.1)
            assert job and proc.poll() is None, log.read_text()[-3000:]
            subprocess.run(["scancel", job["JobId"]], check=True)
            done_at_cancel = _done_batches(store)
            assert 1 <= len(done_at_cancel) < N_PATHS // BATCH, "the stage ended before scancel: make it longer"
            mtimes = _status_mtimes(store)
            rc = proc.wait(timeout=480)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 0, log.read_text()[-4000:]

    # the cancelled job was resubmitted (profile retries) and the stage resumed
    rows = jobs()
    solve = [j for j in rows if "composite1d_solve" in j.get("Comment", "")]
    assert [j["JobState"] for j in solve] == ["CANCELLED", "COMPLETED"], solve
    assert all(j["NumCPUs"] == "1" for j in solve)                 # the driver only: workers are jobs
    workers = [j for j in rows if j.get("JobName") == "dask-worker"]
    assert len(workers) >= 2, rows                                 # one worker job per attempt at least
    # the cancelled driver closed its cluster: its worker job was cancelled, not left to time out
    script = subprocess.run(["scontrol", "write", "batch_script", workers[-1]["JobId"], "-"],
                            capture_output=True, text=True, check=True).stdout
    assert "#SBATCH -p test" in script and "export OMP_NUM_THREADS=1" in script, script  # driver's partition
    gap = datetime.fromisoformat(workers[0]["EndTime"]) - datetime.fromisoformat(solve[0]["EndTime"])
    assert workers[0]["JobState"] == "CANCELLED" and gap.total_seconds() <= 10, (workers[0], solve[0])
    rep = json.loads((results / "composite1d" / "solve.json").read_text())
    assert rep["samples_done"] == N_PATHS and rep["samples_failed"] == 0 and rep["broken_batches"] == []
    assert 1 <= rep["batches_run"] <= N_PATHS // BATCH - len(done_at_cancel), rep
    after = _status_mtimes(store)
    for b in done_at_cancel:                                       # finished batches were not solved again
        assert after[str(b)] == mtimes[str(b)], f"batch {b} was written again"

    # the training job asked SLURM for the GPU
    train = [j for j in rows if "rno_composite1d_train" in j.get("Comment", "")]
    assert len(train) == 1 and train[0]["JobState"] == "COMPLETED", train
    assert "gpu:1" in train[0].get("TresPerJob", ""), train[0]

    # the same config run locally gives the same dataset and the same model, bit for bit
    from homlearn.cli import main
    from homlearn.data.digest import content_hash

    local = tmp_path / "local"
    lcfg = json.dumps(tiny_config(local, {"cluster": "local"}))
    assert main(["composite1d", "solve", str(local / "composite1d.zarr"), "--threads", "1", "--config-json", lcfg]) == 0
    assert content_hash(store) == content_hash(local / "composite1d.zarr")
    assert main(["history", "train", "composite1d", str(local / "composite1d.zarr"), str(local / "model"),
                 "--model", "rno", "--group", "1", "--k", "1", "--threads", "1", "--config-json", lcfg]) == 0
    for name in ("best.pt", "last.pt"):
        a = torch.load(model_dir / name, weights_only=False)["model"]
        b = torch.load(local / "model" / name, weights_only=False)["model"]
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    ma = json.loads((model_dir / "model.json").read_text())["metrics"]
    mb = json.loads((local / "model" / "model.json").read_text())["metrics"]
    assert ma == mb


def test_worker_jobs_from_config():
    """dask.slurm -> SLURMCluster arguments: sizes, a lifetime inside the walltime, one BLAS thread,
    this checkout and the JIT cache in the job script; bad settings name their key."""
    from homlearn.config import ConfigError, validate_config
    from homlearn.parallel.slurm import cluster_kwargs, job_prologue, walltime_seconds

    assert [walltime_seconds(w) for w in ("30", "30:15", "1:00:00", "1-2", "1-2:30", "2-00:00:01")] == \
        [1800, 1815, 3600, 93600, 95400, 172801]
    cfg = validate_config({"dask": {"cluster": "slurm", "slurm": {
        "cores": 8, "memory": "16GB", "walltime": "02:00:00", "lifetime_stagger": "5m",
        "job_extra_directives": ["--qos=long"], "interface": "ib0"}}})["dask"]["slurm"]
    kw = cluster_kwargs(cfg)
    assert (kw["cores"], kw["processes"], kw["memory"], kw["interface"]) == (8, 8, "16GB", "ib0")
    assert kw["job_extra_directives"] == ["--qos=long"] and kw["python"] == sys.executable
    assert "--lifetime=6780s" in kw["worker_extra_args"]        # 2 h - 5 min - 2 min
    assert "--lifetime-stagger=300s" in kw["worker_extra_args"]
    lines = job_prologue({"PYTHONPATH": "/elsewhere", "XDG_CACHE_HOME": "/shared/cache"}, cwd="/work dir")
    assert "export OMP_NUM_THREADS=1" in lines and "export XDG_CACHE_HOME=/shared/cache" in lines
    assert f"export PYTHONPATH={ROOT / 'src'}:/elsewhere" in lines and "cd '/work dir'" in lines
    for bad, key in (({"walltime": "00:05:00"}, "dask.slurm.lifetime"),
                     ({"cores": 4, "processes": 3}, "dask.slurm.processes"),
                     ({"lifetime": "soon"}, "dask.slurm.lifetime"),
                     ({"minimum_jobs": 5, "maximum_jobs": 2}, "dask.slurm.minimum_jobs"),
                     ({"memory": "lots"}, "dask.slurm.memory")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_config({"dask": {"cluster": "slurm", "slurm": bad}})
