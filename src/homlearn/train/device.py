"""Device choice and the CUDA-only speed-ups (bf16 autocast, torch.compile)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device 'cuda' but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@dataclass
class Accelerator:
    """How the model runs on ``device``: the module to call (compiled or not), the autocast
    context, and notes on settings that were ignored."""

    device: torch.device
    module: torch.nn.Module
    amp_bf16: bool = False
    notes: list[str] = field(default_factory=list)

    def autocast(self):
        if self.amp_bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def accelerate(model: torch.nn.Module, device: torch.device, amp_bf16: bool = False,
               compile: bool = False) -> Accelerator:
    """bf16 autocast and torch.compile on CUDA; on CPU both are ignored with a note. ``model``
    itself is left uncompiled, so its state dict keeps its plain keys for checkpoints."""
    notes = []
    if device.type != "cuda":
        for name, on in (("amp_bf16", amp_bf16), ("compile", compile)):
            if on:
                notes.append(f"training key '{name}' ignored on {device.type} (CUDA only)")
        return Accelerator(device, model, False, notes)
    module = torch.compile(model) if compile else model
    return Accelerator(device, module, amp_bf16, notes)
