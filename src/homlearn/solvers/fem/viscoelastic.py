"""Viscoelastic matrix with elastic inclusions under uniaxial tension (DOLFINx, small strain).

Frankel et al., reduced-graph GCNN, section 3.3 and appendix A.3: a silicone matrix of
hereditary-integral type with a bulk/shear split (eq. A.9, Prony series; the material is in
:mod:`homlearn.materials.viscoelastic`) and linear elastic glass inclusions, pulled in tension at a
constant nominal strain rate with minimal boundary conditions.

Discretisation (locking-free)
    The matrix is nearly incompressible (K/G = 2,540 instantaneous, 11,000 at equilibrium) and
    the glass is 10^5 times stiffer in shear. Plain P1 displacements lock: the discrete
    divergence constraint of a nearly incompressible phase leaves too few deformation modes, and
    the composite comes out far too stiff (``tests/test_viscoelastic.py`` shows it on the Einstein
    cell). The default is the MINI mixed element (Arnold, Brezzi, Fortin 1984): displacements P1
    enriched with one cubic cell bubble per component, continuous P1 pressure, and the
    nearly-incompressible (penalty) form

        int 2 G dev eps(u) : dev eps(v) + int p div v = (history)
        int q div u - int p q / K                      = (history)

    MINI satisfies the inf-sup condition uniformly in K/G, so the error bound does not grow
    with K/G: no locking, in every phase and for any contrast. The bubbles live inside single
    cells and are condensed out exactly (static condensation with 3 x 3 blocks), so the factorised
    system has only 4 unknowns per vertex (about 18,000 at the paper's 25,000 tetrahedra) and
    costs about as much as P1 elasticity. ``discretisation="p1"`` (displacement-only P1 with the
    same material) is kept for the locking comparison.

Time integration and internal variables
    Exact exponential update of the Prony modes for strain linear in each step (fixed ``dt``):
    the algebraic system matrix uses the constant algorithmic moduli ``G_alg``, ``K_alg`` and is
    factorised once per sample; each step is a right-hand side from the history, one forward and
    back substitution and the update. The internal variable of mode k at any point of the
    matrix is ``h_k = dev eps(w_k)`` (and ``tr eps(w_k)`` for bulk modes), where ``w_k`` is a
    displacement-like vector updated by the same exact recursion as a material point
    (``w_k <- exp(-dt/tau_k) w_k + gamma_k (u_{n+1} - u_n)``, :func:`update_modes`). Because
    ``eps`` is linear in the displacement and the Prony moduli are uniform over the matrix phase,
    this holds at every point, in particular at every quadrature point, exactly: the vectors are
    the quadrature-point internal variables of all points at once, in 3 x 20 numbers per node
    instead of 6 x 20 per quadrature point (with the bubbles' cubic strain an exact quadrature needs
    23 points per cell). :func:`quadrature_strains` evaluates them at the quadrature points of any
    rule (``solve(..., return_state=True)`` keeps the vectors); a test checks them against a
    point-by-point exact update driven by the same strains, to 1e-10.

Boundary conditions (``bc``)
    ``"minimal"`` (default, uniaxial tension): ``u_x = 0`` on x = 0 and ``u_x = rate t L`` on x = L
    (both faces free to slide), ``u_y = u_z = 0`` at the corner (0, 0, 0) and ``u_z = 0`` at
    (0, L, 0): no rigid motion, lateral faces traction-free. ``"affine"``: ``u = rate_tensor x t``
    on the whole boundary (for closed-form checks of homogeneous cells).

Output: the volume-averaged stress ``(1/V) int sigma dV`` after every step (six components,
Voigt order xx, yy, zz, yz, xz, xy). Under minimal BCs its xx component equals the reaction force
on the face x = L per unit area exactly (discrete identity with the test function ``x e_x``);
both are returned. Everything runs on ``MPI.COMM_SELF`` (one mesh per worker process); the forms
are compiled once per process against an abstract mesh.
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass, field

try:  # the PyPI wheel (dolfinx-solver-real) must be imported before dolfinx; conda-forge has none
    import dolfinx_solver  # noqa: F401
except ImportError:
    pass

import basix.ufl
import numpy as np
import scipy.sparse as sp
import ufl
from dolfinx import fem
from dolfinx import mesh as dmesh
from mpi4py import MPI

__all__ = ["DISCRETISATIONS", "Loading", "ViscoelasticSolution", "ViscoelasticSolver", "materials",
           "warm_jit_cache", "VOIGT"]

DISCRETISATIONS = ("mini", "p1")
#: Voigt order of the six stress components
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def materials():
    """``homlearn.materials.viscoelastic`` (numpy only; the package imports torch lazily)."""
    return importlib.import_module("homlearn.materials.viscoelastic")


# --------------------------------------------------------------------------------- forms


@dataclass(frozen=True)
class _Forms:
    domain: ufl.Mesh
    u_element: object
    p_element: object | None
    coefficients: dict  # name -> ufl.Coefficient on DG0: G, K (1/K for mini), chi (phase indicator)
    a_uu: object  # 2 G dev:dev (+ K div div for p1)
    a_pu: object | None  # q div u (mini)
    a_pp: object | None  # (1/K) p q (mini)
    h_uu: object  # 2 chi dev:dev: unit deviatoric stiffness of the matrix phase (shear history)
    h_vol: object  # bulk history: mini (P x U) chi (1/K) q div z; p1 (U x U) chi div z div v
    strain: tuple  # six linear forms int chi eps(v)_ij (Voigt order)
    p_integral: object | None  # int q dx (mini)


_FORMS: dict[str, _Forms] = {}
_FORMS_LOCK = threading.Lock()


def _compiled_forms(discretisation: str) -> _Forms:
    if discretisation not in DISCRETISATIONS:
        raise ValueError(f"discretisation must be one of {DISCRETISATIONS}, got {discretisation!r}")
    with _FORMS_LOCK:
        if discretisation not in _FORMS:
            _FORMS[discretisation] = _compile(discretisation)
        return _FORMS[discretisation]


def _compile(discretisation: str) -> _Forms:
    """Compile (or load from the FFCx disk cache) the forms against an abstract tetrahedral mesh."""
    cell = "tetrahedron"
    domain = ufl.Mesh(basix.ufl.element("Lagrange", cell, 1, shape=(3,)))
    p1 = basix.ufl.element("Lagrange", cell, 1)
    if discretisation == "mini":
        scalar = basix.ufl.enriched_element([p1, basix.ufl.element("bubble", cell, 4)])
        u_el = basix.ufl.blocked_element(scalar, shape=(3,))
    else:
        u_el = basix.ufl.element("Lagrange", cell, 1, shape=(3,))
    U = ufl.FunctionSpace(domain, u_el)
    W = ufl.FunctionSpace(domain, basix.ufl.element("DG", cell, 0))
    co = {k: ufl.Coefficient(W) for k in ("G", "K", "chi")}
    u, v = ufl.TrialFunction(U), ufl.TestFunction(U)

    def eps(w):
        return ufl.sym(ufl.grad(w))

    def dev(e):
        return e - ufl.tr(e) / 3.0 * ufl.Identity(3)

    comm = MPI.COMM_SELF
    a_uu = 2.0 * co["G"] * ufl.inner(dev(eps(u)), dev(eps(v))) * ufl.dx
    h_uu = 2.0 * co["chi"] * ufl.inner(dev(eps(u)), dev(eps(v))) * ufl.dx
    a_pu = a_pp = p_int = p_el = None
    if discretisation == "mini":
        p_el = p1
        P = ufl.FunctionSpace(domain, p1)
        p, q = ufl.TrialFunction(P), ufl.TestFunction(P)
        a_pu = fem.compile_form(comm, q * ufl.div(u) * ufl.dx)
        a_pp = fem.compile_form(comm, co["K"] * p * q * ufl.dx)
        h_vol = fem.compile_form(comm, co["chi"] * co["K"] * q * ufl.div(u) * ufl.dx)
        p_int = fem.compile_form(comm, q * ufl.dx)
    else:
        a_uu = a_uu + co["K"] * ufl.div(u) * ufl.div(v) * ufl.dx
        h_vol = fem.compile_form(comm, co["chi"] * ufl.div(u) * ufl.div(v) * ufl.dx)
    # A P1 strain is constant per cell; a bubble's strain integrates to zero over its cell and is
    # zero at the centroid, so the one-point rule is exact for both.
    one_point = {"quadrature_degree": 1}
    strain = tuple(fem.compile_form(comm, co["chi"] * eps(v)[i, j] * ufl.dx(metadata=one_point))
                   for i, j in VOIGT)
    return _Forms(domain=domain, u_element=u_el, p_element=p_el, coefficients=co,
                  a_uu=fem.compile_form(comm, a_uu), a_pu=a_pu, a_pp=a_pp,
                  h_uu=fem.compile_form(comm, h_uu), h_vol=h_vol, strain=strain, p_integral=p_int)


def warm_jit_cache(discretisations=DISCRETISATIONS) -> None:
    """Compile the forms once (fills the FFCx disk cache before Dask workers start)."""
    for d in discretisations:
        _compiled_forms(d)


# --------------------------------------------------------------------------------- linear algebra


def _assemble(form) -> sp.csr_matrix:
    """Assemble a bilinear form into a scipy CSR matrix (no boundary conditions).

    Through PETSc: DOLFINx's own CSR matrix refuses blocks of unequal block size (P x U)."""
    import dolfinx.fem.petsc as fem_petsc

    mat = fem_petsc.assemble_matrix(form)
    mat.assemble()
    try:
        indptr, indices, data = mat.getValuesCSR()
        return sp.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=mat.getSize())
    finally:
        mat.destroy()


