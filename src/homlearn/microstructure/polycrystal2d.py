"""Random 2D polycrystals in the unit square, meshed with linear triangles.

Follows Frankel et al. (reduced-graph GCNN), section 3.1 and appendix A.1:
14-18 crystals from a "Voronoi triangulation of random Latin Hypercube
placements of vertices", one orientation angle per crystal drawn from
U(0, pi), meshed with linear triangles (paper: 211-333 elements, mean 235.8).

The geometry is built with ``gmsh.model.geo`` from a deduplicated vertex/edge
set, so neighbouring grains share points and lines and the mesh is conforming
across grain boundaries.  gmsh is initialised once per process (safe in Dask
worker threads: ``interruptible=False`` and a module-level lock).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial import Delaunay, QhullError, Voronoi
from scipy.stats import qmc

from homlearn.microstructure.gmsh_session import MeshingError, compact_mesh, gmsh_model

__all__ = ["MeshingError", "Polycrystal", "generate_polycrystal", "TESSELLATIONS"]

TESSELLATIONS = ("voronoi", "delaunay")

# Vertices closer than this are merged into one geometric point.
_MERGE_TOL = 1e-9
# Empirical cell-count model for gmsh Frontal-Delaunay with uniform size h:
#   n_cells ~ a / h^2 + (b * L_int + c) / h,   L_int = total grain-interface length,
# fitted per tessellation (least squares on relative error over ~1000 meshes).
# The mesh size h solves this quadratic for n_cells = target_cells.
_COUNT_MODEL = {"voronoi": (1.9669, 3.1331, 2.0302), "delaunay": (2.1559, 1.356, 4.3269)}
# Voronoi edges shorter than _COLLAPSE_FRAC * h are collapsed to a point.
_COLLAPSE_FRAC = 0.1

@dataclass(frozen=True, eq=False)
class Polycrystal:
    """Triangulated polycrystal (paper section 3.1, appendix A.1).

    ``edges`` lists pairs ``(i, j)``, ``i < j``, of triangles sharing a mesh
    edge, each pair once, sorted lexicographically.
    """

    points: np.ndarray  # (P, 2) float64 node coordinates in [0, 1]^2
    triangles: np.ndarray  # (C, 3) int64, counter-clockwise
    cell_grain: np.ndarray  # (C,) int64 grain index of each triangle
    grain_angle: np.ndarray  # (G,) float64 orientation angle in [0, pi)
    grain_seed: np.ndarray  # (G, 2) float64 seed point of each grain
    edges: np.ndarray  # (E, 2) int64 adjacent triangle pairs

    @property
    def n_cells(self) -> int:
        return int(self.triangles.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def n_grains(self) -> int:
        return int(self.grain_angle.shape[0])

    @cached_property
    def cell_area(self) -> np.ndarray:
        return _signed_area(self.points, self.triangles)

    @property
    def cell_angle(self) -> np.ndarray:
        return self.grain_angle[self.cell_grain]

    @property
    def grain_area(self) -> np.ndarray:
        return np.bincount(self.cell_grain, weights=self.cell_area, minlength=self.n_grains)


def generate_polycrystal(
    seed: int,
    n_grains: tuple[int, int] = (14, 18),
    target_cells: int = 236,
    tessellation: str = "voronoi",
) -> Polycrystal:
    """Generate and mesh one random polycrystal (paper section 3.1, appendix A.1).

    ``np.random.default_rng(seed)`` drives everything.  The number of seeds is
    uniform in ``[n_grains[0], n_grains[1]]``; seeds come from a Latin
    hypercube in [0, 1]^2; angles are U(0, pi).

    ``tessellation="voronoi"``: grains are the Voronoi cells of the seeds,
    clipped exactly to the unit square (edges much shorter than the element
    size are collapsed to a point); G equals the number of seeds.
    ``tessellation="delaunay"``: grains are the triangles of the Delaunay
    triangulation of the seeds plus the four square corners; the grain-count
    range then applies to the number of seeds, G is the number of Delaunay
    triangles (2 * n_seeds + 2) and ``grain_seed`` holds triangle centroids.

    The uniform element size h solves an empirical cell-count model (see
    ``_COUNT_MODEL``), so the mean cell count is within a few percent of
    ``target_cells``.  Raises ``MeshingError`` if the tessellation or gmsh fails.
    """
    if tessellation not in TESSELLATIONS:
        raise ValueError(f"tessellation must be one of {TESSELLATIONS}, got {tessellation!r}")
    lo, hi = int(n_grains[0]), int(n_grains[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"n_grains must satisfy 1 <= n_grains[0] <= n_grains[1], got {n_grains!r}")
    if target_cells < 2:
        raise ValueError(f"target_cells must be >= 2, got {target_cells!r}")

    rng = np.random.default_rng(seed)
    n_seeds = int(rng.integers(lo, hi + 1))
    lhs = qmc.LatinHypercube(d=2, rng=np.random.default_rng(int(rng.integers(2**63 - 1))))
    seeds = lhs.random(n_seeds)

    try:
        if tessellation == "voronoi":
            verts, polys = _voronoi_polygons(seeds)
            h = _mesh_size(target_cells, _interface_length(verts, polys), tessellation)
            verts, polys = _collapse_short_edges(verts, polys, _COLLAPSE_FRAC * h)
            grain_seed = seeds
        else:
            verts, polys = _delaunay_polygons(seeds)
            h = _mesh_size(target_cells, _interface_length(verts, polys), tessellation)
            grain_seed = verts[np.asarray(polys)].mean(axis=1)
    except QhullError as exc:
        raise MeshingError(f"tessellation of the seeds failed: {exc}") from exc
    _check_partition(verts, polys)
    grain_angle = rng.uniform(0.0, np.pi, size=len(polys))

    points, triangles, cell_grain = _mesh(verts, polys, h, name=f"polycrystal2d_{seed}")
    edges = _cell_adjacency(triangles)
    return Polycrystal(
        points=points,
        triangles=triangles,
        cell_grain=cell_grain,
        grain_angle=grain_angle,
        grain_seed=np.asarray(grain_seed, dtype=np.float64),
        edges=edges,
    )


# ----------------------------------------------------------------------------- geometry


def _signed_area(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _interface_length(verts: np.ndarray, polys: list[list[int]]) -> float:
    """Total length of grain boundaries inside the square (each shared edge once)."""
    xy = verts.tolist()
    perimeter = sum(math.dist(xy[a], xy[b]) for p in polys for a, b in zip(p, p[1:] + p[:1]))
    return 0.5 * (perimeter - 4.0)


def _mesh_size(target_cells: int, interface_length: float, tessellation: str) -> float:
    """Element size h with a/h^2 + (b L + c)/h = target_cells (see _COUNT_MODEL)."""
    a, b, c = _COUNT_MODEL[tessellation]
    lin = b * interface_length + c
    inv_h = (-lin + np.sqrt(lin * lin + 4.0 * a * target_cells)) / (2.0 * a)
    return float(1.0 / inv_h)


def _snap_to_square(v: np.ndarray) -> np.ndarray:
    v = np.array(v, dtype=np.float64)
    v[np.abs(v) < _MERGE_TOL] = 0.0
    v[np.abs(v - 1.0) < _MERGE_TOL] = 1.0
    return v


def _merge_vertices(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices closer than _MERGE_TOL; return unique vertices and old->new map."""
    n = len(v)
    d2 = ((v[:, None, :] - v[None, :, :]) ** 2).sum(-1)
    close = d2 < _MERGE_TOL**2
    rep = np.argmax(close, axis=1)  # first (lowest) index within tolerance
    rep = rep[rep]  # chains are at most a few long at this tolerance
    keep, new_of_rep = np.unique(rep, return_inverse=True)
    return v[keep], new_of_rep.reshape(n)


