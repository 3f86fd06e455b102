"""Helpers shared by the methods: noise, baseline, kernels, indicator defaults, resampling."""

from __future__ import annotations

import math

import numpy as np

from cabench.benchmark.methods.base import Param
from cabench.errors import CabenchError
from cabench.simulators.presets import PRESETS

#: indicator presets a method's ``indicator`` parameter may name
INDICATORS: tuple[str, ...] = tuple(PRESETS)


def indicator_kinetics(name: str) -> dict[str, float]:
    """``amplitude`` (peak dF/F of one spike, fraction), ``decay`` and ``rise`` (s) of a preset."""
    try:
        p = PRESETS[name]
    except KeyError:
        raise CabenchError(
            f"unknown indicator {name!r}; valid: {', '.join(INDICATORS)}"
        ) from None
    return dict(amplitude=float(p["amplitude"]), decay=float(p["decay"]), rise=float(p["rise"]))


_KINETICS_PARAMS = {
    "amplitude": dict(type=float, help="peak dF/F of one spike", unit="dF/F (fraction)",
                      exclusive=True),
    "decay_s": dict(type=float, help="decay time constant of the kernel", unit="s",
                    exclusive=True),
    "rise_s": dict(type=float, help="rise time constant of the kernel (0: instantaneous)",
                   unit="s", exclusive=False),
}


def indicator_params(*fields: str) -> dict[str, Param]:
    """Parameter schemas for ``indicator`` and the kinetics ``fields`` it supplies defaults for
    (any of ``amplitude``, ``decay_s``, ``rise_s``); use with :class:`IndicatorDefaults`."""
    out = {"indicator": Param(
        str, "GCaMP6f", f"indicator preset whose {', '.join(fields)} are the defaults",
        choices=INDICATORS,
    )}
    for name in fields:
        k = _KINETICS_PARAMS[name]
        out[name] = Param(k["type"], None, f"{k['help']}; None takes the indicator's",
                          unit=k["unit"], minimum=0, exclusive_minimum=k["exclusive"],
                          nullable=True)
    return out


class IndicatorDefaults:
    """Mixin for methods whose ``params`` come from :func:`indicator_params`: the kinetics
    parameters left None take the ``indicator`` preset's values, and rise must be below decay.
    """

    indicator_fields: tuple[str, ...] = ("decay_s", "rise_s")
    _PRESET_KEYS = {"amplitude": "amplitude", "decay_s": "decay", "rise_s": "rise"}

    def resolved_params(self) -> dict:
        p = dict(self.parameters)
        kinetics = indicator_kinetics(p["indicator"])
        for name in self.indicator_fields:
            if p[name] is None:
                p[name] = kinetics[self._PRESET_KEYS[name]]
        return p

    def _check_params(self) -> None:
        p = self.resolved_params()
        if "rise_s" in p and p["rise_s"] >= p["decay_s"]:
            raise CabenchError(
                f"method {self.name}: rise_s ({p['rise_s']} s) must be shorter than decay_s "
                f"({p['decay_s']} s)"
            )


