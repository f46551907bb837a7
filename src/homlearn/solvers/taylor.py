"""Taylor averaging: every grain takes the macroscopic strain (or F); the macroscopic stress is
the volume average of the grain stresses (paper 'pcanet' SI-A; the stiff bound of the FFT cell).

Mixed control as in the FFT engine (:class:`~homlearn.solvers.fft.control.MacroControl`): the
free mean strain components solve ``Q (<S(E)> - S*) = 0`` by Newton with the averaged consistent
tangent ``Q <K> Q`` (a small dense system per path). Materials are the same objects as for the
FFT engine (with an attribute ``d``, the tensor dimension), with the grains laid out as a
``(n_grains, 1, 1)`` grid (3D) or ``(n_grains, 1)`` (2D); ``weights`` ``(B, n_grains)`` are the grain volume fractions (uniform by default).

A fully prescribed deformation history (a stretch path U of paper 'pcanet' 2.2, F = U) needs no
macroscopic Newton: :func:`solve_taylor_prescribed` steps the grains and returns the mean
Cauchy stress ``<sigma> = <P> F^T / det F`` (F is the same in every grain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from homlearn.solvers.fft.control import MacroControl
from homlearn.solvers.fft.krylov import SolveStatus

__all__ = ["TaylorResult", "solve_taylor", "solve_taylor_history", "solve_taylor_prescribed", "grain_grid"]


def grain_grid(n_grains: int, d: int) -> tuple[int, ...]:
    """The grid shape that holds ``n_grains`` material points for a ``d``-dimensional material."""
    return (n_grains,) + (1,) * (d - 1)


@dataclass
class TaylorResult:
    mean_strain: torch.Tensor
    mean_stress: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor


def _average(field: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bij...,b...->bij", field, w)


def solve_taylor(material, control: MacroControl, n_grains: int, *, weights=None, kinematics: str = "small",
                 tol: float = 1e-10, max_iter: int = 30, initial=None, dtype=torch.float64,
                 device=None) -> TaylorResult:
    """Solve one load state of ``B`` Taylor aggregates of ``n_grains`` points each."""
    E, mask, s_star = control.resolve(material.d, material.batch_size, device=device, dtype=dtype)
    nb, d = E.shape[0], E.shape[1]
    grid = grain_grid(n_grains, d)
    w = torch.full((nb, *grid), 1.0 / n_grains, dtype=dtype, device=E.device) if weights is None else \
        torch.as_tensor(weights, dtype=dtype, device=E.device).reshape(nb, *grid)
    free = torch.zeros(d, d, dtype=torch.bool, device=E.device) if mask is None else mask
    if initial is not None:
        E = torch.where(free, torch.as_tensor(initial, dtype=dtype, device=E.device), E)
    pairs = [(i, j) for i in range(d) for j in range(d) if bool(free[i, j])]
    if kinematics == "small":                       # symmetric unknowns: (i, j) and (j, i) together
        pairs = [(i, j) for i, j in pairs if i <= j]
    status = torch.full((nb,), int(SolveStatus.MAX_ITERATIONS), dtype=torch.int64, device=E.device)
    iterations = torch.zeros(nb, dtype=torch.int64, device=E.device)
    residual = torch.full((nb,), float("inf"), dtype=dtype, device=E.device)
    ones = (1,) * d
    for it in range(max_iter + 1):
        field = E.reshape(nb, d, d, *ones).expand(nb, d, d, *grid)
        stress, tangent = material.response(field.contiguous())
        S = _average(stress, w)
        r = (S - s_star) * free
        res = r.flatten(1).norm(dim=1) / torch.clamp(S.flatten(1).norm(dim=1), min=torch.finfo(dtype).tiny)
        residual = res
        failed = getattr(tangent, "failed", None)
        bad = ~torch.isfinite(res)
        if failed is not None:
            bad |= failed.flatten(1).any(1)
        done = (res <= tol) | (r.flatten(1).norm(dim=1) == 0)
        status = torch.where(done & ~bad, torch.zeros_like(status), status)
        status = torch.where(bad, torch.full_like(status, int(SolveStatus.NONFINITE)), status)
        if bool((done | bad).all()) or it == max_iter or not pairs:
            break
        # averaged tangent on the free components (columns: unit changes of each free pair)
        cols = []
        for i, j in pairs:
            dE = torch.zeros(nb, d, d, dtype=dtype, device=E.device)
            dE[:, i, j] = 1.0
            if kinematics == "small":
                dE[:, j, i] = 1.0
            cols.append(_average(tangent(dE.reshape(nb, d, d, *ones).expand(nb, d, d, *grid).contiguous()), w))
        J = torch.stack([torch.stack([c[:, i, j] for c in cols], -1) for i, j in pairs], 1)   # (B, n, n)
        rhs = -torch.stack([r[:, i, j] for i, j in pairs], -1)
        step = torch.linalg.solve(J, rhs[..., None])[..., 0]
        step = torch.where((done | bad)[:, None], torch.zeros_like(step), step)
        for k, (i, j) in enumerate(pairs):
            E[:, i, j] += step[:, k]
            if kinematics == "small" and i != j:
                E[:, j, i] += step[:, k]
        iterations += (~(done | bad)).to(torch.int64)
    return TaylorResult(E, S, status, iterations, residual)


def solve_taylor_history(material, controls: Callable[[int], MacroControl], n_steps: int, n_grains: int, *,
                         dt, weights=None, kinematics: str = "small", dtype=torch.float64, device=None,
                         **kw) -> TaylorResult:
    """Step a Taylor aggregate through ``n_steps`` (state committed after each step); returns the
    histories ``(B, n_steps + 1, d, d)`` (NaN after a failure) and the first failure status."""
    dts = np.broadcast_to(np.asarray(dt, dtype=float), (n_steps,))
    nb = material.batch_size
    d = material.d
    eye = torch.eye(d, dtype=dtype, device=device)
    E0 = torch.zeros(nb, d, d, dtype=dtype, device=device) if kinematics == "small" else eye.expand(nb, d, d).clone()
    strain = torch.full((nb, n_steps + 1, d, d), float("nan"), dtype=dtype, device=device)
    stress = torch.full_like(strain, float("nan"))
    strain[:, 0], stress[:, 0] = E0, 0.0
    status = torch.zeros(nb, dtype=torch.int64, device=device)
    its = torch.zeros(nb, dtype=torch.int64, device=device)
    prev, inc = E0, torch.zeros_like(E0)
    for k in range(1, n_steps + 1):
        material.dt = float(dts[k - 1])
        res = solve_taylor(material, controls(k), n_grains, weights=weights, kinematics=kinematics,
                           initial=prev + inc, dtype=dtype, device=device, **kw)
        grid = grain_grid(n_grains, d)
        failed = material.commit(res.mean_strain.reshape(nb, d, d, *(1,) * d).expand(nb, d, d, *grid).contiguous())
        bad = (res.status != SolveStatus.CONVERGED) | failed.flatten(1).any(1)
        status = torch.where((status == 0) & bad, torch.where(res.status == 0, torch.full_like(status, 4), res.status),
                             status)
        ok = status == 0
        strain[ok, k], stress[ok, k] = res.mean_strain[ok], res.mean_stress[ok]
        its += res.iterations
        inc, prev = res.mean_strain - prev, res.mean_strain
    return TaylorResult(strain, stress, status, its, torch.zeros(nb, dtype=dtype, device=device))


def solve_taylor_prescribed(material, F, n_grains: int, *, dt, weights=None, dtype=torch.float64,
                            device=None) -> TaylorResult:
    """Taylor aggregates under a fully prescribed mean deformation gradient history ``F``
    ``(B, n_steps + 1, d, d)`` (``F[:, 0]`` = I), finite strain. Returns ``mean_strain`` = F and
    ``mean_stress`` = the grain-averaged Cauchy stress ``<P> F^T / det F`` (MPa), NaN from the step
    a path failed on; ``status`` the first failure (:class:`SolveStatus` codes)."""
    F = torch.as_tensor(F, dtype=dtype, device=device)
    n_steps = F.shape[1] - 1
    res = solve_taylor_history(material, lambda k: MacroControl(F[:, k]), n_steps, n_grains, dt=dt,
                               weights=weights, kinematics="finite", dtype=dtype, device=F.device)
    cauchy = res.mean_stress @ F.transpose(-1, -2) / torch.linalg.det(F)[..., None, None]
    return TaylorResult(F, cauchy, res.status, res.iterations, res.residual)
