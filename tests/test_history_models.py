"""History surrogates (issue 6, models): PCA / PCA-Net (paper 'pcanet' eq. 25-26), the RNO
(paper 'rno' eq. 2-3, 7, section 5.1), the GRU/LSTM baseline and the Johnson-Cook reference.

Real small data: paths from ``homlearn.loading.paths`` and a composite1d store built by its
solve stage (conftest ``c1d_tiny_store``). The training loops here are plain torch loops,
except the composite1d RNO, trained once per session through the shared trainer (conftest
``c1d_tiny_rno``, also used by test_rno_experiments.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from homlearn.loading.paths import random_paths
from homlearn.models.johnson_cook import JohnsonCook1D, JohnsonCookParams, fit_johnson_cook
from homlearn.train.losses import relative_l2, relative_l2_per_sample
from homlearn.models.pca import ComponentPCA
from homlearn.models.pcanet import DEFAULT_HIDDEN, PCANet, resample
from homlearn.models.rno import (RNO, PressureDeviatoricRNO, deviator_from_components, deviatoric_split,
                                 n_deviatoric)
from homlearn.models.sequence import SequenceModel, sequence_parameter_count


def _paths(n, comps, n_steps, seed):
    p = random_paths(n, comps, max_value=0.1, intervals="uniform", seed=seed, n_steps=n_steps)
    return torch.tensor(p.values), torch.tensor(p.t)


# ----------------------------------------------------------------------------- losses


def test_relative_l2_is_eq16():
    """Per sample ||pred - y|| / ||y|| over time and components, averaged over the batch."""
    y = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])  # (2, 2, 2)
    pred = y.clone()
    pred[0] *= 1.1
    pred[1, 0, 0] += 2.0
    per = relative_l2_per_sample(pred, y)
    torch.testing.assert_close(per, torch.tensor([0.1, 1.0]))
    torch.testing.assert_close(relative_l2(pred, y), torch.tensor(0.55))


# ----------------------------------------------------------------------------- PCA


@pytest.mark.parametrize("r", [1, 7, 40])
def test_pca_round_trip_error_is_the_discarded_spectrum(r):
    """||X - l(p(X))||^2 per tensor component equals the sum of the discarded squared singular
    values of the centred training data (to 1e-10 of its energy); zero at full rank (r = N = 40)."""
    x, _ = _paths(40, 3, 100, seed=1)
    pca = ComponentPCA(101, 3, r).double().fit(x)
    err = (x - pca.reconstruct(x)).pow(2).sum((0, 1))
    energy = (x - x.mean(0)).pow(2).sum((0, 1))
    torch.testing.assert_close(err, pca.discarded_energy(), rtol=0, atol=1e-10 * float(energy.max()))
    eye = torch.eye(r, dtype=torch.float64).expand(3, r, r)
    torch.testing.assert_close(pca.basis.transpose(1, 2) @ pca.basis, eye, rtol=0, atol=1e-12)
    if r == 40:  # centred rank <= N - 1 < r: nothing discarded
        assert float(err.max()) < 1e-20 * float(energy.max()) + 1e-24
    else:
        assert float(pca.discarded_energy().min()) > 1e-6 * float(energy.max())


def test_pca_more_components_than_samples():
    """r > N: the basis is completed orthonormally, the reconstruction stays exact."""
    x, _ = _paths(5, 2, 50, seed=2)
    pca = ComponentPCA(51, 2, 12).double().fit(x)
    torch.testing.assert_close(pca.reconstruct(x), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(pca.basis.transpose(1, 2) @ pca.basis,
                               torch.eye(12, dtype=torch.float64).expand(2, 12, 12), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- PCA-Net


def test_pcanet_paper_sizes_and_shapes():
    """Paper sizes: 2D 32 x 3 and 3D Taylor 100 x 6 coefficients, default hidden widths."""
    for dim, c, r in (("2d", 3, 32), ("3d", 6, 100)):
        x, t = _paths(max(r, 8) + 2, c, 200, seed=3)
        net = PCANet.paper(dim, n_time=201).double().fit_pca(x, 0.5 * x, t)
        assert net.encode(x[:4]).shape == (4, c * r)
        assert net(x[:4]).shape == (4, 201, c) and net(x[:4], t).shape == (4, 201, c)
        assert net.mlp.hidden == DEFAULT_HIDDEN
        assert net.mlp.in_features == c * r and net.mlp.out_features == c * r
        assert net.decode(net.encode_output(x[:4])).shape == (4, 201, c)
    with pytest.raises(RuntimeError, match="fit_pca"):
        PCANet(3, 3, 201)(x[:1, :, :3])


def _linear_dataset(n=40, rank=6, n_steps=100, t_mix=True, seed=4):
    """Inputs in a rank-`rank` span of real paths (3 components); outputs a linear operator of
    them: channel mixing M and (if t_mix) the causal running integral in time."""
    basis, t = _paths(rank, 1, n_steps, seed=seed)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 3, rank, generator=g, dtype=torch.float64)
    x = torch.einsum("bcr,rt->btc", a, basis[:, :, 0])
    mix = torch.tensor([[1.0, -0.5, 0.2], [0.3, 2.0, 0.0], [0.0, 0.7, -1.0]], dtype=torch.float64)
    y = torch.einsum("jc,btc->btj", mix, x)
    if t_mix:
        y = torch.cumsum(y, dim=1) * float(t[1] - t[0])
    return x, y, t


def test_pcanet_fits_a_linear_map_exactly():
    """Outputs a linear function of inputs in the PCA span: with psi affine (hidden = ()) the
    least-squares weights in coefficient space reproduce the outputs to round-off, and
    gradient training (L-BFGS on the squared eq. 16 error, a quadratic) of the same net from a
    random start reaches 1e-6 (with the default whitened inputs; ~150 iterations)."""
    x, y, t = _linear_dataset()
    net = PCANet(3, 3, 101, r_in=6, r_out=6, hidden=()).double().fit_pca(x, y, t)
    zi, zo = net.encode(x), net.encode_output(y)
    sol = torch.linalg.lstsq(torch.cat([zi, torch.ones(len(x), 1, dtype=zi.dtype)], 1), zo).solution
    lin = net.mlp.linears[0]
    with torch.no_grad():
        lin.weight.copy_(sol[:-1].T)
        lin.bias.copy_(sol[-1])
        assert float(relative_l2(net(x), y)) < 1e-10
    torch.manual_seed(0)
    net.mlp.reset_parameters()
    opt = torch.optim.LBFGS(net.parameters(), lr=1, max_iter=200, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = relative_l2_per_sample(net(x), y).pow(2).mean()
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    with torch.no_grad():
        assert float(relative_l2(net(x), y)) < 1e-6


def test_pcanet_other_resolution_is_interpolated():
    """A net fitted at 100 steps, given the same paths at 400 steps: inputs and outputs are
    interpolated to and from its grid, so an exact pointwise linear map returns the linear
    interpolant of the true coarse output (to 1e-10), within 1% of the fine truth."""
    xf, yf, tf = _linear_dataset(n_steps=400, t_mix=False)
    x, y, t = xf[:, ::4], yf[:, ::4], tf[::4]
    net = PCANet(3, 3, 101, r_in=6, r_out=6, hidden=()).double().fit_pca(x, y, t)
    zi, zo = net.encode(x), net.encode_output(y)
    sol = torch.linalg.lstsq(torch.cat([zi, torch.ones(len(x), 1, dtype=zi.dtype)], 1), zo).solution
    with torch.no_grad():
        net.mlp.linears[0].weight.copy_(sol[:-1].T)
        net.mlp.linears[0].bias.copy_(sol[-1])
        out = net(xf, tf)
        assert out.shape == yf.shape
        torch.testing.assert_close(out, resample(y, t, tf), rtol=0, atol=1e-10)
        assert float(relative_l2(out, yf)) < 1e-2
        torch.testing.assert_close(net(x, t), net(x), rtol=0, atol=0)  # its own grid: no interpolation
    torch.testing.assert_close(resample(xf, tf, t), x, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="outside"):
        resample(x, t, t + 0.5)


# ----------------------------------------------------------------------------- RNO on composite1d


@pytest.fixture(scope="module")
def composite1d_rno(c1d_tiny_store, c1d_tiny_rno):
    """The session's tiny composite1d store (N = 1, 40 paths, 30 train / 10 test; solved on 400
    steps, stored on 100; conftest ``c1d_tiny_store``) and its RNO with k = 1 (default 4 x 100
    SELU f and g), trained once per session through the shared trainer (conftest
    ``c1d_tiny_rno``: 50 Adam epochs, lr 1e-3, then 15 full-batch L-BFGS epochs; Adam alone
    stalls at 15-20% in this budget).

    One material for all paths (E = 1 GPa, n = 3, sigma0 = 0.3 GPa, inside the paper's ranges):
    the RNO sees only the strain, so the strain-to-stress map must be a function.
    Relaxation is slow enough against the coarsest test step that the exact eq. 12 under forward
    Euler (eq. 3) is within 2.5% at 50 steps (1.2% at 100): resolution independence is testable."""
    import xarray as xr

    from homlearn.train.history import load_history

    models, info = c1d_tiny_rno
    model, _ = load_history(models / "rno_N1_k1")
    ds = xr.open_zarr(c1d_tiny_store).load()
    train = ds["split"].values == 0

    def tensor(name, rows=train):
        return torch.tensor(ds[name].values[rows], dtype=torch.float32)

    x, y = tensor("strain")[..., None], tensor("stress")[..., None]
    t = torch.tensor(ds["time"].values, dtype=torch.float32)
    fine = {"x": tensor("strain_fine")[..., None], "y": tensor("stress_fine")[..., None],
            "t": torch.tensor(ds["time_fine"].values, dtype=torch.float32)}
    return {"model": model, "x": x, "y": y, "t": t, "fine": fine, "ds": ds,
            "seconds": info["training"]["seconds_total"]}


def test_rno_k1_fits_composite1d(composite1d_rno):
    """Training error (eq. 16) under 1% on the training set; the test paths within 3%."""
    m, x, y, t = (composite1d_rno[k] for k in ("model", "x", "y", "t"))
    with torch.no_grad():
        err = float(relative_l2(m(x, t), y))
        ds = composite1d_rno["ds"]
        test = ds["split"].values == 1
        xt = torch.tensor(ds["strain"].values[test], dtype=torch.float32)[..., None]
        yt = torch.tensor(ds["stress"].values[test], dtype=torch.float32)[..., None]
        test_err = float(relative_l2(m(xt, t), yt))
    print(f"RNO k=1 composite1d: train {err:.4f}, test {test_err:.4f}, trained in {composite1d_rno['seconds']:.0f} s")
    assert err < 0.01
    assert test_err < 0.03


def test_rno_trained_at_one_step_runs_at_others(composite1d_rno):
    """Resolution independence (rno Fig. 10): trained at 100 steps, evaluated on the same paths
    from the stored fine histories at 200 steps (fine[::2]) and 50 steps (fine[::8]): relative
    error under 3% at both (measured ~0.7% and ~1.1%)."""
    m, f = composite1d_rno["model"], composite1d_rno["fine"]
    errs = {}
    with torch.no_grad():
        for steps, stride in ((200, 2), (50, 8)):
            xs, ys, ts = f["x"][:, ::stride], f["y"][:, ::stride], f["t"][::stride]
            assert xs.shape[1] == steps + 1
            errs[steps] = float(relative_l2(m(xs, ts), ys))
    print(f"RNO k=1 at other resolutions: {errs}")
    assert max(errs.values()) < 0.03


# ----------------------------------------------------------------------------- RNO structure


@pytest.mark.parametrize("rate_input, rate_step", [(False, None), (True, None), (True, 0.3)])
def test_rno_step_reproduces_forward(rate_input, rate_step):
    """The material-point update (eq. 3, one step at a time) equals the history forward on a
    non-uniform grid; the viscoelastic variant (eq. 7) feeds dF/dt (or the increment over a fixed
    ``rate_step``) to the stress map f only."""
    torch.manual_seed(1)
    c, k = 3, 2
    m = RNO(c, 3, k=k, width=16, depth=2, rate_input=rate_input, rate_step=rate_step).double()
    assert m.f.in_features == (2 * c if rate_input else c) + k and m.g.in_features == c + k
    x, _ = _paths(4, c, 30, seed=5)
    t = torch.cumsum(torch.rand(31, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1, 0)
    t = t - t[0]
    with torch.no_grad():
        y, xi = m(x, t, return_internal=True)
    assert y.shape == (4, 31, 3) and xi.shape == (4, 31, k) and float(xi[:, 0].abs().max()) == 0.0
    xi_n = torch.zeros(4, k, dtype=torch.float64)
    for n in range(1, 31):
        with torch.no_grad():
            y_n, xi_n = m.step(x[:, n], x[:, n - 1], xi_n, t[n] - t[n - 1])
        torch.testing.assert_close(y_n, y[:, n], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(xi_n, xi[:, n], rtol=1e-12, atol=1e-12)


def test_rno_ve_increment_feature_is_the_rate_only_on_its_own_grid():
    """``rate_step`` = the grid's step: the same function as the rate form (eq. 7); on a grid twice
    as fine the increment feature halves while the rate does not, so the two forms differ; a
    rate_step without the rate input, or not positive, is refused."""
    torch.manual_seed(3)
    rate = RNO(1, 1, k=1, width=16, depth=2, rate_input=True).double()
    inc = RNO(1, 1, k=1, width=16, depth=2, rate_input=True, rate_step=0.05).double()
    inc.load_state_dict(rate.state_dict())
    t = torch.linspace(0, 1, 21, dtype=torch.float64)
    tf = torch.linspace(0, 1, 41, dtype=torch.float64)
    x, xf = torch.sin(3 * t)[None, :, None], torch.sin(3 * tf)[None, :, None]
    with torch.no_grad():
        torch.testing.assert_close(inc(x, t), rate(x, t), rtol=1e-12, atol=1e-12)
        assert float((inc(xf, tf) - rate(xf, tf)).abs().max()) > 1e-3
        feats = inc._features(xf, torch.full((1, 41), 0.025, dtype=torch.float64))
        torch.testing.assert_close(feats[0, 1:, 1], torch.diff(xf[0, :, 0]) / 0.05)
    for bad in ({"rate_step": 0.0, "rate_input": True}, {"rate_step": 0.1, "rate_input": False}):
        with pytest.raises(ValueError, match="rate_step"):
            RNO(1, 1, k=1, **bad)


def test_rno_without_internal_variables_is_a_pointwise_map():
    """k = 0: no g, the stress at t_n depends on F^n alone (no memory)."""
    m = RNO(2, 2, k=0, width=8, depth=2).double()
    assert m.g is None
    x, t = _paths(3, 2, 20, seed=6)
    x2 = x.clone()
    x2[:, :10] += 0.3  # another history, same present
    y, y2 = m(x, t), m(x2, t)
    torch.testing.assert_close(y[:, 10:], y2[:, 10:], rtol=0, atol=0)
    torch.testing.assert_close(y, m.f(x), rtol=0, atol=0)


@pytest.mark.parametrize("dim, c_in", [(2, 3), (3, 6)])
def test_pressure_deviatoric_split(dim, c_in):
    """Section 5.1: symmetric Cauchy stress sigma = -p I + s, its pressure -tr(sigma)/d is the
    pressure RNO's output, its deviator traceless with the deviatoric RNO's components; the
    target split inverts the combination."""
    torch.manual_seed(3)
    m = PressureDeviatoricRNO(c_in, dim, k_pressure=0, k_deviatoric=2, width=16, depth=2).double()
    x, t = _paths(4, c_in, 25, seed=7)
    sigma = m(x, t)
    assert sigma.shape == (4, 26, dim, dim)
    torch.testing.assert_close(sigma, sigma.transpose(-1, -2), rtol=0, atol=0)
    p, s = m.parts(x, t)
    assert s.shape == (4, 26, n_deviatoric(dim))
    tr = torch.diagonal(sigma, dim1=-2, dim2=-1).sum(-1, keepdim=True)
    torch.testing.assert_close(-tr / dim, p, rtol=1e-12, atol=1e-12)
    p2, s2 = deviatoric_split(sigma)
    torch.testing.assert_close(p2, p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s2, s, rtol=1e-12, atol=1e-12)
    dev = deviator_from_components(s, dim)
    torch.testing.assert_close(torch.diagonal(dev, dim1=-2, dim2=-1).sum(-1), torch.zeros(4, 26, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    assert m.pressure.k == 0 and m.deviatoric.k == 2


# ----------------------------------------------------------------------------- baselines


def test_gru_baseline_forward_backward_and_size():
    """GRU on (strain, dt): gradients reach every parameter; default size within 2x of the
    default RNO (k = 1, 4 x 100); LSTM option; `matching` picks the closest width."""
    rno = RNO(1, 1, k=1)
    n_rno = sum(p.numel() for p in rno.parameters())
    gru = SequenceModel(1, 1)
    n_gru = sum(p.numel() for p in gru.parameters())
    assert n_gru == sequence_parameter_count(1, 1, 100, 2, "gru")
    assert 0.5 < n_gru / n_rno < 2.0, (n_gru, n_rno)
    x, t = _paths(5, 1, 40, seed=8)
    x, t = x.float(), t.float()
    y = gru(x, t)
    assert y.shape == (5, 41, 1)
    relative_l2(y, torch.sin(x)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for p in gru.parameters())
    lstm = SequenceModel.matching(n_rno, 1, 1, cell="lstm")
    n_lstm = sum(p.numel() for p in lstm.parameters())
    assert abs(n_lstm - n_rno) <= abs(sequence_parameter_count(1, 1, lstm.rnn.hidden_size + 1, 2, "lstm") - n_rno)
    assert lstm(x, t).shape == (5, 41, 1)


def test_johnson_cook_fit_recovers_its_own_parameters():
    """Classical uniaxial tests (tension at 0.01, 0.1 and 10 /s, tension-unload-compression,
    cyclic) simulated by the Johnson-Cook return mapping; least squares from a start 10-40% off
    recovers E, A, B, n, C to 1e-6 relative."""
    true = JohnsonCookParams(E=45.0, A=0.15, B=0.4, n=0.35, C=0.02, rate0=1e-3)
    t = np.linspace(0.0, 1.0, 101)
    strain = np.array([0.1 * t, 0.01 * t, 0.1 * t,
                       np.where(t < 0.5, 0.16 * t, 0.08 - 0.2 * (t - 0.5)),
                       0.03 * np.sin(4 * np.pi * t)])
    times = np.array([t, t, 0.01 * t, t, t])
    hist = JohnsonCook1D(true).simulate(strain, times)
    assert hist.accumulated[:, -1].min() > 1e-3  # every test yields
    assert np.all(np.diff(hist.accumulated, axis=1) >= 0)
    start = JohnsonCookParams(E=40.0, A=0.2, B=0.3, n=0.5, C=0.03, rate0=1e-3)
    fit, res = fit_johnson_cook(strain, hist.stress, times, start)
    assert res.success
    for name in ("E", "A", "B", "n", "C"):
        assert abs(getattr(fit, name) / getattr(true, name) - 1) < 1e-6, (name, getattr(fit, name))


def test_build_history_model_by_name():
    from homlearn.models.history import build_history_model

    assert isinstance(build_history_model("rno", c_in=1, c_out=1, k=0), RNO)
    assert build_history_model("LSTM", c_in=1, c_out=1).rnn.mode == "LSTM"
    assert build_history_model("pcanet", c_in=3, c_out=3, n_time=11, r_in=4, r_out=4, hidden=(8,)).pca_in.n_components == 4
    with pytest.raises(ValueError, match="allowed names: gru, lstm, pcanet, rno, rno_split"):
        build_history_model("transformer")
