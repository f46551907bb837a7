"""A Johnson-Cook law as the classical reference of the history surrogates (paper 'rno' section
5.2 and Fig. 8b inset: "the best fit Johnson-Cook material model [...] fit against these
classical tests"; Fig. 13: its cost).

One-dimensional (uniaxial) elastic-viscoplastic model, strain-driven::

    sigma = E (eps - eps_p),   d eps_p / dt = sign(sigma) dq/dt,
    |sigma| <= sigma_y(q, dq/dt) = (A + B q^n) (1 + C ln(max(dq/dt / rate0, 1))),

with q the accumulated plastic strain (q(0) = 0) and equality while dq/dt > 0. Below the
reference rate ``rate0`` the flow stress is the quasi-static one (the usual Johnson-Cook
convention, e.g. ABAQUS; the logarithm is clipped at zero). Thermal softening is left out
(isothermal data).

Time discretisation: backward Euler return mapping on the actual step ``dt_n``: the trial
stress ``E (eps^n - eps_p^{n-1})``; if it exceeds ``A + B q^n`` the increment ``dq > 0`` solves
``|sigma_trial| - E dq = (A + B (q + dq)^n) (1 + C ln(max(dq / (dt rate0), 1)))``, whose left
minus right side decreases strictly in dq, so a safeguarded Newton iteration (bisection
fallback) finds it to round-off. All paths of a batch are updated together (numpy).

Fit: :func:`fit_johnson_cook` adjusts (E, A, B, n, C) by ``scipy.optimize.least_squares``
(trust-region reflective, bounds E, A > 0, B, C >= 0, n > 0) to given (strain history, stress
history) pairs, each path's residual divided by its stress norm (the relative error of 'rno'
eq. 16, squared and summed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares

__all__ = ["JohnsonCookParams", "JohnsonCook1D", "JCHistory", "flow_stress", "fit_johnson_cook"]


@dataclass(frozen=True)
class JohnsonCookParams:
    """Young's modulus E, yield stress A, hardening modulus B and exponent n, rate sensitivity
    C, reference rate rate0 (1/time). Stresses in the units of the data."""

    E: float
    A: float
    B: float
    n: float
    C: float
    rate0: float = 1.0

    def __post_init__(self):
        if not (self.E > 0 and self.A > 0 and self.B >= 0 and self.n > 0 and self.C >= 0 and self.rate0 > 0):
            raise ValueError(f"Johnson-Cook parameters out of range (E, A, n, rate0 > 0; B, C >= 0): {self}")


def flow_stress(p: JohnsonCookParams, q, rate):
    """(A + B q^n)(1 + C ln(max(rate / rate0, 1)))."""
    q, rate = np.asarray(q, dtype=float), np.asarray(rate, dtype=float)
    log = np.log(np.maximum(rate / p.rate0, 1.0))
    return (p.A + p.B * np.power(np.maximum(q, 0.0), p.n)) * (1.0 + p.C * log)


@dataclass(frozen=True)
class JCHistory:
    stress: np.ndarray  # (P, T)
    plastic_strain: np.ndarray  # (P, T)
    accumulated: np.ndarray  # (P, T) q


def _steps(t, shape) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    p, n = shape
    if t.shape not in ((n,), (p, n)):
        raise ValueError(f"times must be (T,) or (P, T) = ({p}, {n}), got {t.shape}")
    dt = np.diff(np.broadcast_to(t, (p, n)), axis=1)
    if np.any(dt <= 0):
        raise ValueError("times must be strictly increasing")
    return dt


def _increment(p: JohnsonCookParams, s_abs, q, dt, guess, max_iter=100):
    """Solve |sigma_tr| - E dq - sigma_y(q + dq, dq / dt) = 0 for dq in (0, s_abs / E) (vectors)."""
    lo, hi = np.zeros_like(s_abs), s_abs / p.E
    x = np.clip(guess, 0.0, hi)
    x = np.where((x <= 0) | (x >= hi), 0.5 * hi, x)
    scale = np.maximum(s_abs, 1e-300)
    for _ in range(max_iter):
        qq = q + x
        hard = p.A + p.B * np.power(qq, p.n)
        ratio = x / (dt * p.rate0)
        fast = ratio > 1.0
        log = np.where(fast, np.log(np.where(fast, ratio, 1.0)), 0.0)
        r = s_abs - p.E * x - hard * (1.0 + p.C * log)
        lo = np.where(r > 0, x, lo)
        hi = np.where(r > 0, hi, x)
        dhard = p.B * p.n * np.power(qq, p.n - 1.0) if p.B > 0 else 0.0
        dr = -p.E - dhard * (1.0 + p.C * log) - np.where(fast, hard * p.C / np.maximum(x, 1e-300), 0.0)
        step = -r / dr
        new = x + step
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        done = (np.abs(r) <= 1e-15 * scale) | (np.abs(new - x) <= 4e-16 * np.maximum(x, 1e-300))
        x = new
        if np.all(done):
            break
    return x


class JohnsonCook1D:
    """Uniaxial Johnson-Cook elastic-viscoplastic model (see the module text)."""

    def __init__(self, params: JohnsonCookParams):
        self.params = params

    def simulate(self, strain, t) -> JCHistory:
        """Strain histories (P, T) (or (T,)) on times (T,) or (P, T) -> stress, eps_p and q (P, T)."""
        eps = np.atleast_2d(np.asarray(strain, dtype=float))
        P, T = eps.shape
        dt = _steps(t, eps.shape)
        p = self.params
        sig, ep, qa = np.zeros((P, T)), np.zeros((P, T)), np.zeros((P, T))
        sig[:, 0] = p.E * eps[:, 0]
        if np.any(np.abs(sig[:, 0]) > p.A):
            raise ValueError("the initial strain is beyond the elastic range (paths must start elastic)")
        e_p, q, last = np.zeros(P), np.zeros(P), np.zeros(P)
        for i in range(1, T):
            trial = p.E * (eps[:, i] - e_p)
            s_abs = np.abs(trial)
            plastic = s_abs > p.A + p.B * np.power(q, p.n)
            if np.any(plastic):
                k = np.flatnonzero(plastic)
                dq = np.zeros(P)
                dq[k] = _increment(p, s_abs[k], q[k], dt[k, i - 1], last[k])
                sgn = np.sign(trial)
                e_p = e_p + sgn * dq
                q = q + dq
                last = np.where(plastic, dq, last)
                trial = p.E * (eps[:, i] - e_p)
            sig[:, i], ep[:, i], qa[:, i] = trial, e_p, q
        return JCHistory(sig, ep, qa)

    def __call__(self, strain, t) -> np.ndarray:
        return self.simulate(strain, t).stress


FIT_NAMES = ("E", "A", "B", "n", "C")


def fit_johnson_cook(strain: Sequence, stress: Sequence, t, initial: JohnsonCookParams,
                     fixed: Sequence[str] = (), **least_squares_kw):
    """Least-squares fit of the Johnson-Cook parameters to uniaxial (strain, stress) histories.

    ``strain``, ``stress``: (P, T) arrays (the same grid ``t``, (T,) or (P, T)); ``initial``: the
    starting parameters, whose ``rate0`` is kept; ``fixed``: names among E, A, B, n, C to keep at
    their initial values. Returns ``(params, scipy OptimizeResult)``.
    """
    eps = np.atleast_2d(np.asarray(strain, dtype=float))
    sig = np.atleast_2d(np.asarray(stress, dtype=float))
    if eps.shape != sig.shape:
        raise ValueError(f"strain and stress histories differ in shape: {eps.shape} vs {sig.shape}")
    unknown = [n for n in fixed if n not in FIT_NAMES]
    if unknown:
        raise ValueError(f"unknown parameter names {unknown}; allowed: {', '.join(FIT_NAMES)}")
    free = [n for n in FIT_NAMES if n not in fixed]
    base = asdict(initial)
    x0 = np.array([base[n] for n in free], dtype=float)
    norm = np.sqrt(np.sum(sig ** 2, axis=1, keepdims=True))
    norm = np.where(norm > 0, norm, 1.0)
    lower = {"E": 1e-12 * x0.max(), "A": 1e-12 * x0.max(), "B": 0.0, "n": 1e-3, "C": 0.0}
    lb = np.array([lower[n] for n in free])
    ub = np.full(len(free), np.inf)

    def params_of(x) -> JohnsonCookParams:
        return replace(initial, **{n: float(v) for n, v in zip(free, x)})

    def residual(x):
        return ((JohnsonCook1D(params_of(x))(eps, t) - sig) / norm).ravel()

    kw = {"method": "trf", "x_scale": "jac", "xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15, "max_nfev": 2000}
    kw.update(least_squares_kw)
    res = least_squares(residual, np.clip(x0, lb, None), bounds=(lb, ub), **kw)
    return params_of(res.x), res
