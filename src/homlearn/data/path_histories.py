"""cp_paths2d store -> input/output histories for the history surrogates (paper 'pcanet' sec.
1-2.2, eq. 23-24; paper 'rno' sec. 2 eq. 2 and sec. 5.1 eq. 27-28).

Inputs (three components, d(d+1)/2 = 3 in 2D as in 'pcanet' sec. 2.2):

- ``"U"``: the right stretch ``U = sqrt(F^T F)`` of ``F = R U`` ('pcanet' eq. 23), as ``U - I``;
- ``"F"``: the deformation gradient ('rno' eq. 2) as ``F - I``. The dataset's F paths are
  upper triangular ('rno' sec. 2: F_ij, i <= j), so (F11, F22, F12) are all of it; an F with
  F21 != 0 is refused.

Outputs:

- ``"stress"``: the mean Cauchy stress in the frame of the input: sigma for ``"F"``,
  ``R^T sigma R`` for ``"U"`` (the stress of the cell stretched by U alone: the unit-cell problem
  is frame-indifferent, 'pcanet' sec. 1);
- ``"pressure"``: ``p = -tr(sigma) / 2`` (one component) and ``"deviatoric"``: (s11, s12) of
  ``s = sigma + p I`` ('rno' eq. 27-28, :func:`homlearn.models.rno.deviatoric_split`).

Symmetric tensors (U - I, stress) are stored as Mandel components (11, 22, sqrt(2) 12), so the
relative L2 error over components (the training loss, 'rno' eq. 16) is the Frobenius-norm
error of the tensor history, the same in either frame ('pcanet' sec. 2.2 test error);
(s11, s12) needs no weight, |s|^2 = 2 (s11^2 + s12^2). ``F - I`` is not symmetric and is kept
as plain components.

Split codes follow :class:`~homlearn.train.history.HistoryData`: 0 train, 1 test (the store's
code 2), 2 validation (the store's 1; unused by the experiments, as the papers have none).
Only finished paths (status 1) are read.
"""

from __future__ import annotations

import numpy as np

from homlearn.train.history import HistoryData

INPUTS = ("U", "F")
OUTPUTS = ("stress", "pressure", "deviatoric")
SQRT2 = np.sqrt(2.0)
_STORE_TO_HISTORY_SPLIT = np.array([0, 2, 1], dtype=np.int8)  # store: 0 train, 1 validation, 2 test


def polar(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar decomposition ``F = R U`` of (..., 2, 2) deformation gradients (det F > 0):
    ``U = sqrt(F^T F)`` from the eigen-decomposition of ``C = F^T F``, ``R = F U^-1``."""
    F = np.asarray(F, dtype=np.float64)
    w, v = np.linalg.eigh(np.swapaxes(F, -1, -2) @ F)
    U = (v * np.sqrt(w)[..., None, :]) @ np.swapaxes(v, -1, -2)
    Ui = (v / np.sqrt(w)[..., None, :]) @ np.swapaxes(v, -1, -2)
    return F @ Ui, U


def mandel(S: np.ndarray) -> np.ndarray:
    """Symmetric (..., 2, 2) -> Mandel components (..., 3): (S11, S22, sqrt(2) S12)."""
    return np.stack([S[..., 0, 0], S[..., 1, 1], SQRT2 * 0.5 * (S[..., 0, 1] + S[..., 1, 0])], axis=-1)


def from_mandel(c: np.ndarray) -> np.ndarray:
    """Mandel components (..., 3) -> plain (11, 22, 12) components (..., 3)."""
    return np.concatenate([c[..., :2], c[..., 2:] / SQRT2], axis=-1)


def input_components(F: np.ndarray, kind: str) -> np.ndarray:
    """Mean F histories (..., T, 2, 2) -> input components (..., T, 3) (see the module text)."""
    if kind not in INPUTS:
        raise ValueError(f"unknown input {kind!r}; allowed: {', '.join(INPUTS)}")
    F = np.asarray(F, dtype=np.float64)
    if kind == "U":
        return mandel(polar(F)[1] - np.eye(2))
    lower = np.abs(F[..., 1, 0]).max(initial=0.0)
    if lower > 1e-12:
        raise ValueError(f"input 'F' needs upper-triangular F (the dataset's paths); |F21| reaches {lower:.3g}")
    return np.stack([F[..., 0, 0] - 1.0, F[..., 1, 1] - 1.0, F[..., 0, 1]], axis=-1)


def output_components(sigma: np.ndarray, kind: str, F: np.ndarray | None = None, frame: str = "F") -> np.ndarray:
    """Cauchy stress histories (..., T, 2, 2) -> output components: ``"stress"`` (Mandel, rotated
    to the stretch frame ``R^T sigma R`` when ``frame == "U"``; needs ``F``), ``"pressure"``
    (..., T, 1) or ``"deviatoric"`` (..., T, 2)."""
    if kind not in OUTPUTS:
        raise ValueError(f"unknown output {kind!r}; allowed: {', '.join(OUTPUTS)}")
    sigma = np.asarray(sigma, dtype=np.float64)
    if kind == "stress":
        if frame == "U":
            R = polar(F)[0]
            sigma = np.swapaxes(R, -1, -2) @ sigma @ R
        return mandel(sigma)
    p = -0.5 * (sigma[..., 0, 0] + sigma[..., 1, 1])
    if kind == "pressure":
        return p[..., None]
    return np.stack([sigma[..., 0, 0] + p, 0.5 * (sigma[..., 0, 1] + sigma[..., 1, 0])], axis=-1)


def check_steps(n_stored: int, steps: int, key: str) -> int:
    """The stride that takes ``n_stored`` stored steps to ``steps``; a clear error naming ``key``."""
    if steps < 1 or n_stored % steps:
        raise ValueError(f"config key '{key}' ({steps}) must divide the store's stored steps "
                         f"(cp_paths2d.n_stored = {n_stored})")
    return n_stored // steps


def load_path_histories(store, input: str = "U", output: str = "stress", steps: int | None = None,
                        key: str = "surrogates_cp_paths2d.train_steps") -> HistoryData:
    """Histories of a cp_paths2d store: x (S, T, 3), y (S, T, c), t (T,), split (0 train, 1 test),
    at ``steps`` steps (every ``n_stored / steps``-th stored time; default all). ``extra``:
    'F' (S, T, 2, 2) and 'stress' (S, T, 2, 2), the store's arrays on the same grid."""
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=None)
    ids = np.flatnonzero(ds["status"].values == 1)
    if not len(ids):
        raise ValueError(f"{store}: no finished cp_paths2d paths")
    n_stored = ds.sizes["step"] - 1
    stride = check_steps(n_stored, n_stored if steps is None else int(steps), key)
    F = ds["F"].values[ids][:, ::stride]
    sigma = ds["stress"].values[ids][:, ::stride]
    t = ds["time"].values[ids[0]][::stride]
    x = input_components(F, input)
    y = output_components(sigma, output, F, frame=input)
    split = _STORE_TO_HISTORY_SPLIT[ds["split"].values[ids]]
    return HistoryData(x, y, t, split, ids, {"F": F, "stress": sigma})
