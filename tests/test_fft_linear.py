"""Linear periodic Fourier-Galerkin solver: DESIGN section 7 references.

Tolerances: round-off checks 1e-12 (relative), laminate closed form 1e-10 (issue 3),
batched vs single 1e-10, batched vs scipy reference 1e-10 (both CG at 1e-13).
"""

import itertools

import numpy as np
import pytest
import torch

from homlearn.solvers.fft import (CubicMaterial, IsotropicMaterial, apply_projection,
                                  isotropic_stiffness_apply, project_real, reference_solve_linear,
                                  singular_mask, solve_linear, wave_vectors)

F64 = torch.float64


def lame(young, nu):
    return young * nu / ((1 + nu) * (1 - 2 * nu)), young / (2 * (1 + nu))


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def sym_random(shape, gen, d):
    a = torch.randn(*shape[:1], d, d, *shape[1:], generator=gen, dtype=F64)
    return 0.5 * (a + a.transpose(1, 2))


def two_phase(b, grid, frac, gen, young=(10.0, 1.0), nu=(0.3, 0.3)):
    ph = (torch.rand(b, *grid, generator=gen, dtype=F64) < frac).to(F64)
    l1, m1 = lame(young[0], nu[0])
    l2, m2 = lame(young[1], nu[1])
    return IsotropicMaterial(l2 + (l1 - l2) * ph, m2 + (m1 - m2) * ph), ph


# --------------------------------------------------------------------------- wave vectors / projection
def test_wave_vectors_layout_nyquist_and_singular():
    xi = wave_vectors((8, 9, 10), lengths=(1.0, 2.0, 1.0))
    assert xi.shape == (3, 8, 9, 6)
    assert torch.all(xi[0, 4] == 0)                       # Nyquist of even axis 0 zeroed
    assert torch.all(xi[2, ..., 5] == 0)                  # Nyquist of even last (rfft) axis zeroed
    assert torch.isclose(xi[1, 0, 1, 0], torch.tensor(2 * np.pi / 2.0, dtype=F64))
    sing = singular_mask(xi)
    assert sing[0, 0, 0] and sing[4, 0, 5] and sing[4, 0, 0] and int(sing.sum()) == 4


@pytest.mark.parametrize("grid", [(8, 9, 10), (32, 32), (7, 6)])
def test_projection_idempotent_symmetric_orthogonal_zero_mean(grid):
    gen = torch.Generator().manual_seed(1)
    d = len(grid)
    xi = wave_vectors(grid)
    a = sym_random((2, *grid), gen, d)
    pa = project_real(a, xi)
    scale = float(a.abs().max())
    assert float((pa - pa.transpose(1, 2)).abs().max()) <= 1e-14 * scale           # symmetric
    assert float((project_real(pa, xi) - pa).abs().max()) <= 1e-12 * scale          # P P = P
    assert float(pa.mean(dim=tuple(range(3, 3 + d))).abs().max()) <= 1e-14 * scale  # zero mean
    inner = float(((a - pa) * pa).sum())                                           # (I-P)A _|_ PA
    assert abs(inner) <= 1e-12 * float((a * a).sum())
    assert float((pa * pa).sum()) < float((a * a).sum())


def test_projection_of_symmetric_gradient_is_identity():
    """eps = sym grad u for a random periodic u (spectral, no Nyquist) is left unchanged."""
    gen = torch.Generator().manual_seed(2)
    grid = (9, 8, 7)
    xi = wave_vectors(grid)
    u = torch.randn(1, 3, *grid, generator=gen, dtype=F64)
    u_hat = torch.fft.rfftn(u, dim=(-3, -2, -1))
    g = 1j * xi[None, None] * u_hat[:, :, None]              # (B, i, j) = i xi_j u_i
    eps_hat = 0.5 * (g + g.transpose(1, 2))
    eps = torch.fft.irfftn(eps_hat, s=grid, dim=(-3, -2, -1))
    assert rel(project_real(eps, xi), eps) <= 1e-12


def test_projection_output_has_zero_incompatibility():
    """inc(P A) = curl curl^T (P A): eta_ij = e_ikl e_jmn xi_k xi_m A_ln vanishes per frequency."""
    gen = torch.Generator().manual_seed(3)
    xi = wave_vectors((8, 8, 8))
    a = sym_random((2, 8, 8, 5), gen, 3).to(torch.complex128)
    a = a + 1j * sym_random((2, 8, 8, 5), gen, 3)
    pa = apply_projection(a, xi)
    lc = torch.zeros(3, 3, 3, dtype=torch.complex128)
    for (i, j, k) in itertools.permutations(range(3)):
        lc[i, j, k] = float(np.linalg.det(np.eye(3)[[i, j, k]]))
    xic = xi.to(torch.complex128)
    inc = torch.einsum("ikl,jmn,k...,m...,bln...->bij...", lc, lc, xic, xic, pa)
    inc_a = torch.einsum("ikl,jmn,k...,m...,bln...->bij...", lc, lc, xic, xic, a)
    assert float(inc.abs().max()) <= 1e-12 * float(inc_a.abs().max())
    assert float(pa[..., singular_mask(xi)].abs().max()) == 0.0


