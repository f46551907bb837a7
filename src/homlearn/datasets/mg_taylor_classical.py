"""Classical loading tests of the mg_taylor material (the Taylor-averaged Mg polycrystal of
:mod:`homlearn.datasets.mg_taylor`: same material, texture, duration and solver steps), solved
with the Taylor model for the surrogate experiments of paper 'rno' section 5.2:

- calibration: uniaxial stress tension at constant true strain rates (mixed control, every mean
  stress component but sigma_11 zero; stored at every solver step of a graded grid), the
  classical tests a Johnson-Cook law is fitted to ('rno' Fig. 8b inset, "fit against these
  classical tests");
- classical stretch paths ('rno' Fig. 9: uniaxial tension, cavity expansion, cyclic loading;
  'pcanet' Fig. 1e-g / Table SI-2: uniaxial, load-unload, cavity expansion), on the data's time
  grid: isochoric uniaxial stretch U = diag(l, l^-1/2, l^-1/2) in tension, compression,
  load-unload and fully reversed cycles; cavity expansion (:func:`~homlearn.loading.paths.cavity_expansion`,
  plane strain); simple shear F = I + gamma e1 (x) e2 as its stretch U = (F^T F)^1/2;
- rotated paths ('pcanet' SI-C isotropy): uniaxial tension rotated by theta about x2, and test
  paths of the store rotated by random rotations, U' = R U R^T.

Every stress here is the Cauchy stress in the frame of the stretch U (for a prescribed F = R U,
``R^T sigma R``): what the surrogates, which take U, predict. Output: one small Zarr store
(:func:`write_classical_store`) with a group per kind.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from homlearn.loading.paths import component_pairs, cyclic, load_unload, symmetric_from_components, uniaxial

PAIRS = component_pairs(3)
PATH_NAMES = ("uniaxial_tension", "uniaxial_compression", "load_unload", "cyclic", "cavity_expansion",
              "simple_shear")


def components(t: np.ndarray) -> np.ndarray:
    """Symmetric (..., 3, 3) -> (..., 6) in the store's component order."""
    return np.stack([t[..., i, j] for i, j in PAIRS], -1)


def polar_stretch(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R, U)`` with ``F = R U`` (U symmetric positive definite), for (..., 3, 3)."""
    w, v = np.linalg.eigh(np.swapaxes(F, -1, -2) @ F)
    U = np.einsum("...ik,...k,...jk->...ij", v, np.sqrt(w), v)
    Uinv = np.einsum("...ik,...k,...jk->...ij", v, 1.0 / np.sqrt(w), v)
    return F @ Uinv, U


def isochoric_uniaxial(log_strain: np.ndarray) -> np.ndarray:
    """U = diag(e^s, e^-s/2, e^-s/2) for a log-strain history s (T,) -> (T, 3, 3)."""
    U = np.zeros((len(log_strain), 3, 3))
    U[:, 0, 0] = np.exp(log_strain)
    U[:, 1, 1] = U[:, 2, 2] = np.exp(-0.5 * log_strain)
    return U


def rotation_about_x2(theta: float) -> np.ndarray:
    """Rotation by ``theta`` (rad) about x2: the local axes x1'-x3' of 'pcanet' SI-C."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotate(U: np.ndarray, R: np.ndarray) -> np.ndarray:
    """R U R^T for histories (..., T, 3, 3) and rotations broadcasting against (..., 3, 3)."""
    R = np.asarray(R)[..., None, :, :]
    return R @ U @ np.swapaxes(R, -1, -2)


def classical_paths(cfg: Mapping[str, Any], n_steps: int) -> dict[str, np.ndarray]:
    """The classical stretch histories (n_steps + 1, 3, 3) on normalized time 0..1 (see the
    module text); ``cfg``: rno.mg_taylor.classical."""
    eps = cfg["max_strain"]
    out = {"uniaxial_tension": isochoric_uniaxial(uniaxial(n_steps, 1.0, eps).values[0, :, 0]),
           "uniaxial_compression": isochoric_uniaxial(-uniaxial(n_steps, 1.0, eps).values[0, :, 0]),
           "load_unload": isochoric_uniaxial(load_unload(n_steps, 1.0, eps).values[0, :, 0]),
           "cyclic": isochoric_uniaxial(cyclic(n_steps, 1.0, cfg["cyclic_amplitude"],
                                               cfg["cyclic_cycles"]).values[0, :, 0])}
    t = np.linspace(0.0, 1.0, n_steps + 1)
    hoop = 1.0 + eps * t                      # cavity expansion, plane strain: U = diag(1/h, h, 1)
    cav = np.zeros((n_steps + 1, 3, 3))
    cav[:, 0, 0], cav[:, 1, 1], cav[:, 2, 2] = 1.0 / hoop, hoop, 1.0
    out["cavity_expansion"] = cav
    F = np.broadcast_to(np.eye(3), (n_steps + 1, 3, 3)).copy()
    F[:, 0, 1] = cfg["shear"] * t
    out["simple_shear"] = polar_stretch(F)[1]
    return {name: out[name] for name in PATH_NAMES}


