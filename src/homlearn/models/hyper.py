"""Checks of model hyperparameters shared by the GCNN and CNN factories: a bad name or value gets
an error naming the hyperparameter and what is allowed."""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Mapping

__all__ = ["require_int", "check_hyperparameters"]


def require_int(name: str, value: Any, minimum: int = 1, why: str = "") -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{why}, got {value!r}")
    return int(value)


def check_hyperparameters(model: str, cls: type, hyper: Mapping[str, Any], fixed: tuple[str, ...]) -> None:
    """Refuse keyword arguments that ``cls.__init__`` does not take (``fixed`` are the positional
    ones the factory fills itself), naming them and the allowed ones."""
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self",) + fixed]
    bad = sorted(set(hyper) - set(allowed))
    if bad:
        raise ValueError(f"model {model!r}: unknown hyperparameter(s) {', '.join(map(repr, bad))}; "
                         f"allowed: {', '.join(allowed)}")
