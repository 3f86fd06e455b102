"""The CASCADE noise level nu of dF/F traces."""

from __future__ import annotations

import numpy as np


def noise_level_nu(traces: np.ndarray, frame_rate: float) -> np.ndarray:
    """Noise level nu per cell in % Hz^-1/2 (Rupprecht et al. 2021).

    nu = 100 * median(|dF/F(t+1) - dF/F(t)|) / sqrt(frame_rate), with dF/F as a fraction; the
    median pools the frame differences of all trials and ignores NaN. ``traces`` is
    ``(trials, cells, frames)`` (or ``(cells, frames)``); returns ``(cells,)`` float64 (NaN for
    a cell without two consecutive finite frames). For white noise of SD sigma,
    nu = 95.4 * sigma / sqrt(frame_rate).
    """
    x = np.asarray(traces, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    d = np.diff(x, axis=-1)
    np.abs(d, out=d)
    d = d.transpose(1, 0, 2).reshape(x.shape[1], -1)
    out = np.full(x.shape[1], np.nan)
    ok = np.isfinite(d).any(axis=1)
    out[ok] = 100.0 * np.nanmedian(d[ok], axis=1) / np.sqrt(frame_rate)
    return out
