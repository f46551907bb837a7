"""Constitutive models on voxel fields ``(B, d, d, *grid)`` (torch, batched, CPU or CUDA).

Every material used by the Newton-Krylov FFT solver provides
``response(x) -> (stress, tangent)`` (``x`` the strain or the deformation gradient,
``tangent`` a :class:`~homlearn.materials.tangent.Tangent`), ``select(index)`` and
``batch_size``; linear elastic materials are also callables ``sigma = C(eps)``.
"""

from homlearn.materials.elastic import (CubicMaterial, IsotropicMaterial, NonlinearElastic,
                                        isotropic_stiffness_apply, two_phase_isotropic)
from homlearn.materials.hyperelastic import NeoHookean
from homlearn.materials.tangent import Tangent, TensorTangent

__all__ = ["CubicMaterial", "IsotropicMaterial", "NeoHookean", "NonlinearElastic", "Tangent",
           "TensorTangent", "isotropic_stiffness_apply", "two_phase_isotropic"]
