"""Atomic checkpoints and the random-number state a bit-identical resume needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: Any, path: Path | str) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves a torn file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_run(path: Path | str, run_id: str, device: torch.device | str = "cpu") -> dict | None:
    """The checkpoint at ``path`` when it belongs to run ``run_id``; None when absent or of
    another run (model, settings or data changed), which the caller then replaces."""
    path = Path(path)
    if not path.exists():
        return None
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if ckpt.get("state", {}).get("run_id") != run_id:
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
