"""Graph samples for the GCNN family, read from a dataset store through xarray (paper gcnn sec. 3, 4, 6).

:func:`load_graphs` reads every finished sample (status done) of a store of one exemplar:

* ``heat2d``: cells = triangles, features orientation angle (intensive) and area (extensive),
  S = the cell's grain; target the effective conductivity kbar_xx (one value).
* ``cp_grid2d`` / ``cp_grid3d``: cells = pixels / voxels, edges = the store's periodic
  ``pixel_edges`` (4 / 6 neighbours per voxel), S = ``voxel_grain``; features the grain
  orientation per voxel (intensive; :mod:`homlearn.data.orientation`) and the voxel volume
  (extensive; constant, kept as the paper does: its cluster sum is the grain volume fraction);
  target the mean sigma_xx history (MPa) at the stored steps.
* ``viscoelastic3d``: cells = tetrahedra, edges = face neighbours, S = ``cell_cluster`` (matrix,
  one cluster per inclusion); features phase (intensive) and volume (extensive); target the
  volume-averaged sigma_xx history (MPa).

History targets drop the t = 0 row when it is identically zero, and come with ``loading``, the
mean eps_xx at each kept step, which every sample must share (a store whose samples do not is
refused). Features are scaled to [0, 1] (paper section 6) by scalers fitted on the training split
only and saved with each model.

Split convention of :class:`GraphDataset` (``split``, whatever the store calls its splits): the
paper's (section 6, 7:2:1): 0 ``train``; 1 ``test``, the set that stops the training early; 2
``validation``, held out, every reported number is on it. heat2d and viscoelastic3d stores use
these names and codes; cp_grid stores name them train / validation / test in the usual
machine-learning sense (validation = the early-stopping set, test = held out), so their
'validation' samples get role 1 and their 'test' samples role 2 (the codes coincide; the names
differ). ``store_split`` keeps the stored codes and ``split_names`` the store's name of each role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from homlearn.data.store import STATUS_DONE

EXEMPLARS = ("heat2d", "cp_grid2d", "cp_grid3d", "viscoelastic3d")
#: roles of GraphDataset.split (see the module doc)
TRAIN, TEST, VALIDATION = 0, 1, 2
SPLIT_ROLES = {TRAIN: "train", TEST: "test", VALIDATION: "validation"}
_PAPER_NAMES = {"train": TRAIN, "test": TEST, "validation": VALIDATION}
_ML_NAMES = {"train": TRAIN, "validation": TEST, "test": VALIDATION}
#: each exemplar's split names (the store's ``split`` flag_meanings) -> role
STORE_SPLIT_NAMES = {"heat2d": _PAPER_NAMES, "viscoelastic3d": _PAPER_NAMES,
                     "cp_grid2d": _ML_NAMES, "cp_grid3d": _ML_NAMES}

#: cell input features of heat2d and whether each is extensive (summed when reduced) or intensive
HEAT2D_FEATURES = (("cell_angle", "intensive"), ("cell_area", "extensive"))
VISCOELASTIC3D_FEATURES = (("cell_phase", "intensive"), ("cell_volume", "extensive"))


@dataclass(frozen=True)
class MinMaxScaler:
    """x -> (x - lo) / (hi - lo), column-wise (paper section 6: inputs normalized to [0, 1]); an
    affine scaler, also fitted as a centred one for history targets (:meth:`fit_centered`)."""

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, zero_based=(), pooled: bool = False) -> "MinMaxScaler":
        """Column ranges of ``x``. ``zero_based`` columns get ``lo = 0`` (x / max: a cluster sum of
        an extensive input stays proportional to the cluster's volume, eq. 11; a constant column
        maps to 1, not to 0). ``pooled``: one range for all columns (a history keeps its shape)."""
        x = np.asarray(x)
        lo, hi = x.min(axis=0), x.max(axis=0)
        if pooled:
            lo, hi = np.full_like(lo, lo.min()), np.full_like(hi, hi.max())
        zb = list(zero_based)
        if zb:
            if np.any(lo[zb] < 0):
                raise ValueError(f"zero-based scaling of columns {zb} needs non-negative values (volumes)")
            lo = lo.astype(float)
            lo[zb] = 0.0
        return cls(lo, np.where(hi > lo, hi, lo + 1.0))

    @classmethod
    def fit_centered(cls, y: np.ndarray) -> "MinMaxScaler":
        """Histories (S, T): ``y -> (y - mean_t) / s`` with the mean history ``mean_t`` and the pooled
        standard deviation ``s`` of ``y - mean_t``: a loss on the scaled values weighs every step like
        the MSE in physical units, and predicting the mean history costs 1 (with a pooled min-max
        range the sample-to-sample variation is a few percent of the range and the networks settle
        on the mean history: measured on cp_grid2d, per-step correlation ~0.03). Stored as lo = mean,
        hi = mean + s, so the affine transform below serves both fits."""
        y = np.asarray(y, float)
        mean = y.mean(axis=0)
        s = float(np.sqrt(np.mean((y - mean) ** 2)))
        return cls(mean, mean + (s if s > 0 else 1.0))

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
    """All finished samples of a store as raw (unscaled) arrays, plus the split (roles: module doc)."""

    index: np.ndarray          # store sample index of each entry
    split: np.ndarray          # role: 0 train, 1 test (early stopping), 2 validation (held out)
    x: list[np.ndarray]        # (C_s, F) raw cell features
    edges: list[np.ndarray]    # (E_s, 2)
    cell_grain: list[np.ndarray]
    y: np.ndarray              # (S, n_out) raw targets
    feature_names: tuple[str, ...]
    extensive: tuple[int, ...]
    intensive: tuple[int, ...]
    exemplar: str = "heat2d"
    target: str = "kbar_xx"
    units: str = "W/m-K"
    loading: np.ndarray | None = None      # (n_out,) shared mean eps_xx of history targets
    zero_based: tuple[int, ...] = ()       # feature columns scaled by x / max (MinMaxScaler.fit)
    grid: tuple[int, ...] | None = None    # voxel grids: the grid shape (cells in C order)
    shared_edges: bool = False             # every sample holds the same edge array (a grid)
    store_split: np.ndarray | None = None  # the stored split codes
    split_names: dict = field(default_factory=dict)   # role -> the store's name of it
    options: dict = field(default_factory=dict)       # data options that made the features

    @property
    def n_out(self) -> int:
        return int(self.y.shape[1])

    def subset(self, which: int | str) -> list[int]:
        """Entries with role ``which`` (0/1/2 or 'train'/'test'/'validation')."""
        code = _PAPER_NAMES[which] if isinstance(which, str) else int(which)
        return [k for k in range(len(self.index)) if self.split[k] == code]

    def samples(self, ids, x_scaler: MinMaxScaler, y_scaler: MinMaxScaler) -> list[dict]:
        """Scaled samples, validated and canonicalised once (collation is then concatenation).
        On grids every sample shares one edge array: the prepared ``edge_index`` is shared too."""
        from homlearn.models.gcnn import prepare_graph

        out, shared = [], None
        for k in ids:
            edges = self.edges[k]
            s = {"x": x_scaler.transform(self.x[k]).astype(np.float32), "cell_grain": self.cell_grain[k],
                 "y": y_scaler.transform(self.y[k]).astype(np.float32)}
            if self.shared_edges and shared is not None:
                s["edges"] = np.zeros((0, 2), dtype=np.int64)
                p = prepare_graph(s)
                p["edge_index"] = shared
            else:
                p = prepare_graph(s | {"edges": edges})
                shared = p["edge_index"] if self.shared_edges else None
            out.append(p)
        return out

    def fit_scalers(self, target_scaling: str = "minmax") -> tuple[MinMaxScaler, MinMaxScaler]:
        """Feature and target scalers from the training split only. Histories: ``minmax`` = one
        range for all steps; ``centered`` = the training mean history subtracted, divided by the
        pooled standard deviation of what is left (:meth:`MinMaxScaler.fit_centered`). Scalar
        targets always use min-max."""
        train = self.subset(TRAIN)
        if not train:
            raise ValueError("the training split is empty: increase n_samples or the train fraction")
        if target_scaling not in ("minmax", "centered"):
            raise ValueError(f"unknown target_scaling {target_scaling!r}; allowed: 'minmax', 'centered'")
        x_scaler = MinMaxScaler.fit(np.concatenate([self.x[k] for k in train]), zero_based=self.zero_based)
        if self.zero_based:
            # extensive columns (volumes): x / the largest training-sample total, so a cell holds its
            # volume fraction and a cluster sum (eq. 11) its cluster's fraction, <= 1. Scaling by the
            # largest cell value instead made grid-cell volumes 1 and grain sums 30-200 at 32x32,
            # and the reducing variants (o/d/v GCNN) stalled at the mean predictor (measured).
            zb = list(self.zero_based)
            totals = np.max([self.x[k][:, zb].sum(axis=0) for k in train], axis=0)
            hi = np.asarray(x_scaler.hi, float).copy()
            hi[zb] = np.where(totals > 0, totals, 1.0)
            x_scaler = MinMaxScaler(x_scaler.lo, hi)
        if self.loading is not None and target_scaling == "centered":
            return x_scaler, MinMaxScaler.fit_centered(self.y[train])
        return x_scaler, MinMaxScaler.fit(self.y[train], pooled=self.loading is not None)

    def describe_splits(self) -> dict:
        """Role -> the stored code and name and the number of samples (for model.json)."""
        out = {}
        for code, role in SPLIT_ROLES.items():
            ids = self.subset(code)
            stored = sorted(set(self.store_split[ids].tolist())) if self.store_split is not None and ids else []
            out[role] = {"n": len(ids), "store_codes": stored, "store_name": self.split_names.get(role, role)}
        return out


def load_graphs(path: Path | str, exemplar: str | None = None, orientation: str = "auto") -> GraphDataset:
    """Every finished sample of the ``exemplar`` store at ``path`` as graphs (module doc).

    ``exemplar`` defaults to the store's own (attrs ``exemplar``); a mismatch is refused.
    ``orientation`` (cp_grid only): ``auto`` (the cubic tensor), ``angle`` (2D), ``euler`` (3D),
    ``cubic`` (:mod:`homlearn.data.orientation`). The store is opened through
    :func:`homlearn.data.integrity.open_dataset` (a damaged store is refused, naming it).
    """
    from homlearn.data.integrity import open_dataset

    ds = open_dataset(path)
    stored = ds.attrs.get("exemplar")
    exemplar = exemplar or stored
    if exemplar not in EXEMPLARS:
        raise ValueError(f"exemplar {exemplar!r} has no graph form; allowed: {', '.join(EXEMPLARS)}")
    if stored != exemplar:
        raise ValueError(f"{path}: the store holds exemplar {stored!r}, not {exemplar!r}")
    if not exemplar.startswith("cp_grid") and orientation != "auto":
        raise ValueError(f"data key 'orientation' applies to cp_grid stores only, not {exemplar}")
    done = np.flatnonzero(ds["status"].values == STATUS_DONE)
    if len(done) == 0:
        raise ValueError(f"{path}: no finished samples (status == 1)")
    if exemplar == "heat2d":
        data = _heat2d(ds, done)
    elif exemplar == "viscoelastic3d":
        data = _viscoelastic3d(path, ds, done)
    else:
        data = _cp_grid(path, ds, done, exemplar, orientation)
    data.store_split = ds["split"].values[done]
    data.split, data.split_names = _roles(path, ds["split"], data.store_split, exemplar)
    return data


def load_heat2d_graphs(path: Path | str) -> GraphDataset:
    """Read every finished sample (status done) of the heat2d dataset store."""
    return load_graphs(path, "heat2d")


def _roles(path, split_var, stored: np.ndarray, exemplar: str) -> tuple[np.ndarray, dict]:
    """Stored split codes -> roles, through the store's own names of its codes (flag_meanings)."""
    names = dict(zip(split_var.attrs["flag_values"], split_var.attrs["flag_meanings"]))
    table = STORE_SPLIT_NAMES[exemplar]
    if set(names.values()) != set(table):
        raise ValueError(f"{path}: split names {sorted(names.values())} are not the {exemplar} names {sorted(table)}")
    unknown = sorted(set(stored.tolist()) - set(names))
    if unknown:
        raise ValueError(f"{path}: split codes {unknown} have no name in the store (flag_values {list(names)})")
    lut = {code: table[name] for code, name in names.items()}
    role = np.asarray([lut[c] for c in stored.tolist()], dtype=stored.dtype)
    return role, {SPLIT_ROLES[r]: name for name, r in table.items()}


