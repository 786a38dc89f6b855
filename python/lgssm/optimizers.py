"""Optimizer settings for ``fit_sgd`` (the optimizer itself runs in C++)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015) with optax's defaults."""

    learning_rate: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


def adam(learning_rate: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Adam:
    """Adam with the given settings, as ``optax.adam(learning_rate, b1, b2, eps)``."""
    return Adam(float(learning_rate), float(b1), float(b2), float(eps))
