"""Batched Krylov solvers with per-cell convergence masks (CG and BiCGSTAB).

Each of the ``B`` cells of a batch carries its own scalars; a cell that meets
``||r|| <= tol ||b||`` is frozen and stops costing operator applications (the
operator receives the indices of the cells still active), a cell that breaks
down or runs out of iterations is reported through :class:`SolveStatus`, never
raised. Vectors are tensors ``(B, ...)``; inner products sum over everything but
the batch axis.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["SolveStatus", "KrylovResult", "batched_cg", "batched_bicgstab", "KRYLOV_METHODS"]

#: ``operator(x_active, index) -> A x`` for the cells ``index`` (1D long tensor).
Operator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SolveStatus(enum.IntEnum):
    """Per-cell outcome of a solve (stored with every sample)."""

    CONVERGED = 0
    MAX_ITERATIONS = 1
    BREAKDOWN = 2       # a Krylov scalar vanished or turned negative (operator not SPD for CG)
    NONFINITE = 3       # NaN or Inf met (material or operator)
    LOCAL_FAILURE = 4   # the material reported a failed point update (used by inelastic laws)


@dataclass
class KrylovResult:
    """Solution ``x`` and per-cell ``status`` (:class:`SolveStatus` codes), ``iterations`` and the
    last recursive relative residual ``||r|| / ||b||``."""

    x: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor

    @property
    def converged(self) -> torch.Tensor:
        return self.status == SolveStatus.CONVERGED


def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * y).flatten(1).sum(1)


def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *(1,) * (like.ndim - 1))


def _safe(den: torch.Tensor) -> torch.Tensor:
    return torch.where(den == 0, torch.ones_like(den), den)


def _apply(operator: Operator, v: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """``A v`` on the active cells only (zeros elsewhere)."""
    if bool(active.all()):
        return operator(v, torch.arange(v.shape[0], device=v.device))
    idx = active.nonzero().squeeze(1)
    out = torch.zeros_like(v)
    out[idx] = operator(v[idx], idx)
    return out


def _start(b: torch.Tensor, tol):
    nb = b.shape[0]
    b_norm = _dot(b, b).sqrt()
    status = torch.full((nb,), int(SolveStatus.MAX_ITERATIONS), dtype=torch.int64, device=b.device)
    zero = b_norm == 0                                       # x = 0 is exact
    status[zero] = SolveStatus.CONVERGED
    status[~torch.isfinite(b_norm)] = SolveStatus.NONFINITE
    active = status == SolveStatus.MAX_ITERATIONS
    return b_norm, status, active, torch.zeros(nb, dtype=torch.int64, device=b.device), tol * b_norm


def batched_cg(operator: Operator, b: torch.Tensor, *, tol=1e-10, max_iter: int = 1000) -> KrylovResult:
    """Conjugate gradients from ``x = 0`` for an operator symmetric positive definite on the
    subspace that contains ``b`` (e.g. the projected stiffness on compatible fields).
    ``tol`` is a float or a per-cell tensor ``(B,)``."""
    b_norm, status, active, its, stop = _start(b, tol)
    x = torch.zeros_like(b)
    r = torch.where(_b(active, b), b, torch.zeros_like(b))
    p = r.clone()
    rr = _dot(r, r)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ap = _apply(operator, p, active)
        pap = _dot(p, ap)
        bad = active & ~torch.isfinite(pap)
        broken = active & torch.isfinite(pap) & ~(pap > 0)
        status[bad] = SolveStatus.NONFINITE
        status[broken] = SolveStatus.BREAKDOWN
        active = active & ~bad & ~broken
        alpha = torch.where(active, rr / _safe(pap), torch.zeros_like(rr))
        every = bool(active.all())
        if every:                                   # in place: no masks to honour
            x.addcmul_(_b(alpha, x), p)
            r.addcmul_(_b(alpha, r), ap, value=-1.0)
        else:
            x = torch.where(_b(active, x), x + _b(alpha, x) * p, x)
            r = torch.where(_b(active, r), r - _b(alpha, r) * ap, r)
        rr_new = torch.where(active, _dot(r, r), rr)
        its += active.to(torch.int64)
        newly = active & (rr_new.sqrt() <= stop)
        status[newly] = SolveStatus.CONVERGED
        beta = torch.where(active, rr_new / _safe(rr), torch.zeros_like(rr))
        if every:
            p.mul_(_b(beta, p)).add_(r)
        else:
            p = torch.where(_b(active, p), r + _b(beta, p) * p, p)
        rr = rr_new
        active = active & ~newly
    return KrylovResult(x, status, its, rr.sqrt() / _safe(b_norm))


def batched_bicgstab(operator: Operator, b: torch.Tensor, *, tol=1e-10,
                     max_iter: int = 1000) -> KrylovResult:
    """BiCGSTAB (van der Vorst 1992) from ``x = 0`` for non-symmetric operators; two operator
    applications per iteration."""
    b_norm, status, active, its, stop = _start(b, tol)
    x = torch.zeros_like(b)
    r = torch.where(_b(active, b), b, torch.zeros_like(b))
    r_hat = r.clone()
    one = torch.ones_like(b_norm)
    rho, alpha, omega = one.clone(), one.clone(), one.clone()
    v = torch.zeros_like(b)
    p = torch.zeros_like(b)
    res = torch.where(active, one, torch.zeros_like(b_norm))
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        rho_new = _dot(r_hat, r)
        beta = (rho_new / _safe(rho)) * (alpha / _safe(omega))
        p = torch.where(_b(active, p), r + _b(beta, p) * (p - _b(omega, v) * v), p)
        v = torch.where(_b(active, v), _apply(operator, p, active), v)
        den = _dot(r_hat, v)
        broken = active & ((den == 0) | (rho_new == 0))
        status[broken] = SolveStatus.BREAKDOWN
        active = active & ~broken
        alpha = torch.where(active, rho_new / _safe(den), alpha)
        s = torch.where(_b(active, r), r - _b(alpha, v) * v, r)
        s_norm = _dot(s, s).sqrt()
        early = active & (s_norm <= stop)
        x = torch.where(_b(early, x), x + _b(alpha, p) * p, x)
        its += active.to(torch.int64)
        status[early] = SolveStatus.CONVERGED
        res = torch.where(early, s_norm / _safe(b_norm), res)
        active = active & ~early
        t = _apply(operator, s, active)
        tt = _dot(t, t)
        omega = torch.where(active, _dot(t, s) / _safe(tt), omega)
        broken = active & (omega == 0)
        step = active & ~broken
        x = torch.where(_b(step, x), x + _b(alpha, p) * p + _b(omega, s) * s, x)
        r = torch.where(_b(step, r), s - _b(omega, t) * t, r)
        r_norm = _dot(r, r).sqrt()
        nonfinite = active & ~torch.isfinite(r_norm)
        status[nonfinite] = SolveStatus.NONFINITE
        status[broken & ~nonfinite] = SolveStatus.BREAKDOWN
        res = torch.where(step, r_norm / _safe(b_norm), res)
        newly = step & ~nonfinite & (r_norm <= stop)
        status[newly] = SolveStatus.CONVERGED
        rho = torch.where(active, rho_new, rho)
        active = active & ~broken & ~nonfinite & ~newly
    return KrylovResult(x, status, its, res)


KRYLOV_METHODS = {"cg": batched_cg, "bicgstab": batched_bicgstab}
