"""Interpretation of trained GCNNs and the pixel CNN on cp_grid2d (paper gcnn section 5 and 6.3).

For the held-out validation role of a cp_grid2d store and each trained model (``fgcnn``,
``rgcnn``, ``cnn2d``):

* Fig. 14: correlation coefficient (eq. 19) of every pooled feature ``F_a`` (eq. 18: the mean of
  the last convolution's outputs) with ``sigma_xx(t)`` over the validation samples, at every
  step; against the network's output (the paper's) and against the solver's truth.
* Fig. 15: filter maps, 2D histograms of the input ``phi`` (grain orientation angle, radians) of
  each node against the last convolution's output ``X_n(i, a)`` of that node, per filter (nodes:
  pixels for the CNN and the fGCNN, grains for the rGCNN's reduced convolution).
* Fig. 16-17: every convolution's output for one validation sample, mapped back onto its image
  (a mesh node is its pixel; a cluster node covers its pixels through the assignment ``S``:
  the prolongation ``S^T``, eq. 10), under the orientation map of the sample.
* Filter activation (sec. 5): per convolution and filter, the fraction of nodes with non-zero
  (post-ReLU) output, and of samples with any, over the validation ensemble.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

__all__ = ["feature_correlation", "node_images", "activation_fractions", "Layer", "Stack", "model_stack",
           "interpret_gcnn", "INTERPRETABLE"]

LABELS = {"fgcnn": "GCNN (full)", "rgcnn": "rGCNN", "cnn2d": "CNN"}
#: models whose convolution outputs we read: the paper's three (sec. 6.3)
INTERPRETABLE = ("cnn2d", "fgcnn", "rgcnn")


def feature_correlation(features: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Eq. 19: ``rho[a, t] = V[F_a, sigma_t] / sqrt(V[F_a] V[sigma_t])`` over the samples, for
    features ``(S, A)`` and outputs ``(S, T)``; NaN where a side is constant (a dead filter)."""
    f = xr.DataArray(np.asarray(features, float), dims=("sample", "feature"))
    y = xr.DataArray(np.asarray(outputs, float), dims=("sample", "step"))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = xr.corr(f, y, dim="sample").transpose("feature", "step").values
    const = (np.ptp(f.values, axis=0)[:, None] == 0) | (np.ptp(y.values, axis=0)[None, :] == 0)
    return np.where(const, np.nan, rho)


def node_images(values: torch.Tensor, batch, level: str, grid: tuple[int, ...]) -> torch.Tensor:
    """Node values ``(N or K, F)`` of a batch of grid graphs as images ``(B, F, *grid)``: a mesh
    node (``level="mesh"``) is its pixel, a cluster node (``"cluster"``) fills its pixels
    (``S^T``, eq. 10). Cells are the pixels in C order, samples contiguous (``collate_graphs``)."""
    n_pix = int(np.prod(grid))
    counts = torch.bincount(batch.cell_graph, minlength=batch.n_graphs)
    if not torch.all(counts == n_pix) or not torch.all(batch.cell_graph[1:] >= batch.cell_graph[:-1]):
        raise ValueError(f"node_images needs samples of {n_pix} contiguous cells each (grid {grid})")
    if level not in ("mesh", "cluster"):
        raise ValueError(f"unknown level {level!r}; allowed: 'mesh', 'cluster'")
    n_nodes = batch.n_cells if level == "mesh" else batch.n_clusters
    if values.shape[0] != n_nodes:
        raise ValueError(f"{level} values have {values.shape[0]} rows, not one per {level} node ({n_nodes})")
    cells = values if level == "mesh" else values.index_select(0, batch.cell_cluster)
    b, f = batch.n_graphs, cells.shape[1]
    return cells.reshape(b, *grid, f).movedim(-1, 1)