def _assemble_vector(form) -> np.ndarray:
    return np.array(fem.assemble_vector(form).array, copy=True)


class _Factor:
    """LU factors of a sparse matrix: MUMPS (METIS ordering) through PETSc, else SuperLU."""

    def __init__(self, matrix: sp.csr_matrix):
        matrix = sp.csr_matrix(matrix)
        matrix.sort_indices()
        self.n = matrix.shape[0]
        try:
            from petsc4py import PETSc
            mumps = PETSc.Sys.hasExternalPackage("mumps")
        except ImportError:  # pragma: no cover - the DOLFINx builds used here all have petsc4py
            mumps = False
        if mumps:
            self.kind = "mumps"
            idx = PETSc.IntType
            self._mat = PETSc.Mat().createAIJ(
                size=matrix.shape, csr=(matrix.indptr.astype(idx), matrix.indices.astype(idx), matrix.data),
                comm=MPI.COMM_SELF)
            self._mat.assemble()
            ksp = PETSc.KSP().create(MPI.COMM_SELF)
            ksp.setOperators(self._mat)
            ksp.setType("preonly")
            pc = ksp.getPC()
            pc.setType("lu")
            pc.setFactorSolverType("mumps")
            pc.setFactorSetUpSolverType()
            factor = pc.getFactorMatrix()
            factor.setMumpsIcntl(7, 5)  # METIS ordering
            factor.setMumpsIcntl(14, 60)  # workspace for delayed pivots (indefinite saddle point)
            ksp.setUp()
            if factor.getMumpsInfog(1) != 0:
                raise RuntimeError(f"MUMPS factorisation failed (INFOG(1) = {factor.getMumpsInfog(1)})")
            self._ksp = ksp
            self._b = PETSc.Vec().createSeq(self.n, comm=MPI.COMM_SELF)
            self._x = PETSc.Vec().createSeq(self.n, comm=MPI.COMM_SELF)
        else:  # pragma: no cover
            import scipy.sparse.linalg as spla

            self.kind = "superlu"
            self._lu = spla.splu(matrix.tocsc(), permc_spec="COLAMD")  # MMD fills 5x more here

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        if self.kind == "mumps":
            self._b.array[:] = rhs
            self._ksp.solve(self._b, self._x)
            return np.array(self._x.array, copy=True)
        return self._lu.solve(rhs)  # pragma: no cover

    def destroy(self) -> None:
        if self.kind == "mumps":
            for obj in (self._ksp, self._mat, self._b, self._x):
                obj.destroy()


