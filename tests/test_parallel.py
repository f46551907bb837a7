"""Dask execution: a LocalCluster from config and an existing scheduler joined by address give
the same store as an in-process run; a failing sample is recorded and the stage goes on."""

import json

import numpy as np
import xarray as xr

from homlearn.config import validate_config
from homlearn.datasets import heat2d


def _cfg(**dask):
    return validate_config({"heat2d": {"n_samples": 24, "seed": 9},
                            "dask": {"batch_size": 8, "progress": False, **dask}})


def _same(a, b):
    da, db = xr.open_zarr(a), xr.open_zarr(b)
    for name in da.data_vars:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


def test_dask_local_and_address_match_in_process(tmp_path):
    import distributed

    cfg = _cfg()
    heat2d.run_microstructure_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m0.zarr", threads=1)
    heat2d.run_solve_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m0.zarr", tmp_path / "d0.zarr", threads=1)

    rep = heat2d.run_microstructure_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m1.zarr", threads=2)
    assert rep.samples_done == 24 and rep.batches_run == 3
    heat2d.run_solve_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m1.zarr", tmp_path / "d1.zarr", threads=2)
    _same(tmp_path / "m1.zarr", tmp_path / "m0.zarr")
    _same(tmp_path / "d1.zarr", tmp_path / "d0.zarr")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        acfg = _cfg(cluster="address", address=cluster.scheduler_address)
        heat2d.run_microstructure_stage(acfg["heat2d"], acfg["dask"], tmp_path / "m2.zarr", threads=1)
        heat2d.run_solve_stage(acfg["heat2d"], acfg["dask"], tmp_path / "m2.zarr", tmp_path / "d2.zarr", threads=1)
    _same(tmp_path / "d2.zarr", tmp_path / "d0.zarr")


def test_failed_samples_are_recorded_and_the_stage_goes_on(tmp_path):
    """A sample whose mesh exceeds the storage capacity fails with code -3 and a reason; the
    solve stage marks it -4 (missing upstream); every other sample is done."""
    cfg = validate_config({"heat2d": {"n_samples": 16, "seed": 2, "max_cells": 240},
                           "dask": {"batch_size": 8, "progress": False}})
    log = tmp_path / "failures.jsonl"
    m = heat2d.run_microstructure_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m.zarr", 1, log)
    assert 0 < m.samples_failed < 16 and m.samples_done + m.samples_failed == 16
    s = heat2d.run_solve_stage(cfg["heat2d"], cfg["dask"], tmp_path / "m.zarr", tmp_path / "d.zarr", 1, log)
    status = xr.open_zarr(tmp_path / "d.zarr")["status"].values
    assert np.sum(status == -4) == m.samples_failed and np.sum(status == 1) == m.samples_done
    assert s.samples_pending == 0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["code"] for r in rows} == {-3, -4}
    assert all("capacity" in r["reason"] for r in rows if r["code"] == -3)
