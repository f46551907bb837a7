"""Loading paths (homlearn.loading): Rademacher knots, PCHIP interpolation, seeding, test paths."""

import itertools

import numpy as np
import pytest

from homlearn.loading.paths import config_amplitude, knot_amplitude
from homlearn.loading import (Paths, cavity_expansion, component_pairs, cyclic, diverging_paths,
                              full_from_components, hermite_interpolant, identity_components,
                              isochoric_lateral, load_unload, ramp_hold, random_paths, shear,
                              symmetric_from_components, uniaxial,
                              upper_triangular_from_components)

MAX = 0.1


@pytest.fixture(scope="module", params=["fixed", "uniform"])
def batch(request):
    return random_paths(12, 3, t_final=2.0, max_value=MAX, intervals=request.param,
                        n_steps=400, seed=11)


# --------------------------------------------------------------------------- random paths

def test_knot_increments_are_rademacher_steps(batch):
    step = np.diff(batch.knots, axis=1)
    size = MAX * np.sqrt(np.diff(batch.knots_t, axis=1))[:, :, None]
    nu = step / size
    np.testing.assert_allclose(np.abs(nu), 1.0, rtol=0, atol=1e-12)
    assert set(np.unique(np.rint(nu))) == {-1.0, 1.0}
    np.testing.assert_array_equal(batch.knots[:, 0], 0.0)
    assert batch.knots.shape == (12, 11, 3) and batch.knots_t.shape == (12, 11)


def test_interpolant_passes_through_knots_and_gives_the_values(batch):
    for i in range(batch.n_paths):
        f = hermite_interpolant(batch.knots_t[i], batch.knots[i])
        np.testing.assert_allclose(f(batch.knots_t[i]), batch.knots[i], rtol=0, atol=1e-12)
        np.testing.assert_allclose(batch.values[i], f(batch.t), rtol=0, atol=1e-12)
    if batch.attrs["intervals"] == "fixed":  # knots on the grid (400 / 10 steps apart)
        np.testing.assert_allclose(batch.values[:, ::40], batch.knots, rtol=0, atol=1e-12)


def _derivative_jumps(f, knots_t, h):
    tk = knots_t[1:-1]
    right = (f(tk + h) - f(tk)) / h
    left = (f(tk) - f(tk - h)) / h
    return np.abs(right - left)


def test_paths_are_c1_at_the_knots(batch):
    """One-sided differences at interior knots agree to 2 h max|X''| + 1e-6, with the cubic
    Hermite bound |X''| <= 30 max|secant| / min dt (PCHIP slopes <= 3 |secant|); a
    piecewise-linear interpolant of the same knots fails the same check."""
    h = 1e-7
    for i in range(batch.n_paths):
        kt, kv = batch.knots_t[i], batch.knots[i]
        dt = np.diff(kt)
        secant = np.abs(np.diff(kv, axis=0)) / dt[:, None]
        tol = 2 * h * 30 * secant.max() / dt.min() + 1e-6
        assert _derivative_jumps(hermite_interpolant(kt, kv), kt, h).max() <= tol

        def linear(x):
            return np.stack([np.interp(x, kt, kv[:, c]) for c in range(kv.shape[1])], axis=-1)

        assert _derivative_jumps(linear, kt, h).max() > 100 * tol


def test_pchip_does_not_overshoot_the_knots(batch):
    for i in range(batch.n_paths):
        seg = np.searchsorted(batch.knots_t[i], batch.t, side="right").clip(1, 10)
        lo = np.minimum(batch.knots[i, seg - 1], batch.knots[i, seg])
        hi = np.maximum(batch.knots[i, seg - 1], batch.knots[i, seg])
        assert np.all(batch.values[i] >= lo - 1e-12) and np.all(batch.values[i] <= hi + 1e-12)


@pytest.mark.parametrize("intervals", ["fixed", "uniform"])
def test_seeded_reproducible_and_batch_independent(intervals):
    kw = dict(max_value=MAX, intervals=intervals, n_steps=50)
    a = random_paths(10, 2, seed=5, **kw)
    b = random_paths(20, 2, seed=5, **kw)
    np.testing.assert_array_equal(a.values[7], b.values[7])
    np.testing.assert_array_equal(a.knots[7], b.knots[7])
    np.testing.assert_array_equal(a.knots_t[7], b.knots_t[7])
    np.testing.assert_array_equal(a.values, random_paths(10, 2, seed=5, **kw).values)
    tail = random_paths(5, 2, seed=5, first_index=5, **kw)  # a resumed second batch
    np.testing.assert_array_equal(tail.values, b.values[5:10])
    assert not np.array_equal(a.knots, random_paths(10, 2, seed=6, **kw).knots)
    # the knots do not depend on the output grid
    np.testing.assert_array_equal(a.knots, random_paths(10, 2, seed=5, **{**kw, "n_steps": 70}).knots)


