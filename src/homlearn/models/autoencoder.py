"""Auto-encoder of the laminate's model variables (paper 'rno' section 4.1, Fig. 4; 4.2, Fig. 6d).

``A = psi_AE o phi_AE ~ id`` on points x in R^n (the layers' plastic strains, and with hardening
their accumulated plastic strains), with a latent layer of size m < n: the encoder phi_AE and
the decoder psi_AE are each "one layer with 50 nodes" (paper), i.e. ``n -> 50 -> m`` and
``m -> 50 -> n`` SELU networks (:class:`homlearn.models.mlp.MLP`; the activation is not stated in
the paper, SELU is its default elsewhere). If the reconstruction is good, the data lie close to
an m-dimensional manifold.

The encoder reads standardised components ``(x - shift) / scale``; the decoder's output is
mapped back to the units of x, so :meth:`forward` is the reconstruction x_hat itself.
"""

from __future__ import annotations

import torch
from torch import nn

from homlearn.models.mlp import MLP

__all__ = ["AutoEncoder"]


class AutoEncoder(nn.Module):
    """``n -> width (x depth) -> m -> width (x depth) -> n``; :meth:`encode` is phi_AE (the
    reduced variables), :meth:`decode` psi_AE, ``forward(x)`` the reconstruction."""

    def __init__(self, n: int, m: int, width: int = 50, depth: int = 1):
        super().__init__()
        if not 1 <= m <= n:
            raise ValueError(f"latent size must be in 1..{n} (the number of variables), got {m}")
        self.n, self.m = int(n), int(m)
        hidden = (int(width),) * int(depth)
        self.encoder = MLP(n, m, hidden)
        self.decoder = MLP(m, n, hidden)
        self.register_buffer("shift", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))

    @torch.no_grad()
    def fit_scaling(self, x: torch.Tensor) -> "AutoEncoder":
        """Mean and standard deviation of each component over the training points x (P, n)
        (a component that never varies keeps scale 1)."""
        x = x.reshape(-1, self.n).to(torch.float64)
        sd = x.std(0) if x.shape[0] > 1 else torch.ones(self.n, dtype=torch.float64)
        self.shift.copy_(x.mean(0).to(self.shift))
        self.scale.copy_(torch.where(sd > 0, sd, torch.ones_like(sd)).to(self.scale))
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """phi_AE: (..., n) -> reduced variables (..., m)."""
        return self.encoder((x - self.shift) / self.scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """psi_AE: (..., m) -> (..., n) in the units of x."""
        return self.decoder(z) * self.scale + self.shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n:
            raise ValueError(f"expected points (..., {self.n}), got {tuple(x.shape)}")
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        return f"n={self.n}, m={self.m}"
