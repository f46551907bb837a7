"""Voxel images of the cp_grid stores for the pixel/voxel CNN baselines (paper gcnn section 6).

The channels are the graph form's cell features on the grid (:func:`homlearn.data.graphs.load_graphs`:
the orientation encoding per voxel and the constant voxel volume), so a CNN and a GCNN see the same
inputs; samples are ``{"image": float32 (C, *grid), "y": float32 (n_out,)}`` scaled by the scalers
fitted on the training split (the inputs of the training split lie in [0, 1]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from homlearn.data.graphs import GraphDataset, MinMaxScaler

IMAGE_EXEMPLARS = ("cp_grid2d", "cp_grid3d")


class ImageDataset(GraphDataset):
    """A cp_grid :class:`GraphDataset` whose samples are channel images on the grid."""

    def image(self, k: int, x_scaler: MinMaxScaler) -> np.ndarray:
        """Sample ``k``'s scaled channels ``(C, *grid)``: cell features in C order, moved to the front."""
        x = x_scaler.transform(self.x[k]).astype(np.float32)
        return np.ascontiguousarray(x.T.reshape(x.shape[1], *self.grid))

    def samples(self, ids, x_scaler: MinMaxScaler, y_scaler: MinMaxScaler) -> list[dict]:
        return [{"image": self.image(k, x_scaler), "y": y_scaler.transform(self.y[k]).astype(np.float32)}
                for k in ids]


def load_images(path: Path | str, exemplar: str | None = None, orientation: str = "auto") -> ImageDataset:
    """The finished samples of a cp_grid2d / cp_grid3d store as images (same data, split roles,
    targets and loading as :func:`~homlearn.data.graphs.load_graphs`)."""
    from dataclasses import fields

    from homlearn.data.graphs import load_graphs

    data = load_graphs(path, exemplar, orientation=orientation)
    if data.exemplar not in IMAGE_EXEMPLARS:
        raise ValueError(f"{path}: exemplar {data.exemplar!r} is not on a voxel grid; images exist for "
                         f"{', '.join(IMAGE_EXEMPLARS)}")
    return ImageDataset(**{f.name: getattr(data, f.name) for f in fields(GraphDataset)})
