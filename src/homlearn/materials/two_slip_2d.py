"""Two-slip finite-strain crystal plasticity in 2D (paper 'rno' appendix A, Table 2).

    F = F^e F^p,   F^p' F^p^-1 = sum_i gamma_i' b_i (x) n_i,   e_i' = |gamma_i'|,
    W^e(A) = mu/2 (tr(A^T A) / det A - 2) + K/2 (det A - 1)^2,                       (A1)
    W^p(e) = sum_i sigma_inf_i (e_i + sigma_inf_i / h_i exp(-h_i e_i / sigma_inf_i)) + 1/2 e.K_lat e,   (A2)
    Psi*(gamma') = sum_i tau0_i gamma0_i / (m_i + 1) (|gamma_i'| / gamma0_i)^(m_i + 1),      (A3)
    0 in -tau_i + dW^p/de_i + d Psi*/d gamma_i'   (A4)
      =>  gamma_i' = gamma0_i (<|tau_i| - g_i(e)> / tau0_i)^(1/m_i) sign(tau_i),
          g_i = sigma_inf_i (1 - exp(-h_i e_i / sigma_inf_i)) + (K_lat e)_i,

with tau_i = b_i . (F^e^T dW^e/dF^e) n_i the resolved Mandel stress. Deviations (stated): the
paper writes F^p' = sum gamma' b (x) n; we use the usual multiplicative form above (it keeps
det F^p = 1, which section 5.1 relies on); the flow rule is integrated by backward Euler as
F^p_{n+1}^-1 = F^p_n^-1 (I - sum dgamma_i b_i (x) n_i) (Kalidindi et al. 1992), so
F^e = F F^p_n^-1 (I - sum dgamma b (x) n) is linear in the slip increments; Table 2's b_2 =
(1, 1), n_2 = (-1, 1) are normalised; the latent matrix K_lat is not given in Table 2 (0 here,
settable).

Local update: Newton on the two slip increments per point with a backtracking line search; the
per-point Jacobians and the algorithmic tangent dP/dF (implicit function theorem) are written
out in closed form (directional derivatives of eq. A1's stress), checked against finite
differences in the tests. A point that does not converge, or whose Jacobian is singular or
tangent not finite, is flagged on the tangent (``failed``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from homlearn.materials.tangent import TensorTangent, as_float64

__all__ = ["TwoSlipParameters", "TWO_SLIP_CASES", "two_slip_case", "TwoSlipCrystal2D"]


@dataclass(frozen=True)
class TwoSlipParameters:
    """Paper 'rno' Table 2 (MPa, 1/s); ``b``, ``n`` per system in the crystal frame."""

    mu: float = 19.0e3
    kappa: float = 48.0e3
    b: tuple = ((1.0, 0.0), (1.0, 1.0))
    n: tuple = ((0.0, 1.0), (-1.0, 1.0))
    tau0: tuple = (100.0, 100.0)
    gamma_dot0: tuple = (1.0, 1.0)
    m: tuple = (0.05, 0.05)
    sigma_inf: tuple = (2.0, 2.0)
    h: tuple = (7100.0, 7100.0)
    latent: tuple = ((0.0, 0.0), (0.0, 0.0))


_PH = TwoSlipParameters()
#: the cases of Table 2 (system 1 / system 2)
TWO_SLIP_CASES = {
    "PH": _PH,
    "P1": replace(_PH, m=(0.05, 0.25)),
    "P2": replace(_PH, m=(0.05, 0.5)),
    "P3": replace(_PH, sigma_inf=(50.0, 50.0), h=(100.0, 100.0)),
    "P4": replace(_PH, sigma_inf=(100.0, 100.0), h=(100.0, 100.0)),
    "P5": replace(_PH, tau0=(100.0, 500.0), m=(0.05, 0.25), sigma_inf=(100.0, 500.0), h=(100.0, 100.0)),
}


def two_slip_case(name: str, **overrides) -> TwoSlipParameters:
    """Table 2 case by name (PH, P1-P5), with optional overrides."""
    if name not in TWO_SLIP_CASES:
        raise ValueError(f"unknown two-slip case {name!r}; allowed: {sorted(TWO_SLIP_CASES)}")
    return replace(TWO_SLIP_CASES[name], **overrides)


def _det(a):
    return a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]


def _inv_t(a):
    """A^-T for a batch of 2x2 matrices ``(..., 2, 2)``."""
    rows = [torch.stack([a[..., 1, 1], -a[..., 1, 0]], -1), torch.stack([-a[..., 0, 1], a[..., 0, 0]], -1)]
    return torch.stack(rows, -2) / _det(a)[..., None, None]


def _elastic_stress(A, mu, kappa):
    """dW^e/dA of eq. A1, batched over leading axes."""
    J = _det(A)[..., None, None]
    ait = _inv_t(A)
    i1 = (A * A).sum((-2, -1))[..., None, None]
    return mu * (A - 0.5 * i1 * ait) / J + kappa * (J - 1.0) * J * ait


def _elastic_stress_diff(A, dA, mu, kappa):
    """Directional derivatives of :func:`_elastic_stress`: ``dP_e(A)[dA]`` for ``A`` ``(N, 2, 2)``
    and ``m`` directions ``dA`` ``(N, m, 2, 2)`` (eq. A1 differentiated; ``d(A^-T) = -A^-T dA^T A^-T``,
    ``dJ = J A^-T : dA``)."""
    J = _det(A)[:, None, None, None]
    ait = _inv_t(A)[:, None]
    A = A[:, None]
    i1 = (A * A).sum((-2, -1), keepdim=True)
    ait_da = (ait * dA).sum((-2, -1), keepdim=True)
    a_da = (A * dA).sum((-2, -1), keepdim=True)
    ait_dat_ait = ait @ dA.transpose(-1, -2) @ ait
    return (mu / J * (dA - a_da * ait + 0.5 * i1 * ait_dat_ait - (A - 0.5 * i1 * ait) * ait_da)
            + kappa * J * ((2 * J - 1) * ait_da * ait - (J - 1) * ait_dat_ait))


class TwoSlipCrystal2D:
    """Batched points ``(B, *grid)`` of the two-slip crystal; ``angle`` ``(B, *grid)`` rotates the
    slip systems (radians). State: ``Fp_inv`` (B, 2, 2, *grid), ``e`` and the last increments."""

    d = 2

    def __init__(self, angle: torch.Tensor, params: TwoSlipParameters = _PH, *, dt: float = 1e-3,
                 local_tol: float = 1e-11, local_max_iter: int = 60, _state=None):
        self.angle = as_float64(angle)
        self.params, self.dt = params, float(dt)
        self.local_tol, self.local_max_iter = local_tol, local_max_iter
        self.grid = tuple(self.angle.shape[1:])
        kw = dict(dtype=self.angle.dtype, device=self.angle.device)
        if _state is not None:
            self.Fp_inv, self.e, self.dgamma = _state
        else:
            shape = self.angle.shape
            self.Fp_inv = torch.eye(2, **kw).reshape(1, 2, 2, *(1,) * len(self.grid)).expand(
                shape[0], 2, 2, *self.grid).clone()
            self.e = torch.zeros(*shape, 2, **kw)
            self.dgamma = torch.zeros(*shape, 2, **kw)
        p = params
        b0 = torch.tensor(p.b, **kw)
        n0 = torch.tensor(p.n, **kw)
        b0, n0 = b0 / b0.norm(dim=1, keepdim=True), n0 / n0.norm(dim=1, keepdim=True)
        c, s = torch.cos(self.angle), torch.sin(self.angle)
        rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)   # (B, *grid, 2, 2)
        self.schmid = torch.einsum("...ij,aj,...kl,al->...aik", rot, b0, rot, n0)    # b_a (x) n_a, (…, 2, 2, 2)
        self.consts = {k: torch.tensor(getattr(p, k), **kw) for k in ("tau0", "gamma_dot0", "m", "sigma_inf", "h")}
        self.consts["latent"] = torch.tensor(p.latent, **kw)

    # ------------------------------------------------------------------ protocol
    @property
    def batch_size(self) -> int:
        return int(self.angle.shape[0])

    def select(self, index: torch.Tensor) -> "TwoSlipCrystal2D":
        return TwoSlipCrystal2D(self.angle[index], self.params, dt=self.dt, local_tol=self.local_tol,
                                local_max_iter=self.local_max_iter,
                                _state=(self.Fp_inv[index], self.e[index], self.dgamma[index]))

    @classmethod
    def concat(cls, materials: list["TwoSlipCrystal2D"]) -> "TwoSlipCrystal2D":
        """One material of the cells of ``materials`` in order (same parameters and time step)."""
        m = materials[0]
        state = tuple(torch.cat(ts) for ts in zip(*((o.Fp_inv, o.e, o.dgamma) for o in materials)))
        return cls(torch.cat([o.angle for o in materials]), m.params, dt=m.dt, local_tol=m.local_tol,
                   local_max_iter=m.local_max_iter, _state=state)

    # ------------------------------------------------------------------ point functions
    def _point_fns(self):
        """Residual of the slip increments and its Jacobian, the algorithmic tangent of the first
        Piola stress, and the large-step predictor, batched over points ``(N, ...)``; ``schmid`` is ``(N, 2, 2, 2)`` (system, i, j)."""
        mu, kappa, dt = self.params.mu, self.params.kappa, self.dt
        cst = self.consts
        tau0, g0, n, s_inf, h, lat = (cst["tau0"], cst["gamma_dot0"], 1.0 / cst["m"], cst["sigma_inf"], cst["h"],
                                      cst["latent"])
        eye = torch.eye(2, dtype=self.angle.dtype, device=self.angle.device)

        def kinematics(dg, F, fpi, schmid):
            fpi_new = fpi @ (eye - (dg[:, :, None, None] * schmid).sum(1))
            return fpi_new, F @ fpi_new

        def resolved_diff(Fe, Pe, dFe, schmid):
            """d tau_a for directions dFe (N, m, 2, 2): S_a : (dFe^T Pe + Fe^T dPe) -> (N, 2, m)."""
            dM = dFe.transpose(-1, -2) @ Pe[:, None] + Fe.transpose(-1, -2)[:, None] @ _elastic_stress_diff(
                Fe, dFe, mu, kappa)
            return (schmid[:, :, None] * dM[:, None]).sum((-2, -1))

        def local(dg, F, fpi, e_n, schmid, jacobian=False):
            """r = dg - dt gamma'(tau(dg), g(dg)) and, optionally, dr/ddg and the pieces reused by
            the tangent."""
            fpi_new, Fe = kinematics(dg, F, fpi, schmid)
            Pe = _elastic_stress(Fe, mu, kappa)
            tau = (schmid * (Fe.transpose(-1, -2) @ Pe)[:, None]).sum((-2, -1))
            e = e_n + dg.abs()
            decay = torch.exp(-h * e / s_inf)
            g = s_inf * (1 - decay) + e @ lat.T
            over = torch.clamp(tau.abs() - g, min=0.0)
            sgn = torch.sign(tau)
            r = dg - dt * g0 * (over / tau0) ** n * sgn
            if not jacobian:
                return r
            # d gamma'_a = k_a (d tau_a - sign(tau_a) d g_a), k_a = g0 n (over/tau0)^(n-1) / tau0
            k = torch.where(over > 0, g0 * n * (over / tau0) ** (n - 1) / tau0, torch.zeros_like(over))
            dFe_ddg = -(F @ fpi)[:, None] @ schmid                                   # (N, b, 2, 2)
            dtau = resolved_diff(Fe, Pe, dFe_ddg, schmid)                           # (N, a, b)
            dres = (h * decay)[:, :, None] * eye + lat                               # dg_a / de_b
            dgres = dres * torch.sign(dg)[:, None, :]
            jac = eye - dt * k[:, :, None] * (dtau - sgn[:, :, None] * dgres)
            return r, jac, (fpi_new, Fe, Pe, k, dFe_ddg)

        def tangent(jac, parts, fpi, schmid):
            """dP/dF = dP/dF|_dg - dP/ddg J^-1 dr/dF (implicit function theorem), (N, 2, 2, 2, 2);
            also the points where J is singular or the tangent is not finite."""
            fpi_new, Fe, Pe, k, dFe_ddg = parts
            N = Fe.shape[0]
            basis = torch.eye(4, dtype=Fe.dtype, device=Fe.device).reshape(1, 4, 2, 2)   # E_kl
            dFe_dF = basis @ fpi_new[:, None]                                       # (N, kl, 2, 2)
            fnt = fpi_new.transpose(-1, -2)[:, None]
            dP_dF = _elastic_stress_diff(Fe, dFe_dF, mu, kappa) @ fnt                # (N, kl, i, j)
            dP_dg = _elastic_stress_diff(Fe, dFe_ddg, mu, kappa) @ fnt - \
                Pe[:, None] @ (fpi[:, None] @ schmid).transpose(-1, -2)              # (N, b, i, j)
            dr_dF = -dt * k[:, :, None] * resolved_diff(Fe, Pe, dFe_dF, schmid)      # (N, a, kl)
            ddg_dF, info = torch.linalg.solve_ex(jac, -dr_dF)                        # (N, b, kl)
            K = dP_dF.reshape(N, 2, 2, 2, 2).permute(0, 3, 4, 1, 2) + torch.einsum(
                "nbij,nbkl->nijkl", dP_dg, ddg_dF.reshape(N, 2, 2, 2))
            bad = (info != 0) | ~torch.isfinite(K).flatten(1).all(1)
            return K, bad

        def predictor(F, fpi, e_n, schmid, iterations=6):
            """Slip increments that nearly satisfy the inverted flow rule |tau| = g + tau0 (|dg|/dt/g0)^m
            on the systems loaded beyond their resistance (tau linearised at dg = 0): a start from
            which Newton converges even when the trial overstress is many times tau0 (large steps)."""
            zero = torch.zeros(F.shape[0], 2, dtype=F.dtype, device=F.device)
            fpi_new, Fe = kinematics(zero, F, fpi, schmid)
            Pe = _elastic_stress(Fe, mu, kappa)
            tau_tr = (schmid * (Fe.transpose(-1, -2) @ Pe)[:, None]).sum((-2, -1))
            K = -resolved_diff(Fe, Pe, -(F @ fpi)[:, None] @ schmid, schmid)        # d tau / d dg = -K
            g_n = s_inf * (1 - torch.exp(-h * e_n / s_inf)) + e_n @ lat.T
            active = tau_tr.abs() > g_n
            A = torch.where(active[:, :, None], K, eye)
            dg = zero
            for _ in range(iterations):
                e = e_n + dg.abs()
                g = s_inf * (1 - torch.exp(-h * e / s_inf)) + e @ lat.T
                target = torch.sign(tau_tr) * (g + tau0 * (dg.abs() / (dt * g0)) ** cst["m"])
                rhs = torch.where(active, tau_tr - target, torch.zeros_like(tau_tr))
                sol, info = torch.linalg.solve_ex(A, rhs[..., None])
                # a singular system gives no guess (NaN: never preferred to the warm start)
                dg = torch.where((info == 0)[:, None], sol[..., 0], torch.full_like(sol[..., 0], float("nan")))
                dg = torch.where(active & (dg * tau_tr > 0), dg, torch.zeros_like(dg))
            return dg

        return local, tangent, predictor

    def _points(self, F):
        """Flatten (B, 2, 2, *grid) fields to (N, ...) point arrays."""
        nsp = F.ndim - 3
        perm = (0, *range(3, 3 + nsp), 1, 2)
        return (F.permute(perm).reshape(-1, 2, 2), self.Fp_inv.permute(perm).reshape(-1, 2, 2),
                self.e.reshape(-1, 2), self.schmid.reshape(-1, 2, 2, 2), self.dgamma.reshape(-1, 2))

    def _update(self, F: torch.Tensor):
        local, tangent, predictor = self._point_fns()
        Fp, fpi, e_n, schmid, dg = self._points(F)
        dg = dg.clone()

        def done(r, dg):
            rn = r.abs().amax(-1)
            return rn <= self.local_tol * torch.clamp(dg.abs().amax(-1), min=self.dt), rn

        conv, rn0 = done(local(dg, Fp, fpi, e_n, schmid), dg)
        hard = (~conv).nonzero().squeeze(1)
        if hard.numel():       # far from the warm start: take the predictor where it is closer
            a = (Fp[hard], fpi[hard], e_n[hard], schmid[hard])
            guess = predictor(*a)
            _, rn_guess = done(local(guess, *a), guess)
            better = rn_guess < rn0[hard]
            dg[hard[better]] = guess[better]
            conv, _ = done(local(dg, Fp, fpi, e_n, schmid), dg)
        active = (~conv).nonzero().squeeze(1)
        failed = torch.zeros(dg.shape[0], dtype=torch.bool, device=dg.device)
        for _ in range(self.local_max_iter):
            if active.numel() == 0:
                break
            a = (dg[active], Fp[active], fpi[active], e_n[active], schmid[active])
            r_a, jac, _ = local(*a, jacobian=True)
            rn = r_a.abs().amax(-1)
            step, info = torch.linalg.solve_ex(jac, -r_a[..., None])
            step = torch.where((info == 0)[:, None], step[..., 0], torch.full_like(step[..., 0], float("nan")))
            lam = torch.ones_like(rn)
            for _ls in range(40):
                r_t = local(a[0] + lam[:, None] * step, *a[1:])
                ok = (r_t.abs().amax(-1) <= (1 - 1e-4 * lam) * rn) | ~torch.isfinite(rn)
                if bool(ok.all()):
                    break
                lam = torch.where(ok, lam, 0.5 * lam)
            new = a[0] + lam[:, None] * step
            dg[active] = new
            conv, rn_new = done(local(new, *a[1:]), new)
            bad = ~torch.isfinite(rn_new)
            failed[active[bad]] = True
            active = active[~conv & ~bad]
        failed[active] = True
        _, jac, parts = local(dg, Fp, fpi, e_n, schmid, jacobian=True)
        P = parts[2] @ parts[0].transpose(-1, -2)
        K, singular = tangent(jac, parts, fpi, schmid)
        failed |= singular | ~torch.isfinite(P).flatten(1).all(1)
        return P, K, dg, failed

    def _to_field(self, x: torch.Tensor, tail: int) -> torch.Tensor:
        """(N, *t) point array -> (B, *t, *grid) field."""
        B, grid = self.batch_size, self.grid
        x = x.reshape(B, *grid, *x.shape[1:])
        nsp = len(grid)
        return x.permute(0, *range(1 + nsp, 1 + nsp + tail), *range(1, 1 + nsp))

    def response(self, F: torch.Tensor):
        F = F.to(self.angle.dtype)
        P, K, dg, failed = self._update(F)
        self._last = (F, dg, failed)
        tangent = TensorTangent(self._to_field(K, 4))
        tangent.failed = failed.reshape(self.batch_size, *self.grid)
        return self._to_field(P, 2), tangent

    def commit(self, F: torch.Tensor) -> torch.Tensor:
        """Accept the converged F of this step; returns the failed-point mask."""
        F = F.to(self.angle.dtype)
        last = getattr(self, "_last", None)
        if last is not None and last[0].shape == F.shape and torch.equal(last[0], F):
            _, dg, failed = last
        else:
            _, _, dg, failed = self._update(F)
        self._last = None
        eye = torch.eye(2, dtype=F.dtype, device=F.device)
        schmid = self.schmid.reshape(-1, 2, 2, 2)
        update = eye - (dg[:, :, None, None] * schmid).sum(1)
        fpi = self._points(F)[1] @ update
        self.Fp_inv = self._to_field(fpi, 2).contiguous()
        shape = (self.batch_size, *self.grid)
        self.e = self.e + dg.abs().reshape(*shape, 2)
        self.dgamma = dg.reshape(*shape, 2)
        return failed.reshape(shape)
