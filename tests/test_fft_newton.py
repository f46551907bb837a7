"""Newton-Krylov FFT solver (small and finite strain), mixed control, Willot gradient, Krylov
kernels and per-cell status: DESIGN section 7 and issue 3 references.

Tolerances: Krylov kernels vs numpy 1e-10; closed-form laminates (scipy root at 1e-14) 1e-9;
tangents vs central differences 1e-6; finite vs small strain at 1e-5 stretch 1e-4 (issue 3);
mixed control vs the effective stiffness of six strain-controlled solves 1e-8; periodic
Eshelby 2% (issue 3); batched vs one cell 1e-10.
"""

import numpy as np
import pytest
import scipy.optimize as so
import torch

from homlearn.materials import NeoHookean, NonlinearElastic, TensorTangent, two_phase_isotropic
from homlearn.materials.elastic import IsotropicMaterial, lame_from_young_poisson
from homlearn.solvers.fft import (MacroControl, Projector, SolveStatus, batched_bicgstab, batched_cg,
                                  solve_linear, solve_newton, wave_vectors)

F64 = torch.float64


def rel(a, b):
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max() / torch.as_tensor(b).abs().max())


def random_phase(b, grid, frac, seed):
    return (torch.rand(b, *grid, generator=torch.Generator().manual_seed(seed), dtype=F64) < frac).to(F64)


def nonlinear_two_phase(ph, n=(0.4, 1.0)):
    """Phase 1 stiff and linear, phase 0 soft and softening."""
    lin = two_phase_isotropic(ph, (1.0, 10.0), (0.3, 0.3))
    lam, mu = lin.lam, lin.mu
    return NonlinearElastic(lam + 2 * mu / 3, mu, 1e-6, n[0] + (n[1] - n[0]) * ph)


# --------------------------------------------------------------------------- Krylov kernels
def _matrices(b, m, seed, symmetric):
    g = np.random.default_rng(seed)
    a = g.standard_normal((b, m, m))
    if symmetric:
        a = a @ a.transpose(0, 2, 1) + np.arange(1, b + 1)[:, None, None] * np.eye(m)   # SPD, varied conditioning
    else:
        a = a + 3 * np.sqrt(m) * np.eye(m)
    return a


@pytest.mark.parametrize("method,symmetric", [(batched_cg, True), (batched_bicgstab, False),
                                              (batched_bicgstab, True)])
def test_krylov_kernels_match_dense_solves_with_masks(method, symmetric):
    a = _matrices(5, 40, 0, symmetric)
    rhs = np.random.default_rng(1).standard_normal((5, 40))
    rhs[2] = 0.0                                                   # trivial cell: x = 0, no work
    A, B = torch.from_numpy(a), torch.from_numpy(rhs)
    seen = []

    def op(x, idx):
        seen.append(idx.tolist())
        return torch.einsum("bij,bj->bi", A[idx], x)

    res = method(op, B, tol=1e-13, max_iter=500)
    exact = np.stack([np.linalg.solve(a[k], rhs[k]) if k != 2 else np.zeros(40) for k in range(5)])
    assert torch.all(res.status == SolveStatus.CONVERGED)
    assert rel(res.x, torch.from_numpy(exact)) <= 1e-10
    assert int(res.iterations[2]) == 0 and all(2 not in s for s in seen)
    assert len(set(res.iterations.tolist())) > 1                   # cells stop at different counts
    assert any(len(s) < 4 for s in seen)                            # ... and stop costing work


def test_krylov_reports_breakdown_and_max_iterations():
    a = _matrices(3, 30, 2, True)
    a[1] = -a[1]                                                    # negative definite: CG breaks down
    A = torch.from_numpy(a)
    B = torch.ones(3, 30, dtype=F64)
    res = batched_cg(lambda x, idx: torch.einsum("bij,bj->bi", A[idx], x), B, tol=1e-13, max_iter=3)
    assert int(res.status[1]) == SolveStatus.BREAKDOWN
    assert int(res.status[0]) == SolveStatus.MAX_ITERATIONS and int(res.iterations[0]) == 3
    assert float(res.residual[0]) > 1e-13
    A2 = A.clone()
    A2[2, 0, 0] = float("nan")
    res = batched_cg(lambda x, idx: torch.einsum("bij,bj->bi", A2[idx], x), B, tol=1e-13, max_iter=200)
    assert int(res.status[2]) == SolveStatus.NONFINITE and int(res.status[0]) == SolveStatus.CONVERGED
    assert torch.isfinite(res.x[2]).all()


