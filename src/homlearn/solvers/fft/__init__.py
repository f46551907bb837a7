"""Periodic Fourier-Galerkin (FFT) solvers for unit-cell problems (torch, batched, CPU or CUDA)."""

from homlearn.solvers.fft.control import MacroControl
from homlearn.solvers.fft.krylov import SolveStatus, batched_bicgstab, batched_cg
from homlearn.solvers.fft.linear import (CubicMaterial, IsotropicMaterial, LinearSolveResult,
                                         isotropic_stiffness_apply, reference_solve_linear,
                                         solve_linear)
from homlearn.solvers.fft.newton import NewtonResult, solve_newton
from homlearn.solvers.fft.projection import (Projector, apply_gradient_projection, apply_projection,
                                             project_real, singular_mask, wave_vectors)

__all__ = ["CubicMaterial", "IsotropicMaterial", "LinearSolveResult", "MacroControl", "NewtonResult",
           "Projector", "SolveStatus", "apply_gradient_projection", "apply_projection",
           "batched_bicgstab", "batched_cg", "isotropic_stiffness_apply", "project_real",
           "reference_solve_linear", "singular_mask", "solve_linear", "solve_newton", "wave_vectors"]
