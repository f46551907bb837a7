"""Viscoelastic matrix / elastic inclusions (paper gcnn section 3.3, A.3): material, FEM, dataset.

Verification references and tolerances:
* Prony material: the exact exponential update reproduces the closed-form ramp response to 1e-12.
* Homogeneous matrix cube, strain ramp: affine boundary displacement (any strain-rate tensor) and
  minimal boundary conditions (uniaxial stress) both match the closed-form Prony response to 1e-8
  (relative to the largest stress), for MINI and P1.
* Elastic limit, one stiff sphere at f = 0.03 in the incompressible matrix (K/G = 2,540), uniaxial
  stress: MINI's effective Young's modulus is within 3% of Einstein's E_m (1 + 2.5 f); plain P1
  locks and misses it by more than 50%.
* Elastic matrix composite: the apparent Young's modulus lies within the Voigt-Reuss bounds.
* Internal variables: the mode vectors evaluated at the quadrature points equal a point-by-point
  exact update driven by the same strains, to 1e-10.
"""

import numpy as np
import pytest

from homlearn.materials.viscoelastic import (PronySeries, PointIntegrator, ViscoelasticMaterial,
                                             isotropic_from_young_poisson, log_spaced_times, matrix_material,
                                             stretched_exponential_weights, uniaxial_stress_history)
from homlearn.microstructure.inclusions import einstein_sphere, generate_inclusions, mesh_spheres
from homlearn.solvers.fem.viscoelastic import (VOIGT, Loading, ViscoelasticSolver, quadrature_strains)

RATE = np.array([[6000.0, 150.0, 0.0], [150.0, -2500.0, 80.0], [0.0, 80.0, 1200.0]])


def voigt(t):
    return np.stack([t[..., i, j] for i, j in VOIGT], axis=-1)


@pytest.fixture(scope="module")
def cube():
    points, tets, _ = mesh_spheres(np.zeros((0, 3)), np.zeros(0), 0.3)
    return points, tets


@pytest.fixture(scope="module")
def paper_matrix():
    return matrix_material()


def relaxing_bulk():
    """A matrix whose bulk modulus relaxes too (the paper's does not: K = K_inf)."""
    tau = log_spaced_times(6, 1e-6, 1e-3)
    w = np.linspace(1.0, 2.0, 6)
    return ViscoelasticMaterial(920.0, 0.362, 700.0, 0.084, PronySeries(tau, w / w.sum()),
                                PronySeries(tau, w[::-1] / w.sum()))


# ------------------------------------------------------------------------------------ material


def test_prony_spectrum_fits_the_stretched_exponential(paper_matrix):
    tau = paper_matrix.shear.tau
    assert tau.size == 20 and np.isclose(tau[0], 1e-6) and np.isclose(tau[-1], 3160.0)
    w = paper_matrix.shear.weights
    assert np.all(w >= 0) and abs(w.sum() - 1.0) < 1e-14
    t = np.geomspace(1e-6, 3e3, 300)
    assert np.abs(paper_matrix.shear.kernel(t) - np.exp(-((t / 1e-3) ** 0.3))).max() < 0.025
    K, G = paper_matrix.relaxation_moduli(np.array([0.0, 1e5]))
    assert np.allclose(G, [0.362, 0.084], rtol=1e-12) and np.allclose(K, 920.0)
    assert paper_matrix.bulk.n_terms == 0  # K = K_inf in the paper: no bulk relaxation
    explicit = matrix_material({"shear_weights": list(range(20))})
    assert np.allclose(explicit.shear.weights, np.arange(20) / 190)
    with pytest.raises(ValueError):
        stretched_exponential_weights(tau, 1e-3, 1.5)


def test_exact_update_reproduces_the_ramp(paper_matrix):
    for mat in (paper_matrix, relaxing_bulk()):
        dt = 0.5e-6
        integ = PointIntegrator(mat, dt)
        for n in range(1, 161):
            s = integ.step(RATE * n * dt)
        ref = mat.ramp_stress(160 * dt, RATE)
        assert np.abs(s - ref).max() < 1e-12 * np.abs(ref).max()
    # the algorithmic moduli tend to the instantaneous ones for small steps, equilibrium for long ones
    assert np.allclose(paper_matrix.algorithmic_moduli(1e-12), (920.0, 0.362), rtol=1e-6)
    assert np.allclose(paper_matrix.algorithmic_moduli(1e9), (920.0, 0.084), rtol=1e-6)


def test_uniaxial_stress_reference_is_stress_free_laterally(paper_matrix):
    t, eps, sig = uniaxial_stress_history(paper_matrix, 6000.0, 0.833e-6, 100)
    assert np.abs(sig[:, 1:, 1:]).max() < 1e-12 and np.abs(sig[:, 0, 1:]).max() < 1e-12
    # nearly incompressible: lateral strain close to -eps/2, stress below the instantaneous E eps
    assert np.allclose(eps[-1, 1, 1], -0.25, atol=1e-3)
    assert 0.5 * 3 * 0.084 < sig[-1, 0, 0] < 0.5 * 3 * 0.362


