"""Periodic voxel Voronoi polycrystals with random orientations (paper 'gcnn' A.2, cp_grid2d/3d).

The paper made its grain structures with DREAM3D; we use periodic Voronoi tessellations of
uniform random seeds on the voxel grid (nearest seed under the periodic metric, scipy cKDTree),
which gives the same kind of convex, space-filling grains.

- 3D (cp_grid3d): a 25^3 grid, the number of seeds uniform in ``grain_range`` (paper: 1-34
  grains, mean 13.0; our default 1-25 has mean 13.0 but a shorter tail: the paper does not say
  how it drew the count), orientations uniform on SO(3).
- 2D (cp_grid2d): a z-slice of a periodic 32^3 Voronoi structure (the paper extracted
  uncorrelated slices of 32^3 structures), the number of 3D seeds uniform in ``seed_range``,
  redrawn until the slice shows a grain count in ``grain_range`` (paper: 5-30, mean 13.9),
  one in-plane angle per grain uniform in [0, 2 pi) (rotation about z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

__all__ = ["VoxelPolycrystal", "periodic_voronoi_labels", "polycrystal_2d", "polycrystal_2d_slice", "polycrystal_3d",
           "rotation_field", "grid_edges"]


@dataclass
class VoxelPolycrystal:
    """``grain`` ``(*grid)`` int labels 0..n-1; ``rotation`` ``(n, 3, 3)`` crystal -> sample;
    ``angles`` ``(n, k)`` (k = 1 in 2D: angle about z; k = 3 in 3D: ZXZ Euler angles)."""

    grain: np.ndarray
    rotation: np.ndarray
    angles: np.ndarray

    @property
    def n_grains(self) -> int:
        return int(self.rotation.shape[0])


def periodic_voronoi_labels(points: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Index of the nearest seed of every point in the periodic unit box (both in [0, 1)^dim)."""
    tree = cKDTree(np.mod(seeds, 1.0), boxsize=1.0)
    return tree.query(np.mod(points, 1.0))[1]


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape), present


def polycrystal_3d(n: int, rng: np.random.Generator, grain_range=(1, 25)) -> VoxelPolycrystal:
    """Periodic Voronoi on ``n^3`` voxels with a uniform number of seeds in ``grain_range``."""
    k = int(rng.integers(grain_range[0], grain_range[1] + 1))
    seeds = rng.random((k, 3))
    centres = (np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / n
    grain, present = _relabel(periodic_voronoi_labels(centres, seeds).reshape(n, n, n))
    rot = Rotation.random(k, random_state=rng)[present]
    return VoxelPolycrystal(grain.astype(np.int32), rot.as_matrix(), rot.as_euler("ZXZ"))


def polycrystal_2d_slice(n: int, rng: np.random.Generator, seed_range=(6, 70), grain_range=(5, 30),
                         max_tries: int = 100) -> VoxelPolycrystal:
    """A z-slice of a periodic ``n^3`` Voronoi structure with a grain count in ``grain_range``."""
    centres = (np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2) + 0.5) / n
    for _ in range(max_tries):
        k = int(rng.integers(seed_range[0], seed_range[1] + 1))
        seeds = rng.random((k, 3))
        z = (int(rng.integers(n)) + 0.5) / n
        pts = np.column_stack([centres, np.full(len(centres), z)])
        grain, present = _relabel(periodic_voronoi_labels(pts, seeds).reshape(n, n))
        if grain_range[0] <= present.size <= grain_range[1]:
            angles = rng.uniform(0.0, 2 * np.pi, size=(present.size, 1))
            return VoxelPolycrystal(grain.astype(np.int32), _rot_z(angles[:, 0]), angles)
    raise RuntimeError(f"no slice with {grain_range} grains in {max_tries} tries (seed_range {seed_range})")


def polycrystal_2d(n: int, n_grains: int, rng: np.random.Generator, angle_range=(0.0, np.pi)) -> VoxelPolycrystal:
    """Periodic 2D Voronoi on ``n x n`` pixels with ``n_grains`` seeds (paper 'rno' section 5.1,
    'pcanet' 2DFFT), one angle per grain uniform in ``angle_range``."""
    seeds = rng.random((n_grains, 2))
    centres = (np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2) + 0.5) / n
    grain, present = _relabel(periodic_voronoi_labels(centres, seeds).reshape(n, n))
    angles = rng.uniform(angle_range[0], angle_range[1], size=(n_grains, 1))[present]
    return VoxelPolycrystal(grain.astype(np.int32), _rot_z(angles[:, 0]), angles)


def _rot_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros((angle.size, 3, 3))
    r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1], r[:, 2, 2] = c, -s, s, c, 1.0
    return r


def rotation_field(grains: np.ndarray, rotations: list[np.ndarray]):
    """Voxel rotation fields ``(B, 3, 3, *grid)`` (torch, float64) from grain maps and per-grain rotations."""
    import torch

    out = np.stack([rot[g] for g, rot in zip(grains, rotations)])         # (B, *grid, 3, 3)
    nsp = out.ndim - 3
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(out, (-2, -1), (1, 2)))).reshape(
        out.shape[0], 3, 3, *out.shape[1:1 + nsp])


def grid_edges(grid_shape) -> np.ndarray:
    """Periodic nearest-neighbour voxel pairs ``(n_edges, 2)`` (flat C-order indices): the pixel
    adjacency of the graph form (the same for every sample of a grid size)."""
    idx = np.arange(int(np.prod(grid_shape))).reshape(grid_shape)
    pairs = [np.stack([idx.ravel(), np.roll(idx, -1, axis=a).ravel()], 1) for a in range(len(grid_shape))]
    return np.concatenate(pairs)
