"""Graph convolutional surrogates of homogenized properties on mesh and grain graphs.

The multi-level GCNN family of the reduced-graph paper ('gcnn', section 4, eq. 8-18, Fig. 8-10,
section 6.1): three levels, *mesh* (cells, adjacency ``A``), *cluster* (grains/inclusions,
reduced adjacency ``A*``) and *global* (one node per sample), connected by convolutions
(Fig. 8 black arrows), reductions ``S Z`` (blue, down) and prolongations ``S^T Z*`` (red, up);
several arrows into one state concatenate. Variants (each class docstring lists its arrows):

==========  ==================  =============================================================
name        figure              levels used, split of the ``n_conv`` convolutional layers
==========  ==================  =============================================================
``ogcnn``   sec. 6.1, ref. [5]  cluster only: ``n_conv`` convs on the binary ``A*``
``fgcnn``   Fig. 9b, ref. [9]   mesh only: ``n_conv`` mesh convs
``rgcnn``   Fig. 9d, Fig. 10    1 mesh conv (featurization, eq. 15), ``n_conv - 1`` on ``A*_n``
``dgcnn``   Fig. 9c             ``ceil(n_conv/2)`` mesh, ``floor(n_conv/2)`` cluster; down only
``vgcnn``   Fig. 9a             mesh -> cluster -> mesh: ``min(1, n_conv-2)`` + rest + 1
==========  ==================  =============================================================

``n_conv`` is the total number of convolutional layers of a variant (paper sec. 6.1: "the total
number of convolutional layers"), whatever level they act on; the paper uses 2 for every variant.
The figures themselves are not in the text we have: where a variant's wiring is our reading of
the text, its class docstring says so.

Graphs of different sizes are batched PyTorch-Geometric style: nodes are concatenated, edge and
cluster indices offset, and a per-node sample index is kept. All graph operators are sparse
(gather + ``index_add``); no dense ``N_cells x N_cells`` matrix is ever formed.

Notation used below (per sample, batched block-diagonally):

* ``A`` (N x N): binary mesh adjacency, eq. 8 (zero diagonal).
* ``S`` (K x N): restriction, ``S[I, i] = 1`` if cell ``i`` lies in cluster ``I`` (eq. 9);
  ``S^T`` is the prolongation (eq. 10).
* ``D = S S^T = diag(N_I)``: cluster sizes (eq. 17).
* ``A*_n = D^-1 S A S^T``: the normalised reduced adjacency (eq. 14, 16-17), diagonal kept;
  ``A*_b``: the binary cluster adjacency of ref. [5] (1 where two clusters touch, zero diagonal).
* ``X0* = R(X)``: the reduced inputs, sums of the extensive columns (eq. 11: cell volumes ->
  cluster volumes) and means of the intensive ones (orientation), sec. 4 after eq. 17.
"""

from __future__ import annotations

import abc

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from homlearn.models.heads import MLPHead, build_head
from homlearn.models.hyper import check_hyperparameters, require_int

__all__ = [
    "GraphBatch",
    "collate_graphs",
    "GraphConv",
    "DenseHead",
    "FullGCNN",
    "ReducedGCNN",
    "OriginalGCNN",
    "DownGCNN",
    "VeeGCNN",
    "reduced_adjacency",
    "binary_cluster_adjacency",
    "reduce_to_clusters",
    "reduce_inputs",
    "prolong",
    "global_mean_pool",
    "build_model",
    "MODELS",
]


# ---------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------


@dataclass
class GraphBatch:
    """Block-diagonal batch of mesh graphs with their cell-to-grain assignment ``S``."""

    x: torch.Tensor  # (N, F) cell features
    edge_index: torch.Tensor  # (2, E2) long, row 0 = source j, row 1 = target i, both directions
    cell_graph: torch.Tensor  # (N,) long, sample index of each cell
    cell_cluster: torch.Tensor  # (N,) long, global cluster index of each cell
    cluster_graph: torch.Tensor  # (K,) long, sample index of each cluster
    n_graphs: int
    y: torch.Tensor | None = None  # (B, n_out)

    @property
    def n_cells(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_graph.shape[0])

    def to(self, device=None, dtype: torch.dtype | None = None) -> "GraphBatch":
        """Move all tensors to ``device``; optionally cast the float tensors (x, y) to ``dtype``."""

        def mv(t, is_float):
            if t is None:
                return None
            if is_float and dtype is not None:
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return replace(
            self,
            x=mv(self.x, True),
            edge_index=mv(self.edge_index, False),
            cell_graph=mv(self.cell_graph, False),
            cell_cluster=mv(self.cell_cluster, False),
            cluster_graph=mv(self.cluster_graph, False),
            y=mv(self.y, True),
        )