# ------------------------------------------------------------------------------------ FEM


@pytest.mark.parametrize("disc", ["mini", "p1"])
def test_homogeneous_cube_matches_the_closed_form_ramp(cube, paper_matrix, disc):
    points, tets = cube
    loading = Loading(6000.0, 0.5, 25)
    for mat in (paper_matrix, relaxing_bulk()):
        sol = ViscoelasticSolver(mat, discretisation=disc).solve(
            points, tets, np.zeros(len(tets), int), loading, bc="affine", strain_rate_tensor=RATE)
        ref = voigt(mat.ramp_stress(sol.time, RATE))
        assert np.abs(sol.mean_stress - ref).max() <= 1e-8 * np.abs(ref).max()


@pytest.mark.parametrize("disc", ["mini", "p1"])
def test_homogeneous_cube_under_minimal_bcs_is_uniaxial_stress(cube, paper_matrix, disc):
    points, tets = cube
    loading = Loading(6000.0, 0.5, 40)
    sol = ViscoelasticSolver(paper_matrix, discretisation=disc).solve(points, tets, np.zeros(len(tets), int),
                                                                      loading)
    _, _, sig = uniaxial_stress_history(paper_matrix, 6000.0, loading.dt, loading.n_steps)
    scale = np.abs(sig[:, 0, 0]).max()
    assert np.abs(sol.mean_stress[:, 0] - sig[:, 0, 0]).max() <= 1e-8 * scale
    assert np.abs(sol.mean_stress[:, 1:]).max() <= 1e-8 * scale
    assert np.abs(sol.reaction_stress[1:] - sig[1:, 0, 0]).max() <= 1e-8 * scale


@pytest.fixture(scope="module")
def einstein_cell():
    return einstein_sphere(0.03, h=0.1, curvature_points=24)


def test_mini_hits_einstein_and_p1_locks(einstein_cell):
    """Rigid-sphere dilute limit E = E_m (1 + 2.5 f) in the incompressible matrix (instantaneous
    moduli K = 920, G = 0.362 MPa, elastic), glass sphere, f = 0.03, uniaxial stress."""
    c = einstein_cell
    f = 0.03
    assert abs(c.cluster_volume[1] - f) < 0.002  # the meshed sphere (inscribed polyhedron)
    matrix = ViscoelasticMaterial.elastic(920.0, 0.362)
    einstein = matrix.young * (1.0 + 2.5 * f)
    strain = 0.01
    moduli = {}
    for disc in ("mini", "p1"):
        sol = ViscoelasticSolver(matrix, discretisation=disc).solve(c.points, c.tets, c.cell_phase,
                                                                    Loading(1.0, strain, 1))
        moduli[disc] = sol.mean_stress[-1, 0] / strain
        assert abs(sol.reaction_stress[-1] - sol.mean_stress[-1, 0]) < 1e-8 * abs(sol.mean_stress[-1, 0])
    assert abs(moduli["mini"] / einstein - 1.0) < 0.03, moduli
    assert moduli["p1"] / einstein - 1.0 > 0.5, moduli  # locking: far too stiff


@pytest.fixture(scope="module")
def composite():
    return generate_inclusions(3, target_cells=6000, curvature_points=10)


def _young_bounds(fractions, KG):
    """Reuss: 1 / sum f_i / E_i (uniform uniaxial stress). Upper: the energy of uniform uniaxial
    strain with the best common lateral contraction, min over nu* of sum f_i e:C_i:e."""
    E = np.array([9 * K * G / (3 * K + G) for K, G in KG])
    reuss = 1.0 / np.sum(fractions / E)
    lam = np.array([K - 2 * G / 3 for K, G in KG])
    mu = np.array([G for _, G in KG])
    # e = diag(1, -nu, -nu): energy(nu) = lam (1 - 2 nu)^2 + 2 mu (1 + 2 nu^2); minimise the average
    a = np.sum(fractions * (4 * lam + 4 * mu))
    b = np.sum(fractions * (-4 * lam))
    c = np.sum(fractions * (lam + 2 * mu))
    nu = -b / (2 * a)
    return reuss, a * nu**2 + b * nu + c


@pytest.mark.parametrize("disc", ["mini", "p1"])
def test_elastic_composite_within_voigt_reuss(composite, disc):
    c = composite
    matrix_KG = isotropic_from_young_poisson(1000.0, 0.3)
    matrix = ViscoelasticMaterial.elastic(*matrix_KG)
    glass = (60000.0, 0.33)
    fractions = c.cluster_volume[[0]].tolist() + [c.cluster_volume[1:].sum()]
    lower, upper = _young_bounds(np.array(fractions), [matrix_KG, isotropic_from_young_poisson(*glass)])
    sol = ViscoelasticSolver(matrix, glass, discretisation=disc).solve(c.points, c.tets, c.cell_phase,
                                                                       Loading(1.0, 0.01, 1))
    E = sol.mean_stress[-1, 0] / 0.01
    assert lower < E < upper, (lower, E, upper)
    assert E > 1.1 * 1000.0  # the glass stiffens it


