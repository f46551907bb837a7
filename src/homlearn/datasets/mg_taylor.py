"""The mg_taylor exemplar (paper 'pcanet' sections 2.1-2.2, SI-A, SI-B, Table SI-1): Taylor-
averaged magnesium polycrystals under random stretch paths; mean stretch U and mean Cauchy
stress histories, the data of the paper's '3DTaylor' PCA-Net cases 11-25.

Per case (one Zarr store each, ``results/datasets/mg_taylor_<case>.zarr``): ``n_paths`` random
paths of the symmetric stretch U (6 independent components, :func:`~homlearn.loading.paths.random_paths`:
N = 10 intervals of fixed or uniform-random length, knot increments ``nu max_strain sqrt(dt)``
with Rademacher nu per component, PCHIP cubic Hermite interpolation, normalized time 0..1),
solved on ``n_steps`` steps of ``duration / n_steps`` seconds and stored on ``n_stored + 1``
times. Every grain takes F = U (Taylor); the stored stress is the grain average of the Cauchy
stress. The texture, ``n_grains`` uniformly random orientations (``orientation_seed``), is the
same for every path and every case (one material: the paper trains one surrogate per texture).
The material is :mod:`homlearn.materials.magnesium` (see its docstring for the equations, the
parameters with their sources, and the deviations from the paper).

Admissible paths (our choice; the paper does not say how it handled them): with the paper's
generator a stretch can lose positive definiteness (at max_strain 0.5, 54% of paths have an
eigenvalue <= 0 somewhere). A path is admissible when the smallest eigenvalue of U stays
>= ``min_stretch`` at every solver step. ``inadmissible: redraw`` (default) draws path k again
from the seed sequence (seed, k, attempt) until admissible (``path_attempt`` records the
attempt; attempt 0 is exactly ``random_paths(seed, first_index=k)``); ``fail`` stores the path
with status -5 and solves nothing.

Path k depends only on (case seed, k), so batches, resumes and Dask workers never change it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from homlearn import __version__
from homlearn.data.store import STATUS_INADMISSIBLE, Layout, Variable, create_store
from homlearn.loading.paths import component_pairs, identity_components, random_paths, symmetric_from_components

SPLIT_NAMES = {0: "train", 1: "validation", 2: "test"}
PAIRS = component_pairs(3)
MODES = ("basal", "prismatic", "pyramidal", "twin")
CONTENT_KEYS = ("material", "n_grains", "orientation_seed", "duration", "n_steps", "n_stored", "n_intervals",
                "min_stretch", "inadmissible", "max_attempts", "local_tol", "local_max_iter", "split")

DEVIATIONS = [
    "twin reorientation not modelled: slip in twinned volume uses the parent's systems (eq. 36 simplified)",
    "twin-twin interaction k_ij taken at the start of each step (semi-implicit); self terms implicit",
    "a grain stops twinning when its total twin fraction reaches the saturation (default 1)",
    "tau0 of basal, prismatic and twin systems not in Table SI-1: our choice (0.5, 20, 3.5 MPa), "
    "not from Chang & Kochmann 2015",
    "h_ij of Table SI-1 applied row-wise (H_ab = h_ij of a's mode, self and latent)",
    "backward Euler of Fp' Fp^-1 = Lp (det Fp = 1 + O(dgamma^2) per step)",
    "duration (physical time of a path) not given by the paper: our choice",
    "inadmissible stretch paths (eigenvalue below min_stretch) redrawn or recorded as failed",
]


def case_cfg(cfg: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for case in cfg["cases"]:
        if case["name"] == name:
            return case
    raise ValueError(f"mg_taylor has no case {name!r}; cases: {[c['name'] for c in cfg['cases']]}")


def orientations(cfg) -> np.ndarray:
    """The texture: ``n_grains`` uniformly random rotations (crystal -> sample), ``(G, 3, 3)``."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(cfg["n_grains"], random_state=cfg["orientation_seed"]).as_matrix()


