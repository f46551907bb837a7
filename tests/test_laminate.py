"""laminate (paper 'rno' section 4): the per-step Newton solution (SDIRK3 in time) against
independent solve_ivp integrations of the same physics written as ODEs, and the interface
(eq. 23-24) and plane-stress conditions at every step.

Errors are measured as in the paper's eq. 16, relative L2 over the history,
||sigma - sigma_ref|| / ||sigma_ref||, and in the max norm relative to max |sigma_ref|. Measured
on random paths (max strain 33%) with solver step 1e-3 (half the dataset's 2000 steps per unit
time, to keep the tests fast): L2 1e-4 to 6e-4, max norm up to 7e-3 (at the sharpest turns of
the paths); the bounds below are 2e-3 and 2e-2. Newton's tolerance
is NEWTON_TOL * max(sigma0) = 5e-8 MPa on the interface tractions and <sigma33>."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from homlearn.loading.paths import config_amplitude, hermite_interpolant, random_paths
from homlearn.solvers.analytic.laminate import CASES, NEWTON_TOL, case, solve
from homlearn.solvers.analytic.composite1d import batch_interpolant

L2_TOL, MAX_TOL = 2e-3, 2e-2


def _paths(n, seed, n_steps=500, t_final=0.5):
    """Random paths (max strain 33%) on the dataset's solver step dt = 1e-3, over half its duration."""
    paths = random_paths(n, 3, max_value=0.33, intervals="uniform", seed=seed, n_steps=n_steps, t_final=t_final)
    pieces = [hermite_interpolant(paths.knots_t[k], paths.knots[k][:, c]) for k in range(n) for c in range(3)]
    pp = batch_interpolant(pieces)
    return paths, (lambda t: np.asarray(pp(t)).reshape(n, 3))


def _reference(mat, path_fn, t_eval, k, laminate=True):
    """Independent integration with Radau (rtol 1e-10) of eq. 18-20 as an ODE in the plastic
    strains and q, flow rule inverted to q_dot = q0_dot ((s_bar/sigma0 - H(q))_+)^(1/m).

    laminate=True: two layers whose strains follow in closed form from the state by eq. 24 and
    <sigma33> = 0. laminate=False: one homogeneous material point under plane stress (sigma33 = 0),
    the '+' layer's parameters. Written with plain floats, sharing no code with the solver."""
    lam, mu, q0 = mat.lam, mat.mu, mat.q0_dot
    layers = 2 if laminate else 1
    s0, m = mat.sigma0[:layers], mat.m[:layers]

    def H(q, s):
        return 1.0 if mat.hardening == "none" else 1.0 - math.exp(-mat.h * q / s)

    def stresses(t, y):
        e11, e22, e12 = (float(v) for v in path_fn(t)[k])
        p = [y[4 * i:4 * i + 4] for i in range(layers)]  # ep11, ep22, ep12, q
        p33 = [-(a[0] + a[1]) for a in p]
        if laminate:
            a1 = mu / (lam + 2 * mu) * (p[0][0] - p[1][0])
            a2 = p[0][2] - p[1][2]
            e33 = (2 * mu * 0.5 * (p33[0] + p33[1]) - lam * (e11 + e22)) / (lam + 2 * mu)
            strains = [(e11 + a1, e22, e33, e12 + a2 / 2), (e11 - a1, e22, e33, e12 - a2 / 2)]
        else:
            e33 = (2 * mu * p33[0] - lam * (e11 + e22)) / (lam + 2 * mu)
            strains = [(e11, e22, e33, e12)]
        out = []
        for (x11, x22, x33, x12), a, a33 in zip(strains, p, p33):
            ee = (x11 - a[0], x22 - a[1], x33 - a33, x12 - a[2])
            tr = ee[0] + ee[1] + ee[2]
            out.append((lam * tr + 2 * mu * ee[0], lam * tr + 2 * mu * ee[1], lam * tr + 2 * mu * ee[2],
                        2 * mu * ee[3]))
        return out, p

    def rhs(t, y):
        sig, p = stresses(t, y)
        dy = []
        for (x11, x22, x33, x12), a, s_0, mm in zip(sig, p, s0, m):
            mean = (x11 + x22 + x33) / 3
            d11, d22, d33 = x11 - mean, x22 - mean, x33 - mean
            sbar = math.sqrt(1.5 * (d11 * d11 + d22 * d22 + d33 * d33 + 2 * x12 * x12))
            over = sbar / s_0 - H(a[3], s_0)
            qd = q0 * over ** (1 / mm) if over > 0 else 0.0
            f = 1.5 * qd / sbar if qd > 0 else 0.0
            dy += [f * d11, f * d22, f * x12, qd]
        return dy

    res = solve_ivp(rhs, (t_eval[0], t_eval[-1]), np.zeros(4 * layers), method="Radau", t_eval=t_eval,
                    rtol=1e-10, atol=1e-12)
    assert res.success, res.message
    sig = np.array([[(s[0], s[1], s[3]) for s in stresses(t, y)[0]] for t, y in zip(res.t, res.y.T)])
    return sig.mean(axis=1), res.y  # (T, 3) mean in-plane stress (11, 22, 12), state


