"""Name -> class of the history surrogates, for config-driven training.

``pcanet`` (:class:`~homlearn.models.pcanet.PCANet`), ``rno`` (:class:`~homlearn.models.rno.RNO`;
``rate_input=True`` is the viscoelastic RNO), ``rno_split``
(:class:`~homlearn.models.rno.PressureDeviatoricRNO`), ``gru`` / ``lstm``
(:class:`~homlearn.models.sequence.SequenceModel`). PCA-Net needs ``fit_pca`` on the training
data before training; the others optionally ``fit_scaling``. Forward signatures: PCA-Net
``(x)`` or ``(x, t)``, the others ``(x, t)``.
"""

from __future__ import annotations

from torch import nn

from homlearn.models.pcanet import PCANet
from homlearn.models.rno import RNO, PressureDeviatoricRNO
from homlearn.models.sequence import SequenceModel

__all__ = ["HISTORY_MODELS", "build_history_model"]

HISTORY_MODELS = {"pcanet": PCANet, "rno": RNO, "rno_split": PressureDeviatoricRNO, "gru": SequenceModel,
                  "lstm": SequenceModel}


def build_history_model(name: str, **hyper) -> nn.Module:
    """Instantiate a history surrogate by name with its constructor's keyword arguments."""
    key = str(name).strip().lower()
    if key not in HISTORY_MODELS:
        raise ValueError(f"unknown history model {name!r}; allowed names: {', '.join(sorted(HISTORY_MODELS))}")
    if key in ("gru", "lstm"):
        if hyper.setdefault("cell", key) != key:
            raise ValueError(f"model {key!r} cannot take cell={hyper['cell']!r}")
    return HISTORY_MODELS[key](**hyper)
