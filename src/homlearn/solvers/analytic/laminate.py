"""Elasto-viscoplastic laminate with uniform fields per layer (paper 'rno' section 4, eq. 17-24).

Material (eq. 18-20), small strain, isotropic elasticity (lambda, mu) equal in both layers:

    sigma = C (eps - eps_p),  eps_p_dot = 3/2 s / s_bar q_dot,  s_bar = sqrt(3/2) |s|,
    s_bar <= sigma0 (H(q) + (q_dot / q0_dot)^m),  q_dot >= 0,  equality when q_dot > 0,
    H(q) = 1 (no hardening) or 1 - exp(-h q / sigma0) (exponential hardening).

(The paper prints s_bar = sqrt(3/2 |s|); the von Mises stress sqrt(3/2) |s| is meant.)

Two layers '+' and '-' of equal width, interface normal e1, uniform fields in each. Compatibility
and traction continuity across the interface (eq. 23):

    eps+ - eps- = a (x) e1 + e1 (x) a,     (sigma+ - sigma-) e1 = 0,

so eps22 and eps33 are continuous, eps11 and eps12 jump by 2 a1 and a2, and sigma11, sigma12 are
continuous. The prescribed in-plane average strain (eps11, eps22, eps12) fixes the layer strains
up to (a1, a2, eps33), and plane stress closes the system: sigma13 = sigma23 = 0 (no out-of-plane
shear plastic strain ever develops) and <sigma33> = 0. With eps33 continuous, traction continuity
gives eq. 24: a1 = mu / (lambda + 2 mu) (eps_p11+ - eps_p11-), a2 = eps_p12+ - eps_p12-, a3 = 0.
(Imposing sigma33 = 0 in each layer instead would make eps33 jump, contradicting eq. 23 for a 3D
laminate and giving another a1; eq. 24 as printed holds only with <sigma33> = 0.)

Time integration: backward Euler on the solver grid (first order; the stored histories are
downsampled from it). Per step, Newton on the three unknowns (a1, a2, eps33) of each path:
each layer does the implicit J2 return map (radial return with the rate- and hardening-dependent
flow stress, a scalar equation for the increment dq solved by bracketed Newton in log dq to
``INNER_TOL`` times the trial von Mises stress), and the residual [sigma11+ - sigma11-, sigma12+ - sigma12-, <sigma33>]
is driven below ``NEWTON_TOL`` * max(sigma0) with the consistent tangent and a backtracking line
search. Vectorised over paths (numpy); units MPa and seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

NEWTON_TOL = 1e-10
INNER_TOL = 1e-12
MAX_NEWTON = 50
LOG_DQ_MIN = -700.0  # log of the smallest plastic increment dq the return map resolves (~1e-304)
LAYERS = ("+", "-")
COMPONENTS = ("11", "22", "12")  # in-plane tensor components (shear as eps_12, not gamma_12)

# tensor components stored as [11, 22, 33, 12]; 13 and 23 stay zero. Frobenius weights:
_W = np.array([1.0, 1.0, 1.0, 2.0])
_I = np.array([1.0, 1.0, 1.0, 0.0])


@dataclass(frozen=True)
class LaminateMaterial:
    """Both layers' parameters (paper Table 1), stresses in MPa, rates in 1/s."""

    name: str
    lam: float = 24_000.0
    mu: float = 25_000.0
    sigma0: tuple[float, float] = (500.0, 500.0)
    m: tuple[float, float] = (0.2, 0.2)
    q0_dot: float = 1.0
    hardening: str = "none"           # "none": H = 1; "exponential": H = 1 - exp(-h q / sigma0)
    h: float = 1_000.0                # MPa (paper: h = 1, read in GPa like lambda and mu)

    def __post_init__(self):
        if self.hardening not in ("none", "exponential"):
            raise ValueError(f"hardening must be 'none' or 'exponential', got {self.hardening!r}")

    @property
    def n_model_variables(self) -> int:
        """State variables of the two layers (rno section 4): eps_p 11, 22, 12 per layer (6),
        and q per layer when it enters the flow stress (exponential hardening: 8)."""
        return 6 if self.hardening == "none" else 8

    def as_dict(self) -> dict:
        return {"name": self.name, "lambda_MPa": self.lam, "mu_MPa": self.mu,
                "sigma0_MPa": list(self.sigma0), "m": list(self.m), "q0_dot_per_s": self.q0_dot,
                "hardening": self.hardening, "h_MPa": self.h}


