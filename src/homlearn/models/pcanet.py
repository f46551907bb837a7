"""PCA-Net (paper 'pcanet' eq. 25-26): ``Psi ~ l_o o psi o p_i``.

``p_i``/``l_o``: PCA of the input (stretch or strain) and output (stress) histories, one basis
per tensor component (:class:`~homlearn.models.pca.ComponentPCA`), fitted on the training data
only; ``psi``: a SELU MLP between the reduced spaces (eq. 26). Paper sizes: 2D FFT data 32 x 3
components in and out, 3D Taylor data 100 x 6 ('pcanet' section 2.2, Table SI-2).

Widths. The 'pcanet' paper gives no widths; it trains "following [7]" (Bhattacharya, Hosseini,
Kovachki, Stuart, model reduction and neural networks for parametric PDEs), whose network has
hidden widths 500, 1000, 2000, 1000, 500 with SELU: our default (our reading of ref. [7]).

Coefficient scaling (ours; the papers say nothing): the MLP predicts the output coefficients
divided by the standard deviation of the leading training coefficient of their tensor component
(the basis is orthonormal, so the loss on histories weights all coefficients of a component
alike; scaling them one by one would only ill-condition the fit). The input coefficients are
each scaled to unit variance (``scale="whiten"``, the default: the fit is far better
conditioned, see the tests), or like the outputs (``"component"``, the relative spectrum is
kept), or neither is scaled (``"none"``). A linear rescaling only.

Time grid. PCA-Net is tied to the time grid of its training data (the basis vectors are vectors
on that grid, and the paper notes it is restricted to the interval [0, T] it was trained on).
Histories on another grid of the same interval are linearly interpolated to the training grid,
mapped, and the output interpolated back (our reading of how 'pcanet' Fig. 1d tests resolutions
50 to 1000 with a net trained at 200 steps).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from homlearn.models.mlp import MLP
from homlearn.models.pca import ComponentPCA

__all__ = ["PCANet", "PAPER_SIZES", "DEFAULT_HIDDEN", "resample"]

DEFAULT_HIDDEN = (500, 1000, 2000, 1000, 500)
PAPER_SIZES = {  # 'pcanet' section 2.2 and Table SI-2: components per tensor component x components
    "2d": {"c_in": 3, "c_out": 3, "r_in": 32, "r_out": 32},
    "3d": {"c_in": 6, "c_out": 6, "r_in": 100, "r_out": 100},
}
SCALES = ("component", "whiten", "none")


def resample(x: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor, atol: float = 1e-9) -> torch.Tensor:
    """Linear interpolation of histories (B, T, C) from times ``t_from`` ((T,) or (B, T),
    increasing) to ``t_to`` ((T',) or (B, T')), inside the interval of ``t_from``."""
    if x.ndim != 3:
        raise ValueError(f"expected histories (B, T, C), got {tuple(x.shape)}")
    b, n, _ = x.shape
    src = t_from.to(x).expand(b, n).contiguous()
    dst = t_to.to(x)
    dst = dst.expand(b, dst.shape[-1]).contiguous()
    span = (src[:, -1] - src[:, 0]).abs().max()
    tol = atol * (1.0 + float(span))
    if bool((dst < src[:, :1] - tol).any() or (dst > src[:, -1:] + tol).any()):
        raise ValueError("resample: target times lie outside the interval of the source grid")
    if n == 1:
        return x[:, :1].expand(b, dst.shape[1], x.shape[2])
    i = torch.searchsorted(src, dst).clamp(1, n - 1)
    t0, t1 = src.gather(1, i - 1), src.gather(1, i)
    w = ((dst - t0) / (t1 - t0)).clamp(0.0, 1.0).unsqueeze(-1)
    idx = i.unsqueeze(-1).expand(-1, -1, x.shape[2])
    return x.gather(1, idx - 1) * (1 - w) + x.gather(1, idx) * w


class PCANet(nn.Module):
    """PCA-Net mapping input histories (B, T, c_in) to output histories (B, T, c_out).

    Call :meth:`fit_pca` with the training data before training the MLP.
    """

    def __init__(self, c_in: int, c_out: int, n_time: int, r_in: int = 32, r_out: int = 32,
                 hidden: Sequence[int] = DEFAULT_HIDDEN, scale: str = "whiten"):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; allowed: {', '.join(SCALES)}")
        self.c_in, self.c_out, self.n_time, self.scale = int(c_in), int(c_out), int(n_time), scale
        self.pca_in = ComponentPCA(n_time, c_in, r_in)
        self.pca_out = ComponentPCA(n_time, c_out, r_out)
        self.mlp = MLP(c_in * r_in, c_out * r_out, hidden)
        self.register_buffer("in_scale", torch.ones(c_in, r_in))
        self.register_buffer("out_scale", torch.ones(c_out, r_out))
        self.register_buffer("time", torch.linspace(0.0, 1.0, n_time))

    @classmethod
    def paper(cls, dim: str, n_time: int = 201, **kw) -> "PCANet":
        """The paper's sizes: ``dim="2d"`` (32 x 3) or ``"3d"`` (100 x 6)."""
        if dim not in PAPER_SIZES:
            raise ValueError(f"unknown paper size {dim!r}; allowed: {', '.join(PAPER_SIZES)}")
        return cls(n_time=n_time, **{**PAPER_SIZES[dim], **kw})

    def _scale_of(self, pca: ComponentPCA, n: int, whiten: bool) -> torch.Tensor:
        std = pca.coefficient_std(n)
        if self.scale == "none":
            return torch.ones_like(std)
        tiny = torch.finfo(std.dtype).tiny
        if whiten:
            return std.clamp_min(1e-8 * float(std.max()) + tiny)
        return std[:, :1].clamp_min(tiny).expand_as(std).clone()

    @torch.no_grad()
    def fit_pca(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None = None) -> "PCANet":
        """Fit both PCAs (and the coefficient scales) on training histories; ``t`` (T,) is the
        training time grid (default: uniform on [0, 1])."""
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y disagree on the number of samples: {x.shape[0]} vs {y.shape[0]}")
        self.pca_in.fit(x)
        self.pca_out.fit(y)
        self.in_scale.copy_(self._scale_of(self.pca_in, x.shape[0], whiten=self.scale == "whiten"))
        self.out_scale.copy_(self._scale_of(self.pca_out, y.shape[0], whiten=False))
        if t is not None:
            t = torch.as_tensor(t).reshape(-1)
            if t.numel() != self.n_time or not bool((t[1:] > t[:-1]).all()):
                raise ValueError(f"t must be {self.n_time} increasing times")
            self.time.copy_(t.to(self.time))
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """p_i: input histories (B, T, c_in) -> scaled coefficients (B, c_in * r_in)."""
        return (self.pca_in.encode(x) / self.in_scale).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """l_o: scaled output coefficients (B, c_out * r_out) -> histories (B, T, c_out)."""
        return self.pca_out.decode(z.reshape(z.shape[0], *self.out_scale.shape) * self.out_scale)

    def encode_output(self, y: torch.Tensor) -> torch.Tensor:
        """p_o: output histories -> the scaled coefficients the MLP predicts."""
        return (self.pca_out.encode(y) / self.out_scale).flatten(1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, c_in) -> (B, T, c_out). With ``t`` ((T,) or (B, T)) on another grid than the
        training one, the histories are interpolated to it and back."""
        if not bool(self.pca_in.fitted):
            raise RuntimeError("PCANet: call fit_pca on the training data first")
        other = t is not None and (t.shape[-1] != self.n_time or not torch.allclose(
            t.to(self.time), self.time.expand_as(t), rtol=0, atol=1e-12 * (1 + float(self.time[-1].abs()))))
        if other:
            x = resample(x, t, self.time)
        y = self.decode(self.mlp(self.encode(x)))
        return resample(y, self.time, t) if other else y