def _kinds(features) -> dict:
    kinds = [k for _, k in features]
    return {"feature_names": tuple(n for n, _ in features),
            "extensive": tuple(i for i, k in enumerate(kinds) if k == "extensive"),
            "intensive": tuple(i for i, k in enumerate(kinds) if k == "intensive")}


def _ragged_rows(ds, done, names, dim):
    """Per-sample rows of ragged variables ``names`` along ``dim`` (bulk reads, then slices)."""
    cols = {name: ds[name].values for name in names}
    off, cnt = ds[f"{dim}_offset"].values, ds[f"{dim}_count"].values
    return [{name: cols[name][off[i]:off[i] + cnt[i]] for name in names} for i in done]


def _heat2d(ds, done) -> GraphDataset:
    cells = _ragged_rows(ds, done, [n for n, _ in HEAT2D_FEATURES] + ["cell_grain"], "cell")
    edges = _ragged_rows(ds, done, ["edge_cells"], "edge")
    x = [np.stack([c[name] for name, _ in HEAT2D_FEATURES], axis=1) for c in cells]
    return GraphDataset(index=done, split=np.zeros(0), x=x, edges=[e["edge_cells"].astype(np.int64) for e in edges],
                        cell_grain=[c["cell_grain"].astype(np.int64) for c in cells],
                        y=ds["kbar"].values[done, :1], **_kinds(HEAT2D_FEATURES))


