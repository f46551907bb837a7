"""Magnesium HCP crystal plasticity (paper 'pcanet' SI-A, Table SI-1) and Taylor averaging.

Checks: HCP geometry (Miller-Bravais conversion against plane intercepts, counts, s.m = 0, unit
vectors, twin sense and shear); small-strain elastic moduli of both volumetric forms;
algorithmic tangent vs central differences (1e-6 relative, both flow rules, with slip and
twins active); a Taylor cell of identical orientations equals the single point, and a batch of
paths equals the paths one at a time (1e-12); single crystals in uniaxial stress flow where the
resolved shear stresses reach the slip resistances (steady state of the rate law with the
current Schmid factors, 2e-3; measured 1.3e-4) for basal, prismatic, c-axis tension (twins) and c-axis
compression (no twins: unidirectional); halving the time step halves the change of the mean deviatoric
stress history (first order), under 2% on average at 200 steps; failures are reported, not NaN.
"""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from homlearn.loading.paths import identity_components, random_paths, symmetric_from_components
from homlearn.materials.magnesium import (MG_PAPER, MODE_OF_SYSTEM, MagnesiumCrystalPlasticity, MgParameters,
                                          SlipMode, TwinMode, hcp_systems, mb_direction, mb_plane_normal,
                                          twin_shear)
from homlearn.solvers.fft import MacroControl, SolveStatus
from homlearn.solvers.taylor import solve_taylor_history, solve_taylor_prescribed

F64 = torch.float64
CA = 1.624


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def rotations(mats):
    """(B, n_grains, 3, 3) crystal->sample matrices -> (B, 3, 3, n_grains, 1, 1)."""
    r = torch.as_tensor(np.asarray(mats), dtype=F64)
    return r.permute(0, 2, 3, 1)[..., None, None].contiguous()


def random_rotations(n_cells, n_grains, seed):
    return rotations(Rotation.random(n_cells * n_grains, random_state=seed).as_matrix().reshape(n_cells, n_grains, 3, 3))


def stretch_paths(n, n_steps, max_value, seed):
    p = random_paths(n, 6, max_value=max_value, n_steps=n_steps, seed=seed, start=identity_components(3))
    return torch.from_numpy(symmetric_from_components(p.values, 3))


# --------------------------------------------------------------------------- geometry
def test_hcp_systems_geometry():
    s, m = hcp_systems(CA)
    assert s.shape == m.shape == (18, 3)
    assert [int(np.sum(MODE_OF_SYSTEM == k)) for k in range(4)] == [3, 3, 6, 6]
    assert np.allclose(np.linalg.norm(s, axis=1), 1, atol=1e-14) and np.allclose(np.linalg.norm(m, axis=1), 1, atol=1e-14)
    assert np.abs((s * m).sum(1)).max() < 1e-14
    c = np.array([0, 0, 1.0])
    assert np.allclose(m[:3], c) and np.abs(s[:3] @ c).max() < 1e-14            # basal: plane normal = c
    assert np.abs(m[3:6] @ c).max() < 1e-14 and np.abs(s[3:6] @ c).max() < 1e-14  # prismatic: all in the basal plane
    # pyramidal <c+a>: direction [11-23]/3 has length sqrt(a^2 + c^2); twins extend the c axis
    assert np.linalg.norm(mb_direction((1, 1, -2, 3), CA)) / 3 == pytest.approx(np.sqrt(1 + CA ** 2), rel=1e-14)
    cos_ca = 1 / np.sqrt(1 + CA ** 2)
    assert np.allclose(np.abs(s[6:12] @ c), CA * cos_ca, atol=1e-14)
    assert np.all((s[12:] @ c) * (m[12:] @ c) > 0)
    # all 18 (s, m) pairs distinct up to a common sign
    keys = {tuple(np.round(np.concatenate([a, b]) * np.sign((a @ c) + 1e-9 * a[0] + 1e-12), 8)) for a, b in zip(s, m)}
    assert len(keys) == 18
    # the basal systems sum to zero slip (s1 + s2 + s3 = 0): three systems, two independent
    assert np.abs(s[:3].sum(0)).max() < 1e-14
    assert twin_shear(CA) == pytest.approx(0.129, abs=5e-4)


