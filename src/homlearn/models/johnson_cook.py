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

Three dimensions (:class:`JohnsonCookJ2`, the law of 'rno' Fig. 8b's inset, fitted to classical
tests by :func:`fit_johnson_cook_j2`): von Mises (J2) plasticity with the same isotropic
Johnson-Cook flow stress, on the Hencky strain ``eps = ln U`` of a stretch history U (additive
split ``eps = eps_e + eps_p``, tr eps_p = 0)::

    tau = K tr(eps) I + 2 G dev(eps - eps_p),    sigma = tau / det U   (Cauchy),
    d eps_p / dt = 3/2 dq/dt s / sigma_vm,       sigma_vm = sqrt(3/2 s:s) <= sigma_y(q, dq/dt).

Backward Euler radial return: with the trial deviator ``s_tr`` the increment solves
``sigma_vm,tr - 3 G dq = sigma_y(q + dq, dq / dt)``, the 1D equation above with E = 3G (so the
same safeguarded Newton solves it), and ``s = s_tr (1 - 3 G dq / sigma_vm,tr)``. The law is
isotropic: ``sigma(R U R^T) = R sigma(U) R^T`` for any rotation R. Its Hencky/additive form is
exact for coaxial (fixed principal axes) paths and our choice for the others (rotating axes):
a classical "JC-type" reference, not a finite-strain plasticity theory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares

__all__ = ["JohnsonCookParams", "JohnsonCook1D", "JCHistory", "flow_stress", "fit_johnson_cook",
           "JohnsonCookJ2Params", "JohnsonCookJ2", "J2History", "hencky_strain", "fit_johnson_cook_j2"]


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
        converged = np.abs(r) <= 1e-14 * scale   # x is the root to round-off: keep it
        step = -r / dr
        new = x + step
        bad = ~np.isfinite(new) | (new < lo) | (new > hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        done = converged | (np.abs(new - x) <= 4e-16 * np.maximum(x, 1e-300))
        x = np.where(converged, x, new)
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


def _fit(initial, names: Sequence[str], fixed: Sequence[str], lower: dict, simulate, target, **least_squares_kw):
    """Least squares of ``simulate(params) - target`` over the free parameters among ``names``,
    each path (first axis) divided by its norm; returns ``(params, OptimizeResult)``."""
    unknown = [n for n in fixed if n not in names]
    if unknown:
        raise ValueError(f"unknown parameter names {unknown}; allowed: {', '.join(names)}")
    free = [n for n in names if n not in fixed]
    base = asdict(initial)
    x0 = np.array([base[n] for n in free], dtype=float)
    flat = target.reshape(target.shape[0], -1)
    norm = np.sqrt(np.sum(flat ** 2, axis=1, keepdims=True))
    norm = np.where(norm > 0, norm, 1.0)
    lb = np.array([lower[n] * (x0.max() if n in ("E", "A", "G", "K") else 1.0) for n in free])
    ub = np.full(len(free), np.inf)

    def params_of(x):
        return replace(initial, **{n: float(v) for n, v in zip(free, x)})

    def residual(x):
        return ((simulate(params_of(x)).reshape(flat.shape) - flat) / norm).ravel()

    kw = {"method": "trf", "x_scale": "jac", "xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15, "max_nfev": 2000}
    kw.update(least_squares_kw)
    res = least_squares(residual, np.clip(x0, lb, None), bounds=(lb, ub), **kw)
    return params_of(res.x), res


_LOWER = {"E": 1e-12, "A": 1e-12, "G": 1e-12, "K": 1e-12, "B": 0.0, "n": 1e-3, "C": 0.0}


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
    return _fit(initial, FIT_NAMES, fixed, _LOWER, lambda p: JohnsonCook1D(p)(eps, t), sig, **least_squares_kw)


# ----------------------------------------------------------------------------- three dimensions


@dataclass(frozen=True)
class JohnsonCookJ2Params:
    """Shear modulus G, bulk modulus K, then the flow stress of :class:`JohnsonCookParams`
    (A, B, n, C, rate0; rate0 in 1/s of the times given)."""

    G: float
    K: float
    A: float
    B: float
    n: float
    C: float
    rate0: float = 1.0

    def __post_init__(self):
        if not (self.G > 0 and self.K > 0):
            raise ValueError(f"Johnson-Cook J2 moduli must be > 0: G = {self.G}, K = {self.K}")
        self.scalar()  # the flow-stress checks

    def scalar(self) -> JohnsonCookParams:
        """The 1D parameters whose return-map equation is the radial return's (E = 3G)."""
        return JohnsonCookParams(E=3.0 * self.G, A=self.A, B=self.B, n=self.n, C=self.C, rate0=self.rate0)

    @property
    def young(self) -> float:
        return 9.0 * self.K * self.G / (3.0 * self.K + self.G)


J2_FIT_NAMES = ("G", "K", "A", "B", "n", "C")


@dataclass(frozen=True)
class J2History:
    stress: np.ndarray          # (P, T, 3, 3) Cauchy
    plastic_strain: np.ndarray  # (P, T, 3, 3)
    accumulated: np.ndarray     # (P, T) q


def hencky_strain(stretch) -> np.ndarray:
    """``ln U`` of symmetric positive definite stretches (..., 3, 3) (eigen-decomposition)."""
    U = np.asarray(stretch, dtype=float)
    w, v = np.linalg.eigh(U)
    if np.any(w <= 0):
        raise ValueError("stretch must be positive definite (an eigenvalue is <= 0)")
    return np.einsum("...ik,...k,...jk->...ij", v, np.log(w), v)


class JohnsonCookJ2:
    """3D von Mises Johnson-Cook law on stretch histories (see the module text)."""

    def __init__(self, params: JohnsonCookJ2Params):
        self.params = params

    def simulate(self, stretch, t) -> J2History:
        """Stretch histories (P, T, 3, 3) (or (T, 3, 3)) on times (T,) or (P, T) -> Cauchy stress,
        plastic strain and q. The first state must be elastic (paths start at U = I)."""
        U = np.asarray(stretch, dtype=float)
        if U.ndim == 3:
            U = U[None]
        if U.ndim != 4 or U.shape[-2:] != (3, 3):
            raise ValueError(f"stretch histories must be (P, T, 3, 3), got {U.shape}")
        P, T = U.shape[:2]
        dt = _steps(t, (P, T))
        p, p1 = self.params, self.params.scalar()
        eps = hencky_strain(U)
        tr = np.trace(eps, axis1=-2, axis2=-1)
        eye = np.eye(3)
        dev = eps - tr[..., None, None] * eye / 3.0
        pre = p.K * tr[..., None, None] * eye      # pressure part of tau
        jac = np.exp(tr)[..., None, None]          # det U
        sig, epa, qa = np.zeros((P, T, 3, 3)), np.zeros((P, T, 3, 3)), np.zeros((P, T))

        def vm(s):
            return np.sqrt(1.5 * np.sum(s * s, axis=(-2, -1)))

        s0 = 2.0 * p.G * dev[:, 0]
        if np.any(vm(s0) > p.A):
            raise ValueError("the initial strain is beyond the elastic range (paths must start elastic)")
        sig[:, 0] = (pre[:, 0] + s0) / jac[:, 0]
        e_p, q, last = np.zeros((P, 3, 3)), np.zeros(P), np.zeros(P)
        for i in range(1, T):
            s = 2.0 * p.G * (dev[:, i] - e_p)
            eq = vm(s)
            plastic = eq > p.A + p.B * np.power(q, p.n)
            if np.any(plastic):
                k = np.flatnonzero(plastic)
                dq = np.zeros(P)
                dq[k] = _increment(p1, eq[k], q[k], dt[k, i - 1], last[k])
                direction = np.where(plastic[:, None, None], 1.5 * s / np.where(plastic, eq, 1.0)[:, None, None], 0.0)
                e_p = e_p + dq[:, None, None] * direction
                q = q + dq
                last = np.where(plastic, dq, last)
                s = 2.0 * p.G * (dev[:, i] - e_p)
            sig[:, i], epa[:, i], qa[:, i] = (pre[:, i] + s) / jac[:, i], e_p, q
        return J2History(sig, epa, qa)

    def __call__(self, stretch, t) -> np.ndarray:
        return self.simulate(stretch, t).stress


def fit_johnson_cook_j2(stretch, stress, t, initial: JohnsonCookJ2Params, fixed: Sequence[str] = (),
                        **least_squares_kw):
    """Least-squares fit of (G, K, A, B, n, C) to stretch (P, T, 3, 3) -> Cauchy stress
    (P, T, 3, 3) histories (classical tests), each path's residual divided by its stress norm;
    ``rate0`` is kept from ``initial``. Returns ``(params, scipy OptimizeResult)``."""
    U = np.asarray(stretch, dtype=float)
    sig = np.asarray(stress, dtype=float)
    if U.shape != sig.shape or U.ndim != 4:
        raise ValueError(f"stretch and stress must both be (P, T, 3, 3), got {U.shape} and {sig.shape}")
    return _fit(initial, J2_FIT_NAMES, fixed, _LOWER, lambda p: JohnsonCookJ2(p)(U, t), sig, **least_squares_kw)
