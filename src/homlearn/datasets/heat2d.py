"""The heat2d exemplar (paper gcnn section 3.1, appendix A.1): stores, batch tasks and stages.

Two stages, each resumable and spread over Dask:
  microstructure: gmsh Voronoi polycrystals -> ``microstructures.zarr`` (meshes, grains, graph)
  solve:          DOLFINx steady conduction -> the dataset ``datasets/heat2d.zarr`` (graph inputs,
                  effective conductivity, temperature field, mixture-rule estimates, bounds, split)
This module imports neither torch nor dolfinx at import time (workers stay light).
"""

from __future__ import annotations

import traceback
from typing import Any, Mapping

import numpy as np
import zarr

from homlearn import __version__
from homlearn.data.split import draw_split
from homlearn.data.store import (BatchWriter, CapacityError, Layout, Variable, create_store,
                                 layout_of, read_ragged)

SPLIT_NAMES = {0: "train", 1: "test", 2: "validation"}


def sample_seed(base_seed: int, index: int) -> int:
    """Independent, reproducible seed of sample ``index`` (numpy SeedSequence spawning)."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1, dtype=np.uint32)[0])


def layout(cfg: Mapping[str, Any], batch_size: int) -> Layout:
    max_cells = cfg["max_cells"]
    max_grains = cfg["n_grains"][1]
    if cfg["tessellation"] == "delaunay":
        max_grains = 2 * (max_grains + 4)  # triangles of the seeds plus the square's corners
    return Layout(
        n_samples=cfg["n_samples"], batch_size=batch_size,
        capacity={"cell": max_cells, "point": max_cells, "edge": 2 * max_cells, "grain": max_grains},
        fixed={"xy": 2, "vertex": 3, "pair": 2, "component": 2},
    )


MICROSTRUCTURE_VARIABLES = {
    "seed": Variable(("sample",), "int64", {"long_name": "random seed of the sample"}),
    "n_grains": Variable(("sample",), "int32", {"long_name": "number of grains"}),
    "point_xy": Variable(("point", "xy"), "float64", {"long_name": "mesh node coordinates", "units": "m"}),
    "cell_nodes": Variable(("cell", "vertex"), "int32",
                           {"long_name": "triangle node indices, local to the sample, counter-clockwise"}),
    "cell_grain": Variable(("cell",), "int32", {"long_name": "grain of each triangle (assignment S, eq. 9)"}),
    "edge_cells": Variable(("edge", "pair"), "int32",
                           {"long_name": "pairs of triangles sharing an edge (adjacency A, eq. 8)"}),
    "grain_angle": Variable(("grain",), "float64", {"long_name": "crystal orientation angle", "units": "rad"}),
    "grain_seed": Variable(("grain", "xy"), "float64", {"long_name": "Voronoi seed of each grain"}),
}

DATASET_VARIABLES = {
    **MICROSTRUCTURE_VARIABLES,
    "cell_angle": Variable(("cell",), "float64", {"long_name": "orientation angle of each triangle", "units": "rad"}),
    "cell_area": Variable(("cell",), "float64", {"long_name": "triangle area", "units": "m2"}),
    "grain_area": Variable(("grain",), "float64", {"long_name": "grain area (volume fraction)", "units": "m2"}),
    "temperature": Variable(("point",), "float64", {"long_name": "normalized temperature at the nodes"}),
    "kbar": Variable(("sample", "component"), "float64",
                     {"long_name": "effective conductivity -(1/V) int q dV (eq. A.4); component 0 is the target",
                      "units": "W/m-K"}, fill_value=np.nan),
    "kbar_gradient_rule": Variable(("sample",), "float64",
                                   {"long_name": "mixture rule, homogeneous gradient (eq. 6), xx"}, np.nan),
    "kbar_flux_rule": Variable(("sample",), "float64",
                               {"long_name": "mixture rule, homogeneous flux (eq. 7), xx"}, np.nan),
    "kbar_lower": Variable(("sample",), "float64", {"long_name": "lower bound 1/<(kappa^-1)_xx>"}, np.nan),
    "kbar_upper": Variable(("sample",), "float64", {"long_name": "upper bound <kappa_xx>"}, np.nan),
    "solver_residual": Variable(("sample",), "float64", {"long_name": "relative residual of the linear solve"}, np.nan),
    "split": Variable(("sample",), "int8", {"long_name": "data split",
                                            "flag_values": list(SPLIT_NAMES), "flag_meanings": list(SPLIT_NAMES.values())}),
}


# ---------------------------------------------------------------------------------------------
# batch tasks (run in Dask workers)

def microstructure_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Generate and mesh every sample of one batch; failures are recorded, not raised."""
    from homlearn.microstructure.polycrystal2d import MeshingError, generate_polycrystal

    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    failures = []
    for local, i in enumerate(range(writer.samples.start, writer.samples.stop)):
        seed = sample_seed(params["seed"], i)
        try:
            pc = generate_polycrystal(seed, n_grains=tuple(params["n_grains"]),
                                      target_cells=params["target_cells"],
                                      tessellation=params["tessellation"])
            writer.add(local, {"seed": seed, "n_grains": pc.n_grains}, {
                "point_xy": pc.points, "cell_nodes": pc.triangles, "cell_grain": pc.cell_grain,
                "edge_cells": pc.edges, "grain_angle": pc.grain_angle, "grain_seed": pc.grain_seed})
        except MeshingError as exc:
            writer.fail(local, -1)
            failures.append({"sample": i, "code": -1, "reason": str(exc)})
        except CapacityError as exc:
            writer.fail(local, -3)
            failures.append({"sample": i, "code": -3, "reason": str(exc)})
        except Exception as exc:  # recorded with its traceback; the stage goes on
            writer.fail(local, -9)
            failures.append({"sample": i, "code": -9, "reason": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=3)})
    writer.flush()
    return failures


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Solve steady conduction for every sample of one batch and write the dataset block."""
    from homlearn.solvers.fem.heat import conductivity_bounds, mixture_rules

    kappa = tuple(params["kappa"])
    solver = _solver(kappa)
    micro = zarr.open_group(params["microstructures"], mode="r")
    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    mstatus = micro["status"][writer.samples]
    sample_vars = {k: micro[k][writer.samples] for k in ("seed", "n_grains")}
    ragged = {k: _block(micro, k, batch) for k in
              ("point_xy", "cell_nodes", "cell_grain", "edge_cells", "grain_angle", "grain_seed")}
    offsets = {d: micro[f"{d}_offset"][writer.samples] - layout_of(micro).block(d, batch).start
               for d in ("point", "cell", "edge", "grain")}
    counts = {d: micro[f"{d}_count"][writer.samples] for d in ("point", "cell", "edge", "grain")}
    failures = []
    for local, i in enumerate(range(writer.samples.start, writer.samples.stop)):
        if mstatus[local] != 1:
            writer.fail(local, -4)
            failures.append({"sample": i, "code": -4, "reason": f"microstructure status {int(mstatus[local])}"})
            continue

        def rows(name, dim):
            o, c = offsets[dim][local], counts[dim][local]
            return ragged[name][o:o + c]

        pts, tri, grain = rows("point_xy", "point"), rows("cell_nodes", "cell"), rows("cell_grain", "cell")
        g_angle = rows("grain_angle", "grain")
        cell_angle = g_angle[grain]
        try:
            sol = solver.solve(pts, tri, cell_angle)
            if not np.all(np.isfinite(sol.kbar)) or sol.residual > params.get("max_residual", 1e-8):
                raise RuntimeError(f"linear solve residual {sol.residual:.3e}")
        except Exception as exc:
            writer.fail(local, -2)
            failures.append({"sample": i, "code": -2, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        area = _triangle_areas(pts, tri)
        g_area = np.bincount(grain, weights=area, minlength=len(g_angle))
        grad_rule, flux_rule = mixture_rules(area, cell_angle, kappa)
        lower, upper = conductivity_bounds(area, cell_angle, kappa)
        writer.add(local, {
            "seed": sample_vars["seed"][local], "n_grains": sample_vars["n_grains"][local],
            "kbar": sol.kbar, "kbar_gradient_rule": grad_rule, "kbar_flux_rule": flux_rule,
            "kbar_lower": lower, "kbar_upper": upper, "solver_residual": sol.residual,
        }, {
            "point_xy": pts, "temperature": sol.temperature, "cell_nodes": tri, "cell_grain": grain,
            "cell_angle": cell_angle, "cell_area": area, "edge_cells": rows("edge_cells", "edge"),
            "grain_angle": g_angle, "grain_seed": rows("grain_seed", "grain"), "grain_area": g_area,
        })
    writer.flush()
    return failures


_SOLVERS: dict = {}


def _solver(kappa):
    """One compiled solver per worker process (forms are compiled once)."""
    if kappa not in _SOLVERS:
        from homlearn.solvers.fem.heat import HeatConduction2D
        _SOLVERS[kappa] = HeatConduction2D(kappa)
    return _SOLVERS[kappa]


def _block(group, name, batch):
    arr = group[name]
    return arr[layout_of(group).block(arr.metadata.dimension_names[0], batch)]


def _triangle_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    p = points[triangles]
    return 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                        - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))


# ---------------------------------------------------------------------------------------------
# stages (run in the driver: a Snakemake job or the CLI)

def _attrs(cfg, stage):
    return {"exemplar": "heat2d", "stage": stage, "homlearn_version": __version__,
            "config": dict(cfg), "paper": "gcnn section 3.1, appendix A.1"}


#: the config keys that determine each store's values (a change replaces the store on rerun)
MICROSTRUCTURE_CONTENT = ("n_samples", "seed", "tessellation", "n_grains", "target_cells", "max_cells")
DATASET_CONTENT = MICROSTRUCTURE_CONTENT + ("kappa", "split")


def create_microstructure_store(path, cfg, batch_size):
    return create_store(path, layout(cfg, batch_size), MICROSTRUCTURE_VARIABLES, _attrs(cfg, "microstructure"),
                        content={k: cfg[k] for k in MICROSTRUCTURE_CONTENT}, replace_stale=True)


def create_dataset_store(path, cfg, batch_size):
    group = create_store(path, layout(cfg, batch_size), DATASET_VARIABLES, {
        **_attrs(cfg, "solve"),
        "solver": {"method": "DOLFINx P1 Galerkin; reduced system by dense Cholesky (sparse LU above 1500 unknowns)", "kappa": list(cfg["kappa"]),
                   "boundary_conditions": "theta=0 at x=0, theta=1 at x=1, insulated y=0 and y=1"}},
        content={k: cfg[k] for k in DATASET_CONTENT}, replace_stale=True)
    if not group.attrs.get("split_drawn"):  # drawn once, when the store is made, never re-drawn
        split = draw_split(cfg["n_samples"], cfg["split"]["fractions"], cfg["split"]["seed"])
        group["split"][:] = split
        group.attrs["split_drawn"] = True
    return group


def run_microstructure_stage(cfg, dask_cfg, store_path, threads=1, failure_log=None, client=None):
    """Mesh every pending sample (resumable; on ``client`` if given); returns the stage report."""
    from homlearn.parallel.stage import run_stage_from_config

    create_microstructure_store(store_path, cfg, dask_cfg["batch_size"])
    params = {k: cfg[k] for k in ("seed", "n_grains", "target_cells", "tessellation")}
    return run_stage_from_config("microstructure", store_path, microstructure_batch, params, dask_cfg, threads,
                                 failure_log, client)


def run_solve_stage(cfg, dask_cfg, micro_path, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending sample (resumable; on ``client`` if given); returns the stage report."""
    from homlearn.parallel.stage import run_stage_from_config
    from homlearn.solvers.fem.heat import warm_jit_cache

    create_dataset_store(store_path, cfg, dask_cfg["batch_size"])
    warm_jit_cache()  # compile the forms once in the driver; workers load them from the cache
    params = {"kappa": list(cfg["kappa"]), "microstructures": str(micro_path)}
    return run_stage_from_config("solve", store_path, solve_batch, params, dask_cfg, threads, failure_log, client)