def draw_path(cfg, case, sample: int):
    """Path ``sample`` of a case: ``(paths, attempt, admissible)`` (paths: a one-path Paths)."""
    kw = dict(t_final=1.0, n_intervals=cfg["n_intervals"], max_value=case["max_strain"],
              intervals=case["intervals"], n_steps=cfg["n_steps"], start=identity_components(3))
    attempts = cfg["max_attempts"] if cfg["inadmissible"] == "redraw" else 1
    for attempt in range(attempts):
        if attempt == 0:
            p = random_paths(1, 6, seed=case["seed"], first_index=sample, **kw)
        else:
            seed = int(np.random.SeedSequence([case["seed"], sample, attempt]).generate_state(1)[0])
            p = random_paths(1, 6, seed=seed, **kw)
        smallest = np.linalg.eigvalsh(symmetric_from_components(p.values[0], 3)).min()
        if smallest >= cfg["min_stretch"]:
            return p, attempt, True
    return p, attempt, False


def layout(cfg, case, batch_size) -> Layout:
    fixed = {"time": cfg["n_stored"] + 1, "component": len(PAIRS), "knot": cfg["n_intervals"] + 1,
             "grain": cfg["n_grains"], "i": 3, "j": 3, "mode": len(MODES)}
    return Layout(case["n_paths"], batch_size, capacity={}, fixed=fixed)


def variables() -> dict[str, Variable]:
    comp = ", ".join(f"{i}{j}" for i, j in PAIRS)
    return {
        "time": Variable(("time",), "float64", {"long_name": "normalized time t / duration"}),
        "orientation": Variable(("grain", "i", "j"), "float64",
                                {"long_name": "grain orientations (crystal -> sample rotation matrices)"}),
        "stretch": Variable(("sample", "time", "component"), "float64",
                            {"long_name": "mean stretch U (= F in every grain)", "components": comp}, np.nan),
        "stress": Variable(("sample", "time", "component"), "float64",
                           {"long_name": "grain-averaged Cauchy stress", "units": "MPa", "components": comp}, np.nan),
        "knot_time": Variable(("sample", "knot"), "float64", {"long_name": "interpolation knot times (normalized)"},
                              np.nan),
        "knot_value": Variable(("sample", "knot", "component"), "float64",
                               {"long_name": "stretch components at the knots", "components": comp}, np.nan),
        "path_attempt": Variable(("sample",), "int16", {"long_name": "redraws before an admissible path"}),
        "twin_fraction": Variable(("sample",), "float64",
                                  {"long_name": "grain-averaged total twin volume fraction at the end"}, np.nan),
        "shear_by_mode": Variable(("sample", "mode"), "float64",
                                  {"long_name": "grain-averaged accumulated shear per mode at the end",
                                   "modes": list(MODES)}, np.nan),
        "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                                "flag_meanings": list(SPLIT_NAMES.values())}),
    }


def _components(t: np.ndarray) -> np.ndarray:
    return np.stack([t[..., i, j] for i, j in PAIRS], -1)


