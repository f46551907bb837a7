"""The viscoelastic3d exemplar (paper gcnn section 3.3, appendix A.3): stores, batch tasks, stages.

Two stages, each resumable and spread over Dask:
  microstructure: sphere packings meshed by gmsh -> ``microstructures.zarr`` (tetrahedral meshes,
                  cell clusters, face adjacency, sphere centres and radii, meshing retry counts)
  solve:          DOLFINx viscoelastic tension -> the dataset ``datasets/viscoelastic3d.zarr``: the
                  graph form used by the GCNN models (per-cell phase and volume, cell adjacency A,
                  inclusion assignment S, cluster phases, volumes and adjacency) and the target,
                  the volume-averaged stress history, plus the split
This module imports neither torch nor dolfinx at import time (workers stay light).
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Mapping

import numpy as np
import zarr

from homlearn import __version__
from homlearn.data.split import draw_split
from homlearn.data.store import BatchWriter, CapacityError, Layout, Variable, create_store, layout_of

SPLIT_NAMES = {0: "train", 1: "test", 2: "validation"}
COMPONENTS = ("xx", "yy", "zz", "yz", "xz", "xy")
PAPER = "gcnn section 3.3, appendix A.3"

#: packing and meshing keys (the microstructure store's content)
MICROSTRUCTURE_CONTENT = ("n_samples", "seed", "n_inclusions", "volume_fraction", "radius_range", "radius_beta",
                          "gap", "target_cells", "max_cells", "curvature_points", "algorithms", "max_reseeds",
                          "count_tolerance")
#: + the physics (the dataset store's content)
DATASET_CONTENT = MICROSTRUCTURE_CONTENT + ("matrix", "inclusion", "loading", "discretisation", "split")

DEVIATIONS = (
    "small strain (the paper integrates the unrotated rate of deformation, eq. A.10, to 50% strain)",
    "Prony weights: stretched exponential fitted onto the paper's 20 relaxation times (the paper's come "
    "from Long and Brown's Sylgard 184 calibration, not available)",
    "beta parameters of the radii and the volume-fraction target are ours (the paper gives neither)",
    "spheres kept a gap away from each other and from the cube faces (no touching or cut inclusions)",
)


def sample_seed(base_seed: int, index: int) -> int:
    """Independent, reproducible seed of sample ``index`` (numpy SeedSequence spawning)."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1, dtype=np.uint32)[0])


def n_times(cfg) -> int:
    return int(cfg["loading"]["n_steps"]) + 1


