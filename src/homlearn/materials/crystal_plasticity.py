"""FCC elasto-viscoplastic crystal plasticity, small strain (paper 'gcnn' appendix A.2).

Per material point, with the symmetric Schmid tensors ``P_a = sym(s_a (x) n_a)`` of the 12
{111}<110> systems rotated to the sample frame and Mandel 6-vectors throughout:

    sigma = C : (eps - eps_p),                                   (A.5, small strain)
    eps_p' = sum_a gamma'_a P_a,                                 (A.6, symmetric part)
    gamma'_a = gamma'_0 |tau_a / g|^(m - 1) tau_a / g,  tau_a = P_a : sigma,    (A.7)
    g' = (H - R_d g) sum_a |gamma'_a|                            (A.8)

Deviation (stated as the issue allows): small strain (the paper uses Lagrange strain and the
second Piola-Kirchhoff stress). Eq. A.8 drives every system's resistance by the same total slip
rate, so systems that start equal (g0 = 122 MPa) stay equal: one resistance per point.

Time integration is backward Euler. Unknowns are the slip increments ``dg_a``:

    r_a = dg_a - dt gamma'_0 phi(tau_a / g),  phi(x) = |x|^m sign(x),
    tau = tau_trial - M dg,  M = P^T C P,  g = (g_n + H S) / (1 + R_d S),  S = sum |dg_a|,

solved by Newton with a backtracking line search on ``|r|``; a point that does not converge,
or whose Jacobian is singular in floating point (a huge overstress makes the rank <= 6 matrix M
dominate J), is flagged (``tangent.failed``, so the history solver cuts the step back), never
silently returned and never raised. The algorithmic tangent
``d sigma / d eps = C - (C P) J^-1 diag(c phi'/g) (P^T C)`` follows from the converged Jacobian.

Plane strain (``d = 2``): the crystal is rotated about z (one angle per grain), the strain has
``eps_zz = eps_xz = eps_yz = 0`` and the in-plane stress block is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from homlearn.materials.tangent import Tangent, as_float64

__all__ = ["FCC_PAPER", "FCCParameters", "FCCCrystalPlasticity", "fcc_slip_systems", "mandel",
           "unmandel", "cubic_stiffness_mandel", "rotate_mandel"]

SQ2 = float(np.sqrt(2.0))
_PAIRS = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


@dataclass(frozen=True)
class FCCParameters:
    """Paper 'gcnn' A.2 (steel): C11, C12, C44 in MPa, gamma'_0 in 1/s, g0, H in MPa."""

    c11: float = 204.6e3
    c12: float = 137.7e3
    c44: float = 126.2e3
    gamma_dot0: float = 1.0
    m: float = 20.0
    g0: float = 122.0
    H: float = 355.0
    Rd: float = 2.9


FCC_PAPER = FCCParameters()


