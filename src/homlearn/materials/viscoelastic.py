"""Linear viscoelasticity of hereditary-integral type with a bulk/shear split (numpy only).

Frankel et al., reduced-graph GCNN, appendix A.3, eq. A.9 (small-strain reading)::

    sigma = (K - K_inf) int_0^t f_K(t - s) tr(deps/ds) ds I + K_inf tr(eps) I
          + 2 (G - G_inf) int_0^t f_G(t - s) dev(deps/ds) ds + 2 G_inf dev(eps)

with ``K``, ``G`` the instantaneous and ``K_inf``, ``G_inf`` the equilibrium moduli and the
relaxation kernels Prony series ``f(t) = sum_k w_k exp(-t / tau_k)``, ``sum_k w_k = 1``.

The paper takes the 20 Prony weights (relaxation times 1 us ... 3160 s) from Long and Brown's
Sylgard 184 calibration (its ref. [59]), which we do not have. We use instead a documented smooth
spectrum: the weights of a stretched exponential (Kohlrausch-Williams-Watts)
``f(t) = exp(-(t / tau_c) ** beta)`` fitted onto the 20 fixed times by non-negative least squares
with a small second-difference smoothing penalty (:func:`stretched_exponential_weights`).
Defaults ``tau_c = 1 ms``, ``beta = 0.3`` (see ``DEFAULT_KWW``): a broad spectrum centred well
inside the 20 times (weights on 1 us ... 3 ms; the slower modes get zero weight), so that during
the paper's 83.3 us tension ramp (50% strain at 6000/s) f falls to 0.63: G(83 us) = 0.26 MPa.
The fit is within 0.02 of the stretched exponential from 1 us to 3000 s; the first weight (0.12)
also carries the part of the stretched exponential that relaxes faster than 1 us.

Internal variables: one per Prony mode, ``h_k(t) = int_0^t exp(-(t - s) / tau_k) d eps(s)``
(deviatoric strain for shear, volumetric for bulk). Over a step ``dt`` in which the strain varies
linearly in time the update is exact::

    h_k <- exp(-dt / tau_k) h_k + gamma_k (eps_{n+1} - eps_n),
    gamma_k = (1 - exp(-dt / tau_k)) / (dt / tau_k)

so that ``sigma_{n+1} = K_alg tr(eps_{n+1}) I + 2 G_alg dev(eps_{n+1}) + (history of step n)`` with
constant algorithmic moduli ``G_alg = G_inf + sum_k G_k gamma_k`` (same for K) for a fixed ``dt``.
The update is linear and the same for any array shape, so it serves material points
(:class:`PointIntegrator`) and, in the FEM solver, whole displacement-like vectors.

Closed forms for tests: :meth:`ViscoelasticMaterial.ramp_stress` (any constant strain rate from
rest) and :func:`uniaxial_stress_history` (mixed control, sigma_yy = sigma_zz = 0, with the same
exact integrator: the reference of a homogeneous cube under minimal boundary conditions).

This module imports only numpy and scipy (it is loaded in FEM workers, which stay torch-free).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DEFAULT_KWW",
    "PAPER_MATRIX",
    "PronySeries",
    "ViscoelasticMaterial",
    "PointIntegrator",
    "isotropic_from_young_poisson",
    "log_spaced_times",
    "stretched_exponential_weights",
    "update_modes",
    "uniaxial_stress_history",
    "matrix_material",
]

#: paper A.3: instantaneous and equilibrium moduli of the silicone matrix (MPa)
PAPER_MATRIX = {"K": 920.0, "G": 0.362, "K_inf": 920.0, "G_inf": 0.084}
#: paper A.3: 20 relaxation times from 1 us to 3160 s (s)
PAPER_TIMES = {"n_terms": 20, "tau_min": 1.0e-6, "tau_max": 3160.0}
#: our choice (the paper's weights are in a reference we do not have): KWW tau_c (s) and beta
DEFAULT_KWW = {"tau_c": 1.0e-3, "beta": 0.3, "smoothing": 1.0}


def log_spaced_times(n_terms: int = 20, tau_min: float = 1e-6, tau_max: float = 3160.0) -> np.ndarray:
    """``n_terms`` relaxation times log-spaced from ``tau_min`` to ``tau_max`` (both included)."""
    if n_terms < 1 or not 0.0 < tau_min <= tau_max:
        raise ValueError(f"need n_terms >= 1 and 0 < tau_min <= tau_max, got {n_terms}, {tau_min}, {tau_max}")
    return np.geomspace(tau_min, tau_max, n_terms) if n_terms > 1 else np.array([float(tau_min)])


def stretched_exponential_weights(tau: np.ndarray, tau_c: float, beta: float, smoothing: float = 1.0,
                                  n_fit: int = 400) -> np.ndarray:
    """Prony weights ``w_k >= 0``, ``sum w_k = 1``, fitting ``exp(-(t / tau_c) ** beta)``.

    Least squares on ``n_fit`` log-spaced times from ``tau[0] / 10`` to ``tau[-1] * 10`` with a
    penalty ``smoothing * ||D2 w||^2`` on the second differences of the weights (a smooth
    spectrum, not the spiky one of plain NNLS), solved by NNLS; the weights are then scaled to
    sum to one exactly, so ``f(0) = 1`` and the instantaneous modulus is the paper's.
    """
    from scipy.optimize import nnls

    tau = np.asarray(tau, dtype=np.float64)
    if not (tau_c > 0.0 and 0.0 < beta <= 1.0):
        raise ValueError(f"need tau_c > 0 and 0 < beta <= 1, got {tau_c}, {beta}")
    t = np.geomspace(tau[0] / 10.0, tau[-1] * 10.0, n_fit)
    a = np.exp(-t[:, None] / tau[None, :])
    target = np.exp(-((t / tau_c) ** beta))
    rows, rhs = [a, np.ones((1, tau.size)) * 10.0], [target, [10.0]]  # + f(0) = 1, weighted
    if tau.size >= 3 and smoothing > 0:
        d2 = np.diff(np.eye(tau.size), n=2, axis=0)
        rows.append(np.sqrt(smoothing) * d2)
        rhs.append(np.zeros(d2.shape[0]))
    w, _ = nnls(np.vstack(rows), np.concatenate(rhs), maxiter=50 * tau.size)
    if not w.sum() > 0:
        raise ValueError("stretched-exponential fit gave all-zero weights")
    return w / w.sum()


@dataclass(frozen=True)
class PronySeries:
    """``f(t) = sum_k weights[k] exp(-t / tau[k])`` with ``sum weights = 1`` (or no terms)."""

    tau: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        tau = np.asarray(self.tau, dtype=np.float64).reshape(-1)
        w = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        if tau.shape != w.shape:
            raise ValueError(f"tau and weights differ in length: {tau.size} vs {w.size}")
        if np.any(tau <= 0) or np.any(w < 0):
            raise ValueError("relaxation times must be positive and weights non-negative")
        object.__setattr__(self, "tau", tau)
        object.__setattr__(self, "weights", w)

    @property
    def n_terms(self) -> int:
        return int(self.tau.size)

    def kernel(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return np.exp(-t[..., None] / self.tau) @ self.weights

    def step_factors(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """``(exp(-dt/tau), (1 - exp(-dt/tau)) / (dt/tau))`` for the exact update over ``dt``."""
        if not dt > 0:
            raise ValueError(f"time step must be positive, got {dt}")
        x = dt / self.tau
        return np.exp(-x), -np.expm1(-x) / x

    def ramp_integral(self, t) -> np.ndarray:
        """``int_0^t f(s) ds = sum_k w_k tau_k (1 - exp(-t / tau_k))`` (response to a unit-rate ramp)."""
        t = np.asarray(t, dtype=np.float64)
        return (-np.expm1(-t[..., None] / self.tau) * self.tau) @ self.weights


def update_modes(h: np.ndarray, delta: np.ndarray, decay: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Exact exponential update in place: ``h[k] = decay[k] h[k] + gamma[k] delta`` for every mode k.

    ``h`` has shape ``(M, *shape)`` and ``delta`` (the strain increment over the step, or any linear
    image of it) ``shape``; returns ``h``.
    """
    lead = (slice(None),) + (None,) * delta.ndim
    h *= decay[lead]
    h += gamma[lead] * delta[None]
    return h