# ----------------------------------------------------------------------------- Taylor solves


def _material(cfg, n_paths: int, dt: float, device):
    import torch

    from homlearn.datasets.mg_taylor import orientations
    from homlearn.materials.magnesium import MagnesiumCrystalPlasticity, MgParameters

    G = cfg["n_grains"]
    rot = torch.from_numpy(orientations(cfg)).permute(1, 2, 0)[None, ..., None, None]
    rot = rot.expand(n_paths, 3, 3, G, 1, 1).contiguous().to(device)
    return MagnesiumCrystalPlasticity(rot, MgParameters.from_dict(cfg["material"]), dt=dt,
                                      local_tol=cfg["local_tol"], local_max_iter=cfg["local_max_iter"])


def taylor_stress(cfg: Mapping[str, Any], U: np.ndarray, duration: float | None = None,
                  device: str = "cpu") -> np.ndarray:
    """Cauchy stress histories (P, T, 3, 3) of the mg_taylor material (config section ``cfg``)
    under prescribed stretch histories U (P, T, 3, 3) on T - 1 equal steps over ``duration``
    (default: the dataset's), in batches of ``cfg['batch_size']`` paths."""
    import torch

    from homlearn.solvers.fft import SolveStatus
    from homlearn.solvers.taylor import solve_taylor_prescribed

    U = np.asarray(U, dtype=float)
    if U.ndim != 4 or U.shape[-2:] != (3, 3) or not np.allclose(U[:, 0], np.eye(3)):
        raise ValueError(f"stretch histories must be (P, T, 3, 3) starting at I, got shape {U.shape}")
    dt = (cfg["duration"] if duration is None else duration) / (U.shape[1] - 1)
    out = []
    for s in range(0, len(U), cfg["batch_size"]):
        chunk = torch.from_numpy(U[s:s + cfg["batch_size"]]).to(device)
        mat = _material(cfg, len(chunk), dt, device)
        res = solve_taylor_prescribed(mat, chunk, cfg["n_grains"], dt=dt, device=device)
        if bool((res.status != SolveStatus.CONVERGED).any()):
            raise RuntimeError(f"Taylor solve failed for paths {s + np.flatnonzero(res.status.cpu().numpy())}")
        out.append(res.mean_stress.cpu().numpy())
    return np.concatenate(out)


def uniaxial_stress_test(cfg: Mapping[str, Any], rate: float, max_strain: float, n_steps: int,
                         device: str = "cpu") -> dict[str, np.ndarray]:
    """Uniaxial stress tension at the constant true strain rate ``rate`` (1/s) to the log strain
    ``max_strain`` in ``n_steps`` steps (F_11 = exp(rate t), the other mean stresses zero;
    mixed control, the upper triangle of F held at zero). The steps grow linearly (times
    t_k = T (k / n)^2, our choice) so the elastic range, a fraction of a percent of the strain,
    is resolved by some ten steps. Returns times (s), stretch U and the Cauchy stress in U's
    frame (T, 3, 3)."""
    from homlearn.solvers.fft import SolveStatus
    from homlearn.solvers.fft.control import MacroControl
    from homlearn.solvers.taylor import solve_taylor_history

    duration = max_strain / rate
    times = duration * np.linspace(0.0, 1.0, n_steps + 1) ** 2
    dts = np.diff(times)
    mat = _material(cfg, 1, float(dts[0]), device)
    base = MacroControl.uniaxial_stress(3, 1.0, kinematics="finite")

    def control(k):
        F = base.strain.clone()
        F[0, 0] = np.exp(rate * times[k])
        return MacroControl(F.to(device), base.stress_mask, None)

    res = solve_taylor_history(mat, control, n_steps, cfg["n_grains"], dt=dts, kinematics="finite", tol=1e-9,
                               device=device)
    if int(res.status[0]) != SolveStatus.CONVERGED:
        raise RuntimeError(f"uniaxial stress test at rate {rate}/s failed: {SolveStatus(int(res.status[0])).name}")
    F = res.mean_strain[0].cpu().numpy()
    P = res.mean_stress[0].cpu().numpy()
    sigma = P @ np.swapaxes(F, -1, -2) / np.linalg.det(F)[:, None, None]
    R, U = polar_stretch(F)
    return {"time": times, "stretch": U,
            "stress": np.swapaxes(R, -1, -2) @ sigma @ R}