def noise_sd(y: np.ndarray) -> float:
    """Standard deviation (units of ``y``) of white noise, from the high-frequency power.

    The periodogram ``|FFT(y)|^2 / n`` of white noise of variance ``s^2`` is exponentially
    distributed with mean ``s^2`` at every frequency; calcium transients put little power into
    the upper half of the band (0.25-0.5 of the frame rate). The median there divided by ln 2 is
    a robust estimate of ``s^2`` that ignores the few bins a fast transient leaks into.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n < 4:
        return float(np.std(y))
    p = np.abs(np.fft.rfft(y - y.mean())) ** 2 / n
    k = np.arange(p.size)
    band = (k >= n / 4) & (k < n / 2)  # the Nyquist bin of an even n has a different law
    if not band.any():
        return float(np.std(np.diff(y)) / math.sqrt(2))
    return float(math.sqrt(np.median(p[band]) / math.log(2)))


def baseline(y: np.ndarray, sd: float, clip: float = 2.0, iterations: int = 10) -> float:
    """Baseline (units of ``y``) of a trace with sparse positive transients.

    Starting from the median, the mean of the frames within ``clip`` noise SDs (``sd``) of the
    current value is taken, repeatedly: the window follows the noise around the baseline and
    drops the transients above it. Noiseless traces (``sd`` 0) use the 5th percentile.
    """
    y = np.asarray(y, dtype=np.float64)
    if not sd > 0:
        return float(np.percentile(y, 5))
    b = float(np.median(y))
    for _ in range(iterations):
        near = np.abs(y - b) <= clip * sd
        if near.sum() < 3:
            break
        nb = float(y[near].mean())
        if abs(nb - b) < 1e-3 * sd:
            b = nb
            break
        b = nb
    return b


def floor_baseline(y: np.ndarray, sd: float, smooth_frames: float, q: float = 2.0) -> float:
    """Baseline (units of ``y``) of a trace that rarely returns to rest.

    The trace is smoothed with a Gaussian of SD ``smooth_frames`` frames; the ``q``-th
    percentile of the result plus the amount by which that percentile of the smoothed noise
    (SD ``sd``, white) lies below zero estimates the resting level, as long as the calcium
    returns close to rest in at least ``q`` % of the frames.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.special import ndtri

    y = np.asarray(y, dtype=np.float64)
    w = max(float(smooth_frames), 0.5)
    smooth = gaussian_filter1d(y, w, mode="nearest")
    sd_smooth = sd / math.sqrt(2.0 * math.sqrt(math.pi) * w) if sd > 0 else 0.0
    return float(np.percentile(smooth, q) - ndtri(q / 100.0) * sd_smooth)


def double_exponential(t_s: np.ndarray, decay_s: float, rise_s: float) -> np.ndarray:
    """Single-spike response ``exp(-t/decay) - exp(-t/rise)`` scaled to peak 1, 0 for t < 0.

    ``t_s`` in seconds after the spike; ``rise_s`` 0 gives ``exp(-t/decay)``.
    """
    t = np.asarray(t_s, dtype=np.float64)
    tt = np.maximum(t, 0.0)
    if rise_s <= 0:
        h = np.exp(-tt / decay_s)
    else:
        t_peak = decay_s * rise_s / (decay_s - rise_s) * math.log(decay_s / rise_s)
        peak = math.exp(-t_peak / decay_s) - math.exp(-t_peak / rise_s)
        h = (np.exp(-tt / decay_s) - np.exp(-tt / rise_s)) / peak
    return np.where(t >= 0, h, 0.0)


def ar_impulse_peak(g: tuple[float, ...] | np.ndarray, n_max: int = 100_000) -> float:
    """Peak of the impulse response of ``c_t = g1 c_{t-1} (+ g2 c_{t-2}) + s_t`` (1 for AR(1)).

    This converts oasis's ``s`` (calcium units per frame) into the peak dF/F of the transient
    it causes. Unstable coefficients give ``inf``.
    """
    g = np.atleast_1d(np.asarray(g, dtype=np.float64))
    if g.size == 1:
        return 1.0 if abs(g[0]) < 1 else math.inf
    g1, g2 = float(g[0]), float(g[1])
    c1, c0, peak = 1.0, 0.0, 1.0  # c_t, c_{t-1}
    for _ in range(n_max):
        c1, c0 = g1 * c1 + g2 * c0, c1
        if c1 > peak:
            peak = c1
        elif c1 < peak:
            break
    return peak if np.isfinite(peak) and peak < 1e12 else math.inf


def event_sizes(s: np.ndarray, rel_threshold: float = 1e-3) -> np.ndarray:
    """Summed ``s`` of each event: maximal runs of frames with ``s > rel_threshold * max(s)``."""
    s = np.asarray(s, dtype=np.float64)
    top = s.max(initial=0.0)
    if not top > 0:
        return np.zeros(0)
    on = (s > rel_threshold * top).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on, [0]))))
    starts, stops = edges[::2], edges[1::2]
    total = np.concatenate(([0.0], np.cumsum(s)))
    return total[stops] - total[starts]


