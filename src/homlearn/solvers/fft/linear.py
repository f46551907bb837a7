"""Batched small-strain linear elastic Fourier-Galerkin solver (torch, CPU or CUDA).

Cell problem (paper 'rln', eq. 1-2 and its L-S form eq. 8-11): find a compatible,
zero-mean fluctuation ``eps~`` such that ``sigma = C : (E + eps~)`` is in
equilibrium. In the Fourier-Galerkin form (Zeman et al. 2017; de Geus et al.
2017; the reference-medium-free descendant of Moulinec-Suquet) this reads

    P(C : eps~) = -P(C : E),

with ``P`` the orthogonal projection onto compatible fields
(:mod:`homlearn.solvers.fft.projection`). The operator ``x -> P(C : x)`` is
symmetric positive definite on the compatible subspace, so it is solved by
conjugate gradients started from ``eps~ = 0`` (every iterate stays compatible).

Batching: ``B`` cells are iterated together, each with its own CG scalars and a
convergence mask; a converged (or broken-down) cell is frozen, a cell that
misses ``max_iter`` is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from homlearn.solvers.fft.projection import project_real, wave_vectors

__all__ = ["isotropic_stiffness_apply", "IsotropicMaterial", "CubicMaterial",
           "LinearSolveResult", "solve_linear", "reference_solve_linear"]


# --------------------------------------------------------------------------- materials
def _eye_field(d: int, like: torch.Tensor) -> torch.Tensor:
    nsp = like.ndim - 3
    return torch.eye(d, dtype=like.dtype, device=like.device).reshape(1, d, d, *(1,) * nsp)


def _field(c: torch.Tensor) -> torch.Tensor:
    """A scalar stays a scalar; a voxel field ``(B, *grid)`` gets two tensor axes ``(B, 1, 1, *grid)``."""
    return c[:, None, None] if c.ndim else c


def isotropic_stiffness_apply(eps: torch.Tensor, lam: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Hooke's law ``sigma = lam tr(eps) I + 2 mu eps`` (rln eq. 1); ``lam``, ``mu`` broadcast to ``(B, *grid)``.

    In 2D (``d = 2``) this is the in-plane part of plane strain.
    """
    d = eps.shape[1]
    lam = _field(torch.as_tensor(lam, dtype=eps.dtype, device=eps.device))
    mu = _field(torch.as_tensor(mu, dtype=eps.dtype, device=eps.device))
    tr = torch.einsum("bii...->b...", eps)[:, None, None]
    return lam * tr * _eye_field(d, eps) + 2.0 * mu * eps


class IsotropicMaterial:
    """``sigma = material(eps)`` for voxel fields ``lam``, ``mu`` of shape ``(B, *grid)``."""

    def __init__(self, lam, mu):
        lam, mu = torch.as_tensor(lam), torch.as_tensor(mu)
        self.lam, self.mu = torch.broadcast_tensors(lam, mu)

    @classmethod
    def from_young_poisson(cls, young, poisson):
        young, poisson = torch.as_tensor(young), torch.as_tensor(poisson)
        return cls(young * poisson / ((1 + poisson) * (1 - 2 * poisson)), young / (2 * (1 + poisson)))

    def to(self, device=None, dtype=None) -> "IsotropicMaterial":
        return IsotropicMaterial(self.lam.to(device=device, dtype=dtype), self.mu.to(device=device, dtype=dtype))

    def select(self, index: torch.Tensor) -> "IsotropicMaterial":
        """The material of the cells ``index`` (used to skip converged cells)."""
        return IsotropicMaterial(self.lam[index], self.mu[index])

    @property
    def batch_size(self) -> int:
        return int(self.lam.shape[0])

    def __call__(self, eps: torch.Tensor) -> torch.Tensor:
        lam = self.lam.to(device=eps.device, dtype=eps.dtype)
        mu = self.mu.to(device=eps.device, dtype=eps.dtype)
        return isotropic_stiffness_apply(eps, lam, mu)