def layout(cfg: Mapping[str, Any], batch_size: int) -> Layout:
    max_cells = int(cfg["max_cells"])
    hi = int(cfg["n_inclusions"][1])
    return Layout(
        n_samples=cfg["n_samples"], batch_size=batch_size,
        capacity={"cell": max_cells, "point": max_cells // 3, "edge": 2 * max_cells, "inclusion": hi,
                  "cluster": hi + 1, "cluster_edge": hi * (hi + 1) // 2},
        fixed={"xyz": 3, "vertex": 4, "pair": 2, "time": n_times(cfg), "component": 6},
    )


MICROSTRUCTURE_VARIABLES = {
    "seed": Variable(("sample",), "int64", {"long_name": "random seed of the sample"}),
    "n_inclusions": Variable(("sample",), "int32", {"long_name": "number of spherical inclusions"}),
    "volume_fraction": Variable(("sample",), "float64",
                                {"long_name": "inclusion volume fraction of the spheres (nominal, 4/3 pi sum r^3)"},
                                np.nan),
    "mesh_size": Variable(("sample",), "float64", {"long_name": "uniform element size h of the bulk"}, np.nan),
    "mesh_algorithm": Variable(("sample",), "int8", {"long_name": "gmsh Mesh.Algorithm3D that succeeded",
                                                      "flag_values": [1, 4, 10],
                                                      "flag_meanings": ["Delaunay", "Frontal", "HXT"]}),
    "mesh_failures": Variable(("sample",), "int16", {"long_name": "failed meshing attempts before this mesh"}),
    "packing_failures": Variable(("sample",), "int16",
                                 {"long_name": "packings redrawn because a sphere found no place"}),
    "reseeds": Variable(("sample",), "int16", {"long_name": "sub-seed of the packing that was meshed"}),
    "point_xyz": Variable(("point", "xyz"), "float64", {"long_name": "mesh node coordinates", "units": "1"}),
    "cell_nodes": Variable(("cell", "vertex"), "int32",
                           {"long_name": "tetrahedron node indices, local to the sample, positively oriented"}),
    "cell_cluster": Variable(("cell",), "int16", {"long_name": "cluster of each tetrahedron: 0 matrix, "
                                                               "i + 1 inclusion i (assignment S)"}),
    "edge_cells": Variable(("edge", "pair"), "int32",
                           {"long_name": "pairs of tetrahedra sharing a face (adjacency A)"}),
    "inclusion_centre": Variable(("inclusion", "xyz"), "float64", {"long_name": "sphere centre"}),
    "inclusion_radius": Variable(("inclusion",), "float64", {"long_name": "sphere radius"}),
}

DATASET_VARIABLES = {
    **MICROSTRUCTURE_VARIABLES,
    "cell_phase": Variable(("cell",), "int8", {"long_name": "phase phi of each tetrahedron: 0 matrix, 1 inclusion"}),
    "cell_volume": Variable(("cell",), "float64", {"long_name": "tetrahedron volume", "units": "1"}),
    "cluster_phase": Variable(("cluster",), "int8", {"long_name": "phase of each cluster (0 matrix, 1 inclusion)"}),
    "cluster_volume": Variable(("cluster",), "float64", {"long_name": "cluster volume (sum of its cells)"}),
    "cluster_edge": Variable(("cluster_edge", "pair"), "int32",
                             {"long_name": "pairs of clusters sharing a mesh face (reduced graph)"}),
    "mean_stress": Variable(("sample", "time", "component"), "float64",
                            {"long_name": "volume-averaged Cauchy stress (1/V) int sigma dV",
                             "units": "MPa", "components": list(COMPONENTS)}, np.nan),
    "reaction_stress": Variable(("sample", "time"), "float64",
                                {"long_name": "reaction force on the face x = 1 per unit area", "units": "MPa"},
                                np.nan),
    "solver_residual": Variable(("sample",), "float64",
                                {"long_name": "largest relative residual of the factorised solves"}, np.nan),
    "n_dofs": Variable(("sample",), "int64", {"long_name": "unknowns of the discretisation"}),
    "solve_seconds": Variable(("sample",), "float64", {"long_name": "wall time of the solve", "units": "s"},
                              np.nan),
    "split": Variable(("sample",), "int8", {"long_name": "data split", "flag_values": list(SPLIT_NAMES),
                                            "flag_meanings": list(SPLIT_NAMES.values())}),
}

_STATUS_MESH, _STATUS_SOLVE, _STATUS_CAPACITY, _STATUS_UPSTREAM, _STATUS_OTHER = -1, -2, -3, -4, -9


# ---------------------------------------------------------------------------------------------
# batch tasks (run in Dask workers)

def _packing_kwargs(params):
    return {k: (tuple(params[k]) if isinstance(params[k], list) else params[k]) for k in
            ("n_inclusions", "volume_fraction", "radius_range", "radius_beta", "gap", "target_cells",
             "curvature_points", "algorithms", "max_reseeds", "count_tolerance")}


def microstructure_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Pack and mesh every sample of one batch; failures are recorded, not raised."""
    from homlearn.microstructure.inclusions import MeshingError, generate_inclusions

    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    failures = []
    kwargs = _packing_kwargs(params)
    for local, i in enumerate(range(writer.samples.start, writer.samples.stop)):
        seed = sample_seed(params["seed"], i)
        try:
            c = generate_inclusions(seed, **kwargs)
            info = c.info
            writer.add(local, {
                "seed": seed, "n_inclusions": c.n_inclusions, "volume_fraction": c.nominal_volume_fraction,
                "mesh_size": info["h"], "mesh_algorithm": info["algorithm"], "mesh_failures": info["mesh_failures"],
                "packing_failures": info["packing_failures"], "reseeds": info["reseeds"],
            }, {
                "point_xyz": c.points, "cell_nodes": c.tets, "cell_cluster": c.cell_cluster,
                "edge_cells": c.edges, "inclusion_centre": c.centres, "inclusion_radius": c.radii,
            })
        except MeshingError as exc:
            writer.fail(local, _STATUS_MESH)
            failures.append({"sample": i, "code": _STATUS_MESH, "reason": str(exc)})
        except CapacityError as exc:
            writer.fail(local, _STATUS_CAPACITY)
            failures.append({"sample": i, "code": _STATUS_CAPACITY, "reason": str(exc)})
        except Exception as exc:  # recorded with its traceback; the stage goes on
            writer.fail(local, _STATUS_OTHER)
            failures.append({"sample": i, "code": _STATUS_OTHER, "reason": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=3)})
    writer.flush()
    return failures


_SOLVERS: dict = {}


def _solver(params):
    """One solver per worker process and physics (forms compiled once)."""
    import json

    key = json.dumps([params["matrix"], params["inclusion"], params["discretisation"]], sort_keys=True)
    if key not in _SOLVERS:
        from homlearn.solvers.fem.viscoelastic import ViscoelasticSolver, materials

        inc = params["inclusion"]
        _SOLVERS[key] = ViscoelasticSolver(materials().matrix_material(params["matrix"]),
                                           (inc["young"], inc["poisson"]), params["discretisation"])
    return _SOLVERS[key]


def solve_batch(store_path: str, batch: int, params: Mapping[str, Any]) -> list[dict]:
    """Solve the tension history of every sample of one batch and write the dataset block."""
    from homlearn.solvers.fem.viscoelastic import Loading

    solver = _solver(params)
    ld = params["loading"]
    loading = Loading(ld["strain_rate"], ld["max_strain"], ld["n_steps"])
    micro = zarr.open_group(params["microstructures"], mode="r")
    group = zarr.open_group(store_path, mode="r+")
    writer = BatchWriter(group, batch)
    mlay = layout_of(micro)
    mstatus = micro["status"][writer.samples]
    per_sample = {k: micro[k][writer.samples] for k in
                  ("seed", "n_inclusions", "volume_fraction", "mesh_size", "mesh_algorithm", "mesh_failures",
                   "packing_failures", "reseeds")}
    dims = ("point", "cell", "edge", "inclusion")
    ragged = {k: _block(micro, mlay, k, batch) for k in
              ("point_xyz", "cell_nodes", "cell_cluster", "edge_cells", "inclusion_centre", "inclusion_radius")}
    offsets = {d: micro[f"{d}_offset"][writer.samples] - mlay.block(d, batch).start for d in dims}
    counts = {d: micro[f"{d}_count"][writer.samples] for d in dims}
    failures = []
    for local, i in enumerate(range(writer.samples.start, writer.samples.stop)):
        if mstatus[local] != 1:
            writer.fail(local, _STATUS_UPSTREAM)
            failures.append({"sample": i, "code": _STATUS_UPSTREAM,
                             "reason": f"microstructure status {int(mstatus[local])}"})
            continue

        def rows(name, dim):
            o, c = offsets[dim][local], counts[dim][local]
            return ragged[name][o:o + c]

        pts, tets = rows("point_xyz", "point"), rows("cell_nodes", "cell").astype(np.int64)
        cluster = rows("cell_cluster", "cell").astype(np.int64)
        phase = (cluster > 0).astype(np.int8)
        t0 = time.perf_counter()
        try:
            sol = solver.solve(pts, tets, phase, loading)
            if not np.all(np.isfinite(sol.mean_stress)) or sol.residual > params["max_residual"]:
                raise RuntimeError(f"linear solve residual {sol.residual:.3e}")
        except Exception as exc:
            writer.fail(local, _STATUS_SOLVE)
            failures.append({"sample": i, "code": _STATUS_SOLVE, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        seconds = time.perf_counter() - t0
        graph = graph_form(pts, tets, cluster, rows("edge_cells", "edge"), int(counts["inclusion"][local]))
        try:
            writer.add(local, {
                **{k: v[local] for k, v in per_sample.items()},
                "mean_stress": sol.mean_stress, "reaction_stress": sol.reaction_stress,
                "solver_residual": sol.residual, "n_dofs": sol.n_dofs, "solve_seconds": seconds,
            }, {
                "point_xyz": pts, "cell_nodes": tets, "cell_cluster": cluster, "edge_cells": rows("edge_cells", "edge"),
                "inclusion_centre": rows("inclusion_centre", "inclusion"),
                "inclusion_radius": rows("inclusion_radius", "inclusion"),
                "cell_phase": phase, "cell_volume": graph["cell_volume"], "cluster_phase": graph["cluster_phase"],
                "cluster_volume": graph["cluster_volume"], "cluster_edge": graph["cluster_edge"],
            })
        except CapacityError as exc:
            writer.fail(local, _STATUS_CAPACITY)
            failures.append({"sample": i, "code": _STATUS_CAPACITY, "reason": str(exc)})
    writer.flush()
    return failures


def graph_form(points, tets, cluster, edges, n_inclusions: int) -> dict:
    """Per-cell volumes and the reduced graph (clusters: matrix and one per inclusion)."""
    from homlearn.microstructure.inclusions import tet_volumes

    vol = np.abs(tet_volumes(points, tets))
    n_clusters = n_inclusions + 1
    c = cluster[np.asarray(edges, dtype=np.int64)]
    c = np.sort(c[c[:, 0] != c[:, 1]], axis=1)
    cedges = np.unique(c, axis=0) if len(c) else np.zeros((0, 2), dtype=np.int64)
    return {"cell_volume": vol,
            "cluster_phase": (np.arange(n_clusters) > 0).astype(np.int8),
            "cluster_volume": np.bincount(cluster, weights=vol, minlength=n_clusters),
            "cluster_edge": cedges}


def _block(group, lay, name, batch):
    arr = group[name]
    return arr[lay.block(arr.metadata.dimension_names[0], batch)]


# ---------------------------------------------------------------------------------------------
# stages (run in the driver: a Snakemake job or the CLI)

def _attrs(cfg, stage):
    return {"exemplar": "viscoelastic3d", "stage": stage, "homlearn_version": __version__,
            "config": dict(cfg), "paper": PAPER, "deviations": list(DEVIATIONS)}


def create_microstructure_store(path, cfg):
    return create_store(path, layout(cfg, cfg["batch_size"]), MICROSTRUCTURE_VARIABLES,
                        _attrs(cfg, "microstructure"), content={k: cfg[k] for k in MICROSTRUCTURE_CONTENT},
                        replace_stale=True)


def solver_attrs(cfg) -> dict:
    """What the dataset's attrs say about the physics: moduli, Prony series, loading, method."""
    from homlearn.solvers.fem.viscoelastic import Loading, materials

    m = materials().matrix_material(cfg["matrix"])
    ld = cfg["loading"]
    loading = Loading(ld["strain_rate"], ld["max_strain"], ld["n_steps"])
    return {
        "method": ("DOLFINx MINI mixed u-p (P1 + cubic bubble / P1), bubbles condensed, MUMPS LU factorised "
                   "once per sample" if cfg["discretisation"] == "mini" else "DOLFINx P1 displacement (locks)"),
        "time_integration": "exact exponential update of the Prony modes, strain linear in each step",
        "strain_measure": "small strain",
        "boundary_conditions": "minimal: u_x = 0 on x = 0, u_x = rate t on x = 1, u_y = u_z = 0 at (0,0,0), "
                               "u_z = 0 at (0,1,0); lateral faces traction-free",
        "mean_stress": "volume average (equals the reaction on x = 1 per unit area)",
        "matrix": {"K": m.K, "G": m.G, "K_inf": m.K_inf, "G_inf": m.G_inf,
                   "tau": m.shear.tau.tolist(), "shear_weights": m.shear.weights.tolist(),
                   "bulk_weights": m.bulk.weights.tolist(), "units": "MPa, s"},
        "inclusion": dict(cfg["inclusion"]),
        "dt": loading.dt, "duration": loading.duration,
    }


def create_dataset_store(path, cfg):
    ld = cfg["loading"]
    t = np.linspace(0.0, ld["max_strain"] / ld["strain_rate"], ld["n_steps"] + 1)
    group = create_store(path, layout(cfg, cfg["batch_size"]), DATASET_VARIABLES,
                         {**_attrs(cfg, "solve"), "solver": solver_attrs(cfg), "time": t.tolist(),
                          "nominal_strain": (ld["strain_rate"] * t).tolist()},
                         content={k: cfg[k] for k in DATASET_CONTENT}, replace_stale=True)
    if not group.attrs.get("split_drawn"):  # drawn once, when the store is made, never re-drawn
        group["split"][:] = draw_split(cfg["n_samples"], cfg["split"]["fractions"], cfg["split"]["seed"])
        group.attrs["split_drawn"] = True
    return group


def _dask_cfg(cfg, dask_cfg):
    return {**dask_cfg, "batch_size": cfg["batch_size"]}


def run_microstructure_stage(cfg, dask_cfg, store_path, threads=1, failure_log=None, client=None):
    """Pack and mesh every pending sample (resumable; on ``client`` if given); returns the report."""
    from homlearn.parallel.stage import run_stage_from_config

    create_microstructure_store(store_path, cfg)
    params = {k: cfg[k] for k in ("seed",) + tuple(_packing_kwargs(cfg))}
    return run_stage_from_config("viscoelastic3d microstructure", store_path, microstructure_batch, params,
                                 _dask_cfg(cfg, dask_cfg), threads, failure_log, client)


def run_solve_stage(cfg, dask_cfg, micro_path, store_path, threads=1, failure_log=None, client=None):
    """Solve every pending sample (resumable; on ``client`` if given); returns the stage report."""
    from homlearn.parallel.stage import run_stage_from_config
    from homlearn.solvers.fem.viscoelastic import warm_jit_cache

    create_dataset_store(store_path, cfg)
    warm_jit_cache((cfg["discretisation"],))  # compile in the driver; workers load from the FFCx cache
    params = {k: cfg[k] for k in ("matrix", "inclusion", "loading", "discretisation", "max_residual")}
    params["microstructures"] = str(micro_path)
    return run_stage_from_config("viscoelastic3d solve", store_path, solve_batch, params,
                                 _dask_cfg(cfg, dask_cfg), threads, failure_log, client)


def retry_counts(micro_path) -> dict:
    """Meshing retries recorded in a microstructure store (for the stage summary)."""
    g = zarr.open_group(micro_path, mode="r")
    done = g["status"][:] == 1
    return {"mesh_failures_retried": int(g["mesh_failures"][:][done].sum()),
            "packings_redrawn": int(g["packing_failures"][:][done].sum()),
            "samples_with_retries": int(np.sum((g["mesh_failures"][:] + g["packing_failures"][:])[done] > 0))}