def ar_onset_delay(g: tuple[float, ...] | np.ndarray, n_u: int = 64) -> float:
    """Mean delay (frames) from a spike to the frame where oasis puts its ``s``.

    For AR(1), a spike anywhere in ``(t_{k-1}, t_k]`` puts all of ``s`` at frame ``k``: the
    delay is 1/2 frame on average. For AR(2) with real roots ``d > r > 0`` (a double
    exponential sampled at the frames), a spike at ``t_k - u`` (``0 <= u <= 1`` frames) is
    exactly ``a(u)`` at frame ``k`` plus ``b(u)`` at frame ``k + 1`` with
    ``a = (d^u - r^u) / (d - r)`` and ``b = (d r^u - r d^u) / (d - r)``; the delay is the mean
    over ``u`` of ``u + b / (a + b)``, close to 1 frame for slow rises. Other coefficient pairs
    (complex or non-positive roots) are treated as AR(1).
    """
    g = np.atleast_1d(np.asarray(g, dtype=np.float64))
    if g.size < 2 or g[1] == 0:
        return 0.5
    disc = g[0] * g[0] + 4.0 * g[1]
    if disc <= 0:
        return 0.5
    d, r = (g[0] + math.sqrt(disc)) / 2.0, (g[0] - math.sqrt(disc)) / 2.0
    if not (0.0 < r < d < 1.0):
        return 0.5
    u = (np.arange(n_u) + 0.5) / n_u
    a = (d**u - r**u) / (d - r)
    b = (d * r**u - r * d**u) / (d - r)
    return float(np.mean(u + b / (a + b)))


def shift_earlier(x: np.ndarray, delay: float) -> np.ndarray:
    """``x`` moved ``delay`` frames earlier with linear interpolation; the total is kept.

    Frame ``k`` of the result is ``(1 - f) x[k + i] + f x[k + i + 1]`` with ``delay = i + f``;
    mass shifted before frame 0 stays at frame 0.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    i = int(math.floor(delay))
    f = delay - i
    out = np.zeros(n)
    if i >= n:
        out[0] = x.sum()
        return out
    out[: n - i] += (1.0 - f) * x[i:]
    out[0] += (1.0 - f) * x[:i].sum()
    if f > 0:
        out[: n - i - 1] += f * x[i + 1 :]
        out[0] += f * x[: i + 1].sum()
    return out


# --- running at a model's frame rate (cnn, cascade) ------------------------------------------
def resample_rows(x: np.ndarray, frame_rate: float, target: float) -> tuple[np.ndarray, float]:
    """Rows ``(rows, frames)`` FFT-resampled to ``target`` Hz; the exact new rate."""
    from cabench.conditions import resample
    from cabench.traceset import TraceSet

    ts = resample(TraceSet(traces=x[None].astype(np.float32), frame_rate=frame_rate), target,
                  tolerance=0.0)
    return ts.traces[0].astype(np.float64), ts.frame_rate


def integrate_back(est: np.ndarray, n_orig: int) -> np.ndarray:
    """Per-frame estimates on ``n`` model frames -> ``n_orig`` recording frames, conserving
    counts: the piecewise-constant rate is integrated over each recording frame's interval
    (model frame ``k`` covers ``[k - 1/2, k + 1/2) * n_orig / n`` in recording frames)."""
    n = est.shape[1]
    edges_model = (np.arange(n + 1) - 0.5) * (n_orig / n)
    edges_orig = np.arange(n_orig + 1) - 0.5
    cum = np.concatenate([np.zeros((est.shape[0], 1)), np.cumsum(est, axis=1)], axis=1)
    pos = np.clip(edges_orig, edges_model[0], edges_model[-1])
    pos[0], pos[-1] = edges_model[0], edges_model[-1]  # the ends take what lies beyond them
    k = np.clip(np.searchsorted(edges_model, pos, side="right") - 1, 0, n - 1)
    frac = (pos - edges_model[k]) / (edges_model[k + 1] - edges_model[k])
    c = cum[:, k] + frac * (cum[:, k + 1] - cum[:, k])
    return np.diff(c, axis=1)
