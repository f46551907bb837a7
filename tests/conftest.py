"""Shared fixtures: a small real heat2d dataset (gmsh meshes, DOLFINx solves, Zarr store)."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def heat2d_small(tmp_path_factory):
    """48 samples through the real microstructure and solve stages, in this process."""
    from homlearn.config import validate_config
    from homlearn.datasets.heat2d import run_microstructure_stage, run_solve_stage

    root = tmp_path_factory.mktemp("heat2d")
    cfg = validate_config({"heat2d": {"n_samples": 48, "seed": 3},
                           "dask": {"batch_size": 16, "progress": False}})
    micro, data = root / "micro.zarr", root / "data.zarr"
    m = run_microstructure_stage(cfg["heat2d"], cfg["dask"], micro, 1)
    s = run_solve_stage(cfg["heat2d"], cfg["dask"], micro, data, 1)
    return {"cfg": cfg, "micro": micro, "data": data, "reports": (m, s), "root": root}
