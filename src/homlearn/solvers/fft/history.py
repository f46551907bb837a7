"""Load histories on the FFT engine: time stepping of path-dependent cells.

At every step the macroscopic control of that step is solved by Newton-Krylov
(:func:`~homlearn.solvers.fft.newton.solve_newton`) starting from the last converged field
plus the last increment scaled to the step (a linear predictor), then the material commits its
state. A cell that fails a step (Newton, Krylov or a local material update) is not committed:
it is split off with the other failed cells into a group that retries the step in sub-steps
(cutbacks), the macroscopic control interpolated linearly from the cell's last converged mean
state, the sub-step halved after a failure and doubled again after a success, down to
``2**-max_cutbacks`` of the step; the cells that converged go on. A cell's sub-steps depend only
on its own failures, so a result does not depend on the batch it was solved in. Cells that
still fail at the smallest sub-step are dropped and reported with the step and status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

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
    cutbacks: torch.Tensor | None = None  #: per cell, failed (sub-)steps retried with half the step


def _select(res, index: torch.Tensor) -> SimpleNamespace:
    """The parts of a Newton result that the history uses, for the cells ``index``."""
    return SimpleNamespace(**{name: getattr(res, name)[index] for name in
                              ("strain", "stress", "mean_strain", "mean_stress", "status")})


@dataclass
class _Group:
    """Cells that step together: their material, original indices, last converged field ``x`` and
    its rate ``v`` (the predictor), last converged means, and the sub-step ``h`` (a fraction of
    the step) with the part of the current step already committed."""

    mat: object
    alive: torch.Tensor
    x: torch.Tensor
    v: torch.Tensor
    strain: torch.Tensor
    stress: torch.Tensor
    h: float = 1.0
    done: float = 0.0

    def split(self, index: torch.Tensor) -> "_Group":
        """A new group of the cells ``index`` (positions in this group), in the same state."""
        return _Group(self.mat.select(index), self.alive[index], self.x[index], self.v[index],
                      self.strain[index], self.stress[index], self.h, self.done)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the cells ``index`` (positions in this group)."""
        if index.numel() == 0:
            self.alive = self.alive[:0]
            return
        self.mat, self.alive, self.x, self.v = self.mat.select(index), self.alive[index], self.x[index], \
            self.v[index]
        self.strain, self.stress = self.strain[index], self.stress[index]


def _merge(groups: list[_Group]) -> list[_Group]:
    """Join groups with the same sub-step whose material can be concatenated (``concat``), so that
    cells split off by cutbacks are batched again once they are back to the same step size."""
    out: list[_Group] = []
    for g in groups:
        if not g.alive.numel():
            continue
        mate = next((o for o in out if o.h == g.h and hasattr(type(o.mat), "concat")
                     and type(o.mat) is type(g.mat)), None)
        if mate is None:
            out.append(g)
            continue
        mate.mat = type(g.mat).concat([mate.mat, g.mat])
        mate.alive, mate.x, mate.v = (torch.cat([a, b]) for a, b in ((mate.alive, g.alive), (mate.x, g.x),
                                                                     (mate.v, g.v)))
        mate.strain, mate.stress = torch.cat([mate.strain, g.strain]), torch.cat([mate.stress, g.stress])
    return out


def solve_history(material, controls: Callable[[int], MacroControl], n_steps: int,
                  grid_shape: Sequence[int], *, dt: float | Sequence[float], kinematics: str = "small",
                  record_steps: Sequence[int] = (), progress: Callable[[int], None] | None = None,
                  max_cutbacks: int = 4, device=None, dtype=torch.float64, **newton_kw) -> HistoryResult:
    """Step ``material`` (with ``dt``, ``response``, ``commit``, ``select``; optionally the
    classmethod ``concat``) through ``n_steps``.

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
    smallest = 2.0 ** -max_cutbacks
    groups = [_Group(material, torch.arange(nb, device=device), start, torch.zeros_like(start),
                     mean_strain[:, 0].clone(), mean_stress[:, 0].clone())]

    for k in range(1, n_steps + 1):
        for g in groups:
            g.done, g.h = 0.0, min(1.0, 2.0 * g.h)
        groups = _merge(groups)
        if not groups:
            break
        ctl = controls(k)
        target = torch.as_tensor(ctl.strain, dtype=dtype, device=device)
        t_stress = torch.zeros_like(target) if ctl.stress is None else \
            torch.as_tensor(ctl.stress, dtype=dtype, device=device)
        if k in record_steps:
            fields[k] = torch.full((nb, d, d, *grid_shape), nan, dtype=dtype, device=device)
        todo = list(groups)
        while todo:                                          # every group to the end of step k
            g = todo.pop()
            while g.done < 1.0 and g.alive.numel():
                g.h = min(g.h, 1.0 - g.done)
                w = g.h / (1.0 - g.done)                     # share of the remaining way to the target
                step_dt = float(dts[k - 1]) * g.h
                g.mat.dt = step_dt
                tgt = target[g.alive] if target.ndim == 3 else target
                stress = None
                if ctl.stress_mask is not None:
                    ts = t_stress[g.alive] if t_stress.ndim == 3 else t_stress
                    stress = g.stress + w * (ts - g.stress)
                control = MacroControl(g.strain + w * (tgt - g.strain), ctl.stress_mask, stress)
                res = solve_newton(g.mat, control, grid_shape, batch=g.alive.numel(), kinematics=kinematics,
                                   initial=g.x + g.v * step_dt, device=device, dtype=dtype, **newton_kw)
                newton_its[g.alive] += res.newton_iterations
                krylov_its[g.alive] += res.krylov_iterations
                ok = res.status == SolveStatus.CONVERGED
                if not bool(ok.all()) and g.h > smallest:    # failed cells retry with half the sub-step
                    cutbacks[g.alive[~ok]] += 1
                    if not bool(ok.any()):
                        g.h = max(0.5 * g.h, smallest)
                        continue
                    retry = g.split((~ok).nonzero().squeeze(1))
                    retry.h = max(0.5 * g.h, smallest)
                    groups.append(retry)
                    todo.append(retry)
                    keep = ok.nonzero().squeeze(1)
                    g.keep(keep)
                    res, ok = _select(res, keep), ok[keep]
                local = g.mat.commit(res.strain)
                ok = ok & ~local.flatten(1).any(1)
                bad = ~ok
                if bool(bad.any()):                          # failed at the smallest sub-step: dropped
                    status[g.alive[bad]] = torch.where(
                        res.status[bad] == SolveStatus.CONVERGED,
                        torch.full_like(res.status[bad], int(SolveStatus.LOCAL_FAILURE)), res.status[bad])
                    failed_step[g.alive[bad]] = k
                g.v, g.x = (res.strain - g.x) / step_dt, res.strain
                g.strain, g.stress = res.mean_strain, res.mean_stress
                g.done = 1.0 if g.h >= 1.0 - g.done else g.done + g.h
                if g.done >= 1.0:
                    cells = g.alive[ok]
                    mean_strain[cells, k] = res.mean_strain[ok]
                    mean_stress[cells, k] = res.mean_stress[ok]
                    if k in record_steps:
                        fields[k][cells] = res.stress[ok]
                else:
                    g.h = min(1.0, 2.0 * g.h)
                if bool(bad.any()):
                    g.keep(ok.nonzero().squeeze(1))
        if progress is not None:
            progress(k)
    return HistoryResult(mean_strain, mean_stress, status, failed_step, newton_its, krylov_its, fields, cutbacks)