class _Condensed:
    """Static condensation of cell-interior unknowns (the bubbles) with 3 x 3 blocks per cell,
    and the Dirichlet partition of the remaining unknowns; factorises once, solves many times."""

    def __init__(self, A: sp.csr_matrix, interior: np.ndarray, fixed: np.ndarray):
        n = A.shape[0]
        keep = np.ones(n, dtype=bool)
        keep[interior] = False
        self.r = np.flatnonzero(keep)  # retained unknowns (vertex displacements, pressures)
        self.b = np.asarray(interior, dtype=np.int64)
        pos = np.full(n, -1, dtype=np.int64)
        pos[self.r] = np.arange(self.r.size)
        if np.any(pos[fixed] < 0):
            raise ValueError("a Dirichlet unknown is a cell-interior (bubble) unknown")
        is_fixed = np.zeros(self.r.size, dtype=bool)
        is_fixed[pos[fixed]] = True
        self.D, self.F = np.flatnonzero(is_fixed), np.flatnonzero(~is_fixed)
        self.fixed_pos = pos[fixed]  # position of each given fixed unknown within r
        A_rr = A[self.r][:, self.r]
        if self.b.size:
            A_bb = A[self.b][:, self.b].tobsr(blocksize=(3, 3))
            nb = self.b.size // 3
            if A_bb.indices.size != nb or np.any(A_bb.indices != np.arange(nb)):
                raise ValueError("interior unknowns are not block diagonal in 3 x 3 blocks")
            self.M_inv = sp.bsr_matrix((np.linalg.inv(A_bb.data), np.arange(nb), np.arange(nb + 1)),
                                       shape=A_bb.shape).tocsr()
            self.A_rb = A[self.r][:, self.b].tocsr()
            self.A_br = A[self.b][:, self.r].tocsr()
            S = (A_rr - self.A_rb @ (self.M_inv @ self.A_br)).tocsr()
        else:
            S = A_rr.tocsr()
        self.S_FF = S[self.F][:, self.F].tocsr()
        self.S_FD = S[self.F][:, self.D].tocsr()
        self.factor = _Factor(self.S_FF)
        self.residual = 0.0

    def solve(self, f: np.ndarray, x_fixed: np.ndarray) -> np.ndarray:
        """Solve A x = f with x[fixed] = x_fixed (given in the order of ``fixed``)."""
        x = np.zeros_like(f)
        g = f[self.r]
        if self.b.size:
            g = g - self.A_rb @ (self.M_inv @ f[self.b])
        x_r = np.zeros(self.r.size)
        x_r[self.fixed_pos] = x_fixed
        rhs = g[self.F] - self.S_FD @ x_r[self.D]
        x_r[self.F] = self.factor.solve(rhs)
        norm = np.linalg.norm(rhs)
        if norm > 0:
            self.residual = max(self.residual, float(np.linalg.norm(self.S_FF @ x_r[self.F] - rhs) / norm))
        x[self.r] = x_r
        if self.b.size:
            x[self.b] = self.M_inv @ (f[self.b] - self.A_br @ x_r)
        return x

    def destroy(self):
        self.factor.destroy()