def test_signs_do_not_depend_on_the_interval_kind():
    f = random_paths(6, 2, max_value=MAX, intervals="fixed", n_steps=20, seed=3)
    u = random_paths(6, 2, max_value=MAX, intervals="uniform", n_steps=20, seed=3)
    np.testing.assert_array_equal(np.sign(np.diff(f.knots, axis=1)), np.sign(np.diff(u.knots, axis=1)))


def test_fixed_intervals_are_equal():
    p = random_paths(4, 1, t_final=3.0, n_intervals=6, max_value=MAX, n_steps=60, seed=0)
    np.testing.assert_allclose(np.diff(p.knots_t, axis=1), 0.5, rtol=0, atol=1e-14)


def test_uniform_intervals_sum_to_t_final_and_differ_between_paths():
    p = random_paths(50, 1, t_final=200.0, max_value=MAX, intervals="uniform", n_steps=10, seed=0)
    dt = np.diff(p.knots_t, axis=1)
    assert np.all(dt > 0)
    assert np.all(p.knots_t[:, 0] == 0.0) and np.all(p.knots_t[:, -1] == 200.0)
    np.testing.assert_allclose(dt.sum(axis=1), 200.0, rtol=1e-14)
    assert len({tuple(row) for row in np.round(dt, 9)}) == 50
    assert dt.std(axis=1).min() > 1.0  # not equal intervals (equal would be 20 each)


def test_start_and_identity_for_deformation_gradients():
    x0 = identity_components(2)
    p = random_paths(3, 3, max_value=MAX, n_steps=10, seed=1, start=x0)
    np.testing.assert_array_equal(p.knots[:, 0], np.broadcast_to(x0, (3, 3)))
    np.testing.assert_array_equal(p.values[:, 0], np.broadcast_to(x0, (3, 3)))
    F0 = upper_triangular_from_components(p.values[:, 0], 2)
    np.testing.assert_array_equal(F0, np.broadcast_to(np.eye(2), (3, 2, 2)))


def test_rademacher_signs_are_balanced_and_uncorrelated():
    """6 000 signs: the count of +1 within 5 sigma of Binomial(n, 1/2), per component too,
    and the lag-one product mean within 5 sigma of zero."""
    p = random_paths(200, 3, max_value=MAX, n_steps=10, seed=2024)
    nu = np.rint(np.diff(p.knots, axis=1) / (MAX * np.sqrt(0.1)))
    n = nu.size
    assert abs((nu > 0).sum() - n / 2) <= 5 * np.sqrt(n / 4)
    for c in range(3):
        m = nu[..., c].size
        assert abs((nu[..., c] > 0).sum() - m / 2) <= 5 * np.sqrt(m / 4)
    lag = (nu[:, 1:] * nu[:, :-1]).ravel()
    assert abs(lag.mean()) <= 5 / np.sqrt(lag.size)


def test_endpoint_spread_is_max_value_sqrt_t_final():
    """X_N - X_0 has mean 0 and variance max_value^2 t_final for any interval lengths."""
    p = random_paths(1500, 1, t_final=4.0, max_value=MAX, intervals="uniform", n_steps=10, seed=9)
    x2 = (p.knots[:, -1, 0] - p.knots[:, 0, 0]) ** 2
    target = MAX ** 2 * 4.0
    assert abs(x2.mean() - target) <= 5 * x2.std() / np.sqrt(x2.size)


@pytest.mark.parametrize("intervals", ["fixed", "uniform"])
def test_max_strain_bounds_every_path_and_is_reached(intervals):
    """F_max = max_strain / sqrt(M T) ('rno' sec. 4, "a maximum strain of 33%"): no path leaves
    |X(t)| <= 0.33 on the fine grid (Cauchy-Schwarz over the intervals, PCHIP never overshoots);
    on equal intervals a path whose 10 signs agree reaches it (4000 components, ~4 expected)."""
    fmax = knot_amplitude(0.33, 2.0, 10)
    assert fmax == pytest.approx(0.33 / np.sqrt(20))
    p = random_paths(1000, 4, t_final=2.0, n_intervals=10, max_value=fmax, intervals=intervals,
                     n_steps=400, seed=5)
    peak = np.abs(p.values).max()
    assert peak <= 0.33 * (1 + 1e-12)
    if intervals == "fixed":
        assert peak == pytest.approx(0.33, rel=1e-12)
    else:  # random lengths: sum sqrt(dt_m) < sqrt(M T), the bound is approached, not reached
        assert 0.2 < peak < 0.33
    # the final strain's spread: std max_strain / sqrt(M)
    assert np.std(p.values[:, -1]) == pytest.approx(0.33 / np.sqrt(10), rel=0.1)


