"""Wave vectors and the compatibility projection of the Fourier-Galerkin scheme.

The periodic cell problem is written in Lippmann-Schwinger form (paper 'rln',
eq. 8-11); in the Galerkin variant (Zeman et al. 2017, de Geus et al. 2017)
the Green operator of a reference medium is replaced by the orthogonal (L2)
projection ``P`` onto compatible, zero-mean, symmetric strain fields. In
Fourier space, for the unit direction ``n = xi / |xi|`` and a symmetric ``A``,

    P(A) = n (x) (A n) + (A n) (x) n - (n . A . n) n (x) n,      P = 0 at xi = 0,

which is what :func:`apply_projection` evaluates frequency by frequency
(no 81 x N^3 operator is stored).

Layout: tensors are full symmetric ``d x d`` matrices, ``(B, d, d, *grid)``;
their spectra come from ``torch.fft.rfftn`` over the ``d`` spatial axes, so the
last spatial axis has ``N_d // 2 + 1`` entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["wave_vectors", "singular_mask", "apply_projection", "project_real",
           "SINGULAR_RTOL"]

#: a frequency with ``|xi| <= SINGULAR_RTOL * max |xi|`` is treated as singular (P = 0).
SINGULAR_RTOL = 1e-12


def wave_vectors(grid_shape: Sequence[int], lengths: Sequence[float] | None = None, *,
                 device=None, dtype=torch.float64) -> torch.Tensor:
    """Continuous wave vectors ``xi = 2 pi k / L`` in rfftn layout, shape ``(d, *rgrid)``.

    ``rgrid = (N_1, ..., N_{d-1}, N_d // 2 + 1)``. On an axis of even length the
    Nyquist frequency ``k = -N/2`` is set to zero (it has no odd partner, so it
    cannot carry a real derivative).
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    if d not in (2, 3):
        raise ValueError(f"grid must be 2D or 3D, got {grid_shape}")
    lengths = (1.0,) * d if lengths is None else tuple(float(x) for x in lengths)
    if len(lengths) != d:
        raise ValueError("lengths must have one entry per grid axis")
    axes = []
    for a, (n, length) in enumerate(zip(grid_shape, lengths)):
        if a == d - 1:
            k = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=dtype)
        else:
            k = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype)
        if n % 2 == 0:
            k = torch.where(k.abs() == n // 2, torch.zeros_like(k), k)
        axes.append(2.0 * torch.pi * k / length)
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def singular_mask(xi: torch.Tensor) -> torch.Tensor:
    """Frequencies where ``|xi| <= SINGULAR_RTOL * max|xi|`` (zero frequency, zeroed Nyquist)."""
    norm = torch.linalg.vector_norm(xi, dim=0)
    return norm <= SINGULAR_RTOL * norm.max()


def _unit_directions(xi: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.vector_norm(xi, dim=0)
    sing = norm <= SINGULAR_RTOL * norm.max()
    return torch.where(sing, torch.zeros_like(xi), xi / torch.where(sing, torch.ones_like(norm), norm))


def apply_projection(tau_hat: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """``P(tau_hat)`` per frequency; ``tau_hat`` is ``(B, d, d, *rgrid)`` (complex), ``xi`` ``(d, *rgrid)``.

    ``tau_hat`` is assumed symmetric in its two tensor indices. Returns zero at
    the singular frequencies (see :func:`singular_mask`).
    """
    n = _unit_directions(xi).to(tau_hat.dtype)            # (d, *rgrid), zero where singular
    an = torch.einsum("bij...,j...->bi...", tau_hat, n)    # A n
    nan = torch.einsum("i...,bi...->b...", n, an)          # n . A . n
    n_an = n[:, None].unsqueeze(0) * an[:, None, :]       # n_i (A n)_j, (B, i, j, *rgrid)
    nn = n[:, None] * n[None, :]
    return n_an + n_an.transpose(1, 2) - nan[:, None, None] * nn.unsqueeze(0)


def project_real(field: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """``P`` applied to a real field ``(B, d, d, *grid)`` through rfftn / irfftn."""
    d = field.shape[1]
    dims = tuple(range(-d, 0))
    spec = torch.fft.rfftn(field, dim=dims)
    return torch.fft.irfftn(apply_projection(spec, xi), s=field.shape[-d:], dim=dims)
