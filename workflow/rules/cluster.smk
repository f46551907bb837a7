# Placement of the solve stages (DESIGN section 5): CPUs and memory of a solve job come from the
# config section `dask`, the same on a laptop (--cores N) and under the SLURM profile.
import os


def stage_threads(max_tasks=None):
    """CPUs of a solve job. With dask.cluster slurm or address the job only drives the stage (its
    workers are other jobs or machines): 1. With local: dask.threads, else all of --cores (inside a
    SLURM job: the CPUs SLURM gave it), and no more than ``max_tasks`` (Dask tasks of the stage)."""
    d = config["dask"]
    if d["cluster"] != "local":
        return 1
    n = d["threads"]
    if n is None and workflow.remote_exec:
        n = int(os.environ.get("SLURM_CPUS_PER_TASK", 0)) or None
    if n is None:
        n = workflow.cores
    return max(1, min(n, max_tasks)) if max_tasks else n


def stage_mem_mb(per_thread):
    """Memory (MB) of a solve job: dask.mem_mb_per_thread, else the rule's estimate, per thread."""
    per = config["dask"]["mem_mb_per_thread"] or per_thread
    return lambda wildcards, threads: per * max(1, threads)
