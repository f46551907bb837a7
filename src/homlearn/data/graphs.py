"""Graph samples for the GCNN family, read from a dataset store through xarray.

Each sample becomes a dict with ``x`` (cell features scaled to [0, 1], paper section 6),
``edges`` (cell pairs sharing an edge), ``cell_grain`` (the assignment S) and ``y`` (scaled
target). Scalers are fitted on the training split only and saved with each model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homlearn.data.store import STATUS_DONE

#: cell input features of heat2d and whether each is extensive (summed when reduced) or intensive
HEAT2D_FEATURES = (("cell_angle", "intensive"), ("cell_area", "extensive"))


@dataclass(frozen=True)
class MinMaxScaler:
    """x -> (x - lo) / (hi - lo), column-wise (paper section 6: inputs normalized to [0, 1])."""

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "MinMaxScaler":
        lo, hi = x.min(axis=0), x.max(axis=0)
        return cls(lo, np.where(hi > lo, hi, lo + 1.0))

    def transform(self, x):
        return (x - self.lo) / (self.hi - self.lo)

    def inverse(self, z):
        return z * (self.hi - self.lo) + self.lo

    def to_json(self) -> dict:
        return {"lo": np.asarray(self.lo).tolist(), "hi": np.asarray(self.hi).tolist()}

    @classmethod
    def from_json(cls, d) -> "MinMaxScaler":
        return cls(np.asarray(d["lo"]), np.asarray(d["hi"]))


@dataclass
class GraphDataset:
    """All finished samples of a store as raw (unscaled) arrays, plus the stored split."""

    index: np.ndarray          # store sample index of each entry
    split: np.ndarray          # 0 train, 1 test, 2 validation
    x: list[np.ndarray]        # (C_s, F) raw cell features
    edges: list[np.ndarray]    # (E_s, 2)
    cell_grain: list[np.ndarray]
    y: np.ndarray              # (S, n_out) raw targets
    feature_names: tuple[str, ...]
    extensive: tuple[int, ...]
    intensive: tuple[int, ...]

    def subset(self, which: int) -> list[int]:
        return [k for k in range(len(self.index)) if self.split[k] == which]

    def samples(self, ids, x_scaler: MinMaxScaler, y_scaler: MinMaxScaler) -> list[dict]:
        """Scaled samples, validated and canonicalised once (collation is then concatenation)."""
        from homlearn.models.gcnn import prepare_graph

        return [prepare_graph({"x": x_scaler.transform(self.x[k]).astype(np.float32), "edges": self.edges[k],
                               "cell_grain": self.cell_grain[k],
                               "y": y_scaler.transform(self.y[k]).astype(np.float32)}) for k in ids]

    def fit_scalers(self) -> tuple[MinMaxScaler, MinMaxScaler]:
        train = self.subset(0)
        if not train:
            raise ValueError("the training split is empty: increase n_samples or the train fraction")
        return (MinMaxScaler.fit(np.concatenate([self.x[k] for k in train])),
                MinMaxScaler.fit(self.y[train]))


def load_heat2d_graphs(path: Path | str) -> GraphDataset:
    """Read every finished sample (status done) of the heat2d dataset store."""
    from homlearn.data.integrity import open_dataset

    ds = open_dataset(path)  # refuses a damaged store, naming it
    status = ds["status"].values
    done = np.flatnonzero(status == STATUS_DONE)
    if len(done) == 0:
        raise ValueError(f"{path}: no finished samples (status == 1)")
    cols = {name: ds[name].values for name, _ in HEAT2D_FEATURES}
    cell_grain = ds["cell_grain"].values
    edge_cells = ds["edge_cells"].values
    c_off, c_cnt = ds["cell_offset"].values, ds["cell_count"].values
    e_off, e_cnt = ds["edge_offset"].values, ds["edge_count"].values
    x, edges, grains = [], [], []
    for i in done:
        cs = slice(c_off[i], c_off[i] + c_cnt[i])
        x.append(np.stack([cols[name][cs] for name, _ in HEAT2D_FEATURES], axis=1))
        grains.append(cell_grain[cs].astype(np.int64))
        edges.append(edge_cells[e_off[i]:e_off[i] + e_cnt[i]].astype(np.int64))
    kinds = [kind for _, kind in HEAT2D_FEATURES]
    return GraphDataset(
        index=done, split=ds["split"].values[done], x=x, edges=edges, cell_grain=grains,
        y=ds["kbar"].values[done, :1], feature_names=tuple(n for n, _ in HEAT2D_FEATURES),
        extensive=tuple(i for i, k in enumerate(kinds) if k == "extensive"),
        intensive=tuple(i for i, k in enumerate(kinds) if k == "intensive"))