def _voronoi_polygons(seeds: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Voronoi cells of ``seeds`` clipped to [0,1]^2 via mirror images across the sides.

    Every cell of an original seed is then bounded and its intersection with
    the square boundary is exact (up to rounding, snapped to 0/1).
    """
    n = len(seeds)
    x, y = seeds[:, 0], seeds[:, 1]
    mirrors = [np.column_stack(m) for m in ((-x, y), (2.0 - x, y), (x, -y), (x, 2.0 - y))]
    vor = Voronoi(np.vstack([seeds, *mirrors]))
    regions = [vor.regions[r] for r in vor.point_region[:n]]
    owner = np.repeat(np.arange(n), [len(r) for r in regions])
    flat = np.fromiter(itertools.chain.from_iterable(regions), dtype=np.int64, count=owner.size)
    if flat.size == 0 or flat.min() < 0:
        raise MeshingError("unbounded Voronoi cell for an interior seed")
    used, inverse = np.unique(flat, return_inverse=True)
    verts, remap = _merge_vertices(_snap_to_square(vor.vertices[used]))
    vid = remap[inverse]
    # Cells are convex and contain their seed: sort vertices CCW by angle.
    d = verts[vid] - seeds[owner]
    order = np.lexsort((np.arctan2(d[:, 1], d[:, 0]), owner))
    vid, owner = vid[order], owner[order]
    keep = np.ones(vid.size, dtype=bool)
    keep[1:] = (vid[1:] != vid[:-1]) | (owner[1:] != owner[:-1])  # merged duplicates
    vid, owner = vid[keep], owner[keep]
    bounds = np.flatnonzero(np.diff(owner)) + 1
    return verts, [part.tolist() for part in np.split(vid, bounds)]


def _delaunay_polygons(seeds: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Delaunay triangles of ``seeds`` plus the four square corners."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    pts = np.vstack([corners, seeds])
    tri = Delaunay(pts).simplices.astype(np.int64)
    area = _signed_area(pts, tri)
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]
    tri = tri[np.abs(area) > 1e-14]
    tri = tri[np.lexsort(tri.T[::-1])]
    return pts, [list(map(int, t)) for t in tri]


def _check_partition(verts: np.ndarray, polys: list[list[int]]) -> None:
    """Raise MeshingError unless the polygons are CCW, non-degenerate and tile the square."""
    xy = [tuple(v) for v in verts.tolist()]
    areas = np.array([_area_py([xy[i] for i in p]) if len(p) >= 3 else 0.0 for p in polys])
    if np.any(areas <= 1e-12):
        raise MeshingError(f"degenerate grain polygon (min area {areas.min():.3g})")
    if abs(areas.sum() - 1.0) > 1e-9:
        raise MeshingError(f"grain polygons do not tile the unit square (total area {areas.sum():.12g})")


def _on_side(x: float, y: float) -> int:
    """Bitmask of the square sides (x=0, x=1, y=0, y=1) a vertex lies on."""
    return (x == 0.0) | (x == 1.0) << 1 | (y == 0.0) << 2 | (y == 1.0) << 3


def _area_py(xy: list[tuple[float, float]]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(xy, xy[1:] + xy[:1]))


def _is_simple(xy: list[tuple[float, float]]) -> bool:
    """True if no two non-adjacent edges of the closed polygon intersect."""
    n = len(xy)

    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    for i in range(n):
        p1, p2 = xy[i], xy[(i + 1) % n]
        for j in range(i + 2, n if i > 0 else n - 1):
            q1, q2 = xy[j], xy[(j + 1) % n]
            if (orient(p1, p2, q1) > 0) != (orient(p1, p2, q2) > 0) and (orient(q1, q2, p1) > 0) != (
                orient(q1, q2, p2) > 0
            ):
                return False
    return True


def _collapse_short_edges(
    verts: np.ndarray, polys: list[list[int]], tol: float
) -> tuple[np.ndarray, list[list[int]]]:
    """Collapse tessellation edges shorter than ``tol`` while keeping the partition valid.

    Interior endpoints merge at the edge midpoint; a boundary endpoint keeps the
    merged vertex on its side (a corner stays a corner).  A collapse is skipped
    if an affected polygon would drop below 3 vertices, self-intersect or lose
    positive area, so the result is still a partition of the unit square.
    """
    if tol <= 0.0:
        return verts, polys
    xy = [(float(x), float(y)) for x, y in verts]
    polys = [list(p) for p in polys]
    tol2 = tol * tol
    skipped: set[tuple[int, int]] = set()
    while True:
        best, best_d2 = None, tol2
        for p in polys:
            for a, b in zip(p, p[1:] + p[:1]):
                if a > b:
                    a, b = b, a
                d2 = (xy[a][0] - xy[b][0]) ** 2 + (xy[a][1] - xy[b][1]) ** 2
                if d2 < best_d2 and (a, b) not in skipped:
                    best, best_d2 = (a, b), d2
        if best is None:
            break
        a, b = best
        sa, sb = _on_side(*xy[a]), _on_side(*xy[b])
        if sa and sb and not (sa & sb):
            skipped.add(best)  # on different sides: the merged point would leave the boundary
            continue
        if sa in (5, 6, 9, 10) or (sa and not sb):
            new = xy[a]  # a is a corner, or a is on the boundary and b is not
        elif sb in (5, 6, 9, 10) or (sb and not sa):
            new = xy[b]
        else:
            new = (0.5 * (xy[a][0] + xy[b][0]), 0.5 * (xy[a][1] + xy[b][1]))
        old_a, xy[a] = xy[a], new
        trial = {}
        for k, p in enumerate(polys):
            if a in p or b in p:
                q = [a if i == b else i for i in p]
                q = [i for m, i in enumerate(q) if i != q[m - 1]]
                pts = [xy[i] for i in q]
                if len(q) < 3 or _area_py(pts) <= 1e-3 * tol2 or not _is_simple(pts):
                    trial = None
                    break
                trial[k] = q
        if trial is None:
            xy[a] = old_a
            skipped.add(best)
        else:
            for k, q in trial.items():
                polys[k] = q
    used = sorted({i for p in polys for i in p})
    lookup = {old: new for new, old in enumerate(used)}
    return np.array([xy[i] for i in used], dtype=np.float64), [[lookup[i] for i in p] for p in polys]


# ----------------------------------------------------------------------------- gmsh


def _set_options(gmsh) -> None:
    # Set every option that affects the result, in case other code changed them.
    for name, value in (
        ("General.Terminal", 0),
        ("General.NumThreads", 1),
        ("General.Verbosity", 0),
        ("Mesh.Algorithm", 6),
        ("Mesh.ElementOrder", 1),
        ("Mesh.RecombineAll", 0),
        ("Mesh.SubdivisionAlgorithm", 0),
        ("Mesh.MeshSizeFactor", 1.0),
        ("Mesh.MeshSizeMin", 0.0),
        ("Mesh.MeshSizeMax", 1e22),
        ("Mesh.MeshSizeFromPoints", 1),
        ("Mesh.MeshSizeFromCurvature", 0),
        ("Mesh.MeshSizeExtendFromBoundary", 1),
        ("Mesh.RandomFactor", 1e-9),
        ("Mesh.RandomSeed", 1),  # gmsh reseeds its generator from this at each generate()
        ("Mesh.Smoothing", 0),
        ("Mesh.MaxNumThreads2D", 1),
    ):
        gmsh.option.setNumber(name, value)


def _mesh(
    verts: np.ndarray, polys: list[list[int]], h: float, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh the polygons with linear triangles; return points, CCW triangles, cell grain."""
    with gmsh_model() as gmsh:
        gmsh.clear()
        _set_options(gmsh)
        gmsh.model.add(name)
        geo = gmsh.model.geo
        ptag = [geo.addPoint(float(x), float(y), 0.0, h) for x, y in verts]
        lines: dict[tuple[int, int], int] = {}
        surfaces = []
        for p in polys:
            loop = []
            for a, b in zip(p, p[1:] + p[:1]):
                key = (a, b) if a < b else (b, a)
                tag = lines.get(key)
                if tag is None:
                    tag = lines[key] = geo.addLine(ptag[key[0]], ptag[key[1]])
                loop.append(tag if a == key[0] else -tag)
            surfaces.append(geo.addPlaneSurface([geo.addCurveLoop(loop)]))
        geo.synchronize()
        for g, s in enumerate(surfaces):
            gmsh.model.addPhysicalGroup(2, [s], tag=g + 1, name=f"grain{g}")
        gmsh.model.mesh.generate(2)

        node_tags, coords, _ = gmsh.model.mesh.getNodes()
        tri_nodes, grain = [], []
        for g, s in enumerate(surfaces):
            _, nt = gmsh.model.mesh.getElementsByType(2, s)
            nt = np.asarray(nt, dtype=np.int64)
            if nt.size == 0:
                raise MeshingError(f"grain {g} received no triangles")
            tri_nodes.append(nt)
            grain.append(np.full(nt.size // 3, g, dtype=np.int64))

    points, triangles = compact_mesh(node_tags, coords, np.concatenate(tri_nodes), 3, 2, "triangle")
    cell_grain = np.concatenate(grain)
    area = _signed_area(points, triangles)
    flip = area < 0
    triangles[flip] = triangles[flip][:, [0, 2, 1]]
    if np.any(np.abs(area) <= 0.0):
        raise MeshingError("degenerate triangle in mesh")
    return points, triangles, cell_grain


def _cell_adjacency(triangles: np.ndarray) -> np.ndarray:
    """Pairs (i < j) of triangles sharing a mesh edge, sorted lexicographically."""
    n = int(triangles.max()) + 1
    e = np.sort(triangles[:, [[0, 1], [1, 2], [2, 0]]], axis=2).reshape(-1, 2)
    key = e[:, 0] * n + e[:, 1]
    cell = np.repeat(np.arange(triangles.shape[0], dtype=np.int64), 3)
    order = np.argsort(key, kind="stable")
    key, cell = key[order], cell[order]
    same = np.flatnonzero(key[1:] == key[:-1])
    i = np.minimum(cell[same], cell[same + 1])
    j = np.maximum(cell[same], cell[same + 1])
    pair_key = np.unique(i * triangles.shape[0] + j)
    return np.column_stack([pair_key // triangles.shape[0], pair_key % triangles.shape[0]])
