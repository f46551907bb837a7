"""Magnesium (HCP) finite-strain crystal plasticity with tensile twinning as pseudo-slip, for
Taylor averaging (paper 'pcanet' SI-A after Chang & Kochmann 2015, parameters of Table SI-1).

Kinematics and elasticity
-------------------------
``F = Fe Fp`` with the lattice of each grain rotated by ``R`` (crystal -> sample axes). We work
in the lattice frame, ``Ft = F R``, so the slip tensors ``S_a = s_a (x) m_a`` are the same for
every point; the first Piola-Kirchhoff stress is returned in the sample frame, ``P = Pt R^T``.
The elastic energy is eq. 29 of the paper, a compressible neo-Hookean law in ``Fe``:

    W_e(A) = G/2 (tr(A^T A) / J^(2/3) - 3) + U(J),   J = det A,
    U(J) = lambda_e (J - 1)^2               ("eq29", default: the formula as printed), or
    U(J) = (lambda_e / 2 + G / 3) (J - 1)^2 ("lame": small-strain Lame constants (lambda_e, G)).

With ``volumetric = "eq29"`` the small-strain limit is shear modulus G and bulk modulus
``2 lambda_e`` (= 48 GPa; Lame lambda = 2 lambda_e - 2G/3 = 31.3 GPa); Table SI-1 calls
lambda_e a "Lame modulus", which only the "lame" form honours (bulk modulus 40.7 GPa).
G = 25 GPa and lambda_e = 24 GPa are the issue's / Table SI-1's Mg values (SI-A's 2D text gives
G = 19 GPa for the 2D model; not used here). The Mandel stress and Cauchy stress are

    Sigma = Fe^T dW/dFe = G J^(-2/3) dev(Ce) + J U'(J) I,   Ce = Fe^T Fe,
    P = Fe^-T Sigma Fp^-T (lattice frame),   sigma = P F^T / det F.

Plastic flow and its time integration
-------------------------------------
``Fp' Fp^-1 = sum_a gamma'_a S_a`` over 18 systems (eq. 35-37 without the twinned-fraction
terms): 3 basal {0001}<11-20>, 3 prismatic {10-10}<11-20>, 6 pyramidal <c+a> {11-22}<11-23>
and 6 tensile twins {10-12}<-1011> as pseudo-slip with shear ``gamma_b = gamma_t lambda_b``
(``gamma_t`` = 0.129 = (3 - (c/a)^2) / (sqrt(3) c/a) for c/a = 1.624). Backward Euler of that
equation gives, with ``x_a`` the slip increments of the step (the Newton unknowns),

    A = I - sum_a x_a S_a,   Fp_{n+1}^-1 = Fp_n^-1 A det(A)^(-1/3),   Fe = Ft Fp_{n+1}^-1,

with the determinant normalization keeping det Fp = 1 exactly (plain backward Euler drifts by
O(x^2) per step: 1.3% plastic volume change over a 50% path at 1000 steps, a pressure error of
~600 MPa). Resolved shear stresses ``tau_a = S_a : Sigma`` (the driving force -dW/dgamma_a).

Kinetics (eq. 30-33, 38-39), ``n = 1 / m`` (m = 0.5, so n = 2):

    flow_rule "power" (default; the issue's rate law):
        slip:  gamma'_a = gamma'_0 |tau_a / g_a|^n sign(tau_a),
        twin:  gamma'_b = gamma_t lambda'_0 <tau_b / g_b>^n          (only in its positive sense)
        g_a = tau0_a + sigma_inf_a (1 - exp(-h_a e_a / sigma_inf_a)) + sum_c H_ac e_c   (slip)
        g_b = tau0_tw + (2 sum_c K_bc lambda_c + h_tw lambda_b) / gamma_t             (twins)
    flow_rule "overstress" (eq. 38-39 read literally: the thresholds are dW/de and dW/dlambda,
    the dissipation potential adds a viscous overstress with scale tau0):
        slip:  gamma'_a = gamma'_0 <(|tau_a| - g_a) / tau0_a>^n sign(tau_a),  g_a without tau0
        twin:  gamma'_b = gamma_t lambda'_0 <(tau_b - g_b) / tau0_tw>^n,       g_b without tau0

with ``e_a`` the accumulated slip (eq. 27), ``lambda_b`` the twin volume fractions,
``H_ac = h_ij`` (Table SI-1, per mode of the row ``a``; self and latent, over the 12 slip
systems; the table gives one value per mode, so H is not symmetric and the linear term is not
strictly the gradient of eq. 30's quadratic form: stated deviation) and
``K_bc = k_ij`` for ``b != c`` (0 on the diagonal, where ``h_tw`` is the self term; eq. 31 is
``lambda . K lambda`` with no 1/2, hence the factor 2). Slip does not harden twins nor twins
slip (the table gives no coupling).

The residual of the step is ``r_a = x_a - dt gamma'_a(x)``; it is solved by Newton on the
18 increments with a backtracking line search on max|r| (as in
:mod:`homlearn.materials.crystal_plasticity`) and a trust region (the plastic velocity-gradient
increment changes by at most ``max_step`` per iteration), from the last increment extrapolated
linearly. The Jacobian is a diagonal plus a rank-6 term (tau depends on x through Ce only; rank
7 with latent hardening) and is solved by Woodbury with a 6x6 (7x7) factorization per point. Hardening uses ``e = e_n + max(sign(tau) x, 0)``, equal to ``e_n + |x|`` at the
solution, which keeps each slip residual monotone in its increment. A point whose Newton fails
is retried with 2, 4, 8, 16 substeps (cutbacks, F interpolated linearly); a point that still
fails, or whose Fe loses positive determinant, is flagged (``tangent.failed``, ``commit``'s
return), never returned silently. The algorithmic tangent ``dP/dF`` follows from the converged
Jacobian (computed lazily: a fully prescribed Taylor step never needs it; after cutbacks it is
the last substep's).

Deviations from the paper (stated as the issue asks)
----------------------------------------------------
* Reorientation by twinning is not modelled: slip in twinned volume uses the parent's
  systems (eq. 36's ``s_ab``, ``m_ab`` terms and the (1 - sum lambda) weights are dropped), and
  the lattice orientation only changes through Fe.
* A grain stops twinning when its committed total twin fraction reaches ``saturation``
  (default 1; checked per step, so the last twinning step can overshoot by its own increment).
* The twin-twin interaction ``K`` acts with the twin fractions at the start of the step
  (semi-implicit; self terms and slip hardening are implicit). With k_ij = 40 GPa eq. 31 is
  non-convex in lambda and an implicit update can have several solutions (variant selection);
  the explicit coupling keeps the local problem well posed, at the price of a first-order
  dependence of the nucleation on dt (twin fractions converge slowly under refinement).
  With the power law all variants with a positive resolved stress start at once and block each
  other within a few steps: twinning stays a small share of the deformation (a few % of the
  accumulated shear in our runs).
* tau0 is not in Table SI-1 for basal, prismatic and twin systems. Defaults are our choice,
  order-of-magnitude values of the pure-Mg CRSS used in crystal-plasticity fits in the
  literature (basal 0.5 MPa, prismatic 20 MPa, tensile twin 3.5 MPa); they are NOT taken from
  Chang & Kochmann 2015, which we could not consult: check them against it. Pyramidal 50.5
  MPa is the table's.
* Units: MPa and seconds (G = 25,000 MPa). The density (1e4 kg/m^3 in the table) plays no role
  in a quasi-static Taylor model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch

from homlearn.materials.tangent import Tangent, as_float64

__all__ = ["MODES", "MODE_OF_SYSTEM", "SlipMode", "TwinMode", "MgParameters", "MG_PAPER",
           "mb_direction", "mb_plane_normal", "hcp_systems", "twin_shear", "MagnesiumCrystalPlasticity",
           "cauchy_stress"]

MODES = ("basal", "prismatic", "pyramidal", "twin")
MODE_OF_SYSTEM = np.array([0] * 3 + [1] * 3 + [2] * 6 + [3] * 6)
N_SLIP, N_TWIN = 12, 6
N_SYS = N_SLIP + N_TWIN
SQ3 = float(np.sqrt(3.0))
_I6 = (1.0, 1.0, 1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SlipMode:
    """One slip mode: tau0, h, sigma_inf, h_latent in MPa; gamma_dot0 in 1/s; m the rate
    sensitivity (eq. 32)."""

    tau0: float
    h: float
    sigma_inf: float
    h_latent: float
    m: float = 0.5
    gamma_dot0: float = 1.0e5


@dataclass(frozen=True)
class TwinMode:
    """Tensile twins as pseudo-slip: tau0 (resolved shear, MPa), h (h_beta, MPa), k (k_ij, MPa),
    m, lambda_dot0 (1/s), gamma_t, saturation (largest total twin fraction of a grain)."""

    tau0: float = 3.5
    h: float = 7.0
    k: float = 40000.0
    m: float = 0.5
    lambda_dot0: float = 1.0e5
    gamma_t: float = 0.129
    saturation: float = 1.0


@dataclass(frozen=True)
class MgParameters:
    """Table SI-1 (MPa, 1/s) plus our documented choices (module docstring)."""

    shear_modulus: float = 25000.0
    lambda_e: float = 24000.0
    volumetric: str = "eq29"
    c_over_a: float = 1.624
    flow_rule: str = "power"
    basal: SlipMode = SlipMode(tau0=0.5, h=7100.0, sigma_inf=0.7, h_latent=0.0)
    prismatic: SlipMode = SlipMode(tau0=20.0, h=40000.0, sigma_inf=170.0, h_latent=20.0)
    pyramidal: SlipMode = SlipMode(tau0=50.5, h=30000.0, sigma_inf=200.0, h_latent=25.0)
    twin: TwinMode = field(default_factory=TwinMode)

    def __post_init__(self):
        if self.volumetric not in ("eq29", "lame"):
            raise ValueError(f"volumetric must be 'eq29' or 'lame', got {self.volumetric!r}")
        if self.flow_rule not in ("power", "overstress"):
            raise ValueError(f"flow_rule must be 'power' or 'overstress', got {self.flow_rule!r}")
        for mode in (self.basal, self.prismatic, self.pyramidal, self.twin):
            if not 0 < mode.m <= 1:
                raise ValueError(f"rate sensitivity m must lie in (0, 1] (C1 flow rule), got {mode.m}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "MgParameters":
        """From a config mapping (missing keys keep the defaults)."""
        d = dict(d or {})
        base = cls()
        kw = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in ("basal", "prismatic", "pyramidal", "twin"):
                v = replace(getattr(base, f.name), **v)
            kw[f.name] = v
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown magnesium parameters {sorted(unknown)}")
        return cls(**kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def volumetric_k(self) -> float:
        """``k`` in ``U(J) = k (J - 1)^2``."""
        return self.lambda_e if self.volumetric == "eq29" else self.lambda_e / 2 + self.shear_modulus / 3

    @property
    def small_strain_bulk_modulus(self) -> float:
        return 2.0 * self.volumetric_k


MG_PAPER = MgParameters()


# --------------------------------------------------------------------------- HCP geometry

def mb_direction(uvtw, c_over_a: float) -> np.ndarray:
    """Miller-Bravais direction [u v t w] (u + v + t = 0) as a Cartesian vector, lattice
    parameter a = 1: ``u a1 + v a2 + t a3 + w c`` with a1 = (1, 0, 0), a2 = (-1/2, sqrt3/2, 0),
    a3 = -(a1 + a2), c = (0, 0, c/a)."""
    u, v, t, w = (float(q) for q in uvtw)
    if abs(u + v + t) > 1e-12:
        raise ValueError(f"[u v t w] needs u + v + t = 0, got {uvtw}")
    a1, a2 = np.array([1.0, 0.0, 0.0]), np.array([-0.5, SQ3 / 2, 0.0])
    return u * a1 + v * a2 + t * (-a1 - a2) + w * np.array([0.0, 0.0, c_over_a])


def mb_plane_normal(hkil, c_over_a: float) -> np.ndarray:
    """Normal of the Miller-Bravais plane (h k i l) (i = -(h + k)): ``h a1* + k a2* + l c*``
    with the reciprocal basis of (a1, a2, c), i.e. (h, (h + 2k)/sqrt3, l / (c/a)) (not unit)."""
    h, k, i, l = (float(q) for q in hkil)
    if abs(h + k + i) > 1e-12:
        raise ValueError(f"(h k i l) needs h + k + i = 0, got {hkil}")
    return np.array([h, (h + 2 * k) / SQ3, l / c_over_a])


_BASAL_DIRS = [(2, -1, -1, 0), (-1, 2, -1, 0), (-1, -1, 2, 0)]
_PRISM_PLANES = [(1, 0, -1, 0), (0, 1, -1, 0), (-1, 1, 0, 0)]
_PYR_PLANES = [(1, 1, -2, 2), (-1, 2, -1, 2), (-2, 1, 1, 2), (-1, -1, 2, 2), (1, -2, 1, 2), (2, -1, -1, 2)]
_PYR_DIRS = [(-1, -1, 2, 3), (1, -2, 1, 3), (2, -1, -1, 3), (1, 1, -2, 3), (-1, 2, -1, 3), (-2, 1, 1, 3)]
_TWIN_PLANES = [(1, 0, -1, 2), (0, 1, -1, 2), (-1, 1, 0, 2), (-1, 0, 1, 2), (0, -1, 1, 2), (1, -1, 0, 2)]
_TWIN_DIRS = [(-1, 0, 1, 1), (0, -1, 1, 1), (1, -1, 0, 1), (1, 0, -1, 1), (0, 1, -1, 1), (-1, 1, 0, 1)]


def _pair(planes, dirs, c_over_a):
    """For each plane the one family direction lying in it (unit s, unit m)."""
    out_s, out_m = [], []
    for p in planes:
        m = mb_plane_normal(p, c_over_a)
        m = m / np.linalg.norm(m)
        hits = [d for d in dirs if abs(mb_direction(d, c_over_a) @ m) < 1e-10]
        if len(hits) != 1:
            raise AssertionError(f"plane {p}: {len(hits)} in-plane directions of the family")
        s = mb_direction(hits[0], c_over_a)
        out_s.append(s / np.linalg.norm(s))
        out_m.append(m)
    return out_s, out_m


def hcp_systems(c_over_a: float = 1.624) -> tuple[np.ndarray, np.ndarray]:
    """Unit slip directions ``s`` and plane normals ``m`` ``(18, 3)`` in the crystal frame (c axis
    along z, a1 along x): basal (3), prismatic (3), pyramidal <c+a> (6), tensile twins (6), in
    that order (:data:`MODE_OF_SYSTEM`). Twin senses are those that extend the c axis
    ((s.c)(m.c) > 0), the tensile twins of c/a < sqrt3."""
    basal_s = [mb_direction(d, c_over_a) / 3.0 for d in _BASAL_DIRS]
    basal = ([v / np.linalg.norm(v) for v in basal_s], [np.array([0.0, 0.0, 1.0])] * 3)
    prism = _pair(_PRISM_PLANES, _BASAL_DIRS, c_over_a)
    pyr = _pair(_PYR_PLANES, _PYR_DIRS, c_over_a)
    twin = _pair(_TWIN_PLANES, _TWIN_DIRS, c_over_a)
    s = np.array(basal[0] + prism[0] + pyr[0] + twin[0])
    m = np.array(basal[1] + prism[1] + pyr[1] + twin[1])
    return s, m


def twin_shear(c_over_a: float) -> float:
    """Twinning shear of {10-12}<-1011>: (3 - (c/a)^2) / (sqrt3 c/a) (0.129 for Mg)."""
    return (3.0 - c_over_a ** 2) / (SQ3 * c_over_a)


def cauchy_stress(F: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """``sigma = P F^T / det F`` for ``(..., 3, 3)`` tensors."""
    return P @ F.transpose(-1, -2) / torch.linalg.det(F)[..., None, None]


# --------------------------------------------------------------------------- the model

def _sym(a: torch.Tensor) -> torch.Tensor:
    return 0.5 * (a + a.transpose(-1, -2))


_M_IDX = [0, 4, 8, 5, 2, 1]                       # flat (i, j) of the Mandel components
_U_IDX = [0, 5, 4, 5, 1, 3, 4, 3, 2]              # Mandel component of each flat (i, j)
_SQ2 = float(np.sqrt(2.0))


_WEIGHTS: dict = {}


def _weights(t: torch.Tensor):
    key = (t.dtype, t.device)
    if key not in _WEIGHTS:
        w = torch.tensor([1.0, 1.0, 1.0, _SQ2, _SQ2, _SQ2], dtype=t.dtype, device=t.device)
        _WEIGHTS[key] = (w, 1.0 / w)
    return _WEIGHTS[key]


def _mandel(a: torch.Tensor) -> torch.Tensor:
    """Symmetric ``(..., 3, 3)`` -> Mandel ``(..., 6)`` (order of
    :func:`homlearn.materials.crystal_plasticity.mandel`) with one gather."""
    return a.reshape(*a.shape[:-2], 9)[..., _M_IDX] * _weights(a)[0]


def _unmandel(v: torch.Tensor) -> torch.Tensor:
    """Mandel ``(..., 6)`` -> symmetric ``(..., 3, 3)``."""
    return (v * _weights(v)[1])[..., _U_IDX].reshape(*v.shape[:-1], 3, 3)


def _det3(a: torch.Tensor) -> torch.Tensor:
    """Determinant of ``(..., 3, 3)``, row0 . (row1 x row2) (faster than batched LU for 3x3)."""
    return (a[..., 0, :] * torch.linalg.cross(a[..., 1, :], a[..., 2, :])).sum(-1)


def _inv3(a: torch.Tensor, det: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of ``(..., 3, 3)`` by the adjugate."""
    det = _det3(a) if det is None else det
    rows = a[..., [1, 2, 0], :]
    adj = torch.linalg.cross(rows, a[..., [2, 0, 1], :])              # rows: r1 x r2, r2 x r0, r0 x r1
    return adj.transpose(-1, -2) / det[..., None, None]


