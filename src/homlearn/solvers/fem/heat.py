"""Steady anisotropic heat conduction on a 2D polycrystal unit cell (DOLFINx, P1).

Frankel et al., reduced-graph GCNN, section 3.1 and appendix A.1:

* ``div q = 0`` with ``q = -kappa grad theta`` (eq. A.1-A.2) and a per-cell
  conductivity ``kappa = R(phi) diag(k1, k2) R(phi)^T`` (eq. A.3);
* ``theta = 0`` on the left edge, ``theta = 1`` on the right edge, top and
  bottom insulated;
* effective conductivity ``kbar = -(L / (V dtheta)) int q dV`` (eq. A.4).

The variational forms are compiled once per process against an abstract UFL
mesh (:func:`dolfinx.fem.compile_form`) and bound to each new mesh with
:func:`dolfinx.fem.create_form`, so a solve never re-runs UFL/FFCx.
Everything runs on ``MPI.COMM_SELF`` (one mesh per worker process).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

try:  # the PyPI wheel (dolfinx-solver-real) must be imported before dolfinx; conda-forge has none
    import dolfinx_solver  # noqa: F401
except ImportError:
    pass

import basix.ufl
import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from dolfinx.fem.forms import CompiledForm
from mpi4py import MPI

__all__ = [
    "HeatConduction2D",
    "HeatSolution",
    "conductivity_bounds",
    "conductivity_tensors",
    "mixture_rules",
    "warm_jit_cache",
]

DEFAULT_KAPPA: tuple[float, float] = (1.0, 0.25)

# Reduced systems up to this many unknowns are solved with dense Cholesky
# (fastest for the ~120-unknown unit cells); larger ones with sparse LU.
_DENSE_MAX_UNKNOWNS = 1500


# --------------------------------------------------------------------------
# Closed-form material quantities (numpy only)
# --------------------------------------------------------------------------


def conductivity_tensors(
    cell_angle: np.ndarray, kappa: tuple[float, float] = DEFAULT_KAPPA
) -> np.ndarray:
    """Per-cell conductivity ``R(phi) diag(k1, k2) R(phi)^T`` (eq. A.3), shape (C, 2, 2)."""
    phi = np.asarray(cell_angle, dtype=np.float64).reshape(-1)
    k1, k2 = (float(k) for k in kappa)
    c, s = np.cos(phi), np.sin(phi)
    out = np.empty((phi.size, 2, 2), dtype=np.float64)
    out[:, 0, 0] = k1 * c * c + k2 * s * s
    out[:, 1, 1] = k1 * s * s + k2 * c * c
    out[:, 0, 1] = out[:, 1, 0] = (k1 - k2) * c * s
    return out


def _area_fractions(cell_area: np.ndarray, n: int) -> np.ndarray:
    area = np.asarray(cell_area, dtype=np.float64).reshape(-1)
    if area.size != n:
        raise ValueError(f"cell_area has {area.size} entries, cell_angle has {n}")
    total = area.sum()
    if not total > 0.0:
        raise ValueError("total cell area must be positive")
    return area / total


def mixture_rules(
    cell_area: np.ndarray, cell_angle: np.ndarray, kappa: tuple[float, float] = DEFAULT_KAPPA
) -> tuple[float, float]:
    """xx components of the homogeneous-gradient (eq. 6) and homogeneous-flux (eq. 7) rules.

    Returns ``((sum_K chi_K kappa_K)_xx, ([sum_K chi_K kappa_K^-1]^-1)_xx)`` with
    ``chi_K`` the area fractions.
    """
    k1, k2 = (float(k) for k in kappa)
    tensors = conductivity_tensors(cell_angle, (k1, k2))
    chi = _area_fractions(cell_area, tensors.shape[0])
    voigt = np.einsum("c,cij->ij", chi, tensors)
    inv_mean = np.einsum("c,cij->ij", chi, conductivity_tensors(cell_angle, (1.0 / k1, 1.0 / k2)))
    reuss = np.linalg.inv(inv_mean)
    return float(voigt[0, 0]), float(reuss[0, 0])


def conductivity_bounds(
    cell_area: np.ndarray, cell_angle: np.ndarray, kappa: tuple[float, float] = DEFAULT_KAPPA
) -> tuple[float, float]:
    """Bounds ``1/<(kappa^-1)_xx> <= kbar_x <= <kappa_xx>`` for these boundary conditions.

    Upper: trial field ``theta = x`` in the minimum-energy principle; lower: the
    uniform flux ``q = -e_x`` in the complementary principle. Both also hold for the
    conforming P1 solution. The upper bound equals the xx component of eq. 6.
    """
    k1, k2 = (float(k) for k in kappa)
    phi = np.asarray(cell_angle, dtype=np.float64).reshape(-1)
    chi = _area_fractions(cell_area, phi.size)
    upper = float(chi @ conductivity_tensors(phi, (k1, k2))[:, 0, 0])
    lower = 1.0 / float(chi @ conductivity_tensors(phi, (1.0 / k1, 1.0 / k2))[:, 0, 0])
    return lower, upper


# --------------------------------------------------------------------------
# Per-process compiled forms
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledForms:
    domain: ufl.Mesh
    p1: object  # basix.ufl element of the temperature
    dg0_tensor: object  # basix.ufl element of the per-cell conductivity
    kappa: ufl.Coefficient
    theta: ufl.Coefficient
    stiffness: CompiledForm  # a(u, v) = int kappa grad u . grad v
    flux: tuple[CompiledForm, CompiledForm]  # int (kappa grad theta)_i, i = x, y


_FORMS: _CompiledForms | None = None
_FORMS_LOCK = threading.Lock()


def _compiled_forms() -> _CompiledForms:
    """Compile (or load from the FFCx disk cache) the forms once per process."""
    global _FORMS
    with _FORMS_LOCK:
        if _FORMS is None:
            domain = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 1, shape=(2,)))
            p1 = basix.ufl.element("Lagrange", "triangle", 1)
            dg0 = basix.ufl.element("DG", "triangle", 0, shape=(2, 2))
            V = ufl.FunctionSpace(domain, p1)
            W = ufl.FunctionSpace(domain, dg0)
            u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
            kappa = ufl.Coefficient(W)
            theta = ufl.Coefficient(V)
            # Zero source term: only the bilinear form is needed (eq. A.1).
            a = ufl.inner(kappa * ufl.grad(u), ufl.grad(v)) * ufl.dx
            flux = kappa * ufl.grad(theta)  # = -q (eq. A.2)
            comm = MPI.COMM_SELF
            _FORMS = _CompiledForms(
                domain=domain,
                p1=p1,
                dg0_tensor=dg0,
                kappa=kappa,
                theta=theta,
                stiffness=fem.compile_form(comm, a),
                flux=(
                    fem.compile_form(comm, flux[0] * ufl.dx),
                    fem.compile_form(comm, flux[1] * ufl.dx),
                ),
            )
        return _FORMS


def warm_jit_cache() -> None:
    """Compile the forms once (fills the FFCx disk cache before Dask workers start)."""
    _compiled_forms()


# --------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HeatSolution:
    """Result of one unit-cell solve."""

    kbar: np.ndarray  # (2,) effective conductivity components (x, y), eq. A.4
    temperature: np.ndarray  # (P,) nodal temperature in the caller's node order (NaN: unused node)
    residual: float  # relative residual norm of the linear solve


class HeatConduction2D:
    """Compiles the forms once per process; solve() is called many times on different meshes."""

    def __init__(self, kappa: tuple[float, float] = DEFAULT_KAPPA):
        k1, k2 = (float(k) for k in kappa)
        if not (k1 > 0.0 and k2 > 0.0):
            raise ValueError(f"principal conductivities must be positive, got {kappa}")
        self.kappa = (k1, k2)
        self._forms = _compiled_forms()

    def solve(
        self, points: np.ndarray, triangles: np.ndarray, cell_angle: np.ndarray
    ) -> HeatSolution:
        """Solve eq. A.1-A.3 on one mesh and return kbar (eq. A.4) and the nodal temperature.

        ``points`` (P, 2), ``triangles`` (C, 3) node indices (any orientation),
        ``cell_angle`` (C,) orientation angle phi per triangle. theta = 0 on the
        left edge (min x), theta = 1 on the right edge (max x), other edges
        insulated; kbar is normalised by the domain area V and width L (dtheta = 1).
        """
        pts = np.ascontiguousarray(points, dtype=np.float64)
        cells = np.ascontiguousarray(triangles, dtype=np.int64)
        phi = np.asarray(cell_angle, dtype=np.float64).reshape(-1)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must have shape (P, 2), got {pts.shape}")
        if cells.ndim != 2 or cells.shape[1] != 3 or cells.shape[0] == 0:
            raise ValueError(f"triangles must have shape (C, 3), got {cells.shape}")
        if phi.size != cells.shape[0]:
            raise ValueError(f"cell_angle has {phi.size} entries for {cells.shape[0]} triangles")
        if cells.min() < 0 or cells.max() >= pts.shape[0]:
            raise ValueError("triangle node index out of range")
        if not (np.isfinite(pts).all() and np.isfinite(phi).all()):
            raise ValueError("points and cell_angle must be finite")

        forms = self._forms
        msh = dmesh.create_mesh(MPI.COMM_SELF, cells, forms.domain, pts)
        V = fem.functionspace(msh, forms.p1)
        W = fem.functionspace(msh, forms.dg0_tensor)

        # Per-cell conductivity on DOLFINx's reordered cells (eq. A.3).
        original_cell = np.asarray(msh.topology.original_cell_index, dtype=np.int64)
        kappa_fn = fem.Function(W)
        tensors = conductivity_tensors(phi[original_cell], self.kappa).reshape(-1, 4)
        kappa_fn.x.array[W.dofmap.list.reshape(-1, 1) * 4 + np.arange(4)] = tensors

        # P1 dof -> caller node: P1 dofs and geometry nodes share the cell-local order.
        input_node = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
        n_dofs = V.dofmap.index_map.size_local
        dof_to_node = np.empty(n_dofs, dtype=np.int64)
        dof_to_node[V.dofmap.list.reshape(-1)] = input_node[msh.geometry.dofmaps[0].reshape(-1)]

        # Dirichlet dofs from the caller's coordinates (left: theta = 0, right: theta = 1).
        x_dof = pts[dof_to_node, 0]
        x_min, x_max = x_dof.min(), x_dof.max()
        length = x_max - x_min
        tol = 1e-8 * max(length, np.ptp(pts[dof_to_node, 1]))
        right = x_dof >= x_max - tol
        fixed = right | (x_dof <= x_min + tol)
        free = np.flatnonzero(~fixed)
        if not length > 0.0 or free.size == 0:
            raise ValueError("mesh has no interior nodes between the left and right edges")

        a = fem.create_form(forms.stiffness, [V, V], msh, {}, {forms.kappa: kappa_fn}, {})
        theta_d = right.astype(np.float64)
        if free.size <= _DENSE_MAX_UNKNOWNS:
            # Dense Cholesky on the reduced system: fastest for ~100-unknown cells.
            A = fem.assemble_matrix(a).to_dense()
            rhs = -(A[free] @ theta_d)
            A_ff = A[np.ix_(free, free)]
            chol = scipy.linalg.cho_factor(A_ff, check_finite=False)
            theta_f = scipy.linalg.cho_solve(chol, rhs, check_finite=False)
        else:
            A = fem.assemble_matrix(a).to_scipy()
            rhs = -(A[free] @ theta_d)
            A_ff = A[free][:, free].tocsc()
            theta_f = scipy.sparse.linalg.splu(A_ff).solve(rhs)
        rhs_norm = np.linalg.norm(rhs)
        residual = float(np.linalg.norm(A_ff @ theta_f - rhs) / rhs_norm) if rhs_norm > 0 else 0.0

        theta = fem.Function(V)
        theta.x.array[:] = theta_d
        theta.x.array[free] = theta_f

        # kbar = -(L / (V dtheta)) int q dV = (L / V) int kappa grad theta dV (eq. A.4).
        coefficients = {forms.kappa: kappa_fn, forms.theta: theta}
        integral = np.array(
            [
                fem.assemble_scalar(fem.create_form(f, [], msh, {}, coefficients, {}))
                for f in forms.flux
            ]
        )
        e1 = pts[cells[:, 1]] - pts[cells[:, 0]]
        e2 = pts[cells[:, 2]] - pts[cells[:, 0]]
        volume = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
        kbar = integral * (length / volume)

        temperature = np.full(pts.shape[0], np.nan)
        temperature[dof_to_node] = theta.x.array
        return HeatSolution(kbar=kbar, temperature=temperature, residual=residual)