# --------------------------------------------------------------------------------- problem


@dataclass(frozen=True)
class Loading:
    """Tension at a constant nominal strain rate (paper: 6000/s up to 50% strain), fixed step."""

    strain_rate: float = 6000.0
    max_strain: float = 0.5
    n_steps: int = 100

    def __post_init__(self):
        if not (self.strain_rate > 0 and self.max_strain > 0 and self.n_steps >= 1):
            raise ValueError(f"need positive strain rate, maximum strain and steps, got {self}")

    @property
    def duration(self) -> float:
        return self.max_strain / self.strain_rate

    @property
    def dt(self) -> float:
        return self.duration / self.n_steps


@dataclass
class ViscoelasticSolution:
    time: np.ndarray  # (n+1,) s
    strain: np.ndarray  # (n+1,) nominal strain, strain_rate * t
    mean_stress: np.ndarray  # (n+1, 6) volume-averaged stress (MPa), Voigt xx yy zz yz xz xy
    reaction_stress: np.ndarray  # (n+1,) reaction force on x = L over the face area (minimal BCs; NaN else)
    volume: float  # mesh volume
    n_dofs: int  # unknowns of the discretisation (before condensation and boundary conditions)
    n_factorised: int  # rows of the factorised system
    residual: float  # largest relative residual of the factorised solves
    timings: dict = field(default_factory=dict)
    state: dict | None = None  # with return_state: last displacement, mode vectors, quadrature values


