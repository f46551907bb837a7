"""Seeded data splits, drawn once when a dataset store is made and stored with it."""

from __future__ import annotations

import numpy as np


def draw_split(n: int, fractions, seed: int, drawn_over: int | None = None) -> np.ndarray:
    """Split code per sample (0, 1, 2 in the order of ``fractions``) from a seeded permutation.

    ``drawn_over``: draw the split over the first ``drawn_over`` samples only, exactly as for a
    dataset of that size, and put every later sample in the first split (training): a dataset
    grown beyond the paper's size keeps the paper-size test set."""
    m = n if drawn_over is None else int(drawn_over)
    if not 1 <= m <= n:
        raise ValueError(f"drawn_over must be between 1 and the number of samples ({n}), got {drawn_over}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(m)
    bounds = np.round(np.cumsum(fractions)[:-1] * m).astype(int)
    split = np.zeros(n, dtype=np.int8)
    for code, idx in enumerate(np.split(order, bounds)):
        split[idx] = code
    return split
