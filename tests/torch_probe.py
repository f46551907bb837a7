"""Test helper: a torch function mode that records the largest tensor any torch call returns
(used to assert that graph models never build dense N_cells^2 matrices)."""

import torch
from torch.overrides import TorchFunctionMode


class MaxNumel(TorchFunctionMode):
    """Records ``max_numel``, the element count of the largest tensor returned inside the mode."""

    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out