# --------------------------------------------------------------------------- homogeneous
@pytest.mark.parametrize("grid", [(8, 8, 8), (32, 32)])
def test_homogeneous_cell_exact(grid):
    d = len(grid)
    lam, mu = lame(3.0, 0.25)
    mat = IsotropicMaterial(torch.full((2, *grid), lam, dtype=F64), torch.full((2, *grid), mu, dtype=F64))
    E = sym_random((2,), torch.Generator().manual_seed(4), d)
    res = solve_linear(mat, E, grid)
    assert torch.all(res.iterations <= 1) and torch.all(res.converged)
    e_field = E.reshape(2, d, d, *(1,) * d).expand_as(res.strain)
    assert torch.equal(res.strain, e_field)                    # fluctuation exactly zero
    expected = lam * torch.einsum("bii->b", E)[:, None, None] * torch.eye(d, dtype=F64) + 2 * mu * E
    assert rel(res.mean_stress, expected) <= 1e-14
    assert rel(res.stress, expected.reshape(2, d, d, *(1,) * d).expand_as(res.stress)) <= 1e-14


# --------------------------------------------------------------------------- laminate
def laminate_exact(E, layers, d):
    """Per-layer strain for isotropic layers (lam, mu, frac) stacked along x (normal e_x)."""
    t = sum(E[k, k] for k in range(1, d))
    inv_m = sum(f / (lm + 2 * m) for lm, m, f in layers)
    s_xx = (E[0, 0] + sum(f * lm * t / (lm + 2 * m) for lm, m, f in layers)) / inv_m
    strains = []
    for lm, m, f in layers:
        e = E.copy()
        e[0, 0] = (s_xx - lm * t) / (lm + 2 * m)
        for k in range(1, d):
            e[0, k] = e[k, 0] = E[0, k] / (m * sum(ff / mm for _, mm, ff in layers))
        strains.append(e)
    return strains


@pytest.mark.parametrize("grid,cut", [((9, 5, 5), 4), ((8, 4, 4), 4), ((32, 32), 12), ((31, 6), 10)])
def test_laminate_exact_fields(grid, cut):
    d = len(grid)
    (l1, m1), (l2, m2) = lame(10.0, 0.3), lame(1.0, 0.2)
    ph = torch.zeros(grid, dtype=F64)
    ph[:cut] = 1.0
    mat = IsotropicMaterial((l2 + (l1 - l2) * ph)[None], (m2 + (m1 - m2) * ph)[None])
    E = sym_random((1,), torch.Generator().manual_seed(5), d)[0].numpy()
    res = solve_linear(mat, E, grid, tol=1e-13)
    assert bool(res.converged[0])
    f1 = cut / grid[0]
    e1, e2 = laminate_exact(E, [(l1, m1, f1), (l2, m2, 1 - f1)], d)
    exact = torch.where(ph.bool()[None, None], torch.as_tensor(e1).reshape(d, d, *(1,) * d),
                        torch.as_tensor(e2).reshape(d, d, *(1,) * d))
    assert rel(res.strain[0], exact) <= 1e-10
    sig = isotropic_stiffness_apply(exact[None], mat.lam, mat.mu)
    assert rel(res.stress, sig) <= 1e-10
    for k in range(d):                                   # traction across the layers is uniform
        assert float(res.stress[0, 0, k].std()) <= 1e-10 * float(res.stress.abs().max())
    # pure loadings: shear across the layers sigma12 = 2 <1/mu>^-1 E12, along them
    # sigma23 = 2 <mu> E23, normal sigma11 = <1/M>^-1 E11 with M = lambda + 2 mu
    mu_a = f1 * m1 + (1 - f1) * m2
    mu_h = 1.0 / (f1 / m1 + (1 - f1) / m2)
    m_h = 1.0 / (f1 / (l1 + 2 * m1) + (1 - f1) / (l2 + 2 * m2))
    cases = [((0, 1), 2 * mu_h), ((0, 0), m_h)] + ([((1, 2), 2 * mu_a)] if d == 3 else [])
    for (i, j), modulus in cases:
        Ep = np.zeros((d, d))
        Ep[i, j] = Ep[j, i] = 1e-3
        got = float(solve_linear(mat, Ep, grid, tol=1e-13).mean_stress[0, i, j])
        assert abs(got - modulus * 1e-3) <= 1e-10 * modulus * 1e-3