@dataclass(frozen=True)
class ViscoelasticMaterial:
    """Isotropic linear viscoelastic solid, paper eq. A.9 (moduli in MPa, times in s).

    An elastic solid is the special case ``K_inf = K``, ``G_inf = G`` (or no Prony terms).
    """

    K: float
    G: float
    K_inf: float
    G_inf: float
    shear: PronySeries = field(default_factory=lambda: PronySeries(np.zeros(0), np.zeros(0)))
    bulk: PronySeries = field(default_factory=lambda: PronySeries(np.zeros(0), np.zeros(0)))

    def __post_init__(self):
        for name in ("K", "G", "K_inf", "G_inf"):
            if not getattr(self, name) > 0:
                raise ValueError(f"modulus {name} must be positive, got {getattr(self, name)}")
        if self.K_inf > self.K or self.G_inf > self.G:
            raise ValueError("equilibrium moduli must not exceed the instantaneous ones")
        for name, series, drop in (("shear", self.shear, self.G - self.G_inf), ("bulk", self.bulk, self.K - self.K_inf)):
            if drop > 0 and series.n_terms == 0:
                raise ValueError(f"{name} modulus relaxes but no Prony series is given")
            if series.n_terms and abs(series.weights.sum() - 1.0) > 1e-12:
                raise ValueError(f"{name} Prony weights must sum to 1, got {series.weights.sum()!r}")

    @classmethod
    def elastic(cls, K: float, G: float) -> "ViscoelasticMaterial":
        return cls(K, G, K, G)

    @property
    def shear_moduli(self) -> np.ndarray:
        """``G_k = (G - G_inf) w_k``, the transient shear modulus of each mode."""
        return (self.G - self.G_inf) * self.shear.weights

    @property
    def bulk_moduli(self) -> np.ndarray:
        return (self.K - self.K_inf) * self.bulk.weights

    @property
    def young(self) -> float:
        """Instantaneous Young's modulus ``9 K G / (3 K + G)``."""
        return 9.0 * self.K * self.G / (3.0 * self.K + self.G)

    def relaxation_moduli(self, t) -> tuple[np.ndarray, np.ndarray]:
        """``(K(t), G(t))``: bulk and shear relaxation moduli."""
        t = np.asarray(t, dtype=np.float64)
        k = self.K_inf + (self.K - self.K_inf) * (self.bulk.kernel(t) if self.bulk.n_terms else 0.0 * t)
        g = self.G_inf + (self.G - self.G_inf) * (self.shear.kernel(t) if self.shear.n_terms else 0.0 * t)
        return k, g

    def algorithmic_moduli(self, dt: float) -> tuple[float, float]:
        """``(K_alg, G_alg)``: the constant tangent of the exact update over a step ``dt``."""
        k, g = self.K_inf, self.G_inf
        if self.bulk.n_terms:
            k += float(self.bulk_moduli @ self.bulk.step_factors(dt)[1])
        if self.shear.n_terms:
            g += float(self.shear_moduli @ self.shear.step_factors(dt)[1])
        return k, g

    def ramp_stress(self, t, strain_rate: np.ndarray) -> np.ndarray:
        """Closed-form stress (..., 3, 3) at times ``t`` for ``eps(s) = strain_rate * s`` from rest.

        ``sigma(t) = [K_inf t + (K - K_inf) F_K(t)] tr(rate) I + 2 [G_inf t + (G - G_inf) F_G(t)] dev(rate)``
        with ``F(t) = int_0^t f = sum_k w_k tau_k (1 - exp(-t/tau_k))``.
        """
        t = np.asarray(t, dtype=np.float64)
        rate = np.asarray(strain_rate, dtype=np.float64)
        tr = np.trace(rate)
        dev = rate - tr / 3.0 * np.eye(3)
        fk = self.bulk.ramp_integral(t) if self.bulk.n_terms else 0.0 * t
        fg = self.shear.ramp_integral(t) if self.shear.n_terms else 0.0 * t
        bulk = self.K_inf * t + (self.K - self.K_inf) * fk
        shear = self.G_inf * t + (self.G - self.G_inf) * fg
        return bulk[..., None, None] * tr * np.eye(3) + 2.0 * shear[..., None, None] * dev


