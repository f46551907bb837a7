"""Seeded data splits, drawn once when a dataset store is made and stored with it."""

from __future__ import annotations

import numpy as np


def draw_split(n: int, fractions, seed: int) -> np.ndarray:
    """Split code per sample (0, 1, 2 in the order of ``fractions``) from a seeded permutation."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    split = np.empty(n, dtype=np.int8)
    for code, idx in enumerate(np.split(order, bounds)):
        split[idx] = code
    return split