# --------------------------------------------------------------------------- bounds
def test_effective_moduli_within_voigt_reuss_and_hashin_shtrikman():
    """Random two-phase 16^3 cell, stiffness contrast 10, one batch of 6 load cases.

    Voigt/Reuss bound every apparent modulus rigorously (also discretely);
    Hashin-Shtrikman is checked on K (hydrostatic) and on G averaged over the
    five deviatoric load cases (the cell is only statistically isotropic).
    """
    gen = torch.Generator().manual_seed(6)
    grid, f1 = (16, 16, 16), 0.4
    (y1, n1), (y2, n2) = (10.0, 0.3), (1.0, 0.3)
    mat1, ph = two_phase(1, grid, f1, gen, (y1, y2), (n1, n2))
    f1 = float(ph.mean())
    f2 = 1 - f1
    loads = [np.eye(3) / 3]
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        e = np.zeros((3, 3))
        e[i, j] = e[j, i] = 0.5
        loads.append(e)
    loads += [np.diag([1.0, -1.0, 0.0]) / np.sqrt(2), np.diag([1.0, 1.0, -2.0]) / np.sqrt(6)]
    E = torch.as_tensor(np.stack(loads))
    mat = IsotropicMaterial(mat1.lam.expand(6, *grid), mat1.mu.expand(6, *grid))
    res = solve_linear(mat, E, grid, tol=1e-10)
    assert torch.all(res.converged)
    energy = torch.einsum("bij,bij->b", E, res.mean_stress).numpy()
    norms = torch.einsum("bij,bij->b", E, E).numpy()
    k_app = energy[0] / (3 * norms[0])
    g_app = energy[1:] / (2 * norms[1:])

    (l1, m1), (l2, m2) = lame(y1, n1), lame(y2, n2)
    k1, k2 = l1 + 2 * m1 / 3, l2 + 2 * m2 / 3
    kv, kr = f1 * k1 + f2 * k2, 1 / (f1 / k1 + f2 / k2)
    gv, gr = f1 * m1 + f2 * m2, 1 / (f1 / m1 + f2 / m2)
    assert kr < k_app < kv
    assert np.all((gr < g_app) & (g_app < gv))
    # Hashin-Shtrikman, phase 1 stiffer in K and G (well ordered)
    k_lo = k2 + f1 / (1 / (k1 - k2) + 3 * f2 / (3 * k2 + 4 * m2))
    k_hi = k1 + f2 / (1 / (k2 - k1) + 3 * f1 / (3 * k1 + 4 * m1))
    g_lo = m2 + f1 / (1 / (m1 - m2) + 6 * f2 * (k2 + 2 * m2) / (5 * m2 * (3 * k2 + 4 * m2)))
    g_hi = m1 + f2 / (1 / (m2 - m1) + 6 * f1 * (k1 + 2 * m1) / (5 * m1 * (3 * k1 + 4 * m1)))
    assert k_lo < k_app < k_hi
    assert g_lo < float(g_app.mean()) < g_hi


# --------------------------------------------------------------------------- batching
def test_batched_equals_single_and_reference():
    gen = torch.Generator().manual_seed(7)
    grid = (10, 9, 8)
    mat, _ = two_phase(3, grid, 0.5, gen)
    E = sym_random((3,), gen, 3) * 1e-2
    res = solve_linear(mat, E, grid, tol=1e-13)
    assert torch.all(res.converged) and torch.all(res.residual <= 1e-12)
    for c in range(3):
        one = solve_linear(IsotropicMaterial(mat.lam[c:c + 1], mat.mu[c:c + 1]), E[c], grid, tol=1e-13)
        assert rel(res.strain[c], one.strain[0]) <= 1e-10
        assert int(one.iterations[0]) == int(res.iterations[c])
        lam, mu = mat.lam[c].numpy(), mat.mu[c].numpy()

        def stiff(eps, lam=lam, mu=mu):
            return lam * np.trace(eps) * np.eye(3).reshape(3, 3, 1, 1, 1) + 2 * mu * eps

        ref = reference_solve_linear(stiff, E[c].numpy(), grid, tol=1e-13)
        assert ref["info"] == 0
        assert rel(res.strain[c], torch.as_tensor(ref["strain"])) <= 1e-10
        assert rel(res.mean_stress[c], torch.as_tensor(ref["mean_stress"])) <= 1e-10