class MagnesiumCrystalPlasticity:
    """Mg crystal plasticity on ``B`` cells of material points laid out as a 3D grid.

    ``rotation`` ``(B, 3, 3, *grid)`` maps crystal to sample axes (for Taylor averaging, grains
    as a ``(n_grains, 1, 1)`` grid). ``response(F)`` with ``F`` ``(B, 3, 3, *grid)`` returns the
    first Piola-Kirchhoff stress (sample frame, MPa) and the algorithmic tangent ``dP/dF``
    without changing the state; ``commit(F)`` accepts the step and returns the failed-point
    mask ``(B, *grid)``. ``dt`` (s) is the step of the next update. State: ``Fp_inv`` (lattice
    frame), accumulated slip ``e`` (12), twin fractions ``twin_fraction`` (6), last increments,
    last committed F. ``last_iterations`` is the largest number of local Newton iterations of
    the last update; ``cutbacks`` counts, per point, the committed steps that needed substeps
    (their tangent is that of the last substep: consistent given the substep's start state).
    """

    d = 3

    def __init__(self, rotation: torch.Tensor, params: MgParameters = MG_PAPER, *, dt: float = 1e-8,
                 local_tol: float = 1e-10, local_max_iter: int = 25, max_step: float = 0.02,
                 max_cutbacks: int = 4, _state=None):
        rotation = as_float64(rotation)
        if rotation.ndim != 6 or rotation.shape[1:3] != (3, 3):
            raise ValueError(f"rotation must be (B, 3, 3, *grid) with a 3D grid, got {tuple(rotation.shape)}")
        self.params, self.dt = params, float(dt)
        self.local_tol, self.local_max_iter, self.max_step = float(local_tol), int(local_max_iter), float(max_step)
        self.max_cutbacks = int(max_cutbacks)
        self.rotation = rotation
        self.grid = tuple(rotation.shape[3:])
        nb, npt = rotation.shape[0], int(np.prod(self.grid))
        kw = dict(dtype=rotation.dtype, device=rotation.device)
        self.R = rotation.permute(0, 3, 4, 5, 1, 2).reshape(nb, npt, 3, 3)
        self._constants(kw)
        self.last_iterations = 0
        if _state is not None:
            self.Fp_inv, self.e, self.twin_fraction, self.dx, self.dx_prev, self.F_n, self.cutbacks, self.dt_last = _state
            return
        self.Fp_inv = torch.eye(3, **kw).expand(nb, npt, 3, 3).clone()
        self.e = torch.zeros(nb, npt, N_SLIP, **kw)
        self.twin_fraction = torch.zeros(nb, npt, N_TWIN, **kw)
        self.dx = torch.zeros(nb, npt, N_SYS, **kw)
        self.dx_prev = torch.zeros(nb, npt, N_SYS, **kw)
        self.F_n = torch.eye(3, **kw).expand(nb, npt, 3, 3).clone()         # last committed F (cutbacks)
        self.cutbacks = torch.zeros(nb, npt, dtype=torch.int64, device=rotation.device)  # steps that needed substeps
        self.dt_last = self.dt

    # ------------------------------------------------------------------ constants
    def _constants(self, kw):
        p = self.params
        s, m = hcp_systems(p.c_over_a)
        S = torch.from_numpy(np.einsum("ai,aj->aij", s, m)).to(**kw)
        self.S = S                                                           # (18, 3, 3)
        self.S9 = S.reshape(N_SYS, 9)
        self.Sm = _mandel(_sym(S))                                            # (18, 6)
        # T: mandel(Q S_b + (Q S_b)^T) = vec(Q) @ T[:, b]   (9, 18 * 6)
        eye9 = torch.eye(9, **kw).reshape(9, 1, 3, 3)
        QS = eye9 @ S[None]
        self.T = _mandel(QS + QS.transpose(-1, -2)).reshape(9, N_SYS * 6)
        slip = [p.basal] * 3 + [p.prismatic] * 3 + [p.pyramidal] * 6
        t = p.twin
        per = lambda f_slip, f_twin: torch.tensor([f_slip(q) for q in slip] + [f_twin] * N_TWIN, **kw)  # noqa: E731
        self.tau0 = per(lambda q: q.tau0, t.tau0)
        self.n = per(lambda q: 1.0 / q.m, 1.0 / t.m)
        self.rate0 = per(lambda q: q.gamma_dot0, t.gamma_t * t.lambda_dot0)  # shear rates
        self.h = torch.tensor([q.h for q in slip], **kw)
        self.sig_inf = torch.tensor([q.sigma_inf for q in slip], **kw)
        self.q_latent = torch.tensor([q.h_latent for q in slip], **kw)      # H_ab = q_a (self and latent)
        K = torch.full((N_TWIN, N_TWIN), t.k, **kw)
        K.fill_diagonal_(0.0)
        gt = t.gamma_t
        self.twin_K = 2.0 * K / gt                      # g_twin = tau0 + twin_K lambda_n + h lambda / gamma_t
        self.twin_h = t.h / gt
        self.twin_dg = t.h / gt ** 2                    # d g_twin / d x_twin (diagonal)
        self.with_tau0 = p.flow_rule == "power"
        self.has_latent = bool((self.q_latent != 0).any())
        self.square = bool((self.n == 2.0).all())                          # m = 0.5: z^2 is cheaper than pow
        self.is_twin = torch.tensor([False] * N_SLIP + [True] * N_TWIN, device=kw["device"])
        self.i6 = torch.tensor(_I6, **kw)
        self.Pdev = torch.eye(6, **kw) - torch.outer(self.i6, self.i6) / 3.0

    # ------------------------------------------------------------------ batching protocol
    @property
    def batch_size(self) -> int:
        return int(self.rotation.shape[0])

    def _state(self):
        return (self.Fp_inv, self.e, self.twin_fraction, self.dx, self.dx_prev, self.F_n, self.cutbacks, self.dt_last)

    def _new(self, rotation, state) -> "MagnesiumCrystalPlasticity":
        return MagnesiumCrystalPlasticity(rotation, self.params, dt=self.dt, local_tol=self.local_tol,
                                          local_max_iter=self.local_max_iter, max_step=self.max_step,
                                          max_cutbacks=self.max_cutbacks, _state=state)

    def select(self, index: torch.Tensor) -> "MagnesiumCrystalPlasticity":
        st = self._state()
        return self._new(self.rotation[index], tuple(t[index] for t in st[:-1]) + (st[-1],))

    def to(self, device=None) -> "MagnesiumCrystalPlasticity":
        st = self._state()
        return self._new(self.rotation.to(device), tuple(t.to(device) for t in st[:-1]) + (st[-1],))

    # ------------------------------------------------------------------ pieces of the update
    def _stress(self, Fe: torch.Tensor):
        """Mandel stress (6-vector), Ce (Mandel) and J = det Fe; NaN stress where J <= 0."""
        p = self.params
        C = Fe.transpose(-1, -2) @ Fe
        J = _det3(Fe)
        Jc = torch.where(J > 0, J, torch.ones_like(J))
        Cm = _mandel(C)
        devC = Cm - (Cm[..., :3].sum(-1, keepdim=True) / 3.0) * self.i6
        Sig = (p.shear_modulus * Jc ** (-2.0 / 3.0))[..., None] * devC \
            + (2.0 * p.volumetric_k * Jc * (Jc - 1.0))[..., None] * self.i6
        Sig = torch.where((J > 0)[..., None], Sig, torch.full_like(Sig, float("nan")))  # reported as failed
        return Sig, C, devC, J

    def _stress_tangent(self, C, devC, J):
        """``L = d Sigma / d Ce`` as a Mandel 6x6 matrix."""
        p = self.params
        Jc = torch.where(J > 0, J, torch.ones_like(J))
        Cinv_m = _mandel(_inv3(C, Jc * Jc))
        a = p.shear_modulus * Jc ** (-2.0 / 3.0)
        return a[..., None, None] * (self.Pdev - devC[..., :, None] * Cinv_m[..., None, :] / 3.0) \
            + (p.volumetric_k * (2.0 * Jc - 1.0) * Jc)[..., None, None] * (self.i6[:, None] * Cinv_m[..., None, :])

    def _resistance(self, x, s, ctx):
        """Resistances g (n, 18) and d sat / d e of the slip systems; ``s = sign(tau)`` of the slip
        systems: ``e = e_n + max(s x, 0)`` (= e_n + |x| at the solution, where x has the sign of
        tau; see :meth:`_jacobian`)."""
        e = ctx["e_n"] + torch.clamp(s * x[:, :N_SLIP], min=0.0)
        si = self.sig_inf
        pos = si > 0
        ex = torch.exp(-self.h * e / torch.where(pos, si, torch.ones_like(si)))
        zero = torch.zeros_like(e)
        sat = torch.where(pos, si * (1.0 - ex), zero)
        hexp = torch.where(pos, self.h * ex, zero)                             # d sat / d e
        g = torch.empty_like(x)
        torch.addcmul(sat, e.sum(-1, keepdim=True), self.q_latent, out=g[:, :N_SLIP])
        if self.with_tau0:
            g[:, :N_SLIP] += self.tau0[:N_SLIP]
        torch.add(ctx["g_twin0"], torch.clamp(x[:, N_SLIP:], min=0.0), alpha=self.twin_h / self.params.twin.gamma_t,
                  out=g[:, N_SLIP:])
        return g, hexp

    def _flow(self, tau, g, derivatives: bool):
        """Rate function ``R`` (gamma' = gamma'_0 R) and, if asked, its partials in tau and g."""
        n = self.n
        tw = self.is_twin
        if self.with_tau0:                                                   # power law
            z = tau / g
            za = torch.where(tw, torch.clamp(z, min=0.0), z.abs())
            Rm = za * za if self.square else za ** n
            R = torch.where(tw, Rm, Rm * torch.sign(z))
            if not derivatives:
                return R
            R_tau = 2.0 * za / g if self.square else \
                torch.where(za > 0, n * za ** (n - 1.0) / g, torch.zeros_like(g))
            return R, R_tau, -n * R / g
        sgn = torch.where(tw, torch.ones_like(tau), torch.sign(tau))       # overstress
        y = torch.clamp(torch.where(tw, tau, tau.abs()) - g, min=0.0) / self.tau0
        R = y ** n * sgn
        if not derivatives:
            return R
        d = torch.where(y > 0, n * y ** (n - 1.0) / self.tau0, torch.zeros_like(y))
        return R, d, -d * sgn

    def _points(self, F: torch.Tensor) -> torch.Tensor:
        """(B, 3, 3, *grid) -> (B, P, 3, 3)."""
        return F.permute(0, 3, 4, 5, 1, 2).reshape(F.shape[0], -1, 3, 3)

    def _field(self, T: torch.Tensor) -> torch.Tensor:
        """(B, P, 3, 3) -> (B, 3, 3, *grid)."""
        return T.reshape(T.shape[0], *self.grid, 3, 3).permute(0, 4, 5, 1, 2, 3)

    def _evaluate(self, x, ctx):
        """Residual ``r = x - c R(tau, g)`` and what the Jacobian needs."""
        n = x.shape[0]
        A = torch.eye(3, dtype=x.dtype, device=x.device) - (x @ self.S9).reshape(n, 3, 3)   # I - sum x_b S_b
        cA = torch.clamp(_det3(A), min=1e-300) ** (-1.0 / 3.0)              # det(Fp) = 1 exactly
        Fe = cA[:, None, None] * (ctx["Fe_tr"] @ A)
        Sig, C, devC, J = self._stress(Fe)
        tau = Sig @ self.Sm.T
        sgn = torch.sign(tau[:, :N_SLIP])
        g, hexp = self._resistance(x, sgn, ctx)
        r = x - ctx["c"] * self._flow(tau, g, False)
        dedx = torch.where(sgn * x[:, :N_SLIP] >= 0, sgn, torch.zeros_like(sgn))   # d e / d x
        return r, (Fe, Sig, C, devC, J, tau, g, hexp, dedx, A, cA)

    def _jacobian(self, x, ctx, parts):
        """``dr/dx`` as a diagonal plus a rank-6 (7 with latent hardening) update (the resolved
        stresses depend on x through the 6 components of Ce), solved by Woodbury; also the
        weights ``c dR/dtau`` and ``L`` (for the tangent).

        The hardening enters as ``e = e_n + max(sign(tau) x, 0)``: equal to ``e_n + |x|`` on the
        side of the solution (x has the sign of tau), no hardening on the wrong side, so each
        slip residual is monotone in its increment with the diagonal ``1 - c dR/dg dg_a/dx_a >= 1``
        (the jump of sign(tau) itself is multiplied by R = 0). The Jacobian is exact on both
        sides; at x = 0 it takes the slipping side."""
        Fe, Sig, C, devC, J, tau, g, hexp, dedx, A, cA = parts
        n = x.shape[0]
        L = self._stress_tangent(C, devC, J)
        # d Fe / d x_b = -cA Fe_tr S_b + t_b Fe / 3 with t_b = tr(A^-1 S_b) (the det normalization)
        Q = cA[:, None, None] * (Fe.transpose(-1, -2) @ ctx["Fe_tr"])
        t = _inv3(A).transpose(-1, -2).reshape(n, 9) @ self.S9.T
        V = torch.baddbmm(-(Q.reshape(n, 9) @ self.T).reshape(n, N_SYS, 6), t[..., None], _mandel(C)[:, None, :],
                          alpha=2.0 / 3.0)                                    # d mandel(Ce) / d x_b
        _, R_tau, R_g = self._flow(tau, g, True)
        c = ctx["c"]
        wt, wg = c * R_tau, c * R_g
        SmL = (self.Sm @ L.permute(1, 0, 2).reshape(6, -1)).reshape(N_SYS, n, 6).transpose(0, 1)
        D = -wg                                                               # >= 0 on slip and twins
        D[:, :N_SLIP] *= dedx
        D[:, :N_SLIP] *= hexp
        D[:, N_SLIP:] *= self.twin_dg * (x[:, N_SLIP:] >= 0)
        D += 1.0
        if not self.has_latent:
            return _Woodbury(D, -wt[..., None] * SmL, V), wt, L
        U = x.new_zeros(n, N_SYS, 7)
        torch.mul(SmL, -wt[..., None], out=U[..., :6])
        U[:, :N_SLIP, 6] = -(wg[:, :N_SLIP] * self.q_latent)                 # latent hardening (rank 1)
        V7 = x.new_zeros(n, N_SYS, 7)
        V7[..., :6] = V
        V7[:, :N_SLIP, 6] = dedx
        return _Woodbury(D, U, V7), wt, L

    def _solve(self, Ft, Fp_inv_n, e_n, lam_n, x0, dt):
        """One backward-Euler step of the points given: lattice-frame ``Ft`` (n, 3, 3), state at the
        start of the step, warm start ``x0``, time step ``dt``. Newton only on the points not
        converged yet. Returns the increments, the failed mask, the iterations and what the
        stress and the tangent need."""
        N = Ft.shape[0]
        c = (dt * self.rate0).expand(N, N_SYS).clone()
        saturated = lam_n.sum(-1) >= self.params.twin.saturation
        c[:, N_SLIP:] *= (~saturated)[:, None]
        g_twin0 = lam_n @ self.twin_K.T
        if self.with_tau0:
            g_twin0 = g_twin0 + self.tau0[N_SLIP:]
        full = dict(Fe_tr=Ft @ Fp_inv_n, e_n=e_n, c=c, g_twin0=g_twin0)
        x = torch.where(c > 0, x0, torch.zeros_like(c))
        floor = c.amax(-1) * 1e-3

        def done(r, x, fl):
            rn = r.abs().amax(-1)
            return rn <= self.local_tol * torch.maximum(x.abs().amax(-1), fl), rn

        r, parts = self._evaluate(x, full)
        parts = list(parts)                                                   # kept for every point
        conv, rn = done(r, x, floor)
        failed = ~torch.isfinite(rn)
        sel = ~conv & ~failed
        active = sel.nonzero().squeeze(1)
        r, pa = r[sel], [t[sel] for t in parts]
        its = 0
        while active.numel() and its < self.local_max_iter:
            its += 1
            everything = active.numel() == N
            ctx = full if everything else {k: v[active] for k, v in full.items()}
            xa = x.clone() if everything else x[active]
            rnorm = r.abs().amax(-1)
            Jr, _, _ = self._jacobian(xa, ctx, pa)
            step = -Jr.solve(r)
            # trust region: the plastic velocity-gradient increment sum_b step_b S_b changes by at
            # most max_step per iteration (Fe is only meaningful for small increments; a large trial
            # overstress would otherwise throw Newton far out, where tau(x) is no longer monotone).
            # Combinations that leave Fe alone (s1 + s2 + s3 = 0 on the basal plane) are not limited.
            big = (step @ self.S9).abs().amax(-1, keepdim=True)
            step = step * torch.clamp(self.max_step / big, max=1.0)
            lam = torch.ones_like(rnorm)
            for _ls in range(13):                                             # backtracking on max|r|
                x_t = xa + lam[..., None] * step
                r_t, pa = self._evaluate(x_t, ctx)
                ok = r_t.abs().amax(-1) <= (1 - 1e-4 * lam) * rnorm
                if bool(ok.all()):
                    break
                lam = torch.where(ok, lam, 0.5 * lam)
            xa = x_t
            if everything:
                x = xa
                parts = list(pa)
            else:
                x[active] = xa
                for t, v in zip(parts, pa):
                    t[active] = v
            conv, rn = done(r_t, xa, floor[active])
            # no decrease along the Newton direction within 2^-12: round-off if the residual is within
            # 1e3 x the tolerance (accepted); otherwise go on from the new point (a kink of the flow
            # rule or of |x| may have spoilt this direction), the cutbacks catch what never converges
            stalled = ~ok & ~conv
            conv |= stalled & (rn <= 1e3 * self.local_tol * torch.maximum(xa.abs().amax(-1), floor[active]))
            bad = ~torch.isfinite(rn)
            failed[active[bad]] = True
            keep = ~conv & ~bad
            active, r, pa = active[keep], r_t[keep], [t[keep] for t in pa]
        failed[active] = True
        Fe, Sig, J, A, cA = parts[0], parts[1], parts[4], parts[9], parts[10]
        failed |= ~torch.isfinite(Sig).all(-1) | ~(J > 0)
        Fp_inv = cA[:, None, None] * (Fp_inv_n @ A)
        return x, failed, its, dict(ctx=full, parts=parts, Ft=Ft, Fp_inv_n=Fp_inv_n, Fp_inv=Fp_inv)

    def _update(self, F: torch.Tensor):
        """Backward-Euler update at every point of ``F`` (B, 3, 3, *grid). A point whose Newton
        fails is retried with 2, 4, ... ``2**max_cutbacks`` substeps (F interpolated linearly from
        the committed F), after one retry of the whole step from x = 0 (the extrapolated warm
        start can be poor after a sudden change of F); it is reported failed only if all fail. Returns a dict with the
        new state, the stress, the failed mask and the linearization."""
        nb = F.shape[0]
        R = self.R.reshape(-1, 3, 3)
        Ft = self._points(F).reshape(-1, 3, 3) @ R
        Fp_inv_n = self.Fp_inv.reshape(-1, 3, 3)
        e_n = self.e.reshape(-1, N_SLIP)
        lam_n = self.twin_fraction.reshape(-1, N_TWIN)
        gt = self.params.twin.gamma_t
        # warm start: the last increment extrapolated linearly (increments of a smooth path change
        # smoothly; this saves about two Newton iterations per step), scaled to the new dt
        x0 = (2.0 * self.dx - self.dx_prev).reshape(-1, N_SYS) * (self.dt / self.dt_last if self.dt_last > 0 else 1.0)
        x, failed, its, lin = self._solve(Ft, Fp_inv_n, e_n, lam_n, x0, self.dt)
        e, lam = e_n + x[:, :N_SLIP].abs(), lam_n + x[:, N_SLIP:] / gt
        substeps = torch.zeros(Ft.shape[0], dtype=torch.int32, device=Ft.device)
        idx = failed.nonzero().squeeze(1)
        Ft0 = self.F_n.reshape(-1, 3, 3)[idx] @ R[idx] if idx.numel() else None
        for k in range(0, self.max_cutbacks + 1):     # k = 0: the whole step again from x = 0
            if not idx.numel():
                break
            n_sub = 2 ** k
            st = (Fp_inv_n[idx], e_n[idx], lam_n[idx])
            xs, bad = x0[idx] / n_sub * (k > 0), torch.zeros_like(idx, dtype=torch.bool)
            for j in range(1, n_sub + 1):
                Fj = Ft0 + (j / n_sub) * (Ft[idx] - Ft0)
                xs, fj, its_j, lin_j = self._solve(Fj, *st, xs, self.dt / n_sub)
                its = max(its, its_j)
                bad |= fj
                st = (lin_j["Fp_inv"], st[1] + xs[:, :N_SLIP].abs(), st[2] + xs[:, N_SLIP:] / gt)
            good = (~bad).nonzero().squeeze(1)
            if good.numel():
                if not substeps.any():                                    # views of the state: copy first
                    lin["Fp_inv_n"], lin["ctx"]["e_n"] = lin["Fp_inv_n"].clone(), lin["ctx"]["e_n"].clone()
                gi = idx[good]
                x[gi], e[gi], lam[gi] = xs[good] * n_sub, st[1][good], st[2][good]
                failed[gi], substeps[gi] = False, n_sub if k else 0
                for key in ("Fp_inv_n", "Fp_inv"):
                    lin[key][gi] = lin_j[key][good]
                for key in lin["ctx"]:
                    lin["ctx"][key][gi] = lin_j["ctx"][key][good]
                for t, v in zip(lin["parts"], lin_j["parts"]):
                    t[gi] = v[good]
            keep = bad.nonzero().squeeze(1)
            idx, Ft0 = idx[keep], Ft0[keep]
        self.last_iterations = its
        Fe, Sig, J = lin["parts"][0], lin["parts"][1], lin["parts"][4]
        Fe_inv_t = _inv3(Fe, J).transpose(-1, -2)
        Sig3 = _unmandel(Sig)
        P = Fe_inv_t @ Sig3 @ lin["Fp_inv"].transpose(-1, -2) @ R.transpose(-1, -2)
        lin.update(R=R, Fe_inv_t=Fe_inv_t, Sig3=Sig3)
        return dict(x=x, e=e, lam=lam, Fp_inv=lin["Fp_inv"], P=P.reshape(nb, -1, 3, 3),
                    failed=failed.reshape(nb, -1), substeps=substeps.reshape(nb, -1), lin=lin)

    def response(self, F: torch.Tensor):
        F = F.to(self.rotation.dtype)
        out = self._update(F)
        self._last = (F, out)                 # commit() at the same F reuses this update
        return self._field(out["P"]), _MgTangent(self, out)

    def commit(self, F: torch.Tensor) -> torch.Tensor:
        """Accept the step at ``F``: update the state; returns the failed-point mask (B, *grid)."""
        F = F.to(self.rotation.dtype)
        last = getattr(self, "_last", None)
        if last is not None and last[0].shape == F.shape and torch.equal(last[0], F):
            out = last[1]
        else:
            out = self._update(F)
        self._last = None
        nb, npt = self.R.shape[:2]
        self.Fp_inv = out["Fp_inv"].reshape(nb, npt, 3, 3)
        self.e = out["e"].reshape(nb, npt, N_SLIP)
        self.twin_fraction = out["lam"].reshape(nb, npt, N_TWIN)
        self.dx_prev = self.dx * (self.dt / self.dt_last if self.dt_last > 0 else 1.0)
        self.dx, self.dt_last = out["x"].reshape(nb, npt, N_SYS), self.dt
        self.F_n = self._points(F)
        self.cutbacks = self.cutbacks + (out["substeps"] > 0)
        return out["failed"].reshape(nb, *self.grid)

    # ------------------------------------------------------------------ diagnostics
    def slip_by_mode(self) -> torch.Tensor:
        """Accumulated shear per mode ``(B, *grid, 4)``: basal, prismatic, pyramidal slip and
        twin shear gamma_t * sum lambda."""
        e = self.e
        parts = [e[..., :3].sum(-1), e[..., 3:6].sum(-1), e[..., 6:12].sum(-1),
                 self.params.twin.gamma_t * self.twin_fraction.sum(-1)]
        return torch.stack(parts, -1).reshape(self.batch_size, *self.grid, 4)