# --------------------------------------------------------------------------- Willot gradient
def _willot_gradient(u, h=1.0):
    """Rotated finite differences (Willot 2015) of u (d, *grid) at the cell corners, (d, d, *grid)."""
    d = u.shape[0]
    out = np.zeros((d, d) + u.shape[1:])
    for j in range(d):
        diff = np.roll(u, -1, axis=1 + j) - u
        for m in range(d):
            if m != j:
                diff = 0.5 * (diff + np.roll(diff, -1, axis=1 + m))
        out[:, j] = diff / h
    return out


@pytest.mark.parametrize("grid", [(8, 7, 6), (10, 12)])
def test_willot_projection_keeps_rotated_discrete_gradients(grid):
    """sym(D_willot u) is compatible in the rotated scheme's sense, so its projection is the identity;
    the continuous projection changes it (the test can tell the two apart)."""
    d = len(grid)
    u = np.random.default_rng(3).standard_normal((d, *grid))
    g = _willot_gradient(u, h=1.0 / grid[0])
    eps = torch.from_numpy(0.5 * (g + g.transpose(1, 0, *range(2, 2 + d))))[None]
    eps = eps - eps.mean(dim=tuple(range(3, 3 + d)), keepdim=True)
    willot = Projector(grid, lengths=[n / grid[0] for n in grid], gradient="willot")
    cont = Projector(grid, lengths=[n / grid[0] for n in grid], gradient="continuous")
    assert rel(willot(eps), eps) <= 1e-12
    assert rel(cont(eps), eps) > 1e-2


def test_willot_symbol_values_and_nyquist():
    xi = wave_vectors((8, 6), gradient="willot")
    h = 1.0 / 8, 1.0 / 6
    k1 = 2 * np.pi * 1
    assert np.isclose(float(xi[0, 1, 0]), 2 / h[0] * np.sin(k1 * h[0] / 2))
    assert np.isclose(float(xi[0, 1, 1]), 2 / h[0] * np.sin(k1 * h[0] / 2) * np.cos(k1 * h[1] / 2))
    assert np.isclose(abs(float(xi[0, 4, 0])), 2 / h[0])     # Nyquist kept: sin = -+1
    assert float(xi[1, 4, 1]) == pytest.approx(0.0, abs=1e-12)  # cos(pi/2) = 0
    with pytest.raises(ValueError, match="gradient"):
        wave_vectors((8, 8), gradient="staggered")


def test_willot_and_continuous_agree_on_refinement():
    """Sphere at contrast 100: the two discretisations' effective C1111 differ less as the grid refines."""
    gaps = []
    for n in (8, 16, 32):
        x = (torch.arange(n, dtype=F64) + 0.5) / n - 0.5
        r2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
        ph = (r2 <= 0.3 ** 2).to(F64)[None]
        mat = two_phase_isotropic(ph, (1.0, 100.0), (0.3, 0.3))
        E = torch.zeros(3, 3, dtype=F64)
        E[0, 0] = 1.0
        c = [float(solve_linear(mat, E, (n,) * 3, tol=1e-10, gradient=gd).mean_stress[0, 0, 0])
             for gd in ("continuous", "willot")]
        gaps.append(abs(c[0] - c[1]) / c[0])
    assert gaps[2] < gaps[1] < gaps[0]


