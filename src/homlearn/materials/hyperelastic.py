"""Compressible neo-Hookean hyperelasticity for the finite-strain FFT solver.

    W(F) = mu/2 (tr(F^T F) - d) - mu ln J + lam/2 (ln J)^2,
    P = mu (F - F^-T) + lam ln J F^-T,
    dP = mu dF + (mu - lam ln J) F^-T dF^T F^-T + lam tr(F^-1 dF) F^-T,

(e.g. Bonet & Wood, Nonlinear Continuum Mechanics, eq. 6.28). The tangent has major
symmetry, so the finite-strain Newton step can use CG. The small-strain limit is
isotropic Hooke's law with the same ``lam``, ``mu``. In 2D it is plane strain.
"""

from __future__ import annotations

import torch

from homlearn.materials.tangent import Tangent, as_float64, pick, voxel

__all__ = ["NeoHookean"]


def _mat_last(x: torch.Tensor) -> torch.Tensor:
    """(B, d, d, *grid) -> (B, *grid, d, d) for torch.linalg."""
    d = x.ndim - 3
    return x.permute(0, *range(3, 3 + d), 1, 2)


def _mat_first(x: torch.Tensor) -> torch.Tensor:
    d = x.ndim - 3
    return x.permute(0, d + 1, d + 2, *range(1, d + 1))


class NeoHookean:
    """Compressible neo-Hookean law; ``lam``, ``mu`` scalars or ``(B, *grid)`` fields."""

    def __init__(self, lam, mu):
        self.lam, self.mu = torch.broadcast_tensors(as_float64(lam), as_float64(mu))

    @classmethod
    def from_young_poisson(cls, young, poisson) -> "NeoHookean":
        from homlearn.materials.elastic import lame_from_young_poisson

        return cls(*lame_from_young_poisson(young, poisson))

    @property
    def batch_size(self) -> int:
        return int(self.lam.shape[0]) if self.lam.ndim else 1

    def select(self, index: torch.Tensor) -> "NeoHookean":
        return NeoHookean(pick(self.lam, index), pick(self.mu, index))

    def response(self, F: torch.Tensor):
        kw = dict(device=F.device, dtype=F.dtype)
        lam, mu = voxel(self.lam.to(**kw)), voxel(self.mu.to(**kw))
        Fm = _mat_last(F)
        J = torch.linalg.det(Fm)
        finv_t = _mat_first(torch.linalg.inv(Fm).transpose(-1, -2))
        lnJ = torch.log(J)[:, None, None]       # NaN where J <= 0: reported by the solver
        P = mu * (F - finv_t) + lam * lnJ * finv_t
        return P, _NeoHookeanTangent(lam, mu, lnJ, finv_t)


class _NeoHookeanTangent(Tangent):
    def __init__(self, lam, mu, lnJ, finv_t):
        self.lam, self.mu, self.lnJ, self.finv_t = lam, mu, lnJ, finv_t

    def __call__(self, dF: torch.Tensor) -> torch.Tensor:
        a = self.finv_t
        t2 = torch.einsum("bik...,blk...,blj...->bij...", a, dF, a)          # F^-T dF^T F^-T
        tr = torch.einsum("bki...,bki...->b...", a, dF)[:, None, None]      # tr(F^-1 dF)
        return self.mu * dF + (self.mu - self.lam * self.lnJ) * t2 + self.lam * tr * a

    def select(self, index: torch.Tensor) -> "_NeoHookeanTangent":
        return _NeoHookeanTangent(*(pick(v, index) for v in (self.lam, self.mu, self.lnJ, self.finv_t)))
