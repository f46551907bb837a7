"""The cp_grid2d and cp_grid3d exemplars (paper 'gcnn' section 3.2, appendix A.2): mean stress
histories of FCC polycrystals in uniaxial tension, solved on the FFT engine.

2D: 32x32 z-slices of periodic 32^3 Voronoi structures (5-30 grains), one angle per grain,
plane strain. 3D: 25^3 periodic Voronoi (1-25 grains by default), SO(3) orientations. Loading:
mean eps_xx at ``strain_rate`` (1/s), every other mean stress zero (mixed control), to
``final_strain`` in ``n_steps``. Stored: the graph form (the grain map, uint8: each pixel's
grain; ``pixel_edges``: the periodic pixel adjacency, one array for the whole store as every
sample shares the grid, :func:`~homlearn.microstructure.voxel_voronoi.grid_edges`),
grain orientations, mean strain and stress histories, sigma_xx fields at ``record_strains``,
solver diagnostics and the split. Each sample's microstructure comes from its own seed
``(seed, sample)``, so batches and resumes do not change it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from homlearn import __version__
from homlearn.data.store import Layout, Variable, create_store

SPLIT_NAMES = {0: "train", 1: "validation", 2: "test"}
DIMS = ("2d", "3d")
MAX_GRAINS = {"2d": 30, "3d": 34}
CONTENT_KEYS = ("material", "strain_rate", "final_strain", "n_steps", "record_strains", "tol", "krylov_tol",
                "max_newton", "split")


def sample_cfg(cfg: Mapping[str, Any], dim: str) -> Mapping[str, Any]:
    return cfg[f"grid{dim}"]


def n_spatial(dim: str) -> int:
    return 2 if dim == "2d" else 3


def layout(cfg, dim, batch_size) -> Layout:
    s = sample_cfg(cfg, dim)
    d = n_spatial(dim)
    fixed = {a: s["grid"] for a in "xyz"[:d]} | {
        "step": cfg["n_steps"] + 1, "i": d, "j": d, "grain": MAX_GRAINS[dim], "angle": 1 if d == 2 else 3,
        "record": len(cfg["record_strains"])}
    return Layout(s["n_samples"], batch_size, capacity={}, fixed=fixed)


def variables(dim: str) -> dict[str, Variable]:
    space = tuple("xyz"[:n_spatial(dim)])
    return {
        "voxel_grain": Variable(("sample", *space), "uint8", {"long_name": "grain of each voxel (assignment S)"}),
        "n_grains": Variable(("sample",), "int32", {"long_name": "number of grains"}),
        "grain_angle": Variable(("sample", "grain", "angle"), "float64",
                                {"long_name": "orientation per grain: angle about z (2D) or ZXZ Euler angles (3D)",
                                 "units": "rad"}, np.nan),
        "strain": Variable(("sample", "step", "i", "j"), "float64", {"long_name": "mean strain history"}, np.nan),
        "stress": Variable(("sample", "step", "i", "j"), "float64",
                           {"long_name": "mean Cauchy stress history", "units": "MPa"}, np.nan),
        "stress_xx_field": Variable(("sample", "record", *space), "float32",
                                    {"long_name": "sigma_xx field at the recorded strains", "units": "MPa"}, np.nan),
        "newton_iterations": Variable(("sample",), "int32", {"long_name": "Newton iterations over the history"}),
        "krylov_iterations": Variable(("sample",), "int32", {"long_name": "Krylov iterations over the history"}),
        "cutbacks": Variable(("sample",), "int32", {"long_name": "solver (sub-)steps retried with half the step"}),
        "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                                "flag_meanings": list(SPLIT_NAMES.values())}),
    }


def microstructure(cfg, dim: str, sample: int):
    from homlearn.microstructure.voxel_voronoi import polycrystal_2d_slice, polycrystal_3d

    s = sample_cfg(cfg, dim)
    rng = np.random.default_rng([s["seed"], int(sample)])
    if dim == "2d":
        return polycrystal_2d_slice(s["grid"], rng, tuple(s["seed_range"]), tuple(s["grain_range"]))
    return polycrystal_3d(s["grid"], rng, tuple(s["grain_range"]))


def record_steps(cfg) -> list[int]:
    """Load steps (1..n_steps) nearest to ``record_strains``; a strain that rounds to step 0 or lies
    beyond the last step is refused, naming the key, before anything is solved."""
    n, de = cfg["n_steps"], cfg["final_strain"] / cfg["n_steps"]
    dt = cfg["final_strain"] / cfg["strain_rate"] / n
    steps = [int(round(e / cfg["strain_rate"] / dt)) for e in cfg["record_strains"]]
    bad = [e for e, k in zip(cfg["record_strains"], steps) if not 1 <= k <= n]
    if bad:
        raise ValueError(f"cp_grid.record_strains: {bad} fall outside the loading's {n} steps; allowed are strains "
                         f"above half a step ({de / 2:g}; one step is final_strain / n_steps = {de:g}) and up to "
                         f"final_strain = {cfg['final_strain']:g}")
    return steps


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Make and solve one batch of cells together on the FFT engine; write its chunk."""
    import torch

    from homlearn.materials.crystal_plasticity import FCCCrystalPlasticity, FCCParameters
    from homlearn.microstructure.voxel_voronoi import rotation_field
    from homlearn.solvers.fft import MacroControl, SolveStatus
    from homlearn.solvers.fft.history import solve_history
    from homlearn.parallel.stage import open_device_batch

    cfg, dim = params["cfg"], params["dim"]
    device, writer, idx = open_device_batch(store_path, batch, params["device"])
    pcs = [microstructure(cfg, dim, i) for i in idx]
    d = n_spatial(dim)
    grid = (sample_cfg(cfg, dim)["grid"],) * d
    rot = rotation_field([p.grain for p in pcs], [p.rotation for p in pcs]).to(device)
    dt = cfg["final_strain"] / cfg["strain_rate"] / cfg["n_steps"]
    mat = FCCCrystalPlasticity(rot, FCCParameters(**cfg["material"]), dt=dt)
    rate = cfg["strain_rate"]
    rec = record_steps(cfg)
    res = solve_history(mat, lambda k: MacroControl.uniaxial_stress(d, rate * k * dt), cfg["n_steps"], grid,
                        dt=dt, record_steps=rec, tol=cfg["tol"], krylov_tol=cfg["krylov_tol"],
                        max_newton=cfg["max_newton"], krylov=cfg["krylov"], device=device)
    fields = np.stack([res.fields[k][:, 0, 0].cpu().numpy() for k in rec], 1).astype(np.float32)
    failures = []
    for k, i in enumerate(idx):
        status = int(res.status[k])
        if status != SolveStatus.CONVERGED:
            writer.fail(k, -2)
            failures.append({"sample": int(i), "code": -2, "reason":
                             f"{SolveStatus(status).name.lower()} at step {int(res.failed_step[k])} of "
                             f"{cfg['n_steps']}"})
            continue
        angles = np.full((MAX_GRAINS[dim], 1 if d == 2 else 3), np.nan)
        angles[:pcs[k].n_grains] = pcs[k].angles
        writer.add(k, {"voxel_grain": pcs[k].grain.astype(np.uint8), "n_grains": pcs[k].n_grains, "grain_angle": angles,
                       "strain": res.mean_strain[k].cpu().numpy(), "stress": res.mean_stress[k].cpu().numpy(),
                       "stress_xx_field": fields[k], "newton_iterations": int(res.newton_iterations[k]),
                       "krylov_iterations": int(res.krylov_iterations[k]), "cutbacks": int(res.cutbacks[k])}, {})
    writer.flush()
    return failures