def prepare_graph(sample: dict) -> dict:
    """Validate and canonicalise one sample once, so that collation is plain concatenation.

    Input keys: ``"x"`` (C, F) float features, ``"edges"`` (E, 2) undirected cell pairs (local
    indices; either orientation, duplicates removed), ``"cell_grain"`` (C,) grain labels
    (compacted to ``0..G-1`` in sorted order, eq. 9: cluster order is arbitrary, no cluster is
    empty) and optionally ``"y"`` (n_out,). Output keys: ``x``, ``edge_index`` (2, 2E) in both
    directions, ``cluster`` (C,), ``n_clusters``, ``y``. Already prepared samples pass through.
    """
    if "edge_index" in sample and "n_clusters" in sample:
        return sample
    x = np.asarray(sample["x"], dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"'x' must be 2-D (C, F), got shape {x.shape}")
    c = x.shape[0]
    grain = np.asarray(sample["cell_grain"]).reshape(-1)
    if grain.shape[0] != c:
        raise ValueError(f"'cell_grain' has {grain.shape[0]} entries for {c} cells")
    _, local = np.unique(grain, return_inverse=True)
    e = np.asarray(sample["edges"], dtype=np.int64).reshape(-1, 2)
    if e.size:
        if e.min() < 0 or e.max() >= c:
            raise ValueError(f"edge index out of range [0, {c})")
        if np.any(e[:, 0] == e[:, 1]):
            raise ValueError("self-loops are not allowed in the mesh adjacency (eq. 8)")
        e = np.unique(np.sort(e, axis=1), axis=0)
    y = sample.get("y")
    return {"x": x, "edge_index": np.ascontiguousarray(np.concatenate([e, e[:, ::-1]], axis=0).T),
            "cluster": local.astype(np.int64), "n_clusters": int(local.max()) + 1 if c > 0 else 0,
            "y": None if y is None else np.asarray(y, dtype=np.float32).reshape(-1)}


def collate_graphs(samples: Sequence[dict]) -> GraphBatch:
    """Concatenate samples (raw, or made by :func:`prepare_graph`) into one :class:`GraphBatch`,
    offsetting cell and cluster indices per sample (PyTorch Geometric-style batching)."""
    if len(samples) == 0:
        raise ValueError("collate_graphs needs at least one sample")
    try:
        prepared = [prepare_graph(s) for s in samples]
    except ValueError as exc:
        raise ValueError(f"bad sample in batch: {exc}") from None
    has_y = [p["y"] is not None for p in prepared]
    if any(has_y) and not all(has_y):
        raise ValueError("either all samples or none must carry a target 'y'")
    if len({p["x"].shape[1] for p in prepared}) != 1:
        raise ValueError(f"samples disagree on the number of features: {[p['x'].shape[1] for p in prepared]}")
    n_cells = np.array([p["x"].shape[0] for p in prepared])
    n_clusters = np.array([p["n_clusters"] for p in prepared])
    cell_off = np.concatenate([[0], np.cumsum(n_cells)[:-1]])
    clus_off = np.concatenate([[0], np.cumsum(n_clusters)[:-1]])
    n_edges = [p["edge_index"].shape[1] for p in prepared]
    edge_index = np.concatenate([p["edge_index"] for p in prepared], axis=1) + np.repeat(cell_off, n_edges)
    cluster = np.concatenate([p["cluster"] for p in prepared]) + np.repeat(clus_off, n_cells)
    y = None
    if all(has_y):
        if len({len(p["y"]) for p in prepared}) != 1:
            raise ValueError("all targets 'y' must have the same length")
        y = torch.from_numpy(np.stack([p["y"] for p in prepared]))
    b = np.arange(len(prepared))
    return GraphBatch(
        x=torch.from_numpy(np.concatenate([p["x"] for p in prepared], axis=0)),
        edge_index=torch.from_numpy(edge_index),
        cell_graph=torch.from_numpy(np.repeat(b, n_cells)),
        cell_cluster=torch.from_numpy(cluster),
        cluster_graph=torch.from_numpy(np.repeat(b, n_clusters)),
        n_graphs=len(prepared),
        y=y,
    )


