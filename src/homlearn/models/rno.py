"""Recurrent neural operators (paper 'rno' section 2, eq. 2-3, 7; section 5.1).

Continuous form (eq. 2), in the paper's names: the stress map ``f`` and the kinetic relation
``g`` of k internal variables xi, starting at zero::

    sigma(t) = f(F(t), xi(t)),        d xi / dt = g(F(t), xi(t)).

Discretised by forward Euler with the actual step of the grid at hand (eq. 3)::

    xi^n = xi^{n-1} + dt_n g(F^n, xi^{n-1}),     sigma^n = f(F^n, xi^n),     xi^0 = 0,

so one trained model runs at any resolution ('rno' section 6, Fig. 10). f and g are SELU MLPs,
4 hidden layers of 100 nodes by default, 5 x 200 for 3D data (section 5.2). k = 0 is a purely
elastic map ``sigma = f(F)``.

The viscoelastic RNO (eq. 7) also feeds the rate dF/dt to the stress map f (not to g):
``sigma = f(F, dF/dt, xi)``, ``d xi/dt = g(F, xi)``. The rate is the backward difference
``(F^n - F^{n-1}) / dt_n``; at n = 0 the first forward difference (our choice). With
``rate_step`` set, the increment is divided by that fixed step instead of the actual one (an
ablation: the feature is then the rate only on the grid it was trained on; see
``benchmarks/ve_rate_vs_increment.py`` for the resolution study, rno Fig. 10a).

:class:`PressureDeviatoricRNO` is section 5.1's split: one RNO for the pressure and an
independent one for the deviatoric stress, combined as ``sigma = -p I + s`` (eq. 28).

Inputs and outputs may be normalised by per-component affine maps stored as buffers
(:meth:`RNO.fit_scaling`); dt is divided by ``time_scale``. Both are identities by default.
"""

from __future__ import annotations

import torch
from torch import nn

from homlearn.models.mlp import MLP

__all__ = [
    "RNO", "PressureDeviatoricRNO", "time_steps", "n_deviatoric", "deviatoric_split",
    "deviator_from_components", "symmetric_from_components", "symmetric_components",
]


def time_steps(t: torch.Tensor, batch: int, n_time: int) -> torch.Tensor:
    """(B, T) steps ``dt_n = t_n - t_{n-1}`` (dt_0 = 0) of times ``t`` given as (T,) or (B, T)."""
    if t.ndim not in (1, 2) or t.shape[-1] != n_time or (t.ndim == 2 and t.shape[0] not in (1, batch)):
        raise ValueError(f"times must be (T,) or (B, T) with T = {n_time}, B = {batch}; got {tuple(t.shape)}")
    t = t.expand(batch, n_time) if t.ndim == 2 else t.unsqueeze(0).expand(batch, n_time)
    dt = torch.zeros_like(t)
    dt[:, 1:] = t[:, 1:] - t[:, :-1]
    if bool((dt[:, 1:] <= 0).any()):
        raise ValueError("times must be strictly increasing")
    return dt