_BASE = {"MH": ((500.0, 500.0), (0.2, 0.2)), "M1": ((250.0, 500.0), (0.1, 0.2)),
         "M2": ((100.0, 500.0), (0.04, 0.2)), "M3": ((50.0, 500.0), (0.02, 0.2)),
         "M4": ((250.0, 500.0), (0.4, 0.2))}
#: Table 1 of paper 'rno' (lambda = 24 GPa, mu = 25 GPa, q0_dot = 1/s); '-EH': exponential
#: hardening with h = 1 (section 4.2).
CASES = {**{k: LaminateMaterial(k, sigma0=s, m=m) for k, (s, m) in _BASE.items()},
         "MH-EH": LaminateMaterial("MH-EH", sigma0=_BASE["MH"][0], m=_BASE["MH"][1], hardening="exponential"),
         "M3-EH": LaminateMaterial("M3-EH", sigma0=_BASE["M3"][0], m=_BASE["M3"][1], hardening="exponential")}


def case(name: str, **overrides) -> LaminateMaterial:
    """A Table 1 case by name (MH, M1-M4, MH-EH, M3-EH), optionally with changed parameters."""
    if name not in CASES:
        raise ValueError(f"unknown laminate case {name!r}; known: {sorted(CASES)}")
    return replace(CASES[name], **overrides)


def relaxation_rate(material: LaminateMaterial, q_dot) -> np.ndarray:
    """Linearised decay rate (1/s) of each layer's viscous overstress at plastic rate ``q_dot``
    (..., 2), no hardening (H = 1). At fixed strain eq. 18 gives d s_bar/dt = -3 mu q_dot and
    eq. 19 in flow q_dot = q0_dot ((s_bar - sigma0 H) / sigma0)^(1/m), so the overstress decays at
    lambda = 3 mu q0_dot^m q_dot^(1-m) / (m sigma0). A forward-Euler step of a variable relaxing
    at this rate is stable only for lambda dt < 2 (rno eq. 3 uses forward Euler)."""
    q_dot = np.maximum(np.asarray(q_dot, dtype=np.float64), 0.0)
    m, s0 = np.asarray(material.m), np.asarray(material.sigma0)
    return 3.0 * material.mu * material.q0_dot ** m * q_dot ** (1.0 - m) / (m * s0)


@dataclass
class LaminateSolution:
    """Histories on ``t`` (P paths, T times). In-plane components ordered (11, 22, 12),
    homlearn's order (``homlearn.loading.paths.component_pairs``)."""

    t: np.ndarray
    strain: np.ndarray                  # (P, T, 3) prescribed mean strain
    stress: np.ndarray                  # (P, T, 3) mean in-plane stress, MPa
    plastic_strain: np.ndarray          # (P, T, 2, 3) eps_p of layers +, -
    accumulated_plastic_strain: np.ndarray  # (P, T, 2) q of layers +, -
    mean_stress33: np.ndarray           # (P, T) <sigma33> (plane stress: ~0)
    success: np.ndarray                 # (P,)
    newton_iterations: np.ndarray       # (P,) largest number of Newton iterations in a step
    messages: list[str] = field(default_factory=list)
    layer_strain: np.ndarray | None = None   # (P, T, 2, 4) [11, 22, 33, 12], when asked for
    layer_stress: np.ndarray | None = None   # (P, T, 2, 4)
    settings: dict = field(default_factory=dict)


def _hardening(mat: LaminateMaterial, q, s0):
    if mat.hardening == "none":
        return np.ones_like(q), np.zeros_like(q)
    e = np.exp(-mat.h * q / s0)
    return 1.0 - e, mat.h / s0 * e


