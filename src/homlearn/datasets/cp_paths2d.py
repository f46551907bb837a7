"""The cp_paths2d exemplar (paper 'rno' section 5.1, appendix A; 'pcanet' 2DFFT): mean stress
histories of one 2D polycrystal under random deformation-gradient paths, finite strain.

One periodic Voronoi cell (``grid`` x ``grid`` pixels, ``n_grains`` grains, angles uniform in
[0, pi)) is shared by every path: an RNO or PCA-Net is trained per microstructure. Paths
(:func:`homlearn.loading.paths.random_paths`, 'rno' section 2): F_ij, i <= j (upper triangular,
starting at I), N = 10 intervals of uniform random length on (0, T), Rademacher increments
``F_max sqrt(dt_m)``, PCHIP interpolation; ``max_strain`` sets ``F_max = max_strain / sqrt(T)``
(the walk's standard deviation at T; our reading, the paper gives the value of F_max only
through its figures). Solved on the FFT engine (finite strain, BiCGSTAB: the tangent is not
symmetric) at ``n_steps`` uniform steps (a step that fails is retried in sub-steps, see
:func:`~homlearn.solvers.fft.history.solve_history`), stored at ``n_stored`` + 1 times: mean F, mean Cauchy
stress and its pressure / deviatoric split (paper 'rno' eq. 27-28).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from homlearn import __version__
from homlearn.data.store import Layout, Variable, create_store

SPLIT_NAMES = {0: "train", 1: "validation", 2: "test"}
CONTENT_KEYS = ("case", "grid", "n_grains", "microstructure_seed", "n_paths", "max_strain", "t_final",
                "n_intervals", "intervals", "n_steps", "n_stored", "path_seed", "tol", "krylov_tol", "max_newton",
                "max_cutbacks", "split")


def layout(cfg, batch_size) -> Layout:
    n = cfg["grid"]
    return Layout(cfg["n_paths"], batch_size, capacity={},
                  fixed={"x": n, "y": n, "step": cfg["n_stored"] + 1, "i": 2, "j": 2, "grain": cfg["n_grains"]})


VARIABLES = {
    "voxel_grain": Variable(("sample", "x", "y"), "uint8", {"long_name": "grain of each pixel (same for every path)"}),
    "grain_angle": Variable(("sample", "grain"), "float64", {"long_name": "slip-system rotation per grain",
                                                             "units": "rad"}, np.nan),
    "time": Variable(("sample", "step"), "float64", {"long_name": "time", "units": "s"}, np.nan),
    "F": Variable(("sample", "step", "i", "j"), "float64", {"long_name": "mean deformation gradient"}, np.nan),
    "stress": Variable(("sample", "step", "i", "j"), "float64", {"long_name": "mean Cauchy stress", "units": "MPa"},
                       np.nan),
    "pressure": Variable(("sample", "step"), "float64", {"long_name": "-tr(sigma)/2", "units": "MPa"}, np.nan),
    "newton_iterations": Variable(("sample",), "int32", {"long_name": "Newton iterations over the path"}),
    "krylov_iterations": Variable(("sample",), "int32", {"long_name": "Krylov iterations over the path"}),
    "cutbacks": Variable(("sample",), "int32", {"long_name": "solver (sub-)steps retried with half the step"}),
    "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                            "flag_meanings": list(SPLIT_NAMES.values())}),
}


def microstructure(cfg):
    from homlearn.microstructure.voxel_voronoi import polycrystal_2d

    return polycrystal_2d(cfg["grid"], cfg["n_grains"], np.random.default_rng(cfg["microstructure_seed"]))


def paths(cfg, first: int, count: int):
    """Upper-triangular F paths ``(count, n_steps + 1, 2, 2)`` for paths ``first .. first+count-1``."""
    from homlearn.loading.paths import identity_components, random_paths, upper_triangular_from_components

    p = random_paths(count, 3, t_final=cfg["t_final"], n_intervals=cfg["n_intervals"],
                     max_value=cfg["max_strain"] / np.sqrt(cfg["t_final"]), intervals=cfg["intervals"],
                     n_steps=cfg["n_steps"], seed=cfg["path_seed"], start=identity_components(2),
                     first_index=first)
    return p.t, upper_triangular_from_components(p.values, 2)


def solve_deformation_paths(cfg, F: np.ndarray, device="cpu", pc=None):
    """Solve mean-F paths ``F`` (P, n_steps + 1, 2, 2) on the configured microstructure (``pc``,
    default :func:`microstructure`), at the solver steps of ``cfg``; returns the mean F and mean
    Cauchy stress at the stored steps (P, n_stored + 1, 2, 2; NaN from a failure on) and the
    :class:`~homlearn.solvers.fft.history.HistoryResult`. The dataset's paths and any other
    (e.g. the named test paths of 'pcanet' Fig. 1e-g) go through here."""
    import torch

    from homlearn.materials.two_slip_2d import TwoSlipCrystal2D, two_slip_case
    from homlearn.solvers.fft import MacroControl
    from homlearn.solvers.fft.history import solve_history

    if F.ndim != 4 or F.shape[1:] != (cfg["n_steps"] + 1, 2, 2):
        raise ValueError(f"F must be (paths, n_steps + 1 = {cfg['n_steps'] + 1}, 2, 2), got {F.shape}")
    pc = microstructure(cfg) if pc is None else pc
    angle = torch.from_numpy(pc.angles[:, 0][pc.grain]).to(device)[None].expand(len(F), -1, -1).contiguous()
    dt = cfg["t_final"] / cfg["n_steps"]
    mat = TwoSlipCrystal2D(angle, two_slip_case(cfg["case"]), dt=dt)
    Ft = torch.from_numpy(np.ascontiguousarray(F, dtype=np.float64)).to(device)
    res = solve_history(mat, lambda k: MacroControl(Ft[:, k]), cfg["n_steps"], (cfg["grid"],) * 2, dt=dt,
                        kinematics="finite", krylov="bicgstab", tol=cfg["tol"], krylov_tol=cfg["krylov_tol"],
                        max_newton=cfg["max_newton"], max_cutbacks=cfg["max_cutbacks"], device=device)
    every = cfg["n_steps"] // cfg["n_stored"]
    Fm = res.mean_strain[:, ::every].cpu().numpy()
    Pm = res.mean_stress[:, ::every].cpu().numpy()
    with np.errstate(invalid="ignore"):                    # failed paths are NaN from their failure on
        sigma = Pm @ np.swapaxes(Fm, -1, -2) / np.linalg.det(Fm)[..., None, None]
    return Fm, sigma, res


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Solve one batch of paths together on the shared microstructure; write its chunk."""
    from homlearn.solvers.fft import SolveStatus
    from homlearn.parallel.stage import open_device_batch

    cfg = params["cfg"]
    device, writer, idx = open_device_batch(store_path, batch, params["device"])
    pc = microstructure(cfg)
    t, F = paths(cfg, int(idx[0]), len(idx))
    Fm, sigma, res = solve_deformation_paths(cfg, F, device, pc)
    every = cfg["n_steps"] // cfg["n_stored"]
    failures = []
    for k, i in enumerate(idx):
        status = int(res.status[k])
        if status != SolveStatus.CONVERGED:
            writer.fail(k, -2)
            failures.append({"sample": int(i), "code": -2, "reason": f"{SolveStatus(status).name.lower()} at step "
                             f"{int(res.failed_step[k])} of {cfg['n_steps']}"})
            continue
        writer.add(k, {"voxel_grain": pc.grain.astype(np.uint8), "grain_angle": pc.angles[:, 0],
                       "time": t[::every], "F": Fm[k], "stress": sigma[k],
                       "pressure": -np.trace(sigma[k], axis1=-2, axis2=-1) / 2,
                       "newton_iterations": int(res.newton_iterations[k]),
                       "krylov_iterations": int(res.krylov_iterations[k]), "cutbacks": int(res.cutbacks[k])}, {})
    writer.flush()
    return failures


