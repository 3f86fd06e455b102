"""What the ``cnn`` networks see of a trace: raw dF/F and/or its AR(1) innovation.

The innovation of a trace ``x`` under an AR(1) model is ``x_t - g x_{t-1}``: for calcium that
decays by the factor ``g`` per frame after each spike, it is the spike train (times the
amplitude) plus filtered noise, whatever the indicator's decay time. ``g`` is estimated per
trace (:func:`ar1_coefficient`), so the same network input is meant to look alike for slow and
fast indicators. Recipes choose the channels with ``inputs``
(:data:`~cabench.benchmark.learned.recipe.INPUTS`).
"""

from __future__ import annotations

import numpy as np

from cabench.benchmark.learned.recipe import INPUTS

#: the largest g used (a decay of 50 frames): beyond it the innovation is a plain difference
MAX_G = 0.98


def ar1_coefficient(x: np.ndarray, lags: int = 5) -> np.ndarray:
    """Per-frame decay factor g of each trace (last axis, finite values), in [0, MAX_G].

    Least-squares fit of ``acov(k + 1) = g acov(k)`` for lags k = 1..``lags``; lag 0 is left
    out, so white noise does not bias it (it only makes it noisier).
    """
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    if n <= lags + 1:
        return np.zeros(x.shape[:-1])
    acov = np.stack([np.einsum("...t,...t->...", x[..., k:], x[..., : n - k]) / n
                     for k in range(1, lags + 2)], axis=-1)
    num = np.sum(acov[..., 1:] * acov[..., :-1], axis=-1)
    den = np.sum(acov[..., :-1] ** 2, axis=-1)
    g = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.clip(g, 0.0, MAX_G)


def innovation(x: np.ndarray) -> np.ndarray:
    """``x_t - g x_{t-1}`` per trace (last axis) with its own :func:`ar1_coefficient`; the first
    frame is ``(1 - g) x_0`` (as if the trace had been at ``x_0`` before). float32."""
    x = np.asarray(x, np.float32)
    g = ar1_coefficient(x).astype(np.float32)[..., None]
    out = np.empty_like(x)
    out[..., 1:] = x[..., 1:] - g * x[..., :-1]
    out[..., :1] = (1 - g) * x[..., :1]
    return out


def model_inputs(x: np.ndarray, inputs: str) -> np.ndarray:
    """The network input of traces ``x`` (``(..., frames)``, finite dF/F): for ``dff``, ``x``
    itself (the networks take ``(..., frames)`` as one channel), otherwise
    ``(..., channels, frames)`` float32 with the channels of ``INPUTS[inputs]``."""
    if inputs == "dff":
        return x
    x = np.asarray(x, np.float32)
    return np.stack([x if c == "dff" else innovation(x) for c in INPUTS[inputs]], axis=-2)