@pytest.mark.parametrize("plane", [(1, 0, -1, 2), (1, 1, -2, 2), (-1, 2, -1, 2), (0, 1, -1, 0), (2, -1, -1, 2), (1, 0, -1, 1)])
def test_plane_normals_against_intercepts(plane):
    """The reciprocal-basis normal is perpendicular to every in-plane vector built from the
    plane's intercepts with a1, a2, a3 and c (an independent construction)."""
    axes = [mb_direction(v, CA) for v in [(1, 0, -1, 0), (0, 1, -1, 0), (0, 0, 0, 1)]]   # a1, a2 (t absorbed), c
    a1, a2, cc = np.array([1.0, 0, 0]), np.array([-0.5, np.sqrt(3) / 2, 0]), np.array([0, 0, CA])
    assert np.allclose(axes[2], cc)
    h, k, i, l = plane
    n = mb_plane_normal(plane, CA)
    pts, dirs = [], []
    for idx, axis in ((h, a1), (k, a2), (l, cc)):
        (pts if idx else dirs).append(axis / idx if idx else axis)
    inplane = [p - pts[0] for p in pts[1:]] + dirs
    assert len(inplane) >= 2
    for v in inplane:
        assert abs(v @ n) < 1e-13 * np.linalg.norm(v) * np.linalg.norm(n)


# --------------------------------------------------------------------------- elasticity
@pytest.mark.parametrize("volumetric", ["eq29", "lame"])
def test_small_strain_moduli(volumetric):
    p = MgParameters(volumetric=volumetric)
    rot = random_rotations(1, 2, 3)
    mat = MagnesiumCrystalPlasticity(rot, p, dt=1e-16)                 # no time to slip
    eps = 1e-7
    F = torch.eye(3, dtype=F64).reshape(1, 3, 3, 1, 1, 1).repeat(1, 1, 1, 2, 1, 1)
    P, _ = mat.response(F * (1 + eps))
    bulk = float(P[0, 0, 0, 0]) / (3 * eps)
    expected = 2 * p.lambda_e if volumetric == "eq29" else p.lambda_e + 2 * p.shear_modulus / 3
    assert bulk == pytest.approx(expected, rel=1e-5)
    Fs = F.clone()
    Fs[:, 0, 1] = Fs[:, 1, 0] = eps                                     # pure shear strain eps_01 = eps
    P, _ = mat.response(Fs)
    assert float(P[0, 0, 1, 0]) / (2 * eps) == pytest.approx(p.shear_modulus, rel=1e-5)


# --------------------------------------------------------------------------- tangent
@pytest.mark.parametrize("flow_rule", ["power", "overstress"])
def test_algorithmic_tangent_matches_finite_differences(flow_rule):
    rot = random_rotations(2, 6, 5)
    p = MgParameters(flow_rule=flow_rule)
    mat = MagnesiumCrystalPlasticity(rot, p, dt=2e-8, local_tol=1e-12)
    U = stretch_paths(2, 40, 0.1, 2)
    for k in range(1, 31):                      # a plastic, twinning state
        F = U[:, k].reshape(2, 3, 3, 1, 1, 1).expand(2, 3, 3, 6, 1, 1).contiguous()
        mat.response(F)
        assert not mat.commit(F).any()
    assert float(mat.twin_fraction.sum(-1).max()) > 1e-4
    g = torch.Generator().manual_seed(1)
    W = torch.randn(2, 3, 3, 6, 1, 1, generator=g, dtype=F64)
    F = U[:, 31].reshape(2, 3, 3, 1, 1, 1) + 1e-3 * (W - W.transpose(1, 2))     # rotated too
    P, tangent = mat.response(F)
    assert float(mat.response(F)[0].sub(P).abs().max()) == 0.0           # response does not move the state
    dF = torch.randn(2, 3, 3, 6, 1, 1, generator=g, dtype=F64)
    h = 1e-7
    fd = (mat.response(F + h * dF)[0] - mat.response(F - h * dF)[0]) / (2 * h)
    assert rel(tangent(dF), fd) <= 1e-6
    elastic = MagnesiumCrystalPlasticity(rot, p, dt=1e-20).response(F)[1](dF)   # same F, no slip
    assert rel(tangent(dF), elastic) > 1e-2                                        # it is plastic


# --------------------------------------------------------------------------- Taylor
def test_identical_grains_equal_the_point_and_batches_equal_single_paths():
    rot1 = random_rotations(3, 1, 9)                                  # one orientation per path
    U = stretch_paths(3, 40, 0.1, 4)
    dt = 1e-5 / 40
    taylor = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot1.expand(3, 3, 3, 4, 1, 1).contiguous(), dt=dt),
                                     U, 4, dt=dt)
    assert torch.all(taylor.status == SolveStatus.CONVERGED)
    point = MagnesiumCrystalPlasticity(rot1, dt=dt)
    expected = []
    for k in range(1, 41):
        F = U[:, k].reshape(3, 3, 3, 1, 1, 1)
        P, _ = point.response(F)
        point.commit(F)
        expected.append(P[..., 0, 0, 0] @ U[:, k].transpose(-1, -2) / torch.linalg.det(U[:, k])[:, None, None])
    expected = torch.stack(expected, 1)
    assert rel(taylor.mean_stress[:, 1:], expected) <= 1e-12
    # 8 random grains: the batch of 3 paths equals each path solved alone
    rot = random_rotations(1, 8, 1).expand(3, 3, 3, 8, 1, 1).contiguous()
    batch = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot, dt=dt), U, 8, dt=dt)
    for b in range(3):
        one = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot[b:b + 1], dt=dt), U[b:b + 1], 8, dt=dt)
        assert rel(batch.mean_stress[b], one.mean_stress[0]) <= 1e-12


