"""heat2d throughput: samples per second for mesh + solve + write, Dask (2 workers) against one
process, both run here, one after the other, on the same samples.

    python benchmarks/heat2d_throughput.py [--samples 1024] [--workers 2] [--batch-size 32]

Prints each stage's rate, the end-to-end rate (stage seconds added up, cluster start-up
excluded and reported apart), and the ratio Dask / single process. Target (issue 2): at least
20 samples/s on 2 cores at paper sizes (10,000 samples in under 9 minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def run(samples: int, workers: int, batch_size: int, root: Path, use_dask: bool) -> dict:
    from homlearn.config import validate_config
    from homlearn.data.store import STATUS_DONE
    from homlearn.datasets.heat2d import run_microstructure_stage, run_solve_stage
    import zarr

    cfg = validate_config({"heat2d": {"n_samples": samples}, "dask": {"batch_size": batch_size, "progress": False}})
    micro, data = root / "micro.zarr", root / "data.zarr"
    threads = workers if use_dask else 1
    t0 = time.perf_counter()
    if use_dask:  # the stages' own code, on a cluster started first so its start-up is timed apart
        from homlearn.parallel.cluster import dask_client

        with dask_client(cfg["dask"], threads) as client:
            client.wait_for_workers(threads)
            t_start = time.perf_counter() - t0
            m = run_microstructure_stage(cfg["heat2d"], cfg["dask"], micro, threads, client=client)
            s = run_solve_stage(cfg["heat2d"], cfg["dask"], micro, data, threads, client=client)
    else:
        t_start = 0.0
        m = run_microstructure_stage(cfg["heat2d"], cfg["dask"], micro, 1)
        s = run_solve_stage(cfg["heat2d"], cfg["dask"], micro, data, 1)
    wall = time.perf_counter() - t0
    done = int(np.sum(zarr.open_group(data, mode="r")["status"][:] == STATUS_DONE))
    stage_s = m.seconds + s.seconds
    return {"mode": f"dask x{workers}" if use_dask else "one process", "samples": samples, "done": done,
            "microstructure_per_s": samples / m.seconds, "solve_per_s": samples / s.seconds,
            "end_to_end_per_s": samples / stage_s, "stage_seconds": stage_s,
            "cluster_startup_s": t_start, "wall_s": wall}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=1024)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    results = []
    for use_dask in (False, True):
        root = Path(tempfile.mkdtemp(prefix="heat2d-bench-"))
        try:
            results.append(run(a.samples, a.workers, a.batch_size, root, use_dask))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    base, dask = results
    print(f"{'mode':<14}{'done':>6}{'mesh/s':>10}{'solve/s':>10}{'total/s':>10}{'startup s':>11}{'wall s':>9}")
    for r in results:
        print(f"{r['mode']:<14}{r['done']:>6}{r['microstructure_per_s']:>10.1f}{r['solve_per_s']:>10.1f}"
              f"{r['end_to_end_per_s']:>10.1f}{r['cluster_startup_s']:>11.1f}{r['wall_s']:>9.1f}")
    ratio = dask["end_to_end_per_s"] / base["end_to_end_per_s"]
    print(f"speed-up dask/one process: {ratio:.2f}x; 10,000 samples at the dask rate: "
          f"{10000 / dask['end_to_end_per_s'] / 60:.1f} min")
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
