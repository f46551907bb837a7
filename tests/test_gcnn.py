"""Tests for homlearn.models.gcnn (fGCNN / rGCNN, paper section 4, eq. 8-18)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial import Delaunay
from torch_probe import MaxNumel

from homlearn.models.gcnn import (
    FullGCNN,
    GraphBatch,
    GraphConv,
    ReducedGCNN,
    build_model,
    collate_graphs,
    reduce_to_clusters,
    reduced_adjacency,
)

# ---------------------------------------------------------------------------
# Synthetic polycrystal meshes: Delaunay triangles of the unit square, grains = Voronoi
# regions of random seeds evaluated at the triangle centroids.
# ---------------------------------------------------------------------------


def make_sample(rng: np.random.Generator, n_points: int | None = None, n_grains: int | None = None) -> dict:
    n_points = int(rng.integers(110, 175)) if n_points is None else n_points
    n_grains = int(rng.integers(14, 19)) if n_grains is None else n_grains
    # mixture of uniform and clustered points -> strongly varying triangle areas
    n_clu = n_points // 3
    centre = rng.uniform(0.2, 0.8, size=2)
    pts = np.concatenate(
        [rng.uniform(0, 1, size=(n_points - n_clu, 2)), np.clip(centre + 0.08 * rng.standard_normal((n_clu, 2)), 0, 1)]
    )
    pts = np.concatenate([pts, [[0, 0], [0, 1], [1, 0], [1, 1]]])
    tri = Delaunay(pts)
    simp = tri.simplices
    p = pts[simp]  # (C, 3, 2)
    area = 0.5 * np.abs(
        (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])
    )
    nb = tri.neighbors
    i = np.repeat(np.arange(len(simp)), 3)
    j = nb.reshape(-1)
    keep = (j >= 0) & (i < j)
    edges = np.stack([i[keep], j[keep]], axis=1)
    seeds = rng.uniform(0, 1, size=(n_grains, 2))
    cent = p.mean(axis=1)
    grain = np.argmin(((cent[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
    angle_g = rng.uniform(0, 1, size=n_grains)
    return {"area_raw": area, "angle": angle_g[grain], "edges": edges, "cell_grain": grain}


def make_dataset(seed: int, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    raw = [make_sample(rng) for _ in range(n)]
    scale = max(r["area_raw"].max() for r in raw)
    out = []
    for r in raw:
        area = r["area_raw"] / scale
        x = np.stack([r["angle"], area], axis=1).astype(np.float32)  # column 0 intensive, 1 extensive
        y = np.array([(area * r["angle"]).sum() / area.sum()], dtype=np.float32)
        out.append({"x": x, "edges": r["edges"], "cell_grain": r["cell_grain"], "y": y})
    return out


def dense_S_and_A(sample: dict):
    """Scipy-sparse reference restriction S (K x N) and binary adjacency A (N x N) of one sample."""
    c = len(sample["x"])
    g = np.unique(sample["cell_grain"], return_inverse=True)[1]
    S = sp.csr_matrix((np.ones(c), (g, np.arange(c))), shape=(g.max() + 1, c))
    e = sample["edges"]
    A = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(c, c))
    return S, (A + A.T).tocsr()


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """These graphs are small: intra-op OpenMP threading only adds overhead (and stalls badly on
    a shared/loaded CPU), so run this module single-threaded and restore the setting after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data64():
    return make_dataset(seed=0, n=64)


