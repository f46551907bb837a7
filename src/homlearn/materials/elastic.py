"""Small-strain elasticity: isotropic and rotated cubic Hooke's law, a two-phase helper, and a
nonlinear elastic law with a potential (for Newton tests).

In 2D (``d = 2``) every law is the in-plane part of plane strain.
"""

from __future__ import annotations

import torch

from homlearn.materials.tangent import Tangent, as_float64, pick, voxel

__all__ = ["isotropic_stiffness_apply", "IsotropicMaterial", "CubicMaterial", "two_phase_isotropic",
           "NonlinearElastic", "lame_from_young_poisson"]


def _eye(d: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(d, dtype=like.dtype, device=like.device).reshape(1, d, d, *(1,) * (like.ndim - 3))


def _trace(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bii...->b...", x)[:, None, None]


def lame_from_young_poisson(young, poisson):
    """``(lambda, mu)`` from Young's modulus and Poisson's ratio (3D relations)."""
    young, poisson = as_float64(young), as_float64(poisson)
    return young * poisson / ((1 + poisson) * (1 - 2 * poisson)), young / (2 * (1 + poisson))


def isotropic_stiffness_apply(eps: torch.Tensor, lam, mu) -> torch.Tensor:
    """Hooke's law ``sigma = lam tr(eps) I + 2 mu eps`` (paper 'rln' eq. 1); ``lam``, ``mu`` broadcast
    to ``(B, *grid)``."""
    lam = voxel(torch.as_tensor(lam, dtype=eps.dtype, device=eps.device))
    mu = voxel(torch.as_tensor(mu, dtype=eps.dtype, device=eps.device))
    return lam * _trace(eps) * _eye(eps.shape[1], eps) + 2.0 * mu * eps


class _Linear(Tangent):
    """A linear material is its own tangent: ``response(eps) = (C eps, C)``."""

    def response(self, eps: torch.Tensor):
        return self(eps), self


class IsotropicMaterial(_Linear):
    """``sigma = material(eps)`` for voxel fields ``lam``, ``mu`` of shape ``(B, *grid)`` (or scalars)."""

    def __init__(self, lam, mu):
        self.lam, self.mu = torch.broadcast_tensors(as_float64(lam), as_float64(mu))

    @classmethod
    def from_young_poisson(cls, young, poisson) -> "IsotropicMaterial":
        return cls(*lame_from_young_poisson(young, poisson))

    def to(self, device=None, dtype=None) -> "IsotropicMaterial":
        return IsotropicMaterial(self.lam.to(device=device, dtype=dtype), self.mu.to(device=device, dtype=dtype))

    def select(self, index: torch.Tensor) -> "IsotropicMaterial":
        """The material of the cells ``index`` (used to skip converged cells)."""
        return IsotropicMaterial(pick(self.lam, index), pick(self.mu, index))

    @property
    def batch_size(self) -> int:
        return int(self.lam.shape[0]) if self.lam.ndim else 1

    def __call__(self, eps: torch.Tensor) -> torch.Tensor:
        return isotropic_stiffness_apply(eps, self.lam, self.mu)

    def apply_mandel(self, v: torch.Tensor) -> torch.Tensor:
        """Hooke's law on Mandel fields ``(B, d(d+1)/2, *grid)`` (diagonal entries first)."""
        d = {3: 2, 6: 3}[v.shape[1]]
        lam = self.lam.to(device=v.device, dtype=v.dtype)
        mu = self.mu.to(device=v.device, dtype=v.dtype)
        lam, mu = (c[:, None] if c.ndim else c for c in (lam, mu))
        out = 2.0 * mu * v
        out[:, :d] += lam * v[:, :d].sum(1, keepdim=True)
        return out


def two_phase_isotropic(phase, young, poisson) -> IsotropicMaterial:
    """Isotropic material from a phase field ``(B, *grid)`` of 0/1 and per-phase ``young`` and
    ``poisson`` pairs ``(phase 0, phase 1)``."""
    phase = torch.as_tensor(phase)
    dtype = phase.dtype if phase.is_floating_point() else torch.float64
    hard = phase.to(dtype)
    lam0, mu0 = lame_from_young_poisson(float(young[0]), float(poisson[0]))
    lam1, mu1 = lame_from_young_poisson(float(young[1]), float(poisson[1]))
    return IsotropicMaterial(lam0 + (lam1 - lam0) * hard, mu0 + (mu1 - mu0) * hard)


class CubicMaterial(_Linear):
    """Cubic elasticity ``(c11, c12, c44)`` with a rotation per voxel.

    ``rotation`` is ``(B, d, d, *grid)`` and maps crystal to sample axes:
    ``sigma = R [C_cubic : (R^T eps R)] R^T`` with, in the crystal frame,
    ``s_ii = (c11 - c12) e_ii + c12 tr(e)`` and ``s_ij = 2 c44 e_ij`` (i != j).
    ``c11``, ``c12``, ``c44`` are scalars or ``(B, *grid)`` fields. For ``d = 2``
    the rotation is about the out-of-plane axis (plane strain, in-plane part).
    """

    def __init__(self, c11, c12, c44, rotation):
        self.c11, self.c12, self.c44 = (as_float64(c) for c in (c11, c12, c44))
        self.rotation = torch.as_tensor(rotation)

    def select(self, index: torch.Tensor) -> "CubicMaterial":
        return CubicMaterial(pick(self.c11, index), pick(self.c12, index), pick(self.c44, index),
                             self.rotation[index])

    @property
    def batch_size(self) -> int:
        return int(self.rotation.shape[0])

    def __call__(self, eps: torch.Tensor) -> torch.Tensor:
        kw = dict(device=eps.device, dtype=eps.dtype)
        c11, c12, c44 = (c.to(**kw) for c in (self.c11, self.c12, self.c44))
        rot = self.rotation.to(**kw)
        e = torch.einsum("bki...,bkl...,blj...->bij...", rot, eps, rot)
        eye = _eye(eps.shape[1], eps)
        s = eye * (voxel(c11 - c12) * e + voxel(c12) * _trace(e)) + (1 - eye) * 2.0 * voxel(c44) * e
        return torch.einsum("bik...,bkl...,bjl...->bij...", rot, s, rot)


class NonlinearElastic:
    """Small-strain nonlinear elasticity with a potential (a test law for Newton-CG):

        sigma = kappa tr(eps) I + 2 mu(s) dev(eps),   s = dev(eps) : dev(eps),
        mu(s) = mu0 (1 + s / s0)^((n - 1) / 2),

    the derivative of ``W = kappa/2 tr(eps)^2 + int_0^s mu(t) dt``, so the tangent
    ``kappa I(x)I + 2 mu (I_sym - I(x)I/d) + 4 mu'(s) dev(x)dev`` is symmetric. ``n < 1``
    softens, ``n > 1`` stiffens; ``dev`` is the ``d``-dimensional deviator. Parameters are
    scalars or ``(B, *grid)`` fields.
    """

    def __init__(self, kappa, mu0, s0, n):
        self.kappa, self.mu0, self.s0, self.n = (as_float64(v) for v in (kappa, mu0, s0, n))
        fields = [v for v in (self.kappa, self.mu0, self.s0, self.n) if v.ndim]
        self._batch = int(fields[0].shape[0]) if fields else 1

    @property
    def batch_size(self) -> int:
        return self._batch

    def select(self, index: torch.Tensor) -> "NonlinearElastic":
        return NonlinearElastic(*(pick(v, index) for v in (self.kappa, self.mu0, self.s0, self.n)))

    def response(self, eps: torch.Tensor):
        kw = dict(device=eps.device, dtype=eps.dtype)
        kappa, mu0, s0, n = (voxel(v.to(**kw)) for v in (self.kappa, self.mu0, self.s0, self.n))
        d = eps.shape[1]
        eye = _eye(d, eps)
        dev = eps - _trace(eps) / d * eye
        s = torch.einsum("bij...,bij...->b...", dev, dev)[:, None, None]
        base = 1.0 + s / s0
        mu = mu0 * base ** ((n - 1) / 2)
        dmu = mu0 * (n - 1) / (2 * s0) * base ** ((n - 3) / 2)
        stress = kappa * _trace(eps) * eye + 2.0 * mu * dev
        return stress, _NonlinearElasticTangent(kappa, mu, dmu, dev)


class _NonlinearElasticTangent(Tangent):
    def __init__(self, kappa, mu, dmu, dev):
        self.kappa, self.mu, self.dmu, self.dev = kappa, mu, dmu, dev

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[1]
        tr = _trace(x)
        sym = 0.5 * (x + x.transpose(1, 2))
        dev_x = sym - tr / d * _eye(d, x)
        proj = torch.einsum("bij...,bij...->b...", self.dev, x)[:, None, None]
        return self.kappa * tr * _eye(d, x) + 2.0 * self.mu * dev_x + 4.0 * self.dmu * proj * self.dev

    def select(self, index: torch.Tensor) -> "_NonlinearElasticTangent":
        return _NonlinearElasticTangent(*(pick(v, index) for v in (self.kappa, self.mu, self.dmu, self.dev)))
