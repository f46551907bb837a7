"""Wave vectors and the compatibility projection of the Fourier-Galerkin scheme.

The periodic cell problem is written in Lippmann-Schwinger form (paper 'rln',
eq. 8-11); in the Galerkin variant (Zeman et al. 2017, de Geus et al. 2017)
the Green operator of a reference medium is replaced by the orthogonal (L2)
projection ``P`` onto compatible, zero-mean, symmetric strain fields. In
Fourier space, for the unit direction ``n = xi / |xi|`` and a symmetric ``A``,

    P(A) = n (x) (A n) + (A n) (x) n - (n . A . n) n (x) n,      P = 0 at xi = 0,

which is what :func:`apply_projection` evaluates frequency by frequency
(no 81 x N^3 operator is stored).

For finite strain (de Geus et al. 2017) the unknown is the deformation gradient
and the projection onto compatible (gradient) fields is ``G(A) = (A n) (x) n``.

Discrete gradients: ``gradient="continuous"`` uses ``xi = 2 pi k / L`` (Moulinec-
Suquet); ``gradient="willot"`` uses the rotated finite-difference scheme of Willot
(2015), whose symbol is, up to a phase common to all components,
``k_j = (2 / h_j) sin(xi_j h_j / 2) prod_{l != j} cos(xi_l h_l / 2)``. Since the
projections only depend on the direction ``n = k / |k|``, the phase drops out.

Macroscopic control (Lucarini & Segurado 2019): at the zero frequency the
projection is replaced by a component mask ``Q`` of the mean stress components
that are prescribed, so the unknown field carries the free mean strain
components and the residual carries ``Q (<sigma> - Sigma*)``.

Layout: tensors are ``d x d`` matrices, ``(B, d, d, *grid)`` (symmetric for small
strain); their spectra come from ``torch.fft.rfftn`` over the ``d`` spatial axes,
so the last spatial axis has ``N_d // 2 + 1`` entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["wave_vectors", "singular_mask", "apply_projection", "apply_gradient_projection",
           "project_real", "Projector", "SINGULAR_RTOL", "GRADIENTS", "to_mandel", "from_mandel"]

GRADIENTS = ("continuous", "willot")

#: a frequency with ``|xi| <= SINGULAR_RTOL * max |xi|`` is treated as singular (P = 0).
SINGULAR_RTOL = 1e-12


def wave_vectors(grid_shape: Sequence[int], lengths: Sequence[float] | None = None, *,
                 gradient: str = "continuous", device=None, dtype=torch.float64) -> torch.Tensor:
    """Wave vectors in rfftn layout, shape ``(d, *rgrid)``, ``rgrid = (N_1, ..., N_d // 2 + 1)``.

    ``gradient="continuous"``: ``xi = 2 pi k / L``; on an axis of even length the
    Nyquist frequency ``k = -N/2`` is set to zero (it has no odd partner, so it
    cannot carry a real derivative). ``gradient="willot"``: the real part of the
    rotated finite-difference symbol (module docstring); it is well defined at the
    Nyquist frequency (``sin = +-1``, ``cos = 0``), which is kept.
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    grid_shape = tuple(int(n) for n in grid_shape)
    d = len(grid_shape)
    if d not in (2, 3):
        raise ValueError(f"grid must be 2D or 3D, got {grid_shape}")
    lengths = (1.0,) * d if lengths is None else tuple(float(x) for x in lengths)
    if len(lengths) != d:
        raise ValueError("lengths must have one entry per grid axis")
    axes = []
    for a, (n, length) in enumerate(zip(grid_shape, lengths)):
        if a == d - 1:
            k = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=dtype)
        else:
            k = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype)
        if n % 2 == 0 and gradient == "continuous":
            k = torch.where(k.abs() == n // 2, torch.zeros_like(k), k)
        axes.append(2.0 * torch.pi * k / length)
    xi = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    if gradient == "continuous":
        return xi
    h = torch.tensor([length / n for n, length in zip(grid_shape, lengths)], dtype=dtype, device=device)
    half = xi * h.reshape(d, *(1,) * d) / 2
    cos = torch.cos(half)
    out = []
    for j in range(d):
        others = torch.prod(torch.stack([cos[m] for m in range(d) if m != j]), dim=0)
        out.append(2.0 / h[j] * torch.sin(half[j]) * others)
    return torch.stack(out)


def singular_mask(xi: torch.Tensor) -> torch.Tensor:
    """Frequencies where ``|xi| <= SINGULAR_RTOL * max|xi|`` (zero frequency, zeroed Nyquist)."""
    norm = torch.linalg.vector_norm(xi, dim=0)
    return norm <= SINGULAR_RTOL * norm.max()


def _unit_directions(xi: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.vector_norm(xi, dim=0)
    sing = norm <= SINGULAR_RTOL * norm.max()
    return torch.where(sing, torch.zeros_like(xi), xi / torch.where(sing, torch.ones_like(norm), norm))


def apply_projection(tau_hat: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """``P(tau_hat)`` per frequency; ``tau_hat`` is ``(B, d, d, *rgrid)`` (complex), ``xi`` ``(d, *rgrid)``.

    ``tau_hat`` is assumed symmetric in its two tensor indices. Returns zero at
    the singular frequencies (see :func:`singular_mask`).
    """
    n = _unit_directions(xi).to(tau_hat.dtype)            # (d, *rgrid), zero where singular
    an = torch.einsum("bij...,j...->bi...", tau_hat, n)    # A n
    nan = torch.einsum("i...,bi...->b...", n, an)          # n . A . n
    n_an = n[:, None].unsqueeze(0) * an[:, None, :]       # n_i (A n)_j, (B, i, j, *rgrid)
    nn = n[:, None] * n[None, :]
    return n_an + n_an.transpose(1, 2) - nan[:, None, None] * nn.unsqueeze(0)


def apply_gradient_projection(a_hat: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """Finite-strain projection ``G(A) = (A n) (x) n`` per frequency (onto gradient fields
    ``u (x) nabla``), ``a_hat`` ``(B, d, d, *rgrid)``; zero at the singular frequencies."""
    n = _unit_directions(xi).to(a_hat.dtype)
    an = torch.einsum("bij...,j...->bi...", a_hat, n)
    return an[:, :, None] * n[None, None]


def project_real(field: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """``P`` applied to a real field ``(B, d, d, *grid)`` through rfftn / irfftn."""
    d = field.shape[1]
    dims = tuple(range(-d, 0))
    spec = torch.fft.rfftn(field, dim=dims)
    return torch.fft.irfftn(apply_projection(spec, xi), s=field.shape[-d:], dim=dims)


class Projector:
    """The projection of a Fourier-Galerkin cell problem, applied to real fields ``(B, d, d, *grid)``.

    ``kinematics="small"``: onto compatible symmetric strains (:func:`apply_projection`);
    ``"finite"``: onto gradient fields (:func:`apply_gradient_projection`).
    ``stress_mask`` (``(d, d)`` bool, symmetric for small strain): mean stress components
    that are prescribed (mixed control); the zero frequency is mapped to
    ``stress_mask * mean`` instead of 0, so ``P`` stays an orthogonal projector.
    """

    def __init__(self, grid_shape: Sequence[int], lengths: Sequence[float] | None = None, *,
                 kinematics: str = "small", gradient: str = "continuous", stress_mask=None,
                 device=None, dtype=torch.float64):
        if kinematics not in ("small", "finite"):
            raise ValueError(f"kinematics must be 'small' or 'finite', got {kinematics!r}")
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.d = len(self.grid_shape)
        self.kinematics = kinematics
        self.xi = wave_vectors(self.grid_shape, lengths, gradient=gradient, device=device, dtype=dtype)
        self._apply = apply_projection if kinematics == "small" else apply_gradient_projection
        self.dims = tuple(range(-self.d, 0))
        if stress_mask is None:
            self.stress_mask = None
        else:
            mask = torch.as_tensor(stress_mask, dtype=torch.bool, device=self.xi.device)
            if mask.shape != (self.d, self.d):
                raise ValueError(f"stress_mask must be ({self.d}, {self.d}), got {tuple(mask.shape)}")
            if kinematics == "small" and not torch.equal(mask, mask.T):
                raise ValueError("stress_mask must be symmetric for small strain")
            self.stress_mask = mask if bool(mask.any()) else None

    def __call__(self, field: torch.Tensor) -> torch.Tensor:
        if self.kinematics == "small":
            return self._project_symmetric(field)
        spec = torch.fft.rfftn(field, dim=self.dims)
        out = self._apply(spec, self.xi)
        if self.stress_mask is not None:
            zero = (slice(None), slice(None), slice(None)) + (0,) * self.d
            out[zero] = spec[zero] * self.stress_mask.to(spec.real.dtype)
        return torch.fft.irfftn(out, s=self.grid_shape, dim=self.dims)

    def _project_symmetric(self, field: torch.Tensor) -> torch.Tensor:
        """Small strain on the ``d (d + 1) / 2`` independent components only (a third fewer FFTs in
        3D than the full tensor); same result as :func:`apply_projection`."""
        d = self.d
        if not hasattr(self, "_pairs"):
            self._pairs = [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]
            pos = {p: k for k, p in enumerate(self._pairs)} | {(j, i): k for (i, j), k in
                                                               ((p, k) for k, p in enumerate(self._pairs))}
            self._pos = pos
            self._full = torch.tensor([pos[(i, j)] for i in range(d) for j in range(d)], device=self.xi.device)
            rows = torch.tensor([i for i, _ in self._pairs], device=self.xi.device)
            cols = torch.tensor([j for _, j in self._pairs], device=self.xi.device)
            self._rows, self._cols = rows, cols
            self._n = None
        if self._n is None or self._n.dtype != self.xi.dtype:
            self._n = _unit_directions(self.xi)
        n = self._n
        spec = torch.fft.rfftn(field[:, self._rows, self._cols], dim=self.dims)     # (B, m, *rgrid)
        pos = self._pos
        an = [sum(spec[:, pos[(i, j)]] * n[j] for j in range(d)) for i in range(d)]
        nan = sum(an[i] * n[i] for i in range(d))
        out = torch.stack([n[i] * an[j] + n[j] * an[i] - nan * (n[i] * n[j]) for i, j in self._pairs], dim=1)
        if self.stress_mask is not None:
            zero = (slice(None), slice(None)) + (0,) * d
            out[zero] = spec[zero] * self.stress_mask[self._rows, self._cols].to(spec.real.dtype)
        real = torch.fft.irfftn(out, s=self.grid_shape, dim=self.dims)
        return real[:, self._full].reshape(field.shape[0], d, d, *self.grid_shape)

    # ------------------------------------------------------------------ Mandel storage
    def mandel_pairs(self) -> list[tuple[int, int]]:
        """Component order of the Mandel vectors: the diagonal, then (i, j), i < j, row by row."""
        d = self.d
        return [(i, i) for i in range(d)] + [(i, j) for i in range(d) for j in range(i + 1, d)]

    def project_mandel(self, v: torch.Tensor) -> torch.Tensor:
        """Small-strain projection of Mandel fields ``(B, d(d+1)/2, *grid)`` (off-diagonal entries
        scaled by sqrt 2, so the Euclidean inner product is the tensor one): what CG iterates on."""
        d = self.d
        if not hasattr(self, "_mandel"):
            pairs = self.mandel_pairs()
            n = _unit_directions(self.xi)
            scale = [1.0 if i == j else 2.0 ** 0.5 for i, j in pairs]
            pos = {p: k for k, p in enumerate(pairs)} | {(j, i): k for k, (i, j) in enumerate(pairs)}
            # an_i = sum_j (v_k / s_k) n_j, k = (i, j)
            an_terms = [[(pos[(i, j)], n[j] / scale[pos[(i, j)]]) for j in range(d)] for i in range(d)]
            out_terms = [(i, j, scale[k]) for k, (i, j) in enumerate(pairs)]
            self._mandel = (n, an_terms, out_terms)
        n, an_terms, out_terms = self._mandel
        spec = torch.fft.rfftn(v, dim=self.dims)
        an = [sum(spec[:, k] * c for k, c in terms) for terms in an_terms]
        nan = sum(an[i] * n[i] for i in range(d))
        out = torch.stack([s * (n[i] * an[j] + n[j] * an[i] - nan * (n[i] * n[j])) for i, j, s in out_terms], 1)
        if self.stress_mask is not None:
            zero = (slice(None), slice(None)) + (0,) * d
            rows = [i for i, _ in self.mandel_pairs()]
            cols = [j for _, j in self.mandel_pairs()]
            out[zero] = spec[zero] * self.stress_mask[rows, cols].to(spec.real.dtype)
        return torch.fft.irfftn(out, s=self.grid_shape, dim=self.dims)


def to_mandel(t: torch.Tensor, pairs) -> torch.Tensor:
    """``(B, d, d, *grid)`` symmetric -> ``(B, m, *grid)`` Mandel."""
    return torch.stack([t[:, i, j] * (1.0 if i == j else 2.0 ** 0.5) for i, j in pairs], 1)


def from_mandel(v: torch.Tensor, pairs, d: int) -> torch.Tensor:
    """``(B, m, *grid)`` Mandel -> ``(B, d, d, *grid)`` symmetric."""
    out = v.new_empty(v.shape[0], d, d, *v.shape[2:])
    for k, (i, j) in enumerate(pairs):
        if i == j:
            out[:, i, i] = v[:, k]
        else:
            out[:, i, j] = out[:, j, i] = v[:, k] / 2.0 ** 0.5
    return out