class RNO(nn.Module):
    """Recurrent neural operator: histories (B, T, c_in) and times -> (B, T, c_out).

    ``rate_input=True`` is the viscoelastic variant (eq. 7). Attributes ``f`` (stress map) and
    ``g`` (internal variable rate, None when k = 0) are the paper's networks.
    """

    def __init__(self, c_in: int, c_out: int, k: int = 1, width: int = 100, depth: int = 4,
                 rate_input: bool = False, time_scale: float = 1.0, rate_step: float | None = None):
        super().__init__()
        if c_in < 1 or c_out < 1 or k < 0:
            raise ValueError(f"need c_in >= 1, c_out >= 1, k >= 0; got {c_in}, {c_out}, {k}")
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if rate_step is not None and not (rate_input and rate_step > 0):
            raise ValueError(f"rate_step must be > 0 and needs rate_input=True, got {rate_step}")
        #: fixed step (in units of time_scale) dividing the increment in place of dt_n, or None
        self.rate_step = None if rate_step is None else float(rate_step)
        self.c_in, self.c_out, self.k, self.rate_input = int(c_in), int(c_out), int(k), bool(rate_input)
        hidden = (int(width),) * int(depth)
        self.f = MLP(c_in * (2 if rate_input else 1) + k, c_out, hidden)
        self.g = MLP(c_in + k, k, hidden) if k > 0 else None
        self.register_buffer("x_shift", torch.zeros(c_in))
        self.register_buffer("x_scale", torch.ones(c_in))
        self.register_buffer("y_shift", torch.zeros(c_out))
        self.register_buffer("y_scale", torch.ones(c_out))
        self.register_buffer("time_scale", torch.tensor(float(time_scale)))

    @classmethod
    def paper(cls, c_in: int, c_out: int, k: int, dim: int = 1, **kw) -> "RNO":
        """Paper sizes: 4 x 100 (sections 2-3), 5 x 200 for 3D (section 5.2)."""
        size = {"width": 200, "depth": 5} if dim == 3 else {"width": 100, "depth": 4}
        return cls(c_in, c_out, k, **{**size, **kw})

    @torch.no_grad()
    def fit_scaling(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None,
                    shift: bool = False) -> "RNO":
        """Per-component scales (std over samples and times) of training inputs (B, T, c_in) and
        outputs (B, T, c_out); with ``shift`` also their means (else zero, so F - I or strain
        stays centred at the undeformed state); ``t`` sets ``time_scale`` to the duration."""
        xs = x.reshape(-1, x.shape[-1]).to(torch.float64)
        ys = y.reshape(-1, y.shape[-1]).to(torch.float64)
        for buf, v in ((self.x_scale, xs), (self.y_scale, ys)):
            sd = v.std(0) if v.shape[0] > 1 else v.abs().max(0).values
            buf.copy_(torch.where(sd > 0, sd, torch.ones_like(sd)).to(buf))
        if shift:
            self.x_shift.copy_(xs.mean(0).to(self.x_shift))
            self.y_shift.copy_(ys.mean(0).to(self.y_shift))
        if t is not None:
            span = float((t[..., -1] - t[..., 0]).abs().max())
            if span > 0:
                self.time_scale.fill_(span)
        return self

    def _rate_divisor(self, dt: torch.Tensor) -> torch.Tensor | float:
        """What divides the input increment in the VE feature: dt_n (eq. 7), or ``rate_step``."""
        return dt if self.rate_step is None else self.rate_step

    def _features(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        xn = (x - self.x_shift) / self.x_scale
        if not self.rate_input:
            return xn
        rate = torch.zeros_like(xn)
        if x.shape[1] > 1:
            rate[:, 1:] = (xn[:, 1:] - xn[:, :-1]) / self._rate_divisor(dt[:, 1:, None])
            rate[:, 0] = rate[:, 1]
        return torch.cat([xn, rate], dim=-1)

    def internal_variables(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, T, k) internal variables xi^n of eq. 3 (xi^0 = 0)."""
        return self(x, t, return_internal=True)[1]

    def forward(self, x: torch.Tensor, t: torch.Tensor, return_internal: bool = False):
        if x.ndim != 3 or x.shape[-1] != self.c_in:
            raise ValueError(f"expected input histories (B, T, {self.c_in}), got {tuple(x.shape)}")
        b, n, _ = x.shape
        dt = time_steps(torch.as_tensor(t).to(x), b, n) / self.time_scale
        feats = self._features(x, dt)
        xn = feats[..., :self.c_in]
        xi_all = x.new_zeros(b, n, self.k)
        if self.k:
            xi = x.new_zeros(b, self.k)
            steps = [xi]
            for i in range(1, n):  # eq. 3: g at the new input and the old internal variables
                xi = xi + dt[:, i, None] * self.g(torch.cat([xn[:, i], xi], dim=-1))
                steps.append(xi)
            xi_all = torch.stack(steps, dim=1)
        y = self.f(torch.cat([feats, xi_all], dim=-1)) * self.y_scale + self.y_shift  # all times at once
        return (y, xi_all) if return_internal else y

    def step(self, x_new: torch.Tensor, x_old: torch.Tensor, xi_old: torch.Tensor, dt: float | torch.Tensor):
        """One material-point update (eq. 3), as a finite-element code calls it: inputs (B, c_in)
        at t_n and t_{n-1}, xi^{n-1} (B, k), step dt_n -> (sigma^n (B, c_out), xi^n (B, k))."""
        dt = torch.as_tensor(dt, dtype=x_new.dtype, device=x_new.device) / self.time_scale
        dt = dt.reshape(-1, 1) if dt.ndim else dt.reshape(1, 1)
        xn = (x_new - self.x_shift) / self.x_scale
        feats = [xn]
        if self.rate_input:
            feats.append((xn - (x_old - self.x_shift) / self.x_scale) / self._rate_divisor(dt))
        xi = xi_old
        if self.k:
            xi = xi_old + dt * self.g(torch.cat([xn, xi_old], dim=-1))
        y = self.f(torch.cat(feats + [xi], dim=-1)) * self.y_scale + self.y_shift
        return y, xi

    def extra_repr(self) -> str:
        extra = "" if self.rate_step is None else f", rate_step={self.rate_step:g}"
        return f"c_in={self.c_in}, c_out={self.c_out}, k={self.k}, rate_input={self.rate_input}{extra}"


# ----------------------------------------------------------------------------- tensors


def _pairs(d: int) -> list[tuple[int, int]]:
    """Component order of homlearn (``loading.paths.component_pairs``): diagonal, then i < j."""
    return [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]


def n_deviatoric(d: int) -> int:
    """Independent components of a traceless symmetric d x d tensor: d(d+1)/2 - 1."""
    return d * (d + 1) // 2 - 1


def symmetric_from_components(c: torch.Tensor, d: int) -> torch.Tensor:
    """(..., d(d+1)/2) in :func:`_pairs` order -> symmetric (..., d, d)."""
    pairs = _pairs(d)
    if c.shape[-1] != len(pairs):
        raise ValueError(f"expected {len(pairs)} components for d = {d}, got {c.shape[-1]}")
    rows = [[None] * d for _ in range(d)]
    for k, (i, j) in enumerate(pairs):
        rows[i][j] = rows[j][i] = c[..., k]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def symmetric_components(s: torch.Tensor) -> torch.Tensor:
    """Symmetric (..., d, d) -> (..., d(d+1)/2), symmetrised, :func:`_pairs` order."""
    d = s.shape[-1]
    return torch.stack([0.5 * (s[..., i, j] + s[..., j, i]) for i, j in _pairs(d)], dim=-1)


def deviator_from_components(c: torch.Tensor, d: int) -> torch.Tensor:
    """Independent deviatoric components (..., n_deviatoric(d)) -> traceless symmetric (..., d, d):
    the first d - 1 diagonal entries, then the off-diagonal ones in :func:`_pairs` order; the
    last diagonal entry is minus the sum of the others."""
    if c.shape[-1] != n_deviatoric(d):
        raise ValueError(f"expected {n_deviatoric(d)} deviatoric components for d = {d}, got {c.shape[-1]}")
    diag = c[..., :d - 1]
    full = torch.cat([diag, -diag.sum(-1, keepdim=True), c[..., d - 1:]], dim=-1)
    return symmetric_from_components(full, d)


def deviatoric_split(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stress (..., d, d) -> pressure ``p = -tr(sigma)/d`` (..., 1) and the independent
    deviatoric components (..., n_deviatoric(d)) of ``s = sigma + p I`` (eq. 28)."""
    d = sigma.shape[-1]
    p = -torch.diagonal(sigma, dim1=-2, dim2=-1).sum(-1, keepdim=True) / d
    s = symmetric_components(sigma)
    s = torch.cat([s[..., :d - 1] + p, s[..., d:]], dim=-1)
    return p, s


class PressureDeviatoricRNO(nn.Module):
    """Section 5.1: a pressure RNO (one output) and an independent deviatoric RNO
    (n_deviatoric(d) outputs) on the same input; forward gives the symmetric Cauchy stress
    ``sigma = -p I + s`` (B, T, d, d). Train the two parts separately on the targets from
    :func:`deviatoric_split` (``rno`` footnote 2: one RNO with two disjoint parts)."""

    def __init__(self, c_in: int, dim: int, k_pressure: int, k_deviatoric: int, **rno_kw):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        self.dim = int(dim)
        self.pressure = RNO(c_in, 1, k_pressure, **rno_kw)
        self.deviatoric = RNO(c_in, n_deviatoric(dim), k_deviatoric, **rno_kw)

    targets = staticmethod(deviatoric_split)

    def parts(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pressure (B, T, 1), deviatoric components (B, T, n_deviatoric))."""
        return self.pressure(x, t), self.deviatoric(x, t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p, s = self.parts(x, t)
        eye = torch.eye(self.dim, dtype=p.dtype, device=p.device)
        return deviator_from_components(s, self.dim) - p[..., None] * eye