def _dev(eps: np.ndarray) -> np.ndarray:
    tr = np.trace(eps, axis1=-2, axis2=-1)
    return eps - tr[..., None, None] / 3.0 * np.eye(3)


class PointIntegrator:
    """The exact exponential update at material points (strain tensors ``(..., 3, 3)``) for a fixed ``dt``.

    State: ``h_dev`` (M_G, ..., 3, 3) deviatoric and ``h_vol`` (M_K, ...) volumetric internal
    variables (hereditary strain integrals per mode) and the last strain.
    """

    def __init__(self, material: ViscoelasticMaterial, dt: float, shape: tuple[int, ...] = ()):
        self.material, self.dt, self.shape = material, float(dt), tuple(shape)
        self.K_alg, self.G_alg = material.algorithmic_moduli(dt)
        m = material
        self._g = m.shear.step_factors(dt) if m.shear.n_terms else (np.zeros(0), np.zeros(0))
        self._k = m.bulk.step_factors(dt) if m.bulk.n_terms else (np.zeros(0), np.zeros(0))
        self.h_dev = np.zeros((m.shear.n_terms, *self.shape, 3, 3))
        self.h_vol = np.zeros((m.bulk.n_terms, *self.shape))
        self.eps = np.zeros((*self.shape, 3, 3))

    def history_stress(self) -> np.ndarray:
        """The part of sigma_{n+1} fixed by step n's state: sigma_{n+1} = K_alg tr(eps) I + 2 G_alg dev(eps) + this."""
        m = self.material
        dg, gg = self._g
        dk, gk = self._k
        dev_n, tr_n = _dev(self.eps), np.trace(self.eps, axis1=-2, axis2=-1)
        s = 2.0 * np.tensordot(m.shear_moduli * dg, self.h_dev, axes=(0, 0)) - 2.0 * float(m.shear_moduli @ gg) * dev_n
        vol = np.tensordot(m.bulk_moduli * dk, self.h_vol, axes=(0, 0)) - float(m.bulk_moduli @ gk) * tr_n
        return s + np.asarray(vol)[..., None, None] * np.eye(3)

    def stress(self, eps_new: np.ndarray) -> np.ndarray:
        """sigma_{n+1} for a trial eps_{n+1} (no state change)."""
        eps_new = np.asarray(eps_new, dtype=np.float64)
        tr = np.trace(eps_new, axis1=-2, axis2=-1)
        return (self.K_alg * tr[..., None, None] * np.eye(3) + 2.0 * self.G_alg * _dev(eps_new)
                + self.history_stress())

    def step(self, eps_new: np.ndarray) -> np.ndarray:
        """Advance to ``eps_new`` (exact for strain linear in time over the step); return the stress."""
        eps_new = np.asarray(eps_new, dtype=np.float64)
        sigma = self.stress(eps_new)
        d = eps_new - self.eps
        if self.h_dev.shape[0]:
            update_modes(self.h_dev, _dev(d), *self._g)
        if self.h_vol.shape[0]:
            update_modes(self.h_vol, np.trace(d, axis1=-2, axis2=-1), *self._k)
        self.eps = eps_new.copy()
        return sigma