class CubicMaterial:
    """Cubic elasticity ``(c11, c12, c44)`` with a rotation per voxel.

    ``rotation`` is ``(B, d, d, *grid)`` and maps crystal to sample axes:
    ``sigma = R [C_cubic : (R^T eps R)] R^T`` with, in the crystal frame,
    ``s_ii = (c11 - c12) e_ii + c12 tr(e)`` and ``s_ij = 2 c44 e_ij`` (i != j).
    ``c11``, ``c12``, ``c44`` are scalars or ``(B, *grid)`` fields. For ``d = 2``
    the rotation is about the out-of-plane axis (plane strain, in-plane part).
    """

    def __init__(self, c11, c12, c44, rotation):
        self.c11, self.c12, self.c44 = (torch.as_tensor(c) for c in (c11, c12, c44))
        self.rotation = torch.as_tensor(rotation)

    def select(self, index: torch.Tensor) -> "CubicMaterial":
        pick = (lambda c: c[index] if c.ndim else c)
        return CubicMaterial(pick(self.c11), pick(self.c12), pick(self.c44), self.rotation[index])

    @property
    def batch_size(self) -> int:
        return int(self.rotation.shape[0])

    def __call__(self, eps: torch.Tensor) -> torch.Tensor:
        kw = dict(device=eps.device, dtype=eps.dtype)
        c11, c12, c44 = (c.to(**kw) for c in (self.c11, self.c12, self.c44))
        rot = self.rotation.to(**kw)
        d = eps.shape[1]
        e = torch.einsum("bki...,bkl...,blj...->bij...", rot, eps, rot)
        eye = _eye_field(d, eps)
        tr = torch.einsum("bii...->b...", e)[:, None, None]
        s = eye * (_field(c11 - c12) * e + _field(c12) * tr) + (1 - eye) * 2.0 * _field(c44) * e
        return torch.einsum("bik...,bkl...,bjl...->bij...", rot, s, rot)


# --------------------------------------------------------------------------- solver
@dataclass
class LinearSolveResult:
    """Fields ``(B, d, d, *grid)``, mean stress ``(B, d, d)`` and per-cell CG diagnostics.

    ``residual`` is the final true relative residual ``||P(C:eps) || / ||P(C:E)||``
    (0 for cells whose right-hand side vanishes to round-off, e.g. homogeneous
    cells); ``converged`` is the CG criterion (recursive residual <= tol).
    """

    strain: torch.Tensor
    stress: torch.Tensor
    mean_stress: torch.Tensor
    mean_strain: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor


def _cdot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * y).flatten(1).sum(1)


def _bview(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *(1,) * (like.ndim - 1))


