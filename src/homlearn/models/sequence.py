"""Recurrent sequence baselines (GRU, LSTM) for stress histories (paper 'rno' section 1: the
LSTM / GRU surrogates of Ghavamian and Simone, Mozaffar et al., Wu et al.).

Per step the network reads the input and the time step, ``(x^n, dt_n)`` (dt_0 = 0), runs a
stacked GRU or LSTM and maps its hidden state linearly to the output ``y^n``. Unlike the RNO
(eq. 3) nothing ties the step to a continuous-time evolution, so the model is tied to the time
steps it was trained on. :meth:`SequenceModel.matching` picks the hidden width whose parameter
count is closest to a given one (e.g. the RNO it is compared with).
"""

from __future__ import annotations

import torch
from torch import nn

from homlearn.models.rno import time_steps

__all__ = ["SequenceModel", "matched_hidden", "sequence_parameter_count"]

GATES = {"gru": 3, "lstm": 4}


def sequence_parameter_count(c_in: int, c_out: int, hidden: int, n_layers: int, cell: str = "gru") -> int:
    """Parameters of :class:`SequenceModel` (torch's GRU/LSTM: two bias vectors per gate)."""
    g = GATES[cell]
    n, inp = 0, c_in + 1
    for _ in range(n_layers):
        n += g * (hidden * inp + hidden * hidden + 2 * hidden)
        inp = hidden
    return n + hidden * c_out + c_out


def matched_hidden(n_params: int, c_in: int, c_out: int, n_layers: int = 2, cell: str = "gru") -> int:
    """The hidden width (1..4096) whose parameter count is closest to ``n_params``."""
    return min(range(1, 4097), key=lambda h: abs(sequence_parameter_count(c_in, c_out, h, n_layers, cell) - n_params))


class SequenceModel(nn.Module):
    """GRU (default) or LSTM on ``(x^n, dt_n)``: (B, T, c_in) and times -> (B, T, c_out)."""

    def __init__(self, c_in: int, c_out: int, hidden: int = 100, n_layers: int = 2, cell: str = "gru",
                 time_scale: float = 1.0):
        super().__init__()
        if cell not in GATES:
            raise ValueError(f"unknown cell {cell!r}; allowed: {', '.join(GATES)}")
        if c_in < 1 or c_out < 1 or hidden < 1 or n_layers < 1:
            raise ValueError(f"need c_in, c_out, hidden, n_layers >= 1; got {c_in}, {c_out}, {hidden}, {n_layers}")
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.c_in, self.c_out, self.cell = int(c_in), int(c_out), cell
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(c_in + 1, hidden, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(hidden, c_out)
        self.register_buffer("x_scale", torch.ones(c_in))
        self.register_buffer("y_scale", torch.ones(c_out))
        self.register_buffer("time_scale", torch.tensor(float(time_scale)))

    @classmethod
    def matching(cls, n_params: int, c_in: int, c_out: int, n_layers: int = 2, cell: str = "gru",
                 **kw) -> "SequenceModel":
        """The model whose parameter count is closest to ``n_params``."""
        return cls(c_in, c_out, matched_hidden(n_params, c_in, c_out, n_layers, cell), n_layers, cell, **kw)

    @torch.no_grad()
    def fit_scaling(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None) -> "SequenceModel":
        """Per-component standard deviations of training inputs and outputs; ``t``: duration."""
        for buf, v in ((self.x_scale, x), (self.y_scale, y)):
            sd = v.reshape(-1, v.shape[-1]).to(torch.float64).std(0)
            buf.copy_(torch.where(sd > 0, sd, torch.ones_like(sd)).to(buf))
        if t is not None:
            span = float((t[..., -1] - t[..., 0]).abs().max())
            if span > 0:
                self.time_scale.fill_(span)
        return self

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.c_in:
            raise ValueError(f"expected input histories (B, T, {self.c_in}), got {tuple(x.shape)}")
        b, n, _ = x.shape
        dt = time_steps(torch.as_tensor(t).to(x), b, n) / self.time_scale
        h, _ = self.rnn(torch.cat([x / self.x_scale, dt.unsqueeze(-1)], dim=-1))
        return self.head(h) * self.y_scale
