"""Macroscopic loading of a unit cell: prescribed mean strain (or F) and mixed control.

Mixed control (Lucarini & Segurado 2019): the components in ``stress_mask`` have a
prescribed mean stress (``stress``); the matching mean strain components are
unknowns (``strain`` holds their initial guess), the others are prescribed by
``strain``. Uniaxial stress along x: ``strain[0, 0]`` prescribed, every other mean
stress component zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MacroControl"]


@dataclass
class MacroControl:
    """``strain`` ``(B, d, d)`` or ``(d, d)``: mean strain (small strain) or mean F (finite strain);
    ``stress_mask`` ``(d, d)`` bool or None; ``stress`` ``(B, d, d)`` or ``(d, d)``: prescribed mean
    stress (Cauchy for small strain, first Piola-Kirchhoff for finite strain) where masked."""

    strain: torch.Tensor
    stress_mask: torch.Tensor | None = None
    stress: torch.Tensor | None = None

    @classmethod
    def uniaxial_stress(cls, d: int, value: float, kinematics: str = "small") -> "MacroControl":
        """Mean ``strain[0,0]`` (or ``F[0,0]``) = ``value``, every other mean (Cauchy) stress zero.

        Finite strain: the upper triangle of the mean F is held at zero (no rigid rotation,
        which would make the mixed problem singular) and ``P_ij = 0`` is prescribed for
        ``i >= j`` except ``(0, 0)``; then ``sigma = P F^T / J`` is uniaxial exactly (the
        remaining ``P_ij``, ``i < j``, follow from the symmetry of sigma and vanish too,
        except ``P_0j`` which carries ``sigma_00 (F^-1)_j0``).
        """
        if kinematics not in ("small", "finite"):
            raise ValueError(f"kinematics must be 'small' or 'finite', got {kinematics!r}")
        base = torch.zeros(d, d, dtype=torch.float64) if kinematics == "small" else torch.eye(d, dtype=torch.float64)
        base[0, 0] = value
        mask = torch.ones(d, d, dtype=torch.bool)
        if kinematics == "finite":
            mask = torch.tril(mask)
        mask[0, 0] = False
        return cls(base, mask, None)

    def resolve(self, d: int, batch: int | None, *, device=None, dtype=torch.float64):
        """``(strain (B,d,d), mask (d,d) or None, stress (B,d,d))`` on ``device`` with validated shapes."""
        strain = torch.as_tensor(self.strain, dtype=dtype, device=device)
        if strain.ndim == 2:
            strain = strain.expand(batch or 1, d, d)
        if strain.shape[1:] != (d, d) or (batch is not None and strain.shape[0] != batch):
            raise ValueError(f"mean strain/F must be ({d},{d}) or (B,{d},{d}) with B = {batch}, "
                             f"got {tuple(strain.shape)}")
        mask = None
        if self.stress_mask is not None:
            mask = torch.as_tensor(self.stress_mask, dtype=torch.bool, device=strain.device)
            if mask.shape != (d, d):
                raise ValueError(f"stress_mask must be ({d},{d}), got {tuple(mask.shape)}")
        stress = torch.zeros_like(strain) if self.stress is None else \
            torch.as_tensor(self.stress, dtype=dtype, device=strain.device).expand_as(strain)
        if mask is not None:
            stress = stress * mask
        return strain.contiguous(), mask, stress.contiguous()