def _return_map(mat, eps, ep_n, q_n, dt, s0, m, dq_guess):
    """Implicit J2 update of every layer: eps, ep_n (..., 4), q_n (...) -> stress, new state, tangent data.

    Solves f(dq) = s_tr - 3 mu dq - sigma0 (H(q_n + dq) + (dq / (dt q0))^m) = 0 for dq > 0
    (f is decreasing; f(0) > 0 when the trial stress exceeds the static flow stress) by Newton in
    u = log dq, kept inside a bisection bracket.
    """
    lam, mu = mat.lam, mat.mu
    ee = eps - ep_n
    tr = ee[..., :3].sum(-1)
    s_tr = 2 * mu * (ee - tr[..., None] / 3 * _I)
    norm = np.sqrt(np.sum(_W * s_tr * s_tr, axis=-1))
    sbar = np.sqrt(1.5) * norm
    H_n, _ = _hardening(mat, q_n, s0)
    rate_scale = dt * mat.q0_dot
    # plastic where f > 0 at the smallest positive increment (exp(LOG_DQ_MIN)): with m = 0.02 the
    # rate term there is still 4e-7 sigma0, and an overstress below it has no representable root
    plastic = (sbar - s0 * (H_n + np.exp(m * (LOG_DQ_MIN - np.log(rate_scale))))) > 0
    plastic &= sbar > 0
    dq = np.zeros_like(sbar)
    D = np.full_like(sbar, np.inf)
    converged = np.ones_like(sbar, dtype=bool)
    if np.any(plastic):
        sb, s0p, mp, qn = sbar[plastic], s0[plastic], m[plastic], q_n[plastic]
        lo = np.full_like(sb, LOG_DQ_MIN)              # f > 0 there (the plastic test above)
        hi = np.log(sb / (3 * mu))                     # f(hi) < 0
        g = dq_guess[plastic]
        u = np.where(g > 0, np.log(np.clip(g, 1e-300, None)), np.log(1e-6 * rate_scale))
        u = np.clip(u, lo + 1.0, hi)
        done = np.zeros_like(sb, dtype=bool)
        for _ in range(100):
            x = np.exp(u)
            H, dH = _hardening(mat, qn + x, s0p)
            z = np.exp(mp * (u - np.log(rate_scale)))  # (dq / (dt q0))^m
            f = sb - 3 * mu * x - s0p * (H + z)
            dfdu = -x * (3 * mu + s0p * dH) - s0p * mp * z
            done = np.abs(f) <= INNER_TOL * sb
            if np.all(done):
                break
            lo = np.where(f > 0, u, lo)
            hi = np.where(f < 0, u, hi)
            un = u - f / dfdu
            bad = ~((un > lo) & (un < hi)) | ~np.isfinite(un)
            un = np.where(bad, 0.5 * (lo + hi), un)
            u = np.where(done, u, un)
        converged[plastic] = done
        x = np.exp(u)
        H, dH = _hardening(mat, qn + x, s0p)
        z = np.exp(mp * (u - np.log(rate_scale)))
        dq[plastic] = x
        D[plastic] = 3 * mu + s0p * dH + s0p * mp * z / x  # d(-f)/d dq
    safe = np.where(sbar > 0, sbar, 1.0)
    flow = np.where(plastic, 1.5 / safe, 0.0)[..., None] * s_tr     # 3/2 s_tr / s_tr_bar
    ep = ep_n + dq[..., None] * flow
    sigma = (lam + 2 * mu / 3) * tr[..., None] * _I + s_tr - 2 * mu * dq[..., None] * flow
    theta = 1 - 3 * mu * dq / safe
    theta_bar = np.where(plastic, 3 * mu * (1 / D - dq / safe), 0.0)
    n_hat = s_tr / np.where(norm > 0, norm, 1.0)[..., None]
    return sigma, ep, q_n + dq, dq, (theta, theta_bar, n_hat), converged


def _apply_tangent(mat, tangent, d):
    """C_alg : d = K tr(d) I + 2 mu theta dev(d) - 2 mu theta_bar n (n : d), d (..., 4)."""
    theta, theta_bar, n_hat = tangent
    K = mat.lam + 2 * mat.mu / 3
    tr = d[..., :3].sum(-1)
    dev = d - tr[..., None] / 3 * _I
    nd = np.sum(_W * n_hat * d, axis=-1)
    return (K * tr[..., None] * _I + 2 * mat.mu * theta[..., None] * dev
            - 2 * mat.mu * (theta_bar * nd)[..., None] * n_hat)


