"""composite1d (paper 'rno' section 3): the exact reduction (eq. 11-12) integrated with Radau,
checked against closed forms and against an independent integration of the unreduced unit-cell
problem (eq. 8-10). Tolerances are relative to the largest |stress| of the history unless said
otherwise; the solver runs at rtol 1e-8 / atol 1e-10 per path, whose global error measured on
random paths is ~1e-7 of the stress scale, so 1e-6 leaves a margin of 10."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.interpolate import PPoly

from homlearn.loading.paths import config_amplitude, hermite_interpolant, random_paths
from homlearn.solvers.analytic.composite1d import Segments, batch_interpolant, solve, strain_interpolant

TOL = 1e-6


def _ramp(rate, t_hold=None):
    """eps_bar(t) = rate * min(t, t_hold) as a callable t -> (1,)."""
    t_hold = np.inf if t_hold is None else t_hold
    return lambda t: np.array([rate * min(t, t_hold)])


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_single_segment_linear_maxwell_closed_form():
    """N = 1, n = 1 is a Maxwell element: under eps = r t, sigma = (sigma0 r / e0)(1 - exp(-E e0 t / sigma0))."""
    E, s0, e0, r = 4.0, 0.3, 1.0, 0.5
    t = np.linspace(0, 1, 201)
    sol = solve(Segments.make([E], [1.0], [s0], e0), _ramp(r), t)
    exact = s0 * r / e0 * (1 - np.exp(-E * e0 * t / s0))
    assert sol.success.all()
    assert _rel(sol.stress[0], exact) < TOL


def test_single_segment_n2_ramp_then_relaxation_closed_form():
    """N = 1, n = 2: ramp sigma = sigma0 sqrt(r/e0) tanh(E sqrt(r e0) t / sigma0); after the ramp
    stops at t1 the stress relaxes as sigma1 / (1 + E e0 sigma1 (t - t1) / sigma0^2)."""
    E, s0, e0, r, t1 = 2.0, 0.5, 1.0, 0.8, 0.4
    t = np.linspace(0, 1, 501)
    sol = solve(Segments.make([E], [2.0], [s0], e0), _ramp(r, t1), t)
    ramp = s0 * np.sqrt(r / e0) * np.tanh(E * np.sqrt(r * e0) * np.minimum(t, t1) / s0)
    s1 = s0 * np.sqrt(r / e0) * np.tanh(E * np.sqrt(r * e0) * t1 / s0)
    exact = np.where(t <= t1, ramp, s1 / (1 + E * e0 * s1 * (t - t1) / s0 ** 2))
    assert _rel(sol.stress[0], exact) < TOL


def test_identical_segments_are_the_single_material():
    """N equal segments of one material respond as that material alone (N = 1)."""
    paths = random_paths(2, 1, max_value=0.33, intervals="uniform", seed=5, n_steps=200)
    f = strain_interpolant(paths.t, paths.values[:, :, 0])
    one = solve(Segments.make([[3.0], [3.0]], [[7.5], [7.5]], [[0.4], [0.4]]), f, paths.t)
    many = solve(Segments.make(np.full((2, 6), 3.0), 7.5, 0.4), f, paths.t)
    assert _rel(many.stress, one.stress) < TOL


def test_linear_composite_harmonic_mean_and_mean_rate_closed_form():
    """All n = 1: d sigma/dt = Ebar (r - <e0/sigma0> sigma) with Ebar = <1/E>^-1 (eq. 11-12), so
    under eps = r t, sigma = r Ebar tau (1 - exp(-t/tau)), tau = 1 / (Ebar <e0/sigma0>)."""
    E, s0, r = np.array([1.0, 9.0, 4.0]), np.array([0.2, 0.9, 0.5]), 0.7
    t = np.linspace(0, 1, 301)
    sol = solve(Segments.make(E, np.ones(3), s0), _ramp(r), t)
    ebar = 1 / np.mean(1 / E)
    tau = 1 / (ebar * np.mean(1 / s0))
    assert _rel(sol.stress[0], r * ebar * tau * (1 - np.exp(-t / tau))) < TOL


def _full_field(E, n, s0, e0, strain, t_eval, per_segment=3):
    """The unreduced cell (eq. 8-10), independent of the reduction: the bar [0, 1] meshed with
    `per_segment` linear elements per segment; at each time the nodal displacements solve the
    finite-element equilibrium K u = f(eps_p) with u(0) = 0, u(1) = eps_bar(t); the element plastic
    strains are the ODE state, integrated with BDF (another method than the solver's Radau) at
    rtol 1e-12. Returns element stresses and plastic strains, (n_elements, T)."""
    Ee, ne, se = (np.repeat(a, per_segment) for a in (E, n, s0))
    m = len(Ee)
    h = 1.0 / m
    # interior nodes 1..m-1: sum of element forces E_e ((u_{e+1} - u_e)/h - eps_p_e) balance
    K = np.zeros((m - 1, m - 1))
    for e in range(m):
        for a in (e - 1, e):
            for b in (e - 1, e):
                if 0 <= a < m - 1 and 0 <= b < m - 1:
                    K[a, b] += Ee[e] / h * (1 if a == b else -1)

    def stresses(t, ep):
        f = np.zeros(m - 1)
        for e in range(m):  # load of the plastic strain and of the prescribed end displacement
            if e - 1 >= 0:
                f[e - 1] -= Ee[e] * ep[e]
            if e < m - 1:
                f[e] += Ee[e] * ep[e]
        f[m - 2] += Ee[m - 1] / h * strain(t)
        u = np.concatenate([[0.0], np.linalg.solve(K, f), [strain(t)]])
        return Ee * (np.diff(u) / h - ep)

    def rhs(t, ep):
        s = stresses(t, ep)
        return e0 * np.sign(s) * (np.abs(s) / se) ** ne

    res = solve_ivp(rhs, (t_eval[0], t_eval[-1]), np.zeros(m), method="BDF", t_eval=t_eval,
                    rtol=1e-12, atol=1e-14)
    assert res.success
    return np.array([stresses(t, y) for t, y in zip(res.t, res.y.T)]).T, res.y


@pytest.mark.parametrize("N", [1, 3, 5])
def test_reduction_matches_the_unreduced_cell(N):
    """The full-field cell (eq. 8-10, integrated independently): its stress is uniform in x (to
    1e-9 of max |sigma|), its mean obeys eq. 11 with <E^-1>^-1 and the mean element plastic
    strain (1e-9), and it equals the reduced solution (eq. 12) to TOL, as does xi = <eps_p>."""
    rng = np.random.default_rng(N)
    E, n, s0 = rng.uniform(1, 10, N), rng.uniform(1, 20, N), rng.uniform(0.1, 1, N)
    paths = random_paths(1, 1, max_value=0.33, intervals="uniform", seed=10 + N, n_steps=200)
    path = hermite_interpolant(paths.knots_t[0], paths.knots[0][:, 0])
    sigma_e, ep_e = _full_field(E, n, s0, 1.0, lambda t: float(path(t)), paths.t)
    smax = np.abs(sigma_e).max()
    assert np.max(np.abs(sigma_e - sigma_e.mean(axis=0))) < 1e-9 * smax       # uniform in x
    ebar = 1 / np.mean(1 / E)
    eps = paths.values[0, :, 0]
    assert np.max(np.abs(sigma_e[0] - ebar * (eps - ep_e.mean(axis=0)))) < 1e-9 * smax  # eq. 11
    sol = solve(Segments.make(E, n, s0), batch_interpolant([path]), paths.t)
    assert sol.success.all()
    assert _rel(sol.stress[0], sigma_e[0]) < TOL
    assert np.max(np.abs(sol.plastic_strain[0] - ep_e.mean(axis=0))) < TOL * np.abs(ep_e).max()
    # the segments do deform differently (the check above is not about a homogeneous bar)
    if N > 1:
        assert np.ptp(ep_e[:, -1]) > 1e-3 and np.abs(sol.plastic_strain).max() > 0.01


def test_joint_integration_keeps_each_path_within_tolerance():
    """P paths with different segment counts integrated as one system (at rtol/sqrt(P)) agree
    with each path integrated alone at rtol 1e-10, to TOL."""
    paths = random_paths(4, 1, max_value=0.33, intervals="uniform", seed=1, n_steps=200)
    rng = np.random.default_rng(2)
    young = rng.uniform(1, 10, (4, 4))
    young[:2, 2:] = np.nan  # two paths with 2 segments, two with 4
    seg = Segments.make(young, rng.uniform(1, 20, (4, 4)), rng.uniform(0.1, 1, (4, 4)))
    pieces = [hermite_interpolant(paths.knots_t[i], paths.knots[i][:, 0]) for i in range(4)]
    joint = solve(seg, batch_interpolant(pieces), paths.t)
    for p in (3,):  # a 4-segment path integrated beside three others
        ref = solve(seg.take(p), batch_interpolant([pieces[p]]), paths.t, rtol=1e-10, atol=1e-12)
        assert _rel(joint.stress[p], ref.stress[0]) < TOL
    np.testing.assert_allclose(joint.strain, paths.values[:, :, 0], rtol=0, atol=1e-15)


def test_batch_interpolant_reproduces_each_pchip_path():
    paths = random_paths(5, 1, max_value=0.33, intervals="uniform", seed=9)
    pieces = [hermite_interpolant(paths.knots_t[i], paths.knots[i][:, 0]) for i in range(5)]
    pp = batch_interpolant(pieces)
    assert isinstance(pp, PPoly)
    t = np.random.default_rng(0).uniform(0, 1, 400)
    np.testing.assert_allclose(pp(t).T, np.array([f(t) for f in pieces]), rtol=0, atol=1e-14)


def test_failed_path_is_reported_not_raised():
    """A path the integrator cannot follow is marked failed and NaN; the others are kept."""
    seg = Segments.make([[2.0], [2.0]], [[3.0], [3.0]], [[0.5], [0.5]])
    bad = lambda t: np.array([0.1 * t, np.nan if t > 0.5 else 0.1 * t])
    sol = solve(seg, bad, np.linspace(0, 1, 11))
    assert sol.success.tolist() == [True, False]
    assert np.isnan(sol.stress[1]).all() and np.isfinite(sol.stress[0]).all() and sol.messages[1]


# ---------------------------------------------------------------------------- the dataset stage

@pytest.fixture(scope="module")
def c1d_store(tmp_path_factory):
    from homlearn.config import validate_config
    from homlearn.datasets.composite1d import run_solve_stage

    root = tmp_path_factory.mktemp("composite1d")
    cfg = validate_config({"composite1d": {"segments": [1, 3], "paths_per_n": 4, "batch_size": 4,
                                           "path": {"n_steps": 200, "n_out": 50}},
                           "dask": {"progress": False}})
    rep = run_solve_stage(cfg["composite1d"], cfg["dask"], root / "c1d.zarr", 1)
    return cfg["composite1d"], cfg["dask"], root / "c1d.zarr", rep


def test_dataset_content_split_and_parameters(c1d_store):
    """Inputs (the loading module's paths), outputs, parameters and time arrays as stored: eq. 11
    holds with the stored parameters (1e-12 GPa), downsampled = fine[::4], stratified split."""
    import xarray as xr

    cfg, _, path, rep = c1d_store
    assert rep.samples_done == 8 and rep.samples_failed == 0
    ds = xr.open_zarr(path)
    assert ds.sizes == {"sample": 8, "time": 51, "time_fine": 201, "segment": 3}
    np.testing.assert_array_equal(ds["n_segments"].values, [1] * 4 + [3] * 4)
    young = ds["young"].values
    assert np.isnan(young[:4, 1:]).all() and np.isfinite(young[4:]).all()
    for name, (lo, hi) in (("young", (1, 10)), ("exponent", (1, 20)), ("yield_stress", (0.1, 1))):
        v = ds[name].values
        assert np.nanmin(v) >= lo and np.nanmax(v) <= hi
    ebar = 1 / np.nanmean(1 / young, axis=1)
    np.testing.assert_allclose(ds["effective_modulus"].values, ebar, rtol=1e-14)
    np.testing.assert_allclose(ds["stress"].values, ebar[:, None] * (ds["strain"].values - ds["plastic_strain"].values),
                               rtol=0, atol=1e-12)
    paths = random_paths(8, 1, max_value=config_amplitude(cfg["path"]), intervals="uniform", seed=cfg["seed"], n_steps=200)
    np.testing.assert_allclose(ds["strain_fine"].values, paths.values[:, :, 0], rtol=0, atol=1e-15)
    for name in ("strain", "stress", "plastic_strain"):
        np.testing.assert_array_equal(ds[name].values, ds[f"{name}_fine"].values[:, ::4])
    np.testing.assert_allclose(ds["time"].values, np.linspace(0, 1, 51), atol=1e-15)
    split = ds["split"].values
    assert [np.bincount(split[b:b + 4], minlength=2).tolist() for b in (0, 4)] == [[3, 1], [3, 1]]
    assert np.abs(ds["plastic_strain"].values).max() > 0.01 and "deviation" in ds.attrs


def test_dataset_sample_is_its_own_material_and_path(c1d_store):
    """Every path of one N loads the same composite (materials: per_n); sample 6 re-solved alone
    (its stored parameters, path 6 of the seed) gives its stored stress; per_sample draws one
    composite per path."""
    import xarray as xr

    from homlearn.config import validate_config
    from homlearn.datasets.composite1d import sample_segments

    cfg, _, path, _ = c1d_store
    ds = xr.open_zarr(path)
    for name in ("young", "exponent", "yield_stress"):
        v = ds[name].values
        for block in (slice(0, 4), slice(4, 8)):
            assert np.array_equal(v[block], np.repeat(v[block][:1], 4, axis=0), equal_nan=True)
        assert not np.array_equal(v[0, :1], v[4, :1])
    own = validate_config({"composite1d": {**cfg, "materials": "per_sample"}})["composite1d"]
    assert not np.array_equal(sample_segments(own, 4)[0], sample_segments(own, 5)[0])
    paths = random_paths(1, 1, max_value=config_amplitude(cfg["path"]), intervals="uniform", seed=cfg["seed"], n_steps=200, first_index=6)
    seg = Segments.make(ds["young"].values[6], ds["exponent"].values[6], ds["yield_stress"].values[6])
    sol = solve(seg, batch_interpolant([hermite_interpolant(paths.knots_t[0], paths.knots[0][:, 0])]), paths.t)
    assert _rel(ds["stress_fine"].values[6], sol.stress[0]) < TOL


def test_dataset_resumes_and_is_reproducible(c1d_store):
    """A rerun does nothing; a batch marked pending again (a killed task) is redone identically."""
    import zarr

    from homlearn.datasets.composite1d import run_solve_stage

    cfg, dask_cfg, path, _ = c1d_store
    assert run_solve_stage(cfg, dask_cfg, path, 1).batches_run == 0
    g = zarr.open_group(path, mode="r+")
    before = g["stress_fine"][4:8]
    g["status"][4:8] = 0
    rep = run_solve_stage(cfg, dask_cfg, path, 1)
    assert rep.batches_run == 1 and rep.samples_run == 4 and rep.samples_done == 8
    np.testing.assert_array_equal(zarr.open_group(path)["stress_fine"][4:8], before)


def test_histories_of_one_n_do_not_depend_on_the_other_n(tmp_path):
    """Batches of 4 over blocks of 3 paths straddle N = 1 and N = 3; every N's block is solved as
    its own system, so N = 1's histories are bit-identical to those of a store with N = 1 alone
    (and trained models of N = 1 keep their dataset fingerprint when an N is added)."""
    import xarray as xr

    from homlearn.config import validate_config
    from homlearn.datasets.composite1d import run_solve_stage

    def store(segments):
        cfg = validate_config({"composite1d": {"segments": segments, "paths_per_n": 3, "batch_size": 4,
                                               "path": {"n_steps": 100, "n_out": 20}},
                               "dask": {"progress": False}})
        run_solve_stage(cfg["composite1d"], cfg["dask"], tmp_path / f"{len(segments)}.zarr", 1)
        return xr.open_zarr(tmp_path / f"{len(segments)}.zarr")

    alone, mixed = store([1]), store([1, 3])
    np.testing.assert_array_equal(mixed["n_segments"].values, [1, 1, 1, 3, 3, 3])
    for name in ("stress_fine", "plastic_strain_fine", "split"):
        np.testing.assert_array_equal(mixed[name].values[:3], alone[name].values)
    assert np.abs(alone["plastic_strain_fine"].values).max() > 1e-3  # plastic flow, not a trivial elastic path


def test_internal_variable_floor_study_on_a_composite1d_store(c1d_store, floor_study, tmp_path):
    """benchmarks/internal_variable_floor.py on composite1d: with xi = <eps_p> the stress is eq. 11,
    affine in (eps_bar, xi) for one composite, so the least-squares f reproduces the stored stress
    to round-off; one state variable; an N the store does not hold is refused, naming the ones it does."""
    import json

    study = floor_study
    _, _, store, _ = c1d_store
    out = tmp_path / "floor.json"
    res = study.main([str(store), str(out), "--segments", "3", "--epochs", "2", "--width", "8", "--depth", "1"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res)) and res["segments"] == 3
    assert [r["variant"] for r in res["rows"]] == list(study.VARIANTS)
    for r in res["rows"]:
        assert r["n_state"] == 1 and r["f_teacher_forced_test"] < 1e-9
        for split in ("train", "test"):
            assert all(np.isfinite(v) and v > 0 for v in r[split].values())
    with pytest.raises(ValueError, match=r"--segments must be one of the store's N \[1, 3\], got 2"):
        study.main([str(store), str(tmp_path / "no.json"), "--segments", "2"])
