"""Principal component analysis of histories, one basis per tensor component (paper 'pcanet'
eq. 25: the reduction ``p`` and lifting ``l`` maps).

Histories are (B, T, C): C tensor components (3 in 2D, 6 in 3D) sampled at T times. For each
component c the centred training matrix ``X_c - mean_c`` (N x T) is factored by an SVD,
``U S V^T``; the first ``r`` right singular vectors are the basis. ``encode`` gives the
coefficients ``(x_c - mean_c) V_c[:, :r]`` (B, C, r), ``decode`` maps them back. The basis is
orthonormal, so the squared reconstruction error of the training data equals the discarded
spectrum ``sum_{i > r} S_i^2`` (Eckart-Young), the check in the tests. Mean, basis and the
whole spectrum are buffers (saved with the model). Fit on training data only.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ComponentPCA"]


class ComponentPCA(nn.Module):
    """PCA of (B, T, C) histories with ``n_components`` basis vectors per component.

    ``n_components`` may exceed the rank of the training data (fewer samples than components):
    the basis is completed by orthonormal directions with zero training variance.
    """

    def __init__(self, n_time: int, n_channels: int, n_components: int):
        super().__init__()
        if n_time < 1 or n_channels < 1 or not 1 <= n_components <= n_time:
            raise ValueError(f"need n_time >= 1, n_channels >= 1 and 1 <= n_components <= n_time, got "
                             f"n_time={n_time}, n_channels={n_channels}, n_components={n_components}")
        self.n_time, self.n_channels, self.n_components = int(n_time), int(n_channels), int(n_components)
        self.register_buffer("mean", torch.zeros(n_channels, n_time))
        self.register_buffer("basis", torch.zeros(n_channels, n_time, n_components))
        self.register_buffer("singular_values", torch.zeros(n_channels, n_time))  # padded with zeros
        self.register_buffer("fitted", torch.tensor(False))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_time or x.shape[2] != self.n_channels:
            raise ValueError(f"expected histories (B, {self.n_time}, {self.n_channels}), got {tuple(x.shape)}")

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "ComponentPCA":
        """Fit mean and basis to training histories (N, T, C) (SVD in float64)."""
        self._check(x)
        if x.shape[0] < 1 or not torch.isfinite(x).all():
            raise ValueError("PCA needs at least one finite training history")
        xd = x.detach().to(torch.float64)
        mean = xd.mean(0)  # (T, C)
        a = (xd - mean).permute(2, 0, 1)  # (C, N, T)
        full = self.n_components > min(a.shape[1], a.shape[2])
        _, s, vh = torch.linalg.svd(a, full_matrices=full)
        sv = torch.zeros(self.n_channels, self.n_time, dtype=torch.float64, device=x.device)
        sv[:, :s.shape[1]] = s
        self.mean.copy_(mean.T.to(self.mean))
        self.basis.copy_(vh[:, :self.n_components].transpose(1, 2).to(self.basis))
        self.singular_values.copy_(sv.to(self.singular_values))
        self.fitted.fill_(True)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> coefficients (B, C, r)."""
        self._check(x)
        return torch.einsum("btc,ctr->bcr", x - self.mean.T, self.basis)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Coefficients (B, C, r) -> histories (B, T, C)."""
        if z.ndim != 3 or z.shape[1:] != (self.n_channels, self.n_components):
            raise ValueError(f"expected coefficients (B, {self.n_channels}, {self.n_components}), got {tuple(z.shape)}")
        return torch.einsum("bcr,ctr->btc", z, self.basis) + self.mean.T

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Projection onto the affine PCA space, ``l(p(x))``."""
        return self.decode(self.encode(x))

    def discarded_energy(self) -> torch.Tensor:
        """(C,) sum of the squared discarded singular values: the squared reconstruction error
        of the training data, per component."""
        return self.singular_values[:, self.n_components:].pow(2).sum(1)

    def coefficient_std(self, n_samples: int) -> torch.Tensor:
        """(C, r) standard deviation of the training coefficients, ``S_i / sqrt(N)``."""
        return self.singular_values[:, :self.n_components] / max(int(n_samples), 1) ** 0.5

    def extra_repr(self) -> str:
        return f"n_time={self.n_time}, n_channels={self.n_channels}, n_components={self.n_components}"