def uniaxial_stress_history(material: ViscoelasticMaterial, strain_rate: float, dt: float,
                            n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniaxial stress under ``eps_xx = strain_rate * t`` with ``sigma_yy = sigma_zz = 0``.

    Lateral strain solved at every step with the exact integrator (strain linear in each step):
    the closed-form reference of a homogeneous cube under minimal boundary conditions. Returns
    ``(t, eps (n+1, 3, 3), sigma (n+1, 3, 3))``.
    """
    integ = PointIntegrator(material, dt)
    t = dt * np.arange(n_steps + 1)
    eps = np.zeros((n_steps + 1, 3, 3))
    sig = np.zeros((n_steps + 1, 3, 3))
    lat = np.diag([0.0, 1.0, 1.0])
    for n in range(1, n_steps + 1):
        e_x = np.zeros((3, 3))
        e_x[0, 0] = strain_rate * t[n]
        s0 = integ.stress(e_x)[1, 1]
        s1 = integ.stress(e_x + lat)[1, 1] - s0  # d sigma_yy / d eps_lateral
        e = e_x - (s0 / s1) * lat
        sig[n] = integ.step(e)
        eps[n] = e
    return t, eps, sig


def isotropic_from_young_poisson(young: float, poisson: float) -> tuple[float, float]:
    """``(K, G)`` from Young's modulus and Poisson's ratio."""
    if not (young > 0 and -1.0 < poisson < 0.5):
        raise ValueError(f"need E > 0 and -1 < nu < 0.5, got {young}, {poisson}")
    return young / (3.0 * (1.0 - 2.0 * poisson)), young / (2.0 * (1.0 + poisson))


def matrix_material(cfg: dict | None = None) -> ViscoelasticMaterial:
    """The matrix of paper A.3 from a config section (keys of ``viscoelastic3d.matrix``; paper defaults).

    Keys: K, G, K_inf, G_inf (MPa), n_terms, tau_min, tau_max (s), kww_tau, kww_beta, kww_smoothing,
    and optional explicit ``shear_weights`` / ``bulk_weights`` (override the fit). The same
    relaxation times serve shear and bulk (with the paper's K = K_inf the bulk terms vanish).
    """
    cfg = dict(cfg or {})
    moduli = {k: float(cfg.get(k, v)) for k, v in PAPER_MATRIX.items()}
    tau = log_spaced_times(int(cfg.get("n_terms", PAPER_TIMES["n_terms"])),
                           float(cfg.get("tau_min", PAPER_TIMES["tau_min"])),
                           float(cfg.get("tau_max", PAPER_TIMES["tau_max"])))
    fit = None

    def weights(key):
        nonlocal fit
        given = cfg.get(key)
        if given is not None:
            w = np.asarray(given, dtype=np.float64)
            return w / w.sum()
        if fit is None:
            fit = stretched_exponential_weights(tau, float(cfg.get("kww_tau", DEFAULT_KWW["tau_c"])),
                                                float(cfg.get("kww_beta", DEFAULT_KWW["beta"])),
                                                float(cfg.get("kww_smoothing", DEFAULT_KWW["smoothing"])))
        return fit

    shear = PronySeries(tau, weights("shear_weights")) if moduli["G"] > moduli["G_inf"] else PronySeries([], [])
    bulk = PronySeries(tau, weights("bulk_weights")) if moduli["K"] > moduli["K_inf"] else PronySeries([], [])
    return ViscoelasticMaterial(moduli["K"], moduli["G"], moduli["K_inf"], moduli["G_inf"], shear, bulk)