def activation_fractions(layers: list["Layer"]) -> list[dict]:
    """Per convolution and filter: ``node_fraction`` (nodes with output > 0 over all validation
    nodes) and ``sample_fraction`` (samples with any node > 0), both in [0, 1]."""
    rows = []
    for layer in layers:
        on = layer.nodes > 0
        for a in range(on.shape[1]):
            per_sample = np.bincount(layer.sample, weights=on[:, a], minlength=layer.n_samples)
            rows.append({"layer": layer.name, "level": layer.level, "filter": a,
                         "node_fraction": float(on[:, a].mean()),
                         "sample_fraction": float(np.mean(per_sample > 0))})
    return rows


@dataclass
class Layer:
    """One convolution's post-ReLU output over the validation samples."""

    name: str
    level: str              # "mesh" (pixels) or "cluster" (grains)
    nodes: np.ndarray       # (n_nodes, A) outputs, all samples concatenated
    phi: np.ndarray         # (n_nodes,) input orientation angle of each node (radians)
    sample: np.ndarray      # (n_nodes,) position of the node's sample in the validation role
    images: np.ndarray      # (S, A, *grid) the outputs mapped onto the pixels
    n_samples: int


@dataclass
class Stack:
    """A model's convolution outputs, pooled features and predictions on the validation role."""

    model: str
    layers: list[Layer]
    features: np.ndarray    # (S, A) F_a
    prediction: np.ndarray  # (S, T) sigma_xx, MPa
    truth: np.ndarray       # (S, T)
    phi_images: np.ndarray  # (S, *grid) input orientation angle
    grains: np.ndarray      # (S, *grid) grain label
    index: np.ndarray       # (S,) store sample index
    strain: np.ndarray      # (T,)


def pixel_angles(dataset_path: Path | str, data, ids) -> list[np.ndarray]:
    """The stored grain angle about z (radians) of every pixel of the samples ``ids`` of ``data``
    (whatever encoding the model was fed: Fig. 15-16 are drawn against the angle, as the paper's)."""
    from homlearn.data.integrity import open_dataset

    grain_angle = open_dataset(dataset_path)["grain_angle"].values[data.index[ids], :, 0]
    return [grain_angle[j][data.cell_grain[k]] for j, k in enumerate(ids)]


def model_stack(model_dir: Path | str, dataset_path: Path | str, chunk: int = 128) -> Stack:
    """Run a saved cp_grid2d model (:func:`homlearn.train.gcnn.load_gcnn`) over the validation
    role in chunks of ``chunk`` samples and collect its convolution outputs (:class:`Stack`)."""
    from homlearn.train.gcnn import _parts, load_data, load_gcnn

    model, xs, ys, info = load_gcnn(model_dir)
    name = str(info["model"]).strip().lower()
    if name not in INTERPRETABLE:
        raise ValueError(f"model {name!r}: interpretation reads the convolutions of {', '.join(INTERPRETABLE)}")
    data = load_data(dataset_path, name, info.get("exemplar"), info.get("data"))
    if data.grid is None or len(data.grid) != 2:
        raise ValueError(f"{dataset_path}: interpretation needs a cp_grid2d store, not {data.exemplar}")
    ids = data.subset("validation")
    if not ids:
        raise ValueError(f"{dataset_path}: the validation role is empty")
    angles = pixel_angles(dataset_path, data, ids)
    _, collate = _parts(name)
    grid = data.grid
    parts: dict[str, list] = {}
    feats, preds = [], []
    with torch.no_grad():
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            batch = collate(data.samples(part, xs, ys))
            phi_cells = torch.from_numpy(np.concatenate(angles[start:start + chunk])).double()[:, None]
            for lname, level, nodes, imgs, phi, sample in _layers(model, name, batch, grid, phi_cells, len(part)):
                parts.setdefault(lname, []).append((level, nodes, imgs, phi, sample + start))
            f = model.global_features(batch)
            feats.append(f.numpy())
            preds.append(ys.inverse(model.head(f).numpy()))
    layers = []
    for lname, chunks in parts.items():
        nodes, images, phi, sample = (np.concatenate([c[i] for c in chunks]) for i in range(1, 5))
        layers.append(Layer(lname, chunks[0][0], nodes=nodes, phi=phi, sample=sample, images=images,
                            n_samples=len(ids)))
    return Stack(name, layers, np.concatenate(feats), np.concatenate(preds), data.y[ids],
                 np.stack([a.reshape(grid) for a in angles]),
                 np.stack([data.cell_grain[k].reshape(grid) for k in ids]), data.index[ids], np.asarray(data.loading))


