"""One gmsh session per process, shared by the 2D polycrystal and the 3D inclusion generators.

gmsh is a process-wide singleton: it is initialised once with ``interruptible=False`` (it installs
no signal handler, so it runs in Dask worker threads), used under one lock, and cleared after every
model. :func:`gmsh_model` wraps one meshing job (lock, session, error translation, clean-up) and
:func:`compact_mesh` turns gmsh's node tags and element node lists into the arrays the generators
return.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

__all__ = ["GMSH_LOCK", "MeshingError", "compact_mesh", "gmsh_model", "gmsh_session"]

GMSH_LOCK = threading.Lock()


class MeshingError(RuntimeError):
    """Raised when a sample cannot be meshed (the caller records it)."""


def _unit_square(gmsh) -> None:
    geo = gmsh.model.geo
    pts = [geo.addPoint(x, y, 0.0, 0.2) for x, y in ((0, 0), (1, 0), (1, 1), (0, 1))]
    lines = [geo.addLine(pts[i], pts[(i + 1) % 4]) for i in range(4)]
    geo.addPlaneSurface([geo.addCurveLoop(lines)])


def gmsh_session():
    """Return the gmsh module, initialised once per process for worker-thread use."""
    import gmsh

    if not gmsh.isInitialized():
        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 1)
        # gmsh keeps state across clear() (the characteristic length of the last model's
        # bounding box feeds its tolerances), so the first mesh of a fresh process could differ
        # in the last bits from the same mesh made later. Meshing one unit square first puts
        # every process in the state all later 2D samples (also unit squares) leave behind, so a
        # sample is bit-identical whichever process makes it and whatever came before. (The 3D
        # generator meshes its own unit-cube warm-up before every sample.)
        gmsh.model.add("warm-up")
        _unit_square(gmsh)
        gmsh.model.geo.synchronize()
        gmsh.model.mesh.generate(2)
        gmsh.clear()
    return gmsh


@contextmanager
def gmsh_model():
    """Hold the gmsh lock and yield the session; any gmsh failure becomes a MeshingError, and the
    model is cleared afterwards whatever happened."""
    with GMSH_LOCK:
        gmsh = gmsh_session()
        try:
            yield gmsh
        except MeshingError:
            raise
        except Exception as exc:  # gmsh raises plain Exception
            raise MeshingError(f"gmsh failed: {exc}") from exc
        finally:
            gmsh.clear()


def compact_mesh(node_tags, coords, element_nodes: np.ndarray, nodes_per_cell: int, dim: int,
                 kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Keep the nodes the elements use, numbered 0..P-1 in tag order.

    ``node_tags``/``coords`` as ``gmsh.model.mesh.getNodes()`` returns them, ``element_nodes`` the
    elements' node tags, flat. Returns ``(points (P, dim) clipped to the unit cell, cells (C,
    nodes_per_cell))``; raises MeshingError naming ``kind`` if an element references a missing node.
    """
    node_tags = np.asarray(node_tags, dtype=np.int64)
    xyz = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    used, inverse = np.unique(element_nodes, return_inverse=True)
    pos = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
    pos[node_tags] = np.arange(node_tags.size)
    if np.any(pos[used] < 0):
        raise MeshingError(f"{kind} references an unknown node")
    points = np.clip(xyz[pos[used], :dim], 0.0, 1.0)
    return points, inverse.reshape(-1, nodes_per_cell).astype(np.int64)