def solve_linear(material: Callable[[torch.Tensor], torch.Tensor], E, grid_shape: Sequence[int],
                 batch: int | None = None, *, tol: float = 1e-10, max_iter: int = 1000,
                 lengths: Sequence[float] | None = None, device=None,
                 dtype: torch.dtype = torch.float64) -> LinearSolveResult:
    """Solve ``P(C : eps~) = -P(C : E)`` for ``B`` cells by masked, batched CG.

    ``material(eps) -> sigma`` maps ``(B, d, d, *grid)`` to the same shape (if it
    has ``select(index)``, converged cells are skipped). ``E`` is ``(B, d, d)`` or
    ``(d, d)`` (broadcast to ``batch`` cells; ``batch`` defaults to
    ``material.batch_size`` or 1). Keep the material's tensors on ``device``
    (``IsotropicMaterial.to``); otherwise they are copied at every application.
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    E = torch.as_tensor(E, dtype=dtype, device=device)
    if E.ndim == 2:
        b_size = batch if batch is not None else int(getattr(material, "batch_size", 1))
        E = E.expand(b_size, d, d)
    if E.shape[1:] != (d, d) or (batch is not None and E.shape[0] != batch):
        raise ValueError(f"E must be ({d},{d}) or (B,{d},{d}), got {tuple(E.shape)}")
    if (E - E.transpose(1, 2)).abs().max() > 1e-12 * max(float(E.abs().max()), 1e-300):
        raise ValueError("mean strain E must be symmetric")
    device = E.device
    nb = E.shape[0]
    xi = wave_vectors(grid_shape, lengths, device=device, dtype=dtype)
    E_field = E.reshape(nb, d, d, *(1,) * d).expand(nb, d, d, *grid_shape).contiguous()

    can_select = hasattr(material, "select")
    sub_cache: dict = {}

    def operator(x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        if bool(active.all()) or not can_select:
            return project_real(material(x), xi)
        idx = active.nonzero().squeeze(1)
        key = tuple(idx.tolist())
        if key not in sub_cache:
            sub_cache.clear()
            sub_cache[key] = material.select(idx)
        out = torch.zeros_like(x)
        out[idx] = project_real(sub_cache[key](x[idx]), xi)
        return out

    sig_E = material(E_field)
    b = -project_real(sig_E, xi)
    b_norm = _cdot(b, b).sqrt()
    scale = _cdot(sig_E, sig_E).sqrt()
    trivial = b_norm <= 64 * torch.finfo(dtype).eps * scale   # homogeneous cell or E = 0
    safe_bn = torch.where(trivial, torch.ones_like(b_norm), b_norm)

    x = torch.zeros_like(b)
    r = torch.where(_bview(trivial, b), torch.zeros_like(b), b)
    p = r.clone()
    rr = _cdot(r, r)
    active = ~trivial
    converged = trivial.clone()
    iterations = torch.zeros(nb, dtype=torch.int64, device=device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ap = operator(p, active)
        pap = _cdot(p, ap)
        broken = active & ~(pap > 0)                       # breakdown / NaN: freeze, not converged
        active = active & ~broken
        alpha = torch.where(active, rr / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rr))
        x = x + _bview(alpha, x) * p
        r = r - _bview(alpha, r) * ap
        rr_new = _cdot(r, r)
        iterations += active.to(torch.int64)
        newly = active & (rr_new.sqrt() <= tol * safe_bn)
        converged |= newly
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = torch.where(_bview(active, p), r + _bview(beta, p) * p, p)
        rr = torch.where(active, rr_new, rr)
        active = active & ~newly

    strain = E_field + x
    stress = material(strain)
    true_r = project_real(stress, xi)
    residual = torch.where(trivial, torch.zeros_like(b_norm), _cdot(true_r, true_r).sqrt() / safe_bn)
    spatial = tuple(range(3, 3 + d))
    return LinearSolveResult(strain=strain, stress=stress, mean_stress=stress.mean(dim=spatial),
                             mean_strain=strain.mean(dim=spatial), converged=converged,
                             iterations=iterations, residual=residual)


# --------------------------------------------------------------------------- numpy reference
def reference_solve_linear(stiffness: Callable[[np.ndarray], np.ndarray], E, grid_shape: Sequence[int],
                           lengths: Sequence[float] | None = None, tol: float = 1e-10,
                           max_iter: int | None = None) -> dict:
    """Single-cell numpy/scipy version of :func:`solve_linear` (for tests only).

    ``stiffness(eps)`` maps ``(d, d, *grid)`` to ``(d, d, *grid)``. The projection
    is built here as an explicit 4th-order tensor per frequency on the full
    (complex) FFT grid, ``P_ijkl = sym_kl(n_i d_jk n_l + d_ik n_j n_l) - n_i n_j n_k n_l``,
    and the system is handed to :func:`scipy.sparse.linalg.cg`.
    """
    import scipy.sparse.linalg as spla

    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    lengths = (1.0,) * d if lengths is None else tuple(lengths)
    freqs = []
    for n, length in zip(grid_shape, lengths):
        k = np.fft.fftfreq(n) * n
        if n % 2 == 0:
            k[n // 2] = 0.0
        freqs.append(2 * np.pi * k / length)
    xi = np.stack(np.meshgrid(*freqs, indexing="ij"))
    norm = np.sqrt((xi ** 2).sum(0))
    nvec = np.where(norm > 1e-12 * norm.max(), xi / np.where(norm > 0, norm, 1.0), 0.0)
    eye = np.eye(d)
    t1 = np.einsum("i...,jk,l...->ijkl...", nvec, eye, nvec) + np.einsum("ik,j...,l...->ijkl...", eye, nvec, nvec)
    proj = 0.5 * (t1 + t1.transpose(0, 1, 3, 2, *range(4, 4 + d))) \
        - np.einsum("i...,j...,k...,l...->ijkl...", nvec, nvec, nvec, nvec)
    axes = tuple(range(2, 2 + d))
    shape = (d, d, *grid_shape)

    def project(field):
        spec = np.fft.fftn(field, axes=axes)
        return np.fft.ifftn(np.einsum("ijkl...,kl...->ij...", proj, spec), axes=axes).real

    def matvec(v):
        return project(stiffness(v.reshape(shape))).ravel()

    E = np.asarray(E, dtype=float)
    E_field = np.broadcast_to(E.reshape(d, d, *(1,) * d), shape).copy()
    b = -project(stiffness(E_field)).ravel()
    op = spla.LinearOperator((b.size, b.size), matvec=matvec, dtype=float)
    its = [0]
    x, info = spla.cg(op, b, rtol=tol, atol=0.0, maxiter=max_iter,
                      callback=lambda _: its.__setitem__(0, its[0] + 1))
    strain = E_field + x.reshape(shape)
    stress = stiffness(strain)
    return {"strain": strain, "stress": stress, "mean_stress": stress.mean(axis=axes),
            "info": info, "iterations": its[0]}