def random_rotations(n: int, seed: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(n, random_state=seed).as_matrix()


def solve_classical(cfg_mg: Mapping[str, Any], case: str, store, cfg: Mapping[str, Any], device: str = "cpu") -> dict:
    """Every Taylor solve of the experiment (config sections ``mg_taylor`` and ``rno.mg_taylor``):
    calibration tests, classical paths, the theta sweep and the rotated test paths of ``store``
    (the first ``isotropy.n_paths`` test paths, each under ``isotropy.n_rotations`` random
    rotations). Histories are stored on the dataset's stored grid."""
    import xarray as xr

    from homlearn.datasets.mg_taylor import case_cfg, draw_path

    n, stride = cfg_mg["n_steps"], cfg_mg["n_steps"] // cfg_mg["n_stored"]
    cal = cfg["calibration"]
    tests = [uniaxial_stress_test(cfg_mg, r, cal["max_strain"], n, device) for r in cal["rates"]]
    calibration = {"rate": np.asarray(cal["rates"], dtype=float),  # every solver step (graded grid)
                   "time": np.stack([c["time"] for c in tests]),
                   "stretch": np.stack([components(c["stretch"]) for c in tests]),
                   "stress": np.stack([components(c["stress"]) for c in tests])}

    paths = classical_paths(cfg["classical"], n)
    U = np.stack(list(paths.values()))
    classical = {"stretch": components(U[:, ::stride]), "stress": components(taylor_stress(cfg_mg, U, device=device)[:, ::stride])}

    iso = cfg["isotropy"]
    thetas = np.linspace(0.0, 2 * np.pi, iso["n_angles"], endpoint=False)
    base = paths["uniaxial_tension"]
    Ut = np.stack([rotate(base, rotation_about_x2(th)) for th in thetas])
    theta = {"theta": thetas, "stretch": components(Ut[:, ::stride]),
             "stress": components(taylor_stress(cfg_mg, Ut, device=device)[:, ::stride])}

    ds = xr.open_zarr(store, consolidated=None)
    ok = ds["status"].values == 1
    test_ids = np.flatnonzero(ok & (ds["split"].values == 2))[:iso["n_paths"]]
    rots = random_rotations(len(test_ids) * iso["n_rotations"], iso["seed"]).reshape(len(test_ids), iso["n_rotations"], 3, 3)
    fine = np.stack([symmetric_from_components(draw_path(cfg_mg, case_cfg(cfg_mg, case), int(i))[0].values[0], 3)
                     for i in test_ids])
    if not np.allclose(components(fine[:, ::stride]), ds["stretch"].values[test_ids], rtol=0, atol=1e-12):
        raise RuntimeError(f"{store}: the redrawn test paths differ from the stored ones (other config?)")
    Ur = rotate(fine[:, None], rots).reshape(-1, n + 1, 3, 3)
    rotated = {"sample": test_ids, "rotation": rots,
               "stretch": components(Ur[:, ::stride]).reshape(len(test_ids), iso["n_rotations"], -1, 6),
               "stress": components(taylor_stress(cfg_mg, Ur, device=device)[:, ::stride]).reshape(
                   len(test_ids), iso["n_rotations"], -1, 6)}
    return {"calibration": calibration, "classical": classical, "theta": theta, "rotated": rotated,
            "path_names": list(paths), "time": np.linspace(0.0, 1.0, cfg_mg["n_stored"] + 1),
            "duration": float(cfg_mg["duration"])}


def write_classical_store(path, res: Mapping, attrs: Mapping | None = None) -> None:
    """The results of :func:`solve_classical` as one Zarr store (xarray), stresses in MPa."""
    import xarray as xr

    comp = ", ".join(f"{i}{j}" for i, j in PAIRS)
    c, k, th, r = res["calibration"], res["classical"], res["theta"], res["rotated"]
    ds = xr.Dataset(
        {"calibration_time": (("rate", "ctime"), c["time"], {"units": "s"}),
         "calibration_stretch": (("rate", "ctime", "component"), c["stretch"]),
         "calibration_stress": (("rate", "ctime", "component"), c["stress"], {"units": "MPa"}),
         "path_stretch": (("path", "time", "component"), k["stretch"]),
         "path_stress": (("path", "time", "component"), k["stress"], {"units": "MPa"}),
         "theta_stretch": (("theta", "time", "component"), th["stretch"]),
         "theta_stress": (("theta", "time", "component"), th["stress"], {"units": "MPa"}),
         "rotated_matrix": (("test", "rot", "i", "j"), r["rotation"]),
         "rotated_stretch": (("test", "rot", "time", "component"), r["stretch"]),
         "rotated_stress": (("test", "rot", "time", "component"), r["stress"], {"units": "MPa"}),
         "rotated_sample": (("test",), r["sample"])},
        coords={"rate": c["rate"], "path": list(res["path_names"]), "theta": th["theta"], "time": res["time"]},
        attrs={"components": comp, "duration_s": res["duration"], "frame": "Cauchy stress in the frame of U",
               **dict(attrs or {})})
    ds.to_zarr(path, mode="w", consolidated=True)
