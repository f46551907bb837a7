"""mg_taylor throughput: seconds per path for the stage's own code (draw, Taylor solve of every
grain, Zarr write), batched (all paths in one batched solve) against one path at a time, both
run here, one after the other, on the same paths (path k depends only on (seed, k)).

    python benchmarks/mg_taylor_throughput.py [--paths 8] [--grains 128] [--steps 1000]
        [--max-strain 0.1] [--device cpu] [--json benchmarks/results/mg_taylor_cpu.json]

Prints both rates and the ratio, and checks that the two runs stored the same stresses
(batching must not change a result: relative difference <= 1e-12).
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


def run(paths: int, grains: int, steps: int, max_strain: float, batch_size: int, device: str, root: Path) -> dict:
    import xarray as xr

    from homlearn.config import validate_config
    from homlearn.datasets.mg_taylor import run_solve_stage

    cfg = validate_config({"mg_taylor": {
        "n_grains": grains, "n_steps": steps, "n_stored": steps // 5 if steps % 5 == 0 else steps,
        "batch_size": batch_size, "device": device,
        "cases": [{"name": "bench", "max_strain": max_strain, "intervals": "uniform", "n_paths": paths, "seed": 0}]},
        "dask": {"progress": False}})
    store = root / f"bench_b{batch_size}.zarr"
    t0 = time.perf_counter()
    rep = run_solve_stage(cfg["mg_taylor"], cfg["dask"], "bench", store, 1)
    wall = time.perf_counter() - t0
    stress = xr.open_zarr(store).stress.values
    return {"mode": "batched" if batch_size > 1 else "one path at a time", "batch_size": batch_size,
            "paths": paths, "done": rep.samples_done, "failed": rep.samples_failed, "stage_seconds": rep.seconds,
            "wall_seconds": wall, "seconds_per_path": rep.seconds / paths, "stress": stress}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", type=int, default=8)
    p.add_argument("--grains", type=int, default=128)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--max-strain", type=float, default=0.1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = []
    root = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    try:
        for batch in (a.paths, 1):
            results.append(run(a.paths, a.grains, a.steps, a.max_strain, batch, a.device, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    batched, single = results
    diff = float(np.nanmax(np.abs(batched["stress"] - single["stress"])) / np.nanmax(np.abs(single["stress"])))
    print(f"{'mode':<22}{'paths':>6}{'done':>6}{'s/path':>9}{'stage s':>9}")
    for r in results:
        print(f"{r['mode']:<22}{r['paths']:>6}{r['done']:>6}{r['seconds_per_path']:>9.2f}{r['stage_seconds']:>9.1f}")
    ratio = single["seconds_per_path"] / batched["seconds_per_path"]
    print(f"batched is {ratio:.2f}x faster per path; stored stresses agree to {diff:.1e} (relative)")
    print(f"paper sizes (44,400 paths) at the batched rate: {44400 * batched['seconds_per_path'] / 3600:.0f} core-hours")
    if a.json:
        import torch

        out = {"settings": {"paths": a.paths, "grains": a.grains, "steps": a.steps, "max_strain": a.max_strain,
                            "device": a.device, "torch_threads": 1},
               "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count(), "load_average_1min_at_start": load, "torch": torch.__version__},
               "results": [{k: v for k, v in r.items() if k != "stress"} for r in results],
               "speedup_batched_over_single": ratio, "max_relative_stress_difference": diff}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