def solve_stretch(cfg, U: np.ndarray, device="cpu"):
    """Taylor solve of stretch histories ``U`` (P, T + 1, 3, 3) on their T steps of ``duration / T``
    seconds, every grain of the texture at F = U: ``(result, material)`` of
    :func:`~homlearn.solvers.taylor.solve_taylor_prescribed` (``result.mean_stress``: the
    grain-averaged Cauchy stress (P, T + 1, 3, 3); ``result.status`` per path)."""
    import torch

    from homlearn.materials.magnesium import MagnesiumCrystalPlasticity, MgParameters
    from homlearn.solvers.taylor import solve_taylor_prescribed

    U = torch.as_tensor(np.asarray(U, dtype=np.float64))
    G = cfg["n_grains"]
    rot = torch.from_numpy(orientations(cfg)).permute(1, 2, 0)[None, ..., None, None]
    rot = rot.expand(len(U), 3, 3, G, 1, 1).contiguous().to(device)
    dt = cfg["duration"] / (U.shape[1] - 1)
    mat = MagnesiumCrystalPlasticity(rot, MgParameters.from_dict(cfg["material"]), dt=dt,
                                     local_tol=cfg["local_tol"], local_max_iter=cfg["local_max_iter"])
    return solve_taylor_prescribed(mat, U.to(device), G, dt=dt, device=device), mat


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Draw and solve one batch of paths together (batched over paths and grains); write its chunk."""
    from homlearn.solvers.fft import SolveStatus
    from homlearn.parallel.stage import open_device_batch

    cfg, case = params["cfg"], case_cfg(params["cfg"], params["case"])
    device, writer, idx = open_device_batch(store_path, batch, params["device"])
    draws = [draw_path(cfg, case, int(i)) for i in idx]
    failures = []
    todo = [k for k, d in enumerate(draws) if d[2]]
    for k, (p, attempt, admissible) in enumerate(draws):
        if not admissible:
            writer.fail(k, STATUS_INADMISSIBLE)
            failures.append({"sample": int(idx[k]), "code": STATUS_INADMISSIBLE, "reason":
                             f"stretch eigenvalue below min_stretch = {cfg['min_stretch']} "
                             f"({attempt + 1} draw(s))"})
    if todo:
        n = cfg["n_steps"]
        stride = n // cfg["n_stored"]
        U = np.stack([symmetric_from_components(draws[k][0].values[0], 3) for k in todo])
        res, mat = solve_stretch(cfg, U, device)
        stress = res.mean_stress.cpu().numpy()
        shear = mat.slip_by_mode().mean(dim=(1, 2, 3)).cpu().numpy()
        twin = mat.twin_fraction.sum(-1).mean(1).cpu().numpy()
        for b, k in enumerate(todo):
            p, attempt, _ = draws[k]
            status = int(res.status[b])
            if status != SolveStatus.CONVERGED:
                bad = np.flatnonzero(~np.isfinite(stress[b, :, 0, 0]))
                writer.fail(k, -2)
                failures.append({"sample": int(idx[k]), "code": -2, "reason":
                                 f"{SolveStatus(status).name.lower()} at step {int(bad[0]) if bad.size else -1} of {n}"})
                continue
            writer.add(k, {"stretch": p.values[0, ::stride], "stress": _components(stress[b, ::stride]),
                           "knot_time": p.knots_t[0], "knot_value": p.knots[0], "path_attempt": attempt,
                           "twin_fraction": twin[b], "shear_by_mode": shear[b]}, {})
    writer.flush()
    return failures


def content(cfg, case) -> dict:
    return {k: cfg[k] for k in CONTENT_KEYS} | {"case": dict(case)}


def create_dataset_store(path, cfg, name, batch_size):
    from homlearn.data.split import draw_split
    from homlearn.materials.magnesium import MgParameters

    case = case_cfg(cfg, name)
    material = MgParameters.from_dict(cfg["material"])
    group = create_store(path, layout(cfg, case, batch_size), variables(), {
        "exemplar": "mg_taylor", "case": name, "homlearn_version": __version__, "config": dict(cfg),
        "paper": "pcanet sections 2.1-2.2, SI-A (Chang & Kochmann model), SI-B, Table SI-1",
        "material": material.to_dict(), "material_model": "homlearn.materials.magnesium (module docstring)",
        "solver": "Taylor averaging (F = U in every grain), backward Euler per grain, Newton on slip increments",
        "time_step_s": cfg["duration"] / cfg["n_steps"], "duration_s": cfg["duration"],
        "stored_every": cfg["n_steps"] // cfg["n_stored"], "components": [list(p) for p in PAIRS],
        "small_strain_bulk_modulus_MPa": material.small_strain_bulk_modulus,
        "deviations": DEVIATIONS}, content=content(cfg, case), replace_stale=True)
    if not group.attrs.get("static_written"):
        group["time"][:] = np.linspace(0.0, 1.0, cfg["n_stored"] + 1)
        group["orientation"][:] = orientations(cfg)
        group["split"][:] = draw_split(case["n_paths"], cfg["split"]["fractions"], cfg["split"]["seed"])
        group.attrs["static_written"] = True
    return group


def run_solve_stage(cfg, dask_cfg, name, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending path of case ``name`` (resumable); returns the stage report."""
    from homlearn.parallel.stage import run_device_stage

    case_cfg(cfg, name)
    create_dataset_store(store_path, cfg, name, cfg["batch_size"])
    return run_device_stage(f"mg_taylor_{name}", store_path, solve_batch, cfg, {"case": name}, dask_cfg, threads,
                            failure_log, client)