def test_composite_history_reaction_and_quadrature_internal_variables(paper_matrix):
    """On a real composite: volume average = reaction, lateral mean stresses vanish, the response
    relaxes (below the instantaneous elastic line), and the mode vectors are the quadrature-point
    internal variables of a point-by-point exact update."""
    c = generate_inclusions(11, n_inclusions=(3, 3), target_cells=1500, curvature_points=8)
    loading = Loading(6000.0, 0.5, 12)
    solver = ViscoelasticSolver(paper_matrix)
    sol = solver.solve(c.points, c.tets, c.cell_phase, loading, record_history=True)
    sxx = sol.mean_stress[:, 0]
    assert np.all(np.diff(sxx) > 0)
    assert np.abs(sol.reaction_stress[1:] - sxx[1:]).max() < 1e-8 * sxx[-1]
    assert np.abs(sol.mean_stress[:, 1:]).max() < 1e-8 * sxx[-1]
    elastic = ViscoelasticSolver(ViscoelasticMaterial.elastic(920.0, 0.362)).solve(
        c.points, c.tets, c.cell_phase, Loading(6000.0, 0.5, 1))
    assert sxx[-1] < 0.9 * elastic.mean_stress[-1, 0]

    st = sol.state
    strains, is_m = quadrature_strains(st, st["u_history"], degree=2)  # (steps+1, C, Q, 3, 3)
    integ = PointIntegrator(paper_matrix, loading.dt, shape=strains.shape[1:3])
    for n in range(1, loading.n_steps + 1):
        integ.step(strains[n])
    h_modes, _ = quadrature_strains(st, st["w_shear"], degree=2)  # eps(w_k); h_k = dev eps(w_k)
    tr = np.trace(h_modes, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3.0
    dev_w = h_modes - tr
    err = np.abs(dev_w[:, is_m] - integ.h_dev[:, is_m]).max()
    assert err < 1e-10 * np.abs(integ.h_dev).max()


def test_bad_input(cube, paper_matrix):
    points, tets = cube
    solver = ViscoelasticSolver(paper_matrix)
    with pytest.raises(ValueError, match="cell_phase"):
        solver.solve(points, tets, np.full(len(tets), 2))
    with pytest.raises(ValueError, match="affine"):
        solver.solve(points, tets, np.zeros(len(tets), int), bc="affine")
    with pytest.raises(ValueError, match="discretisation"):
        ViscoelasticSolver(paper_matrix, discretisation="p2")
    with pytest.raises(ValueError):
        ViscoelasticMaterial(920.0, 0.362, 920.0, 0.5)


# ------------------------------------------------------------------------------------ dataset


def test_dataset_stages_graph_form_and_resume(tmp_path):
    import xarray as xr

    from homlearn.config import validate_config
    from homlearn.data.store import read_ragged
    from homlearn.datasets.viscoelastic3d import run_microstructure_stage, run_solve_stage

    cfg = validate_config({"viscoelastic3d": {"n_samples": 3, "seed": 4, "target_cells": 1500, "max_cells": 8000,
                                              "curvature_points": 8, "loading": {"n_steps": 6}, "batch_size": 2},
                           "dask": {"progress": False}})
    v = cfg["viscoelastic3d"]
    micro, data = tmp_path / "micro.zarr", tmp_path / "data.zarr"
    m = run_microstructure_stage(v, cfg["dask"], micro)
    s = run_solve_stage(v, cfg["dask"], micro, data)
    assert m.samples_done == 3 and s.samples_done == 3 and s.samples_failed == 0
    ds = xr.open_zarr(data, consolidated=None)
    assert ds.mean_stress.shape == (3, 7, 6) and ds.attrs["solver"]["matrix"]["G"] == 0.362
    assert len(ds.attrs["deviations"]) >= 3
    for i in range(3):
        vol = read_ragged(ds, "cell_volume", i)
        cluster = read_ragged(ds, "cell_cluster", i)
        phase = read_ragged(ds, "cell_phase", i)
        assert abs(vol.sum() - 1.0) < 1e-12
        assert np.array_equal(phase, (cluster > 0).astype(np.int8))
        n_inc = int(ds.n_inclusions[i])
        cvol = read_ragged(ds, "cluster_volume", i)
        assert len(cvol) == n_inc + 1 and np.allclose(cvol, np.bincount(cluster, weights=vol))
        assert np.array_equal(read_ragged(ds, "cluster_phase", i), (np.arange(n_inc + 1) > 0).astype(np.int8))
        ce = read_ragged(ds, "cluster_edge", i)
        assert np.array_equal(ce, np.column_stack([np.zeros(n_inc, int), np.arange(1, n_inc + 1)]))
        edges = read_ragged(ds, "edge_cells", i)
        assert edges.max() < len(vol) and np.all(edges[:, 0] < edges[:, 1])
        assert np.allclose(ds.reaction_stress[i, 1:], ds.mean_stress[i, 1:, 0], rtol=1e-8)
    again = run_solve_stage(v, cfg["dask"], micro, data)
    assert again.batches_run == 0 and again.samples_done == 3