def _both_models(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    f = FullGCNN(2, n_filters=8, n_conv=3, n_dense=3, hidden=16).to(dtype).eval()
    r = ReducedGCNN(2, n_filters=8, n_features=8, n_conv=3, n_dense=3, hidden=16).to(dtype).eval()
    return {"fgcnn": f, "rgcnn": r}


# ---------------------------------------------------------------------------
# Collation
# ---------------------------------------------------------------------------


def test_collate_offsets_and_shapes(data64):
    s = data64[:3]
    b = collate_graphs(s)
    sizes = [len(d["x"]) for d in s]
    grains = [len(np.unique(d["cell_grain"])) for d in s]
    assert b.x.shape == (sum(sizes), 2) and b.x.dtype == torch.float32
    assert b.y.shape == (3, 1)
    assert b.n_graphs == 3 and b.n_clusters == sum(grains)
    assert b.edge_index.shape == (2, 2 * sum(len(d["edges"]) for d in s))
    # every edge stays inside its graph, and both directions are present
    assert torch.equal(b.cell_graph[b.edge_index[0]], b.cell_graph[b.edge_index[1]])
    fwd = set(map(tuple, b.edge_index.T.tolist()))
    assert all((j, i) in fwd for (i, j) in fwd)
    # clusters of a cell belong to the same graph as the cell
    assert torch.equal(b.cluster_graph[b.cell_cluster], b.cell_graph)
    # second graph's edges were offset by the first graph's cell count
    e1 = torch.as_tensor(s[1]["edges"]).T + sizes[0]
    assert set(map(tuple, e1.T.tolist())) <= fwd
    # no targets -> y is None
    assert collate_graphs([{k: v for k, v in d.items() if k != "y"} for d in s]).y is None


def test_collate_rejects_self_loops():
    with pytest.raises(ValueError, match="self-loop"):
        collate_graphs([{"x": np.zeros((3, 2)), "edges": np.array([[0, 1], [2, 2]]), "cell_grain": np.zeros(3)}])


# ---------------------------------------------------------------------------
# Reduced adjacency and eq. 16-17
# ---------------------------------------------------------------------------


def test_reduced_adjacency_matches_S_A_ST(data64):
    s = data64[:2]
    b = collate_graphs(s).to(dtype=torch.float64)
    ei, w = reduced_adjacency(b)
    k = b.n_clusters
    got = sp.csr_matrix((w.numpy(), (ei[1].numpy(), ei[0].numpy())), shape=(k, k)).toarray()  # rows = targets

    blocks = [dense_S_and_A(d) for d in s]
    S = sp.block_diag([S for S, _ in blocks]).tocsr()
    A = sp.block_diag([A for _, A in blocks]).tocsr()
    SAST = (S @ A @ S.T).toarray()
    n_i = np.asarray(S.sum(axis=1)).ravel()
    assert np.all(np.diag(SAST) > 0)  # intra-grain adjacency exists: the diagonal must be kept
    np.testing.assert_allclose(got, SAST / n_i[:, None], rtol=0, atol=1e-12)
    ei_u, w_u = reduced_adjacency(b, normalize=False)
    got_u = sp.csr_matrix((w_u.numpy(), (ei_u[1].numpy(), ei_u[0].numpy())), shape=(k, k)).toarray()
    np.testing.assert_array_equal(got_u, SAST)


def test_reduce_to_clusters_sum_and_mean(data64):
    b = collate_graphs(data64[:2]).to(dtype=torch.float64)
    S = sp.block_diag([dense_S_and_A(d)[0] for d in data64[:2]]).tocsr()
    x = b.x.numpy()
    np.testing.assert_allclose(reduce_to_clusters(b.x, b, "sum").numpy(), S @ x, atol=1e-12)
    np.testing.assert_allclose(
        reduce_to_clusters(b.x, b, "mean").numpy(), (S @ x) / np.asarray(S.sum(1)), atol=1e-12
    )
    with pytest.raises(ValueError, match="mean"):
        reduce_to_clusters(b.x, b, "max")


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("fin,fout", [(5, 7), (7, 3)])  # both GraphConv evaluation orders
def test_eq16_reduced_conv_equals_cluster_mean_of_full_conv(data64, dtype, tol, fin, fout):
    """Eq. 16-17: for grain-uniform Z, Conv(Z*, A*_n) == D^-1 S Conv(Z, A) with the same W0, W1, b."""
    b = collate_graphs(data64[:3]).to(dtype=dtype)
    torch.manual_seed(1)
    conv = GraphConv(fin, fout).to(dtype)
    cei, cew = reduced_adjacency(b, dtype=dtype)
    gen = torch.Generator().manual_seed(2)

    z_star = torch.rand(b.n_clusters, fin, generator=gen, dtype=dtype)
    z_uniform = z_star[b.cell_cluster]  # prolongation S^T Z*
    with torch.no_grad():
        full = reduce_to_clusters(conv.pre_activation(z_uniform, b.edge_index), b, "mean")
        red = conv.pre_activation(reduce_to_clusters(z_uniform, b, "mean"), cei, cew)
    assert (full - red).abs().max().item() < tol

    # for non-uniform Z the identity does not hold (the test above is not vacuous)
    z_rand = torch.rand(b.n_cells, fin, generator=gen, dtype=dtype)
    with torch.no_grad():
        full_r = reduce_to_clusters(conv.pre_activation(z_rand, b.edge_index), b, "mean")
        red_r = conv.pre_activation(reduce_to_clusters(z_rand, b, "mean"), cei, cew)
    assert (full_r - red_r).abs().max().item() > 1e-2

    # and it needs the diagonal of S A S^T: dropping it breaks the identity for uniform Z
    off = cei[0] != cei[1]
    with torch.no_grad():
        red_nodiag = conv.pre_activation(reduce_to_clusters(z_uniform, b, "mean"), cei[:, off], cew[off])
    assert (full - red_nodiag).abs().max().item() > 1e-2


# ---------------------------------------------------------------------------
# Batching and invariances
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fgcnn", "rgcnn"])
def test_batched_equals_single(data64, name):
    model = _both_models()[name]
    samples = [data64[5], data64[17], data64[30]]
    assert len({len(s["x"]) for s in samples}) == 3  # different sizes
    with torch.no_grad():
        batched = model(collate_graphs(samples).to(dtype=torch.float64))
        single = torch.cat([model(collate_graphs([s]).to(dtype=torch.float64)) for s in samples])
    assert batched.shape == (3, 1)
    assert (batched - single).abs().max().item() < 1e-6
    # outputs differ between graphs (offsets did not collapse them)
    assert (single[0] - single[1]).abs().item() > 1e-9


@pytest.mark.parametrize("name", ["fgcnn", "rgcnn"])
def test_permutation_invariance(data64, name):
    model = _both_models()[name]
    s = data64[7]
    rng = np.random.default_rng(3)
    c = len(s["x"])
    perm = rng.permutation(c)  # new cell k is old cell perm[k]
    inv = np.empty(c, dtype=np.int64)
    inv[perm] = np.arange(c)
    relabel = rng.permutation(int(s["cell_grain"].max()) + 1)  # also permute grain labels
    e = inv[s["edges"]]
    e = e[rng.permutation(len(e))][:, ::-1]  # shuffle edge order and orientation
    s_p = {"x": s["x"][perm], "edges": e, "cell_grain": relabel[s["cell_grain"][perm]]}
    with torch.no_grad():
        a = model(collate_graphs([s]).to(dtype=torch.float64))
        b = model(collate_graphs([s_p]).to(dtype=torch.float64))
    assert (a - b).abs().max().item() < 1e-10
    # sanity: a non-permutation perturbation (breaking the mesh) changes the output
    s_bad = dict(s, edges=s["edges"][: len(s["edges"]) // 2])
    with torch.no_grad():
        c_out = model(collate_graphs([s_bad]).to(dtype=torch.float64))
    assert (a - c_out).abs().max().item() > 1e-8


@pytest.mark.parametrize("name", ["fgcnn", "rgcnn"])
def test_large_batch_sparse_and_gradients(data64, name):
    torch.manual_seed(0)
    model = build_model(name, 2)  # paper defaults: 16 filters, 2 convs, 3 dense
    b = collate_graphs(data64)
    n = b.n_cells
    assert n > 64 * 200
    mode = MaxNumel()
    with mode:
        out = model(b)
    assert out.shape == (64, 1)
    assert torch.isfinite(out).all()
    # largest intermediate is O(N * width), nowhere near a dense N x N operator
    assert mode.max_numel <= 64 * n < n * n // 100
    loss = ((out - b.y) ** 2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum().item() > 0, pname


# ---------------------------------------------------------------------------
# Tiny overfit: area-weighted mean orientation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,hyper",
    [
        ("fgcnn", dict(n_filters=16, n_conv=2, n_dense=3, hidden=32)),
        ("rgcnn", dict(n_filters=16, n_features=16, n_conv=2, n_dense=3, hidden=32)),
    ],
)
def test_overfit_area_weighted_angle(data64, name, hyper):
    """Fit y = sum(area * phi) / sum(area) on 64 graphs with 300 Adam steps.

    Thresholds: RMSE < 0.25 std(y) (R^2 > 0.94) and mean relative error < 3 %; predicting the
    mean gives RMSE = std(y) and ~13 % relative error on this data.
    """
    torch.manual_seed(0)
    b = collate_graphs(data64)
    mu, sd = b.y.mean(), b.y.std()
    model = build_model(name, 2, **hyper)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300)
    for _ in range(300):
        opt.zero_grad()
        loss = ((model(b) - (b.y - mu) / sd) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = model(b) * sd + mu
    nrmse = ((pred - b.y) ** 2).mean().sqrt() / sd
    rel = ((pred - b.y).abs() / b.y.abs()).mean()
    assert nrmse.item() < 0.25, f"{name}: RMSE/std = {nrmse.item():.3f}"
    assert rel.item() < 0.03, f"{name}: mean relative error = {rel.item():.4f}"


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------


def test_build_model():
    assert isinstance(build_model("fgcnn", 2), FullGCNN)
    assert isinstance(build_model("RGCNN", 2, n_filters=2, n_features=3, n_dense=2), ReducedGCNN)
    with pytest.raises(ValueError) as exc:
        build_model("gat", 2)
    assert "fgcnn" in str(exc.value) and "rgcnn" in str(exc.value) and "gat" in str(exc.value)


def test_rgcnn_rejects_bad_columns():
    with pytest.raises(ValueError):
        ReducedGCNN(1)  # default extensive=(1,) does not exist for a single feature
    with pytest.raises(ValueError):
        ReducedGCNN(2, extensive=(0,), intensive=(0,))


def test_graphbatch_to_preserves_fields(data64):
    b = collate_graphs(data64[:2])
    b2 = b.to("cpu", dtype=torch.float64)
    assert isinstance(b2, GraphBatch)
    assert b2.x.dtype == torch.float64 and b2.y.dtype == torch.float64
    assert b2.edge_index.dtype == torch.long and b2.n_graphs == 2
    assert torch.equal(b2.cell_cluster, b.cell_cluster)


def test_graphconv_relu_and_dense_head_depth(data64):
    b = collate_graphs(data64[:2])
    torch.manual_seed(0)
    conv = GraphConv(2, 6)
    with torch.no_grad():
        pre = conv.pre_activation(b.x, b.edge_index)
        out = conv(b.x, b.edge_index)
    assert (pre < 0).any()  # the activation actually clips something
    assert torch.equal(out, torch.relu(pre))
    for n_dense in (1, 2, 3):
        m = FullGCNN(2, n_filters=4, n_dense=n_dense, hidden=5)
        lin = [l for l in m.head if isinstance(l, torch.nn.Linear)]
        assert len(lin) == n_dense and lin[-1].out_features == 1 and lin[0].in_features == 4
    r = ReducedGCNN(2, n_filters=2, n_features=3, n_conv=2, n_dense=2)
    assert r.reduced_convs[0].in_features == 2 + 2  # featurized filters + reduced (area sum, angle mean)
    assert r.reduced_convs[0].out_features == 3
