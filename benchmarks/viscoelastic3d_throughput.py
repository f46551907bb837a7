"""viscoelastic3d throughput: time per sample for mesh + factorisation + time steps + write, Dask
(2 workers) against one process, both run here, one after the other, on the same samples.

    python benchmarks/viscoelastic3d_throughput.py [--samples 8] [--workers 2] [--target-cells 25431]
                                                   [--steps 100] [--batch-size 1] [--json out.json]

Runs the stages' own code (microstructure and solve) on a pre-started client. Prints the seconds
per sample of each stage, end to end, and per sample per core (end-to-end stage seconds times the
number of workers over the samples), the breakdown of a solve (assembly, factorisation, steps)
measured in the one-process run, and the ratio Dask / one process. Target (issue 5): under 30 s
per sample per core at paper mesh sizes with the locking-free discretisation.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def config(args):
    from homlearn.config import validate_config

    return validate_config({
        "dask": {"progress": False},
        "viscoelastic3d": {"n_samples": args.samples, "target_cells": args.target_cells,
                           "max_cells": max(32000, int(1.4 * args.target_cells)),
                           "curvature_points": args.curvature_points, "loading": {"n_steps": args.steps},
                           "batch_size": args.batch_size},
    })


def run(cfg, workers: int, root: Path, use_dask: bool) -> dict:
    import zarr

    from homlearn.data.store import STATUS_DONE
    from homlearn.datasets.viscoelastic3d import run_microstructure_stage, run_solve_stage

    v = cfg["viscoelastic3d"]
    micro, data = root / "micro.zarr", root / "data.zarr"
    t0 = time.perf_counter()
    if use_dask:
        from homlearn.parallel.cluster import dask_client
        from homlearn.solvers.fem.viscoelastic import warm_jit_cache

        warm_jit_cache((v["discretisation"],))  # before the workers start (they load the FFCx cache)
        with dask_client(cfg["dask"], workers) as client:
            client.wait_for_workers(workers)
            t_start = time.perf_counter() - t0
            m = run_microstructure_stage(v, cfg["dask"], micro, workers, client=client)
            s = run_solve_stage(v, cfg["dask"], micro, data, workers, client=client)
    else:
        t_start = 0.0
        m = run_microstructure_stage(v, cfg["dask"], micro, 1)
        s = run_solve_stage(v, cfg["dask"], micro, data, 1)
    wall = time.perf_counter() - t0
    g = zarr.open_group(data, mode="r")
    done = int(np.sum(g["status"][:] == STATUS_DONE))
    cores = workers if use_dask else 1
    n = v["n_samples"]
    stage_s = m.seconds + s.seconds
    return {"mode": f"dask x{workers}" if use_dask else "one process", "samples": n, "done": done,
            "cells_mean": float(np.mean(g["cell_count"][:])), "cells_min": int(np.min(g["cell_count"][:])),
            "cells_max": int(np.max(g["cell_count"][:])), "dofs_mean": float(np.mean(g["n_dofs"][:])),
            "mesh_s_per_sample": m.seconds / n, "solve_s_per_sample": s.seconds / n,
            "end_to_end_s_per_sample": stage_s / n, "s_per_sample_per_core": stage_s * cores / n,
            "solve_seconds_in_worker_mean": float(np.nanmean(g["solve_seconds"][:])),
            "stage_seconds": stage_s, "cluster_startup_s": t_start, "wall_s": wall}


def breakdown(cfg) -> dict:
    """One sample meshed and solved here, timed part by part."""
    from homlearn.microstructure.inclusions import generate_inclusions
    from homlearn.solvers.fem.viscoelastic import Loading, ViscoelasticSolver, materials

    v = cfg["viscoelastic3d"]
    t0 = time.perf_counter()
    c = generate_inclusions(12345, target_cells=v["target_cells"], curvature_points=v["curvature_points"])
    mesh_s = time.perf_counter() - t0
    solver = ViscoelasticSolver(materials().matrix_material(v["matrix"]))
    ld = v["loading"]
    sol = solver.solve(c.points, c.tets, c.cell_phase, Loading(ld["strain_rate"], ld["max_strain"], ld["n_steps"]))
    return {"cells": c.n_cells, "mesh_s": mesh_s, **{f"{k}_s": t for k, t in sol.timings.items()},
            "per_step_ms": 1000 * sol.timings["steps"] / ld["n_steps"], "dofs": sol.n_dofs,
            "factorised_rows": sol.n_factorised}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--target-cells", type=int, default=25431)
    p.add_argument("--curvature-points", type=int, default=12)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    cfg = config(a)
    results = []
    for use_dask in (False, True):
        root = Path(tempfile.mkdtemp(prefix="viscoelastic3d-bench-"))
        try:
            results.append(run(cfg, a.workers, root, use_dask))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    parts = breakdown(cfg)
    base, dask = results
    print(f"{'mode':<14}{'done':>6}{'cells':>8}{'mesh s':>9}{'solve s':>9}{'total s':>9}{'s/core':>8}"
          f"{'startup s':>11}{'wall s':>9}   (seconds per sample)")
    for r in results:
        print(f"{r['mode']:<14}{r['done']:>6}{r['cells_mean']:>8.0f}{r['mesh_s_per_sample']:>9.2f}"
              f"{r['solve_s_per_sample']:>9.2f}{r['end_to_end_s_per_sample']:>9.2f}{r['s_per_sample_per_core']:>8.2f}"
              f"{r['cluster_startup_s']:>11.1f}{r['wall_s']:>9.1f}")
    ratio = base["end_to_end_s_per_sample"] / dask["end_to_end_s_per_sample"]
    print(f"one sample, part by part: {json.dumps({k: round(v, 3) for k, v in parts.items()})}")
    print(f"speed-up dask/one process: {ratio:.2f}x; 3,000 samples at the dask rate: "
          f"{3000 * dask['end_to_end_s_per_sample'] / 3600:.1f} h")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({
            "settings": {k: getattr(a, k) for k in ("samples", "workers", "target_cells", "curvature_points",
                                                    "steps", "batch_size")},
            "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
            "results": results, "breakdown": parts, "ratio": ratio,
            "target": "under 30 s per sample per core at paper mesh sizes"}, indent=2))


if __name__ == "__main__":
    main()
