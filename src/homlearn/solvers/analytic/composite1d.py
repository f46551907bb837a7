"""One-dimensional elasto-viscoplastic composite (paper 'rno' section 3, eq. 8-15).

N segments in series on the unit interval (lengths ``weights``, equal by default), each with
Young's modulus E, rate constant eps_p0_dot, yield stress sigma0 and rate exponent n:

    eps = du/dx,  sigma = E (eps - eps_p),  d sigma/dx = 0,
    d eps_p/dt = eps_p0_dot sign(sigma) (|sigma| / sigma0)^n,
    u(0, t) = 0,  u(1, t) = eps_bar(t),  eps_p(x, 0) = 0.

Equilibrium makes sigma uniform in x and compatibility gives <eps> = eps_bar, so with the
internal variable xi = <eps_p> the cell reduces exactly to one ODE (eq. 11-13):

    sigma  = <E^-1>^-1 (eps_bar - xi)                                   (11)
    xi_dot = <eps_p0_dot sigma0^-n sign(sigma) |sigma|^n>  =: g(sigma)  (12)

where <.> is the length-weighted average over the segments. This module integrates (12) with
scipy's ``solve_ivp``, method Radau (implicit Runge-Kutta of order 5, L-stable: the ODE is stiff,
its Jacobian -<E^-1>^-1 g'(sigma) reaches ~1e4 / s for n = 20) with the analytic Jacobian, relative
tolerance ``RTOL`` = 1e-8 and absolute tolerance ``ATOL`` = 1e-10 (strain) on xi, per path.
The segment plastic strains need not be integrated: each one follows from sigma(t) alone.

Units: any consistent set; the datasets use GPa for E, sigma0 and sigma, seconds for time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import sparse
from scipy.integrate import solve_ivp
from scipy.interpolate import CubicSpline, PPoly

METHOD = "Radau"
RTOL = 1e-8
ATOL = 1e-10


@dataclass(frozen=True)
class Segments:
    """Per-segment parameters of P composites, arrays (P, S); padded segments have weight 0.

    ``weights`` are the segment lengths (they sum to 1 per composite); the default is N equal
    segments where N counts the finite entries of ``young`` in each row (NaN pads a row).
    """

    young: np.ndarray
    exponent: np.ndarray
    yield_stress: np.ndarray
    rate: np.ndarray
    weights: np.ndarray

    @classmethod
    def make(cls, young, exponent, yield_stress, rate=1.0, weights=None) -> "Segments":
        young = np.atleast_2d(np.asarray(young, dtype=np.float64))
        valid = np.isfinite(young)
        if weights is None:
            weights = valid / valid.sum(axis=1, keepdims=True)
        weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), young.shape)
        if not np.allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12):
            raise ValueError("segment weights must sum to 1 per composite")
        fill = lambda a, v: np.where(valid, np.broadcast_to(np.asarray(a, dtype=np.float64), young.shape), v)
        return cls(young=fill(young, 1.0), exponent=fill(exponent, 1.0), yield_stress=fill(yield_stress, 1.0),
                   rate=fill(rate, 0.0), weights=np.where(valid, weights, 0.0))

    @property
    def n_paths(self) -> int:
        return self.young.shape[0]

    def take(self, index) -> "Segments":
        index = np.atleast_1d(index)
        return Segments(*(getattr(self, k)[index] for k in ("young", "exponent", "yield_stress", "rate", "weights")))

    @property
    def effective_modulus(self) -> np.ndarray:
        """<E^-1>^-1, the harmonic mean (eq. 11), shape (P,)."""
        return 1.0 / np.sum(self.weights / self.young, axis=1)

    def plastic_rate(self, sigma: np.ndarray) -> np.ndarray:
        """g(sigma) = <eps_p0_dot sign(sigma) (|sigma|/sigma0)^n> (eq. 12); sigma (P,) -> (P,)."""
        return np.sum(self.segment_rates(sigma) * self.weights, axis=1)

    def segment_rates(self, sigma: np.ndarray) -> np.ndarray:
        """d eps_p/dt of each segment under the uniform stress sigma (P,) -> (P, S)."""
        s = np.asarray(sigma, dtype=np.float64)[:, None]
        with np.errstate(over="ignore", divide="ignore"):  # log 0 = -inf -> rate 0
            return self.rate * np.sign(s) * np.exp(self.exponent * (np.log(np.abs(s)) - np.log(self.yield_stress)))

    def plastic_rate_derivative(self, sigma: np.ndarray) -> np.ndarray:
        """g'(sigma) >= 0, shape (P,)."""
        s = np.abs(np.asarray(sigma, dtype=np.float64))[:, None]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            d = self.rate * self.exponent / self.yield_stress * (s / self.yield_stress) ** (self.exponent - 1)
        return np.sum(np.where(self.weights > 0, d, 0.0) * self.weights, axis=1)


@dataclass
class Solution:
    """Histories on ``t`` for P paths: mean strain, (uniform) stress, xi = <eps_p>."""

    t: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    plastic_strain: np.ndarray
    success: np.ndarray
    messages: list[str] = field(default_factory=list)
    nfev: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


