"""Fully connected SELU networks shared by the history surrogates.

``psi(s) = W_M ... omega(W_2 omega(W_1 s + b_1) + b_2) ... + b_M`` (paper 'pcanet' eq. 26) with
``omega`` the scaled exponential linear unit (SELU; the paper's constants chi = 1.67, beta = 1.05
are torch's alpha = 1.6733, lambda = 1.0507). The same form is used for the RNO's f and g
(paper 'rno' section 2: "four intermediate linear layers, each with 100 nodes", SELU).
Weights are LeCun-normal (std 1/sqrt(fan_in)), the initialisation SELU's self-normalisation
assumes; biases start at zero.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """``len(hidden)`` SELU hidden layers of the given widths and a linear output layer
    (``hidden=()`` is a single affine map)."""

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (100, 100, 100, 100)):
        hidden = tuple(int(h) for h in hidden)
        if in_features < 1 or out_features < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"MLP widths must be >= 1, got in={in_features}, hidden={hidden}, out={out_features}")
        dims = (int(in_features),) + hidden + (int(out_features),)
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.SELU())
        super().__init__(*layers)
        self.in_features, self.out_features, self.hidden = dims[0], dims[-1], hidden
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")  # LeCun normal
                nn.init.zeros_(m.bias)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self if isinstance(m, nn.Linear)]

