"""Constitutive models.

For the FFT engine (torch, batched fields ``(B, d, d, *grid)``): every material provides
``response(x) -> (stress, tangent)`` (``x`` the strain or the deformation gradient, ``tangent`` a
:class:`~homlearn.materials.tangent.Tangent`), ``select(index)`` and ``batch_size``; linear elastic
materials are also callables ``sigma = C(eps)``. For the FEM solvers: :mod:`.viscoelastic` (numpy).

The names below are imported lazily, so ``import homlearn.materials.viscoelastic`` in a FEM
worker does not load torch (5 s and 600 MB per process).
"""

from importlib import import_module

_EXPORTS = {
    "CubicMaterial": "elastic", "IsotropicMaterial": "elastic", "NonlinearElastic": "elastic",
    "isotropic_stiffness_apply": "elastic", "two_phase_isotropic": "elastic",
    "NeoHookean": "hyperelastic", "Tangent": "tangent", "TensorTangent": "tangent",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"homlearn.materials.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'homlearn.materials' has no attribute {name!r}")
