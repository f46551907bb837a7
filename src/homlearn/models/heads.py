"""Output heads on the pooled global features ``F_a`` (paper 'gcnn' eq. 18, Fig. 10), shared by
the GCNN family (:mod:`homlearn.models.gcnn`) and the pixel/voxel CNNs (:mod:`homlearn.models.cnn`).

* ``"mlp"`` (:class:`MLPHead`): ``n_dense`` linear layers with ReLU in between, the last one the
  linear output (paper section 6.1: "``N_dense`` ... the number of dense layers post global
  pooling"; section 6.2: "``N_dense = 2``, including the linear mixing layer"). For scalar
  properties (heat2d conductivity).
* ``"lstm"`` (:class:`LSTMHead`): histories, one value per loading step (paper section 4 end,
  section 6.2 and Fig. 10: "global scalar features ``F_a`` that are mixed by a linear dense layer
  to be used as input to ... a recurrent neural network for evolution prediction"; section 6.2:
  "only a linear mixing layer (``N_dense = 1``) processes the global features before they are
  sent to the LSTM"). ``n_dense`` counts the dense layers before the LSTM, the last of which is
  the linear mixing layer of width ``n_mix``; the LSTM runs over the ``n_out`` loading steps with
  the per-step input ``[mixed features, s_t]``, ``s_t = t / (n_out - 1)`` the normalised step
  (0 when ``n_out == 1``), from a zero state; a linear read-out gives one value per step.
  The paper gives neither the LSTM width nor the mixing width: ``lstm_hidden = 32`` and
  ``n_mix = 16`` are our choice.
"""

from __future__ import annotations

import torch
from torch import nn

from homlearn.models.hyper import require_int

__all__ = ["MLPHead", "LSTMHead", "HEADS", "build_head"]


class MLPHead(nn.Sequential):
    """``n_dense`` linear layers in total (the last one is the linear output layer), ReLU in
    between; hidden width ``hidden``. Parameter names ``0.weight, 2.weight, ...`` (nn.Sequential)."""

    def __init__(self, in_features: int, hidden: int, n_dense: int, n_out: int):
        for k, v in (("n_dense", n_dense), ("hidden", hidden), ("n_out", n_out), ("in_features", in_features)):
            require_int(k, v)
        dims = [in_features] + [hidden] * (n_dense - 1) + [n_out]
        layers: list[nn.Module] = []
        for i in range(n_dense):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < n_dense - 1:
                layers.append(nn.ReLU())
        super().__init__(*layers)


class LSTMHead(nn.Module):
    """``F (B, in_features) -> (B, n_out)``: dense mixing (``n_dense`` layers, the last linear, width
    ``n_mix``), an LSTM over the ``n_out`` steps fed ``[mix(F), s_t]``, and a linear read-out."""

    def __init__(self, in_features: int, n_out: int, n_dense: int = 1, hidden: int = 32,
                 lstm_hidden: int = 32, n_mix: int = 16):
        super().__init__()
        for k, v in (("lstm_hidden", lstm_hidden), ("n_mix", n_mix), ("n_out", n_out)):
            require_int(k, v)
        self.n_out = n_out
        self.mix = MLPHead(in_features, hidden, n_dense, n_mix)
        self.lstm = nn.LSTM(n_mix + 1, lstm_hidden, batch_first=True)
        self.readout = nn.Linear(lstm_hidden, 1)
        steps = torch.arange(n_out, dtype=torch.get_default_dtype()) / max(n_out - 1, 1)
        self.register_buffer("steps", steps, persistent=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, t = f.shape[0], self.n_out
        m = self.mix(f)
        s = self.steps.to(m.dtype).view(1, t, 1).expand(b, t, 1)
        h, _ = self.lstm(torch.cat([m.unsqueeze(1).expand(b, t, m.shape[1]), s], dim=2))
        return self.readout(h).squeeze(-1)


HEADS = ("mlp", "lstm")


def build_head(head: str, in_features: int, n_out: int, n_dense: int = 3, hidden: int = 32,
               lstm_hidden: int = 32, n_mix: int = 16) -> nn.Module:
    """The head named ``head`` (``"mlp"`` or ``"lstm"``); ``lstm_hidden`` and ``n_mix`` are used by
    the LSTM head only."""
    key = str(head).strip().lower()
    if key == "mlp":
        return MLPHead(in_features, hidden, n_dense, n_out)
    if key == "lstm":
        return LSTMHead(in_features, n_out, n_dense, hidden, lstm_hidden, n_mix)
    raise ValueError(f"unknown head {head!r}; allowed heads: {', '.join(HEADS)}")
