"""Atomic checkpoints and the random-number state a bit-identical resume needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import torch


def save_atomic(obj: Any, path: Path | str) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves a torn file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_run(path: Path | str, run_id: str, device: torch.device | str = "cpu",
             extends: Iterable[str] = ()) -> dict | None:
    """The checkpoint at ``path`` when it belongs to run ``run_id``, or to one of the runs
    ``extends`` that this run carries on (the same run with fewer L-BFGS epochs; the checkpoint is
    then relabelled ``run_id``); None when absent or of another run (model, settings or data
    changed), which the caller then replaces."""
    path = Path(path)
    if not path.exists():
        return None
    ckpt = torch.load(path, map_location=device, weights_only=False)
    found = ckpt.get("state", {}).get("run_id")
    if found in set(extends) and found != run_id:
        print(f"{path}: the same run with fewer L-BFGS epochs ({ckpt['state'].get('lbfgs_epochs', 0)} done); "
              "carrying it on")
        ckpt["state"]["run_id"] = run_id
    elif found != run_id:
        print(f"{path}: checkpoint of another run (model, settings or data changed); starting afresh")
        return None
    return ckpt


def rng_state() -> dict:
    """torch's CPU and CUDA generator states (dropout, random init inside the model)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