def _viscoelastic3d(path, ds, done) -> GraphDataset:
    """Tetrahedra; the loading is the stored nominal strain (one for every sample by construction)."""
    cells = _ragged_rows(ds, done, [n for n, _ in VISCOELASTIC3D_FEATURES] + ["cell_cluster"], "cell")
    edges = _ragged_rows(ds, done, ["edge_cells"], "edge")
    x = [np.stack([c[name] for name, _ in VISCOELASTIC3D_FEATURES], axis=1).astype(np.float64) for c in cells]
    comp = list(ds["mean_stress"].attrs["components"]).index("xx")
    strain = np.broadcast_to(np.asarray(ds.attrs["nominal_strain"], float), (len(done), ds.sizes["time"]))
    y, loading = _history(path, ds["mean_stress"].values[done, :, comp], strain)
    kinds = _kinds(VISCOELASTIC3D_FEATURES)
    return GraphDataset(index=done, split=np.zeros(0), x=x, edges=[e["edge_cells"].astype(np.int64) for e in edges],
                        cell_grain=[c["cell_cluster"].astype(np.int64) for c in cells], y=y, **kinds,
                        exemplar="viscoelastic3d", target="sigma_xx", units="MPa", loading=loading,
                        zero_based=kinds["extensive"])


def _cp_grid(path, ds, done, exemplar: str, orientation: str) -> GraphDataset:
    """Voxels of a cp_grid store: one shared periodic edge array, S = voxel_grain (flat C order,
    the order of ``pixel_edges``), volume = 1 / number of voxels (the cell is the unit square/cube)."""
    from homlearn.data.orientation import default_encoding, orientation_features

    grain = ds["voxel_grain"].values[done]
    grid = tuple(int(n) for n in grain.shape[1:])
    dim = len(grid)
    encoding = default_encoding(dim) if orientation == "auto" else orientation
    n_vox = int(np.prod(grid))
    n_grains = ds["n_grains"].values[done]
    angles = ds["grain_angle"].values[done]
    edges = ds["pixel_edges"].values.astype(np.int64)
    x, cell_grain, names = [], [], ()
    for k in range(len(done)):
        g = grain[k].reshape(-1).astype(np.int64)
        if g.max() >= n_grains[k]:
            raise ValueError(f"{path}: sample {done[k]} has voxel grain {g.max()} >= n_grains {n_grains[k]}")
        feat, names = orientation_features(angles[k, :n_grains[k]], dim, encoding)
        x.append(np.column_stack([feat[g], np.full(n_vox, 1.0 / n_vox)]).astype(np.float32))
        cell_grain.append(g)
    y, loading = _history(path, ds["stress"].values[done, :, 0, 0], ds["strain"].values[done, :, 0, 0])
    features = tuple((n, "intensive") for n in names) + (("voxel_volume", "extensive"),)
    kinds = _kinds(features)
    return GraphDataset(index=done, split=np.zeros(0), x=x, edges=[edges] * len(done), cell_grain=cell_grain,
                        y=y, **kinds, exemplar=exemplar, target="sigma_xx", units="MPa", loading=loading,
                        zero_based=kinds["extensive"], grid=grid, shared_edges=True,
                        options={"orientation": encoding})


def _history(path, stress: np.ndarray, strain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y, loading): sigma_xx histories ``(S, T)`` and their shared eps_xx ``(T,)``, without the
    t = 0 row when every sample's stress is exactly zero there. Refuses samples with other loadings."""
    if not np.all(np.isfinite(stress)):
        bad = np.flatnonzero(~np.all(np.isfinite(stress), axis=1))
        raise ValueError(f"{path}: finished samples at positions {bad[:5].tolist()} hold non-finite stresses")
    ref = strain[0]
    dev = np.abs(strain - ref)
    tol = 1e-12 * max(float(np.abs(ref).max()), 1e-300)
    if dev.max() > tol:
        s, t = np.unravel_index(int(np.argmax(dev)), dev.shape)
        raise ValueError(f"{path}: the samples do not share one loading (mean eps_xx history): entry {s} differs "
                         f"from entry 0 by {dev[s, t]:.3g} at step {t}; a GCNN history target needs one loading")
    start = 1 if np.all(stress[:, 0] == 0.0) else 0
    return np.ascontiguousarray(stress[:, start:]), np.ascontiguousarray(ref[start:])