class ViscoelasticSolver:
    """Compiles the forms once per process; :meth:`solve` runs one sample (mesh) at a time.

    ``matrix``: a :class:`~homlearn.materials.viscoelastic.ViscoelasticMaterial` (phase 0);
    ``inclusion``: ``(E, nu)`` of the linear elastic inclusions (phase 1; paper: glass, 60 GPa, 0.33).
    Moduli in MPa, times in s, lengths in the mesh's unit.
    """

    def __init__(self, matrix, inclusion: tuple[float, float] = (60000.0, 0.33), discretisation: str = "mini"):
        self.matrix = matrix
        self.inclusion_KG = materials().isotropic_from_young_poisson(*inclusion)
        self.discretisation = discretisation
        self._forms = _compiled_forms(discretisation)

    def solve(self, points: np.ndarray, tets: np.ndarray, cell_phase: np.ndarray,
              loading: Loading = Loading(), bc: str = "minimal", strain_rate_tensor: np.ndarray | None = None,
              return_state: bool = False, record_history: bool = False) -> ViscoelasticSolution:
        """Run the whole loading history on one mesh.

        ``points`` (P, 3), ``tets`` (C, 4), ``cell_phase`` (C,): 0 matrix, 1 inclusion. ``bc``:
        ``"minimal"`` (uniaxial tension along x at ``loading.strain_rate``) or ``"affine"``
        (``u = strain_rate_tensor x t`` on the whole boundary). ``return_state``: keep the final
        displacement and mode vectors (and the mesh and space, for :func:`quadrature_strains`);
        ``record_history``: also every step's displacement vector (small meshes only).
        """
        timings = {}
        t0 = time.perf_counter()
        pts = np.ascontiguousarray(points, dtype=np.float64)
        cells = np.ascontiguousarray(tets, dtype=np.int64)
        phase = np.asarray(cell_phase).reshape(-1)
        if pts.ndim != 2 or pts.shape[1] != 3 or cells.ndim != 2 or cells.shape[1] != 4 or not len(cells):
            raise ValueError(f"need points (P, 3) and tets (C, 4), got {pts.shape}, {cells.shape}")
        if phase.size != cells.shape[0] or not np.isin(phase, (0, 1)).all():
            raise ValueError("cell_phase needs one 0 (matrix) or 1 (inclusion) per tetrahedron")
        if bc not in ("minimal", "affine"):
            raise ValueError(f"bc must be 'minimal' or 'affine', got {bc!r}")
        mat = self.matrix
        dt = loading.dt
        K_alg, G_alg = mat.algorithmic_moduli(dt)
        Kg, Gg = self.inclusion_KG
        forms = self._forms

        msh = dmesh.create_mesh(MPI.COMM_SELF, cells, forms.domain, pts)
        U = fem.functionspace(msh, forms.u_element)
        P = fem.functionspace(msh, forms.p_element) if forms.p_element is not None else None
        W = fem.functionspace(msh, ("DG", 0))
        is_m = phase[np.asarray(msh.topology.original_cell_index, dtype=np.int64)] == 0

        def dg0(values):
            f = fem.Function(W)
            f.x.array[W.dofmap.list.reshape(-1)] = values
            return f

        K_cell = np.where(is_m, K_alg, Kg)
        coeffs = {"G": dg0(np.where(is_m, G_alg, Gg)), "K": dg0(1.0 / K_cell if P is not None else K_cell),
                  "chi": dg0(is_m.astype(np.float64))}
        chi_g = dg0((~is_m).astype(np.float64))
        co = forms.coefficients

        def bind(compiled, spaces, values=coeffs):
            return fem.create_form(compiled, spaces, msh, {}, {co[k]: values[k] for k in co}, {})

        A = _assemble(bind(forms.a_uu, [U, U]))
        n_u = A.shape[0]
        H_uu = _assemble(bind(forms.h_uu, [U, U]))
        if P is not None:
            B = _assemble(bind(forms.a_pu, [P, U]))
            C = _assemble(bind(forms.a_pp, [P, P]))
            A = sp.bmat([[A, B.T], [B, -C]], format="csr")
            p_integral = _assemble_vector(bind(forms.p_integral, [P]))
        n = A.shape[0]
        H_vol = _assemble(bind(forms.h_vol, [P, U] if P is not None else [U, U])) if mat.bulk.n_terms else None
        S_m = np.array([_assemble_vector(bind(f, [U])) for f in forms.strain])  # (6, n_u) int_matrix eps
        S_g = np.array([_assemble_vector(bind(f, [U], {**coeffs, "chi": chi_g})) for f in forms.strain])
        timings["assemble"] = time.perf_counter() - t0

        # node coordinates (vertex nodes follow the geometry's cell-local vertex order), bubbles
        geo = msh.geometry
        u_nodes = U.dofmap.list
        node_x = np.full((n_u // 3, 3), np.nan)
        node_x[u_nodes[:, :4].reshape(-1)] = geo.x[geo.dofmaps[0][:, :4].reshape(-1)]
        bubble_nodes = u_nodes[:, 4] if u_nodes.shape[1] > 4 else np.zeros(0, dtype=np.int64)
        interior = (3 * bubble_nodes[:, None] + np.arange(3)).reshape(-1)

        # Dirichlet unknowns and their values per unit time (BC values grow linearly in t)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        length = hi - lo
        tol = 1e-8 * float(length.max())
        vertex = np.flatnonzero(~np.isnan(node_x[:, 0]))
        xv = node_x[vertex]
        if bc == "minimal":
            left = vertex[np.abs(xv[:, 0] - lo[0]) <= tol]
            right = vertex[np.abs(xv[:, 0] - hi[0]) <= tol]
            origin = _closest(node_x, vertex, lo, tol, "corner (x0, y0, z0)")
            corner_y = _closest(node_x, vertex, np.array([lo[0], hi[1], lo[2]]), tol, "corner (x0, y1, z0)")
            fixed = np.concatenate([3 * left, 3 * right, [3 * origin + 1, 3 * origin + 2, 3 * corner_y + 2]])
            rate = np.concatenate([np.zeros(left.size), np.full(right.size, loading.strain_rate * length[0]),
                                   np.zeros(3)])
            right_dofs = 3 * right
        else:
            if strain_rate_tensor is None:
                raise ValueError("bc='affine' needs strain_rate_tensor")
            L = np.asarray(strain_rate_tensor, dtype=np.float64).reshape(3, 3)
            on_boundary = np.any((np.abs(xv - lo) <= tol) | (np.abs(xv - hi) <= tol), axis=1)
            bnodes = vertex[on_boundary]
            fixed = (3 * bnodes[:, None] + np.arange(3)).reshape(-1)
            rate = (node_x[bnodes] @ L.T).reshape(-1)
            right_dofs = np.zeros(0, dtype=np.int64)

        t1 = time.perf_counter()
        system = _Condensed(A, interior, fixed)
        timings["factorise"] = time.perf_counter() - t1

        # time stepping
        t2 = time.perf_counter()
        shear, bulk = mat.shear, mat.bulk
        update_modes = materials().update_modes
        dG, gG = shear.step_factors(dt) if shear.n_terms else (np.zeros(0), np.zeros(0))
        dK, gK = bulk.step_factors(dt) if bulk.n_terms else (np.zeros(0), np.zeros(0))
        Gk, Kk = mat.shear_moduli, mat.bulk_moduli
        same_times = bulk.n_terms and shear.n_terms and np.array_equal(bulk.tau, shear.tau)
        w_G = np.zeros((shear.n_terms, n_u))
        w_K = w_G if same_times else np.zeros((bulk.n_terms, n_u))
        x = np.zeros(n)
        u = x[:n_u]
        steps = loading.n_steps
        t = dt * np.arange(steps + 1)
        mean = np.zeros((steps + 1, 6))
        reaction = np.full(steps + 1, np.nan)
        history = [u.copy()] if record_history else None
        volume = float(np.sum(_tet_volumes(pts, cells)))
        A_right = A[right_dofs] if right_dofs.size else None
        H_right = H_uu[right_dofs] if right_dofs.size else None
        V_right = H_vol[right_dofs] if right_dofs.size and H_vol is not None and P is None else None
        for k in range(1, steps + 1):
            f = np.zeros(n)
            z_G = None
            if shear.n_terms:  # shear history: z_G = sum_k G_k (d_k w_k) - (sum_k G_k gamma_k) u_n
                z_G = (Gk * dG) @ w_G - float(Gk @ gG) * u
                f[:n_u] -= H_uu @ z_G
            z_K = None
            if bulk.n_terms:
                z_K = (Kk * dK) @ w_K - float(Kk @ gK) * u
                if P is not None:
                    f[n_u:] -= H_vol @ z_K
                else:
                    f[:n_u] -= H_vol @ z_K
            x_new = system.solve(f, rate * t[k])
            if right_dofs.size:  # reaction on x = L: the residual of the constrained rows
                r = A_right @ x_new
                if z_G is not None:
                    r += H_right @ z_G
                if V_right is not None and z_K is not None:
                    r += V_right @ z_K
                reaction[k] = float(r.sum()) / (length[1] * length[2])
            du = x_new[:n_u] - u
            if shear.n_terms:
                update_modes(w_G, du, dG, gG)
            if bulk.n_terms and not same_times:
                update_modes(w_K, du, dK, gK)
            x = x_new
            u = x[:n_u]
            if history is not None:
                history.append(u.copy())
            # volume average of the stress after the update
            e_m = S_m @ (mat.G_inf * u + (Gk @ w_G if shear.n_terms else 0.0))
            e_g = S_g @ u
            s = 2.0 * _dev6(e_m) + 2.0 * Gg * _dev6(e_g)
            if P is not None:
                s[:3] += float(p_integral @ x[n_u:])
            else:
                vol_m = mat.K_inf * u + (Kk @ w_K if bulk.n_terms else 0.0)
                s[:3] += float(np.sum(S_m[:3] @ vol_m)) + Kg * float(np.sum(e_g[:3]))
            mean[k] = s / volume
        timings["steps"] = time.perf_counter() - t2
        timings["total"] = time.perf_counter() - t0
        state = None
        if return_state or record_history:
            state = {"u": u, "w_shear": w_G, "msh": msh, "U": U, "is_matrix": is_m,
                     "u_history": np.array(history) if history is not None else None}
        residual = system.residual
        n_factorised = system.F.size
        system.destroy()
        return ViscoelasticSolution(time=t, strain=loading.strain_rate * t, mean_stress=mean,
                                    reaction_stress=reaction, volume=volume, n_dofs=n,
                                    n_factorised=int(n_factorised), residual=residual, timings=timings,
                                    state=state)


def _dev6(e: np.ndarray) -> np.ndarray:
    """Deviator of a Voigt 6-vector of (integrated) strain, tensor components."""
    d = np.array(e, dtype=np.float64, copy=True)
    d[:3] -= d[:3].sum() / 3.0
    return d


def _closest(node_x, vertex, target, tol, what) -> int:
    d = np.linalg.norm(node_x[vertex] - target, axis=1)
    i = int(np.argmin(d))
    if d[i] > tol:
        raise ValueError(f"the mesh has no vertex at the {what} {target}")
    return int(vertex[i])


def _tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Unsigned tetrahedron volumes."""
    p = points[tets]
    return np.abs(np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])) / 6.0


def quadrature_strains(state: dict, vectors: np.ndarray, degree: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Strain tensors of displacement-like ``vectors`` (V, n_u) at the quadrature points of a
    ``degree`` rule in every cell: returns ``(strain (V, C, Q, 3, 3), is_matrix (C,))``.

    Applied to the mode vectors ``w_k`` this gives the internal variables ``h_k = dev eps(w_k)`` at the
    quadrature points (tests compare them with a point-by-point update). Compiles an expression
    at run time: for checks, not for the dataset stages.
    """
    import basix

    msh, U = state["msh"], state["U"]
    pts, _ = basix.make_quadrature(basix.CellType.tetrahedron, degree)
    fn = fem.Function(U)
    expr = fem.Expression(ufl.sym(ufl.grad(fn)), pts)
    cells = np.arange(msh.topology.index_map(3).size_local, dtype=np.int32)
    out = []
    for vec in np.atleast_2d(vectors):
        fn.x.array[:] = vec
        out.append(expr.eval(msh, cells).reshape(cells.size, pts.shape[0], 3, 3))
    return np.array(out), state["is_matrix"]
