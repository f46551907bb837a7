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


@pytest.fixture(scope="session")
def c1d_tiny_store(tmp_path_factory):
    """A tiny composite1d store through the real solve stage: N = 1, 40 paths (30 train / 10
    test), solved on 400 steps, stored on 100; one material for all paths (E = 1 GPa, n = 3,
    sigma0 = 0.3 GPa, inside the paper's ranges), whose relaxation is slow enough against the
    coarsest test step that the exact eq. 12 under forward Euler (rno eq. 3) is within 2.5% at 50
    steps (1.2% at 100): resolution independence is testable. F_max = 0.33 (peaks up to 100%
    strain; the default |eps| <= 33% would keep this soft material, yield strain 0.3, nearly
    elastic). Shared by test_history_models.py
    and test_rno_experiments.py."""
    from homlearn.config import validate_config
    from homlearn.datasets.composite1d import run_solve_stage

    root = tmp_path_factory.mktemp("c1d_tiny")
    cfg = validate_config({"composite1d": {"segments": [1], "paths_per_n": 40, "batch_size": 40,
                                           "young_range": [1.0, 1.0], "exponent_range": [3.0, 3.0],
                                           "yield_stress_range": [0.3, 0.3],
                                           "path": {"n_steps": 400, "n_out": 100, "max_value": 0.33}},
                           "dask": {"progress": False}})
    rep = run_solve_stage(cfg["composite1d"], cfg["dask"], root / "c1d.zarr", 1)
    assert rep.samples_done == 40 and rep.samples_failed == 0
    return root / "c1d.zarr"


#: training of :func:`c1d_tiny_rno`: full-batch Adam (30 train paths), then L-BFGS epochs (Adam
#: alone stalls at 15-20% in this budget; L-BFGS takes it below 1%)
C1D_TINY_TRAIN = {"lr": 1e-3, "batch_size": 30, "max_epochs": 50, "lbfgs_epochs": 15, "schedule": "none",
                  "loss": "relative_l2", "device": "cpu", "tensorboard": False, "patience": 100000}


@pytest.fixture(scope="session")
def c1d_tiny_rno(c1d_tiny_store, tmp_path_factory):
    """The k = 1 E-VP RNO (default 4 x 100 SELU f and g) trained once per session on
    :func:`c1d_tiny_store` through the shared trainer (``train_history``, settings
    ``C1D_TINY_TRAIN``: 50 Adam + 15 L-BFGS epochs, measured train 0.8% / test 1.3%, ~40 s CPU).
    Returns the models directory (the model is ``rno_N1_k1`` in it) and its model.json."""
    from homlearn.train.history import train_history

    models = tmp_path_factory.mktemp("c1d_tiny_models")
    info = train_history(c1d_tiny_store, "composite1d", models / "rno_N1_k1", model="rno", k=1, group=1,
                         hyper={"width": 100, "depth": 4}, train_cfg=C1D_TINY_TRAIN, progress=False)
    return models, info


@pytest.fixture(scope="session")
def floor_study():
    """benchmarks/internal_variable_floor.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "internal_variable_floor.py"
    spec = importlib.util.spec_from_file_location("internal_variable_floor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
