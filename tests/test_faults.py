"""Faults a long solve stage meets on a cluster, on the real composite1d stage (exact reduction,
Radau; 40 paths in 20 batches of 2, one Dask task each):

* the driver and its workers SIGKILLed at seeded random points, then a rerun: the dataset's content
  hash equals an uninterrupted run's, and no finished batch is solved (written) again;
* one worker SIGKILLed in the middle of a task: the task runs again on another worker, nothing is
  lost or duplicated (same content hash);
* one process and two Dask workers give the same content hash;
* a region write that does not cover whole chunks or whole shards is refused, naming the array;
* a damaged store (missing or truncated chunk, lost status, broken metadata) is refused on open,
  naming its path, and training never starts on it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr

from homlearn.config import validate_config
from homlearn.data.digest import content_hash, variable_hashes
from homlearn.data.integrity import StoreIntegrityError, verify_store
from homlearn.data.store import RegionError, write_block
from homlearn.datasets import composite1d

ROOT = Path(__file__).resolve().parents[1]
N_PATHS, BATCH = 40, 2
N_BATCHES = N_PATHS // BATCH
CFG = {"composite1d": {"segments": [2], "paths_per_n": N_PATHS, "batch_size": BATCH, "seed": 7,
                       "path": {"n_steps": 100, "n_out": 20}},
       "dask": {"progress": False}}


def _cfg():
    return validate_config(json.loads(json.dumps(CFG)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run in one process (no Dask), and its content hash."""
    cfg = _cfg()
    store = tmp_path_factory.mktemp("faults") / "reference.zarr"
    rep = composite1d.run_solve_stage(cfg["composite1d"], cfg["dask"], store, threads=1)
    assert rep.samples_done == N_PATHS and rep.samples_failed == 0
    return {"store": store, "hash": content_hash(store)}


@pytest.fixture(scope="module")
def two_workers():
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        yield client


def _status(store: Path) -> np.ndarray:
    try:
        return zarr.open_group(store, mode="r")["status"][:]
    except Exception:  # not created yet
        return np.zeros(N_PATHS, dtype=np.int8)


def _done_batches(store: Path) -> set[int]:
    s = _status(store)
    return {b for b in range(N_BATCHES) if np.all(s[b * BATCH:(b + 1) * BATCH] == 1)}


def _status_mtime(store: Path, b: int) -> int:
    return (store / "status" / "c" / str(b)).stat().st_mtime_ns


def test_sigkill_driver_and_workers_at_random_points_then_rerun(reference, tmp_path):
    rng = np.random.default_rng(20261122)
    store = tmp_path / "c.zarr"
    cmd = [sys.executable, "-m", "homlearn.cli", "composite1d", "solve", str(store), "--threads", "2",
           "--config-json", json.dumps(CFG)]
    first_seen = {}  # batch -> mtime of its status chunk when first seen finished
    for kill in range(2):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = len(_done_batches(store)) + int(rng.integers(1, 3))  # 1 or 2 more batches, then kill
        assert target <= N_BATCHES - 3, f"kill {kill}: too few batches left to kill inside the stage"
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and len(_done_batches(store)) < target:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.25))  # a random point inside the running tasks (one finishes every ~0.1-0.3 s)
        assert proc.poll() is None, "the stage finished before the kill: make it longer"
        victims = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(victims) >= 3  # the driver and two worker processes (and their nannies)
        for pid in victims:
            with_suppressed(os.kill, pid, signal.SIGKILL)
        proc.wait()
        psutil.wait_procs([p for p in map(_proc, victims) if p], timeout=30)
        done = _done_batches(store)
        assert len(done) < N_BATCHES, f"kill {kill}: every batch had finished"
        for b in done:
            first_seen.setdefault(b, _status_mtime(store, b))
    pending_before = N_BATCHES - len(_done_batches(store))
    summary = tmp_path / "summary.json"
    subprocess.run(cmd + ["--summary", str(summary)], cwd=ROOT, check=True, capture_output=True)
    rep = json.loads(summary.read_text())
    assert rep["samples_done"] == N_PATHS and rep["samples_pending"] == 0
    assert rep["batches_run"] == pending_before                    # only the unfinished batches ran
    for b, mtime in first_seen.items():                            # a finished batch is never solved again
        assert _status_mtime(store, b) == mtime, f"batch {b} was written again"
    got, want = variable_hashes(store), variable_hashes(reference["store"])
    assert got == want, sorted(k for k in want if got.get(k) != want[k])
    assert content_hash(store) == reference["hash"]


def with_suppressed(fn, *args):
    try:
        fn(*args)
    except ProcessLookupError:
        pass


def _proc(pid):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_one_process_and_two_workers_give_the_same_content_hash(reference, two_workers, tmp_path):
    cfg = _cfg()
    rep = composite1d.run_solve_stage(cfg["composite1d"], cfg["dask"], tmp_path / "c.zarr", client=two_workers)
    assert rep.samples_done == N_PATHS and rep.batches_run == N_BATCHES
    assert len(two_workers.scheduler_info()["workers"]) == 2
    assert content_hash(tmp_path / "c.zarr") == reference["hash"]


