"""Strain / deformation-gradient paths: Rademacher increments + cubic Hermite interpolation
(papers 'pcanet' sec. 2.2, 'rno' sec. 2) and the papers' deterministic test paths."""

from homlearn.loading.paths import (Paths, cavity_expansion, component_pairs, cyclic,
                                    diverging_paths, full_from_components, hermite_interpolant,
                                    identity_components, isochoric_lateral, knot_times,
                                    load_unload, rademacher_knots, ramp_hold, random_paths, shear,
                                    symmetric_from_components, uniaxial,
                                    upper_triangular_from_components)

__all__ = [
    "Paths", "random_paths", "knot_times", "rademacher_knots", "hermite_interpolant",
    "component_pairs", "identity_components", "symmetric_from_components",
    "upper_triangular_from_components", "full_from_components",
    "uniaxial", "load_unload", "cyclic", "ramp_hold", "cavity_expansion", "shear",
    "isochoric_lateral", "diverging_paths",
]