def _jacobian(mat, tangent):
    """d r / d c (rows, 3, 3) for r = [sigma11 jump, sigma12 jump, <sigma33>], c = (a1, a2, eps33)."""
    theta, theta_bar, n_hat = (tangent[0][..., None], tangent[1][..., None], tangent[2][:, :, None, :])
    d = _DEPS[None]                                        # (1, 2, 3 directions, 4)
    K = mat.lam + 2 * mat.mu / 3
    tr = d[..., :3].sum(-1)
    dev = d - tr[..., None] / 3 * _I
    nd = np.sum(_W * n_hat * d, axis=-1)                   # (rows, 2, 3)
    dsig = (K * tr[..., None] * _I + 2 * mat.mu * theta[..., None] * dev
            - 2 * mat.mu * (theta_bar * nd)[..., None] * n_hat)   # (rows, 2 layers, 3 dirs, 4)
    return np.stack([dsig[:, 0, :, 0] - dsig[:, 1, :, 0], dsig[:, 0, :, 3] - dsig[:, 1, :, 3],
                     0.5 * (dsig[:, 0, :, 2] + dsig[:, 1, :, 2])], axis=1)


def layer_strains(mean_strain, c):
    """Layer strains [11, 22, 33, 12] (P, 2, 4) from the mean in-plane strain (P, 3: 11, 22, 12)
    and the unknowns c = (a1, a2, eps33) (P, 3): eps11 = <eps11> +- a1, eps12 = <eps12> +- a2/2."""
    e11, e22, e12 = mean_strain[:, 0], mean_strain[:, 1], mean_strain[:, 2]
    a1, a2, e33 = c[:, 0], c[:, 1], c[:, 2]
    sign = np.array([1.0, -1.0])[None, :]
    out = np.empty(mean_strain.shape[:1] + (2, 4))
    out[..., 0] = e11[:, None] + sign * a1[:, None]
    out[..., 1] = e22[:, None]
    out[..., 2] = e33[:, None]
    out[..., 3] = e12[:, None] + sign * a2[:, None] / 2
    return out


def elastic_predictor(mat: LaminateMaterial, mean_strain, ep):
    """(a1, a2, eps33) when the layers' plastic strains ep (P, 2, 4) do not change (eq. 24 and
    <sigma33> = 0); exact for an elastic step."""
    lam, mu = mat.lam, mat.mu
    a1 = mu / (lam + 2 * mu) * (ep[:, 0, 0] - ep[:, 1, 0])
    a2 = ep[:, 0, 3] - ep[:, 1, 3]
    ep33 = ep[:, :, 2].mean(axis=1)
    e33 = (2 * mu * ep33 - lam * (mean_strain[:, 0] + mean_strain[:, 1])) / (lam + 2 * mu)
    return np.stack([a1, a2, e33], axis=1)


def _residual(sigma):
    """[sigma11+ - sigma11-, sigma12+ - sigma12-, <sigma33>] from layer stresses (P, 2, 4)."""
    return np.stack([sigma[:, 0, 0] - sigma[:, 1, 0], sigma[:, 0, 3] - sigma[:, 1, 3],
                     0.5 * (sigma[:, 0, 2] + sigma[:, 1, 2])], axis=1)


# d eps_layer / d c for c = (a1, a2, eps33), per layer (2, 3, 4)
_DEPS = np.zeros((2, 3, 4))
for _k, _s in enumerate((1.0, -1.0)):
    _DEPS[_k, 0, 0] = _s
    _DEPS[_k, 1, 3] = _s / 2
    _DEPS[_k, 2, 2] = 1.0


_G2 = 1 - 1 / np.sqrt(2)
_G3 = 0.43586652150845899942
#: Singly diagonally implicit Runge-Kutta tableaux (c, A), all L-stable and stiffly accurate
#: (the last stage is the step's result, so the interface conditions hold at every step).
#: be: backward Euler (order 1); sdirk2: Alexander's 2-stage method (order 2);
#: sdirk3: Alexander's 3-stage method (order 3). Each stage is one implicit return-map step of
#: size gamma dt from an explicitly predicted state.
TABLEAUX = {
    "be": ((1.0,), ((1.0,),)),
    "sdirk2": ((_G2, 1.0), ((_G2,), (1 - _G2, _G2))),
    "sdirk3": ((_G3, (1 + _G3) / 2, 1.0),
               ((_G3,), ((1 - _G3) / 2, _G3),
                (-1.5 * _G3 ** 2 + 4 * _G3 - 0.25, 1.5 * _G3 ** 2 - 5 * _G3 + 1.25, _G3))),
}
METHOD = "sdirk3"


