"""Graph convolutional surrogates of homogenized properties on mesh and grain graphs.

Implements the full-mesh GCNN (fGCNN, Fig. 9b) and the reduced GCNN (rGCNN, Fig. 9d/10)
of the multi-level GCNN paper (section 4, eq. 8-18). Graphs of different sizes are batched
PyTorch-Geometric style: nodes are concatenated, edge and cluster indices offset, and a
per-node sample index is kept. All graph operators are sparse (gather + ``index_add``); no
dense ``N_cells x N_cells`` matrix is ever formed.

Notation used below (per sample, batched block-diagonally):

* ``A`` (N x N): binary mesh adjacency, eq. 8 (zero diagonal).
* ``S`` (K x N): restriction, ``S[I, i] = 1`` if cell ``i`` lies in cluster ``I`` (eq. 9);
  ``S^T`` is the prolongation (eq. 10).
* ``D = S S^T = diag(N_I)``: cluster sizes (eq. 17).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "GraphBatch",
    "collate_graphs",
    "GraphConv",
    "DenseHead",
    "FullGCNN",
    "ReducedGCNN",
    "reduced_adjacency",
    "reduce_to_clusters",
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
    k = batch.n_clusters
    dtype = dtype or (batch.x.dtype if batch.x.is_floating_point() else torch.get_default_dtype())
    ci_src = batch.cell_cluster[batch.edge_index[0]]
    ci_dst = batch.cell_cluster[batch.edge_index[1]]
    key = ci_dst * k + ci_src
    uniq, counts = torch.unique(key, return_counts=True)
    dst = torch.div(uniq, k, rounding_mode="floor")
    src = uniq - dst * k
    weight = counts.to(dtype)
    if normalize:
        weight = weight / cluster_sizes(batch).to(dtype)[dst]
    return torch.stack([src, dst]), weight


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


class DenseHead(nn.Sequential):
    """MLP on the pooled features: ``n_dense`` linear layers in total (last one is the linear
    output layer), ReLU in between."""

    def __init__(self, in_features: int, hidden: int, n_dense: int, n_out: int):
        if n_dense < 1:
            raise ValueError(f"n_dense must be >= 1, got {n_dense}")
        dims = [in_features] + [hidden] * (n_dense - 1) + [n_out]
        layers: list[nn.Module] = []
        for i in range(n_dense):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < n_dense - 1:
                layers.append(nn.ReLU())
        super().__init__(*layers)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class FullGCNN(nn.Module):
    """fGCNN (Fig. 9b): ``n_conv`` graph convolutions (eq. 12-13) on the mesh graph, global
    average pooling over cells (eq. 18), dense head."""

    def __init__(
        self,
        in_features: int,
        n_filters: int = 16,
        n_conv: int = 2,
        n_dense: int = 3,
        n_out: int = 1,
        hidden: int = 32,
    ):
        super().__init__()
        if n_conv < 1:
            raise ValueError(f"n_conv must be >= 1, got {n_conv}")
        dims = [in_features] + [n_filters] * n_conv
        self.convs = nn.ModuleList(GraphConv(dims[i], dims[i + 1]) for i in range(n_conv))
        self.head = DenseHead(n_filters, hidden, n_dense, n_out)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        z = batch.x
        for conv in self.convs:
            z = conv(z, batch.edge_index)
        return self.head(global_mean_pool(z, batch.cell_graph, batch.n_graphs))


class ReducedGCNN(nn.Module):
    """rGCNN (Fig. 9d/10).

    1. One featurizing convolution on the mesh graph with ``n_filters`` filters, reduced to
       grains by the cluster mean ``Z* = D^-1 S Conv(Z, A)`` (eq. 15, 17).
    2. The raw inputs are reduced too and concatenated to ``Z*``: sums for the
       ``extensive`` columns (cell area -> grain area, eq. 11) and means for the
       ``intensive`` columns (orientation -> grain orientation).
    3. ``n_conv - 1`` graph convolutions with ``n_features`` filters on the reduced graph
       with ``A*_n = D^-1 S A S^T`` (eq. 14, 16-17; diagonal kept).
    4. Global average pooling over clusters (eq. 18 on the reduced graph), dense head.
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
    ):
        super().__init__()
        if n_conv < 1:
            raise ValueError(f"n_conv must be >= 1 (the featurizing convolution), got {n_conv}")
        extensive, intensive = tuple(int(i) for i in extensive), tuple(int(i) for i in intensive)
        for i in extensive + intensive:
            if not 0 <= i < in_features:
                raise ValueError(f"input column {i} out of range for in_features={in_features}")
        if set(extensive) & set(intensive):
            raise ValueError(f"columns {sorted(set(extensive) & set(intensive))} are both extensive and intensive")
        self.register_buffer("extensive", torch.tensor(extensive, dtype=torch.long), persistent=False)
        self.register_buffer("intensive", torch.tensor(intensive, dtype=torch.long), persistent=False)

        self.featurize = GraphConv(in_features, n_filters)
        d = n_filters + len(extensive) + len(intensive)
        dims = [d] + [n_features] * (n_conv - 1)
        self.reduced_convs = nn.ModuleList(GraphConv(dims[i], dims[i + 1]) for i in range(n_conv - 1))
        self.head = DenseHead(dims[-1], hidden, n_dense, n_out)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        x = batch.x
        parts = [reduce_to_clusters(self.featurize(x, batch.edge_index), batch, "mean")]
        if self.extensive.numel():
            parts.append(reduce_to_clusters(x.index_select(1, self.extensive), batch, "sum"))
        if self.intensive.numel():
            parts.append(reduce_to_clusters(x.index_select(1, self.intensive), batch, "mean"))
        z = torch.cat(parts, dim=1)
        if len(self.reduced_convs):
            cei, cew = reduced_adjacency(batch, normalize=True, dtype=z.dtype)
            for conv in self.reduced_convs:
                z = conv(z, cei, cew)
        return self.head(global_mean_pool(z, batch.cluster_graph, batch.n_graphs))


MODELS: dict[str, type[nn.Module]] = {"fgcnn": FullGCNN, "rgcnn": ReducedGCNN}


def build_model(name: str, in_features: int, **hyper) -> nn.Module:
    """Instantiate ``"fgcnn"`` (:class:`FullGCNN`) or ``"rgcnn"`` (:class:`ReducedGCNN`)."""
    key = str(name).strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed names: {', '.join(sorted(MODELS))}")
    return MODELS[key](in_features, **hyper)
