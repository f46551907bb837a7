"""Named test paths of 'pcanet' Fig. 1e-g solved on the cp_paths2d cell: the same microstructure,
material and solver settings as the dataset (:func:`homlearn.datasets.cp_paths2d.solve_deformation_paths`).

Stretch paths (U12 = 0, so F = U, diagonal; 'pcanet' sec. 2.2), over the dataset's (0, T):

- ``uniaxial``: U11 = f(t) = 1 + a t / T, U22 = 1 / f(t) (Fig. 1e; the paper's "f(t) = c t"
  read as a ramp from the identity);
- ``load_unload``: f up to 1 + a at T / 2, back to 1 at T (Fig. 1f; its "c (t - 0.5)" read as
  c (1 - t), see :func:`homlearn.loading.paths.load_unload`);
- ``cavity``: U11 = 1 / U22 = 1 / sqrt(1 + c t^2) (Fig. 1g, "shear"), c such that U22(T) = 1 + a.

``a`` = ``surrogates_cp_paths2d.named_paths.amplitude`` (default 0.1, the dataset's maximum
strain). Written as a small Zarr store through xarray (dims path, step, i, j).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

NAMES = ("uniaxial", "load_unload", "cavity")


def named_stretch_paths(cfg: Mapping[str, Any], amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (n_steps + 1,) and F = U (3, n_steps + 1, 2, 2) of :data:`NAMES` on the solver grid
    of the cp_paths2d config ``cfg``."""
    from homlearn.loading.paths import (cavity_expansion, identity_components, isochoric_lateral, load_unload,
                                        symmetric_from_components, uniaxial)

    n, T = cfg["n_steps"], cfg["t_final"]
    eye = identity_components(2)
    up = isochoric_lateral(uniaxial(n, T, amplitude, components=3, start=eye), 2)
    lu = isochoric_lateral(load_unload(n, T, amplitude, components=3, start=eye), 2)
    cav = cavity_expansion(n, T, c=((1.0 + amplitude) ** 2 - 1.0) / T ** 2, d=2)
    values = np.concatenate([up.values, lu.values, cav.values])
    return up.t, symmetric_from_components(values, 2)


def solve_named_paths(cfg: Mapping[str, Any], amplitude: float, out, device: str = "cpu") -> dict:
    """Solve :data:`NAMES` and write ``out`` (Zarr): time, F, stress (mean Cauchy, stored steps),
    status; returns a summary (status and solver counts per path)."""
    import xarray as xr

    from homlearn.datasets.cp_paths2d import solve_deformation_paths

    t, F = named_stretch_paths(cfg, amplitude)
    Fm, sigma, res = solve_deformation_paths(cfg, F, device)
    every = cfg["n_steps"] // cfg["n_stored"]
    ds = xr.Dataset(
        {"time": (("step",), t[::every], {"units": "s"}),
         "F": (("path", "step", "i", "j"), Fm, {"long_name": "mean deformation gradient (= U)"}),
         "stress": (("path", "step", "i", "j"), sigma, {"long_name": "mean Cauchy stress", "units": "MPa"}),
         "status": (("path",), res.status.cpu().numpy().astype(np.int32), {"long_name": "0 = converged"}),
         "cutbacks": (("path",), res.cutbacks.cpu().numpy().astype(np.int32))},
        coords={"path": list(NAMES)},
        attrs={"paper": "pcanet Fig. 1e-g", "amplitude": float(amplitude),
               "cp_paths2d": {k: cfg[k] for k in ("case", "grid", "n_grains", "microstructure_seed", "n_steps",
                                                   "n_stored", "t_final", "tol", "krylov_tol")}})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_zarr(out, mode="w", consolidated=False)
    return {"paths": list(NAMES), "status": ds["status"].values.tolist(), "cutbacks": ds["cutbacks"].values.tolist(),
            "newton_iterations": res.newton_iterations.cpu().numpy().tolist(), "store": str(out)}


def load_named_paths(path):
    """The named-path store written by :func:`solve_named_paths` (xarray Dataset)."""
    import xarray as xr

    return xr.open_zarr(path, consolidated=False)