def _stage(mat, E, ep_t, q_t, dt, s0, m, guess, ep_guess, tol_abs, max_iter):
    """One implicit step of size dt from the state (ep_t, q_t) to the mean strain E (rows, 3):
    Newton on c = (a1, a2, eps33) until max |[sigma11 jump, sigma12 jump, <sigma33>]| <= tol_abs.

    The converged c is the elastic predictor of the converged plastic strains (eq. 24 and
    <sigma33> = 0), so Newton starts from the elastic predictor of ``ep_guess``, the plastic
    strains extrapolated with the latest plastic strain rate (exact for an elastic step when
    ``ep_guess`` = ``ep_t``)."""
    c = elastic_predictor(mat, E, ep_guess)

    def evaluate(c, guess):
        eps_l = layer_strains(E, c)
        sig, ep1, q1, dq, tan, conv = _return_map(mat, eps_l, ep_t, q_t, dt, s0, m, guess)
        return eps_l, sig, ep1, q1, dq, tan, conv, _residual(sig)

    cur = evaluate(c, guess)
    rnorm = np.max(np.abs(cur[-1]), axis=1)
    it = np.zeros(len(E), dtype=np.int32)
    for _ in range(max_iter):
        active = rnorm > tol_abs
        if not np.any(active):
            break
        tan, r, dq = cur[5], cur[-1], cur[4]
        J = _jacobian(mat, tan)
        J[~active] = np.eye(3)
        step = np.linalg.solve(J, -np.where(active[:, None], r, 0.0)[..., None])[..., 0]
        guess = np.where(dq > 0, dq, guess)  # the latest increments start the next return maps
        alpha = np.ones(len(E))
        trial = evaluate(c + step, guess)
        for _ in range(12):  # backtracking: halve where the residual did not decrease
            worse = active & (np.max(np.abs(trial[-1]), axis=1) > (1 - 1e-4 * alpha) * rnorm)
            if not np.any(worse):
                break
            alpha = np.where(worse, alpha / 2, alpha)
            trial = _select(worse, evaluate(c + alpha[:, None] * step, guess), trial)
        c = np.where(active[:, None], c + alpha[:, None] * step, c)
        cur = _select(active, trial, cur)
        rnorm = np.max(np.abs(cur[-1]), axis=1)
        it += active
    eps_l, sig, ep1, q1, dq, tan, conv, r = cur
    return eps_l, sig, ep1, q1, dq, rnorm, np.all(conv, axis=1), it