def create_dataset_store(path, cfg, dim, batch_size):
    from homlearn.data.split import draw_split

    s = sample_cfg(cfg, dim)
    if s["grain_range"][1] > MAX_GRAINS[dim]:
        raise ValueError(f"cp_grid.grid{dim}.grain_range allows at most {MAX_GRAINS[dim]} grains")
    content = {k: cfg[k] for k in CONTENT_KEYS} | {"sample": dict(s), "krylov": cfg["krylov"]}
    n = s["n_samples"]
    dt = cfg["final_strain"] / cfg["strain_rate"] / cfg["n_steps"]
    group = create_store(path, layout(cfg, dim, batch_size), variables(dim), {
        "exemplar": f"cp_grid{dim}", "homlearn_version": __version__, "config": dict(cfg), "paper": "gcnn A.2",
        "time_step": dt, "record_steps": record_steps(cfg),
        "deviation": "small strain (the paper: Lagrange strain / PK2); periodic Voronoi instead of DREAM3D",
        "solver": "FFT Fourier-Galerkin, Newton-Krylov, mixed control (uniaxial stress)"},
        content=content, replace_stale=True)
    if not group.attrs.get("split_drawn"):
        group["split"][:] = draw_split(n, cfg["split"]["fractions"], cfg["split"]["seed"])
        group.attrs["split_drawn"] = True
    if "pixel_edges" not in group:
        from homlearn.microstructure.voxel_voronoi import grid_edges

        edges = grid_edges((s["grid"],) * (2 if dim == "2d" else 3)).astype(np.int32)
        arr = group.create_array("pixel_edges", shape=edges.shape, dtype="int32", dimension_names=("edge", "pair"))
        arr[:] = edges
        arr.attrs["long_name"] = "periodic nearest-neighbour pixel pairs (flat C-order indices into voxel_grain)"
    return group


def run_solve_stage(cfg, dask_cfg, dim, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending cell of cp_grid{dim} (resumable); returns the stage report."""
    from homlearn.parallel.stage import run_device_stage

    if dim not in DIMS:
        raise ValueError(f"dim must be one of {DIMS}, got {dim!r}")
    record_steps(cfg)  # refuse record strains off the loading before the store is made
    create_dataset_store(store_path, cfg, dim, cfg["batch_size"])
    return run_device_stage(f"cp_grid{dim}", store_path, solve_batch, cfg, {"dim": dim}, dask_cfg, threads,
                            failure_log, client)
