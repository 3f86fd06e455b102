"""Recording conditions: resample a TraceSet to a frame rate, add noise up to a noise level.

Both follow the CASCADE conventions (Rupprecht et al. 2021) so that recordings of any frame rate
and quality can be compared at a standard condition (e.g. 30 Hz, nu = 2):

:func:`resample`
    FFT (band-limited) resampling of every trace when the frame rate differs by more than 5 %.
    ``N`` frames at rate ``fr`` become ``n = round(N * rate / fr)`` frames; frame ``k`` sits at
    ``t0 + k * N / (n * fr)`` s, where ``fr`` is the recording's mean rate over its frame times
    (so a 29.7 Hz recording does not drift against its spikes). The straight line between the
    first and last frame is removed before the FFT and added back after, so the periodic
    extension has no jump and the ends do not ring. NaN frames are bridged linearly for the FFT
    and frames that fall inside a NaN stretch are NaN again afterwards. Spike times are kept.
:func:`band_limit`
    Zero-phase FFT low-pass that keeps the frequencies up to a cutoff (Hz): what a trace has
    left after being resampled up from a rate of twice the cutoff. It gives a synthetic trace
    made at a common rate the bandwidth of a recording resampled up from a lower native rate
    (line removed, NaN bridged, as in :func:`resample`; NaN frames stay NaN).
:func:`match_noise`
    Adds Gaussian noise scaled by ``sqrt(dF/F + 1)`` (the variance grows with brightness, like
    shot noise) to each trace, with the scale solved so that the trace's noise level nu
    (:func:`cabench.noise_level.noise_level_nu`, % Hz^-1/2) equals the target. Traces that are
    already noisier than the target are dropped, as CASCADE does, and counted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cabench.errors import CabenchError
from cabench.noise_level import noise_level_nu
from cabench.traceset import TraceSet

#: rates closer than this fraction are left alone by :func:`resample` (CASCADE's rule)
RATE_TOLERANCE = 0.05
#: a trace counts as at the target noise level within this fraction (relative tolerance of
#: the solver and of the "already noisier" test)
NU_TOLERANCE = 0.01


def mean_frame_rate(ts: TraceSet) -> float:
    """Mean frame rate (Hz) over the recording's frame times (``frame_rate`` if it has none)."""
    t = ts.times()
    if ts.frame_times is None or t.size < 2 or t[-1] <= t[0]:
        return ts.frame_rate
    return (t.size - 1) / float(t[-1] - t[0])


def resample(ts: TraceSet, frame_rate: float, tolerance: float = RATE_TOLERANCE) -> TraceSet:
    """``ts`` at ``frame_rate`` (Hz) by FFT resampling (see the module docstring).

    Returns ``ts`` itself when its mean rate is within ``tolerance`` (fraction) of the target.
    Noiseless calcium, if present, is resampled the same way. ``params["resampled_from_hz"]``
    records the original mean rate.
    """
    if not np.isfinite(frame_rate) or frame_rate <= 0:
        raise CabenchError(f"resampling frame rate must be a positive number of Hz, got "
                           f"{frame_rate}")
    fr = mean_frame_rate(ts)
    if abs(fr / frame_rate - 1.0) <= tolerance:
        return ts
    n_old = ts.n_frames
    n_new = max(2, round(n_old * frame_rate / fr))
    t0 = float(ts.times()[0])
    times = t0 + np.arange(n_new) * (n_old / (n_new * fr))
    new_rate = n_new * fr / n_old  # exact rate of the new grid (the target up to rounding)
    calcium = None if ts.calcium is None else _resample_rows(ts.calcium, n_new)
    return dataclasses.replace(
        ts,
        traces=_resample_rows(ts.traces, n_new),
        calcium=calcium,
        frame_rate=new_rate,
        frame_times=times,
        params={**ts.params, "resampled_from_hz": fr},
    )


def _resample_rows(x: np.ndarray, n_new: int) -> np.ndarray:
    """FFT-resample the last axis of ``x`` to ``n_new`` samples (line removed, NaN bridged)."""
    from scipy.signal import resample as fft_resample  # scipy.signal is slow to import

    rows = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    n_old = rows.shape[1]
    out = np.full((rows.shape[0], n_new), np.nan)
    pos_old = np.arange(n_old, dtype=np.float64)
    pos_new = np.arange(n_new) * (n_old / n_new)  # new frames in units of old frames
    for i, y in enumerate(rows):
        bad = ~np.isfinite(y)
        if bad.all():
            continue
        if bad.any():
            y = np.interp(pos_old, pos_old[~bad], y[~bad])
        line = y[0] + (y[-1] - y[0]) * pos_old / max(n_old - 1, 1)
        z = fft_resample(y - line, n_new)
        out[i] = z + y[0] + (y[-1] - y[0]) * pos_new / max(n_old - 1, 1)
        if bad.any():
            # a new frame inherits NaN from the old frames it lies between
            left = np.clip(np.floor(pos_new).astype(int), 0, n_old - 1)
            right = np.clip(left + 1, 0, n_old - 1)
            out[i, bad[left] | bad[right]] = np.nan
    return out.reshape(*x.shape[:-1], n_new).astype(np.float32)


