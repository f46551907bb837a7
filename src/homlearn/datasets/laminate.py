"""The laminate exemplar (paper 'rno' section 4): in-plane stress histories of a two-layer
elasto-viscoplastic laminate, with the model's own state variables.

One store per Table 1 case (``laminate_<case>.zarr``), the same strain paths and split in every
store: sample i's path is path i of ``homlearn.loading.paths.random_paths`` (11, 12 and 22
independent, in that order, Rademacher knots with F_max = 0.33, PCHIP interpolation), solved on n_steps steps
(SDIRK3, Newton per stage, see ``homlearn.solvers.analytic.laminate``) through the PCHIP path
itself and stored on n_out + 1 times (paper: 100 steps). Stored: mean strain and stress
(components 11, 22, 12), plastic strains (11, 22, 12) and accumulated plastic strain q of each
layer (the eight model variables of the paper's auto-encoder study), and the largest
interface/plane-stress residual of each sample.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import zarr

from homlearn import __version__
from homlearn.data.split import draw_split
from homlearn.data.store import BatchWriter, Layout, Variable, create_store

SPLIT_NAMES = {0: "train", 1: "test"}
COMPONENTS = ("11, 22, 12 (tensor components, homlearn.loading.paths.component_pairs order; the shear "
              "is eps_12 = gamma_12 / 2)")
DEVIATIONS = (
    "plane stress is imposed on the mean (<sigma33> = 0) with eps33 continuous across the interface, "
    "the reading under which the paper's eq. 24 holds; sigma33 = 0 in each layer would contradict it",
    "h = 1 of eq. 20 read as 1 GPa (the unit of lambda and mu); with 1 MPa the hardening would be "
    "invisible (H < 0.001 for q < 0.33)",
    "path duration T = 1 s, 10 intervals of uniform random length (our choices; the paper gives "
    "T = 200 in section 2 without units); 'maximum strain of 33%' read as the bound |eps_ij(t)| "
    "<= 0.33, F_max = 0.33 / sqrt(M T) (before session 11: F_max = 0.33, final-strain std 33%); "
    "paths are PCHIP interpolants (the papers say cubic Hermite)",
    "time integration is SDIRK3 on n_steps steps (the paper does not state its integrator)",
)


def layout(cfg, batch_size) -> Layout:
    return Layout(cfg["n_trajectories"], batch_size, capacity={},
                  fixed={"time": cfg["path"]["n_out"] + 1, "component": 3, "layer": 2})


VARIABLES = {
    "time": Variable(("time",), "float64", {"long_name": "time", "units": "s"}),
    "strain": Variable(("sample", "time", "component"), "float64",
                       {"long_name": "prescribed mean in-plane strain", "units": "1", "components": COMPONENTS},
                       np.nan),
    "stress": Variable(("sample", "time", "component"), "float64",
                       {"long_name": "mean in-plane stress", "units": "MPa", "components": COMPONENTS}, np.nan),
    "plastic_strain": Variable(("sample", "time", "layer", "component"), "float64",
                               {"long_name": "plastic strain of each layer (+ soft, - hard)", "units": "1",
                                "components": COMPONENTS, "layers": "+, -"}, np.nan),
    "accumulated_plastic_strain": Variable(("sample", "time", "layer"), "float64",
                                           {"long_name": "accumulated plastic strain q of each layer",
                                            "units": "1", "layers": "+, -"}, np.nan),
    "residual": Variable(("sample",), "float64",
                         {"long_name": "largest |<sigma33>| over the history (plane stress; interface "
                                       "tractions are solved to the same tolerance)", "units": "MPa"}, np.nan),
    "newton_iterations": Variable(("sample",), "int32", {"long_name": "most Newton iterations in one stage"}),
    "yield_stress": Variable(("layer",), "float64", {"long_name": "sigma0 of each layer", "units": "MPa"}),
    "rate_exponent": Variable(("layer",), "float64", {"long_name": "rate-hardening exponent m of each layer"}),
    "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                            "flag_meanings": list(SPLIT_NAMES.values())}),
}


def material(cfg, case_name: str):
    from homlearn.solvers.analytic.laminate import case

    return case(case_name, h=cfg["hardening_modulus"])


def store_material(store):
    """The Table 1 case (and hardening modulus) a laminate store was solved with, from its attributes."""
    import zarr

    attrs = zarr.open_group(str(store), mode="r").attrs
    return material(attrs["config"], attrs["case"])


def sample_paths(cfg, first: int, count: int):
    from homlearn.loading.paths import config_amplitude, random_paths

    p = cfg["path"]
    return random_paths(count, 3, t_final=p["t_final"], n_intervals=p["n_intervals"], max_value=config_amplitude(p),
                        intervals=p["intervals"], n_steps=p["n_steps"], seed=cfg["seed"], first_index=first)


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Solve one batch of paths together (vectorised Newton), write its chunk."""
    from homlearn.loading.paths import hermite_interpolant
    from homlearn.solvers.analytic.composite1d import batch_interpolant
    from homlearn.solvers.analytic.laminate import solve

    cfg = params["cfg"]
    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    idx = np.arange(writer.samples.start, writer.samples.stop)
    P = len(idx)
    paths = sample_paths(cfg, int(idx[0]), P)
    pp = batch_interpolant([hermite_interpolant(paths.knots_t[k], paths.knots[k][:, c])
                            for k in range(P) for c in range(3)])
    sol = solve(material(cfg, params["case"]), paths.t, paths.values, path=lambda t: np.asarray(pp(t)).reshape(P, 3),
                method=cfg["method"], tol=cfg["newton_tol"], max_iter=cfg["max_iter"])
    stride = cfg["path"]["n_steps"] // cfg["path"]["n_out"]
    failures = []
    for k, i in enumerate(idx):
        if not sol.success[k]:
            writer.fail(k, -2)
            failures.append({"sample": int(i), "code": -2, "reason": sol.messages[k]})
            continue
        writer.add(k, {"strain": sol.strain[k, ::stride], "stress": sol.stress[k, ::stride],
                       "plastic_strain": sol.plastic_strain[k, ::stride],
                       "accumulated_plastic_strain": sol.accumulated_plastic_strain[k, ::stride],
                       "residual": float(np.max(np.abs(sol.mean_stress33[k]))),
                       "newton_iterations": int(sol.newton_iterations[k])}, {})
    writer.flush()
    return failures