def create_dataset_store(path, cfg, batch_size):
    from homlearn.data.split import draw_split

    if cfg["n_steps"] % cfg["n_stored"]:
        raise ValueError(f"cp_paths2d.n_steps ({cfg['n_steps']}) must be a multiple of "
                         f"cp_paths2d.n_stored ({cfg['n_stored']})")
    content = {k: cfg[k] for k in CONTENT_KEYS}
    group = create_store(path, layout(cfg, batch_size), VARIABLES, {
        "exemplar": "cp_paths2d", "homlearn_version": __version__, "config": dict(cfg),
        "paper": "rno section 5.1 and appendix A (Table 2); pcanet 2DFFT",
        "deviation": "F_max = max_strain / sqrt(T) (our reading); backward-Euler multiplicative flow rule",
        "solver": "FFT Fourier-Galerkin, finite strain, Newton-BiCGSTAB, prescribed mean F"},
        content=content, replace_stale=True)
    if not group.attrs.get("split_drawn"):
        group["split"][:] = draw_split(cfg["n_paths"], cfg["split"]["fractions"], cfg["split"]["seed"])
        group.attrs["split_drawn"] = True
    return group


def run_solve_stage(cfg, dask_cfg, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending path (resumable); returns the stage report."""
    from homlearn.parallel.stage import run_device_stage

    create_dataset_store(store_path, cfg, cfg["batch_size"])
    return run_device_stage("cp_paths2d", store_path, solve_batch, cfg, {}, dask_cfg, threads, failure_log, client)
