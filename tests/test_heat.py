"""Tests of the DOLFINx heat-conduction solver (paper section 3.1, appendix A.1).

Every check is an exact statement about the continuous problem or about its
conforming P1 discretisation; tolerances are stated next to each assertion.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from scipy.spatial import Delaunay

import dolfinx_solver  # noqa: F401  (must precede dolfinx)
from homlearn.solvers.fem import heat
from homlearn.solvers.fem.heat import (
    HeatConduction2D,
    conductivity_bounds,
    conductivity_tensors,
    mixture_rules,
)

K1, K2 = 1.0, 0.25
EXACT = 1e-8  # exact-in-P1 results (laminates, homogeneous axis-aligned crystals)
ROUNDOFF = 1e-10  # algebraic identities / comparisons with an independent solve


# --------------------------------------------------------------------------
# Mesh helpers (the caller's node/cell order is deliberately scrambled)
# --------------------------------------------------------------------------


def grid_mesh(xs, ys):
    """Tensor-product grid on the given lines; each quad split along (x0,y0)-(x1,y1)."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    nx, ny = xs.size, ys.size
    X, Y = np.meshgrid(xs, ys)  # index [j, i]
    points = np.column_stack([X.ravel(), Y.ravel()])
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    triangles = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
    return points, triangles


def scramble(points, triangles, rng):
    """Randomly permute nodes and cells and flip the orientation of half the cells."""
    perm = rng.permutation(len(points))
    new_index = np.empty_like(perm)
    new_index[perm] = np.arange(len(points))
    tri = new_index[triangles]
    flip = rng.random(len(tri)) < 0.5
    tri[flip] = tri[flip][:, ::-1]
    cell_perm = rng.permutation(len(tri))
    return points[perm], tri[cell_perm], cell_perm


def random_mesh(rng, n=11, jitter=0.3):
    """Delaunay mesh of a jittered n x n grid of the unit square (~2 n^2 triangles)."""
    t = np.linspace(0.0, 1.0, n + 1)
    X, Y = np.meshgrid(t, t)
    h = 1.0 / n
    interior = (X > 0) & (X < 1) & (Y > 0) & (Y < 1)
    on_x = (X > 0) & (X < 1)
    on_y = (Y > 0) & (Y < 1)
    X = X + jitter * h * rng.uniform(-1, 1, X.shape) * on_x
    Y = Y + jitter * h * rng.uniform(-1, 1, Y.shape) * on_y
    points = np.column_stack([X.ravel(), Y.ravel()])
    assert interior.sum() == (n - 1) ** 2
    triangles = Delaunay(points).simplices.astype(np.int64)
    areas = triangle_areas(points, triangles)
    assert areas.min() > 1e-8 and np.isclose(areas.sum(), 1.0, atol=1e-12)
    assert np.unique(triangles).size == len(points)
    return points, triangles