def test_per_cell_masks_and_nonconvergence_reported():
    gen = torch.Generator().manual_seed(8)
    grid = (12, 12, 12)
    het, _ = two_phase(1, grid, 0.5, gen)
    lam = torch.cat([torch.full((1, *grid), 2.0, dtype=F64), het.lam])
    mu = torch.cat([torch.full((1, *grid), 1.0, dtype=F64), het.mu])
    mat = IsotropicMaterial(lam, mu)
    E = torch.zeros(3, 3, dtype=F64)
    E[0, 0], E[1, 2], E[2, 1] = 1e-2, 5e-3, 5e-3
    res = solve_linear(mat, E, grid, tol=1e-10)
    assert res.converged.tolist() == [True, True]
    assert int(res.iterations[0]) == 0 and int(res.iterations[1]) > 5
    assert float(res.residual[1]) <= 1e-9
    short = solve_linear(mat, E, grid, tol=1e-10, max_iter=2)
    assert short.converged.tolist() == [True, False]
    assert short.iterations.tolist() == [0, 2]
    assert 1e-10 < float(short.residual[1]) < 1.0
    assert torch.equal(short.strain[0], res.strain[0])
    assert torch.isfinite(short.strain).all()


def test_float32_runs_to_its_tolerance():
    gen = torch.Generator().manual_seed(9)
    grid = (16, 16)
    mat, _ = two_phase(2, grid, 0.5, gen)
    res = solve_linear(mat, torch.eye(2, dtype=F64) * 1e-2, grid, tol=1e-5, dtype=torch.float32)
    assert res.strain.dtype == torch.float32 and torch.all(res.converged)
    ref = solve_linear(mat, torch.eye(2, dtype=F64) * 1e-2, grid, tol=1e-12)
    assert rel(res.strain.double(), ref.strain) <= 1e-4


# --------------------------------------------------------------------------- cubic
def random_rotations(n, gen):
    q = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=F64)).Q
    return q * torch.sign(torch.linalg.det(q))[:, None, None]


def test_cubic_material_matches_rotated_tensor_and_isotropic_limit():
    gen = torch.Generator().manual_seed(10)
    grid = (3, 2, 2)
    n = 12
    rot = random_rotations(n, gen).reshape(1, *grid, 3, 3).permute(0, 4, 5, 1, 2, 3)
    eps = sym_random((1, *grid), gen, 3)
    c11, c12, c44 = 170.0, 124.0, 75.0
    sig = CubicMaterial(c11, c12, c44, rot)(eps)
    c = np.zeros((3, 3, 3, 3))
    for i, j in itertools.product(range(3), repeat=2):
        c[i, i, j, j] = c11 if i == j else c12
        if i != j:
            c[i, j, i, j] = c[i, j, j, i] = c44
    r = rot.permute(0, 3, 4, 5, 1, 2).reshape(n, 3, 3).numpy()
    crot = np.einsum("nia,njb,nkc,nld,abcd->nijkl", r, r, r, r, c)
    e = eps.permute(0, 3, 4, 5, 1, 2).reshape(n, 3, 3).numpy()
    expected = np.einsum("nijkl,nkl->nij", crot, e)
    got = sig.permute(0, 3, 4, 5, 1, 2).reshape(n, 3, 3).numpy()
    assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()
    iso = CubicMaterial(c11, c12, (c11 - c12) / 2, rot)(eps)
    assert rel(iso, isotropic_stiffness_apply(eps, c12, (c11 - c12) / 2)) <= 1e-13


def test_cubic_polycrystal_solves_and_matches_reference():
    gen = torch.Generator().manual_seed(11)
    grid = (8, 8, 8)
    grains = random_rotations(4, gen)
    ids = torch.randint(0, 4, (2, 2, 2), generator=gen).repeat_interleave(4, 0) \
        .repeat_interleave(4, 1).repeat_interleave(4, 2)
    rot = grains[ids].permute(3, 4, 0, 1, 2)[None]
    mat = CubicMaterial(170.0, 124.0, 75.0, rot)
    E = torch.diag(torch.tensor([1e-3, 0.0, 0.0], dtype=F64))
    res = solve_linear(mat, E, grid, tol=1e-13)
    assert bool(res.converged[0])
    ref = reference_solve_linear(lambda e: mat(torch.as_tensor(e)[None])[0].numpy(), E.numpy(), grid, tol=1e-13)
    assert rel(res.strain[0], torch.as_tensor(ref["strain"])) <= 1e-10
    # every cubic crystal has the same bulk modulus (C11 + 2 C12) / 3: a hydrostatic strain gives a
    # uniform field and the polycrystal's effective bulk modulus is exactly that
    hyd = solve_linear(mat, torch.eye(3, dtype=F64) * 1e-3, grid, tol=1e-12)
    k_eff = float(torch.einsum("ii", hyd.mean_stress[0])) / (3 * 3e-3)
    assert k_eff == pytest.approx((170.0 + 2 * 124.0) / 3, rel=1e-12)
    assert float((hyd.strain - 1e-3 * torch.eye(3, dtype=F64).reshape(1, 3, 3, 1, 1, 1)).abs().max()) <= 1e-15