class _MgTangent(Tangent):
    """``dP`` for a ``dF`` field: the consistent linearization of the converged update
    (factorized on first use)."""

    def __init__(self, mat: MagnesiumCrystalPlasticity, out: dict):
        self.mat, self.out = mat, out
        self.failed = out["failed"].reshape(mat.batch_size, *mat.grid)
        self._cache = None

    def _factor(self):
        if self._cache is None:
            lin = self.out["lin"]
            Jr, wt, L = self.mat._jacobian(self.out["x"], lin["ctx"], lin["parts"])
            self._cache = (Jr, wt, L)
        return self._cache

    def __call__(self, dF: torch.Tensor) -> torch.Tensor:
        mat, lin = self.mat, self.out["lin"]
        Jr, wt, L = self._factor()
        Fe = lin["parts"][0]
        Fe_t = Fe.transpose(-1, -2)
        Fp_inv, Fe_inv_t, Sig3 = lin["Fp_inv"], lin["Fe_inv_t"], lin["Sig3"]
        dFt = mat._points(dF.to(Fe.dtype)).reshape(-1, 3, 3) @ lin["R"]
        dFe_F = dFt @ Fp_inv                                                   # at fixed slip
        X = Fe_t @ dFe_F
        dtau_F = ((L @ _mandel(X + X.transpose(-1, -2))[..., None])[..., 0]) @ mat.Sm.T
        dx = Jr.solve(wt * dtau_F)
        A, cA = lin["parts"][9], lin["parts"][10]
        dDL = (dx @ mat.S9).reshape(-1, 3, 3)
        trace = (_inv3(A).transpose(-1, -2) * dDL).sum((-1, -2))              # tr(A^-1 dDL)
        dFp_inv = cA[:, None, None] * (lin["Fp_inv_n"] @ (trace[:, None, None] / 3.0 * A - dDL))
        dFe = dFe_F + lin["Ft"] @ dFp_inv
        X = Fe_t @ dFe
        dSig = _unmandel((L @ _mandel(X + X.transpose(-1, -2))[..., None])[..., 0])
        Fp_inv_t = Fp_inv.transpose(-1, -2)
        dPt = (Fe_inv_t @ (dSig - dFe.transpose(-1, -2) @ Fe_inv_t @ Sig3) @ Fp_inv_t
               + Fe_inv_t @ Sig3 @ dFp_inv.transpose(-1, -2))
        dP = dPt @ lin["R"].transpose(-1, -2)
        return mat._field(dP.reshape(mat.batch_size, -1, 3, 3))

    def select(self, index: torch.Tensor) -> "Tangent":
        return _SelectedTangent(self, index)


