"""Batched small-strain linear elastic Fourier-Galerkin solver (torch, CPU or CUDA).

Cell problem (paper 'rln', eq. 1-2 and its L-S form eq. 8-11): find a compatible,
zero-mean fluctuation ``eps~`` such that ``sigma = C : (E + eps~ - eps*)`` is in
equilibrium. In the Fourier-Galerkin form (Zeman et al. 2017; de Geus et al.
2017; the reference-medium-free descendant of Moulinec-Suquet) this reads

    P(C : eps~) = -P(C : (E - eps*)),

with ``P`` the orthogonal projection onto compatible fields
(:class:`homlearn.solvers.fft.projection.Projector`, continuous or Willot gradient,
optionally with mixed stress control at the zero frequency). The operator
``x -> P(C : x)`` is symmetric positive definite on the compatible subspace, so it
is solved by conjugate gradients started from ``eps~ = 0``.

Batching: ``B`` cells are iterated together, each with its own CG scalars and a
convergence mask (:func:`homlearn.solvers.fft.krylov.batched_cg`); a cell that
misses ``max_iter`` is reported with its status and residual, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from homlearn.materials.elastic import CubicMaterial, IsotropicMaterial, isotropic_stiffness_apply
from homlearn.solvers.fft.control import MacroControl
from homlearn.solvers.fft.krylov import SolveStatus, batched_cg
from homlearn.solvers.fft.projection import Projector, from_mandel, to_mandel

__all__ = ["isotropic_stiffness_apply", "IsotropicMaterial", "CubicMaterial",
           "LinearSolveResult", "solve_linear", "reference_solve_linear", "SelectCache"]


class SelectCache:
    """``material.select(index)`` remembered for the last index (the active set of a Krylov solve)."""

    def __init__(self, material, batch_size: int | None = None):
        self.material = material
        self.can_select = hasattr(material, "select")
        self.batch_size = batch_size if batch_size is not None else getattr(material, "batch_size", -1)
        self._key, self._sub = None, None

    def __call__(self, index: torch.Tensor):
        if not self.can_select or index.numel() == self.batch_size:
            return self.material
        key = tuple(index.tolist())
        if key != self._key:
            self._key, self._sub = key, self.material.select(index)
        return self._sub


@dataclass
class LinearSolveResult:
    """Fields ``(B, d, d, *grid)``, mean stress and strain ``(B, d, d)`` and per-cell diagnostics.

    ``residual`` is the final true relative residual ``||P(sigma) - Q Sigma*|| / ||b||``
    with ``b`` the initial right-hand side (0 for cells whose right-hand side vanishes
    to round-off, e.g. homogeneous cells under strain control); ``status`` holds
    :class:`~homlearn.solvers.fft.krylov.SolveStatus` codes, ``converged`` is
    ``status == CONVERGED`` (the CG criterion, recursive residual <= tol).
    """

    strain: torch.Tensor
    stress: torch.Tensor
    mean_stress: torch.Tensor
    mean_strain: torch.Tensor
    converged: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x * x).flatten(1).sum(1).sqrt()


def solve_linear(material: Callable[[torch.Tensor], torch.Tensor], E, grid_shape: Sequence[int],
                 batch: int | None = None, *, tol: float = 1e-10, max_iter: int = 1000,
                 lengths: Sequence[float] | None = None, gradient: str = "continuous",
                 stress_mask=None, mean_stress=None, eigenstrain: torch.Tensor | None = None,
                 device=None, dtype: torch.dtype = torch.float64) -> LinearSolveResult:
    """Solve ``P(C : eps~) = -P(C : (E - eps*)) + Q Sigma*`` for ``B`` cells by masked, batched CG.

    ``material(eps) -> sigma`` maps ``(B, d, d, *grid)`` to the same shape (if it has
    ``select(index)``, converged cells are skipped). ``E`` is the mean strain ``(B, d, d)``
    or ``(d, d)`` (broadcast to ``batch`` cells; ``batch`` defaults to
    ``material.batch_size`` or 1), or a :class:`MacroControl`. Mixed control: the mean
    stress components where ``stress_mask`` is true are prescribed by ``mean_stress``
    (default 0) and the matching entries of ``E`` are free. ``eigenstrain`` is an optional
    ``(B, d, d, *grid)`` field. Keep the material's tensors on ``device``; otherwise they
    are copied at every application.
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    control = E if isinstance(E, MacroControl) else MacroControl(torch.as_tensor(E), stress_mask, mean_stress)
    if batch is None and torch.as_tensor(control.strain).ndim == 2:
        batch = int(getattr(material, "batch_size", 1))
    E, mask, sig_star = control.resolve(d, batch, device=device, dtype=dtype)
    if mask is None and (E - E.transpose(1, 2)).abs().max() > 1e-12 * max(float(E.abs().max()), 1e-300):
        raise ValueError("mean strain E must be symmetric")
    device, nb = E.device, E.shape[0]
    proj = Projector(grid_shape, lengths, kinematics="small", gradient=gradient, stress_mask=mask,
                     device=device, dtype=dtype)
    ones = (1,) * d
    E_field = E.reshape(nb, d, d, *ones).expand(nb, d, d, *grid_shape).contiguous()
    target = sig_star.reshape(nb, d, d, *ones)
    if eigenstrain is not None:
        eigenstrain = torch.as_tensor(eigenstrain, dtype=dtype, device=device).expand_as(E_field)

    # CG iterates on Mandel vectors (d(d+1)/2 components, a third less work than full tensors in
    # 3D) when the material can apply itself to them; otherwise on full symmetric tensors
    if hasattr(material, "apply_mandel"):
        pairs = proj.mandel_pairs()
        to, back = (lambda t: to_mandel(t, pairs)), (lambda v: from_mandel(v, pairs, d))
        apply, project = (lambda m, v: m.apply_mandel(v)), proj.project_mandel
    else:
        to = back = (lambda t: t)
        apply, project = (lambda m, v: m(v)), proj
    target_v = to(target)

    def stress_of(strain_v):
        return apply(material, strain_v if eigenstrain is None else strain_v - to(eigenstrain))

    E_v = to(E_field)
    sig0 = stress_of(E_v)
    b = target_v - project(sig0)
    b_norm = _norm(b)
    trivial = b_norm <= 64 * torch.finfo(dtype).eps * _norm(sig0)   # homogeneous cell, no load
    b = torch.where(trivial.reshape(nb, *(1,) * (b.ndim - 1)), torch.zeros_like(b), b)
    subsets = SelectCache(material)
    kr = batched_cg(lambda x, idx: project(apply(subsets(idx), x)), b, tol=tol, max_iter=max_iter)

    strain_v = E_v + kr.x
    stress_v = stress_of(strain_v)
    safe = torch.where(trivial, torch.ones_like(b_norm), b_norm)
    residual = torch.where(trivial, torch.zeros_like(b_norm), _norm(project(stress_v) - target_v) / safe)
    strain, stress = back(strain_v), back(stress_v)
    spatial = tuple(range(3, 3 + d))
    return LinearSolveResult(strain=strain, stress=stress, mean_stress=stress.mean(dim=spatial),
                             mean_strain=strain.mean(dim=spatial), converged=kr.status == SolveStatus.CONVERGED,
                             status=kr.status, iterations=kr.iterations, residual=residual)


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