def test_config_amplitude_prefers_an_explicit_max_value():
    block = {"max_strain": 0.33, "max_value": None, "t_final": 1.0, "n_intervals": 10}
    assert config_amplitude(block) == pytest.approx(0.33 / np.sqrt(10))
    assert config_amplitude({**block, "max_value": 0.33}) == 0.33
    with pytest.raises(ValueError, match="max_strain"):
        knot_amplitude(-0.1, 1.0, 10)


# --------------------------------------------------------------------------- downsample

def test_downsample_keeps_endpoints_and_the_fine_values(batch):
    d = batch.downsample(80)
    assert d.t.size == 81 and d.t[0] == 0.0 and d.t[-1] == batch.t_final
    np.testing.assert_array_equal(d.values, batch.values[:, ::5])
    np.testing.assert_array_equal(d.values[:, -1], batch.values[:, -1])
    np.testing.assert_allclose(d.t, np.linspace(0, batch.t_final, 81), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"n_steps \(400\).*n_out \(300\)"):
        batch.downsample(300)
    with pytest.raises(ValueError, match="n_out"):
        batch.downsample(0)


# --------------------------------------------------------------------------- tensors

def test_component_layouts():
    assert component_pairs(3) == [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    v = np.arange(1.0, 7.0)
    S = symmetric_from_components(v, 3)
    np.testing.assert_array_equal(S, S.T)
    assert S[0, 1] == 4 and S[0, 2] == 5 and S[1, 2] == 6 and S[2, 2] == 3
    U = upper_triangular_from_components(v, 3)
    np.testing.assert_array_equal(np.tril(U, -1), 0.0)
    np.testing.assert_array_equal(np.triu(U), np.triu(S))
    F = full_from_components(np.arange(9.0), 3)
    assert F[0, 1] == 1 and F[1, 0] == 3 and F[2, 1] == 7
    batch = symmetric_from_components(np.ones((4, 5, 3)), 2)
    assert batch.shape == (4, 5, 2, 2)
    for d in (1, 2, 3):
        np.testing.assert_array_equal(symmetric_from_components(identity_components(d), d), np.eye(d))
        np.testing.assert_array_equal(full_from_components(identity_components(d, "full"), d), np.eye(d))
    with pytest.raises(ValueError, match="6 components"):
        symmetric_from_components(np.ones(4), 3)
    with pytest.raises(ValueError, match="9 components"):
        full_from_components(np.ones(6), 3)


# --------------------------------------------------------------------------- test paths

def test_uniaxial_ramp():
    p = uniaxial(100, 2.0, 0.05, components=3, start=[1.0, 1.0, 0.0])
    x = p.values[0]
    assert x[0, 0] == 1.0 and x[-1, 0] == pytest.approx(1.05, abs=1e-15)
    assert np.all(np.diff(x[:, 0]) > 0)
    np.testing.assert_array_equal(x[:, 1:], np.broadcast_to([1.0, 0.0], (101, 2)))


def test_load_unload_peaks_then_returns():
    p = load_unload(100, 1.0, 0.1)
    x = p.values[0, :, 0]
    assert x.max() == 0.1 and x[50] == 0.1 and x[0] == 0.0 and x[-1] == 0.0
    assert np.all(np.diff(x[:51]) > 0) and np.all(np.diff(x[50:]) < 0)
    q = load_unload(100, 1.0, 0.1, t_peak=0.3).values[0, :, 0]
    assert q[30] == 0.1 and q.argmax() == 30 and q[-1] == 0.0


def test_cyclic_triangle_wave():
    p = cyclic(120, 3.0, 0.02, 3)
    x = p.values[0, :, 0]
    assert x.max() == 0.02 and x.min() == -0.02 and x[0] == 0.0 and abs(x[-1]) < 1e-15
    peaks = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] > x[2:])) + 1
    np.testing.assert_array_equal(peaks, [10, 50, 90])
    rate = np.abs(np.diff(x)) / (p.t[1] - p.t[0])
    np.testing.assert_allclose(rate, 4 * 0.02 * 3 / 3.0, rtol=1e-9)


def test_ramp_hold_paths_share_their_history():
    p = ramp_hold(100, 1.0, 0.2, [0.2, 0.5, 1.0])
    x = p.values[:, :, 0]
    np.testing.assert_allclose(x.max(axis=1), [0.04, 0.1, 0.2], rtol=1e-14)
    np.testing.assert_array_equal(x[:, :21], np.broadcast_to(x[2, :21], (3, 21)))
    np.testing.assert_array_equal(x[0, 20:], 0.2 * p.t[20])
    assert np.all(x[1, 21:51] != x[0, 21:51])