class _SelectedTangent(Tangent):
    """The tangent of some cells (solvers that drop cells evaluate it on their remaining ones)."""

    def __init__(self, parent: _MgTangent, index: torch.Tensor):
        self.parent, self.index = parent, index
        self.failed = parent.failed[index]

    def __call__(self, dF: torch.Tensor) -> torch.Tensor:
        full = dF.new_zeros((self.parent.mat.batch_size,) + tuple(dF.shape[1:]))
        full[self.index] = dF
        return self.parent(full)[self.index]

    def select(self, index: torch.Tensor) -> "Tangent":
        return _SelectedTangent(self.parent, self.index[index])


class _Woodbury:
    """``(diag(D) + U V^T)^-1`` for batches: ``y = D^-1 r - D^-1 U (I + V^T D^-1 U)^-1 V^T D^-1 r``
    (a k x k factorization per point instead of 18 x 18)."""

    def __init__(self, D: torch.Tensor, U: torch.Tensor, V: torch.Tensor):
        self.Dinv = 1.0 / D
        self.DU = self.Dinv[..., None] * U
        self.V = V
        cap = V.transpose(1, 2) @ self.DU
        cap.diagonal(dim1=1, dim2=2).add_(1.0)
        self.lu, self.piv, _ = torch.linalg.lu_factor_ex(cap)

    def solve(self, r: torch.Tensor) -> torch.Tensor:
        y = self.Dinv * r
        z = torch.linalg.lu_solve(self.lu, self.piv, (self.V.transpose(1, 2) @ y[..., None]))
        return y - (self.DU @ z)[..., 0]