def create_dataset_store(path, cfg, case_name, batch_size):
    from homlearn.solvers.analytic.laminate import INNER_TOL

    p = cfg["path"]
    if p["n_steps"] % p["n_out"]:
        raise ValueError(f"laminate.path.n_steps ({p['n_steps']}) must be a multiple of n_out ({p['n_out']})")
    drawn_over = cfg["split"].get("drawn_over")
    if drawn_over is not None and drawn_over > cfg["n_trajectories"]:
        raise ValueError(f"laminate.split.drawn_over ({drawn_over}) exceeds laminate.n_trajectories "
                         f"({cfg['n_trajectories']}); allowed: 1 to n_trajectories, or unset for all paths")
    mat = material(cfg, case_name)
    content = {k: v for k, v in cfg.items() if k not in ("batch_size", "cases")} | {"case": case_name}
    group = create_store(path, layout(cfg, batch_size), VARIABLES, {
        "exemplar": "laminate", "homlearn_version": __version__, "config": dict(cfg), "case": case_name,
        "paper": "rno section 4 (eq. 17-24, Table 1)", "material": mat.as_dict(),
        "solver": {"time_integration": cfg["method"], "solver_steps": p["n_steps"],
                   "newton": "per stage on (a1, a2, eps33): interface tractions and <sigma33>",
                   "newton_tol_MPa": cfg["newton_tol"] * max(mat.sigma0), "return_map_tol": INNER_TOL},
        "deviation": list(DEVIATIONS)},
        content=content, replace_stale=True)
    if not group.attrs.get("split_drawn"):
        fine = np.linspace(0.0, p["t_final"], p["n_steps"] + 1)
        group["time"][:] = fine[::p["n_steps"] // p["n_out"]]
        group["yield_stress"][:] = mat.sigma0
        group["rate_exponent"][:] = mat.m
        group["split"][:] = draw_split(cfg["n_trajectories"], cfg["split"]["fractions"], cfg["split"]["seed"],
                                       drawn_over)
        group.attrs["split_drawn"] = True
    return group


def run_solve_stage(cfg, dask_cfg, case_name, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending path of one Table 1 case (resumable); returns the stage report."""
    from homlearn.parallel.stage import run_stage_from_config

    create_dataset_store(store_path, cfg, case_name, cfg["batch_size"])
    return run_stage_from_config(f"laminate {case_name}", store_path, solve_batch, {"cfg": dict(cfg), "case": case_name},
                                 {**dask_cfg, "batch_size": cfg["batch_size"]}, threads, failure_log, client)