def _crystal_to_sample(axis_c, axis_a):
    """Rotation with crystal c -> axis_c and crystal a1 (x) -> axis_a (orthogonal unit vectors)."""
    c, a = np.asarray(axis_c, float), np.asarray(axis_a, float)
    c, a = c / np.linalg.norm(c), a / np.linalg.norm(a)
    return np.column_stack([a, np.cross(c, a), c])


SCHMID_CASES = {   # orientation, loading sign, expected dominant mode (by accumulated shear)
    "basal_45": (_crystal_to_sample([1, 0, 1], [1, 0, -1]), 1, 0),
    "prismatic": (_crystal_to_sample([0, 0, 1], [1, 0, 0]), 1, 1),
    "c_tension": (_crystal_to_sample([1, 0, 0], [0, 1, 0]), 1, 3),
    "c_compression": (_crystal_to_sample([1, 0, 0], [0, 1, 0]), -1, 2),
}


def test_single_crystal_flows_where_resolved_shear_reaches_the_resistance():
    """Uniaxial Cauchy stress at a constant axial rate, hardening off (g = tau0 per mode): at
    steady flow the plastic axial stretching equals the applied one, so with the current
    Schmid factors S_a = (Fe s_a)_x (Fe^-T m_a)_x and tau_a = J sigma S_a,
    D_xx = sum_a gamma'_0a |J sigma S_a / tau0_a|^2 |S_a| over the active systems (twins only
    where sigma S_a > 0)."""
    flat = dict(h=0.0, sigma_inf=0.0, h_latent=0.0)
    p = MgParameters(basal=SlipMode(tau0=0.5, **flat), prismatic=SlipMode(tau0=20.0, **flat),
                     pyramidal=SlipMode(tau0=50.5, **flat), twin=TwinMode(tau0=3.5, h=0.0, k=0.0))
    names = list(SCHMID_CASES)
    rot = rotations([[SCHMID_CASES[k][0]] for k in names])
    sign = torch.tensor([SCHMID_CASES[k][1] for k in names], dtype=F64)
    rate, n_steps, final = 2e4, 20, 4e-3                               # axial rate 1/s, strain
    dt = final / rate / n_steps
    mat = MagnesiumCrystalPlasticity(rot, p, dt=dt)

    def control(k):
        c = MacroControl.uniaxial_stress(3, 1.0, kinematics="finite")
        strain = c.strain.expand(4, 3, 3).clone()
        strain[:, 0, 0] = 1 + sign * rate * k * dt
        return MacroControl(strain, c.stress_mask, None)

    res = solve_taylor_history(mat, control, n_steps, 1, dt=dt, kinematics="finite", tol=1e-10)
    assert torch.all(res.status == SolveStatus.CONVERGED)
    F = res.mean_strain[:, -1]
    sigma = res.mean_stress[:, -1] @ F.transpose(-1, -2) / torch.linalg.det(F)[:, None, None]
    lateral = sigma.clone()
    lateral[:, 0, 0] = 0
    assert float(lateral.abs().max()) <= 1e-8 * float(sigma[:, 0, 0].abs().max())
    s, m = (torch.from_numpy(a) for a in hcp_systems(p.c_over_a))
    Fe = F @ rot[..., 0, 0, 0] @ mat.Fp_inv[:, 0]                      # lattice -> current
    S = (Fe @ s.T)[:, 0, :] * (torch.linalg.inv(Fe).transpose(-1, -2) @ m.T)[:, 0, :]   # (4, 18)
    J = torch.linalg.det(F)
    tau0 = mat.tau0
    sig = sigma[:, 0, 0]
    active = torch.ones_like(S, dtype=torch.bool)
    active[:, 12:] = (sig[:, None] * S[:, 12:]) > 0
    D = sign * rate / F[:, 0, 0]
    expected = sign * torch.sqrt(D.abs() / (mat.rate0 * (J[:, None] * S / tau0) ** 2 * S.abs() * active).sum(1))
    assert rel(sig, expected) <= 2e-3, (sig, expected)
    shear = mat.slip_by_mode()[:, 0, 0, 0]
    for b, name in enumerate(names):
        assert int(shear[b].argmax()) == SCHMID_CASES[name][2], (name, shear[b])
    assert float(mat.twin_fraction[names.index("c_compression")].sum()) == 0.0          # twins are unidirectional
    assert float(mat.twin_fraction[names.index("c_tension")].sum()) > 1e-3
    # the dominant system is the one of largest Schmid factor / resistance, at the expected value
    smax = (S.abs() / tau0 * active).argmax(1)
    assert [int(MODE_OF_SYSTEM[int(i)]) for i in smax] == [0, 1, 3, 2]
    assert float(S[0, smax[0]].abs()) == pytest.approx(0.5, abs=5e-3)                 # basal at 45 degrees
    assert float(S[1, smax[1]].abs()) == pytest.approx(np.sqrt(3) / 4, abs=5e-3)      # prismatic, load along a1


