"""The elastic_ls exemplar (paper 'rln' section 4): voxel strain fields of two-phase cells.

31^3 periodic cells from Gaussian-filtered thresholded noise (Latin-hypercube design over the
three filter widths and the volume fraction, 5 samples per design point), isotropic phases
E_soft = 120, E_hard = CR x 120, nu = 0.3, mean strain eps_xx = 0.001 (other components zero),
solved by the batched Fourier-Galerkin solver. One store per contrast ratio; the same
microstructures for every contrast. Split 40/20/40 train/validation/test, seeded and stored.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import zarr

from homlearn import __version__
from homlearn.data.store import BatchWriter, Layout, Variable, create_store

SPLIT_NAMES = {0: "train", 1: "validation", 2: "test"}
CONTENT_KEYS = ("n_design_points", "per_point", "grid", "seed", "width_range", "fraction_range",
                "young_soft", "poisson", "mean_strain_xx", "tol", "max_iter", "split")


def n_samples(cfg: Mapping[str, Any]) -> int:
    return cfg["n_design_points"] * cfg["per_point"]


def layout(cfg, batch_size) -> Layout:
    n = cfg["grid"]
    return Layout(n_samples(cfg), batch_size, capacity={},
                  fixed={"x": n, "y": n, "z": n, "parameter": 4, "i": 3, "j": 3})


VARIABLES = {
    "microstructure": Variable(("sample", "x", "y", "z"), "uint8", {"long_name": "phase (1 = hard)"}),
    "strain_xx": Variable(("sample", "x", "y", "z"), "float32",
                          {"long_name": "local strain eps_xx", "units": "1"}, np.nan),
    "design": Variable(("sample", "parameter"), "float64",
                       {"long_name": "filter width along x, y, z (voxels) and hard-phase volume fraction"}),
    "mean_stress": Variable(("sample", "i", "j"), "float64", {"long_name": "mean stress", "units": "MPa"}, np.nan),
    "iterations": Variable(("sample",), "int32", {"long_name": "conjugate-gradient iterations"}),
    "residual": Variable(("sample",), "float64", {"long_name": "relative residual ||P(C:eps)||/||P(C:E)||"}, np.nan),
    "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                            "flag_meanings": list(SPLIT_NAMES.values())}),
}


def design(cfg) -> np.ndarray:
    from homlearn.microstructure.random_fields import latin_hypercube_design

    return latin_hypercube_design(cfg["n_design_points"], 3, cfg["width_range"], cfg["fraction_range"],
                                  cfg["seed"])


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Generate and solve one batch of cells together (one batched CG), write its chunk."""
    import torch

    from homlearn.microstructure.random_fields import design_samples
    from homlearn.solvers.fft import IsotropicMaterial, SolveStatus, solve_linear

    device = _device(params["device"])
    if device.type == "cpu":
        torch.set_num_threads(1)  # one cell batch per core (Dask worker)
    cfg = params["cfg"]
    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    idx = np.arange(writer.samples.start, writer.samples.stop)
    d = design(cfg)
    micro = design_samples(d, cfg["per_point"], (cfg["grid"],) * 3, cfg["seed"], idx)
    young = np.where(micro == 1, params["contrast"] * cfg["young_soft"], cfg["young_soft"]).astype(np.float64)
    material = IsotropicMaterial.from_young_poisson(torch.from_numpy(young), cfg["poisson"]).to(device=device)
    E = np.zeros((3, 3))
    E[0, 0] = cfg["mean_strain_xx"]
    res = solve_linear(material, E, micro.shape[1:], batch=len(idx), tol=cfg["tol"], max_iter=cfg["max_iter"],
                       device=device)
    strain_xx = res.strain[:, 0, 0].to(device="cpu", dtype=torch.float32).numpy()
    mean_stress = res.mean_stress.cpu().numpy()
    failures = []
    for k, i in enumerate(idx):
        if not bool(res.converged[k]):
            writer.fail(k, -2)
            failures.append({"sample": int(i), "code": -2, "reason":
                             f"CG {SolveStatus(int(res.status[k])).name.lower()} after "
                             f"{int(res.iterations[k])} iterations, residual {float(res.residual[k]):.3e}"})
            continue
        writer.add(k, {"microstructure": micro[k], "strain_xx": strain_xx[k],
                       "design": d[i // cfg["per_point"]], "mean_stress": mean_stress[k],
                       "iterations": int(res.iterations[k]), "residual": float(res.residual[k])}, {})
    writer.flush()
    return failures


def _device(name: str):
    from homlearn.train.trainer import pick_device

    return pick_device(name)


def create_dataset_store(path, cfg, contrast, batch_size):
    from homlearn.data.split import draw_split

    content = {k: cfg[k] for k in CONTENT_KEYS} | {"contrast": contrast}
    group = create_store(path, layout(cfg, batch_size), VARIABLES, {
        "exemplar": "elastic_ls", "homlearn_version": __version__, "config": dict(cfg), "contrast": contrast,
        "paper": "rln section 4",
        "deviation": "filter-width and volume-fraction ranges are ours (the paper gives none)",
        "solver": {"method": "Fourier-Galerkin, conjugate gradients", "tol": cfg["tol"]}},
        content=content, replace_stale=True)
    if not group.attrs.get("split_drawn"):
        group["split"][:] = draw_split(n_samples(cfg), cfg["split"]["fractions"], cfg["split"]["seed"])
        group.attrs["split_drawn"] = True
    return group


def run_solve_stage(cfg, dask_cfg, contrast, store_path, threads=1, failure_log=None):
    """Solve every pending cell at one contrast ratio (resumable); returns the stage report."""
    from homlearn.parallel.stage import run_device_stage

    create_dataset_store(store_path, cfg, contrast, cfg["batch_size"])
    return run_device_stage(f"elastic_ls CR{contrast}", store_path, solve_batch, cfg, {"contrast": contrast},
                            dask_cfg, threads, failure_log)
