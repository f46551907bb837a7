"""Random packings of non-overlapping spheres in the unit cube, meshed with linear tetrahedra.

Frankel et al., reduced-graph GCNN, section 3.3 and appendix A.3: "spheres of sizes drawn from a
beta distribution and a uniform distribution of locations were packed into a cube"; 16 to 24
inclusions (mean 17.3) per sample, 23,152 to 28,892 tetrahedra (mean 25,430.9).

The paper gives neither the beta parameters nor a volume fraction. Our choices (``DEFAULTS``):

* radii ``r = 0.05 + 0.17 X`` with ``X ~ Beta(2, 3)`` (0.05 <= r <= 0.22, mean 0.118);
* radii are drawn one at a time until the spheres' total volume reaches the target volume
  fraction 0.132, keeping the count within [16, 24] (more are drawn while fewer than 16, none
  after 24). This reproduces the paper's count statistics - 16 to 24, mean 17.3 (ours: 17.3 over
  3,000 draws) - because the target is usually reached before 16 spheres, so the lower limit
  binds most often; the resulting inclusion volume fraction varies from sample to sample
  (0.11 to 0.28, mean 0.15), as the paper's does;
* centres uniform, placed largest sphere first by random sequential addition: every sphere stays
  at least ``gap = 0.02`` away from the cube faces and from the other spheres (no touching
  inclusions, no spheres cut by the faces: neither would mesh robustly). A sphere that finds no
  place in ``max_tries`` draws makes the packing fail; the sample is then redrawn with the next
  sub-seed (counted in ``packing_failures``).

Meshing: gmsh's OpenCASCADE kernel fragments the cube with the spheres into conforming volumes,
one physical group per inclusion (``inclusion{i}``, tag i + 2) and one for the matrix (tag 1).
The element size is uniform (``h``) in the bulk, refined on small spheres by gmsh's
curvature-based sizing (``curvature_points`` elements per 2 pi of arc) and grown from the
surfaces. ``h`` is chosen by an empirical count model (``_COUNT_MODEL``) so that the mean number
of tetrahedra is close to ``target_cells``; a mesh more than ``count_tolerance`` off the target is
remeshed once with ``h`` rescaled by the cube root of the ratio. A failed mesh is retried with the
next 3D algorithm of ``algorithms`` (Delaunay, then HXT, then Frontal by default), then with the
next sub-seed; every failure is counted and returned with the sample.

gmsh is initialised once per process for worker threads (``interruptible=False``) and guarded by
the same lock as the 2D polycrystal generator (``gmsh_session.py``). gmsh keeps state from the last model (its bounding
box feeds tolerances), so every sample starts by meshing a coarse unit cube (``_warm_up``): a
sample is bit-identical whichever process makes it and whatever was meshed before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from homlearn.microstructure.gmsh_session import MeshingError, compact_mesh, gmsh_model

__all__ = ["DEFAULTS", "InclusionComposite", "MeshingError", "PackingError", "generate_inclusions",
           "mesh_spheres", "pack_spheres", "tet_volumes", "face_adjacency", "einstein_sphere"]

#: our packing and meshing choices (module docstring); the schema's defaults are the same
DEFAULTS = {
    "n_inclusions": (16, 24),
    "volume_fraction": 0.132,
    "radius_range": (0.05, 0.22),
    "radius_beta": (2.0, 3.0),
    "gap": 0.02,
    "target_cells": 25431,
    "curvature_points": 12,
    "algorithms": (1, 10, 4),
    "max_reseeds": 3,
    "max_tries": 5000,
    "count_tolerance": 0.1,
}

ALGORITHM_NAMES = {1: "Delaunay", 4: "Frontal", 7: "MMG3D", 9: "R-tree", 10: "HXT"}

# n_cells ~ a / h^3 + b * sum_i V_i (1 / hc_i^3 - 1 / h^3): a bulk term for the uniform size h
# plus the extra tetrahedra inside spheres refined to their curvature size hc_i = 2 pi r_i / N < h
# (V_i the sphere volume). Least squares on the relative error over 80 meshes (20 packings x
# h = 0.055 ... 0.15, N = 12): standard deviation 3.4%, largest 8%.
_COUNT_MODEL = (5.843, 20.15)


class PackingError(RuntimeError):
    """The spheres could not be placed without overlap (the sample is redrawn)."""


@dataclass(frozen=True, eq=False)
class InclusionComposite:
    """A meshed sphere packing: tetrahedra, their cluster (0 matrix, i + 1 inclusion i), the graph.

    ``edges`` lists pairs ``(i, j)``, ``i < j``, of tetrahedra sharing a face, sorted.
    """

    points: np.ndarray  # (P, 3) float64 node coordinates in [0, 1]^3
    tets: np.ndarray  # (C, 4) int64, positively oriented
    cell_cluster: np.ndarray  # (C,) int64: 0 matrix, i + 1 inclusion i (assignment S)
    centres: np.ndarray  # (N, 3) sphere centres
    radii: np.ndarray  # (N,) sphere radii
    edges: np.ndarray  # (E, 2) int64 face-adjacent tetrahedra
    info: dict = field(default_factory=dict)  # h, algorithm, failures, reseeds

    @property
    def n_cells(self) -> int:
        return int(self.tets.shape[0])

    @property
    def n_inclusions(self) -> int:
        return int(self.radii.shape[0])

    @property
    def n_clusters(self) -> int:
        return self.n_inclusions + 1

    @cached_property
    def cell_volume(self) -> np.ndarray:
        return tet_volumes(self.points, self.tets)

    @property
    def cell_phase(self) -> np.ndarray:
        """0 matrix, 1 inclusion (the paper's phi)."""
        return (self.cell_cluster > 0).astype(np.int8)

    @property
    def cluster_volume(self) -> np.ndarray:
        return np.bincount(self.cell_cluster, weights=self.cell_volume, minlength=self.n_clusters)

    @property
    def nominal_volume_fraction(self) -> float:
        return float(4.0 / 3.0 * np.pi * np.sum(self.radii**3))

    @property
    def cluster_edges(self) -> np.ndarray:
        """Pairs (a < b) of clusters that share at least one mesh face (the reduced graph)."""
        c = self.cell_cluster[self.edges]
        c = np.sort(c[c[:, 0] != c[:, 1]], axis=1)
        return np.unique(c, axis=0) if len(c) else np.zeros((0, 2), dtype=np.int64)


# ----------------------------------------------------------------------------- packing


def draw_radii(rng: np.random.Generator, n_inclusions=(16, 24), volume_fraction=0.132,
               radius_range=(0.05, 0.22), radius_beta=(2.0, 3.0)) -> np.ndarray:
    """Radii from ``r_min + (r_max - r_min) Beta(a, b)`` until their volume reaches the target
    fraction, with the count kept in ``n_inclusions``; sorted largest first."""
    lo, hi = int(n_inclusions[0]), int(n_inclusions[1])
    rmin, rmax = float(radius_range[0]), float(radius_range[1])
    a, b = float(radius_beta[0]), float(radius_beta[1])
    if not 1 <= lo <= hi or not 0 < rmin <= rmax < 0.5 or not (a > 0 and b > 0):
        raise ValueError(f"bad packing parameters: n={n_inclusions}, radii={radius_range}, beta={radius_beta}")
    radii, volume = [], 0.0
    while (volume < volume_fraction or len(radii) < lo) and len(radii) < hi:
        r = rmin + (rmax - rmin) * rng.beta(a, b)
        radii.append(r)
        volume += 4.0 / 3.0 * np.pi * r**3
    return np.sort(np.array(radii))[::-1]


def pack_spheres(rng: np.random.Generator, radii: np.ndarray, gap: float = 0.02,
                 max_tries: int = 5000) -> np.ndarray:
    """Centres for ``radii`` (placed in the given order), uniform in the cube, every sphere at
    least ``gap`` from the faces and from the others; raises PackingError if one finds no place."""
    centres = np.zeros((len(radii), 3))
    for i, r in enumerate(radii):
        lo, hi = r + gap, 1.0 - r - gap
        if lo >= hi:
            raise PackingError(f"sphere of radius {r:.3f} does not fit in the cube with gap {gap}")
        for _ in range(max_tries):
            c = rng.uniform(lo, hi, size=3)
            if i == 0 or np.all(np.linalg.norm(centres[:i] - c, axis=1) >= radii[:i] + r + gap):
                centres[i] = c
                break
        else:
            raise PackingError(f"no place for sphere {i} (radius {r:.3f}) after {max_tries} draws")
    return centres


# ----------------------------------------------------------------------------- mesh geometry


def tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Signed volumes of the tetrahedra (positive for positively oriented ones)."""
    p = points[tets]
    return np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0]) / 6.0


def face_adjacency(tets: np.ndarray) -> np.ndarray:
    """Pairs (i < j) of tetrahedra sharing a triangular face, sorted lexicographically."""
    n_cells = tets.shape[0]
    faces = np.sort(tets[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]], axis=2).reshape(-1, 3)
    cell = np.repeat(np.arange(n_cells, dtype=np.int64), 4)
    order = np.lexsort(faces.T[::-1])
    faces, cell = faces[order], cell[order]
    same = np.flatnonzero(np.all(faces[1:] == faces[:-1], axis=1))
    i, j = np.minimum(cell[same], cell[same + 1]), np.maximum(cell[same], cell[same + 1])
    pairs = np.column_stack([i, j])
    return pairs[np.lexsort((j, i))]


def _mesh_size(target_cells: int, radii: np.ndarray, curvature_points: int) -> float:
    """Uniform size h with the count model a / h^3 + b S_small(h) = target_cells (bisection)."""
    a, b = _COUNT_MODEL
    volume = 4.0 / 3.0 * np.pi * radii**3

    def count(h):
        hc = np.minimum(2.0 * np.pi * radii / curvature_points, h)
        return a / h**3 + b * np.sum(volume * (1.0 / hc**3 - 1.0 / h**3))

    lo, hi = 1e-3, 1.0
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        if count(mid) > target_cells:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


# ----------------------------------------------------------------------------- gmsh


def _set_options(gmsh, h: float, algorithm: int, curvature_points: int) -> None:
    # Every option that affects the result, in case other code (the 2D generator) changed them.
    for name, value in (
        ("General.Terminal", 0),
        ("General.NumThreads", 1),
        ("General.Verbosity", 0),
        ("Geometry.OCCParallel", 0),
        ("Mesh.Algorithm", 6),
        ("Mesh.Algorithm3D", algorithm),
        ("Mesh.ElementOrder", 1),
        ("Mesh.RecombineAll", 0),
        ("Mesh.SubdivisionAlgorithm", 0),
        ("Mesh.MeshSizeFactor", 1.0),
        ("Mesh.MeshSizeMin", 0.0),
        ("Mesh.MeshSizeMax", h),
        ("Mesh.MeshSizeFromPoints", 0),
        ("Mesh.MeshSizeFromCurvature", curvature_points),
        ("Mesh.MeshSizeExtendFromBoundary", 1),
        ("Mesh.RandomFactor", 1e-9),
        ("Mesh.RandomFactor3D", 1e-12),
        ("Mesh.RandomSeed", 1),
        ("Mesh.Smoothing", 1),
        ("Mesh.Optimize", 1),
        ("Mesh.OptimizeNetgen", 0),
        ("Mesh.MaxNumThreads1D", 1),
        ("Mesh.MaxNumThreads2D", 1),
        ("Mesh.MaxNumThreads3D", 1),
    ):
        gmsh.option.setNumber(name, value)


def _warm_up(gmsh) -> None:
    """Mesh a coarse unit cube, so that every sample starts from the same gmsh state."""
    gmsh.clear()
    _set_options(gmsh, 0.5, 1, 0)
    gmsh.model.add("warm-up")
    gmsh.model.occ.addBox(0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    gmsh.model.occ.synchronize()
    gmsh.model.mesh.generate(3)
    gmsh.clear()


def mesh_spheres(centres: np.ndarray, radii: np.ndarray, h: float, algorithm: int = 1,
                 curvature_points: int = 12, name: str = "inclusions"):
    """Mesh the unit cube with the spheres as separate conforming volumes (gmsh OCC fragment).

    Returns ``(points (P, 3), tets (C, 4) positively oriented, cell_cluster (C,))`` with cluster 0
    the matrix and i + 1 sphere i. Physical groups: ``matrix`` (tag 1), ``inclusion{i}`` (tag i + 2).
    Raises MeshingError if gmsh fails or a volume gets no tetrahedra.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    with gmsh_model() as gmsh:
        _warm_up(gmsh)
        _set_options(gmsh, h, algorithm, curvature_points)
        gmsh.model.add(name)
        occ = gmsh.model.occ
        box = occ.addBox(0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
        spheres = [occ.addSphere(*map(float, c), float(r)) for c, r in zip(centres, radii)]
        if spheres:
            _, pieces = occ.fragment([(3, box)], [(3, s) for s in spheres])
        else:  # a homogeneous cube (tests)
            pieces = [[(3, box)]]
        occ.synchronize()
        sphere_vol = []
        for i, piece in enumerate(pieces[1:]):
            vols = [t for d, t in piece if d == 3]
            if len(vols) != 1:
                raise MeshingError(f"sphere {i} became {len(vols)} volumes in the fragment")
            sphere_vol.append(vols[0])
        matrix_vol = sorted({t for d, t in pieces[0] if d == 3} - set(sphere_vol))
        if len(matrix_vol) != 1:
            raise MeshingError(f"the matrix became {len(matrix_vol)} volumes in the fragment")
        gmsh.model.addPhysicalGroup(3, matrix_vol, tag=1, name="matrix")
        for i, v in enumerate(sphere_vol):
            gmsh.model.addPhysicalGroup(3, [v], tag=i + 2, name=f"inclusion{i}")
        gmsh.model.mesh.generate(3)

        node_tags, coords, _ = gmsh.model.mesh.getNodes()
        blocks, cluster = [], []
        for k, v in enumerate(matrix_vol + sphere_vol):
            types, _, nodes = gmsh.model.mesh.getElements(3, v)
            nt = np.concatenate([np.asarray(n, dtype=np.int64) for t, n in zip(types, nodes) if t == 4]
                                or [np.zeros(0, dtype=np.int64)])
            if nt.size == 0 or any(t != 4 for t in types):
                raise MeshingError(f"volume {'matrix' if k == 0 else f'inclusion{k - 1}'} has no "
                                   "tetrahedra or other elements")
            blocks.append(nt.reshape(-1, 4))
            cluster.append(np.full(nt.size // 4, k, dtype=np.int64))

    points, tets = compact_mesh(node_tags, coords, np.concatenate(blocks).ravel(), 4, 3, "tetrahedron")
    vol = tet_volumes(points, tets)
    flip = vol < 0
    tets[flip] = tets[flip][:, [0, 2, 1, 3]]
    if np.any(vol == 0.0):
        raise MeshingError("degenerate tetrahedron in mesh")
    return points, tets, np.concatenate(cluster)


def generate_inclusions(seed: int, n_inclusions=DEFAULTS["n_inclusions"],
                        volume_fraction: float = DEFAULTS["volume_fraction"],
                        radius_range=DEFAULTS["radius_range"], radius_beta=DEFAULTS["radius_beta"],
                        gap: float = DEFAULTS["gap"], target_cells: int = DEFAULTS["target_cells"],
                        curvature_points: int = DEFAULTS["curvature_points"],
                        algorithms=DEFAULTS["algorithms"], max_reseeds: int = DEFAULTS["max_reseeds"],
                        max_tries: int = DEFAULTS["max_tries"],
                        count_tolerance: float = DEFAULTS["count_tolerance"]) -> InclusionComposite:
    """Draw, pack and mesh one composite sample (module docstring); deterministic in ``seed``.

    Sub-seed ``k`` (0, 1, ...) drives the k-th packing attempt through
    ``np.random.default_rng([seed, k])``. Raises MeshingError after ``max_reseeds`` redraws.
    """
    if target_cells < 10:
        raise ValueError(f"target_cells must be >= 10, got {target_cells}")
    algorithms = tuple(int(a) for a in algorithms)
    mesh_failures, packing_failures, reasons = 0, 0, []
    for reseed in range(max_reseeds + 1):
        rng = np.random.default_rng([seed, reseed])
        radii = draw_radii(rng, n_inclusions, volume_fraction, radius_range, radius_beta)
        try:
            centres = pack_spheres(rng, radii, gap, max_tries)
        except PackingError as exc:
            packing_failures += 1
            reasons.append(str(exc))
            continue
        h = _mesh_size(target_cells, radii, curvature_points)
        for algorithm in algorithms:
            try:
                points, tets, cluster = mesh_spheres(centres, radii, h, algorithm, curvature_points,
                                                     name=f"inclusions_{seed}_{reseed}")
                ratio = len(tets) / target_cells
                resized = abs(ratio - 1.0) > count_tolerance
                if resized:  # one correction of h by the cube root of the count ratio
                    h *= ratio ** (1.0 / 3.0)
                    points, tets, cluster = mesh_spheres(centres, radii, h, algorithm, curvature_points,
                                                         name=f"inclusions_{seed}_{reseed}")
            except MeshingError as exc:
                mesh_failures += 1
                reasons.append(f"{ALGORITHM_NAMES.get(algorithm, algorithm)}: {exc}")
                continue
            info = {"h": h, "algorithm": algorithm, "mesh_failures": mesh_failures,
                    "packing_failures": packing_failures, "reseeds": reseed, "resized": bool(resized),
                    "reasons": reasons}
            return InclusionComposite(points=points, tets=tets, cell_cluster=cluster, centres=centres,
                                      radii=radii, edges=face_adjacency(tets), info=info)
    raise MeshingError(f"no mesh after {max_reseeds + 1} packings ({packing_failures} packing and "
                       f"{mesh_failures} meshing failures): {'; '.join(reasons[-3:])}")


def einstein_sphere(volume_fraction: float = 0.03, h: float = 0.08, curvature_points: int = 24,
                    algorithm: int = 1) -> InclusionComposite:
    """One sphere at the cube centre with the given volume fraction (the dilute-limit test cell)."""
    r = (3.0 * volume_fraction / (4.0 * np.pi)) ** (1.0 / 3.0)
    centres, radii = np.array([[0.5, 0.5, 0.5]]), np.array([r])
    points, tets, cluster = mesh_spheres(centres, radii, h, algorithm, curvature_points, name="einstein")
    return InclusionComposite(points=points, tets=tets, cell_cluster=cluster, centres=centres, radii=radii,
                              edges=face_adjacency(tets), info={"h": h, "algorithm": algorithm})
