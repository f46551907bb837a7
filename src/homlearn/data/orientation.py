"""Per-grain orientation features of the cp_grid polycrystals (inputs of the GCNN family and CNNs).

Two encodings:

* ``angle`` / ``euler``: the stored angles as they are (paper gcnn section 3: "orientation
  angles"): 2D one angle about z in [0, 2 pi), 3D the ZXZ Euler angles.
* ``cubic``: the independent components of the fourth-order harmonic tensor of cubic symmetry in
  the sample frame, ``T_ijkl = sum_a c_ai c_aj c_ak c_al`` over the crystal axes ``c_a`` (the
  columns of the crystal -> sample rotation ``R``). Why: Euler angles jump (2 pi wrap; phi1 and
  phi2 degenerate at Phi = 0) and 24 cubic-equivalent triples describe one crystal, so the network
  has to learn the symmetry; ``T`` is continuous, takes one value per crystal (``R -> R Q`` for any
  cubic rotation ``Q`` leaves it unchanged: the FCC slip systems and cubic elasticity are invariant
  under the same group), and it carries the anisotropy directly: the rotated cubic stiffness is
  ``C = C_iso + (c11 - c12 - 2 c44) T`` and the single-crystal Young's modulus along the load axis
  x is ``1 / E_x = s11 - (s11 - s12 - s44 / 2) (1 - T_xxxx)``. Of its 15 components, the trace
  identities ``T_ijkk = delta_ij`` leave 9 independent (3D: xxxx, yyyy, zzzz, xxxy, xyyy, xxxz,
  xzzz, yyyz, yzzz); about z only (2D) they reduce to ``T_xxxx = (3 + cos 4t) / 4`` and
  ``T_xxxy = sin 4t / 4``.
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("angle", "euler", "cubic")

#: independent components of T kept per dimension (index tuples into the sample axes x, y, z = 0, 1, 2)
CUBIC_COMPONENTS = {
    2: ((0, 0, 0, 0), (0, 0, 0, 1)),
    3: ((0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 0, 0, 1), (0, 1, 1, 1), (0, 0, 0, 2), (0, 2, 2, 2),
        (1, 1, 1, 2), (1, 2, 2, 2)),
}
_AXES = "xyz"


def default_encoding(dim: int) -> str:
    """The cubic harmonic tensor in 2D and 3D. Deviation from the paper, which feeds the angle:
    on 480 cp_grid2d slices (gcnn-cpu), a 3-filter fGCNN (N_dense 1, LSTM head, 300 epochs) fed the
    angle stays on the mean-history plateau (validation loss 0.63 vs 0.69 for the mean; 4 filters
    0.64) while the same net fed ``T`` reaches 0.041: in [0, 2 pi) the response has four periods
    in the angle, which the paper's 12,000 slices let a net learn to fold and 480 do not.
    ``angle`` remains available (data key ``orientation``)."""
    return "cubic"


def rotations(angles: np.ndarray, dim: int) -> np.ndarray:
    """Crystal -> sample rotations ``(G, 3, 3)`` from stored angles, as the cp_grid solver built
    them (:mod:`homlearn.microstructure.voxel_voronoi`: about z in 2D, intrinsic ZXZ in 3D)."""
    from scipy.spatial.transform import Rotation

    angles = np.asarray(angles, dtype=float)
    if dim == 2:
        return Rotation.from_euler("z", angles[:, :1]).as_matrix()  # (G, 1): one z angle per grain
    return Rotation.from_euler("ZXZ", angles).as_matrix()


def cubic_harmonic(rot: np.ndarray, dim: int) -> np.ndarray:
    """The independent components ``CUBIC_COMPONENTS[dim]`` of ``T`` (see the module doc), ``(G, k)``."""
    rot = np.asarray(rot, dtype=float)
    return np.stack([np.sum(rot[:, i, :] * rot[:, j, :] * rot[:, k, :] * rot[:, m, :], axis=1)
                     for i, j, k, m in CUBIC_COMPONENTS[dim]], axis=1)


def orientation_features(angles: np.ndarray, dim: int, encoding: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-grain features ``(G, k)`` and their names for ``encoding`` (one of ``ENCODINGS``)."""
    angles = np.asarray(angles, dtype=float)
    if encoding == "angle" and dim == 2:
        return angles[:, :1], ("angle_z",)
    if encoding == "euler" and dim == 3:
        return angles[:, :3], ("euler_phi1", "euler_Phi", "euler_phi2")
    if encoding == "cubic":
        names = tuple("T_" + "".join(_AXES[a] for a in c) for c in CUBIC_COMPONENTS[dim])
        return cubic_harmonic(rotations(angles, dim), dim), names
    allowed = ["angle", "cubic"] if dim == 2 else ["euler", "cubic"]
    raise ValueError(f"data key 'orientation': {encoding!r} is not one of {allowed} for {dim}D grains")
