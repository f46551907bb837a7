"""Batched Newton-Krylov Fourier-Galerkin solver for nonlinear cells, small or finite strain.

Small strain (Zeman et al. 2017): find the strain field ``eps`` with the prescribed
mean such that ``P(sigma(eps)) = Q Sigma*``. Finite strain (de Geus et al. 2017):
find the deformation gradient ``F`` such that ``G(P(F)) = Q P*`` with ``G`` the
projection onto gradient fields and ``P`` the first Piola-Kirchhoff stress. Newton
step, with ``K`` the consistent (algorithmic) tangent of the material:

    Proj(K : dx) = -(Proj(S(x)) - Q S*),      x <- x + dx,

solved on the compatible subspace by CG (symmetric tangent) or BiCGSTAB
(non-symmetric tangent, e.g. crystal plasticity at finite strain). The Krylov tolerance
is relative to the current Newton residual (inexact Newton: ``krylov_tol``, loosened
near convergence to the reduction that meets ``tol``). Converged cells drop out
of the batch; a cell whose Newton or Krylov iteration fails is reported with its
status (:class:`~homlearn.solvers.fft.krylov.SolveStatus`) and residual, not raised.

Materials provide ``response(x) -> (stress, tangent)``, ``select(index)`` and
``batch_size`` (:mod:`homlearn.materials`). Materials with history keep their committed
state themselves; the solver only evaluates trial states. A material may report failed
local updates through an optional boolean ``failed`` attribute on its tangent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from homlearn.solvers.fft.control import MacroControl
from homlearn.solvers.fft.krylov import KRYLOV_METHODS, SolveStatus
from homlearn.solvers.fft.linear import SelectCache
from homlearn.solvers.fft.projection import Projector

__all__ = ["NewtonResult", "solve_newton"]


@dataclass
class NewtonResult:
    """``strain`` is eps (small) or F (finite), ``stress`` sigma or P, fields ``(B, d, d, *grid)``;
    means ``(B, d, d)``; per cell: ``status``, ``newton_iterations``, ``krylov_iterations``
    (summed over Newton steps) and ``residual`` ``||Proj(S) - Q S*|| / ||S||``."""

    strain: torch.Tensor
    stress: torch.Tensor
    mean_strain: torch.Tensor
    mean_stress: torch.Tensor
    status: torch.Tensor
    newton_iterations: torch.Tensor
    krylov_iterations: torch.Tensor
    residual: torch.Tensor

    @property
    def converged(self) -> torch.Tensor:
        return self.status == SolveStatus.CONVERGED


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x * x).flatten(1).sum(1).sqrt()


def solve_newton(material, control, grid_shape: Sequence[int], batch: int | None = None, *,
                 kinematics: str = "small", krylov: str = "cg", tol: float = 1e-8,
                 krylov_tol: float = 1e-6, max_newton: int = 30, max_krylov: int = 1000,
                 lengths: Sequence[float] | None = None, gradient: str = "continuous",
                 initial: torch.Tensor | None = None, device=None,
                 dtype: torch.dtype = torch.float64) -> NewtonResult:
    """Solve the nonlinear cell problem for ``B`` cells.

    ``control`` is a :class:`MacroControl` or a mean strain / mean F ``(B, d, d)`` or ``(d, d)``.
    ``initial`` (optional, ``(B, d, d, *grid)``) starts Newton from a previous solution, e.g.
    the last load step; its mean is replaced by the prescribed components.
    """
    if kinematics not in ("small", "finite"):
        raise ValueError(f"kinematics must be 'small' or 'finite', got {kinematics!r}")
    if krylov not in KRYLOV_METHODS:
        raise ValueError(f"krylov must be one of {sorted(KRYLOV_METHODS)}, got {krylov!r}")
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    if not isinstance(control, MacroControl):
        control = MacroControl(torch.as_tensor(control))
    if batch is None and torch.as_tensor(control.strain).ndim == 2:
        batch = int(getattr(material, "batch_size", 1))
    mean, mask, s_star = control.resolve(d, batch, device=device, dtype=dtype)
    device, nb = mean.device, mean.shape[0]
    proj = Projector(grid_shape, lengths, kinematics=kinematics, gradient=gradient, stress_mask=mask,
                     device=device, dtype=dtype)
    ones = (1,) * d
    spatial = tuple(range(3, 3 + d))
    x = mean.reshape(nb, d, d, *ones).expand(nb, d, d, *grid_shape).clone()
    if initial is not None:
        initial = torch.as_tensor(initial, dtype=dtype, device=device)
        fixed = torch.ones(d, d, dtype=torch.bool, device=device) if mask is None else ~mask
        shift = torch.where(fixed, mean - initial.mean(dim=spatial), torch.zeros_like(mean))
        x = initial + shift.reshape(nb, d, d, *ones)
    target = s_star.reshape(nb, d, d, *ones)
    solve_krylov = KRYLOV_METHODS[krylov]

    stress = torch.full_like(x, float("nan"))
    status = torch.full((nb,), int(SolveStatus.MAX_ITERATIONS), dtype=torch.int64, device=device)
    newton_its = torch.zeros(nb, dtype=torch.int64, device=device)
    krylov_its = torch.zeros(nb, dtype=torch.int64, device=device)
    residual = torch.full((nb,), float("inf"), dtype=dtype, device=device)
    active = torch.ones(nb, dtype=torch.bool, device=device)
    subsets = SelectCache(material)
    for it in range(max_newton + 1):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xs = x[idx]
        s, tangent = subsets(idx).response(xs)
        stress[idx] = s
        r = proj(s) - target[idx]
        res = _norm(r) / torch.clamp(_norm(s), min=torch.finfo(dtype).tiny)
        res = torch.where(_norm(r) == 0, torch.zeros_like(res), res)
        residual[idx] = res
        failed = getattr(tangent, "failed", None)
        local_fail = failed.flatten(1).any(1) if failed is not None else torch.zeros_like(res, dtype=torch.bool)
        nonfinite = ~torch.isfinite(res)
        done = (res <= tol) & ~nonfinite & ~local_fail
        status[idx[nonfinite]] = SolveStatus.NONFINITE
        status[idx[local_fail & ~nonfinite]] = SolveStatus.LOCAL_FAILURE
        status[idx[done]] = SolveStatus.CONVERGED
        keep = ~(done | nonfinite | local_fail)
        active[idx[~keep]] = False
        if it == max_newton or not bool(keep.any()):
            break
        sub = keep.nonzero().squeeze(1)
        tan = SelectCache(tangent.select(sub) if sub.numel() < idx.numel() else tangent, sub.numel())
        # forcing term: ask Krylov for no more than the reduction that meets ``tol`` (0.1 margin)
        eta = torch.clamp(0.1 * tol / res[sub], min=krylov_tol, max=0.1)
        kr = solve_krylov(lambda v, i: proj(tan(i)(v)), -r[sub], tol=eta, max_iter=max_krylov)
        cells = idx[sub]
        bad = kr.status >= SolveStatus.BREAKDOWN
        krylov_its[cells] += kr.iterations
        newton_its[cells] += 1
        status[cells[bad]] = kr.status[bad]
        active[cells[bad]] = False
        # Krylov iterates live on the compatible subspace in exact arithmetic; projecting the
        # update drops the round-off that BiCGSTAB lets drift off it (F must stay a gradient)
        x[cells[~bad]] = xs[sub[~bad]] + proj(kr.x[~bad])
    return NewtonResult(strain=x, stress=stress, mean_strain=x.mean(dim=spatial),
                        mean_stress=stress.mean(dim=spatial), status=status, newton_iterations=newton_its,
                        krylov_iterations=krylov_its, residual=residual)