def test_cavity_expansion_is_isochoric_pure_shear():
    c = 0.8
    p = cavity_expansion(50, 1.0, c=c)
    U = symmetric_from_components(p.values[0], 2)
    np.testing.assert_allclose(np.linalg.det(U), 1.0, rtol=0, atol=1e-14)
    assert U[-1, 1, 1] == pytest.approx(np.sqrt(1 + c), abs=1e-15)
    assert U[-1, 0, 0] == pytest.approx(1 / np.sqrt(1 + c), abs=1e-15)
    np.testing.assert_array_equal(U[:, 0, 1], 0.0)
    np.testing.assert_array_equal(U[0], np.eye(2))
    U3 = symmetric_from_components(shear(50, 1.0, c=c, d=3).values[0], 3)
    np.testing.assert_allclose(np.linalg.det(U3), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(U3[:, 2, 2], 1.0)


def test_isochoric_lateral_uniaxial_stretch():
    p = isochoric_lateral(uniaxial(40, 1.0, 0.1, components=3, start=identity_components(2)), 2)
    U = symmetric_from_components(p.values[0], 2)
    np.testing.assert_allclose(np.linalg.det(U), 1.0, rtol=0, atol=1e-14)
    assert U[-1, 0, 0] == pytest.approx(1.1) and U[-1, 1, 1] == pytest.approx(1 / 1.1)
    with pytest.raises(ValueError, match="U_11"):
        isochoric_lateral(uniaxial(40, 1.0, 0.1, components=3), 2)


@pytest.mark.parametrize("intervals", ["fixed", "uniform"])
def test_diverging_paths_coincide_then_differ(intervals):
    base = random_paths(3, 2, max_value=MAX, n_steps=200, seed=4).path(1)
    p = diverging_paths(base, 0.5, 5, seed=8, max_value=MAX, intervals=intervals)
    assert p.values.shape == (5, 201, 2) and p.attrs["n_intervals"] == 5
    np.testing.assert_array_equal(p.values[:, :101], np.broadcast_to(base.values[0, :101], (5, 101, 2)))
    for a, b in itertools.combinations(range(5), 2):
        assert np.abs(p.values[a, 101:] - p.values[b, 101:]).max() > 1e-6
    # continuous at the split: the first step after it is a small one
    assert np.abs(p.values[:, 101] - p.values[:, 100]).max() < 10 * MAX * np.sqrt(0.1) / 20
    again = diverging_paths(base, 0.5, 5, seed=8, max_value=MAX, intervals=intervals)
    np.testing.assert_array_equal(p.values, again.values)


def test_diverging_paths_refuse_what_they_cannot_do():
    base = uniaxial(100, 1.0, 0.1)
    with pytest.raises(ValueError, match="t_split"):
        diverging_paths(base, 0.505, 3, seed=0, max_value=MAX)
    with pytest.raises(ValueError, match="t_split"):
        diverging_paths(base, 1.0, 3, seed=0, max_value=MAX)
    with pytest.raises(ValueError, match="n_branches"):
        diverging_paths(base, 0.5, 5, seed=0, max_value=MAX, n_intervals=2)
    p = diverging_paths(base, 0.5, 4, seed=0, max_value=MAX, n_intervals=2)  # all 4 patterns
    assert len({tuple(np.round(v[-1], 12)) for v in p.values}) >= 3
    with pytest.raises(ValueError, match="exactly one path"):
        diverging_paths(ramp_hold(100, 1.0, 0.1, [0.2, 0.4]), 0.5, 2, seed=0, max_value=MAX)


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs, match", [
    (dict(n_paths=0), "n_paths must be an integer >= 1"),
    (dict(components=1.5), "components must be an integer"),
    (dict(intervals="random"), r"intervals must be one of \('fixed', 'uniform'\)"),
    (dict(max_value=-0.1), "max_value must be a finite number > 0"),
    (dict(t_final=0.0), "t_final must be a finite number > 0"),
    (dict(n_steps=0), "n_steps must be an integer >= 1"),
    (dict(n_intervals=0), "n_intervals must be an integer >= 1"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(start=[0.0, 0.0]), "start must be None, a finite scalar or 3 finite values"),
])
def test_random_paths_validate_their_arguments(kwargs, match):
    args = dict(n_paths=2, components=3, max_value=MAX, n_steps=10, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        random_paths(**args)


def test_test_paths_validate_their_arguments():
    with pytest.raises(ValueError, match="n_cycles"):
        cyclic(100, 1.0, 0.1, 0)
    with pytest.raises(ValueError, match="t_peak"):
        load_unload(100, 1.0, 0.1, t_peak=1.0)
    with pytest.raises(ValueError, match="t_holds"):
        ramp_hold(100, 1.0, 0.1, [0.5, 2.0])
    with pytest.raises(ValueError, match="d must be 2 or 3"):
        cavity_expansion(10, 1.0, c=1.0, d=4)
    with pytest.raises(ValueError, match="values must be"):
        Paths(t=np.linspace(0, 1, 5), values=np.zeros((1, 4, 1)))
