"""Recurrent localization networks (paper 'rln', Kelly and Kalidindi, section 3).

Learned optimisation of the elastic Lippmann-Schwinger equation (eq. 11): starting from the
reference strain y_0 = y^R (the prescribed mean strain), N proximal CNNs refine the field,

    y_i = y^R + f_i(m^h y_{i-1}, ..., m^h y_{i-k}),      i = 1..N        (eq. 21, Fig. 2)

where f_i sees the last k iterates split by phase (the products m^h y of eq. 11, two phases:
2k input channels) and returns a perturbation whose own mean is subtracted, so every iterate has
the prescribed mean exactly (section 3.2). Strains are normalised by the mean strain inside the
network (section 3.2), so the output is linear in the prescribed mean strain.

Variants (section 3.2): RLN, a different f_i per iteration; RLN-t, one f tied across the N
iterations (1/N of the RLN's parameters); FLN, a single f (N = 1), the feed-forward control.
Paper values: N = 5, k = 2; before iteration 1 the history holds y_0 only, so it is repeated k
times (our reading; the paper does not say how the first iterations fill k inputs).

The proximal operator (section 3.3, Fig. 3; the figure is not in the text we have, so the layer
layout below is ours): V-Net-like with one down/up-sampling level and a skip connection,
3x3x3 convolutions followed by PReLU (one slope per channel), 2x2x2 stride-2 down-sampling
and transposed up-sampling, 1x1x1 convolutions for channel reduction and output; circular
padding everywhere (periodic cell). ``channels = 23`` gives 163,738 parameters per f_i, the
paper's "approximately 160,000".

Periodicity: every layer commutes with periodic shifts by an even number of voxels on an even
grid (the stride-2 level fixes the parity), so the network does too. On an odd grid (the paper's
31^3) the coarse level sees the field wrapped by one voxel to an even size and cropped back: a
close but not exact periodic treatment (the paper does not say how it handled 31 -> 15).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProximalNet", "LocalizationNetwork", "VARIANTS", "build_rln", "phase_masks"]

#: variant name -> (number of iterations or None for the configured N, weights tied)
VARIANTS = {"fln": (1, False), "rln_t": (None, True), "rln": (None, False)}
LABELS = {"fln": "FLN", "rln_t": "RLN-t", "rln": "RLN"}
SPATIAL = (-3, -2, -1)


def _conv3(c_in: int, c_out: int) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, 3, padding=1, padding_mode="circular")


class ProximalNet(nn.Module):
    """One proximal operator f_i: (B, c_in, X, Y, Z) -> (B, 1, X, Y, Z) (paper section 3.3)."""

    def __init__(self, in_channels: int, channels: int = 23):
        super().__init__()
        c = channels
        self.encode = nn.Sequential(_conv3(in_channels, c), nn.PReLU(c), _conv3(c, c), nn.PReLU(c))
        self.down = nn.Conv3d(c, 2 * c, 2, stride=2)
        self.coarse = nn.Sequential(_conv3(2 * c, 2 * c), nn.PReLU(2 * c), _conv3(2 * c, 2 * c), nn.PReLU(2 * c))
        self.up = nn.ConvTranspose3d(2 * c, c, 2, stride=2)
        self.reduce = nn.Conv3d(2 * c, c, 1)  # skip + up-sampled -> c channels
        self.decode = nn.Sequential(_conv3(c, c), nn.PReLU(c))
        self.out = nn.Conv3d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self.encode(x)
        shape = fine.shape[-3:]
        odd = [s % 2 for s in shape]
        padded = nn.functional.pad(fine, (0, odd[2], 0, odd[1], 0, odd[0]), mode="circular") if any(odd) else fine
        up = self.up(self.coarse(self.down(padded)))[..., :shape[0], :shape[1], :shape[2]]
        return self.out(self.decode(self.reduce(torch.cat([fine, up], dim=1))))


def phase_masks(m: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 2, X, Y, Z) indicators m^h of phase 0 (soft) and 1 (hard) from labels (B, X, Y, Z)."""
    hard = m.to(dtype)
    return torch.stack([1 - hard, hard], dim=1)


class LocalizationNetwork(nn.Module):
    """FLN / RLN-t / RLN: microstructure labels (B, X, Y, Z) and mean strain -> iterates.

    ``forward(m, mean)`` returns (B, N, X, Y, Z): the iterates y_1..y_N (eq. 21) in the units of
    ``mean`` ((B,) or a scalar; default 1, i.e. strains normalised by the mean strain); the last
    one is the prediction. Each iterate's spatial mean equals ``mean`` up to round-off.
    """

    def __init__(self, iterations: int = 5, history: int = 2, tied: bool = False, channels: int = 23):
        super().__init__()
        if iterations < 1 or history < 1:
            raise ValueError(f"iterations and history must be >= 1, got {iterations}, {history}")
        self.iterations, self.history, self.tied = int(iterations), int(history), bool(tied)
        n_nets = 1 if tied else self.iterations
        self.nets = nn.ModuleList(ProximalNet(2 * self.history, channels) for _ in range(n_nets))

    def forward(self, m: torch.Tensor, mean: torch.Tensor | float | None = None) -> torch.Tensor:
        dtype = self.nets[0].out.weight.dtype
        masks = phase_masks(m, dtype)                                     # (B, 2, X, Y, Z)
        u = [torch.ones_like(masks[:, 0])] * self.history                 # y_0 = y^R (normalised)
        out = []
        for i in range(self.iterations):
            x = torch.cat([masks * v.unsqueeze(1) for v in u[::-1][:self.history]], dim=1)
            f = self.nets[0 if self.tied else i](x)[:, 0]
            y = 1.0 + f - f.mean(dim=SPATIAL, keepdim=True)               # zero-mean perturbation
            u.append(y)
            out.append(y)
        y = torch.stack(out, dim=1)
        if mean is None:
            return y
        mean = torch.as_tensor(mean, dtype=dtype, device=y.device)
        return y * mean.reshape(-1, *([1] * (y.ndim - 1))) if mean.ndim else y * mean


def build_rln(variant: str, iterations: int = 5, history: int = 2, channels: int = 23) -> LocalizationNetwork:
    """The paper's variants: 'fln' (N = 1), 'rln_t' (tied weights), 'rln' (one f_i per iteration)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown RLN variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    n, tied = VARIANTS[variant]
    return LocalizationNetwork(iterations if n is None else n, history, tied, channels)