def _errors(s, ref):
    return (np.sqrt(np.sum((s - ref) ** 2) / np.sum(ref ** 2)), np.max(np.abs(s - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("name", ["MH"])
def test_equal_layers_reduce_to_homogeneous_plane_stress_j2(name):
    """Equal layers: no jump (a = 0, layer fields identical to 1e-12), sigma33 = 0 in each layer
    (1e-6 MPa), and the mean stress is the homogeneous plane-stress J2 response (independent
    ODE) to L2_TOL and MAX_TOL."""
    paths, fn = _paths(1, seed=21)
    sol = solve(case(name), paths.t, paths.values, path=fn, keep_layers=True)
    assert sol.success.all()
    eps, sig = sol.layer_strain, sol.layer_stress
    assert np.max(np.abs(eps[:, :, 0] - eps[:, :, 1])) < 1e-12
    assert np.max(np.abs(sig[:, :, 0] - sig[:, :, 1])) < 1e-6
    assert np.max(np.abs(sig[:, :, :, 2])) < 1e-6  # plane stress holds in each layer
    ref, _ = _reference(case(name), fn, paths.t, 0, laminate=False)
    l2, mx = _errors(sol.stress[0], ref)
    assert l2 < L2_TOL and mx < MAX_TOL, (l2, mx)
    assert np.nanmax(sol.accumulated_plastic_strain) > 0.1  # deep in the plastic range


@pytest.mark.parametrize("name", ["M3-EH"])
def test_contrast_laminate_matches_independent_ode(name):
    """M3-EH (contrast 10 and hardening): stress and the eight state variables equal an
    independent integration in which the layer strains follow from eq. 24 in closed form
    (L2_TOL, MAX_TOL on stress; the plastic strains and q to 2e-3 of their largest value)."""
    paths, fn = _paths(1, seed=3, n_steps=300, t_final=0.3)
    sol = solve(case(name), paths.t, paths.values, path=fn)
    ref, y = _reference(case(name), fn, paths.t, 0)
    l2, mx = _errors(sol.stress[0], ref)
    assert l2 < L2_TOL and mx < MAX_TOL, (l2, mx)
    ep_ref = np.stack([y[[0, 1, 2]].T, y[[4, 5, 6]].T], axis=1)  # (T, layer, 11 22 12)
    assert np.max(np.abs(sol.plastic_strain[0] - ep_ref)) < 2e-3 * np.abs(ep_ref).max()
    q_ref = y[[3, 7]].T
    assert np.max(np.abs(sol.accumulated_plastic_strain[0] - q_ref)) < 2e-3 * q_ref.max()
    # the soft '+' layer flows more (paper Fig. 4c)
    assert q_ref[-1, 0] > q_ref[-1, 1]


def _smooth(t):
    """A smooth in-plane path beyond yield: (eps11, eps22, eps12)(t), shape (1, 3)."""
    return np.array([[0.03 * np.sin(2 * np.pi * t), 0.02 * np.sin(np.pi * t), 0.015 * (1 - np.cos(2 * np.pi * t))]])


def test_time_integration_converges_at_higher_order_than_backward_euler():
    """On a smooth path (M1), SDIRK3's L2 error falls by more than 8 from 100 to 400 steps (it
    measured 50 here; order reduction at the elastic-plastic switches can keep it below 64) and
    is below 2e-5 at 400 steps (measured 6e-6); backward Euler is first order (ratio 2 per
    halving, 1.8-2.2 asserted)."""
    t_ref = np.linspace(0, 1, 401)
    ref = _reference(case("M1"), _smooth, t_ref, 0)[0]
    err = {}
    for method, n in (("sdirk3", 100), ("sdirk3", 400), ("be", 200), ("be", 400)):
        t = np.linspace(0, 1, n + 1)
        sol = solve(case("M1"), t, np.stack([_smooth(x)[0] for x in t])[None], path=_smooth, method=method)
        err[method, n] = _errors(sol.stress[0], ref[::400 // n])[0]
    assert err["sdirk3", 100] / err["sdirk3", 400] > 8 and err["sdirk3", 400] < 2e-5, err
    assert 1.8 < err["be", 200] / err["be", 400] < 2.2, err
    assert err["be", 400] > 100 * err["sdirk3", 400], err


def test_interface_and_plane_stress_conditions_at_every_step():
    """M3 (contrast 10 in sigma0): at every step, eq. 23 (eps+ - eps- = a(x)e1 + e1(x)a, so eps22
    and eps33 continuous; (sigma+ - sigma-) e1 = 0 to Newton's tolerance), eq. 24 (a1, a2 from the
    plastic-strain jumps), the prescribed mean strain, and plane stress <sigma33> = 0 (sigma13 =
    sigma23 = 0 identically). sigma33 itself jumps between layers (it is not an interface traction)."""
    paths, fn = _paths(3, seed=5, n_steps=300)
    mat = case("M3")
    sol = solve(mat, paths.t, paths.values, path=fn, keep_layers=True)
    assert sol.success.all()
    tol = NEWTON_TOL * max(mat.sigma0)
    eps, sig, ep = sol.layer_strain, sol.layer_stress, sol.plastic_strain  # [11, 22, 33, 12]
    np.testing.assert_allclose(eps[:, :, :, [0, 1, 3]].mean(axis=2), paths.values, rtol=0, atol=1e-14)
    assert np.max(np.abs(eps[:, :, 0, 1] - eps[:, :, 1, 1])) < 1e-14      # eps22 continuous
    assert np.max(np.abs(eps[:, :, 0, 2] - eps[:, :, 1, 2])) < 1e-14      # eps33 continuous
    assert np.max(np.abs(sig[:, :, 0, 0] - sig[:, :, 1, 0])) <= tol       # sigma11 continuous
    assert np.max(np.abs(sig[:, :, 0, 3] - sig[:, :, 1, 3])) <= tol       # sigma12 continuous
    assert np.max(np.abs(sol.mean_stress33)) <= tol                       # plane stress
    a1 = (eps[:, :, 0, 0] - eps[:, :, 1, 0]) / 2
    a2 = eps[:, :, 0, 3] - eps[:, :, 1, 3]
    modulus = mat.lam + 2 * mat.mu
    np.testing.assert_allclose(a1, mat.mu / modulus * (ep[:, :, 0, 0] - ep[:, :, 1, 0]), rtol=0,
                               atol=2 * tol / modulus)
    np.testing.assert_allclose(a2, ep[:, :, 0, 2] - ep[:, :, 1, 2], rtol=0, atol=2 * tol / mat.mu)
    assert np.abs(a2).max() > 0.01 and np.abs(sig[:, :, 0, 2]).max() > 1.0  # not a trivial solution


def test_table1_cases_by_name():
    assert sorted(CASES) == sorted(["MH", "M1", "M2", "M3", "M4", "MH-EH", "M3-EH"])
    assert case("M2").sigma0 == (100.0, 500.0) and case("M2").m == (0.04, 0.2)
    assert case("M4").m == (0.4, 0.2) and case("M3-EH").hardening == "exponential"
    assert case("MH").lam == 24_000.0 and case("MH").mu == 25_000.0 and case("MH").q0_dot == 1.0
    assert case("M1", h=2000.0).h == 2000.0
    with pytest.raises(ValueError, match="unknown laminate case"):
        case("M9")


def test_unconverged_path_is_reported_and_the_others_go_on():
    """With no Newton iterations allowed, a plastic path fails (NaN, message); an elastic one
    (tiny strain) still succeeds."""
    paths, _ = _paths(2, seed=1, n_steps=20)
    strain = paths.values.copy()
    strain[1] *= 1e-4
    sol = solve(case("M1"), paths.t, strain, method="be", max_iter=0)
    assert sol.success.tolist() == [False, True]
    assert np.isnan(sol.stress[0]).all() and "did not converge" in sol.messages[0]
    assert np.isfinite(sol.stress[1]).all()


# ---------------------------------------------------------------------------- the dataset stage

def _stored_stress(mat, strain, ep):
    """Mean in-plane stress from stored mean strains (T, 3) and layer plastic strains (T, 2, 3)
    alone, by eq. 24 and <sigma33> = 0 in closed form: the stored model variables are the state."""
    lam, mu = mat.lam, mat.mu
    e11, e22, e12 = strain[:, 0], strain[:, 1], strain[:, 2]
    p11, p22, p12 = ep[..., 0], ep[..., 1], ep[..., 2]
    p33 = -(p11 + p22)
    a1 = mu / (lam + 2 * mu) * (p11[:, 0] - p11[:, 1])
    a2 = p12[:, 0] - p12[:, 1]
    e33 = (2 * mu * p33.mean(axis=1) - lam * (e11 + e22)) / (lam + 2 * mu)
    sgn = np.array([1.0, -1.0])
    x11 = e11[:, None] + sgn * a1[:, None]
    x12 = e12[:, None] + sgn * a2[:, None] / 2
    tr = x11 + e22[:, None] + e33[:, None]
    s11 = lam * tr + 2 * mu * (x11 - p11)
    s22 = lam * tr + 2 * mu * (e22[:, None] - p22)
    s12 = 2 * mu * (x12 - p12)
    return np.stack([s11.mean(1), s22.mean(1), s12.mean(1)], axis=1)


@pytest.fixture(scope="module")
def lam_stores(tmp_path_factory):
    from homlearn.config import validate_config
    from homlearn.datasets.laminate import run_solve_stage

    root = tmp_path_factory.mktemp("laminate")
    cfg = validate_config({"laminate": {"n_trajectories": 6, "batch_size": 3, "path": {"n_steps": 200, "n_out": 20}},
                           "dask": {"progress": False}})
    reps = {c: run_solve_stage(cfg["laminate"], cfg["dask"], c, root / f"{c}.zarr", 1) for c in ("M2", "MH-EH")}
    return cfg["laminate"], cfg["dask"], root, reps


def test_dataset_content_state_variables_and_split(lam_stores):
    import xarray as xr

    cfg, _, root, reps = lam_stores
    a, b = (xr.open_zarr(root / f"{c}.zarr") for c in ("M2", "MH-EH"))
    assert all(r.samples_done == 6 and r.samples_failed == 0 for r in reps.values())
    assert a.sizes == {"sample": 6, "time": 21, "layer": 2, "component": 3}
    paths = random_paths(6, 3, max_value=config_amplitude(cfg["path"]), intervals="uniform", seed=cfg["seed"], n_steps=200)
    np.testing.assert_allclose(a["strain"].values, paths.values[:, ::10], rtol=0, atol=1e-15)
    assert 0.05 < np.abs(a["strain"].values).max() <= 0.33  # "a maximum strain of 33%" (rno sec. 4)
    np.testing.assert_array_equal(a["strain"].values, b["strain"].values)   # the same paths for every case
    np.testing.assert_array_equal(a["split"].values, b["split"].values)
    assert np.bincount(a["split"].values).tolist() == [5, 1]               # round(0.8 * 6) train
    assert a["yield_stress"].values.tolist() == [100.0, 500.0] and a["rate_exponent"].values.tolist() == [0.04, 0.2]
    assert b.attrs["material"]["hardening"] == "exponential" and b.attrs["material"]["h_MPa"] == 1000.0
    for ds, name in ((a, "M2"), (b, "MH-EH")):
        mat = case(name)
        assert float(ds["residual"].max()) <= NEWTON_TOL * max(mat.sigma0)
        for s in range(6):  # the stored state variables reproduce the stored stress (eq. 24)
            np.testing.assert_allclose(_stored_stress(mat, ds["strain"].values[s], ds["plastic_strain"].values[s]),
                                       ds["stress"].values[s], rtol=0, atol=1e-6)
        q, ep = ds["accumulated_plastic_strain"].values, ds["plastic_strain"].values
        assert np.all(np.diff(q, axis=1) >= 0) and q.max() > 0.1
        norm = np.sqrt(ep[..., 0] ** 2 + ep[..., 1] ** 2 + (ep[..., 0] + ep[..., 1]) ** 2 + 2 * ep[..., 2] ** 2)
        assert np.all(np.sqrt(2 / 3) * norm <= q + 1e-5)  # q accumulates |eps_p_dot|
    assert a["accumulated_plastic_strain"].values[:, -1, 0].mean() > a["accumulated_plastic_strain"].values[:, -1, 1].mean()


def test_dataset_rerun_does_nothing_and_failures_are_recorded(lam_stores, tmp_path):
    import json

    import zarr

    from homlearn.datasets.laminate import run_solve_stage

    cfg, dask_cfg, root, _ = lam_stores
    assert run_solve_stage(cfg, dask_cfg, "M2", root / "M2.zarr", 1).batches_run == 0
    log = tmp_path / "failures.jsonl"
    bad = {**cfg, "max_iter": 1}  # one Newton iteration per stage cannot meet the tolerance
    rep = run_solve_stage(bad, dask_cfg, "M3", tmp_path / "bad.zarr", 1, failure_log=log)
    assert rep.samples_failed == 6 and rep.samples_pending == 0 and not rep.broken_batches
    assert (zarr.open_group(tmp_path / "bad.zarr")["status"][:] == -2).all()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 6 and "did not converge" in lines[0]["reason"]


def test_more_paths_keep_the_test_set_with_drawn_over(lam_stores, tmp_path):
    """split.drawn_over: a store grown beyond the paper's size keeps the smaller store's paths,
    stresses and test paths; the added paths all train; a drawn_over above n_trajectories is refused."""
    import xarray as xr

    from homlearn.config import ConfigError, validate_config
    from homlearn.data.split import draw_split
    from homlearn.datasets.laminate import run_solve_stage

    cfg, dask_cfg, root, _ = lam_stores
    big = {**cfg, "n_trajectories": 9, "split": {**cfg["split"], "drawn_over": 6}}
    rep = run_solve_stage(big, dask_cfg, "M2", tmp_path / "big.zarr", 1)
    assert rep.samples_done == 9 and rep.samples_failed == 0
    a, b = xr.open_zarr(root / "M2.zarr"), xr.open_zarr(tmp_path / "big.zarr")
    for name in ("strain", "stress", "split"):
        np.testing.assert_array_equal(b[name].values[:6], a[name].values)
    assert b["split"].values[6:].tolist() == [0, 0, 0]
    assert draw_split(9, [0.8, 0.2], 3, drawn_over=9).tolist() == draw_split(9, [0.8, 0.2], 3).tolist()
    with pytest.raises(ValueError, match="laminate.split.drawn_over .10. exceeds laminate.n_trajectories .9."):
        run_solve_stage({**big, "split": {**cfg["split"], "drawn_over": 10}}, dask_cfg, "M2", tmp_path / "bad.zarr", 1)
    with pytest.raises(ConfigError, match="laminate.split.drawn_over"):
        validate_config({"laminate": {"split": {"drawn_over": 0}}})


def test_return_map_at_the_yield_threshold():
    """m = 0.02 (M3's soft layer): an overstress too small for any representable increment (the
    rate term (dq/dt)^m is 4e-7 sigma0 even at dq = 1e-304) is an elastic step, not a failure;
    slightly above, dq > 0 solves the flow rule s_bar = sigma0 (1 + (dq/dt)^m) + 3 mu dq."""
    from homlearn.solvers.analytic.laminate import _return_map

    mat, dt = case("M3"), 1e-3
    s0, m = np.full((2, 1), 50.0), np.full((2, 1), 0.02)
    for over, plastic in ((1e-9, False), (1e-3, True)):
        eps = np.zeros((2, 1, 4))  # pure shear: trial s_bar = sqrt(3) 2 mu eps12 = (1 + over) sigma0
        eps[..., 3] = (1 + over) * 50.0 / (np.sqrt(3) * 2 * mat.mu)
        sig, ep, q, dq, _, conv = _return_map(mat, eps, np.zeros((2, 1, 4)), np.zeros((2, 1)), dt, s0, m,
                                              np.zeros((2, 1)))
        assert conv.all() and (dq > 0).all() == plastic
        if plastic:
            sbar = np.sqrt(3) * np.abs(sig[..., 3])
            np.testing.assert_allclose(sbar, 50.0 * (1 + (dq / dt) ** 0.02), rtol=1e-11)


def test_internal_variable_floor_study_on_a_store(lam_stores, floor_study, tmp_path):
    """benchmarks/internal_variable_floor.py: the mean stress is affine in the mean strain and
    the layer plastic strains (equal elastic moduli in both layers, eq. 23-24), so its least-squares f
    reproduces the stored stress from the stored plastic strains to round-off; the study then fits
    g on a tiny budget and writes finite eq. 16 errors for both input sets (M2: six state variables,
    the layers differ)."""
    import json

    study = floor_study
    _, _, root, _ = lam_stores
    out = tmp_path / "floor.json"
    res = study.main([str(root / "M2.zarr"), str(out), "--epochs", "2", "--width", "8", "--depth", "1"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert [r["variant"] for r in res["rows"]] == list(study.VARIANTS)
    for r in res["rows"]:
        assert r["n_state"] == 6 and r["f_teacher_forced_test"] < 1e-9
        for split in ("train", "test"):
            assert all(np.isfinite(v) and v > 0 for v in r[split].values())


@pytest.mark.parametrize("name", ["MH", "M4"])
def test_overstress_relaxes_at_the_closed_form_rate_under_held_shear(name):
    """Pure shear <eps12> ramped into flow at 2/s, then held. On MH (equal layers, one material
    point) the overstress D = sqrt(3) |sigma12| - sigma0 then follows dD/dt = -3 mu q0_dot
    (D / sigma0)^(1/m) (eq. 18-19, H = 1), whose solution is D(t) = (D0^p + (1/m - 1) 3 mu q0_dot
    sigma0^(-1/m) t)^(1/p), p = 1 - 1/m. SDIRK3 at dt = 2e-6 follows it over 20 ms of hold, in
    which D falls from 591 to 266 MPa, to 4e-11 (bound 1e-6). relaxation_rate is the
    linearisation -d(dD/dt)/dD (central differences, 1e-6), on MH and on M4's '+' layer (m = 0.4)."""
    from homlearn.solvers.analytic.laminate import relaxation_rate

    mat = case(name)
    mu, q0, s0, m = mat.mu, mat.q0_dot, mat.sigma0[0], mat.m[0]

    def rate(d):  # dD/dt of the '+' layer
        return -3.0 * mu * q0 * (d / s0) ** (1.0 / m)

    for d in (5.0, 50.0, 150.0):
        q_dot = q0 * (d / s0) ** (1.0 / m)
        h = 1e-4 * d
        lin = -(rate(d + h) - rate(d - h)) / (2 * h)
        assert relaxation_rate(mat, np.array([q_dot, q_dot]))[0] == pytest.approx(lin, rel=1e-6)
    if name != "MH":
        return
    t_ramp, t_hold, dt = 0.01, 0.02, 2e-6
    t = np.linspace(0.0, t_ramp + t_hold, int(round((t_ramp + t_hold) / dt)) + 1)
    strain = np.zeros((1, len(t), 3))
    strain[0, :, 2] = 0.02 * np.minimum(t / t_ramp, 1.0)
    sol = solve(mat, t, strain, path=lambda tt: np.stack([np.zeros_like(tt), np.zeros_like(tt),
                                                          0.02 * np.minimum(tt / t_ramp, 1.0)], axis=-1)[None])
    assert sol.success.all()
    held = t >= t_ramp - 1e-12
    over = math.sqrt(3.0) * np.abs(sol.stress[0, held, 2]) - s0
    tau = t[held] - t[held][0]
    p = 1.0 - 1.0 / m
    closed = (over[0] ** p + (1.0 / m - 1.0) * 3.0 * mu * q0 * s0 ** (-1.0 / m) * tau) ** (1.0 / p)
    assert over[0] > 500.0 and over[-1] < 0.5 * over[0]  # the hold spans the decay
    np.testing.assert_allclose(over, closed, rtol=1e-6)