def _layers(model, name, batch, grid, phi_cells, n):
    """(name, level, nodes, images, phi per node, sample per node) of every convolution."""
    n_pix = int(np.prod(grid))
    pix_sample = np.repeat(np.arange(n), n_pix)
    if name == "cnn2d":
        for k, m in enumerate(model.layer_maps(batch)):
            nodes = m.movedim(1, -1).reshape(-1, m.shape[1])  # pixels in C order, as the graph cells
            yield f"conv {k + 1} (pixels)", "mesh", nodes.numpy(), m.numpy(), phi_cells[:, 0].numpy(), pix_sample
        return
    from homlearn.models.gcnn import reduce_to_clusters

    lv = model.levels(batch)
    mesh = [("mesh", z) for z in lv["mesh"][1:]]
    cluster = [("cluster", z) for z in lv["cluster"][1:]]  # cluster[0] is the reduced input, no convolution
    phi_clusters = reduce_to_clusters(phi_cells, batch, "mean")[:, 0].numpy()
    for k, (level, z) in enumerate(mesh + cluster):
        where = "pixels" if level == "mesh" else "grains"
        label = "featurization" if name == "rgcnn" and level == "mesh" else f"conv {k + 1}"
        phi = phi_cells[:, 0].numpy() if level == "mesh" else phi_clusters
        sample = pix_sample if level == "mesh" else batch.cluster_graph.numpy()
        yield (f"{label} ({where})", level, z.numpy(), node_images(z, batch, level, grid).numpy(), phi, sample)


