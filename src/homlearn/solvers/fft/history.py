"""Load histories on the FFT engine: time stepping of path-dependent cells.

At every step the macroscopic control of that step is solved by Newton-Krylov
(:func:`~homlearn.solvers.fft.newton.solve_newton`) starting from the last converged field
plus the last increment (a linear predictor), then the material commits its state. Cells that
fail (Newton, Krylov or a local material update) are dropped from the batch from then on and
reported with the step and status; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from homlearn.solvers.fft.control import MacroControl
from homlearn.solvers.fft.krylov import SolveStatus
from homlearn.solvers.fft.newton import solve_newton

__all__ = ["HistoryResult", "solve_history"]


@dataclass
class HistoryResult:
    """Mean strain (or F) and mean stress histories ``(B, n_steps + 1, d, d)`` (step 0 is the
    unloaded state; NaN after a cell failed), per-cell ``status`` (first failure),
    ``failed_step`` (-1 if none), Newton and Krylov iteration totals, and the stress fields
    recorded at ``record_steps`` (dict step -> ``(B, d, d, *grid)``)."""

    mean_strain: torch.Tensor
    mean_stress: torch.Tensor
    status: torch.Tensor
    failed_step: torch.Tensor
    newton_iterations: torch.Tensor
    krylov_iterations: torch.Tensor
    fields: dict = field(default_factory=dict)


def solve_history(material, controls: Callable[[int], MacroControl], n_steps: int,
                  grid_shape: Sequence[int], *, dt: float | Sequence[float], kinematics: str = "small",
                  record_steps: Sequence[int] = (), progress: Callable[[int], None] | None = None,
                  device=None, dtype=torch.float64, **newton_kw) -> HistoryResult:
    """Step ``material`` (with ``dt``, ``response``, ``commit``, ``select``) through ``n_steps``.

    ``controls(k)`` gives the macroscopic control at the end of step ``k`` (1..n_steps) for every
    cell (a :class:`MacroControl` with ``(B, d, d)`` or ``(d, d)`` entries). ``dt`` is one time
    step or one per step. Extra keywords go to :func:`solve_newton`.
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    nb = material.batch_size
    dts = np.broadcast_to(np.asarray(dt, dtype=float), (n_steps,))
    ones = (1,) * d
    eye = torch.eye(d, dtype=dtype, device=device)
    start = torch.zeros(nb, d, d, *grid_shape, dtype=dtype, device=device) if kinematics == "small" else \
        eye.reshape(1, d, d, *ones).expand(nb, d, d, *grid_shape).clone()
    nan = float("nan")
    mean_strain = torch.full((nb, n_steps + 1, d, d), nan, dtype=dtype, device=device)
    mean_stress = torch.full_like(mean_strain, nan)
    mean_strain[:, 0] = start.mean(dim=tuple(range(3, 3 + d)))
    mean_stress[:, 0] = 0.0
    status = torch.zeros(nb, dtype=torch.int64, device=device)
    failed_step = torch.full((nb,), -1, dtype=torch.int64, device=device)
    newton_its = torch.zeros(nb, dtype=torch.int64, device=device)
    krylov_its = torch.zeros(nb, dtype=torch.int64, device=device)
    fields: dict = {}
    alive = torch.arange(nb, device=device)                  # original index of each live cell
    mat = material
    x, dx = start, torch.zeros_like(start)
    for k in range(1, n_steps + 1):
        if alive.numel() == 0:
            break
        mat.dt = float(dts[k - 1])
        ctl = controls(k)
        strain = torch.as_tensor(ctl.strain, dtype=dtype, device=device)
        stress = None if ctl.stress is None else torch.as_tensor(ctl.stress, dtype=dtype, device=device)
        if strain.ndim == 3:
            strain = strain[alive]
        if stress is not None and stress.ndim == 3:
            stress = stress[alive]
        res = solve_newton(mat, MacroControl(strain, ctl.stress_mask, stress), grid_shape,
                           batch=alive.numel(), kinematics=kinematics, initial=x + dx,
                           device=device, dtype=dtype, **newton_kw)
        newton_its[alive] += res.newton_iterations
        krylov_its[alive] += res.krylov_iterations
        ok = res.status == SolveStatus.CONVERGED
        local = mat.commit(res.strain)
        ok = ok & ~local.flatten(1).any(1)
        bad = ~ok
        status[alive[bad]] = torch.where(res.status[bad] == SolveStatus.CONVERGED,
                                         torch.full_like(res.status[bad], int(SolveStatus.LOCAL_FAILURE)),
                                         res.status[bad])
        failed_step[alive[bad]] = k
        mean_strain[alive[ok], k] = res.mean_strain[ok]
        mean_stress[alive[ok], k] = res.mean_stress[ok]
        if k in record_steps:
            out = torch.full((nb, d, d, *grid_shape), nan, dtype=dtype, device=device)
            out[alive[ok]] = res.stress[ok]
            fields[k] = out
        dx = res.strain - x
        x = res.strain
        if bool(bad.any()):
            keep = ok.nonzero().squeeze(1)
            mat, x, dx, alive = mat.select(keep), x[keep], dx[keep], alive[keep]
        if progress is not None:
            progress(k)
    return HistoryResult(mean_strain, mean_stress, status, failed_step, newton_its, krylov_its, fields)
