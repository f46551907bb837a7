"""Random periodic two-phase voxel microstructures (paper 'rln' section 4).

Uniform noise, a periodic Gaussian filter with an independent width per axis, and a threshold
at the quantile that gives the prescribed volume fraction of the hard phase. Design points
(the widths and the volume fraction) come from a Latin hypercube; the paper draws 4096 design
points with 5 microstructures each. The paper generated them with PyMKS and gives no ranges for
the widths or the volume fraction: the defaults below are our choice (config keys), stated as
such in the dataset attributes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import qmc

#: default ranges of the design (our choice; the paper does not give them)
DEFAULT_WIDTH_RANGE = (0.5, 6.0)       # Gaussian filter standard deviation, voxels, per axis
DEFAULT_FRACTION_RANGE = (0.2, 0.8)    # volume fraction of phase 1 (the hard phase)


def gaussian_two_phase(shape: tuple[int, ...], widths, volume_fraction: float,
                       rng: np.random.Generator) -> np.ndarray:
    """One periodic two-phase field (uint8, 1 = hard phase) on a grid of ``shape``.

    The filter wraps around (periodic cell); the threshold is the (1 - volume_fraction)
    quantile of the filtered field, so the phase-1 voxel count is round(volume_fraction * N).
    """
    widths = np.broadcast_to(np.asarray(widths, dtype=float), (len(shape),))
    if np.any(widths < 0):
        raise ValueError(f"filter widths must be >= 0, got {widths.tolist()}")
    if not 0.0 <= volume_fraction <= 1.0:
        raise ValueError(f"volume_fraction must lie in [0, 1], got {volume_fraction}")
    field = gaussian_filter(rng.random(shape), sigma=widths, mode="wrap")
    n = field.size
    n_hard = int(round(volume_fraction * n))
    out = np.zeros(n, dtype=np.uint8)
    if n_hard:
        out[np.argpartition(field.ravel(), n - n_hard)[n - n_hard:]] = 1
    return out.reshape(shape)


def latin_hypercube_design(n_points: int, ndim: int = 3, width_range=DEFAULT_WIDTH_RANGE,
                           fraction_range=DEFAULT_FRACTION_RANGE, seed: int = 0) -> np.ndarray:
    """(n_points, ndim + 1) design: one filter width per axis, then the volume fraction."""
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    unit = qmc.LatinHypercube(d=ndim + 1, rng=np.random.default_rng(seed)).random(n_points)
    lo = np.array([width_range[0]] * ndim + [fraction_range[0]], dtype=float)
    hi = np.array([width_range[1]] * ndim + [fraction_range[1]], dtype=float)
    return lo + unit * (hi - lo)


def design_samples(design: np.ndarray, per_point: int, shape: tuple[int, ...], seed: int,
                   indices=None) -> np.ndarray:
    """Microstructures for samples ``indices`` (default all) of ``design`` x ``per_point``.

    Sample ``i`` belongs to design point ``i // per_point``; its noise comes from its own
    seed sequence (seed, i), so any subset (a Dask batch) is reproduced exactly alone.
    """
    n = len(design) * per_point
    indices = np.arange(n) if indices is None else np.asarray(indices)
    out = np.empty((len(indices),) + tuple(shape), dtype=np.uint8)
    for k, i in enumerate(indices):
        if not 0 <= i < n:
            raise IndexError(f"sample {i} out of range 0..{n - 1}")
        point = design[i // per_point]
        rng = np.random.default_rng([seed, int(i)])
        out[k] = gaussian_two_phase(shape, point[:-1], float(point[-1]), rng)
    return out