def interpret_gcnn(dataset_path, model_dirs: Mapping[str, Path | str], out_dir, sample: int = 0,
                   bins: int = 40) -> dict:
    """Fig. 14, 15, 16-17 and the activation table of every model in ``model_dirs`` (name -> saved
    model directory) to ``out_dir``; ``metrics.json`` and ``activation.csv``. ``sample``: the
    position in the validation role of the sample visualised in Fig. 16-17."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stacks = {name: model_stack(mdir, dataset_path) for name, mdir in model_dirs.items()}
    if not stacks:
        raise ValueError("no models to interpret")
    ref = next(iter(stacks.values()))
    for name, st in stacks.items():
        if not np.array_equal(st.index, ref.index):
            raise ValueError(f"model {name!r} saw other validation samples than {next(iter(stacks))!r}")
    if not 0 <= sample < len(ref.index):
        raise ValueError(f"interpret sample {sample} is outside the {len(ref.index)} validation samples")
    from homlearn.train.gcnn import history_metrics

    metrics = {"exemplar": "cp_grid2d", "split": "validation", "n_validation": int(len(ref.index)),
               "strain": ref.strain.tolist(), "sample": {"position": sample, "index": int(ref.index[sample])},
               "models": {}}
    rows = []
    for name, st in stacks.items():
        act = activation_fractions(st.layers)
        rows += [{"model": name} | r for r in act]
        m = history_metrics(st.truth, st.prediction, st.strain)
        metrics["models"][name] = {
            "label": LABELS.get(name, name), "rmse": m["rmse"], "n_filters": int(st.features.shape[1]),
            "correlation_prediction": _nan_none(feature_correlation(st.features, st.prediction)),
            "correlation_truth": _nan_none(feature_correlation(st.features, st.truth)),
            "activation": act,
            "active_filters": {layer.name: int(np.sum(layer.nodes.max(axis=0) > 0)) for layer in st.layers}}
    with open(out / "activation.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _fig_correlation(stacks, out / "fig14_feature_correlation.png")
    _fig_filter_maps(stacks, bins, out / "fig15_filter_maps.png")
    for name, st in stacks.items():
        _fig_filters(st, sample, out / f"fig16_17_filters_{name}.png")
    return metrics


def _nan_none(a: np.ndarray) -> list:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a)]


def _order(names):
    return sorted(names, key=lambda n: INTERPRETABLE.index(n) if n in INTERPRETABLE else len(INTERPRETABLE))


def _fig_correlation(stacks, path):
    names = _order(stacks)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.3), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        st = stacks[name]
        pct = 100 * st.strain
        rp, rt = feature_correlation(st.features, st.prediction), feature_correlation(st.features, st.truth)
        for a in range(rp.shape[0]):
            ax.plot(pct, rp[a], "-", color=f"C{a}", label=f"F_{a + 1}")
            ax.plot(pct, rt[a], ":", color=f"C{a}")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{LABELS.get(name, name)}", fontsize=10)
        ax.set_xlabel("mean strain eps_xx (%)")
        ax.set_ylim(-1.05, 1.05)
    axes[0][0].set_ylabel("correlation of F_a with sigma_xx")
    axes[0][-1].legend(fontsize=7, title="solid: output, dotted: truth", title_fontsize=7)
    fig.suptitle("Pooled features against the stress (gcnn Fig. 14, eq. 19)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_filter_maps(stacks, bins, path):
    names = _order(stacks)
    n_f = max(st.layers[-1].nodes.shape[1] for st in stacks.values())
    fig, axes = plt.subplots(len(names), n_f, figsize=(2.8 * n_f, 2.5 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        last = stacks[name].layers[-1]
        for a in range(n_f):
            ax = axes[i][a]
            if a >= last.nodes.shape[1]:
                ax.axis("off")
                continue
            z = last.nodes[:, a]
            hi = float(z.max()) if z.max() > 0 else 1.0
            ax.hist2d(last.phi, z, bins=bins, range=[[float(last.phi.min()), float(last.phi.max()) + 1e-9],
                                                     [0.0, hi]], cmap="viridis", cmin=1)
            ax.set_title(f"{LABELS.get(name, name)}, filter {a + 1}", fontsize=8)
            if i == len(names) - 1:
                ax.set_xlabel("phi (rad)")
            if a == 0:
                ax.set_ylabel(f"X_n ({last.level})")
    fig.suptitle("Filter maps phi -> X_n(i, a) of the last convolution (gcnn Fig. 15)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fig_filters(st: Stack, s: int, path):
    n_f = max(layer.images.shape[1] for layer in st.layers)
    rows = 1 + len(st.layers)
    fig, axes = plt.subplots(rows, n_f, figsize=(2.3 * n_f, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].imshow(st.phi_images[s], cmap="twilight", origin="lower")
    g = st.grains[s]
    edge = (g != np.roll(g, 1, axis=0)) | (g != np.roll(g, 1, axis=1))  # grain boundaries (periodic)
    axes[0][0].imshow(np.ma.masked_where(~edge, edge), cmap="gray_r", vmin=0, vmax=1, origin="lower")
    axes[0][0].set_title(f"phi, sample {int(st.index[s])}", fontsize=8)
    for ax in axes[0][1:]:
        ax.axis("off")
    for r, layer in enumerate(st.layers, start=1):
        for a in range(n_f):
            ax = axes[r][a]
            if a >= layer.images.shape[1]:
                ax.axis("off")
                continue
            ax.imshow(layer.images[s, a], cmap="inferno", origin="lower")
            ax.set_title(f"{layer.name}, filter {a + 1}", fontsize=7)
    fig.suptitle(f"{LABELS.get(st.model, st.model)}: filter outputs (gcnn Fig. 16-17)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