# --------------------------------------------------------------------------- mixed control (small strain)
def test_uniaxial_stress_homogeneous_exact():
    lam, mu = lame_from_young_poisson(200.0, 0.3)
    mat = IsotropicMaterial(torch.full((1, 6, 6, 6), float(lam), dtype=F64), torch.full((1, 6, 6, 6), float(mu), dtype=F64))
    res = solve_linear(mat, MacroControl.uniaxial_stress(3, 1e-3), (6, 6, 6), tol=1e-12)
    expected = torch.diag(torch.tensor([1e-3, -0.3e-3, -0.3e-3], dtype=F64))
    assert rel(res.mean_strain[0], expected) <= 1e-12
    assert float(res.mean_stress[0, 0, 0]) == pytest.approx(0.2, rel=1e-12)
    off = res.mean_stress[0].clone()
    off[0, 0] = 0
    assert float(off.abs().max()) <= 1e-14


def _voigt_pairs(d):
    return [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]


def test_mixed_control_equals_effective_stiffness_prediction():
    grid = (10, 10, 10)
    ph = random_phase(1, grid, 0.4, 7)
    mat = two_phase_isotropic(ph, (1.0, 10.0), (0.3, 0.2))
    pairs = _voigt_pairs(3)
    C = np.zeros((6, 6))                                        # Mandel notation
    for a, (i, j) in enumerate(pairs):
        E = torch.zeros(3, 3, dtype=F64)
        w = 1.0 if i == j else 1 / np.sqrt(2)
        E[i, j] = E[j, i] = w
        s = solve_linear(mat, E, grid, tol=1e-13).mean_stress[0].numpy()
        C[:, a] = [s[k, m] * (1.0 if k == m else np.sqrt(2)) for k, m in pairs]
    # uniaxial stress: eps_xx = 1e-3, every other stress zero
    free = list(range(1, 6))
    e = np.zeros(6)
    e[0] = 1e-3
    e[free] = np.linalg.solve(C[np.ix_(free, free)], -C[free, 0] * e[0])
    res = solve_linear(mat, MacroControl.uniaxial_stress(3, 1e-3), grid, tol=1e-13)
    got = [float(res.mean_strain[0, k, m]) * (1.0 if k == m else np.sqrt(2)) for k, m in pairs]
    assert np.allclose(got, e, rtol=0, atol=1e-8 * 1e-3)
    assert float(res.mean_stress[0, 0, 0]) == pytest.approx((C @ e)[0], rel=1e-8)
    assert bool(res.converged[0]) and float(res.residual[0]) <= 1e-11


# --------------------------------------------------------------------------- tangents
@pytest.mark.parametrize("law", ["nonlinear", "neohookean"])
def test_consistent_tangent_matches_finite_differences(law):
    g = torch.Generator().manual_seed(4)
    grid = (3, 4, 2)
    if law == "nonlinear":
        mat = NonlinearElastic(torch.full((2, *grid), 5.0, dtype=F64), 1.0, 1e-4, 0.4)
        x = 1e-2 * torch.randn(2, 3, 3, *grid, generator=g, dtype=F64)
        x = 0.5 * (x + x.transpose(1, 2))
    else:
        mat = NeoHookean(torch.full((2, *grid), 3.0, dtype=F64), 1.0)
        x = torch.eye(3, dtype=F64).reshape(1, 3, 3, 1, 1, 1) + 0.2 * torch.randn(2, 3, 3, *grid, generator=g, dtype=F64)
    dx = torch.randn(2, 3, 3, *grid, generator=g, dtype=F64)
    if law == "nonlinear":
        dx = 0.5 * (dx + dx.transpose(1, 2))
    _, tangent = mat.response(x)
    h = 1e-6 * float(x.abs().max())
    fd = (mat.response(x + h * dx)[0] - mat.response(x - h * dx)[0]) / (2 * h)
    assert rel(tangent(dx), fd) <= 1e-6
    # major symmetry (what lets Newton use CG): dy : K dx = dx : K dy
    dy = torch.flip(dx, dims=(0,))
    assert abs(float((dy * tangent(dx)).sum() - (dx * tangent(dy)).sum())) <= 1e-12 * float((dy * tangent(dx)).abs().sum())
    # selection picks cells
    assert rel(tangent.select(torch.tensor([1]))(dx[1:]), tangent(dx)[1:]) <= 1e-15