# ---------------------------------------------------------------------------
# Sparse graph operators
# ---------------------------------------------------------------------------


def _propagate(h: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None) -> torch.Tensor:
    """``(A h)_i = sum_j A_ij h_j`` for edges ``j -> i`` stored as ``edge_index[:, e] = (j, i)``."""
    src, dst = edge_index[0], edge_index[1]
    msg = h.index_select(0, src)
    if edge_weight is not None:
        msg = msg * edge_weight.to(h.dtype).unsqueeze(-1)
    return h.new_zeros(h.shape).index_add(0, dst, msg)


def _segment_mean(z: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    s = z.new_zeros((n, z.shape[1])).index_add(0, index, z)
    cnt = torch.bincount(index, minlength=n).clamp(min=1).to(z.dtype)
    return s / cnt.unsqueeze(-1)


def cluster_sizes(batch: GraphBatch) -> torch.Tensor:
    """``N_I``, the number of cells per cluster (diagonal of ``S S^T``, eq. 17), long (K,)."""
    return torch.bincount(batch.cell_cluster, minlength=batch.n_clusters)


def reduce_to_clusters(z: torch.Tensor, batch: GraphBatch, how: str = "mean") -> torch.Tensor:
    """Restriction ``S Z`` (eq. 11, 15): ``"sum"`` gives cluster totals, ``"mean"`` the
    cluster-wise average ``D^-1 S Z`` (normalization of eq. 17)."""
    k = batch.n_clusters
    if how == "sum":
        return z.new_zeros((k, z.shape[1])).index_add(0, batch.cell_cluster, z)
    if how == "mean":
        return _segment_mean(z, batch.cell_cluster, k)
    raise ValueError(f"unknown reduction {how!r}; allowed: 'mean', 'sum'")


def reduced_adjacency(
    batch: GraphBatch, normalize: bool = True, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse reduced adjacency ``A* = S A S^T`` (eq. 14), row-normalised by ``N_I``.

    ``A*_IJ`` counts directed mesh edges from cluster ``J`` to cluster ``I``; the diagonal
    ``A*_II`` (intra-grain adjacency, ~ grain volume) is kept. With ``normalize=True`` the
    rows are divided by the cluster size, ``A*_n = D^-1 S A S^T``, which is exactly the
    operator for which eq. 16 holds: for grain-uniform ``Z = S^T Z*`` one has
    ``D^-1 S (A Z) = A*_n Z*``.

    Returns ``(edge_index, edge_weight)`` on clusters with the same (source, target)
    convention as ``batch.edge_index``.
    """
    dtype = dtype or (batch.x.dtype if batch.x.is_floating_point() else torch.get_default_dtype())
    src, dst, counts = _cluster_pairs(batch)
    weight = counts.to(dtype)
    if normalize:
        weight = weight / cluster_sizes(batch).to(dtype)[dst]
    return torch.stack([src, dst]), weight


def _cluster_pairs(batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct (source, target) cluster pairs of the mesh edges and how many edges each has."""
    k = batch.n_clusters
    ci_src = batch.cell_cluster[batch.edge_index[0]]
    ci_dst = batch.cell_cluster[batch.edge_index[1]]
    uniq, counts = torch.unique(ci_dst * k + ci_src, return_counts=True)
    dst = torch.div(uniq, k, rounding_mode="floor")
    return uniq - dst * k, dst, counts


def binary_cluster_adjacency(batch: GraphBatch) -> torch.Tensor:
    """Binary reduced adjacency ``A*_b`` of the original clustered GCNN (ref. [5], paper sec. 6):
    ``A*_b[I, J] = 1`` if clusters ``I != J`` share at least one mesh face, zero diagonal (the
    self weight ``W0`` of :class:`GraphConv` is separate). Returns the ``edge_index`` (both
    directions, no weights) with the convention of ``batch.edge_index``."""
    src, dst, _ = _cluster_pairs(batch)
    off = src != dst
    return torch.stack([src[off], dst[off]])


def prolong(z_star: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    """Prolongation ``S^T Z*`` (eq. 10, Fig. 8 red arrows): every cell takes its cluster's row.
    It is the transpose of the sum-reduction ``S Z`` (``reduce_to_clusters(.., "sum")``)."""
    return z_star.index_select(0, batch.cell_cluster)


def check_columns(in_features: int, extensive: Sequence[int], intensive: Sequence[int]) -> tuple[tuple, tuple]:
    """Validated ``(extensive, intensive)`` input-column tuples (see :func:`reduce_inputs`)."""
    extensive, intensive = tuple(int(i) for i in extensive), tuple(int(i) for i in intensive)
    for i in extensive + intensive:
        if not 0 <= i < in_features:
            raise ValueError(f"input column {i} out of range for in_features={in_features}")
    if set(extensive) & set(intensive):
        raise ValueError(f"columns {sorted(set(extensive) & set(intensive))} are both extensive and intensive")
    return extensive, intensive


def reduce_inputs(x: torch.Tensor, batch: GraphBatch, extensive: torch.Tensor, intensive: torch.Tensor) -> torch.Tensor:
    """``X0* = R(X)``: cluster sums of the ``extensive`` input columns (eq. 11, cell volume ->
    cluster volume) followed by cluster means of the ``intensive`` ones (orientation), sec. 4."""
    parts = []
    if extensive.numel():
        parts.append(reduce_to_clusters(x.index_select(1, extensive), batch, "sum"))
    if intensive.numel():
        parts.append(reduce_to_clusters(x.index_select(1, intensive), batch, "mean"))
    return torch.cat(parts, dim=1) if parts else x.new_zeros((batch.n_clusters, 0))


def global_mean_pool(z: torch.Tensor, index: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """Per-sample average of node features (eq. 18)."""
    return _segment_mean(z, index, n_graphs)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


class GraphConv(nn.Module):
    """Z' = a(Z W0 + (A Z) W1 + b): independent self and neighbour weights (paper eq. 12-13, not Kipf-Welling).

    ``A`` is given sparsely by ``edge_index`` (source, target) and an optional ``edge_weight``
    (used for the normalised reduced adjacency of eq. 14/17). ``activation=None`` gives a
    linear layer; :meth:`pre_activation` always returns the affine part.
    """

    def __init__(self, in_features: int, out_features: int, activation: str | None = "relu"):
        super().__init__()
        if activation not in ("relu", None):
            raise ValueError(f"unknown activation {activation!r}; allowed: 'relu', None")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.lin_self = nn.Linear(in_features, out_features, bias=True)  # W0 and b
        self.lin_neigh = nn.Linear(in_features, out_features, bias=False)  # W1

    def pre_activation(
        self, z: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        # (A Z) W1 == A (Z W1): gather/scatter over the narrower of the two widths.
        if self.in_features < self.out_features:
            neigh = self.lin_neigh(_propagate(z, edge_index, edge_weight))
        else:
            neigh = _propagate(self.lin_neigh(z), edge_index, edge_weight)
        return self.lin_self(z) + neigh

    def forward(
        self, z: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.pre_activation(z, edge_index, edge_weight)
        return torch.relu(h) if self.activation == "relu" else h

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, activation={self.activation}"


#: The MLP head (:class:`homlearn.models.heads.MLPHead`) under its former name.
DenseHead = MLPHead


def _pool_cells(z: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    return global_mean_pool(z, batch.cell_graph, batch.n_graphs)


def _pool_clusters(z: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    return global_mean_pool(z, batch.cluster_graph, batch.n_graphs)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class _GCNN(nn.Module, abc.ABC):
    """Common part: ``forward = head(global features)``. :meth:`levels` returns the node states of
    every level (``"mesh"``: list of (N, .) states, ``"cluster"``: list of (K, .), ``"global"``: the
    pooled features ``F_a`` (B, .)), for the filter maps and correlations of paper section 5."""

    head: nn.Module

    @abc.abstractmethod
    def levels(self, batch: GraphBatch) -> dict:
        """Every level's node states (each variant defines its own flow, Fig. 8-9)."""

    def global_features(self, batch: GraphBatch) -> torch.Tensor:
        """``F_a`` (eq. 18): the head's input."""
        return self.levels(batch)["global"]

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return self.head(self.global_features(batch))

    def _columns(self, in_features: int, extensive, intensive) -> int:
        ext, inten = check_columns(in_features, extensive, intensive)
        self.register_buffer("extensive", torch.tensor(ext, dtype=torch.long), persistent=False)
        self.register_buffer("intensive", torch.tensor(inten, dtype=torch.long), persistent=False)
        return len(ext) + len(inten)


def _head(head, in_features, n_out, n_dense, hidden, lstm_hidden, n_mix) -> nn.Module:
    return build_head(head, in_features, n_out, n_dense, hidden, lstm_hidden, n_mix)


class FullGCNN(_GCNN):
    """fGCNN (Fig. 9b, ref. [9]): ``n_conv`` graph convolutions (eq. 12-13) on the mesh graph,
    global average pooling over cells (eq. 18), head.

    Fig. 8 arrows: mesh black x ``n_conv``; blue mesh -> global (pooling). No cluster level.
    """

    def __init__(
        self,
        in_features: int,
        n_filters: int = 16,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        hidden: int = 32,
        head: str = "mlp",
        lstm_hidden: int = 32,
        n_mix: int = 16,
    ):
        super().__init__()
        n_conv, n_filters = require_int("n_conv", n_conv), require_int("n_filters", n_filters)
        dims = [in_features] + [n_filters] * n_conv
        self.convs = nn.ModuleList(GraphConv(dims[i], dims[i + 1]) for i in range(n_conv))
        self.head = _head(head, n_filters, n_out, n_dense, hidden, lstm_hidden, n_mix)

    def levels(self, batch: GraphBatch) -> dict:
        z = batch.x
        mesh = [z]
        for conv in self.convs:
            z = conv(z, batch.edge_index)
            mesh.append(z)
        return {"mesh": mesh, "cluster": [], "global": _pool_cells(z, batch)}


class ReducedGCNN(_GCNN):
    """rGCNN (Fig. 9d/10).

    1. One featurizing convolution on the mesh graph with ``n_filters`` filters, reduced to
       grains by the cluster mean ``Z* = D^-1 S Conv(Z, A)`` (eq. 15, 17).
    2. The raw inputs are reduced too and concatenated to ``Z*``: sums for the
       ``extensive`` columns (cell area -> grain area, eq. 11) and means for the
       ``intensive`` columns (orientation -> grain orientation).
    3. ``n_conv - 1`` graph convolutions with ``n_features`` filters on the reduced graph
       with ``A*_n = D^-1 S A S^T`` (eq. 14, 16-17; diagonal kept).
    4. Global average pooling over clusters (eq. 18 on the reduced graph), head.

    Fig. 8 arrows: mesh black x 1; blue mesh -> cluster (featurized and raw inputs,
    concatenated); cluster black x ``n_conv - 1``; blue cluster -> global.
    """

    def __init__(
        self,
        in_features: int,
        n_filters: int = 16,
        n_features: int = 16,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        extensive: Sequence[int] = (1,),
        intensive: Sequence[int] = (0,),
        hidden: int = 32,
        head: str = "mlp",
        lstm_hidden: int = 32,
        n_mix: int = 16,
    ):
        super().__init__()
        n_conv = require_int("n_conv", n_conv, 1, " (the featurizing convolution)")
        n_filters, n_features = require_int("n_filters", n_filters), require_int("n_features", n_features)
        n_red = self._columns(in_features, extensive, intensive)
        self.featurize = GraphConv(in_features, n_filters)
        dims = [n_filters + n_red] + [n_features] * (n_conv - 1)
        self.reduced_convs = nn.ModuleList(GraphConv(dims[i], dims[i + 1]) for i in range(n_conv - 1))
        self.head = _head(head, dims[-1], n_out, n_dense, hidden, lstm_hidden, n_mix)

    def levels(self, batch: GraphBatch) -> dict:
        x = batch.x
        m = self.featurize(x, batch.edge_index)
        z = torch.cat([reduce_to_clusters(m, batch, "mean"), reduce_inputs(x, batch, self.extensive,
                                                                            self.intensive)], dim=1)
        cluster = [z]
        if len(self.reduced_convs):
            cei, cew = reduced_adjacency(batch, normalize=True, dtype=z.dtype)
            for conv in self.reduced_convs:
                z = conv(z, cei, cew)
                cluster.append(z)
        return {"mesh": [x, m], "cluster": cluster, "global": _pool_clusters(z, batch)}


class OriginalGCNN(_GCNN):
    """oGCNN, the "original" clustered GCNN (paper section 6 and 6.1, ref. [5]): its input is
    only the clustered data ``X0* = R(X)`` (sums of the ``extensive`` columns, means of the
    ``intensive`` ones; every input column must be one of the two), with no featurization;
    ``n_conv`` graph convolutions (eq. 12-13, ``n_features`` filters, default ``n_filters``) on
    the binary cluster adjacency ``A*_b`` (:func:`binary_cluster_adjacency`: 1 where two clusters
    touch, zero diagonal; the self weight is separate); average pooling over clusters; head.

    Fig. 8 arrows: the input enters at the cluster level (``X0*``; its reduction is data
    preparation, not learned); cluster black x ``n_conv``; blue cluster -> global.
    Our choices: pooling is the cluster mean as for the rGCNN (eq. 18 on the reduced graph); the
    binary adjacency is not normalised (ref. [5]'s binary graph, as the paper describes it).
    """

    def __init__(
        self,
        in_features: int,
        n_filters: int = 16,
        n_features: int | None = None,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        extensive: Sequence[int] = (1,),
        intensive: Sequence[int] = (0,),
        hidden: int = 32,
        head: str = "mlp",
        lstm_hidden: int = 32,
        n_mix: int = 16,
    ):
        super().__init__()
        n_conv = require_int("n_conv", n_conv)
        width = require_int("n_filters", n_filters) if n_features is None else require_int("n_features", n_features)
        n_red = self._columns(in_features, extensive, intensive)
        missing = sorted(set(range(in_features)) - set(self.extensive.tolist()) - set(self.intensive.tolist()))
        if missing:
            raise ValueError(f"ogcnn sees cluster data only: input columns {missing} are in neither 'extensive' "
                             "nor 'intensive' and would be ignored; declare each column in one of them")
        dims = [n_red] + [width] * n_conv
        self.cluster_convs = nn.ModuleList(GraphConv(dims[i], dims[i + 1]) for i in range(n_conv))
        self.head = _head(head, width, n_out, n_dense, hidden, lstm_hidden, n_mix)

    def levels(self, batch: GraphBatch) -> dict:
        z = reduce_inputs(batch.x, batch, self.extensive, self.intensive)
        cluster = [z]
        cei = binary_cluster_adjacency(batch)
        for conv in self.cluster_convs:
            z = conv(z, cei)
            cluster.append(z)
        return {"mesh": [], "cluster": cluster, "global": _pool_clusters(z, batch)}


class DownGCNN(_GCNN):
    """dGCNN, the "down" variant (Fig. 9c): information flows only from finer to coarser levels.

    With ``n_mesh = ceil(n_conv / 2)`` mesh and ``n_cluster = n_conv - n_mesh`` cluster
    convolutions (``n_conv >= 2``; the paper's ``n_conv = 2`` gives one of each):

    * mesh stream ``M_0 = X``, ``M_k = Conv(M_{k-1}, A)`` (``n_filters`` filters);
    * cluster stream ``C_0 = X0* = R(X)`` (reduced inputs, the reduction of level 0), and
      ``C_k = Conv*([C_{k-1}, D^-1 S M_k], A*_n)`` (``n_features`` filters, default
      ``n_filters``): every mesh level is reduced by the cluster mean (eq. 15, 17) and
      concatenated with the cluster stream; when ``n_mesh > n_cluster`` (odd ``n_conv``) the last
      reduced mesh level is concatenated without a convolution (Fig. 8's "direct pass-through");
    * global ``F = [mean_cells M_last, mean_clusters C_last]``: both levels pooled (eq. 18).

    Fig. 8 arrows: mesh black x ``n_mesh``; blue mesh -> cluster at every mesh depth (0 .. n_mesh);
    cluster black x ``n_cluster``; blue mesh -> global and cluster -> global; no red arrows.
    Our reading (the figure is not in the text): the split of ``n_conv`` and the ladder wiring
    (cluster conv ``k`` sees mesh level ``k``). With ``n_conv = 2`` it is the rGCNN plus the pooled
    mesh features.
    """

    def __init__(
        self,
        in_features: int,
        n_filters: int = 16,
        n_features: int | None = None,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        extensive: Sequence[int] = (1,),
        intensive: Sequence[int] = (0,),
        hidden: int = 32,
        head: str = "mlp",
        lstm_hidden: int = 32,
        n_mix: int = 16,
    ):
        super().__init__()
        n_conv = require_int("n_conv", n_conv, 2, " (dgcnn has a mesh and a cluster convolution)")
        nf = require_int("n_filters", n_filters)
        nk = nf if n_features is None else require_int("n_features", n_features)
        self.n_mesh = math.ceil(n_conv / 2)
        self.n_cluster = n_conv - self.n_mesh
        width = self._columns(in_features, extensive, intensive)
        self.mesh_convs = nn.ModuleList(GraphConv(in_features if k == 0 else nf, nf) for k in range(self.n_mesh))
        convs = []
        for _ in range(self.n_cluster):
            convs.append(GraphConv(width + nf, nk))
            width = nk
        self.cluster_convs = nn.ModuleList(convs)
        width += nf * (self.n_mesh - self.n_cluster)
        self.head = _head(head, nf + width, n_out, n_dense, hidden, lstm_hidden, n_mix)

    def levels(self, batch: GraphBatch) -> dict:
        m = batch.x
        c = reduce_inputs(m, batch, self.extensive, self.intensive)
        mesh, cluster = [m], [c]
        cei, cew = reduced_adjacency(batch, normalize=True, dtype=m.dtype)
        for k, conv in enumerate(self.mesh_convs):
            m = conv(m, batch.edge_index)
            c = torch.cat([c, reduce_to_clusters(m, batch, "mean")], dim=1)
            if k < self.n_cluster:
                c = self.cluster_convs[k](c, cei, cew)
            mesh.append(m)
            cluster.append(c)
        return {"mesh": mesh, "cluster": cluster,
                "global": torch.cat([_pool_cells(m, batch), _pool_clusters(c, batch)], dim=1)}


class VeeGCNN(_GCNN):
    """vGCNN, the "vee" variant (Fig. 9a): information flows mesh -> cluster -> mesh.

    ``n_conv >= 2`` convolutions split as ``n_down = min(1, n_conv - 2)`` mesh convolutions
    before the reduction, ``n_cluster = n_conv - 1 - n_down`` on the reduced graph and one mesh
    convolution after the prolongation:

    * down arm: ``M = X``, then ``n_down`` mesh convolutions (``n_filters`` filters);
    * cluster: ``C = [X0*, D^-1 S M]`` (``[X0*]`` when ``n_down = 0``: the reduction of the raw
      inputs), ``n_cluster`` convolutions on ``A*_n`` (``n_features`` filters, default ``n_filters``);
    * up arm: the prolongation ``S^T C`` (eq. 10) concatenated with the mesh stream ``M``, one
      mesh convolution ``U = Conv([M, S^T C], A)`` (``n_filters`` filters);
    * global ``F = mean_cells U`` (eq. 18), head.

    Fig. 8 arrows: mesh black x ``n_down`` (a pass-through when 0); blue mesh -> cluster; cluster
    black x ``n_cluster``; red cluster -> mesh; mesh black x 1; blue mesh -> global.
    Our reading (the figure is not in the text): with the paper's ``n_conv = 2`` the three
    convolutions of the vee (mesh, cluster, mesh) do not fit, and we keep the cluster and the
    final mesh convolution (the down arm is the pass-through of the raw inputs, which Fig. 8
    allows): dropping the final one instead would make the prolongation followed by the cell
    average a mere cell-count-weighted cluster average, i.e. no cluster -> mesh flow at all.
    """

    def __init__(
        self,
        in_features: int,
        n_filters: int = 16,
        n_features: int | None = None,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        extensive: Sequence[int] = (1,),
        intensive: Sequence[int] = (0,),
        hidden: int = 32,
        head: str = "mlp",
        lstm_hidden: int = 32,
        n_mix: int = 16,
    ):
        super().__init__()
        n_conv = require_int("n_conv", n_conv, 2, " (vgcnn has a cluster and a mesh convolution)")
        nf = require_int("n_filters", n_filters)
        nk = nf if n_features is None else require_int("n_features", n_features)
        self.n_down = min(1, n_conv - 2)
        self.n_cluster = n_conv - 1 - self.n_down
        n_red = self._columns(in_features, extensive, intensive)
        self.down_convs = nn.ModuleList(GraphConv(in_features, nf) for _ in range(self.n_down))
        dims = [n_red + (nf if self.n_down else 0)] + [nk] * self.n_cluster
        self.cluster_convs = nn.ModuleList(GraphConv(dims[i], dims[i + 1]) for i in range(self.n_cluster))
        self.up_convs = nn.ModuleList([GraphConv((nf if self.n_down else in_features) + nk, nf)])
        self.head = _head(head, nf, n_out, n_dense, hidden, lstm_hidden, n_mix)

    def levels(self, batch: GraphBatch) -> dict:
        x = batch.x
        m = x
        mesh = [m]
        for conv in self.down_convs:
            m = conv(m, batch.edge_index)
            mesh.append(m)
        c = reduce_inputs(x, batch, self.extensive, self.intensive)
        if self.n_down:
            c = torch.cat([c, reduce_to_clusters(m, batch, "mean")], dim=1)
        cluster = [c]
        cei, cew = reduced_adjacency(batch, normalize=True, dtype=c.dtype)
        for conv in self.cluster_convs:
            c = conv(c, cei, cew)
            cluster.append(c)
        u = torch.cat([m, prolong(c, batch)], dim=1)
        for conv in self.up_convs:
            u = conv(u, batch.edge_index)
            mesh.append(u)
        return {"mesh": mesh, "cluster": cluster, "global": _pool_cells(u, batch)}


MODELS: dict[str, type[nn.Module]] = {"ogcnn": OriginalGCNN, "fgcnn": FullGCNN, "dgcnn": DownGCNN,
                                      "vgcnn": VeeGCNN, "rgcnn": ReducedGCNN}


def build_model(name: str, in_features: int, n_out: int = 1, **hyper) -> nn.Module:
    """Instantiate a GCNN by name (case-insensitive): ``ogcnn``, ``fgcnn``, ``dgcnn``, ``vgcnn``,
    ``rgcnn``. ``hyper`` are the class's keyword arguments (``n_filters``, ``n_features``,
    ``n_conv``, ``n_dense``, ``hidden``, ``head``, ``lstm_hidden``, ``n_mix``, and the
    ``extensive``/``intensive`` input columns of the reducing variants; the fGCNN never reduces
    and ignores the latter two, so that a trainer can pass them to every variant)."""
    key = str(name).strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed names: {', '.join(sorted(MODELS))}")
    cls = MODELS[key]
    if cls is FullGCNN:
        hyper = {k: v for k, v in hyper.items() if k not in ("extensive", "intensive")}
    check_hyperparameters(key, cls, hyper, fixed=("in_features", "n_out"))
    return cls(in_features, n_out=n_out, **hyper)
