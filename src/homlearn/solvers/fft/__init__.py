"""Periodic Fourier-Galerkin (FFT) solvers for unit-cell problems (torch, batched)."""

from homlearn.solvers.fft.linear import (CubicMaterial, IsotropicMaterial, LinearSolveResult,
                                         isotropic_stiffness_apply, reference_solve_linear,
                                         solve_linear)
from homlearn.solvers.fft.projection import apply_projection, project_real, singular_mask, wave_vectors

__all__ = ["CubicMaterial", "IsotropicMaterial", "LinearSolveResult", "apply_projection",
           "isotropic_stiffness_apply", "project_real", "reference_solve_linear", "singular_mask",
           "solve_linear", "wave_vectors"]