def strain_interpolant(t: np.ndarray, values: np.ndarray) -> PPoly:
    """eps_bar(t) of P paths known only on the grid ``t`` (values (P, len(t))): C2 cubic splines
    through the samples, as one callable t -> (P,)."""
    return CubicSpline(np.asarray(t, dtype=np.float64), np.atleast_2d(np.asarray(values, dtype=np.float64)).T,
                       axis=0)


def batch_interpolant(pieces: list[PPoly]) -> PPoly:
    """One piecewise polynomial t -> (P,) reproducing P scalar piecewise cubics exactly.

    The random paths (homlearn.loading.paths) are PCHIP interpolants of knots at times that
    differ from path to path. Each path's cubic is re-expanded (exactly: Taylor coefficients
    from its derivatives) on the union of all breakpoints, so the integrator evaluates all P
    inputs with one search and one Horner step instead of P interpolant calls.
    """
    x = np.unique(np.concatenate([np.asarray(pp.x, dtype=np.float64) for pp in pieces]))
    left = x[:-1]
    k = max(pp.c.shape[0] for pp in pieces) - 1
    c = np.empty((k + 1, len(left), len(pieces)))
    fact = 1.0
    for d in range(k + 1):  # c[k - d] = f^(d)(x_j+) / d!
        if d:
            fact *= d
        for p, pp in enumerate(pieces):
            c[k - d, :, p] = (pp(left, nu=d) if d else pp(left)).reshape(-1) / fact
    return PPoly(c, x, extrapolate=True)


def solve(segments: Segments, strain: Callable[[float], np.ndarray], t_eval: np.ndarray, *,
          rtol: float = RTOL, atol: float = ATOL, method: str = METHOD) -> Solution:
    """Integrate eq. 12 for P composites along their strain paths, xi(t_eval[0]) = 0.

    ``strain(t)`` returns eps_bar of the P paths at time t (shape (P,)); ``t_eval`` is the output
    grid (its first entry is the initial time). The P scalar ODEs are integrated as one system
    with a diagonal Jacobian; solve_ivp's error norm is the RMS over components, so the system
    runs at rtol/sqrt(P), atol/sqrt(P), which keeps every path's local error estimate within
    rtol, atol. If the joint integration fails, each path is retried alone; a path that still
    fails is reported in ``success``/``messages`` and filled with NaN.
    """
    t_eval = np.asarray(t_eval, dtype=np.float64)
    P = segments.n_paths
    if isinstance(strain, PPoly):  # evaluate a piecewise polynomial t -> (P,) on the whole grid at once
        eps = np.asarray(strain(t_eval), dtype=np.float64).reshape(len(t_eval), P).T
    else:
        eps = np.stack([np.broadcast_to(np.asarray(strain(t), dtype=np.float64), (P,)) for t in t_eval], axis=1)
    xi, ok, nfev, msg = _integrate(segments, strain, t_eval, rtol, atol, method, slice(None))
    success = np.full(P, ok)
    messages = [""] * P
    if not ok:
        for p in range(P):
            xi_p, ok_p, nfev_p, msg_p = _integrate(segments.take(p), strain, t_eval, rtol, atol, method,
                                                   slice(p, p + 1))
            xi[p], success[p], messages[p] = xi_p[0], ok_p, msg_p
            nfev += nfev_p
    xi[~success] = np.nan
    stress = segments.effective_modulus[:, None] * (eps - xi)
    return Solution(t=t_eval, strain=eps, stress=stress, plastic_strain=xi, success=success,
                    messages=messages, nfev=nfev,
                    settings={"method": method, "rtol": rtol, "atol": atol, "per": "path",
                              "reduction": "paper rno eq. 11-12"})


def _integrate(segments: Segments, strain, t_eval, rtol, atol, method, rows):
    P = segments.n_paths
    ebar = segments.effective_modulus

    def rhs(t, y):
        return segments.plastic_rate(ebar * (np.asarray(strain(t))[rows] - y))

    def jac(t, y):
        d = -ebar * segments.plastic_rate_derivative(ebar * (np.asarray(strain(t))[rows] - y))
        return np.diag(d) if P <= 64 else sparse.diags(d, format="csc")

    scale = np.sqrt(P)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            res = solve_ivp(rhs, (t_eval[0], t_eval[-1]), np.zeros(P), method=method, t_eval=t_eval, jac=jac,
                            rtol=rtol / scale, atol=atol / scale)
    except Exception as exc:  # e.g. a singular Newton matrix: report it, the caller retries per path
        return np.full((P, len(t_eval)), np.nan), False, 0, f"solve_ivp ({method}) raised {exc!r}"
    ok = bool(res.success) and res.y.shape[1] == len(t_eval) and bool(np.all(np.isfinite(res.y)))
    y = res.y if res.y.shape[1] == len(t_eval) else np.full((P, len(t_eval)), np.nan)
    where = f" at t = {res.t[-1]:.6g}" if len(res.t) else ""
    return y, ok, res.nfev, "" if ok else f"solve_ivp ({method}) failed{where}: {res.message}"
