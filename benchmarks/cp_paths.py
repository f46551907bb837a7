"""cp_paths: seconds per load path on the FFT engine for the two crystal-plasticity datasets, the
stage's own code (draw, batched FFT solve, Zarr write), batched (all paths in one solve) against
one path at a time, both run here, one after the other, on the same paths.

    python benchmarks/cp_paths.py fcc      [--paths 4] [--grid 32] [--steps 50]     # cp_grid2d
    python benchmarks/cp_paths.py two-slip [--paths 4] [--grid 64] [--steps 200]    # cp_paths2d
        [--single-paths 2] [--device cpu] [--json out.json]

fcc: 32x32 slices of FCC polycrystals (paper gcnn A.2) in uniaxial tension to 0.5% at 1/s, the
cp_grid2d defaults. two-slip: one 64x64 polycrystal with 16 grains (paper rno 5.1, case PH), random
F paths with maximum strain 10% over T = 200 s; the paper's 1000 solver steps are reduced to
--steps (default 200) to keep a CPU run short (a path of 1000 steps costs about 5x more; the
per-step cost barely depends on the step size once no cutbacks are needed). The one-at-a-time
run solves the first --single-paths paths; both runs use one torch thread (the stage's setting
on CPU). The stored stresses of the paths both runs solved must agree (relative 1e-6: Newton
tolerance 1e-8; a path's result does not depend on its batch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def stage_config(kind: str, paths: int, grid: int, steps: int, batch: int, device: str) -> dict:
    from homlearn.config import validate_config

    if kind == "fcc":
        section = {"n_steps": steps, "batch_size": batch, "device": device, "grid2d": {"n_samples": paths, "grid": grid}}
        return validate_config({"cp_grid": section, "dask": {"progress": False}})
    section = {"grid": grid, "n_grains": 16, "n_paths": paths, "n_steps": steps, "n_stored": steps // 5,
               "batch_size": batch, "device": device, "tol": 1e-8}
    return validate_config({"cp_paths2d": section, "dask": {"progress": False}})


def run(kind: str, paths: int, grid: int, steps: int, batch: int, device: str, root: Path) -> dict:
    import xarray as xr

    cfg = stage_config(kind, paths, grid, steps, batch, device)
    store = root / f"{kind}_b{batch}.zarr"
    t0 = time.perf_counter()
    if kind == "fcc":
        from homlearn.datasets.cp_grid import run_solve_stage

        rep = run_solve_stage(cfg["cp_grid"], cfg["dask"], "2d", store, 1)
    else:
        from homlearn.datasets.cp_paths2d import run_solve_stage

        rep = run_solve_stage(cfg["cp_paths2d"], cfg["dask"], store, 1)
    wall = time.perf_counter() - t0
    ds = xr.open_zarr(store)
    stress = ds.stress.values
    its = {k: float(ds[k].values.mean()) for k in ("newton_iterations", "krylov_iterations", "cutbacks") if k in ds}
    return {"mode": "batched" if batch > 1 else "one path at a time", "batch_size": batch, "paths": paths,
            "done": rep.samples_done, "failed": rep.samples_failed, "stage_seconds": rep.seconds,
            "wall_seconds": wall, "seconds_per_path": rep.seconds / paths, "mean_per_path": its, "stress": stress}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["fcc", "two-slip"])
    p.add_argument("--paths", type=int, default=4)
    p.add_argument("--single-paths", type=int, default=2, help="paths solved one at a time")
    p.add_argument("--grid", type=int, default=None, help="fcc: 32, two-slip: 64")
    p.add_argument("--steps", type=int, default=None, help="fcc: 50, two-slip: 200 (paper 1000)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    grid = a.grid or (32 if a.kind == "fcc" else 64)
    steps = a.steps or (50 if a.kind == "fcc" else 200)
    load = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    try:
        batched = run(a.kind, a.paths, grid, steps, a.paths, a.device, root)
        single = run(a.kind, a.single_paths, grid, steps, 1, a.device, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = min(a.paths, a.single_paths)
    ref = single["stress"][:n]
    diff = float(np.nanmax(np.abs(batched["stress"][:n] - ref)) / np.nanmax(np.abs(ref)))
    print(f"{a.kind}: {grid}^2 grid, {steps} steps, device {a.device}, load average at start {load:.2f}")
    print(f"{'mode':<22}{'paths':>6}{'done':>6}{'s/path':>9}{'stage s':>9}  mean per path")
    for r in (batched, single):
        its = ", ".join(f"{k} {v:.0f}" for k, v in r["mean_per_path"].items())
        print(f"{r['mode']:<22}{r['paths']:>6}{r['done']:>6}{r['seconds_per_path']:>9.2f}{r['stage_seconds']:>9.1f}  {its}")
    ratio = single["seconds_per_path"] / batched["seconds_per_path"]
    ok = diff <= 1e-6 and batched["failed"] == 0 and single["failed"] == 0
    print(f"batched is {ratio:.2f}x faster per path; stored stresses agree to {diff:.1e} (relative): "
          f"{'pass' if ok else 'FAIL'}")
    if a.json:
        import torch

        out = {"command": "python benchmarks/cp_paths.py " + " ".join(os.sys.argv[1:]),
               "settings": {"kind": a.kind, "paths": a.paths, "single_paths": a.single_paths, "grid": grid,
                            "steps": steps, "device": a.device, "torch_threads": 1},
               "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count(), "load_average_1min_at_start": load, "torch": torch.__version__},
               "results": [{k: v for k, v in r.items() if k != "stress"} for r in (batched, single)],
               "speedup_batched_over_single": ratio, "max_relative_stress_difference": diff, "checks_pass": ok}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