def test_tensor_tangent_selects_cells():
    K = torch.randn(3, 2, 2, 2, 2, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    dx = torch.randn(3, 2, 2, 4, 4, dtype=F64)
    full = TensorTangent(K)(dx)
    assert torch.equal(TensorTangent(K).select(torch.tensor([2, 0]))(dx[[2, 0]]), full[[2, 0]])
    assert torch.allclose(full[1, 1, 0, 2, 3], (K[1, 1, 0, :, :, 2, 3] * dx[1, :, :, 2, 3]).sum())


# --------------------------------------------------------------------------- Newton, small strain
def test_newton_on_linear_material_is_one_step_equal_to_cg():
    grid = (9, 8, 7)
    mat = two_phase_isotropic(random_phase(2, grid, 0.5, 1), (1.0, 20.0), (0.3, 0.3))
    E = torch.tensor([[1e-3, 2e-4, 0], [2e-4, -3e-4, 0], [0, 0, 0]], dtype=F64)
    lin = solve_linear(mat, E, grid, tol=1e-13)
    new = solve_newton(mat, E, grid, tol=1e-10, krylov_tol=1e-13)
    assert torch.all(new.newton_iterations == 1) and torch.all(new.converged)
    assert rel(new.strain, lin.strain) <= 1e-10


def _laminate_phases(grid, cut):
    ph = torch.zeros(grid, dtype=F64)
    ph[:cut] = 1.0
    return ph[None], cut / grid[0]


def _nonlinear_stress_np(eps, kappa, mu0, s0, n):
    d = eps.shape[0]
    dev = eps - np.trace(eps) / d * np.eye(d)
    s = np.sum(dev * dev)
    return kappa * np.trace(eps) * np.eye(d) + 2 * mu0 * (1 + s / s0) ** ((n - 1) / 2) * dev


@pytest.mark.parametrize("grid,cut,gradient", [((12, 4, 4), 4, "continuous"), ((15, 6), 7, "continuous"),
                                               ((12, 4, 4), 5, "willot")])
def test_nonlinear_laminate_exact(grid, cut, gradient):
    """Layers normal to x: eps = E + sym(a_p (x) e_x) per layer, sigma e_x continuous (scipy root).

    With the continuous gradient the layer jump must have no Nyquist component (odd grid or
    even cut): the zeroed Nyquist frequency cannot carry it. The Willot gradient keeps it."""
    d = len(grid)
    ph, f1 = _laminate_phases(grid, cut)
    mat = nonlinear_two_phase(ph)
    E = np.zeros((d, d))
    E[0, 0], E[0, 1], E[1, 0], E[1, 1] = 2e-3, 1.5e-3, 1.5e-3, -1e-3
    params = [(k, m, 1e-6, nn) for k, m, nn in
              [(float(mat.kappa[0, cut].flatten()[0]), float(mat.mu0[0, cut].flatten()[0]), float(mat.n[0, cut].flatten()[0])),
               (float(mat.kappa[0, 0].flatten()[0]), float(mat.mu0[0, 0].flatten()[0]), float(mat.n[0, 0].flatten()[0]))]]
    ex = np.eye(d)[0]

    def strains(a1):
        a0 = -f1 * a1 / (1 - f1)
        return [E + 0.5 * (np.outer(a, ex) + np.outer(ex, a)) for a in (a0, a1)]

    def jump(a1):
        e0, e1 = strains(a1)
        return _nonlinear_stress_np(e1, *params[1]) @ ex - _nonlinear_stress_np(e0, *params[0]) @ ex

    sol = so.root(jump, np.zeros(d), tol=1e-15)
    e0, e1 = strains(sol.x)
    res = solve_newton(mat, torch.from_numpy(E), grid, tol=1e-12, krylov_tol=1e-10, gradient=gradient)
    assert bool(res.converged[0]) and int(res.newton_iterations[0]) <= 8
    at = lambda i: (0, slice(None), slice(None), i) + (0,) * (d - 1)  # noqa: E731
    assert rel(res.strain[at(cut)], torch.from_numpy(e0)) <= 1e-9
    assert rel(res.strain[at(0)], torch.from_numpy(e1)) <= 1e-9
    uniform = res.strain[0, :, :, cut:] - res.strain[0, :, :, cut:][:, :, :1]
    assert float(uniform.abs().max()) <= 1e-9 * abs(E).max()


def test_batched_newton_equals_single_cells_and_reports_failures():
    grid = (8, 8, 8)
    ph = random_phase(3, grid, 0.45, 9)
    mat = nonlinear_two_phase(ph)
    E = torch.zeros(3, 3, 3, dtype=F64)
    E[:, 0, 0] = torch.tensor([1e-3, 3e-3, 2e-3])
    E[:, 1, 2] = E[:, 2, 1] = 5e-4
    batched = solve_newton(mat, E, grid, tol=1e-10, krylov_tol=1e-8)
    assert torch.all(batched.converged)
    for c in range(3):
        one = solve_newton(mat.select(torch.tensor([c])), E[c:c + 1], grid, tol=1e-10, krylov_tol=1e-8)
        assert rel(one.strain[0], batched.strain[c]) <= 1e-10
        assert int(one.newton_iterations[0]) == int(batched.newton_iterations[c])
    # a cell stopped after one Newton step is reported, the others still converge
    capped = solve_newton(mat, E, grid, tol=1e-10, krylov_tol=1e-8, max_newton=1)
    assert torch.all(capped.status == SolveStatus.MAX_ITERATIONS)
    assert torch.all(capped.residual > 1e-10) and torch.all(torch.isfinite(capped.residual))


# --------------------------------------------------------------------------- finite strain
def _neo_P(F, lam, mu):
    Fit = np.linalg.inv(F).T
    return mu * (F - Fit) + lam * np.log(np.linalg.det(F)) * Fit


def test_finite_strain_homogeneous_exact():
    grid = (6, 5, 4)
    lam, mu = 3.0, 1.5
    mat = NeoHookean(torch.full((1, *grid), lam, dtype=F64), torch.full((1, *grid), mu, dtype=F64))
    F = np.array([[1.2, 0.3, 0.0], [0.1, 0.9, 0.05], [0.0, -0.2, 1.1]])
    res = solve_newton(mat, torch.from_numpy(F), grid, kinematics="finite", tol=1e-12)
    assert int(res.newton_iterations[0]) == 0 and bool(res.converged[0])
    assert rel(res.mean_stress[0], torch.from_numpy(_neo_P(F, lam, mu))) <= 1e-14
    assert float((res.strain[0] - res.strain[0, :, :, :1, :1, :1]).abs().max()) == 0.0


def test_finite_strain_small_stretch_agrees_with_small_strain():
    grid = (10, 10, 10)
    ph = random_phase(2, grid, 0.4, 11)
    lin = two_phase_isotropic(ph, (1.0, 10.0), (0.3, 0.3))
    E = 1e-5 * torch.tensor([[1.0, 0.3, 0.0], [0.3, -0.5, 0.2], [0.0, 0.2, 0.4]], dtype=F64)
    small = solve_linear(lin, E, grid, tol=1e-12)
    # tol 1e-9: P = mu (F - F^-T) + ... cancels to ~1e-11 relative at F = I + O(1e-5)
    finite = solve_newton(NeoHookean(lin.lam, lin.mu), torch.eye(3, dtype=F64) + E, grid, kinematics="finite",
                          tol=1e-9, krylov_tol=1e-10)
    assert torch.all(finite.converged)
    diff = rel(finite.mean_stress, small.mean_stress)
    assert diff <= 1e-4 and diff > 1e-8   # geometric nonlinearity is O(strain), not zero


@pytest.mark.parametrize("krylov", ["cg", "bicgstab"])
@pytest.mark.parametrize("grid,cut,gradient", [((11, 4, 4), 3, "continuous"), ((14, 6), 8, "continuous"),
                                               ((10, 4, 4), 3, "willot")])
def test_finite_strain_laminate_exact(krylov, grid, cut, gradient):
    """Layers normal to x: F = F_bar + a_p (x) e_x per layer, P e_x continuous (scipy root), large
    shear. Nyquist as in :func:`test_nonlinear_laminate_exact`."""
    d = len(grid)
    ph, f1 = _laminate_phases(grid, cut)
    lam = 2.0 + 18.0 * ph
    mu = 1.0 + 9.0 * ph
    mat = NeoHookean(lam, mu)
    Fbar = np.eye(d)
    Fbar[0, 1], Fbar[1, 0], Fbar[0, 0] = 0.25, -0.1, 1.15
    ex = np.eye(d)[0]

    def grads(a1):
        return [Fbar + np.outer(a, ex) for a in (-f1 * a1 / (1 - f1), a1)]

    def jump(a1):
        f0, f1_ = grads(a1)
        return _neo_P(f1_, 20.0, 10.0) @ ex - _neo_P(f0, 2.0, 1.0) @ ex

    sol = so.root(jump, np.zeros(d), tol=1e-15)
    F0, F1 = grads(sol.x)
    res = solve_newton(mat, torch.from_numpy(Fbar), grid, kinematics="finite", krylov=krylov, tol=1e-12,
                       krylov_tol=1e-10, gradient=gradient)
    assert bool(res.converged[0]) and int(res.newton_iterations[0]) <= 8
    at = lambda i: (0, slice(None), slice(None), i) + (0,) * (d - 1)  # noqa: E731
    assert rel(res.strain[at(0)], torch.from_numpy(F1)) <= 1e-9
    assert rel(res.strain[at(cut)], torch.from_numpy(F0)) <= 1e-9
    P = f1 * _neo_P(F1, 20.0, 10.0) + (1 - f1) * _neo_P(F0, 2.0, 1.0)
    assert rel(res.mean_stress[0], torch.from_numpy(P)) <= 1e-9


def test_finite_strain_uniaxial_stress():
    lam, mu = 3.0, 1.0
    # homogeneous: lateral stretch from P22(l1, l2) = 0
    l1 = 1.3
    l2 = so.brentq(lambda s: _neo_P(np.diag([l1, s, s]), lam, mu)[1, 1], 0.5, 1.0, xtol=1e-15)
    mat = NeoHookean(torch.full((1, 6, 6, 6), lam, dtype=F64), torch.full((1, 6, 6, 6), mu, dtype=F64))
    ctl = MacroControl.uniaxial_stress(3, l1, "finite")
    res = solve_newton(mat, ctl, (6, 6, 6), kinematics="finite", tol=1e-12, krylov_tol=1e-12)
    assert bool(res.converged[0])
    assert rel(res.mean_strain[0], torch.from_numpy(np.diag([l1, l2, l2]))) <= 1e-10
    # heterogeneous: mean Cauchy stress uniaxial, F_xx exact
    ph = random_phase(2, (10, 10, 10), 0.4, 12)
    het = NeoHookean(2.0 + 18.0 * ph, 1.0 + 9.0 * ph)
    res = solve_newton(het, ctl, (10, 10, 10), kinematics="finite", tol=1e-11, krylov_tol=1e-10)
    assert torch.all(res.converged)
    F, P = res.mean_strain, res.mean_stress
    sigma = P @ F.transpose(1, 2) / torch.linalg.det(F)[:, None, None]
    assert torch.allclose(F[:, 0, 0], torch.full((2,), l1, dtype=F64), rtol=0, atol=1e-14)
    off = sigma.clone()
    off[:, 0, 0] = 0
    assert float(off.abs().max()) <= 1e-9 * float(sigma[:, 0, 0].abs().min())
    assert torch.all(sigma[:, 0, 0] > 0)


def test_finite_strain_inverted_element_is_reported_not_raised():
    grid = (6, 6)
    mat = NeoHookean(torch.full((2, *grid), 2.0, dtype=F64), 1.0)
    F = torch.eye(2, dtype=F64).repeat(2, 1, 1)
    F[1, 0, 0] = -0.5                                         # J < 0: log J is NaN
    res = solve_newton(mat, F, grid, kinematics="finite")
    assert int(res.status[1]) == SolveStatus.NONFINITE
    assert int(res.status[0]) == SolveStatus.CONVERGED


# --------------------------------------------------------------------------- periodic Eshelby
def test_periodic_eshelby_sphere_interior_shear_strain():
    """Shear eigenstrain eps*_12 in a sphere of radius 8 voxels at 64^3, no mean strain: the interior
    strain approaches Eshelby's 2 S_1212 eps*_12 = 2 (4 - 5 nu) / (15 (1 - nu)) eps*_12 (within 2%)."""
    n, radius, nu = 64, 8.0, 0.3
    x = torch.arange(n, dtype=F64) - n / 2 + 0.5
    r2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
    inside = (r2 <= radius ** 2)
    eig = torch.zeros(1, 3, 3, n, n, n, dtype=F64)
    eig[0, 0, 1][inside] = eig[0, 1, 0][inside] = 1e-3
    lam, mu = lame_from_young_poisson(1.0, nu)
    mat = IsotropicMaterial(float(lam), float(mu))
    res = solve_linear(mat, torch.zeros(3, 3, dtype=F64), (n,) * 3, batch=1, eigenstrain=eig, tol=1e-10)
    core = r2 <= (radius / 2) ** 2
    measured = float(res.strain[0, 0, 1][core].mean())
    expected = 2 * (4 - 5 * nu) / (15 * (1 - nu)) * 1e-3
    assert bool(res.converged[0])
    assert abs(measured / expected - 1) <= 0.02
    assert float(res.mean_strain.abs().max()) <= 1e-15


# --------------------------------------------------------------------------- projector, devices
@pytest.mark.parametrize("grid", [(7, 8, 6), (10, 9)])
def test_projector_symmetric_path_equals_full_projection(grid):
    """The 6-component small-strain path equals the full-tensor formula; the mask adds Q <A>."""
    from homlearn.solvers.fft import project_real

    d = len(grid)
    a = torch.randn(3, d, d, *grid, generator=torch.Generator().manual_seed(5), dtype=F64)
    a = a + a.transpose(1, 2)
    for gradient in ("continuous", "willot"):
        p = Projector(grid, gradient=gradient)
        assert rel(p(a), project_real(a, p.xi)) <= 1e-14
    mask = torch.ones(d, d, dtype=torch.bool)
    mask[0, 0] = False
    pm = Projector(grid, stress_mask=mask)
    mean = a.mean(dim=tuple(range(3, 3 + d)), keepdim=True)
    assert rel(pm(a), project_real(a, pm.xi) + mask.reshape(1, d, d, *(1,) * d) * mean) <= 1e-14
    with pytest.raises(ValueError, match="symmetric"):
        Projector(grid, stress_mask=torch.triu(torch.ones(d, d, dtype=torch.bool)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_agrees_with_cpu_in_float64():
    grid = (12, 12, 12)
    ph = random_phase(3, grid, 0.4, 13)
    lin = two_phase_isotropic(ph, (120.0, 6000.0), (0.3, 0.3))
    E = torch.zeros(3, 3, dtype=F64)
    E[0, 0] = 1e-3
    cpu = solve_linear(lin, E, grid, tol=1e-12)
    gpu = solve_linear(lin.to(device="cuda"), E, grid, tol=1e-12, device="cuda")
    assert rel(gpu.strain.cpu(), cpu.strain) <= 1e-10
    nh = NeoHookean(lin.lam, lin.mu)
    F = torch.eye(3, dtype=F64) + 50 * E
    cpu = solve_newton(nh, F, grid, kinematics="finite", tol=1e-11)
    gpu = solve_newton(NeoHookean(lin.lam.cuda(), lin.mu.cuda()), F, grid, kinematics="finite", tol=1e-11,
                       device="cuda")
    assert torch.all(gpu.converged.cpu()) and rel(gpu.mean_stress.cpu(), cpu.mean_stress) <= 1e-10