def fcc_slip_systems() -> tuple[np.ndarray, np.ndarray]:
    """Unit slip directions ``s`` and plane normals ``n`` of the 12 {111}<110> systems, (12, 3)."""
    normals = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=float)
    directions = np.array([[0, 1, -1], [1, 0, -1], [1, -1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    pairs = [(d, nn) for nn in normals for d in directions if abs(d @ nn) < 1e-12]
    s = np.array([d / np.linalg.norm(d) for d, _ in pairs])
    n = np.array([nn / np.linalg.norm(nn) for _, nn in pairs])
    return s, n


def mandel(t: torch.Tensor) -> torch.Tensor:
    """Symmetric ``(..., 3, 3)`` -> Mandel ``(..., 6)`` (xx, yy, zz, sqrt2 yz, sqrt2 xz, sqrt2 xy)."""
    return torch.stack([t[..., i, j] * (1.0 if i == j else SQ2) for i, j in _PAIRS], dim=-1)


def unmandel(v: torch.Tensor) -> torch.Tensor:
    """Mandel ``(..., 6)`` -> symmetric ``(..., 3, 3)``."""
    out = v.new_zeros(*v.shape[:-1], 3, 3)
    for k, (i, j) in enumerate(_PAIRS):
        val = v[..., k] if i == j else v[..., k] / SQ2
        out[..., i, j] = val
        out[..., j, i] = val
    return out


def cubic_stiffness_mandel(c11: float, c12: float, c44: float) -> torch.Tensor:
    """Cubic stiffness in the crystal frame, Mandel ``(6, 6)`` (shear entries 2 C44)."""
    c = torch.zeros(6, 6, dtype=torch.float64)
    c[:3, :3] = c12
    c[range(3), range(3)] = c11
    c[range(3, 6), range(3, 6)] = 2 * c44
    return c


def rotate_mandel(rotation: torch.Tensor) -> torch.Tensor:
    """The ``(..., 6, 6)`` Mandel matrix ``Q`` with ``mandel(R A R^T) = Q mandel(A)``."""
    eye = torch.eye(6, dtype=rotation.dtype, device=rotation.device)
    cols = [mandel(rotation @ unmandel(eye[k].expand(*rotation.shape[:-2], 6)) @ rotation.transpose(-1, -2))
            for k in range(6)]
    return torch.stack(cols, dim=-1)


class FCCCrystalPlasticity:
    """FCC crystal plasticity on ``n_points`` material points, grouped as cells ``(B, *grid)``.

    ``rotation`` ``(B, 3, 3, *grid)`` maps crystal to sample axes; a 2D grid means plane strain. State (``eps_p`` Mandel,
    ``g``, last slip increments) is committed by :meth:`commit`; :meth:`response` evaluates a
    trial strain without changing it. Set the time step with ``dt``.
    """

    def __init__(self, rotation: torch.Tensor, params: FCCParameters = FCC_PAPER, *, dt: float = 1e-3,
                 local_tol: float = 1e-10, local_max_iter: int = 100, _state=None):
        rotation = as_float64(rotation)
        if rotation.ndim not in (5, 6) or rotation.shape[1:3] != (3, 3):
            raise ValueError(f"rotation must be (B, 3, 3, *grid) with a 2D or 3D grid, got {tuple(rotation.shape)}")
        self.params, self.dt, self.d = params, float(dt), rotation.ndim - 3
        self.local_tol, self.local_max_iter = local_tol, local_max_iter
        self.grid = tuple(rotation.shape[3:])
        self.rotation = rotation
        if _state is not None:
            self.C, self.CP, self.P, self.M, self.eps_p, self.g, self.dgamma = _state
            return
        pts = rotation.permute(0, *range(3, rotation.ndim), 1, 2)          # (B, *grid, 3, 3)
        Q = rotate_mandel(pts)
        C0 = cubic_stiffness_mandel(params.c11, params.c12, params.c44).to(rotation)
        self.C = Q @ C0 @ Q.transpose(-1, -2)                               # (B, *grid, 6, 6)
        s, n = (torch.from_numpy(a).to(rotation) for a in fcc_slip_systems())
        schmid = mandel(0.5 * (s[:, :, None] * n[:, None, :] + n[:, :, None] * s[:, None, :]))   # (12, 6)
        self.P = (Q @ schmid.T)                                              # (B, *grid, 6, 12)
        self.CP = self.C @ self.P
        self.M = self.P.transpose(-1, -2) @ self.CP                          # (B, *grid, 12, 12)
        shape = rotation.shape[:1] + self.grid
        self.eps_p = torch.zeros(*shape, 6, dtype=rotation.dtype, device=rotation.device)
        self.g = torch.full(shape, params.g0, dtype=rotation.dtype, device=rotation.device)
        self.dgamma = torch.zeros(*shape, 12, dtype=rotation.dtype, device=rotation.device)

    # ------------------------------------------------------------------ batching protocol
    @property
    def batch_size(self) -> int:
        return int(self.rotation.shape[0])

    def _state(self):
        return (self.C, self.CP, self.P, self.M, self.eps_p, self.g, self.dgamma)

    def select(self, index: torch.Tensor) -> "FCCCrystalPlasticity":
        return FCCCrystalPlasticity(self.rotation[index], self.params, dt=self.dt,
                                    local_tol=self.local_tol, local_max_iter=self.local_max_iter,
                                    _state=tuple(t[index] for t in self._state()))

    @classmethod
    def concat(cls, materials: list["FCCCrystalPlasticity"]) -> "FCCCrystalPlasticity":
        """One material of the cells of ``materials`` in order (same parameters and time step)."""
        m = materials[0]
        state = tuple(torch.cat(ts) for ts in zip(*(o._state() for o in materials)))
        return cls(torch.cat([o.rotation for o in materials]), m.params, dt=m.dt, local_tol=m.local_tol,
                   local_max_iter=m.local_max_iter, _state=state)

    def to(self, device=None) -> "FCCCrystalPlasticity":
        return FCCCrystalPlasticity(self.rotation.to(device), self.params, dt=self.dt,
                                    local_tol=self.local_tol, local_max_iter=self.local_max_iter,
                                    _state=tuple(t.to(device) for t in self._state()))

    # ------------------------------------------------------------------ kinematics
    def _strain_mandel(self, eps: torch.Tensor) -> torch.Tensor:
        """(B, d, d, *grid) -> (B, *grid, 6), embedding plane strain for d = 2."""
        e = eps.permute(0, *range(3, eps.ndim), 1, 2)
        if self.d == 2:
            e3 = e.new_zeros(*e.shape[:-2], 3, 3)
            e3[..., :2, :2] = e
            e = e3
        return mandel(e)

    def _stress_field(self, sig: torch.Tensor) -> torch.Tensor:
        """(B, *grid, 6) -> (B, d, d, *grid)."""
        s = unmandel(sig)[..., :self.d, :self.d]
        nsp = s.ndim - 3
        return s.permute(0, nsp + 1, nsp + 2, *range(1, nsp + 1))

    # ------------------------------------------------------------------ local update
    def _update(self, eps_m: torch.Tensor):
        """Backward-Euler update at every point; returns stress, slip increments, g, the tangent
        factor ``A = d dgamma / d tau_trial`` and the failed-point mask. Newton runs on the points
        that have not converged yet only (most points of a cell are elastic in a step)."""
        p = self.params
        c = self.dt * p.gamma_dot0
        m = p.m
        shape = eps_m.shape[:-1]
        sig_tr = (self.C @ (eps_m - self.eps_p)[..., None])[..., 0]
        tau_tr = (self.P.transpose(-1, -2) @ sig_tr[..., None])[..., 0].reshape(-1, 12)
        M = self.M.reshape(-1, 12, 12)
        g_n = self.g.reshape(-1, 1)
        dg = self.dgamma.reshape(-1, 12).clone()                           # warm start: last increment
        eye = torch.eye(12, dtype=dg.dtype, device=dg.device)

        def evaluate(dg, i):
            S = dg.abs().sum(-1, keepdim=True)
            g = (g_n[i] + p.H * S) / (1 + p.Rd * S)
            tau = tau_tr[i] - (M[i] @ dg[..., None])[..., 0]
            x = tau / g
            return dg - c * x.abs() ** m * torch.sign(x), tau, g, x, S

        def jacobian(dg, tau, g, x, S, i):
            dphi = m * x.abs() ** (m - 1)
            dgdS = (p.H - p.Rd * g) / (1 + p.Rd * S)
            return eye + (c * dphi / g)[..., None] * (
                M[i] + (tau / g)[..., None] * (dgdS[..., None] * torch.sign(dg)[..., None, :])), c * dphi / g

        def done(r, dg):
            rn = r.abs().amax(-1)
            return rn <= self.local_tol * torch.clamp(dg.abs().amax(-1), min=c), rn

        everything = torch.arange(dg.shape[0], device=dg.device)
        r, *_ = evaluate(dg, everything)
        conv, _ = done(r, dg)
        active = (~conv).nonzero().squeeze(1)
        failed = torch.zeros(dg.shape[0], dtype=torch.bool, device=dg.device)
        for _ in range(self.local_max_iter):
            if active.numel() == 0:
                break
            d_a = dg[active]
            r, tau, g, x, S = evaluate(d_a, active)
            rnorm = r.abs().amax(-1)
            J, _ = jacobian(d_a, tau, g, x, S, active)
            step, info = torch.linalg.solve_ex(J, -r[..., None])
            step = step[..., 0]
            singular = (info != 0) | ~torch.isfinite(step).all(-1)   # e.g. x**m overflowing on a huge step
            if bool(singular.any()):                                 # such points fail, the others go on
                failed[active[singular]] = True
                keep = ~singular
                active, d_a, rnorm, step = active[keep], d_a[keep], rnorm[keep], step[keep]
                if active.numel() == 0:
                    break
            lam = torch.ones_like(rnorm)
            for _ls in range(40):                                           # backtracking on max|r|
                r_t, *_ = evaluate(d_a + lam[..., None] * step, active)
                ok = (r_t.abs().amax(-1) <= (1 - 1e-4 * lam) * rnorm) | ~torch.isfinite(rnorm)
                if bool(ok.all()):
                    break
                lam = torch.where(ok, lam, 0.5 * lam)
            d_a = d_a + lam[..., None] * step
            dg[active] = d_a
            r, *_ = evaluate(d_a, active)
            conv, rn = done(r, d_a)
            bad = ~torch.isfinite(rn)
            failed[active[bad]] = True
            active = active[~conv & ~bad]
        failed[active] = True
        r, tau, g, x, S = evaluate(dg, everything)
        sig = sig_tr - (self.CP @ dg.reshape(*shape, 12, 1))[..., 0]
        # algorithmic tangent from the converged Jacobian, on the points that slip measurably
        w = c * m * x.abs() ** (m - 1) / g
        A = torch.zeros(dg.shape[0], 12, 12, dtype=dg.dtype, device=dg.device)
        plastic = ((w * M.diagonal(dim1=-2, dim2=-1)).amax(-1) > 1e-14).nonzero().squeeze(1)
        if plastic.numel():
            i = plastic
            J, w_p = jacobian(dg[i], tau[i], g[i], x[i], S[i], i)
            A_i, info = torch.linalg.solve_ex(J, torch.diag_embed(w_p))
            A[i] = A_i
            failed[i[(info != 0) | ~torch.isfinite(A_i).flatten(1).all(1)]] = True
        return (sig, dg.reshape(*shape, 12), g.reshape(shape), A.reshape(*shape, 12, 12),
                failed.reshape(shape))

    def response(self, eps: torch.Tensor):
        eps = eps.to(self.rotation.dtype)
        out = self._update(self._strain_mandel(eps))
        self._last = (eps, out)            # commit() at the same strain reuses this update
        sig, _, _, A, failed = out
        return self._stress_field(sig), _CPTangent(self, A, failed)

    def commit(self, eps: torch.Tensor) -> torch.Tensor:
        """Accept the converged strain of this step: update the state; returns the failed-point mask."""
        eps = eps.to(self.rotation.dtype)
        last = getattr(self, "_last", None)
        if last is not None and last[0].shape == eps.shape and torch.equal(last[0], eps):
            sig, dg, g, _, failed = last[1]
        else:
            sig, dg, g, _, failed = self._update(self._strain_mandel(eps))
        self._last = None
        self.eps_p = self.eps_p + (self.P @ dg[..., None])[..., 0]
        self.g, self.dgamma = g, dg
        return failed

    def plastic_strain(self) -> torch.Tensor:
        return self.eps_p


class _CPTangent(Tangent):
    """``d sigma = C d eps - C P A P^T C d eps`` with ``A = J^-1 diag(c phi' / g)``."""

    def __init__(self, mat: FCCCrystalPlasticity, A: torch.Tensor, failed: torch.Tensor):
        self.mat, self.A, self.failed = mat, A, failed

    def __call__(self, deps: torch.Tensor) -> torch.Tensor:
        mat = self.mat
        e = mat._strain_mandel(deps)[..., None]
        s_el = mat.C @ e
        q = mat.CP.transpose(-1, -2) @ e                                   # P^T C de
        ds = s_el - mat.CP @ (self.A @ q)
        return mat._stress_field(ds[..., 0])

    def select(self, index: torch.Tensor) -> "_CPTangent":
        return _CPTangent(self.mat.select(index), self.A[index], self.failed[index])