def _executing(dask_worker):
    return [str(ts.key) for ts in dask_worker.state.executing]


def test_worker_killed_mid_task_is_retried_elsewhere(reference, two_workers, tmp_path):
    from distributed import get_task_stream

    client, cfg, store = two_workers, _cfg(), tmp_path / "c.zarr"
    killed = None
    with get_task_stream(client) as stream, ThreadPoolExecutor(1) as pool:
        run = pool.submit(composite1d.run_solve_stage, cfg["composite1d"], cfg["dask"], store, 2, None, client)
        deadline = time.time() + 180
        while killed is None and time.time() < deadline and not run.done():
            for addr, keys in client.run(_executing).items():
                if not keys:
                    continue
                b = int(keys[0].rsplit("-", 1)[1])
                time.sleep(0.3)  # into the task
                pid = client.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                if np.all(_status(store)[b * BATCH:(b + 1) * BATCH] == 0):  # status is written last:
                    killed = (addr, keys[0], b)                            # the task was cut short
                break
            time.sleep(0.05)
        rep = run.result(timeout=300)
    assert killed is not None, "no task could be killed mid-way"
    addr, key, b = killed
    ran = [r["worker"] for r in stream.data if str(r["key"]) == key and r.get("status") == "OK"]
    assert len(ran) == 1 and ran[0] != addr, (ran, addr)          # retried once, on another worker
    assert rep.samples_done == N_PATHS and rep.broken_batches == [] and rep.samples_pending == 0
    assert content_hash(store) == reference["hash"]                # no row lost, none written twice


def test_region_writes_must_cover_whole_chunks_and_shards(tmp_path):
    g = zarr.open_group(tmp_path / "s.zarr", mode="w", zarr_format=3)
    sharded = g.create_array("x", shape=(20, 3), chunks=(2, 3), shards=(8, 3), dtype="f8", fill_value=0)
    with pytest.raises(RegionError, match=r"x: region \[0:4\) on axis 0 does not cover whole chunks/shards of 8"):
        write_block(sharded, slice(0, 4), np.ones((4, 3)))       # whole chunks, half a shard
    with pytest.raises(RegionError, match="shards of 8"):
        write_block(sharded, slice(8, 12), np.ones((4, 3)))
    write_block(sharded, slice(8, 16), np.ones((8, 3)))           # one whole shard
    write_block(sharded, slice(16, 20), np.full((4, 3), 2.0))     # the last, short shard is whole
    np.testing.assert_array_equal(sharded[:], np.repeat([0.0, 1.0, 2.0], [8, 8, 4])[:, None] * np.ones(3))
    plain = g.create_array("y", shape=(10,), chunks=(4,), dtype="i4", fill_value=0)
    with pytest.raises(RegionError, match="y: region"):
        write_block(plain, slice(2, 6), np.ones(4, dtype="i4"))
    with pytest.raises(RegionError, match="strided"):
        write_block(plain, slice(0, 8, 2), np.ones(4, dtype="i4"))


def _damaged_copy(reference, tmp_path, name):
    store = tmp_path / name
    shutil.copytree(reference["store"], store)
    verify_store(store)  # intact before the damage
    return store


def test_damaged_stores_are_refused_on_open_naming_the_path(reference, tmp_path):
    from homlearn.cli import main
    from homlearn.train.history import train_history

    missing = _damaged_copy(reference, tmp_path, "missing.zarr")
    (missing / "stress" / "c" / "3" / "0").unlink()              # zarr would read fill values silently
    truncated = _damaged_copy(reference, tmp_path, "truncated.zarr")
    chunk = truncated / "plastic_strain_fine" / "c" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    lost_status = _damaged_copy(reference, tmp_path, "lost_status.zarr")
    (lost_status / "status" / "c" / "4").unlink()                # batch 4 would read as pending
    broken_meta = _damaged_copy(reference, tmp_path, "broken_meta.zarr")
    (broken_meta / "zarr.json").write_text((broken_meta / "zarr.json").read_text()[:100])

    cases = {missing: "stress: chunk c/3/0 of written batch 3 is missing",
             truncated: r"plastic_strain_fine: rows \[2:4\) do not decode",
             lost_status: r"2 sample\(s\) still pending \(e.g. \[8, 9\]\)",
             broken_meta: "cannot open the group"}
    for store, what in cases.items():
        with pytest.raises(StoreIntegrityError, match=what) as err:
            verify_store(store)
        assert str(store) in str(err.value)
        out = tmp_path / f"model_{store.stem}"
        with pytest.raises(StoreIntegrityError):                   # training never starts on it
            train_history(store, "composite1d", out, model="rno", k=1, group=2,
                          hyper={"width": 4, "depth": 1}, train_cfg={"max_epochs": 1}, progress=False)
        assert not out.exists() or not any(out.iterdir())
        assert main(["store", "verify", str(store)]) == 1
    assert main(["store", "verify", str(reference["store"])]) == 0