def triangle_areas(points, triangles):
    p = points[triangles]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def grains_by_seeds(points, triangles, seeds, angles):
    """Voronoi-like polycrystal: each cell takes the angle of the seed nearest its centroid."""
    centroid = points[triangles].mean(axis=1)
    nearest = np.argmin(((centroid[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
    return angles[nearest]


def reference_p1(points, triangles, cell_angle, kappa=(K1, K2)):
    """Independent numpy/scipy P1 solve of the same problem: (kbar, nodal theta)."""
    p = points[triangles]
    J = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)  # columns: edge vectors
    G = np.linalg.inv(J).transpose(0, 2, 1) @ np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    area = 0.5 * np.abs(np.linalg.det(J))
    K = conductivity_tensors(cell_angle, kappa)
    Ke = area[:, None, None] * np.einsum("cki,ckl,clj->cij", G, K, G)
    n = len(points)
    rows = np.repeat(triangles, 3, axis=1).ravel()
    cols = np.tile(triangles, (1, 3)).ravel()
    A = scipy.sparse.coo_matrix((Ke.ravel(), (rows, cols)), shape=(n, n)).tocsr()
    x = points[:, 0]
    left, right = np.isclose(x, 0.0, atol=1e-12), np.isclose(x, 1.0, atol=1e-12)
    free = ~(left | right)
    theta = right.astype(float)
    theta[free] = scipy.sparse.linalg.spsolve(
        A[free][:, free].tocsc(), -(A[free] @ theta)
    )
    grad = np.einsum("cij,cj->ci", G, theta[triangles])
    kbar = np.einsum("c,cij,cj->i", area, K, grad)
    return kbar, theta


def boundary_integral(points, values, y_line):
    """Exact integral of a P1 trace along the boundary line y = y_line (trapezoid rule)."""
    on = np.isclose(points[:, 1], y_line, atol=1e-12)
    order = np.argsort(points[on, 0])
    return np.trapezoid(values[on][order], points[on, 0][order])


@pytest.fixture(scope="module")
def solver():
    return HeatConduction2D((K1, K2))


# --------------------------------------------------------------------------
# Closed-form material functions
# --------------------------------------------------------------------------


def test_conductivity_tensors_eigenstructure():
    phi = np.array([0.0, 0.3, np.pi / 4, np.pi / 2, 2.5, -1.1])
    K = conductivity_tensors(phi, (K1, K2))
    assert K.shape == (6, 2, 2)
    np.testing.assert_allclose(K, K.transpose(0, 2, 1), atol=0)  # symmetric
    d = np.column_stack([np.cos(phi), np.sin(phi)])  # principal axis of k1
    n = np.column_stack([-np.sin(phi), np.cos(phi)])
    np.testing.assert_allclose(np.einsum("cij,cj->ci", K, d), K1 * d, atol=1e-15)
    np.testing.assert_allclose(np.einsum("cij,cj->ci", K, n), K2 * n, atol=1e-15)


def test_mixture_rules_and_bounds_closed_form():
    # Single orientation: every rule reduces to the crystal itself (eq. 6 = eq. 7 = kappa_xx).
    phi = 0.7
    K = conductivity_tensors([phi])[0]
    eq6, eq7 = mixture_rules([2.0, 3.0], [phi, phi])
    lo, hi = conductivity_bounds([2.0, 3.0], [phi, phi])
    assert eq6 == pytest.approx(K[0, 0], abs=1e-14)
    assert eq7 == pytest.approx(K[0, 0], abs=1e-14)
    assert hi == pytest.approx(K[0, 0], abs=1e-14)
    assert lo == pytest.approx(1.0 / np.linalg.inv(K)[0, 0], abs=1e-14)  # = det K / K_yy
    # Two axis-aligned phases 30/70: arithmetic and harmonic means.
    eq6, eq7 = mixture_rules([0.3, 0.7], [0.0, np.pi / 2])
    assert eq6 == pytest.approx(0.3 * K1 + 0.7 * K2, abs=1e-14)
    assert eq7 == pytest.approx(1.0 / (0.3 / K1 + 0.7 / K2), abs=1e-14)
    with pytest.raises(ValueError):
        mixture_rules([1.0], [0.0, 1.0])


# --------------------------------------------------------------------------
# Homogeneous crystals
# --------------------------------------------------------------------------


@pytest.mark.parametrize("phi, k_expected", [(0.0, K1), (np.pi / 2, K2)])
def test_axis_aligned_single_grain_is_exact(solver, phi, k_expected):
    rng = np.random.default_rng(1)
    points, triangles, _ = scramble(*random_mesh(rng), rng)
    sol = solver.solve(points, triangles, np.full(len(triangles), phi))
    # theta = x is the exact solution and lies in P1.
    assert sol.kbar.shape == (2,)
    assert sol.kbar[0] == pytest.approx(k_expected, abs=EXACT)
    assert abs(sol.kbar[1]) < EXACT
    assert sol.residual < ROUNDOFF


def test_temperature_is_returned_in_caller_node_order(solver):
    rng = np.random.default_rng(2)
    points, triangles, _ = scramble(*random_mesh(rng), rng)
    sol = solver.solve(points, triangles, np.zeros(len(triangles)))
    assert sol.temperature.shape == (len(points),)
    np.testing.assert_allclose(sol.temperature, points[:, 0], atol=ROUNDOFF)  # theta = x


def test_unused_nodes_are_nan(solver):
    points, triangles = grid_mesh(np.linspace(0, 1, 5), np.linspace(0, 1, 5))
    points = np.vstack([points[:7], [[0.5, 0.5001]], points[7:]])  # orphan node at index 7
    triangles = np.where(triangles >= 7, triangles + 1, triangles)
    sol = solver.solve(points, triangles, np.zeros(len(triangles)))
    assert np.isnan(sol.temperature[7])
    used = np.ones(len(points), bool)
    used[7] = False
    np.testing.assert_allclose(sol.temperature[used], points[used, 0], atol=ROUNDOFF)


@pytest.mark.parametrize("phi", [np.pi / 4, np.pi / 3, -0.3])
def test_rotated_single_crystal_exact_identities(solver, phi):
    """theta = x is NOT the solution (top/bottom normal flux would be -kappa_yx != 0).

    Exact for the P1 solution: <d theta/dx> = 1 and <d theta/dy> = g with
    g = int_top theta dx - int_bottom theta dx (divergence theorem), hence
    kbar_x = K_xx + K_xy g and kbar_y = K_yx + K_yy g; plus the energy bounds.
    """
    rng = np.random.default_rng(3)
    points, triangles, _ = scramble(*random_mesh(rng), rng)
    sol = solver.solve(points, triangles, np.full(len(triangles), phi))
    K = conductivity_tensors([phi])[0]
    g = boundary_integral(points, sol.temperature, 1.0) - boundary_integral(
        points, sol.temperature, 0.0
    )
    assert sol.kbar[0] == pytest.approx(K[0, 0] + K[0, 1] * g, abs=ROUNDOFF)
    assert sol.kbar[1] == pytest.approx(K[1, 0] + K[1, 1] * g, abs=ROUNDOFF)
    lo, hi = 1.0 / np.linalg.inv(K)[0, 0], K[0, 0]
    assert lo < sol.kbar[0] < hi
    # The Galerkin solution differs from x because a(x, v) != 0 for top-edge hat functions.
    assert np.abs(sol.temperature - points[:, 0]).max() > 1e-6


def test_discrete_symmetries(solver):
    """Mirror y -> 1-y with phi -> -phi: kbar_x same, kbar_y flips; point reflection: kbar same."""
    rng = np.random.default_rng(4)
    points, triangles = random_mesh(rng)
    seeds = rng.random((5, 2))
    phi = grains_by_seeds(points, triangles, seeds, rng.uniform(0, np.pi, 5))
    base = solver.solve(points, triangles, phi)

    mirrored = points.copy()
    mirrored[:, 1] = 1.0 - mirrored[:, 1]
    sol_m = solver.solve(mirrored, triangles, -phi)
    assert sol_m.kbar[0] == pytest.approx(base.kbar[0], abs=ROUNDOFF)
    assert sol_m.kbar[1] == pytest.approx(-base.kbar[1], abs=ROUNDOFF)
    np.testing.assert_allclose(sol_m.temperature, base.temperature, atol=ROUNDOFF)

    reflected = 1.0 - points  # kappa(phi) is invariant under R(pi); theta -> 1 - theta
    sol_r = solver.solve(reflected, triangles, phi)
    np.testing.assert_allclose(sol_r.kbar, base.kbar, atol=ROUNDOFF)
    np.testing.assert_allclose(sol_r.temperature, 1.0 - base.temperature, atol=ROUNDOFF)


def test_kbar_is_intensive_under_rescaling_and_translation(solver):
    """eq. A.4 normalises by V and L: a scaled/shifted copy of the cell has the same kbar."""
    rng = np.random.default_rng(9)
    points, triangles = random_mesh(rng)
    phi = grains_by_seeds(points, triangles, rng.random((4, 2)), rng.uniform(0, np.pi, 4))
    base = solver.solve(points, triangles, phi)
    moved = solver.solve(2.5 * points + np.array([-1.0, 3.0]), triangles, phi)
    np.testing.assert_allclose(moved.kbar, base.kbar, atol=ROUNDOFF)
    np.testing.assert_allclose(moved.temperature, base.temperature, atol=ROUNDOFF)
    # Non-square box [0, 2] x [0, 0.5], homogeneous phi = 0: kbar_x = k1 exactly.
    stretched = points * np.array([2.0, 0.5])
    sol = solver.solve(stretched, triangles, np.zeros(len(triangles)))
    assert sol.kbar[0] == pytest.approx(K1, abs=EXACT)
    np.testing.assert_allclose(sol.temperature, stretched[:, 0] / 2.0, atol=ROUNDOFF)


@pytest.mark.parametrize("seed", [5, 6])
def test_matches_independent_p1_solve_on_polycrystal(solver, seed):
    """Scrambled node/cell order: per-cell angles and nodal temperatures must map exactly."""
    rng = np.random.default_rng(seed)
    points, triangles = random_mesh(rng)
    phi = grains_by_seeds(points, triangles, rng.random((6, 2)), rng.uniform(0, np.pi, 6))
    points, triangles, cell_perm = scramble(points, triangles, rng)
    phi = phi[cell_perm]
    sol = solver.solve(points, triangles, phi)
    kbar_ref, theta_ref = reference_p1(points, triangles, phi)
    np.testing.assert_allclose(sol.temperature, theta_ref, atol=ROUNDOFF)
    np.testing.assert_allclose(sol.kbar, kbar_ref, atol=ROUNDOFF)
    assert sol.residual < ROUNDOFF
    # Energy identity of the Galerkin solution: kbar_x = int grad theta . kappa grad theta.
    p = points[triangles]
    J = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)
    G = np.linalg.inv(J).transpose(0, 2, 1) @ np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    grad = np.einsum("cij,cj->ci", G, sol.temperature[triangles])
    energy = np.einsum(
        "c,ci,cij,cj->", triangle_areas(points, triangles), grad, conductivity_tensors(phi), grad
    )
    assert sol.kbar[0] == pytest.approx(energy, abs=ROUNDOFF)


# --------------------------------------------------------------------------
# Laminates (exact in P1 when the interfaces are element edges)
# --------------------------------------------------------------------------

BREAKS = np.array([0.0, 0.2, 0.45, 0.7, 1.0])
LAYER_PHI = np.array([0.0, np.pi / 2, 0.0, np.pi / 2])


def _layered_lines(breaks, per_layer=3):
    return np.unique(
        np.concatenate([np.linspace(a, b, per_layer + 1) for a, b in zip(breaks[:-1], breaks[1:])])
    )


def _layer_of(coord, breaks):
    return np.clip(np.searchsorted(breaks, coord, side="right") - 1, 0, len(breaks) - 2)


def test_laminate_parallel_to_flow_is_arithmetic_mean(solver):
    rng = np.random.default_rng(7)
    points, triangles = grid_mesh(np.linspace(0, 1, 7), _layered_lines(BREAKS))
    centroid_y = points[triangles].mean(axis=1)[:, 1]
    phi = LAYER_PHI[_layer_of(centroid_y, BREAKS)]
    points, triangles, cell_perm = scramble(points, triangles, rng)
    phi = phi[cell_perm]
    sol = solver.solve(points, triangles, phi)
    frac = np.diff(BREAKS)
    k_layer = np.where(LAYER_PHI == 0.0, K1, K2)
    expected = float(frac @ k_layer)
    assert sol.kbar[0] == pytest.approx(expected, abs=EXACT)
    assert abs(sol.kbar[1]) < EXACT
    # Horizontal interfaces realise the homogeneous-gradient rule (eq. 6) = upper bound.
    eq6, _ = mixture_rules(triangle_areas(points, triangles), phi)
    assert eq6 == pytest.approx(expected, abs=1e-12)


def test_laminate_across_flow_is_harmonic_mean(solver):
    rng = np.random.default_rng(8)
    points, triangles = grid_mesh(_layered_lines(BREAKS), np.linspace(0, 1, 7))
    centroid_x = points[triangles].mean(axis=1)[:, 0]
    phi = LAYER_PHI[_layer_of(centroid_x, BREAKS)]
    points, triangles, cell_perm = scramble(points, triangles, rng)
    phi = phi[cell_perm]
    sol = solver.solve(points, triangles, phi)
    frac = np.diff(BREAKS)
    k_layer = np.where(LAYER_PHI == 0.0, K1, K2)
    expected = 1.0 / float(frac @ (1.0 / k_layer))
    assert sol.kbar[0] == pytest.approx(expected, abs=EXACT)
    assert abs(sol.kbar[1]) < EXACT
    # Vertical interfaces realise the homogeneous-flux rule (eq. 7) = lower bound here.
    areas = triangle_areas(points, triangles)
    _, eq7 = mixture_rules(areas, phi)
    lo, _ = conductivity_bounds(areas, phi)
    assert eq7 == pytest.approx(expected, abs=1e-12)
    assert lo == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------
# Bounds, mixture rules, refinement
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_kbar_between_bounds_on_random_polycrystals(solver, seed):
    rng = np.random.default_rng(seed)
    points, triangles = random_mesh(rng)
    n_grains = 3 + seed % 4
    phi = grains_by_seeds(
        points, triangles, rng.random((n_grains, 2)), rng.uniform(0, np.pi, n_grains)
    )
    sol = solver.solve(points, triangles, phi)
    areas = triangle_areas(points, triangles)
    lo, hi = conductivity_bounds(areas, phi)
    eq6, eq7 = mixture_rules(areas, phi)
    assert lo <= sol.kbar[0] <= hi  # energy principles, exact for conforming P1
    assert eq6 == pytest.approx(hi, abs=1e-14)  # eq. 6 xx IS the upper bound
    assert lo - 1e-14 <= eq7 <= hi + 1e-14  # (<K^-1>^-1)_xx >= 1/<K^-1>_xx; Reuss <= Voigt
    assert sol.residual < ROUNDOFF


def test_refinement_converges_monotonically():
    """Two grains split by the diagonal y = x on nested meshes (every level's edges align).

    Nested conforming spaces: kbar_x = min energy over V_h is non-increasing under
    refinement, and successive differences must shrink.
    """
    solver = HeatConduction2D((K1, K2))
    values = []
    for n in (4, 8, 16, 32, 64):
        t = np.linspace(0.0, 1.0, n + 1)
        points, triangles = grid_mesh(t, t)
        c = points[triangles].mean(axis=1)
        phi = np.where(c[:, 1] < c[:, 0], np.pi / 6, -np.pi / 3)
        values.append(solver.solve(points, triangles, phi).kbar[0])
    values = np.array(values)
    diffs = -np.diff(values)
    assert np.all(diffs >= -1e-12), values  # monotone decrease
    assert np.all(diffs[1:] < 0.7 * diffs[:-1]), diffs  # differences shrink geometrically
    lo, hi = conductivity_bounds([0.5, 0.5], [np.pi / 6, -np.pi / 3])
    assert lo <= values[-1] <= hi


# --------------------------------------------------------------------------
# Compile-once contract
# --------------------------------------------------------------------------


def test_forms_compiled_once_and_not_per_solve(monkeypatch):
    heat.warm_jit_cache()
    first = heat._compiled_forms()
    assert HeatConduction2D()._forms is first and HeatConduction2D((2.0, 0.5))._forms is first

    import dolfinx.jit

    def _no_jit(*args, **kwargs):
        raise AssertionError("FFCx JIT called during solve()")

    monkeypatch.setattr(dolfinx.jit, "ffcx_jit", _no_jit)
    monkeypatch.setattr("dolfinx.fem.forms.jit.ffcx_jit", _no_jit)
    rng = np.random.default_rng(20)
    points, triangles = random_mesh(rng, n=6)
    sol = HeatConduction2D((2.0, 0.5)).solve(points, triangles, np.zeros(len(triangles)))
    assert sol.kbar[0] == pytest.approx(2.0, abs=EXACT)  # kappa enters as data, not code


def test_rejects_bad_input(solver):
    points, triangles = grid_mesh(np.linspace(0, 1, 3), np.linspace(0, 1, 3))
    with pytest.raises(ValueError):
        solver.solve(points, triangles, np.zeros(len(triangles) + 1))
    with pytest.raises(ValueError):
        solver.solve(points[:, :1], triangles, np.zeros(len(triangles)))
    with pytest.raises(ValueError):
        solver.solve(points, triangles + 100, np.zeros(len(triangles)))
