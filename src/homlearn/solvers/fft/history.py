"""Load histories on the FFT engine: time stepping of path-dependent cells.

At every step the macroscopic control of that step is solved by Newton-Krylov
(:func:`~homlearn.solvers.fft.newton.solve_newton`) starting from the last converged field
plus the last increment scaled to the step (a linear predictor), then the material commits its
state. A step in which some cell fails (Newton, Krylov or a local material update) is not
committed: it is retried in sub-steps (cutbacks), the macroscopic control interpolated linearly
from the last converged mean state, the sub-step halved after a failure and doubled again after
a success, down to ``2**-max_cutbacks`` of the step. Only cells that still fail at the smallest
sub-step are dropped from the batch and reported with the step and status; the others go on.
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
    cutbacks: torch.Tensor | None = None  #: per cell, sub-step attempts that failed and were halved


def solve_history(material, controls: Callable[[int], MacroControl], n_steps: int,
                  grid_shape: Sequence[int], *, dt: float | Sequence[float], kinematics: str = "small",
                  record_steps: Sequence[int] = (), progress: Callable[[int], None] | None = None,
                  max_cutbacks: int = 4, device=None, dtype=torch.float64, **newton_kw) -> HistoryResult:
    """Step ``material`` (with ``dt``, ``response``, ``commit``, ``select``) through ``n_steps``.

    ``controls(k)`` gives the macroscopic control at the end of step ``k`` (1..n_steps) for every
    cell (a :class:`MacroControl` with ``(B, d, d)`` or ``(d, d)`` entries). ``dt`` is one time
    step or one per step. A failing step is retried in sub-steps down to ``2**-max_cutbacks`` of
    it (0: no cutbacks). Extra keywords go to :func:`solve_newton`.
    """
    if max_cutbacks < 0:
        raise ValueError(f"max_cutbacks must be >= 0, got {max_cutbacks}")
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    nb = material.batch_size
    dts = np.broadcast_to(np.asarray(dt, dtype=float), (n_steps,))
    ones = (1,) * d
    spatial = tuple(range(3, 3 + d))
    eye = torch.eye(d, dtype=dtype, device=device)
    start = torch.zeros(nb, d, d, *grid_shape, dtype=dtype, device=device) if kinematics == "small" else \
        eye.reshape(1, d, d, *ones).expand(nb, d, d, *grid_shape).clone()
    nan = float("nan")
    mean_strain = torch.full((nb, n_steps + 1, d, d), nan, dtype=dtype, device=device)
    mean_stress = torch.full_like(mean_strain, nan)
    mean_strain[:, 0] = start.mean(dim=spatial)
    mean_stress[:, 0] = 0.0
    status = torch.zeros(nb, dtype=torch.int64, device=device)
    failed_step = torch.full((nb,), -1, dtype=torch.int64, device=device)
    newton_its = torch.zeros(nb, dtype=torch.int64, device=device)
    krylov_its = torch.zeros(nb, dtype=torch.int64, device=device)
    cutbacks = torch.zeros(nb, dtype=torch.int64, device=device)
    fields: dict = {}
    alive = torch.arange(nb, device=device)                  # original index of each live cell
    mat = material
    x, dx = start, torch.zeros_like(start)
    dx_dt = 1.0                                              # time span of the increment dx
    cur_strain, cur_stress = mean_strain[:, 0].clone(), mean_stress[:, 0].clone()  # last converged means
    smallest = 2.0 ** -max_cutbacks
    h = 1.0                                                  # sub-step, as a fraction of the step
    for k in range(1, n_steps + 1):
        if alive.numel() == 0:
            break
        ctl = controls(k)
        target = torch.as_tensor(ctl.strain, dtype=dtype, device=device)
        target = target[alive] if target.ndim == 3 else target.expand(alive.numel(), d, d)
        t_stress = torch.zeros_like(target) if ctl.stress is None else \
            torch.as_tensor(ctl.stress, dtype=dtype, device=device)
        t_stress = t_stress[alive] if t_stress.ndim == 3 else t_stress.expand(alive.numel(), d, d)
        done = 0.0                                           # fraction of step k already committed
        h = min(1.0, 2.0 * h)
        while done < 1.0 and alive.numel():
            h = min(h, 1.0 - done)
            w = h / (1.0 - done)                             # share of the remaining way to the target
            step_dt = float(dts[k - 1]) * h
            mat.dt = step_dt
            stress = None if ctl.stress_mask is None else cur_stress + w * (t_stress - cur_stress)
            control = MacroControl(cur_strain + w * (target - cur_strain), ctl.stress_mask, stress)
            res = solve_newton(mat, control, grid_shape, batch=alive.numel(), kinematics=kinematics,
                               initial=x + dx * (step_dt / dx_dt), device=device, dtype=dtype, **newton_kw)
            newton_its[alive] += res.newton_iterations
            krylov_its[alive] += res.krylov_iterations
            ok = res.status == SolveStatus.CONVERGED
            if not bool(ok.all()) and h > smallest:          # retry the whole batch with half the sub-step
                cutbacks[alive] += 1
                h = max(0.5 * h, smallest)
                continue
            local = mat.commit(res.strain)
            ok = ok & ~local.flatten(1).any(1)
            bad = ~ok
            status[alive[bad]] = torch.where(res.status[bad] == SolveStatus.CONVERGED,
                                             torch.full_like(res.status[bad], int(SolveStatus.LOCAL_FAILURE)),
                                             res.status[bad])
            failed_step[alive[bad]] = k
            dx, x, dx_dt = res.strain - x, res.strain, step_dt
            cur_strain, cur_stress = res.mean_strain, res.mean_stress
            done = 1.0 if h >= 1.0 - done else done + h
            if done >= 1.0:
                mean_strain[alive[ok], k] = res.mean_strain[ok]
                mean_stress[alive[ok], k] = res.mean_stress[ok]
                if k in record_steps:
                    out = torch.full((nb, d, d, *grid_shape), nan, dtype=dtype, device=device)
                    out[alive[ok]] = res.stress[ok]
                    fields[k] = out
            else:
                h = min(1.0, 2.0 * h)
            if bool(bad.any()):
                keep = ok.nonzero().squeeze(1)
                mat, x, dx, alive = mat.select(keep), x[keep], dx[keep], alive[keep]
                cur_strain, cur_stress = cur_strain[keep], cur_stress[keep]
                target, t_stress = target[keep], t_stress[keep]
        if progress is not None:
            progress(k)
    return HistoryResult(mean_strain, mean_stress, status, failed_step, newton_its, krylov_its, fields, cutbacks)
