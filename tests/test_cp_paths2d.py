"""cp_paths2d dataset: one periodic 2D polycrystal, two-slip finite-strain crystal plasticity on the
FFT engine (paper rno 5.1, appendix A), random F paths, resumable Zarr store.

Checks: every path is solved (solver steps of 5 s, large enough that some need cutbacks); the
stored mean F is the seeded path of :func:`~homlearn.datasets.cp_paths2d.paths` exactly (mean F is
prescribed) and starts at I with zero stress; the stored Cauchy stress is symmetric (to 1e-6 of
its size, Newton tolerance 1e-8) and the pressure is -tr(sigma)/2; the microstructure is the
configured one for every path; a path solved in a batch of one equals the batch-of-two result to
1e-7 (cutbacks are per path); a rerun does nothing; without cutbacks, paths that fail are recorded
with status -2 and the reason, and the stage goes on.
"""

import numpy as np
import pytest
import xarray as xr

from homlearn.config import validate_config
from homlearn.datasets.cp_paths2d import microstructure, paths, run_solve_stage


def small_cfg(**kw):
    cp = {"grid": 6, "n_grains": 3, "n_paths": 3, "n_steps": 40, "n_stored": 10, "batch_size": 2,
          "max_strain": 0.03, "tol": 1e-8, "device": "cpu"} | kw
    return validate_config({"cp_paths2d": cp, "dask": {"progress": False}})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    cfg = small_cfg()
    path = tmp_path_factory.mktemp("cp_paths2d") / "cp.zarr"
    rep = run_solve_stage(cfg["cp_paths2d"], cfg["dask"], path, 1)
    return cfg, path, rep


def test_paths_are_solved_and_stored(store):
    cfg, path, rep = store
    cp = cfg["cp_paths2d"]
    assert rep.samples_done == 3 and rep.samples_failed == 0
    ds = xr.open_zarr(path)
    assert np.all(ds.status.values == 1)
    assert ds.F.shape == (3, 11, 2, 2) and ds.stress.shape == (3, 11, 2, 2)
    t, F = paths(cp, 0, 3)
    every = cp["n_steps"] // cp["n_stored"]
    assert np.allclose(ds.time.values, t[::every][None])
    assert np.abs(ds.F.values - F[:, ::every]).max() <= 1e-12
    assert np.allclose(ds.F.values[:, 0], np.eye(2)) and np.all(ds.stress.values[:, 0] == 0)
    sigma = ds.stress.values
    assert np.abs(sigma - np.swapaxes(sigma, -1, -2)).max() <= 1e-6 * np.abs(sigma).max()
    assert np.allclose(ds.pressure.values, -np.trace(sigma, axis1=-2, axis2=-1) / 2)
    assert np.abs(sigma[:, -1]).max() > 200.0            # beyond the slip resistance (tau0 = 100 MPa)
    pc = microstructure(cp)
    assert np.all(ds.voxel_grain.values == pc.grain[None]) and np.allclose(ds.grain_angle.values, pc.angles[None, :, 0])
    assert ds.cutbacks.values.sum() >= 1                  # 5 s steps: some were cut back
    assert set(np.unique(ds.split.values)) <= {0, 1, 2}


def test_batch_of_one_equals_the_batch(store, tmp_path):
    cfg, path, _ = store
    one = small_cfg(n_paths=1, batch_size=1, path_seed=cfg["cp_paths2d"]["path_seed"])
    run_solve_stage(one["cp_paths2d"], one["dask"], tmp_path / "one.zarr", 1)
    alone, batch = xr.open_zarr(tmp_path / "one.zarr").stress.values[0], xr.open_zarr(path).stress.values[0]
    assert np.abs(alone - batch).max() <= 1e-7 * np.abs(batch).max()


def test_rerun_resumes_with_nothing_to_do(store):
    cfg, path, _ = store
    rep = run_solve_stage(cfg["cp_paths2d"], cfg["dask"], path, 1)
    assert rep.samples_run == 0 and rep.samples_done == 3


def test_failed_paths_are_recorded_not_raised(tmp_path):
    cfg = small_cfg(n_steps=4, n_stored=2, max_cutbacks=0, n_paths=2)
    log = tmp_path / "failures.jsonl"
    rep = run_solve_stage(cfg["cp_paths2d"], cfg["dask"], tmp_path / "f.zarr", 1, failure_log=log)
    ds = xr.open_zarr(tmp_path / "f.zarr")
    assert rep.samples_failed >= 1 and rep.samples_failed + rep.samples_done == 2
    assert np.all(np.isin(ds.status.values, [1, -2])) and (ds.status.values == -2).sum() == rep.samples_failed
    assert all(f["code"] == -2 and "at step" in f["reason"] for f in rep.failures)
    assert log.read_text().count("\n") == rep.samples_failed
