"""Run a resumable stage: one Dask task per pending batch of a Zarr store, with a progress bar.

A batch function has the signature ``fn(store_path, batch, params) -> list[dict]`` and returns
the failures it recorded (one dict per failed sample: sample, code, reason). It writes its own
chunk-aligned block of the store (see homlearn.data.store), so the driver moves no data.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import zarr

from homlearn.data.store import STATUS_DONE, STATUS_PENDING, layout_of, pending_batches


@dataclass
class StageReport:
    """What one run of a stage did: batches run now, samples done/failed in the whole store."""

    name: str
    n_samples: int
    batches_run: int
    samples_run: int
    samples_done: int
    samples_failed: int
    samples_pending: int
    seconds: float
    failures: list[dict] = field(default_factory=list)
    broken_batches: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def run_stage(name: str, store_path: Path | str, batch_fn: Callable, params: Mapping[str, Any],
              client=None, progress: bool = True, failure_log: Path | str | None = None) -> StageReport:
    """Run ``batch_fn`` on every batch of the store that still has pending samples.

    Without a client the batches run in this process (used by tests and the benchmark baseline).
    Failed samples are recorded in the store (negative status) and appended to ``failure_log``
    (JSON lines); a batch whose task itself keeps failing is reported, the others go on.
    """
    from tqdm.auto import tqdm

    store_path = Path(store_path)
    group = zarr.open_group(store_path, mode="r")
    layout = layout_of(group)
    todo = pending_batches(group)
    t0 = time.perf_counter()
    failures: list[dict] = []
    broken: list[dict] = []
    bar = tqdm(total=len(todo) and sum(_n(layout, b) for b in todo), desc=name, unit="sample",
               disable=not progress, smoothing=0.05)
    if client is None:
        for b in todo:
            failures += batch_fn(str(store_path), b, dict(params))
            bar.update(_n(layout, b))
    else:
        import distributed

        futures = {client.submit(batch_fn, str(store_path), b, dict(params), key=f"{name}-{b}",
                                 retries=2, pure=False): b for b in todo}
        for fut in distributed.as_completed(futures):
            b = futures[fut]
            try:
                failures += fut.result()
            except Exception as exc:  # the task failed after its retries: keep going, report it
                broken.append({"batch": b, "error": f"{type(exc).__name__}: {exc}"})
            bar.update(_n(layout, b))
    bar.close()
    with warnings.catch_warnings():  # zarr notes that consolidation is not in the v3 spec yet
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(store_path)  # once, from the driver, after every writer is done
    status = zarr.open_group(store_path, mode="r")["status"][:]
    report = StageReport(
        name=name, n_samples=layout.n_samples, batches_run=len(todo),
        samples_run=sum(_n(layout, b) for b in todo),
        samples_done=int(np.sum(status == STATUS_DONE)), samples_failed=int(np.sum(status < 0)),
        samples_pending=int(np.sum(status == STATUS_PENDING)), seconds=time.perf_counter() - t0,
        failures=failures, broken_batches=broken)
    if failure_log is not None and (failures or broken):
        with open(failure_log, "a") as fh:
            for f in failures + broken:
                fh.write(json.dumps({"stage": name, **f}) + "\n")
    return report


def run_stage_from_config(name, store_path, batch_fn, params, dask_cfg, threads=1, failure_log=None,
                          client=None):
    """``run_stage`` on ``client`` if given, in this process for one local thread, else on a Dask
    cluster made from config for this stage."""
    from homlearn.parallel.cluster import dask_client

    progress = dask_cfg.get("progress", True)
    if client is not None:
        return run_stage(name, store_path, batch_fn, params, client, progress, failure_log)
    if threads <= 1 and dask_cfg.get("cluster", "local") == "local":
        return run_stage(name, store_path, batch_fn, params, None, progress, failure_log)
    with dask_client(dask_cfg, threads) as client:
        return run_stage(name, store_path, batch_fn, params, client, progress, failure_log)


def run_device_stage(name, store_path, batch_fn, cfg, params, dask_cfg, threads=1, failure_log=None,
                     client=None):
    """:func:`run_stage_from_config` for a stage solved with torch: every task gets the section
    ``cfg`` and its ``device`` (auto, cpu, cuda) besides ``params``; batches of
    ``cfg["batch_size"]``; on CUDA one process drives the GPU (Dask workers would contend for it)."""
    from homlearn.train.device import pick_device

    device = cfg.get("device", "auto")
    if pick_device(device).type == "cuda":
        threads = 1
    return run_stage_from_config(name, store_path, batch_fn, {"cfg": dict(cfg), "device": device, **params},
                                 {**dask_cfg, "batch_size": cfg["batch_size"]}, threads, failure_log, client=client)


def open_device_batch(store_path, batch: int, device_name: str):
    """In a task of :func:`run_device_stage`: the torch device (one thread per Dask worker on
    CPU), the batch's :class:`~homlearn.data.store.BatchWriter` and its sample indices."""
    import torch
    import zarr

    from homlearn.data.store import BatchWriter
    from homlearn.train.device import pick_device

    device = pick_device(device_name)
    if device.type == "cpu":
        torch.set_num_threads(1)
    writer = BatchWriter(zarr.open_group(store_path, mode="r+"), batch)
    return device, writer, np.arange(writer.samples.start, writer.samples.stop)


def _n(layout, b: int) -> int:
    s = layout.batch_samples(b)
    return s.stop - s.start