def test_time_step_refinement_of_the_mean_stress():
    """Backward Euler is first order: halving dt (50 -> 100 -> 200 steps over T = 10 us) halves
    the mean change of the mean deviatoric stress history at the 51 common times; at 200 steps
    the mean change is under 2% and the largest under 7% of the largest deviatoric stress (the
    pressure, elastic, converges faster). Measured at the dataset's 1000 steps (128 grains):
    see benchmarks/results/README.md."""
    rot = random_rotations(1, 16, 8).expand(2, 3, 3, 16, 1, 1).contiguous()
    T, out = 1e-5, []
    for n in (50, 100, 200):
        U = stretch_paths(2, n, 0.1, 12)
        res = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot, dt=T / n), U, 16, dt=T / n)
        assert torch.all(res.status == SolveStatus.CONVERGED)
        sig = res.mean_stress[:, :: n // 50]
        out.append(sig - torch.einsum("btii->bt", sig)[..., None, None] / 3 * torch.eye(3, dtype=F64))
    d1 = float((out[1] - out[0]).abs().mean())
    d2 = float((out[2] - out[1]).abs().mean())
    scale = float(out[2].abs().max())
    assert d2 < 0.7 * d1
    assert d2 < 0.02 * scale
    assert float((out[2] - out[1]).abs().max()) < 0.07 * scale


# --------------------------------------------------------------------------- failures
def test_failures_are_reported_not_silent():
    rot = random_rotations(3, 2, 4)
    mat = MagnesiumCrystalPlasticity(rot, dt=1e-6, local_max_iter=1)
    F = torch.eye(3, dtype=F64).reshape(1, 3, 3, 1, 1, 1).repeat(3, 1, 1, 2, 1, 1)
    F[1, 0, 0] = 1.3                                                    # a huge step: no convergence in 1 iteration
    F[2, 2, 2] = -1.0                                                   # det F < 0
    F[0, 0, 0] = 1 + 1e-12
    P, tangent = mat.response(F)
    failed = tangent.failed.flatten(1).any(1)
    assert failed.tolist() == [False, True, True]
    assert torch.isfinite(P[0]).all()
    U = torch.eye(3, dtype=F64).expand(3, 3, 3, 3).clone()
    U[:, 1] = F[:, :, :, 0, 0, 0]
    U[:, 2] = U[:, 1]
    res = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot, dt=1e-6, local_max_iter=1), U.transpose(0, 1)
                                  .contiguous(), 2, dt=1e-6)
    assert res.status.tolist()[0] == SolveStatus.CONVERGED
    assert all(s != SolveStatus.CONVERGED for s in res.status.tolist()[1:])
    assert torch.isnan(res.mean_stress[1:, 1:]).all() and torch.isfinite(res.mean_stress[0]).all()


def test_parameters_from_config_mapping():
    p = MgParameters.from_dict({"flow_rule": "overstress", "twin": {"tau0": 5.0}, "basal": {"m": 0.25}})
    assert p.twin.tau0 == 5.0 and p.twin.k == 40000.0 and p.basal.m == 0.25 and p.basal.h == 7100.0
    assert MgParameters.from_dict(p.to_dict()) == p
    assert MG_PAPER.pyramidal.tau0 == 50.5 and MG_PAPER.twin.gamma_t == 0.129
    with pytest.raises(ValueError):
        MgParameters.from_dict({"nonsense": 1})
    with pytest.raises(ValueError):
        MgParameters(flow_rule="linear")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rot = random_rotations(2, 8, 6)
    U = stretch_paths(2, 40, 0.1, 3)
    dt = 1e-5 / 40
    cpu = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot, dt=dt), U, 8, dt=dt)
    gpu = solve_taylor_prescribed(MagnesiumCrystalPlasticity(rot.cuda(), dt=dt), U.cuda(), 8, dt=dt)
    assert torch.all(gpu.status.cpu() == 0)
    assert rel(gpu.mean_stress.cpu()[:, 1:], cpu.mean_stress[:, 1:]) <= 1e-10