def native_bandwidth(ts: TraceSet, frame_rate: float) -> float | None:
    """Half the native mean rate (Hz) of ``ts`` when :func:`resample` to ``frame_rate`` raises
    its rate by more than :data:`RATE_TOLERANCE`: the highest frequency the resampled traces
    hold. None when they keep the whole band at ``frame_rate``."""
    native = mean_frame_rate(ts)
    return native / 2 if native < frame_rate * (1 - RATE_TOLERANCE) else None


def band_limit(traces: np.ndarray, frame_rate: float, cutoff_hz: float) -> np.ndarray:
    """``traces`` (..., frames) at ``frame_rate`` (Hz) with every frequency above
    ``cutoff_hz`` removed (see the module docstring); float32, same shape. Frequency bin
    ``k`` of ``n`` frames is ``k * frame_rate / n``; bins up to the cutoff are kept unchanged.
    White noise of noise level nu comes out as white noise of nu at rate ``2 * cutoff_hz``
    resampled up, since nu is per square root of a hertz."""
    if not (np.isfinite(frame_rate) and frame_rate > 0 and np.isfinite(cutoff_hz)
            and cutoff_hz > 0):
        raise CabenchError(f"band_limit needs a positive frame rate and cutoff (Hz), got "
                           f"{frame_rate} and {cutoff_hz}")
    x = np.asarray(traces, dtype=np.float64)
    n = x.shape[-1]
    keep = int(np.floor(n * cutoff_hz / frame_rate + 1e-9))  # highest kept bin
    if n < 3 or keep >= n // 2:
        return x.astype(np.float32)
    rows = x.reshape(-1, n).copy()
    bad = ~np.isfinite(rows)
    pos = np.arange(n, dtype=np.float64)
    for i in np.flatnonzero(bad.any(axis=1) & ~bad.all(axis=1)):
        rows[i] = np.interp(pos, pos[~bad[i]], rows[i, ~bad[i]])
    line = rows[:, :1] + (rows[:, -1:] - rows[:, :1]) * pos / (n - 1)
    spec = np.fft.rfft(np.nan_to_num(rows - line), axis=1)
    spec[:, keep + 1:] = 0
    out = np.fft.irfft(spec, n, axis=1) + line
    out[bad] = np.nan
    return out.reshape(x.shape).astype(np.float32)


def match_noise(
    ts: TraceSet, nu: float, seed: int | np.random.SeedSequence | None = 0
) -> tuple[TraceSet | None, dict[str, Any]]:
    """Add shot-noise-like Gaussian noise so that every trace has noise level ``nu``.

    ``nu`` in % Hz^-1/2. Each (trial, cell) trace ``y`` gets ``s * sqrt(max(y + 1, 0)) * z``
    with ``z`` standard normal from ``numpy.random.default_rng(seed)`` (one stream, traces in
    trial-major order) and ``s`` solved so that the trace's nu is the target within 1 %.
    Cells whose nu (pooled over trials) is already above ``nu`` are dropped. Returns the new
    TraceSet (None if every cell was dropped) and a report: ``nu_before`` per cell, ``dropped``
    (cell indices) and ``noise_scale`` per (trial, cell) (0 for dropped cells).
    """
    if not np.isfinite(nu) or nu <= 0:
        raise CabenchError(f"target noise level must be a positive number (% Hz^-1/2), got {nu}")
    before = noise_level_nu(ts.traces, ts.frame_rate)
    keep = np.flatnonzero(before <= nu * (1 + NU_TOLERANCE))
    dropped = np.setdiff1d(np.arange(ts.n_cells), keep)
    scale = np.zeros((ts.n_trials, ts.n_cells))
    report: dict[str, Any] = dict(
        nu_target=float(nu), nu_before=before.tolist(), dropped=dropped.tolist(),
        noise_scale=scale,
    )
    if keep.size == 0:
        return None, report
    rng = np.random.default_rng(seed)
    traces = ts.traces.astype(np.float64)
    for t in range(ts.n_trials):
        for c in keep:
            z = rng.standard_normal(ts.n_frames)
            y = traces[t, c]
            w = np.sqrt(np.clip(np.nan_to_num(y, nan=0.0) + 1.0, 0.0, None)) * z
            s = _noise_scale(y, w, nu, ts.frame_rate)
            traces[t, c] = y + s * w
            scale[t, c] = s
    out = ts.select(cells=keep) if dropped.size else ts
    out = dataclasses.replace(
        out,
        traces=traces[:, keep],
        params={**out.params, "noise_matched_nu": float(nu),
                "noise_seed": None if seed is None else str(seed)},
    )
    report["noise_scale"] = scale
    return out, report


def _noise_scale(y: np.ndarray, w: np.ndarray, nu: float, frame_rate: float) -> float:
    """Scale ``s`` with ``nu(y + s * w) = nu`` (0 if ``y`` is within tolerance already)."""
    from scipy.optimize import brentq

    def excess(s: float) -> float:
        return float(noise_level_nu((y + s * w)[None], frame_rate)[0]) - nu

    if excess(0.0) >= -NU_TOLERANCE * nu:
        return 0.0
    hi = nu * np.sqrt(frame_rate) / 95.4 / max(float(np.median(np.abs(w))) / 0.6745, 1e-6)
    while excess(hi) <= 0:
        hi *= 2.0
        if hi > 1e6:
            raise CabenchError("could not reach the target noise level (trace has no frames?)")
    return brentq(excess, 0.0, hi, rtol=1e-4, xtol=1e-9 * hi)