def solve(material: LaminateMaterial, t: np.ndarray, strain: np.ndarray, *, path=None,
          method: str = METHOD, tol: float = NEWTON_TOL, max_iter: int = MAX_NEWTON,
          keep_layers: bool = False) -> LaminateSolution:
    """History of the laminate for P mean in-plane strain paths, zero plastic state at t[0].

    ``t`` (T,) the solver grid, ``strain`` (P, T, 3) the prescribed <eps> (11, 22, 12) on it;
    ``path(t) -> (P, 3)`` the same paths at any time, needed by the multi-stage methods (default:
    a cubic spline through the grid values). ``method`` is a key of ``TABLEAUX``. A path whose
    Newton iterations do not converge in ``max_iter`` is marked failed (``success``,
    ``messages``; its histories are NaN); the other paths go on.
    """
    mat = material
    t = np.asarray(t, dtype=np.float64)
    strain = np.asarray(strain, dtype=np.float64)
    P, T = strain.shape[0], len(t)
    if strain.shape != (P, T, 3):
        raise ValueError(f"strain must be (n_paths, {T}, 3), got {strain.shape}")
    if method not in TABLEAUX:
        raise ValueError(f"method must be one of {sorted(TABLEAUX)}, got {method!r}")
    cs, A = TABLEAUX[method]
    gamma = A[0][0]
    if path is None and any(ci != 1.0 for ci in cs):
        from scipy.interpolate import CubicSpline

        spline = CubicSpline(t, strain, axis=1)
        path = lambda tt: spline(tt)  # noqa: E731
    s0 = np.broadcast_to(np.asarray(mat.sigma0, dtype=np.float64), (P, 2))
    m = np.broadcast_to(np.asarray(mat.m, dtype=np.float64), (P, 2))
    tol_abs = tol * max(mat.sigma0)
    ep = np.zeros((P, 2, 4))
    q = np.zeros((P, 2))
    dq_prev = np.zeros((P, 2))
    ep_rate = np.zeros((P, 2, 4))
    out_stress = np.full((P, T, 3), np.nan)
    out_ep = np.full((P, T, 2, 3), np.nan)
    out_q = np.full((P, T, 2), np.nan)
    out_s33 = np.full((P, T), np.nan)
    lay_eps = np.full((P, T, 2, 4), np.nan) if keep_layers else None
    lay_sig = np.full((P, T, 2, 4), np.nan) if keep_layers else None
    ok = np.ones(P, dtype=bool)
    iters = np.zeros(P, dtype=np.int32)
    messages = [""] * P

    def record(n, rows, eps_l, sigma, ep_, q_):
        out_stress[rows, n] = np.stack([sigma[:, :, 0].mean(1), sigma[:, :, 1].mean(1), sigma[:, :, 3].mean(1)], 1)
        out_ep[rows, n] = ep_[:, :, [0, 1, 3]]
        out_q[rows, n] = q_
        out_s33[rows, n] = sigma[:, :, 2].mean(1)
        if keep_layers:
            lay_eps[rows, n] = eps_l
            lay_sig[rows, n] = sigma

    # t[0]: no plastic strain yet, elastic response to strain[:, 0]
    eps0 = layer_strains(strain[:, 0], elastic_predictor(mat, strain[:, 0], ep))
    tr0 = eps0[..., :3].sum(-1)
    record(0, slice(None), eps0, mat.lam * tr0[..., None] * _I + 2 * mat.mu * eps0, ep, q)
    for n in range(1, T):
        dt = t[n] - t[n - 1]
        rows = np.flatnonzero(ok)
        if not len(rows):
            break
        y_ep, y_q = ep[rows], q[rows]
        k_ep, k_q = [], []
        good = np.ones(len(rows), dtype=bool)
        it = np.zeros(len(rows), dtype=np.int32)
        worst = np.zeros(len(rows))
        guess = dq_prev[rows] * gamma
        rate = ep_rate[rows]
        for i, ci in enumerate(cs):
            ep_t = y_ep + dt * sum(a * k for a, k in zip(A[i][:-1], k_ep))
            q_t = y_q + dt * sum(a * k for a, k in zip(A[i][:-1], k_q))
            E = strain[rows, n] if ci == 1.0 else np.asarray(path(t[n - 1] + ci * dt))[rows]
            eps_l, sig, ep1, q1, dq, rnorm, conv, its = _stage(mat, E, ep_t, q_t, gamma * dt, s0[rows], m[rows],
                                                               guess, ep_t + gamma * dt * rate, tol_abs, max_iter)
            k_ep.append((ep1 - ep_t) / (gamma * dt))
            rate = k_ep[-1]
            k_q.append((q1 - q_t) / (gamma * dt))
            good &= (rnorm <= tol_abs) & conv
            it = np.maximum(it, its)
            worst = np.maximum(worst, rnorm)
            guess = np.where(dq > 0, dq, guess)
        for i in np.flatnonzero(~good):
            p = rows[i]
            ok[p] = False
            messages[p] = (f"Newton did not converge at step {n} (t = {t[n]:.6g}): residual "
                           f"{worst[i]:.3e} MPa > {tol_abs:.1e}" if worst[i] > tol_abs
                           else f"return map did not converge at step {n} (t = {t[n]:.6g})")
        rk = rows[good]
        ep[rk], q[rk] = ep1[good], q1[good]
        dq_prev[rk] = (q1 - y_q)[good]  # increment over the whole step
        ep_rate[rk] = rate[good]
        iters[rows] = np.maximum(iters[rows], it)
        record(n, rk, eps_l[good], sig[good], ep1[good], q1[good])
    for arr in (out_stress, out_ep, out_q, out_s33):
        arr[~ok] = np.nan
    return LaminateSolution(
        t=t, strain=strain, stress=out_stress, plastic_strain=out_ep, accumulated_plastic_strain=out_q,
        mean_stress33=out_s33, success=ok, newton_iterations=iters, messages=messages,
        layer_strain=lay_eps, layer_stress=lay_sig,
        settings={"time_integration": method, "newton_tol_MPa": tol_abs, "newton_tol": tol,
                  "inner_tol": INNER_TOL, "max_iter": max_iter, "material": mat.as_dict()})


def _bcast(mask, arr):
    return mask.reshape(mask.shape + (1,) * (np.ndim(arr) - 1))


def _select(mask, new, old):
    out = []
    for a, b in zip(new, old):
        if isinstance(a, tuple):
            out.append(tuple(np.where(_bcast(mask, x), x, y) for x, y in zip(a, b)))
        else:
            out.append(np.where(_bcast(mask, a), a, b))
    return tuple(out)
